//! `include_tasks`: the file name is templated per host (and per loop item) when the task
//! runs; hosts that include the same file with the same item then run its tasks together.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::{Inherited, PlayScope, Runner, vars};
use crate::output::Status;
use crate::playbook::{Task, display_string, task};
use crate::template::Context;

/// One file to include, for the hosts that asked for it with the same loop item.
struct Included {
    path: PathBuf,
    item: Option<(String, Value)>,
    hosts: Vec<String>,
}

impl Runner<'_> {
    pub(super) async fn include(
        &mut self,
        task: &Task,
        file: &str,
        base: &Path,
        scope: &mut PlayScope,
        inherited: &Inherited,
        hosts: &[String],
    ) {
        let display = &self.shared.display;
        display.banner(&format!("TASK [{}]", task.display_name()));
        self.refresh_scope(scope);

        let mut included: Vec<Included> = Vec::new();
        for host in hosts {
            match self.resolve(task, file, base, scope, inherited, host) {
                Ok(None) => {
                    display.print(&format!("skipping: [{host}]"));
                    self.stats.entry(host.clone()).or_default().count(Status::Skipped, false);
                }
                Ok(Some(files)) => {
                    for (path, item) in files {
                        match included.iter_mut().find(|i| i.path == path && i.item == item) {
                            Some(entry) => entry.hosts.push(host.clone()),
                            None => {
                                included.push(Included { path, item, hosts: vec![host.clone()] })
                            }
                        }
                    }
                }
                Err(message) => self.fail_host(host, &message),
            }
        }

        for entry in &included {
            let label = match &entry.item {
                Some((_, item)) => format!(" => (item={})", item_label(item)),
                None => String::new(),
            };
            display.print(&format!(
                "included: {} for {}{label}",
                entry.path.display(),
                entry.hosts.join(", ")
            ));
            for host in &entry.hosts {
                self.stats.entry(host.clone()).or_default().count(Status::Ok, false);
            }
        }
        for entry in included {
            let tasks = match task::load_file(&entry.path, task.role.as_ref()) {
                Ok(tasks) => tasks,
                Err(error) => {
                    for host in &entry.hosts {
                        self.fail_host(host, &error.to_string());
                    }
                    continue;
                }
            };
            // The include's own `when` and `tags` stay on the include; its vars and the
            // loop item reach the included tasks.
            let mut inner = inherited.clone();
            let mut layer = match task.keywords.get("vars") {
                Some(Value::Object(vars)) => vars.clone(),
                _ => Map::new(),
            };
            if let Some((name, item)) = &entry.item {
                layer.insert(name.clone(), item.clone());
                layer.insert("ansible_loop_var".into(), Value::from(name.clone()));
            }
            inner.vars.push(layer);
            self.run_list(&tasks, scope, &inner, Some(&entry.hosts)).await;
        }
    }

    /// The files one host includes, or `None` when its conditions skip the include.
    #[allow(clippy::type_complexity)]
    fn resolve(
        &self,
        task: &Task,
        file: &str,
        base: &Path,
        scope: &PlayScope,
        inherited: &Inherited,
        host: &str,
    ) -> Result<Option<Vec<(PathBuf, Option<(String, Value)>)>>, String> {
        let templar = &self.shared.templar;
        let state = &self.hosts[host];
        let vars = vars::assemble(self.shared, scope, state, Some(task), &inherited.vars);
        let context = Context::new(vars.clone(), templar.clone());

        let mut conditions: Vec<Value> = inherited.when.clone();
        if let Some(when) = task.role.as_ref().and_then(|role| role.when.clone()) {
            conditions.push(when);
        }
        if let Some(when) = task.keywords.get("when") {
            conditions.push(when.clone());
        }
        for condition in conditions.iter().flat_map(|c| match c {
            Value::Array(items) => items.clone(),
            other => vec![other.clone()],
        }) {
            let expression = match &condition {
                Value::Bool(flag) => flag.to_string(),
                other => display_string(other),
            };
            if !templar.condition(&expression, &context).map_err(|e| e.to_string())? {
                return Ok(None);
            }
        }

        let loop_var = match task.keywords.get("loop_control") {
            Some(Value::Object(control)) => control.get("loop_var").map(display_string),
            _ => None,
        }
        .unwrap_or_else(|| "item".into());
        let items: Vec<Option<(String, Value)>> = match task.keywords.get("loop") {
            None => vec![None],
            Some(items) => {
                super::host_task::loop_items(templar, task, "include_tasks", items, &context)?
                    .into_iter()
                    .map(|item| Some((loop_var.clone(), item)))
                    .collect()
            }
        };
        let mut files = Vec::new();
        for item in items {
            let mut item_vars = vars.clone();
            if let Some((name, value)) = &item {
                item_vars.insert(name.clone(), value.clone());
            }
            let context = Context::new(item_vars, templar.clone());
            let name = templar.render_string(file, &context).map_err(|e| e.to_string())?;
            let path = base.join(display_string(&name));
            let path = std::fs::canonicalize(&path).unwrap_or(path);
            files.push((path, item));
        }
        Ok(Some(files))
    }

    fn fail_host(&mut self, host: &str, message: &str) {
        let result = crate::modules::result([
            ("changed", Value::Bool(false)),
            ("msg", Value::from(message.to_string())),
        ]);
        self.shared.display.print(&format!(
            "fatal: [{host}]: FAILED! => {}",
            crate::output::python_json(&Value::Object(result), None, true)
        ));
        if let Some(state) = self.hosts.get_mut(host) {
            state.failed = true;
        }
        self.stats.entry(host.to_string()).or_default().count(Status::Failed, false);
    }
}

fn item_label(item: &Value) -> String {
    match item {
        Value::String(text) => text.clone(),
        other => crate::output::python_repr(other),
    }
}
