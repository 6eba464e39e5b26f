//! Ansible's INI inventory format: sections, host ranges and inline variables.

use std::path::Path;

use serde_json::Value;

use super::Inventory;
use crate::error::{Error, Result};

enum Section {
    Hosts(String),
    Vars(String),
    Children(String),
}

/// Adds what an INI inventory file declares to `inventory`.
pub fn parse(inventory: &mut Inventory, path: &Path, text: &str) -> Result<()> {
    let mut section = Section::Hosts("ungrouped".to_string());
    for (index, raw) in text.lines().enumerate() {
        let line_number = index + 1;
        let fail = |message: String| Error::InventoryInvalid {
            path: path.to_path_buf(),
            line: line_number,
            message,
        };
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            let header =
                line.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')).ok_or_else(
                    || fail(format!("expected a section header like [group], found `{line}`")),
                )?;
            section = section_of(header).map_err(fail)?;
            let (Section::Hosts(name) | Section::Vars(name) | Section::Children(name)) = &section;
            inventory.group_mut(name);
            continue;
        }
        match &section {
            Section::Hosts(group) => host_line(inventory, group, line).map_err(fail)?,
            Section::Vars(group) => {
                let (key, value) = line.split_once('=').ok_or_else(|| {
                    fail(format!("expected `key=value` in [{group}:vars], found `{line}`"))
                })?;
                // ansible-core reads `:vars` values as Python literals too, like inline ones.
                let value = literal(value.trim());
                inventory.group_mut(group).vars.insert(key.trim().to_string(), value);
            }
            Section::Children(group) => {
                let child = line.split_whitespace().next().unwrap_or(line).to_string();
                inventory.group_mut(&child);
                let children = &mut inventory.group_mut(group).children;
                if !children.contains(&child) {
                    children.push(child);
                }
            }
        }
    }
    Ok(())
}

fn section_of(header: &str) -> Result<Section, String> {
    match header.split_once(':') {
        None => Ok(Section::Hosts(header.to_string())),
        Some((name, "vars")) => Ok(Section::Vars(name.to_string())),
        Some((name, "children")) => Ok(Section::Children(name.to_string())),
        Some((_, other)) => {
            Err(format!("unknown section suffix `:{other}`; expected `:vars` or `:children`"))
        }
    }
}

fn host_line(inventory: &mut Inventory, group: &str, line: &str) -> Result<(), String> {
    let words = shell_words(line)?;
    let (pattern, assignments) = words.split_first().ok_or("expected a host name")?;
    let (pattern, port) = split_port(pattern);
    let mut vars = serde_json::Map::new();
    for assignment in assignments {
        let (key, value) = assignment.split_once('=').ok_or_else(|| {
            format!("expected `key=value` after the host name, found `{assignment}`")
        })?;
        vars.insert(key.to_string(), literal(value));
    }
    if let Some(port) = port {
        vars.insert("ansible_port".to_string(), Value::from(port));
    }
    for name in expand_range(pattern)? {
        inventory.add_host_to(group, &name).vars.extend(vars.clone());
    }
    Ok(())
}

/// `name:2222` sets the port, but an IPv6 address keeps its colons.
pub fn split_port(pattern: &str) -> (&str, Option<u16>) {
    if pattern.matches(':').count() == 1
        && !pattern.contains('[')
        && let Some((name, port)) = pattern.split_once(':')
        && let Ok(port) = port.parse()
    {
        return (name, Some(port));
    }
    (pattern, None)
}

/// Inline host variables and `:vars` values are Python literals to ansible-core.
fn literal(text: &str) -> Value {
    super::literal::value(text)
}

/// Splits a host line like a shell would: quotes group, `#` after space starts a comment.
fn shell_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    for character in line.chars() {
        match (quote, character) {
            (Some(open), c) if c == open => quote = None,
            (Some(_), c) => current.push(c),
            (None, '"' | '\'') => {
                quote = Some(character);
                in_word = true;
            }
            (None, '#') if !in_word => break,
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            (None, c) => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err(format!("unterminated quote in `{line}`"));
    }
    if in_word {
        words.push(current);
    }
    Ok(words)
}

/// Expands `pi[01:03]`, `web[a:c]` and `n[0:10:5]` into host names.
pub fn expand_range(pattern: &str) -> Result<Vec<String>, String> {
    let Some(open) = pattern.find('[') else { return Ok(vec![pattern.to_string()]) };
    let close = pattern[open..]
        .find(']')
        .map(|offset| open + offset)
        .ok_or_else(|| format!("unclosed `[` in host pattern `{pattern}`"))?;
    let (head, range, tail) = (&pattern[..open], &pattern[open + 1..close], &pattern[close + 1..]);
    let parts: Vec<&str> = range.split(':').collect();
    let (start, end, step) = match parts.as_slice() {
        [start, end] => (*start, *end, 1),
        [start, end, step] => (
            *start,
            *end,
            step.parse::<usize>().map_err(|_| format!("bad range step in `{pattern}`"))?,
        ),
        _ => return Err(format!("expected `[start:end]` or `[start:end:step]` in `{pattern}`")),
    };
    if step == 0 {
        return Err(format!("range step must be positive in `{pattern}`"));
    }
    let items = range_items(start, end, step)
        .ok_or_else(|| format!("expected a numeric or letter range in `{pattern}`"))?;
    let mut names = Vec::new();
    for item in items {
        for rest in expand_range(tail)? {
            names.push(format!("{head}{item}{rest}"));
        }
    }
    Ok(names)
}

fn range_items(start: &str, end: &str, step: usize) -> Option<Vec<String>> {
    if let (Ok(first), Ok(last)) = (start.parse::<usize>(), end.parse::<usize>()) {
        let width = if start.starts_with('0') { start.len() } else { 0 };
        return Some((first..=last).step_by(step).map(|n| format!("{n:0width$}")).collect());
    }
    let (first, last) = (single_letter(start)?, single_letter(end)?);
    Some((first..=last).step_by(step).map(|c| char::from(c).to_string()).collect())
}

fn single_letter(text: &str) -> Option<u8> {
    match text.as_bytes() {
        [letter] if letter.is_ascii_alphabetic() => Some(*letter),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_keep_padding() {
        assert_eq!(expand_range("pi[01:03]").unwrap(), ["pi01", "pi02", "pi03"]);
        assert_eq!(expand_range("n[0:10:5]").unwrap(), ["n0", "n5", "n10"]);
        assert_eq!(expand_range("w[a:c].lan").unwrap(), ["wa.lan", "wb.lan", "wc.lan"]);
    }

    #[test]
    fn inline_and_group_vars_are_literals() {
        let mut inventory = Inventory::default();
        let text =
            "[pis]\npi1 ansible_port=2222 flag=True name='a b'\n[pis:vars]\nport=22\nq='22'\n";
        parse(&mut inventory, Path::new("hosts"), text).unwrap();
        let host = &inventory.hosts["pi1"].vars;
        assert_eq!(host["ansible_port"], Value::from(2222));
        assert_eq!(host["flag"], Value::Bool(true));
        assert_eq!(host["name"], Value::from("a b"));
        assert_eq!(inventory.groups["pis"].vars["port"], Value::from(22));
        assert_eq!(inventory.groups["pis"].vars["q"], Value::from("22"));
    }

    #[test]
    fn bad_section_names_the_line() {
        let mut inventory = Inventory::default();
        let error = parse(&mut inventory, Path::new("hosts"), "\n[pis:bogus]\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "hosts:2: unknown section suffix `:bogus`; expected `:vars` or `:children`"
        );
    }
}
