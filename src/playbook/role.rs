//! Roles in Ansible's standard layout: defaults, vars, tasks, handlers, templates, files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};

use super::task::{self, Task};
use crate::error::{Error, Result};
use crate::yaml::{self, Node};

/// What a role's tasks need at run time: where its files live and its variables.
#[derive(Debug)]
pub struct RoleScope {
    pub name: String,
    pub path: PathBuf,
    pub defaults: Map<String, Value>,
    pub vars: Map<String, Value>,
    /// Variables given where the role is listed (`- role: x` with `foo: 1`).
    pub params: Map<String, Value>,
    /// A `when:` on the role entry, applied to each of its tasks.
    pub when: Option<Value>,
    /// `tags:` on the role entry, inherited by each of its tasks.
    pub tags: Vec<String>,
}

/// A loaded role: its scope and its tasks and handlers.
#[derive(Debug)]
pub struct Role {
    pub scope: Arc<RoleScope>,
    pub tasks: Vec<Task>,
    pub handlers: Vec<Task>,
}

impl Role {
    /// Loads a role named by a `roles:` entry, searched under `<base>/roles` then `<base>`.
    pub fn load(entry: &Node, base: &Path) -> Result<Role> {
        let (name, mut params, when) = match entry.as_str() {
            Some(name) => (name.to_string(), Map::new(), None),
            None => entry_parts(entry)?,
        };
        let tags = params.remove("tags").map(|t| super::tags::parse(&t)).unwrap_or_default();
        let candidates = [base.join("roles").join(&name), base.join(&name)];
        let Some(path) = candidates
            .iter()
            .find(|path| path.join("tasks").is_dir() || path.join("meta").is_dir())
        else {
            let searched =
                candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
            return Err(Error::RoleNotFound { name, searched });
        };
        refuse_dependencies(path)?;
        if let Some(Value::Object(vars)) = params.remove("vars") {
            params.extend(vars);
        }
        let scope = Arc::new(RoleScope {
            name: name.clone(),
            path: path.clone(),
            defaults: main_vars(&path.join("defaults"))?,
            vars: main_vars(&path.join("vars"))?,
            params,
            when,
            tags,
        });
        let tasks = main_tasks(&path.join("tasks"), &scope)?;
        let handlers = main_tasks(&path.join("handlers"), &scope)?;
        Ok(Role { scope, tasks, handlers })
    }
}

fn entry_parts(entry: &Node) -> Result<(String, Map<String, Value>, Option<Value>)> {
    let mut params = match entry.to_value() {
        Value::Object(map) => map,
        _ => {
            return Err(Error::invalid(
                &entry.mark,
                "a roles entry is a role name or a mapping with `role:`",
            ));
        }
    };
    let name = params
        .remove("role")
        .or_else(|| params.remove("name"))
        .and_then(|value| value.as_str().map(str::to_string))
        .ok_or_else(|| Error::invalid(&entry.mark, "this roles entry has no `role:` name"))?;
    for key in ["become", "become_user"] {
        if params.contains_key(key) {
            return Err(Error::NotSupported {
                what: format!("{}: `{key}` on a roles entry", entry.mark.location()),
            });
        }
    }
    let when = params.remove("when");
    Ok((name, params, when))
}

fn refuse_dependencies(path: &Path) -> Result<()> {
    for file in ["main.yml", "main.yaml"] {
        let meta = path.join("meta").join(file);
        if meta.is_file() {
            let node = yaml::load_file(&meta)?;
            if let Some(dependencies) = node.get("dependencies")
                && dependencies.as_seq().is_some_and(|list| !list.is_empty())
            {
                return Err(Error::NotSupported {
                    what: format!(
                        "{}: role dependencies in meta/main.yml",
                        dependencies.mark.location()
                    ),
                });
            }
        }
    }
    Ok(())
}

fn main_file(directory: &Path) -> Option<PathBuf> {
    ["main.yml", "main.yaml", "main"]
        .iter()
        .map(|name| directory.join(name))
        .find(|path| path.is_file())
}

fn main_vars(directory: &Path) -> Result<Map<String, Value>> {
    if main_file(directory).is_none() && directory.join("main").is_dir() {
        return crate::inventory::read_vars_public(directory, "main");
    }
    match main_file(directory) {
        None => Ok(Map::new()),
        Some(path) => {
            let node = yaml::load_file(&path)?;
            match node.to_value() {
                Value::Object(map) => Ok(map),
                Value::Null => Ok(Map::new()),
                _ => Err(Error::invalid(&node.mark, "expected a mapping of variables")),
            }
        }
    }
}

fn main_tasks(directory: &Path, scope: &Arc<RoleScope>) -> Result<Vec<Task>> {
    match main_file(directory) {
        None => Ok(Vec::new()),
        Some(path) => task::load_file(&path, Some(scope)),
    }
}
