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

fn split_terms(pattern: &str) -> Vec<String> {
    let separator = if pattern.contains(',') { ',' } else { ':' };
    pattern
        .split(separator)
        .map(str::trim)
        .filter(|term| !term.is_empty())
        .map(str::to_string)
        .collect()
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
    if term.contains('*') || term.contains('?') {
        let regex = Regex::new(&glob_to_regex(term))
            .map_err(|error| Error::argument(format!("invalid host pattern `{term}`: {error}")))?;
        return Ok(names_matching(inventory, |name| regex.is_match(name)));
    }
    Ok(Vec::new())
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
