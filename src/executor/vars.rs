//! Variable precedence: which value a name has for one host at one task.
//!
//! Ansible layers 22 sources; bramble implements them lowest first, each layer overwriting
//! the one before (hash_behaviour=replace):
//!
//!  1. role defaults (every role of the play, then the task's own role again, so its own win;
//!     a dependency sees the roles that depend on it, outermost first)
//!  2. group vars: the inventory sources' own values, `all` first, then the host's other
//!     groups (by depth, then `ansible_group_priority`, then name); then, `all` first and
//!     the other groups after, `group_vars/` beside the inventory, then beside the playbook
//!  3. host vars: the inventory source's, then `host_vars/` beside the inventory, then
//!     beside the playbook
//!  4. gathered facts (as `ansible_facts` and as `ansible_<name>`)
//!  5. play `vars:`, then `vars_files`
//!  6. role `vars/` (every role, then the task's own)
//!  7. block `vars:` from the outermost block in, then the task's `vars:`
//!  8. `include_vars` results, then `set_fact` and `register` results (set_fact wins over
//!     include_vars whatever their order)
//!  9. the task role's parameters (`- role: x` with `foo: 1`)
//! 10. extra vars (`-e`), which always win
//!
//! Magic variables (`inventory_hostname`, `groups`, …) are set last; they are not meant to be
//! overridden. `hostvars` is not among them: templates read it from the run's one shared
//! store (`crate::template::Hostvars`), refreshed by the executor before each task.

use serde_json::{Map, Value};

use super::{HostState, PlayScope, Shared};
use crate::playbook::Task;

pub fn assemble(
    shared: &Shared,
    play: &PlayScope,
    host: &HostState,
    task: Option<&Task>,
    block_vars: &[Map<String, Value>],
) -> Map<String, Value> {
    let mut vars = Map::new();
    let own_role = task.and_then(|task| task.role.as_ref());

    let own_chain = own_role.map(|role| role.chain()).unwrap_or_default();
    for role in &play.roles {
        vars.extend(role.defaults.clone());
    }
    for role in &own_chain {
        vars.extend(role.defaults.clone());
    }
    vars.extend(host_inventory_vars(shared, &host.name));
    vars.extend(fact_vars(&host.facts));
    vars.extend(play.vars.clone());
    vars.extend(host.vars_files.clone());
    for role in &play.roles {
        vars.extend(role.vars.clone());
    }
    for role in &own_chain {
        vars.extend(role.vars.clone());
    }
    for layer in block_vars {
        vars.extend(layer.clone());
    }
    if let Some(Value::Object(task_vars)) = task.and_then(|task| task.keywords.get("vars")) {
        vars.extend(task_vars.clone());
    }
    vars.extend(host.included_vars.clone());
    vars.extend(host.registered.clone());
    for role in &own_chain {
        vars.extend(role.params.clone());
    }
    vars.extend(shared.options.extra_vars.clone());

    magic(
        shared,
        play,
        host,
        own_role.map(|r| (r.name.clone(), r.path.display().to_string())),
        &mut vars,
    );
    vars
}

/// Inventory-side and playbook-side group and host variables, merged in ansible-core's
/// default order: the inventory sources' own vars of `all` then of the host's other groups
/// (by depth, priority, name); then `group_vars/` beside the inventory and beside the
/// playbook, for `all` and then for the other groups; then the host's own in the same steps.
pub fn host_inventory_vars(shared: &Shared, host: &str) -> Map<String, Value> {
    let inventory = shared.inventory();
    let mut merged = Map::new();
    let groups = inventory.host_groups(host);
    let (all, others): (Vec<_>, Vec<_>) = groups.iter().partition(|(_, name)| name == "all");
    let entries = |layer: &Vec<&(usize, String)>| -> Vec<&crate::inventory::Group> {
        layer.iter().filter_map(|(_, name)| inventory.groups.get(name.as_str())).collect()
    };
    for layer in [&all, &others] {
        for group in entries(layer) {
            merged.extend(group.vars.clone());
        }
    }
    for layer in [&all, &others] {
        for group in entries(layer) {
            merged.extend(group.dir_vars.clone());
        }
        for group in entries(layer) {
            if let Some(extra) = shared.playbook_group_vars.get(&group.name) {
                merged.extend(extra.clone());
            }
        }
    }
    if let Some(entry) = inventory.hosts.get(host) {
        merged.extend(entry.vars.clone());
        merged.extend(entry.dir_vars.clone());
    }
    if let Some(extra) = shared.playbook_host_vars.get(host) {
        merged.extend(extra.clone());
    }
    merged
}

/// `ansible_facts` is always defined (empty before any gathering), as in ansible-core.
pub fn fact_vars(facts: &Map<String, Value>) -> Map<String, Value> {
    let mut vars = Map::new();
    for (name, value) in facts {
        vars.insert(format!("ansible_{name}"), value.clone());
    }
    vars.insert("ansible_facts".into(), Value::Object(facts.clone()));
    vars
}

fn magic(
    shared: &Shared,
    play: &PlayScope,
    host: &HostState,
    role: Option<(String, String)>,
    vars: &mut Map<String, Value>,
) {
    let name = host.name.clone();
    vars.insert(
        "inventory_hostname_short".into(),
        Value::from(name.split('.').next().unwrap_or(&name)),
    );
    vars.insert("inventory_hostname".into(), Value::from(name.clone()));
    vars.insert("group_names".into(), Value::from(shared.inventory().group_names(&name)));
    vars.insert("groups".into(), shared.groups());
    vars.insert("playbook_dir".into(), Value::from(shared.playbook_dir.display().to_string()));
    vars.insert(
        "inventory_dir".into(),
        shared
            .inventory()
            .directories
            .first()
            .map(|d| Value::from(d.display().to_string()))
            .unwrap_or(Value::Null),
    );
    vars.insert("ansible_play_hosts".into(), Value::from(play.active_hosts.clone()));
    vars.insert("ansible_play_batch".into(), Value::from(play.active_hosts.clone()));
    vars.insert("ansible_play_hosts_all".into(), Value::from(play.play_hosts_all.clone()));
    vars.insert("play_hosts".into(), Value::from(play.active_hosts.clone()));
    vars.insert("ansible_play_name".into(), Value::from(play.name.clone()));
    vars.insert("ansible_check_mode".into(), Value::Bool(shared.options.check));
    vars.insert("ansible_diff_mode".into(), Value::Bool(shared.options.diff));
    vars.insert("ansible_forks".into(), Value::from(shared.options.forks));
    vars.insert("ansible_verbosity".into(), Value::from(shared.options.verbosity));
    vars.insert("ansible_version".into(), serde_json::json!({"full": "2.19.14", "major": 2, "minor": 19, "revision": 14, "string": "2.19.14"}));
    if let Some((role_name, role_path)) = role {
        vars.insert("role_name".into(), Value::from(role_name));
        vars.insert("role_path".into(), Value::from(role_path));
    }
}
