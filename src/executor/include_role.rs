//! `include_role`: the arguments are templated per host (and loop item) when the task runs,
//! the role is loaded then, and hosts that asked for the same role run its tasks together.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::{Inherited, PlayScope, Runner, vars};
use crate::output::Status;
use crate::playbook::role::{self, Role, RoleReference};
use crate::playbook::{Task, display_string};
use crate::template::Context;

/// One role to include, for the hosts that asked for it with the same arguments and item.
struct Included {
    args: Map<String, Value>,
    item: Option<(String, Value)>,
    hosts: Vec<String>,
}

impl Runner<'_> {
    pub(super) async fn include_role(
        &mut self,
        task: &Task,
        args: &Map<String, Value>,
        scope: &mut PlayScope,
        inherited: &Inherited,
        hosts: &[String],
    ) {
        let display = &self.shared.display;
        display.banner(&format!("TASK [{}]", task.display_name()));
        self.refresh_scope(scope);

        let mut included: Vec<Included> = Vec::new();
        for host in hosts {
            match self.role_arguments(task, args, scope, inherited, host) {
                Ok(None) => {
                    display.print(&format!("skipping: [{host}]"));
                    self.stats.entry(host.clone()).or_default().count(Status::Skipped, false);
                }
                Ok(Some(requests)) => {
                    for (args, item) in requests {
                        match included.iter_mut().find(|i| i.args == args && i.item == item) {
                            Some(entry) => entry.hosts.push(host.clone()),
                            None => {
                                included.push(Included { args, item, hosts: vec![host.clone()] })
                            }
                        }
                    }
                }
                Err(message) => self.fail_include(host, &message),
            }
        }

        let mut loaded = Vec::new();
        for entry in included {
            let reference = RoleReference::from_arguments(&entry.args, &task.mark, "include_role")
                .map(|mut reference| {
                    reference.vars = include_layer(task, &entry);
                    reference
                })
                .map_err(|error| error.to_string());
            let playbook_dir = &self.shared.playbook_dir;
            let role = reference.and_then(|reference| {
                role::with_playbook_dir(playbook_dir, || {
                    Role::from_reference(&reference, playbook_dir, task.role.as_ref())
                })
                .map_err(|error| match error {
                    crate::error::Error::RoleNotFound { message, .. } => message,
                    other => other.to_string(),
                })
            });
            match role {
                Ok(role) => {
                    let label = match &entry.item {
                        Some((_, item)) => format!(" => (item={})", item_label(item)),
                        None => String::new(),
                    };
                    display.print(&format!(
                        "included: {} for {}{label}",
                        role.scope.name,
                        entry.hosts.join(", ")
                    ));
                    for host in &entry.hosts {
                        self.stats.entry(host.clone()).or_default().count(Status::Ok, false);
                    }
                    loaded.push((entry, role));
                }
                Err(message) => {
                    for host in &entry.hosts {
                        self.fail_include(host, &message);
                    }
                }
            }
        }

        for (entry, role) in loaded {
            let mut scopes = Vec::new();
            role::scopes_in(&role.tasks, &mut scopes);
            for role_scope in &scopes {
                role::add_handlers(&mut scope.handlers, role_scope);
            }
            // `public: true` exposes the role's defaults and vars to the rest of the play.
            if entry.args.get("public").and_then(crate::modules::args_to_bool) == Some(true) {
                for role_scope in scopes {
                    if !scope.roles.iter().any(|known| Arc::ptr_eq(known, &role_scope)) {
                        scope.roles.push(role_scope);
                    }
                }
            }
            let inner = self.included_scope(task, &entry, inherited);
            self.run_list(&role.tasks, scope, &inner, Some(&entry.hosts)).await;
        }
    }

    /// What the role's tasks inherit: the include's vars, the loop item, and `apply`.
    fn included_scope(&self, task: &Task, entry: &Included, inherited: &Inherited) -> Inherited {
        let mut inner = inherited.clone();
        inner.vars.push(include_layer(task, entry));
        if let Some(Value::Object(apply)) = entry.args.get("apply") {
            for (key, value) in apply {
                match key.as_str() {
                    "tags" => inner.tags.extend(crate::playbook::tags::parse(value)),
                    "when" => inner.when.push(value.clone()),
                    "vars" => {
                        if let Value::Object(vars) = value {
                            inner.vars.push(vars.clone());
                        }
                    }
                    _ => {
                        inner.keywords.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        inner
    }

    /// The templated arguments (one set per loop item) one host includes the role with, or
    /// `None` when its conditions skip the include.
    #[allow(clippy::type_complexity)]
    fn role_arguments(
        &self,
        task: &Task,
        args: &Map<String, Value>,
        scope: &PlayScope,
        inherited: &Inherited,
        host: &str,
    ) -> Result<Option<Vec<(Map<String, Value>, Option<(String, Value)>)>>, String> {
        let templar = &self.shared.templar;
        let state = &self.hosts[host];
        let vars = vars::assemble(self.shared, scope, state, Some(task), &inherited.vars);
        let context = Context::new(vars.clone(), templar.clone());

        let mut conditions: Vec<Value> = inherited.when.clone();
        conditions.extend(task.role.as_ref().and_then(|role| role.when.clone()));
        conditions.extend(task.keywords.get("when").cloned());
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
            Some(items) => match templar.render_value(items, &context) {
                Ok(Value::Array(items)) => {
                    items.into_iter().map(|item| Some((loop_var.clone(), item))).collect()
                }
                Ok(_) => return Err("Invalid data passed to 'loop', it requires a list".into()),
                Err(error) => return Err(error.to_string()),
            },
        };
        let mut requests = Vec::new();
        for item in items {
            let mut item_vars = vars.clone();
            if let Some((name, value)) = &item {
                item_vars.insert(name.clone(), value.clone());
            }
            let context = Context::new(item_vars, templar.clone());
            // `apply` is kept as written: its keywords are templated by the tasks that get them.
            let mut rendered = Map::new();
            for (key, value) in args {
                let value = if key == "apply" {
                    value.clone()
                } else {
                    templar.render_value(value, &context).map_err(|e| e.to_string())?
                };
                rendered.insert(key.clone(), value);
            }
            requests.push((rendered, item));
        }
        Ok(Some(requests))
    }

    /// A role that cannot be included fails the host, with the reason Ansible gives.
    fn fail_include(&mut self, host: &str, message: &str) {
        let result = crate::modules::result([
            ("changed", Value::Bool(false)),
            ("reason", Value::from(message.to_string())),
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

/// The include task's own `vars:` and its loop variable.
fn include_layer(task: &Task, entry: &Included) -> Map<String, Value> {
    let mut layer = match task.keywords.get("vars") {
        Some(Value::Object(vars)) => vars.clone(),
        _ => Map::new(),
    };
    if let Some((name, item)) = &entry.item {
        layer.insert(name.clone(), item.clone());
        layer.insert("ansible_loop_var".into(), Value::from(name.clone()));
    }
    layer
}

fn item_label(item: &Value) -> String {
    match item {
        Value::String(text) => text.clone(),
        other => crate::output::python_repr(other),
    }
}
