//! Tags: how `tags:` values read, and which tasks `--tags` / `--skip-tags` select.

use std::collections::BTreeSet;

use serde_json::Value;

/// The tag set of a task without tags; `--tags untagged` selects exactly those.
const UNTAGGED: &str = "untagged";

/// A `tags:` value: a list, or a comma-separated string; each tag trimmed.
pub fn parse(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items.iter().flat_map(parse).collect(),
        Value::Null => Vec::new(),
        other => crate::playbook::display_string(other)
            .split(',')
            .map(str::trim)
            .filter(|tag| !tag.is_empty())
            .map(str::to_string)
            .collect(),
    }
}

/// The command line's tag selection.
#[derive(Clone, Debug)]
pub struct TagFilter {
    pub only: BTreeSet<String>,
    pub skip: BTreeSet<String>,
}

impl Default for TagFilter {
    fn default() -> TagFilter {
        TagFilter { only: BTreeSet::from(["all".to_string()]), skip: BTreeSet::new() }
    }
}

impl TagFilter {
    /// From repeated `-t a,b` and `--skip-tags c` values; no `-t` means `all`.
    pub fn new(only: &[String], skip: &[String]) -> TagFilter {
        let split = |values: &[String]| -> BTreeSet<String> {
            values.iter().flat_map(|v| parse(&Value::from(v.as_str()))).collect()
        };
        let mut filter = TagFilter { only: split(only), skip: split(skip) };
        if filter.only.is_empty() {
            filter.only.insert("all".into());
        }
        filter
    }

    /// Whether a task with these (inherited and own) tags runs, the way ansible-core decides:
    /// `always` runs unless skipped by name, `never` runs only when asked for by name.
    pub fn selects(&self, tags: &BTreeSet<String>) -> bool {
        let untagged = BTreeSet::from([UNTAGGED.to_string()]);
        let tags = if tags.is_empty() { &untagged } else { tags };
        let tagged = tags != &untagged;
        let meets = |set: &BTreeSet<String>| !tags.is_disjoint(set);
        let wanted = tags.contains("always")
            || (self.only.contains("all") && !tags.contains("never"))
            || meets(&self.only)
            || (self.only.contains("tagged") && tagged && !tags.contains("never"));
        if !wanted || self.skip.is_empty() {
            return wanted;
        }
        if self.skip.contains("all") {
            return tags.contains("always") && !self.skip.contains("always");
        }
        !(meets(&self.skip) || (self.skip.contains("tagged") && tagged))
    }
}

#[cfg(test)]
mod tests {
    use super::{TagFilter, parse};
    use serde_json::json;
    use std::collections::BTreeSet;

    fn set(tags: &[&str]) -> BTreeSet<String> {
        tags.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn parse_forms() {
        assert_eq!(parse(&json!("a, b")), ["a", "b"]);
        assert_eq!(parse(&json!(["a", "b,c"])), ["a", "b", "c"]);
    }

    #[test]
    fn selection_rules() {
        let default = TagFilter::default();
        assert!(default.selects(&set(&[])));
        assert!(!default.selects(&set(&["never"])));
        assert!(default.selects(&set(&["never", "always"])));
        let only_a = TagFilter::new(&["a".into()], &[]);
        assert!(only_a.selects(&set(&["a", "never"])));
        assert!(!only_a.selects(&set(&["b"])));
        assert!(only_a.selects(&set(&["always"])));
        let untagged = TagFilter::new(&["untagged".into()], &[]);
        assert!(untagged.selects(&set(&[])));
        let skip_all = TagFilter::new(&[], &["all".into()]);
        assert!(skip_all.selects(&set(&["always"])));
        assert!(!skip_all.selects(&set(&["x"])));
        let skip_always = TagFilter::new(&[], &["always".into()]);
        assert!(!skip_always.selects(&set(&["always"])));
    }
}
