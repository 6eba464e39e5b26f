//! `meta:` tasks as ansible-core's linear strategy runs them: some once per host (a banner
//! each), the others once for the whole batch, each with its own `when:` handling.

use serde_json::{Map, Value};

use super::{Inherited, PlayScope, Runner};
use crate::output::Status;
use crate::playbook::{Task, display_string};

/// The meta actions ansible-core runs once per host rather than once per batch.
const PER_HOST: &[&str] = &["noop", "reset_connection", "end_host"];

/// The meta actions that ignore `when:` (ansible-core warns and runs them).
const UNCONDITIONAL: &[&str] = &["noop", "refresh_inventory", "reset_connection"];

impl Runner<'_> {
    pub(super) async fn meta(
        &mut self,
        task: &Task,
        args: &Map<String, Value>,
        scope: &mut PlayScope,
        inherited: &Inherited,
        hosts: &[String],
    ) {
        let action = args.get("_raw_params").map(display_string).unwrap_or_default();
        let banner = format!("TASK [{}]", task.display_name());
        // Each host announces the flush, then the handlers run for all of them.
        if action == "flush_handlers" {
            for _ in hosts {
                self.shared.display.banner(&banner);
            }
            self.flush_handlers(scope, false).await;
            return;
        }
        if UNCONDITIONAL.contains(&action.as_str()) && task.keywords.contains_key("when") {
            self.shared.display.warning(&format!(
                "The '{action}' meta task does not support conditionals; the condition is ignored."
            ));
        }
        let targets: Vec<String> = if PER_HOST.contains(&action.as_str()) {
            hosts.to_vec()
        } else {
            hosts.iter().take(1).cloned().collect()
        };
        for host in targets {
            self.shared.display.banner(&banner);
            if !UNCONDITIONAL.contains(&action.as_str()) {
                match self.meta_condition(task, scope, inherited, &host) {
                    Ok(true) => {}
                    Ok(false) => {
                        self.shared.display.print(&format!("skipping: [{host}]"));
                        continue;
                    }
                    Err(message) => {
                        self.fail_meta(&host, &message);
                        continue;
                    }
                }
            }
            if let Err(message) = self.meta_action(&action, scope, &host).await {
                self.fail_meta(&host, &message);
            }
        }
    }

    fn meta_condition(
        &mut self,
        task: &Task,
        scope: &mut PlayScope,
        inherited: &Inherited,
        host: &str,
    ) -> Result<bool, String> {
        self.refresh_scope(scope);
        let state = &self.hosts[host];
        let vars = super::vars::assemble(self.shared, scope, state, Some(task), &inherited.vars);
        super::host_task::conditions_hold(self.shared, task, inherited, vars)
    }

    /// Carries out one meta action decided for `host` (or for the batch through it).
    async fn meta_action(
        &mut self,
        action: &str,
        scope: &mut PlayScope,
        host: &str,
    ) -> Result<(), String> {
        match action {
            "noop" => {}
            // Without `serial`, the batch is the play.
            "end_play" | "end_batch" => {
                for name in &scope.all_hosts {
                    if let Some(state) = self.hosts.get_mut(name)
                        && !state.unreachable
                    {
                        state.ended = true;
                    }
                }
            }
            "end_host" => {
                if let Some(state) = self.hosts.get_mut(host) {
                    state.ended = true;
                }
            }
            // Every host of the play, not only the batch: a host that failed stays out of
            // this play, but later plays take it back.
            "clear_host_errors" => {
                for name in &scope.play_hosts_all {
                    if let Some(state) = self.hosts.get_mut(name)
                        && (state.failed || state.unreachable)
                    {
                        state.failed = false;
                        state.unreachable = false;
                        state.ended = true;
                    }
                }
            }
            "clear_facts" => {
                for name in &scope.play_hosts_all {
                    if let Some(state) = self.hosts.get_mut(name) {
                        state.facts.clear();
                    }
                }
            }
            "reset_connection" => {
                let connection = self.hosts.get_mut(host).and_then(|state| state.connection.take());
                if let Some((_, connection)) = connection {
                    connection.close().await;
                }
            }
            "refresh_inventory" => self.refresh_inventory()?,
            other => return Err(format!("invalid meta action requested: {other}")),
        }
        Ok(())
    }

    /// Reads the inventory sources again; the implicit localhost and the hosts and groups
    /// the run added stay, as in ansible-core.
    fn refresh_inventory(&self) -> Result<(), String> {
        let mut fresh = crate::inventory::Inventory::load(&self.shared.options.inventories)
            .map_err(|error| error.to_string())?;
        let implicit = self.shared.inventory().implicit_localhost;
        if implicit && !fresh.hosts.contains_key("localhost") {
            let host = fresh.add_host_to("ungrouped", "localhost");
            host.vars.insert("ansible_connection".into(), Value::from("local"));
            fresh.groups["ungrouped"].hosts.retain(|name| name != "localhost");
            fresh.implicit_localhost = true;
        }
        self.shared.refresh_inventory(fresh);
        Ok(())
    }

    fn fail_meta(&mut self, host: &str, message: &str) {
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
