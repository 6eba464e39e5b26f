//! Loading playbooks, plays, tasks and roles from YAML into checked structures.

pub mod prompt;
pub mod role;
pub mod rollout;
pub mod tags;
pub mod task;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::error::{Error, Mark, Result};
use crate::yaml::{self, Node};

pub use role::{Role, RoleScope};
pub use rollout::Rollout;
pub use task::{Task, TaskBody};

/// A whole playbook file: its plays in order.
#[derive(Debug)]
pub struct Playbook {
    pub path: PathBuf,
    pub plays: Vec<Play>,
}

/// One play, with its role tasks already laid out in execution order.
#[derive(Debug)]
pub struct Play {
    pub name: Option<String>,
    pub hosts: String,
    pub mark: Mark,
    pub vars: Map<String, Value>,
    pub vars_files: Vec<VarsFile>,
    /// `vars_prompt`, asked when the play starts.
    pub prompts: Vec<prompt::VarPrompt>,
    /// `gather_facts:` as written; unset follows the `gathering` setting.
    pub gather_facts: Option<bool>,
    pub keywords: Map<String, Value>,
    /// Every role the play loads statically (`roles:`, `import_role`, their dependencies),
    /// whose defaults and vars every task sees.
    pub roles: Vec<Arc<RoleScope>>,
    pub pre_tasks: Vec<Task>,
    /// Role tasks followed by the play's own `tasks`.
    pub tasks: Vec<Task>,
    pub post_tasks: Vec<Task>,
    pub handlers: Vec<Task>,
    /// `serial`, `order`, `max_fail_percentage`, `strategy`.
    pub rollout: Rollout,
}

/// One `vars_files` entry: a file name, or alternatives of which the first found is read.
#[derive(Clone, Debug)]
pub struct VarsFile {
    pub alternatives: Vec<String>,
    pub mark: Mark,
}

impl VarsFile {
    fn list(node: &Node) -> Result<Vec<VarsFile>> {
        let entries: Vec<&Node> = match &node.kind {
            yaml::Kind::Seq(items) => items.iter().collect(),
            _ if node.is_null() => Vec::new(),
            _ => vec![node],
        };
        entries
            .into_iter()
            .map(|entry| {
                let alternatives = match &entry.kind {
                    yaml::Kind::Seq(_) => string_list(entry, "a vars_files entry")?,
                    yaml::Kind::Scalar(Value::String(name)) => vec![name.clone()],
                    _ => {
                        return Err(Error::invalid(
                            &entry.mark,
                            "a vars_files entry is a file name or a list of alternatives",
                        ));
                    }
                };
                Ok(VarsFile { alternatives, mark: entry.mark.clone() })
            })
            .collect()
    }
}

const PLAY_KEYWORDS: &[&str] = &[
    "name",
    "hosts",
    "vars",
    "vars_files",
    "gather_facts",
    "roles",
    "tasks",
    "pre_tasks",
    "post_tasks",
    "handlers",
    "become",
    "become_user",
    "become_method",
    "remote_user",
    "port",
    "connection",
    "environment",
    "serial",
    "max_fail_percentage",
    "any_errors_fatal",
    "ignore_errors",
    "ignore_unreachable",
    "tags",
    "strategy",
    "check_mode",
    "diff",
    "collections",
    "module_defaults",
    "order",
    "force_handlers",
    "gather_subset",
    "gather_timeout",
    "no_log",
    "run_once",
    "throttle",
    "timeout",
    "vars_prompt",
    "fact_path",
    "debugger",
    "become_flags",
    "become_exe",
];

/// Play keywords bramble reads but does not act on yet; using one is an error, not a silent skip.
const PLAY_KEYWORDS_UNSUPPORTED: &[&str] = &["module_defaults", "debugger"];

impl Playbook {
    pub fn load(path: &Path) -> Result<Playbook> {
        if !path.is_file() {
            // ansible-playbook exits 1 here, not with its bad-options code.
            return Err(Error::FileMissing {
                message: format!("the playbook: {} could not be found", path.display()),
            });
        }
        let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let path = absolute.as_path();
        let root = yaml::load_file(path)?;
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let Some(items) = root.as_seq() else {
            return Err(Error::invalid(
                &root.mark,
                format!("a playbook must be a list of plays, found a {}", root.type_name()),
            ));
        };
        let mut plays = Vec::new();
        for item in items {
            if let Some(imported) = item.get("import_playbook") {
                let name = imported.as_str().ok_or_else(|| {
                    Error::invalid(&imported.mark, "import_playbook expects a file name")
                })?;
                let path = base.join(name);
                plays.extend(importing(&path, &imported.mark, || Playbook::load(&path))?.plays);
                continue;
            }
            plays.push(Play::load(item, &base)?);
        }
        Ok(Playbook { path: path.to_path_buf(), plays })
    }
}

