//! Host patterns: `all`, names, groups, globs, `~regex`, and `a:b`, `a:&b`, `a:!b`.

use regex::Regex;

use super::Inventory;
use crate::error::{Error, Result};

/// The hosts a pattern names, in inventory order.
pub fn select(inventory: &Inventory, pattern: &str) -> Result<Vec<String>> {
    let mut chosen: Vec<String> = Vec::new();
    let terms = split_terms(pattern);
    // Plain terms first, then intersections, then exclusions, as Ansible orders them.
    for term in terms.iter().filter(|t| !t.starts_with('&') && !t.starts_with('!')) {
        for host in match_term(inventory, term)? {
            if !chosen.contains(&host) {
                chosen.push(host);
            }
        }
    }
    for term in terms.iter().filter_map(|t| t.strip_prefix('&')) {
        let keep = match_term(inventory, term)?;
        chosen.retain(|host| keep.contains(host));
    }
    for term in terms.iter().filter_map(|t| t.strip_prefix('!')) {
        let drop = match_term(inventory, term)?;
        chosen.retain(|host| !drop.contains(host));
    }
    let order: Vec<&String> = inventory.hosts.keys().collect();
    chosen.sort_by_key(|host| order.iter().position(|name| *name == host));
    Ok(chosen)
}

/// Splits on `,`, or else on `:` outside `[...]` subscripts.
fn split_terms(pattern: &str) -> Vec<String> {
    let separator = if pattern.contains(',') { ',' } else { ':' };
    let mut terms = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    for character in pattern.chars() {
        match character {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            c if c == separator && depth == 0 => {
                terms.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(character);
    }
    terms.push(current);
    terms.into_iter().map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect()
}

fn match_term(inventory: &Inventory, term: &str) -> Result<Vec<String>> {
    if term == "all" || term == "*" {
        return Ok(inventory.group_hosts("all"));
    }
    if let Some(expression) = term.strip_prefix('~') {
        let regex = Regex::new(expression).map_err(|error| {
            Error::argument(format!("invalid host pattern regex `{expression}`: {error}"))
        })?;
        return Ok(names_matching(inventory, |name| regex.is_match(name)));
    }
    if inventory.groups.contains_key(term) {
        return Ok(inventory.group_hosts(term));
    }
    if inventory.hosts.contains_key(term) {
        return Ok(vec![term.to_string()]);
    }
    if let Some((base, (start, end))) = subscript(term) {
        let hosts = match_term(inventory, base)?;
        return Ok(slice(&hosts, start, end));
    }
    if term.contains('*') || term.contains('?') {
        let regex = Regex::new(&glob_to_regex(term))
            .map_err(|error| Error::argument(format!("invalid host pattern `{term}`: {error}")))?;
        return Ok(names_matching(inventory, |name| regex.is_match(name)));
    }
    Ok(Vec::new())
}

/// A subscript's start, and its end: `None` for a single index, `Some(None)` when open.
type Bounds = (Option<i64>, Option<Option<i64>>);

/// `group[2]`, `group[1:3]` (inclusive), `group[:2]`, `group[1:]`, `group[-1]`.
fn subscript(term: &str) -> Option<(&str, Bounds)> {
    let (base, rest) = term.split_once('[')?;
    let inside = rest.strip_suffix(']')?;
    let number = |text: &str| -> Option<Option<i64>> {
        if text.is_empty() { Some(None) } else { text.parse().ok().map(Some) }
    };
    match inside.split_once(':') {
        None => Some((base, (Some(inside.parse().ok()?), None))),
        Some((start, end)) => Some((base, (number(start)?, Some(number(end)?)))),
    }
}

fn slice(hosts: &[String], start: Option<i64>, end: Option<Option<i64>>) -> Vec<String> {
    let length = hosts.len() as i64;
    let resolve = |index: i64| if index < 0 { length + index } else { index };
    let first = resolve(start.unwrap_or(0));
    let last = match end {
        None => first,
        Some(None) => length - 1,
        Some(Some(end)) => resolve(end),
    };
    (first.max(0)..=last.min(length - 1)).map(|index| hosts[index as usize].clone()).collect()
}

fn names_matching(inventory: &Inventory, matches: impl Fn(&str) -> bool) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for group in inventory.groups.keys().filter(|name| matches(name)) {
        found.extend(inventory.group_hosts(group));
    }
    found.extend(inventory.hosts.keys().filter(|name| matches(name)).cloned());
    found.dedup();
    found
}

fn glob_to_regex(glob: &str) -> String {
    let mut regex = String::from("^");
    for character in glob.chars() {
        match character {
            '*' => regex.push_str(".*"),
            '?' => regex.push('.'),
            other => regex.push_str(&regex::escape(&other.to_string())),
        }
    }
    regex.push('$');
    regex
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn lab() -> Inventory {
        let mut inventory = Inventory::default();
        let text = "[pis]\npi[1:3]\n[web]\npi2\nweb1\n";
        super::super::ini::parse(&mut inventory, Path::new("hosts"), text).unwrap();
        inventory
    }

    #[test]
    fn union_intersection_exclusion() {
        let inventory = lab();
        assert_eq!(select(&inventory, "pis:web").unwrap(), ["pi1", "pi2", "pi3", "web1"]);
        assert_eq!(select(&inventory, "pis:&web").unwrap(), ["pi2"]);
        assert_eq!(select(&inventory, "pis:!web").unwrap(), ["pi1", "pi3"]);
        assert_eq!(select(&inventory, "pi*").unwrap(), ["pi1", "pi2", "pi3"]);
        assert_eq!(select(&inventory, "~web\\d").unwrap(), ["web1"]);
    }
}
