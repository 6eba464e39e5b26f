//! Roles in Ansible's standard layout (defaults, vars, tasks, handlers, meta), found on the
//! roles path, with their `meta/main.yml` dependencies laid out before their own tasks.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value};

use super::task::{self, Task, TaskBody};
use crate::error::{Error, Mark, Result};
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
    /// The `when:` of the role entry and of the roles that depend on it, applied to each task.
    pub when: Option<Value>,
    /// `tags:` of the role entry and of the roles that depend on it, inherited by each task.
    pub tags: Vec<String>,
    /// Two references with the same identity are one role, run once per host and play.
    pub identity: String,
    /// `allow_duplicates: true` in meta (or on include_role): run every time it is listed.
    pub allow_duplicates: bool,
    /// The role whose `dependencies:` brought this one in; its variables reach this one.
    pub parent: Option<Arc<RoleScope>>,
    /// The role's own handlers (not its dependencies').
    pub handlers: OnceLock<Vec<Task>>,
}

impl RoleScope {
    /// This role and the roles that depend on it, outermost first: variable layers in order.
    pub fn chain(&self) -> Vec<&RoleScope> {
        let mut chain = vec![self];
        let mut current = self;
        while let Some(parent) = &current.parent {
            chain.push(parent);
            current = parent;
        }
        chain.reverse();
        chain
    }
}

/// Which files of a role to read instead of `main`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct FromFiles {
    pub tasks: Option<String>,
    pub vars: Option<String>,
    pub defaults: Option<String>,
    pub handlers: Option<String>,
}

/// A reference to a role: a `roles:` entry, a dependency, `import_role` or `include_role`.
#[derive(Clone, Debug)]
pub struct RoleReference {
    pub name: String,
    pub params: Map<String, Value>,
    pub when: Option<Value>,
    pub tags: Vec<String>,
    pub from: FromFiles,
    pub from_include: bool,
    /// Set by include_role/import_role's `allow_duplicates`, over the role's meta.
    pub allow_duplicates: Option<bool>,
    /// Where the reference is written, for "not found" errors.
    pub mark: Mark,
    /// An include_role's own `vars:` and loop variable: part of the role's identity.
    pub vars: Map<String, Value>,
}

/// A loaded role: its scope and its tasks, dependencies' first, ending with the marker
/// that records the role as done for each host.
#[derive(Debug)]
pub struct Role {
    pub scope: Arc<RoleScope>,
    pub tasks: Vec<Task>,
}

/// The argument of the hidden `meta` task that ends each role's task list.
pub const ROLE_COMPLETE: &str = "role_complete";

thread_local! {
    /// The directory of the playbook being loaded, where role names are looked up first.
    static PLAYBOOK_DIR: RefCell<Option<PathBuf>> = const { RefCell::new(None) };
}

/// Runs `load` with `directory` as the playbook directory for role lookups.
pub fn with_playbook_dir<T>(directory: &Path, load: impl FnOnce() -> T) -> T {
    let previous = PLAYBOOK_DIR.with(|dir| dir.replace(Some(directory.to_path_buf())));
    let result = load();
    PLAYBOOK_DIR.with(|dir| *dir.borrow_mut() = previous);
    result
}

/// The playbook directory set by [`with_playbook_dir`], or the current directory.
pub fn playbook_dir() -> PathBuf {
    PLAYBOOK_DIR.with(|dir| dir.borrow().clone()).unwrap_or_else(|| PathBuf::from("."))
}

impl Role {
    /// Loads a role named by a `roles:` entry.
    pub fn load(entry: &Node, base: &Path) -> Result<Role> {
        let reference = RoleReference::from_entry(entry)?;
        Role::from_reference(&reference, base, None)
    }

    /// Finds and loads the role a reference names, with its dependencies.
    pub fn from_reference(
        reference: &RoleReference,
        base: &Path,
        parent: Option<&Arc<RoleScope>>,
    ) -> Result<Role> {
        let path = find(&reference.name, base, parent, &reference.mark)?;
        let meta = Meta::read(&path)?;
        let name = if reference.name.contains('/') {
            path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
        } else {
            reference.name.clone()
        };
        let from = &reference.from;
        let mut when: Vec<Value> = parent.and_then(|p| p.when.clone()).into_iter().collect();
        when.extend(reference.when.clone());
        let mut tags = parent.map(|p| p.tags.clone()).unwrap_or_default();
        tags.extend(reference.tags.iter().cloned());
        let scope = Arc::new(RoleScope {
            name,
            identity: identity(&path, reference),
            // ansible-core runs an included or imported role every time, whatever its meta says.
            allow_duplicates: reference.from_include
                || reference.allow_duplicates.unwrap_or(meta.allow_duplicates),
            defaults: role_vars(&path, "defaults", from.defaults.as_deref(), &reference.mark)?,
            vars: role_vars(&path, "vars", from.vars.as_deref(), &reference.mark)?,
            path: path.clone(),
            params: reference.params.clone(),
            when: (!when.is_empty()).then_some(Value::Array(when)),
            tags,
            parent: parent.cloned(),
            handlers: OnceLock::new(),
        });

        let mut tasks = Vec::new();
        for entry in &meta.dependencies {
            let dependency = RoleReference::from_entry(entry)?;
            tasks.extend(Role::from_reference(&dependency, base, Some(&scope))?.tasks);
        }
        let own = role_file(&path, "tasks", from.tasks.as_deref(), &reference.mark)?;
        if let Some(file) = own {
            tasks.extend(task::load_file(&file, Some(&scope))?);
        }
        tasks.push(complete_marker(&scope, &reference.mark));
        let handlers =
            match role_file(&path, "handlers", from.handlers.as_deref(), &reference.mark)? {
                Some(file) => task::load_file(&file, Some(&scope))?,
                None => Vec::new(),
            };
        let _ = scope.handlers.set(handlers);
        Ok(Role { scope, tasks })
    }
}