impl Play {
    fn load(node: &Node, base: &Path) -> Result<Play> {
        let Some(entries) = node.as_map() else {
            return Err(Error::invalid(
                &node.mark,
                format!("a play must be a mapping, found a {}", node.type_name()),
            ));
        };
        for (key, value) in entries {
            if !PLAY_KEYWORDS.contains(&key.as_str()) {
                return Err(unknown_keyword(
                    &key_mark(&value.mark, key),
                    key,
                    "Play",
                    PLAY_KEYWORDS,
                ));
            }
            if PLAY_KEYWORDS_UNSUPPORTED.contains(&key.as_str()) {
                return Err(Error::NotSupported {
                    what: format!("{}: the play keyword `{key}`", value.mark.location()),
                });
            }
        }
        let hosts = match node.get("hosts") {
            Some(hosts) => hosts_pattern(hosts)?,
            None => {
                return Err(Error::invalid(
                    &node.mark,
                    "this play has no `hosts:`; expected a host pattern such as `all`",
                ));
            }
        };
        let vars = mapping_or_empty(node.get("vars"), "vars")?;
        let vars_files = match node.get("vars_files") {
            None => Vec::new(),
            Some(files) => VarsFile::list(files)?,
        };
        let prompts = match node.get("vars_prompt") {
            None => Vec::new(),
            Some(list) => prompt::VarPrompt::list(list)?,
        };
        let gather_facts = match node.get("gather_facts").map(Node::to_value) {
            None => None,
            Some(Value::Bool(flag)) => Some(flag),
            Some(_) => {
                return Err(Error::invalid(
                    &node.get("gather_facts").map(|n| n.mark.clone()).unwrap_or(node.mark.clone()),
                    "gather_facts expects true or false",
                ));
            }
        };
        let mut keywords = Map::new();
        for key in [
            "become",
            "become_user",
            "become_method",
            "remote_user",
            "port",
            "connection",
            "environment",
            "ignore_errors",
            "any_errors_fatal",
            "check_mode",
            "diff",
            "force_handlers",
            "tags",
            "throttle",
            "timeout",
        ] {
            if let Some(value) = node.get(key) {
                keywords.insert(key.to_string(), value.to_value());
            }
        }

        // Role tasks come first; a role's handlers join the play's, ahead of its own.
        let mut tasks = Vec::new();
        if let Some(list) = node.get("roles") {
            let entries =
                list.as_seq().ok_or_else(|| Error::invalid(&list.mark, "roles expects a list"))?;
            for entry in entries {
                tasks.extend(role::with_playbook_dir(base, || Role::load(entry, base))?.tasks);
            }
        }
        let role_tasks = tasks.len();
        let load = |key: &str| {
            role::with_playbook_dir(base, || task::load_list(node.get(key), base, None))
        };
        let pre_tasks = load("pre_tasks")?;
        tasks.extend(load("tasks")?);
        let post_tasks = load("post_tasks")?;
        let own_handlers = load("handlers")?;
        let mut roles = Vec::new();
        role::scopes_in(&tasks[..role_tasks], &mut roles);
        for list in [&pre_tasks, &tasks[role_tasks..].to_vec(), &post_tasks] {
            role::scopes_in(list, &mut roles);
        }
        let mut handlers = Vec::new();
        for scope in &roles {
            role::add_handlers(&mut handlers, scope);
        }
        handlers.extend(own_handlers);
        Ok(Play {
            name: node.get("name").map(|n| display_string(&n.to_value())),
            hosts,
            mark: node.mark.clone(),
            vars,
            vars_files,
            prompts,
            gather_facts,
            keywords,
            roles,
            pre_tasks,
            tasks,
            post_tasks,
            handlers,
            rollout: Rollout::load(node)?,
        })
    }
}

fn hosts_pattern(node: &Node) -> Result<String> {
    match node.to_value() {
        Value::String(pattern) => Ok(pattern),
        Value::Array(items) => Ok(items.iter().map(display_string).collect::<Vec<_>>().join(",")),
        _ => Err(Error::invalid(&node.mark, "hosts expects a pattern string or a list of them")),
    }
}

thread_local! {
    /// The files being imported now, outermost first, to catch an import cycle.
    static IMPORTING: std::cell::RefCell<Vec<PathBuf>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Loads an imported file (`import_playbook`, `import_tasks`), refusing one that is already
/// being imported further out: a cycle would never end.
pub fn importing<T>(path: &Path, mark: &Mark, load: impl FnOnce() -> Result<T>) -> Result<T> {
    let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let cycle = IMPORTING.with(|stack| {
        let stack = stack.borrow();
        stack.contains(&key).then(|| {
            stack.iter().chain([&key]).map(|p| p.display().to_string()).collect::<Vec<_>>()
        })
    });
    if let Some(chain) = cycle {
        return Err(Error::invalid(
            mark,
            format!("import cycle: {}; an import may not lead back to itself", chain.join(" -> ")),
        ));
    }
    IMPORTING.with(|stack| stack.borrow_mut().push(key));
    let loaded = load();
    IMPORTING.with(|stack| stack.borrow_mut().pop());
    loaded
}

/// A `vars:`-like section: a mapping, nothing, or an error pointing at it.
pub fn mapping_or_empty(node: Option<&Node>, what: &str) -> Result<Map<String, Value>> {
    match node.map(|node| (node, node.to_value())) {
        None | Some((_, Value::Null)) => Ok(Map::new()),
        Some((_, Value::Object(map))) => Ok(map),
        Some((node, _)) => Err(Error::invalid(
            &node.mark,
            format!("{what} expects a mapping, found a {}", node.type_name()),
        )),
    }
}

/// One string or a list of them.
pub fn string_list(node: &Node, what: &str) -> Result<Vec<String>> {
    match node.to_value() {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => Ok(items.iter().map(display_string).collect()),
        Value::String(text) => Ok(vec![text]),
        _ => {
            Err(Error::invalid(&node.mark, format!("{what} expects a string or a list of strings")))
        }
    }
}

/// How a scalar reads as text (strings bare, everything else as JSON).
pub fn display_string(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// "unknown keyword", with the closest known keyword suggested.
pub fn unknown_keyword(mark: &Mark, key: &str, scope: &str, known: &[&str]) -> Error {
    let hint =
        closest(key, known).map(|best| format!("; did you mean `{best}`?")).unwrap_or_default();
    Error::invalid(mark, format!("'{key}' is not a valid attribute for a {scope}{hint}"))
}

/// Where `key:` is written, found from its value's position (the value's own line, or for a
/// nested block the lines just above it), as ansible-core points at the key.
pub fn key_mark(value: &Mark, key: &str) -> Mark {
    let lines: Vec<&str> = value.source.text.lines().collect();
    let wanted = format!("{key}:");
    for line in (value.line.saturating_sub(3).max(1)..=value.line).rev() {
        if let Some(index) = lines.get(line - 1).and_then(|text| text.find(&wanted)) {
            return Mark { source: value.source.clone(), line, column: index + 1 };
        }
    }
    value.clone()
}

/// The candidate within a small edit distance of `word`, if any.
pub fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|candidate| (edit_distance(word, candidate), *candidate))
        .filter(|(distance, candidate)| *distance <= 2.max(candidate.len() / 4))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Edits between two words, a swap of neighbours counting as one (the commonest typo:
/// `cpoy` is one edit from `copy` and two from `cron`).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // rows[i][j]: edits between a[..i] and b[..j]; only the last two rows are needed.
    let mut before: Vec<usize> = Vec::new();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut current = vec![i];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (previous[j - 1] + cost).min(previous[j] + 1).min(current[j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(before[j - 2] + 1);
            }
            current.push(best);
        }
        before = std::mem::replace(&mut previous, current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn an_import_cycle_is_an_error_not_a_stack_overflow() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("self.yml"), "- import_playbook: self.yml\n").unwrap();
        let error = super::Playbook::load(&dir.path().join("self.yml")).unwrap_err().to_string();
        assert!(error.contains("import cycle") && error.contains("self.yml:1"), "{error}");
        let play = "- hosts: all\n  tasks:\n    - import_tasks: a.yml\n";
        std::fs::write(dir.path().join("site.yml"), play).unwrap();
        std::fs::write(dir.path().join("a.yml"), "- import_tasks: b.yml\n").unwrap();
        std::fs::write(dir.path().join("b.yml"), "- debug: msg=x\n- import_tasks: a.yml\n")
            .unwrap();
        let error = super::Playbook::load(&dir.path().join("site.yml")).unwrap_err().to_string();
        assert!(error.contains("a.yml -> ") && error.contains("b.yml:2"), "{error}");
        // The same file imported twice, one after the other, is no cycle.
        std::fs::write(dir.path().join("b.yml"), "- debug: msg=x\n").unwrap();
        let twice =
            "- hosts: all\n  tasks:\n    - import_tasks: b.yml\n    - import_tasks: b.yml\n";
        std::fs::write(dir.path().join("site.yml"), twice).unwrap();
        assert!(super::Playbook::load(&dir.path().join("site.yml")).is_ok());
    }

    #[test]
    fn a_swap_of_neighbours_is_the_nearest_suggestion() {
        assert_eq!(closest("cpoy", &["cron", "copy"]), Some("copy"));
        assert_eq!(closest("whn", &["when", "with_items"]), Some("when"));
        assert_eq!(closest("tepmlate", &["template", "tempfile"]), Some("template"));
        assert_eq!(closest("zzzzzz", &["copy"]), None);
    }
}