impl RoleReference {
    /// A `roles:` or `dependencies:` entry: a name, or a mapping with `role:` and parameters.
    pub fn from_entry(entry: &Node) -> Result<RoleReference> {
        let mut reference = RoleReference {
            name: String::new(),
            params: Map::new(),
            when: None,
            tags: Vec::new(),
            from: FromFiles::default(),
            from_include: false,
            allow_duplicates: None,
            mark: entry.mark.clone(),
            vars: Map::new(),
        };
        if let Some(name) = entry.as_str() {
            reference.name = name.to_string();
            return Ok(reference);
        }
        let Value::Object(mut params) = entry.to_value() else {
            return Err(Error::invalid(
                &entry.mark,
                "a roles entry is a role name or a mapping with `role:`",
            ));
        };
        reference.name = params
            .remove("role")
            .or_else(|| params.remove("name"))
            .and_then(|value| value.as_str().map(str::to_string))
            .ok_or_else(|| Error::invalid(&entry.mark, "this roles entry has no `role:` name"))?;
        for key in ["become", "become_user", "become_method", "delegate_to"] {
            if params.contains_key(key) {
                return Err(Error::NotSupported {
                    what: format!("{}: `{key}` on a roles entry", entry.mark.location()),
                });
            }
        }
        reference.when = params.remove("when");
        reference.tags = params.remove("tags").map(|t| super::tags::parse(&t)).unwrap_or_default();
        if let Some(Value::Object(vars)) = params.remove("vars") {
            params.extend(vars);
        }
        reference.params = params;
        Ok(reference)
    }

    /// The arguments of `import_role` / `include_role` (already templated for the latter).
    pub fn from_arguments(
        arguments: &Map<String, Value>,
        mark: &Mark,
        what: &str,
    ) -> Result<RoleReference> {
        let text = |key: &str| arguments.get(key).map(super::display_string);
        let name = text("name")
            .or_else(|| text("role"))
            .ok_or_else(|| Error::invalid(mark, format!("{what} expects `name:`, the role")))?;
        for key in arguments.keys() {
            let known = [
                "name",
                "role",
                "tasks_from",
                "vars_from",
                "defaults_from",
                "handlers_from",
                "public",
                "allow_duplicates",
                "rolespec_validate",
                "apply",
            ];
            if !known.contains(&key.as_str()) {
                return Err(Error::invalid(mark, format!("Invalid options for {what}: {key}")));
            }
        }
        let allow_duplicates = match arguments.get("allow_duplicates") {
            None => None,
            Some(value) => Some(crate::modules::args_to_bool(value).ok_or_else(|| {
                Error::invalid(mark, format!("{what}: allow_duplicates expects a boolean"))
            })?),
        };
        Ok(RoleReference {
            name,
            params: Map::new(),
            when: None,
            tags: Vec::new(),
            from: FromFiles {
                tasks: text("tasks_from"),
                vars: text("vars_from"),
                defaults: text("defaults_from"),
                handlers: text("handlers_from"),
            },
            from_include: true,
            allow_duplicates,
            mark: mark.clone(),
            vars: Map::new(),
        })
    }
}

/// Ansible's search: `roles/` beside the playbook, the roles path, the depending role's own
/// directory, the playbook's directory, then the name as a path.
pub fn search_paths(base: &Path, parent: Option<&Arc<RoleScope>>) -> Vec<PathBuf> {
    let mut paths = vec![base.join("roles")];
    match crate::config::current() {
        Ok(config) => paths.extend(config.roles_path.iter().cloned()),
        Err(_) => paths.extend(crate::config::default_roles_path()),
    }
    if let Some(parent) = parent {
        paths.push(parent.path.clone());
    }
    paths.push(base.to_path_buf());
    paths
}

fn find(name: &str, base: &Path, parent: Option<&Arc<RoleScope>>, mark: &Mark) -> Result<PathBuf> {
    let paths = search_paths(base, parent);
    let found = paths
        .iter()
        .map(|directory| directory.join(name))
        .chain([PathBuf::from(name)])
        .find(|candidate| candidate.is_dir());
    match found {
        Some(path) => Ok(std::fs::canonicalize(&path).unwrap_or(path)),
        None => {
            let searched =
                paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":");
            Err(Error::RoleNotFound {
                mark: mark.clone(),
                message: format!("the role '{name}' was not found in {searched}"),
            })
        }
    }
}

/// The identity Ansible compares roles by: path, parameters, conditions, tags, files read,
/// and whether an include brought it in.
fn identity(path: &Path, reference: &RoleReference) -> String {
    serde_json::json!({
        "path": path.display().to_string(),
        "params": reference.params,
        "when": reference.when,
        "tags": reference.tags,
        "from": reference.from,
        "from_include": reference.from_include,
        "vars": reference.vars,
    })
    .to_string()
}

/// What `meta/main.yml` says about running the role.
#[derive(Default)]
struct Meta {
    dependencies: Vec<Node>,
    allow_duplicates: bool,
}

impl Meta {
    fn read(path: &Path) -> Result<Meta> {
        let Some(file) = main_file(&path.join("meta"), "main") else {
            return Ok(Meta::default());
        };
        let node = yaml::load_file(&file)?;
        let mut meta = Meta::default();
        if let Some(dependencies) = node.get("dependencies") {
            match dependencies.as_seq() {
                Some(list) => meta.dependencies = list.to_vec(),
                None if dependencies.is_null() => {}
                None => {
                    return Err(Error::invalid(&dependencies.mark, "dependencies expects a list"));
                }
            }
        }
        if let Some(flag) = node.get("allow_duplicates") {
            meta.allow_duplicates = crate::modules::args_to_bool(&flag.to_value())
                .ok_or_else(|| Error::invalid(&flag.mark, "allow_duplicates expects a boolean"))?;
        }
        Ok(meta)
    }
}

/// `<directory>/<name>`, `.yml`, `.yaml` or `.json`, the first that is a file.
fn main_file(directory: &Path, name: &str) -> Option<PathBuf> {
    ["", ".yml", ".yaml", ".json"]
        .iter()
        .map(|extension| directory.join(format!("{name}{extension}")))
        .find(|path| path.is_file())
}

/// The file of a role's `tasks`/`handlers`/`vars`/`defaults` to read: `main`, absent being
/// fine, or the one named by `*_from`, which must exist.
fn role_file(role: &Path, kind: &str, from: Option<&str>, mark: &Mark) -> Result<Option<PathBuf>> {
    let directory = role.join(kind);
    match from {
        None => Ok(main_file(&directory, "main")),
        Some(name) => match main_file(&directory, name) {
            Some(path) => Ok(Some(path)),
            None => Err(Error::invalid(
                mark,
                format!(
                    "Could not find specified file in role: {kind}/{name} (in {})",
                    role.display()
                ),
            )),
        },
    }
}

fn role_vars(
    role: &Path,
    kind: &str,
    from: Option<&str>,
    mark: &Mark,
) -> Result<Map<String, Value>> {
    let directory = role.join(kind);
    if from.is_none() && main_file(&directory, "main").is_none() && directory.join("main").is_dir()
    {
        return crate::inventory::read_vars_public(&directory, "main");
    }
    let Some(path) = role_file(role, kind, from, mark)? else { return Ok(Map::new()) };
    let node = yaml::load_file(&path)?;
    match node.to_value() {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(Map::new()),
        _ => Err(Error::invalid(&node.mark, "expected a mapping of variables")),
    }
}

/// The hidden last task of a role: it records the role as done for the hosts that ran it.
fn complete_marker(scope: &Arc<RoleScope>, mark: &Mark) -> Task {
    Task {
        name: None,
        mark: mark.clone(),
        body: TaskBody::Module {
            module: "meta",
            args: Map::from_iter([("_raw_params".to_string(), Value::from(ROLE_COMPLETE))]),
        },
        keywords: Map::new(),
        role: Some(scope.clone()),
    }
}

/// Whether a task is a role's hidden completion marker.
pub fn is_complete_marker(task: &Task) -> bool {
    matches!(&task.body, TaskBody::Module { module: "meta", args }
        if args.get("_raw_params").and_then(Value::as_str) == Some(ROLE_COMPLETE))
}

/// Every role scope a task list uses, in order of first appearance, dependencies included.
pub fn scopes_in(tasks: &[Task], out: &mut Vec<Arc<RoleScope>>) {
    for task in tasks {
        if let Some(role) = &task.role
            && !out.iter().any(|known| Arc::ptr_eq(known, role))
        {
            out.push(role.clone());
        }
        if let TaskBody::Block { block, rescue, always } = &task.body {
            for section in [block, rescue, always] {
                scopes_in(section, out);
            }
        }
    }
}

/// Adds a role's handlers to a handler list, unless that role's are there already.
pub fn add_handlers(handlers: &mut Vec<Task>, scope: &RoleScope) {
    let own = scope.handlers.get().map(Vec::as_slice).unwrap_or_default();
    let present = handlers.iter().any(|handler| {
        handler.role.as_ref().is_some_and(|role| {
            role.path == scope.path
                && own.first().is_some_and(|first| first.mark.location() == handler.mark.location())
        })
    });
    if !present {
        handlers.extend(own.iter().cloned());
    }
}
