//! One task on one host: conditions, loop, templated arguments, the module call, and what the
//! result means (changed_when, failed_when, ignore_errors, register, notify, facts).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use super::connect::{self, ConnectionKey};
use super::{HostState, Inherited, PlayScope, Shared, vars};
use crate::connection::{Become, Connection, quote};
use crate::modules::{self, Args, Call, Failure, Remote};
use crate::output::Status;
use crate::playbook::{Task, TaskBody, display_string};
use crate::template::{Context, OMIT};

/// What a task did on one host: the lines to print and what the recap counts.
pub struct Report {
    pub host: String,
    pub lines: Vec<String>,
    pub statuses: Vec<Status>,
    /// Whether the task changed something, even when it failed and was ignored.
    pub changed: bool,
    /// `delegate_facts`: facts for the delegated host (name, facts, whether gathered).
    pub delegated_facts: Option<(String, Map<String, Value>, bool)>,
    /// What `add_host` and `group_by` ask of the inventory.
    pub inventory_changes: Vec<InventoryChange>,
}

/// A change to the inventory asked for by a task's result.
#[derive(Clone, Debug)]
pub enum InventoryChange {
    Host { name: String, groups: Vec<String>, vars: Map<String, Value> },
    Group { host: String, group: String, parents: Vec<String> },
}

/// The inventory changes in a result (or in each of a loop's results).
fn inventory_changes(result: &Map<String, Value>, host: &str) -> Vec<InventoryChange> {
    if result.get("failed").and_then(Value::as_bool) == Some(true) {
        return Vec::new();
    }
    if let Some(Value::Array(items)) = result.get("results") {
        let items = items.iter().filter_map(Value::as_object);
        return items.flat_map(|item| inventory_changes(item, host)).collect();
    }
    let strings = |value: Option<&Value>| match value {
        Some(Value::Array(items)) => items.iter().map(display_string).collect(),
        _ => Vec::new(),
    };
    let mut changes = Vec::new();
    if let Some(Value::Object(added)) = result.get("add_host") {
        changes.push(InventoryChange::Host {
            name: added.get("host_name").map(display_string).unwrap_or_default(),
            groups: strings(added.get("groups")),
            vars: added.get("host_vars").and_then(Value::as_object).cloned().unwrap_or_default(),
        });
    }
    if let Some(group) = result.get("add_group") {
        changes.push(InventoryChange::Group {
            host: host.to_string(),
            group: display_string(group),
            parents: strings(result.get("parent_groups")),
        });
    }
    changes
}

/// A task's connection and what it takes to open it again.
struct Opened {
    connection: Arc<Connection>,
    key: ConnectionKey,
    target: Option<crate::connection::SshTarget>,
    delegated: bool,
}

/// Modules that run on the controller and never need the host's connection.
const CONTROLLER_ONLY: &[&str] =
    &["debug", "set_fact", "assert", "fail", "include_vars", "add_host", "group_by"];

const NO_LOG_MESSAGE: &str =
    "the output has been hidden due to the fact that 'no_log: true' was specified for this result";

/// Keywords in effect: play, then enclosing blocks, then the task.
pub(super) fn effective_keywords(
    scope: &PlayScope,
    inherited: &Inherited,
    task: &Task,
) -> Map<String, Value> {
    let mut keywords = scope.keywords.clone();
    keywords.extend(inherited.keywords.clone());
    keywords.extend(task.keywords.clone());
    keywords
}

pub async fn run(
    shared: &Shared,
    scope: &PlayScope,
    state: &mut HostState,
    task: &Task,
    inherited: &Inherited,
    _is_handler: bool,
) -> Report {
    let mut report = Report {
        host: state.name.clone(),
        lines: Vec::new(),
        statuses: Vec::new(),
        changed: false,
        delegated_facts: None,
        inventory_changes: Vec::new(),
    };
    let TaskBody::Module { module, args } = &task.body else {
        return report;
    };
    let keywords = effective_keywords(scope, inherited, task);
    let mut base_vars = vars::assemble(shared, scope, state, Some(task), &inherited.vars);
    let step = Step {
        shared,
        task,
        module,
        args,
        keywords: &keywords,
        inherited,
        delegate: std::sync::Mutex::new(None),
        flags: std::sync::Mutex::new(Flags::literal(&keywords)),
    };
    let search_path =
        step.search_paths().iter().map(|p| Value::from(p.display().to_string())).collect();
    base_vars.insert("ansible_search_path".into(), Value::Array(search_path));

    let (status, result) = match task.keywords.get("loop") {
        None => step.once(state, base_vars, None, &mut report).await,
        Some(items) => step.looped(state, base_vars, items, &mut report).await,
    };
    report.statuses.push(status);
    report.changed = result.get("changed").and_then(Value::as_bool).unwrap_or(false);
    if matches!(*module, "add_host" | "group_by") {
        report.inventory_changes = inventory_changes(&result, &state.name);
    }

    if matches!(status, Status::Changed)
        && let Some(notify) = task.keywords.get("notify")
    {
        for name in super::string_list(notify) {
            if !state.notified.contains(&name) {
                state.notified.push(name);
            }
        }
    }
    match status {
        Status::Failed => {
            state.failed = true;
            // What a `rescue:` section reads about the failure, as in ansible-core.
            let failed_task = serde_json::json!({
                "name": task.name.clone().unwrap_or_default(),
                "action": module,
                "args": args,
            });
            state.registered.insert("ansible_failed_task".into(), failed_task);
            let failed_result = Value::Object(registered_form(&result));
            state.registered.insert("ansible_failed_result".into(), failed_result);
        }
        Status::Unreachable => state.unreachable = true,
        _ => {}
    }
    if let Some(name) = task.keywords.get("register").map(display_string) {
        state.registered.insert(name, Value::Object(registered_form(&result)));
    }
    report
}

/// Marks a loop's summary result, so that `register:` knows its `results` are the items'.
const LOOP_SUMMARY: &str = "_bramble_loop_summary";

/// What `register:` stores, as ansible-core records it: no internal keys; `failed: false` on a
/// task or loop item that ran, even if it skipped itself (playbooks test `result.failed`);
/// `skipped: false` on a loop's summary unless every item was skipped.
fn registered_form(result: &Map<String, Value>) -> Map<String, Value> {
    fn ran(mut result: Map<String, Value>) -> Map<String, Value> {
        result.retain(|key, _| !key.starts_with("_ansible") && !key.starts_with("_bramble"));
        // A task skipped by its condition never ran; a module that skipped itself (check
        // mode) did.
        if result.get("skipped") != Some(&Value::Bool(true)) || !result.contains_key("skip_reason")
        {
            result.entry("failed").or_insert(Value::Bool(false));
        }
        result
    }
    if !result.contains_key(LOOP_SUMMARY) {
        return ran(result.clone());
    }
    let mut summary = result.clone();
    summary.retain(|key, _| !key.starts_with("_ansible") && !key.starts_with("_bramble"));
    summary.entry("skipped").or_insert(Value::Bool(false));
    if let Some(Value::Array(items)) = summary.get_mut("results") {
        for item in items.iter_mut() {
            if let Value::Object(map) = item {
                *map = ran(std::mem::take(map));
            }
        }
    }
    summary
}

struct Step<'a> {
    shared: &'a Shared,
    task: &'a Task,
    module: &'static str,
    args: &'a Map<String, Value>,
    keywords: &'a Map<String, Value>,
    inherited: &'a Inherited,
    /// `delegate_to` for the item running now, when it names another host: its name, and
    /// how result lines show it (`name(address)` when the address differs).
    delegate: std::sync::Mutex<Option<(String, String)>>,
    /// The boolean keywords for the item running now (see [`Flags`]).
    flags: std::sync::Mutex<Flags>,
}

/// A task's boolean keywords for one host and item: rendered once its `when:` holds, as
/// ansible-core templates keywords after the condition; until then only literal values count.
#[derive(Clone, Copy, Debug)]
struct Flags {
    check_mode: Option<bool>,
    diff: Option<bool>,
    no_log: bool,
    ignore_errors: bool,
}

impl Flags {
    /// The keywords as written: a template counts for nothing until rendered.
    fn literal(keywords: &Map<String, Value>) -> Flags {
        let literal = |name: &str| keywords.get(name).and_then(modules::args_to_bool);
        Flags {
            check_mode: literal("check_mode"),
            diff: literal("diff"),
            no_log: literal("no_log").unwrap_or(false),
            ignore_errors: literal("ignore_errors").unwrap_or(false),
        }
    }
}

impl Step<'_> {
    async fn looped(
        &self,
        state: &mut HostState,
        base_vars: Map<String, Value>,
        items: &Value,
        report: &mut Report,
    ) -> (Status, Map<String, Value>) {
        let templar = &self.shared.templar;
        let context = Context::new(base_vars.clone(), templar.clone());
        let items = match loop_items(templar, self.task, self.module, items, &context) {
            Ok(items) => items,
            Err(message) => {
                return self.finish_failure(state, modules::fail(message), report, None);
            }
        };
        let control = match self.task.keywords.get("loop_control") {
            Some(Value::Object(control)) => control.clone(),
            _ => Map::new(),
        };
        let loop_var = control.get("loop_var").map(display_string).unwrap_or_else(|| "item".into());
        let index_var = control.get("index_var").map(display_string);
        let label = control.get("label").cloned();
        let extended = control.get("extended").and_then(modules::args_to_bool).unwrap_or(false);
        let all_items =
            control.get("extended_allitems").and_then(modules::args_to_bool).unwrap_or(true);
        let pause = match control.get("pause") {
            Some(pause) => match loop_pause(templar, pause, &context) {
                Ok(pause) => pause,
                Err(message) => {
                    return self.finish_failure(state, modules::fail(message), report, None);
                }
            },
            None => None,
        };

        let mut results = Vec::new();
        let (mut changed, mut failed, mut all_skipped, mut unreachable) =
            (false, false, true, false);
        for (index, item) in items.iter().enumerate() {
            if let Some(pause) = pause.filter(|_| index > 0) {
                tokio::time::sleep(pause).await;
            }
            let mut vars = base_vars.clone();
            vars.insert(loop_var.clone(), item.clone());
            vars.insert("ansible_loop_var".into(), Value::from(loop_var.clone()));
            if let Some(index_var) = &index_var {
                vars.insert(index_var.clone(), Value::from(index));
                vars.insert("ansible_index_var".into(), Value::from(index_var.clone()));
            }
            let loop_info = extended.then(|| loop_details(&items, index, all_items));
            if let Some(details) = &loop_info {
                vars.insert("ansible_loop".into(), details.clone());
            }
            let shown = match &label {
                Some(label) => {
                    let context = Context::new(vars.clone(), templar.clone());
                    templar
                        .render_value(label, &context)
                        .map(|v| display_string(&v))
                        .unwrap_or_else(|_| display_string(label))
                }
                None => item_label(item),
            };
            let (status, mut result) = self.once(state, vars, Some(&shown), report).await;
            result.insert(loop_var.clone(), item.clone());
            result.insert("ansible_loop_var".into(), Value::from(loop_var.clone()));
            if let Some(index_var) = &index_var {
                result.insert(index_var.clone(), Value::from(index));
                result.insert("ansible_index_var".into(), Value::from(index_var.clone()));
            }
            if let Some(details) = loop_info {
                result.insert("ansible_loop".into(), details);
            }
            changed |= result.get("changed").and_then(Value::as_bool).unwrap_or(false);
            failed |= status == Status::Failed;
            unreachable |= status == Status::Unreachable;
            all_skipped &= status == Status::Skipped;
            results.push(Value::Object(result));
            if unreachable {
                break;
            }
        }
        let mut summary = modules::result([
            ("changed", Value::Bool(changed)),
            ("msg", Value::from("All items completed")),
            ("results", Value::Array(results)),
            (LOOP_SUMMARY, Value::Bool(true)),
        ]);
        if all_skipped && !items.is_empty() {
            summary.insert("skipped".into(), Value::Bool(true));
            summary.insert("msg".into(), Value::from("All items skipped"));
        }
        let ignored = self.ignore_errors();
        let status = if unreachable {
            Status::Unreachable
        } else if failed {
            summary.insert("failed".into(), Value::Bool(true));
            summary.insert("msg".into(), Value::from("One or more items failed"));
            if ignored { Status::Ignored } else { Status::Failed }
        } else if all_skipped {
            report.lines.push(format!("skipping: [{}]", state.name));
            Status::Skipped
        } else if changed {
            Status::Changed
        } else {
            Status::Ok
        };
        if status == Status::Ignored {
            report.lines.push("...ignoring".into());
        }
        (status, summary)
    }

    /// Runs the module once (one loop item, or the whole task without a loop).
    async fn once(
        &self,
        state: &mut HostState,
        vars: Map<String, Value>,
        item: Option<&str>,
        report: &mut Report,
    ) -> (Status, Map<String, Value>) {
        let templar = &self.shared.templar;
        let mut vars = vars;
        // As in ansible-core, `ansible_connection` always names the connection in use: the
        // variable, else the `connection:` keyword, else `-c`, else ssh.
        if !vars.contains_key("ansible_connection") {
            let connection = match self.keywords.get("connection") {
                Some(keyword) => keyword.clone(),
                None => Value::from(self.shared.options.connection.as_deref().unwrap_or("ssh")),
            };
            vars.insert("ansible_connection".into(), connection);
        }
        let context = Context::new(vars, templar.clone());
        *self.delegate_slot() = None;
        *self.flags_slot() = Flags::literal(self.keywords);

        match first_false_condition(templar, self.task, self.inherited, &context) {
            Ok(None) => {}
            Ok(Some(condition)) => {
                let result = modules::result([
                    ("changed", Value::Bool(false)),
                    ("false_condition", condition),
                    ("skip_reason", Value::from("Conditional result was False")),
                    ("skipped", Value::Bool(true)),
                ]);
                report.lines.push(self.shared.display.result_line(
                    &state.name,
                    Status::Skipped,
                    &result,
                    item,
                ));
                return (Status::Skipped, result);
            }
            Err(message) => {
                return self.finish_failure(state, modules::fail(message), report, item);
            }
        }
        match self.rendered_flags(&context) {
            Ok(flags) => *self.flags_slot() = flags,
            Err(message) => {
                return self.finish_failure(state, modules::fail(message), report, item);
            }
        }
        // A hidden item is not named either.
        let item = if self.flags_slot().no_log && item.is_some() {
            Some("(censored due to no_log)")
        } else {
            item
        };
        match self.delegate_target(state, &context) {
            Ok(delegate) => *self.delegate_slot() = delegate,
            Err(message) => {
                return self.finish_failure(state, modules::fail(message), report, item);
            }
        }

        let args = match templar.render_value(&Value::Object(self.args.clone()), &context) {
            Ok(Value::Object(mut args)) => {
                args.retain(|_, value| value.as_str() != Some(OMIT));
                args
            }
            Ok(_) => Map::new(),
            Err(error) => {
                return self.finish_failure(state, modules::fail(format!("{error}")), report, item);
            }
        };
        let become_settings = match become_settings(self.shared, self.keywords, &context) {
            Ok(settings) => settings,
            Err(message) => {
                return self.finish_failure(state, modules::fail(message), report, item);
            }
        };
        let environment = match self
            .keywords
            .get("environment")
            .map(|env| templar.render_value(env, &context))
        {
            None => Vec::new(),
            Some(Ok(Value::Object(env))) => {
                env.into_iter().map(|(k, v)| (k, display_string(&v))).collect()
            }
            Some(Ok(_)) => {
                return self.finish_failure(
                    state,
                    modules::fail("environment must be a mapping"),
                    report,
                    item,
                );
            }
            Some(Err(error)) => {
                return self.finish_failure(state, modules::fail(error.to_string()), report, item);
            }
        };

        let opened = if CONTROLLER_ONLY.contains(&self.module) {
            None
        } else {
            match self.connection(state, &context).await {
                Ok(opened) => Some(opened),
                Err(failure) => return self.finish_failure(state, failure, report, item),
            }
        };
        let connection =
            opened.as_ref().map(|opened| opened.connection.clone()).unwrap_or_else(|| {
                Arc::new(crate::connection::Connection::Local(crate::connection::LocalConnection))
            });
        let target = opened.as_ref().and_then(|opened| opened.target.clone());
        let time_limit = match self.time_limit(&context) {
            Ok(limit) => limit,
            Err(message) => {
                return self.finish_failure(state, modules::fail(message), report, item);
            }
        };
        let remote = Remote::new(connection, target, become_settings, environment, time_limit);
        let flags = *self.flags_slot();
        let check_mode = flags.check_mode.unwrap_or(self.shared.options.check);
        let diff = flags.diff.unwrap_or(self.shared.options.diff);
        let search_paths = self.search_paths();
        let mut call = Call {
            host: &state.name,
            remote: &remote,
            args: Args::new(args),
            check_mode,
            diff,
            vars: &context,
            templar,
            search_paths: &search_paths,
        };

        let host = state.name.clone();
        let running = async {
            let mut outcome = modules::run(self.module, &mut call).await;
            if let Some(until) = self.task.keywords.get("until") {
                outcome = self.retry(&host, until, outcome, &mut call, &context, report).await;
            }
            outcome
        };
        let outcome = match time_limit {
            None => running.await,
            Some(limit) => {
                tokio::time::timeout(limit, running).await.unwrap_or_else(|_| Err(timed_out(limit)))
            }
        };
        if let (Some(opened), Some(fresh)) = (&opened, remote.replacement()) {
            self.keep_connection(state, opened, fresh);
        }
        self.interpret(state, outcome, &context, report, item)
    }

    /// The task's `timeout:` in seconds; none or 0 means no limit.
    fn time_limit(&self, context: &Arc<Context>) -> Result<Option<Duration>, String> {
        let Some(raw) = self.keywords.get("timeout") else { return Ok(None) };
        let value = self.shared.templar.render_value(raw, context).map_err(|e| e.to_string())?;
        let seconds = display_string(&value)
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("timeout expects a number of seconds, got {value}"))?;
        Ok((seconds > 0).then(|| Duration::from_secs(seconds)))
    }

    /// `until:` with `retries` (default 3) and `delay` (default 5 s): the first run plus up to
    /// `retries` more, until the condition holds. Exhausted, the last result fails with
    /// `attempts` set to `retries`, as ansible-core reports it.
    async fn retry(
        &self,
        host: &str,
        until: &Value,
        mut outcome: modules::Outcome,
        call: &mut Call<'_>,
        context: &Arc<Context>,
        report: &mut Report,
    ) -> modules::Outcome {
        let keyword_number = |name: &str| {
            self.task.keywords.get(name).map(display_string).and_then(|v| v.parse::<u64>().ok())
        };
        let total = keyword_number("retries").unwrap_or(3) + 1;
        let delay = keyword_number("delay").unwrap_or(5);
        for attempt in 1..=total {
            let mut result = match outcome {
                Ok(map) | Err(Failure::Failed(map)) => map,
                Err(unreachable) => return Err(unreachable),
            };
            result.insert("attempts".into(), Value::from(attempt));
            let mut vars = context.raw().clone();
            if let Some(name) = self.task.keywords.get("register").map(display_string) {
                vars.insert(name, Value::Object(result.clone()));
            }
            let check = Context::new(vars, self.shared.templar.clone());
            if self.shared.templar.condition(&display_string(until), &check).unwrap_or(false) {
                return Ok(result);
            }
            if attempt == total {
                result.insert("attempts".into(), Value::from(total - 1));
                return Err(Failure::Failed(result));
            }
            report.lines.push(format!(
                "FAILED - RETRYING: [{host}]: {} ({} retries left).",
                self.task.display_name(),
                total - attempt
            ));
            tokio::time::sleep(std::time::Duration::from_secs(delay)).await;
            outcome = modules::run(self.module, call).await;
        }
        outcome
    }

    fn search_paths(&self) -> Vec<std::path::PathBuf> {
        let mut paths = Vec::new();
        if let Some(role) = &self.task.role {
            paths.push(role.path.clone());
        }
        if let Some(directory) = self.task.mark.source.path.parent() {
            paths.push(directory.to_path_buf());
        }
        paths.push(self.shared.playbook_dir.clone());
        paths
    }

    /// The host's connection (or the delegated host's), opened on first use and reused.
    async fn connection(
        &self,
        state: &mut HostState,
        context: &Arc<Context>,
    ) -> Result<Opened, Failure> {
        let delegate = self.delegate_slot().clone().map(|(name, _)| name);
        let (target, mut connection_vars) = match &delegate {
            Some(delegate) => (delegate.clone(), self.delegated_vars(delegate)?),
            None => (
                state.name.clone(),
                connection_vars(&self.shared.templar, context).map_err(modules::fail)?,
            ),
        };
        // The `connection:` keyword gives way to an `ansible_connection` variable.
        if !connection_vars.contains_key("ansible_connection")
            && let Some(keyword) = self.keywords.get("connection")
        {
            let value = self.shared.templar.render_value(keyword, context);
            let value = value.map_err(|error| modules::fail(format!("connection: {error}")))?;
            connection_vars.insert("ansible_connection".into(), value);
        }
        let play_user = self.keywords.get("remote_user").map(display_string);
        let settings =
            connect::settings(&target, &connection_vars, &self.shared.options, play_user)
                .map_err(modules::fail)?;
        let opened = |connection| Opened {
            connection,
            key: settings.key.clone(),
            target: settings.target.clone(),
            delegated: delegate.is_some(),
        };
        if delegate.is_some() {
            return Ok(opened(self.delegated_connection(state, &settings).await?));
        }
        if let Some((key, connection)) = &state.connection
            && *key == settings.key
        {
            return Ok(opened(connection.clone()));
        }
        let connection =
            connect::open(&settings).await.map_err(|error| Failure::Unreachable(error.0))?;
        state.connection = Some((settings.key.clone(), connection.clone()));
        self.shared.connections.lock().unwrap_or_else(|p| p.into_inner()).push(connection.clone());
        if settings.key == ConnectionKey::Local {
            tracing::debug!(host = %state.name, "using the local connection");
        }
        Ok(opened(connection))
    }

    /// A module reopened the connection (reboot, wait_for_connection): the later tasks use
    /// the fresh one, and it is closed with the others at the end.
    fn keep_connection(&self, state: &mut HostState, opened: &Opened, fresh: Arc<Connection>) {
        let slot = if opened.delegated {
            state.delegated.iter_mut().find(|(key, _)| *key == opened.key).map(|(_, c)| c)
        } else {
            state.connection.as_mut().filter(|(key, _)| *key == opened.key).map(|(_, c)| c)
        };
        match slot {
            Some(connection) => *connection = fresh.clone(),
            None if opened.delegated => state.delegated.push((opened.key.clone(), fresh.clone())),
            None => state.connection = Some((opened.key.clone(), fresh.clone())),
        }
        self.shared.connections.lock().unwrap_or_else(|p| p.into_inner()).push(fresh);
    }

    fn delegate_slot(&self) -> std::sync::MutexGuard<'_, Option<(String, String)>> {
        self.delegate.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `delegate_to`, templated for this host and item; `None` when it names the host itself.
    fn delegate_target(
        &self,
        state: &HostState,
        context: &Arc<Context>,
    ) -> Result<Option<(String, String)>, String> {
        let Some(written) = self.keywords.get("delegate_to") else { return Ok(None) };
        let rendered = self.shared.templar.render_value(written, context);
        let name = display_string(&rendered.map_err(|error| format!("delegate_to: {error}"))?);
        let name = name.trim().to_string();
        if name.is_empty() || name == state.name {
            return Ok(None);
        }
        let address = self
            .delegated_vars(&name)
            .ok()
            .and_then(|vars| vars.get("ansible_host").map(display_string))
            .filter(|address| *address != name);
        let shown = match address {
            Some(address) => format!("{name}({address})"),
            None => name.clone(),
        };
        Ok(Some((name, shown)))
    }

    /// The connection variables of a delegated host: its inventory variables, the implicit
    /// localhost's local connection, or nothing (its name is the address) for a host the
    /// inventory does not know.
    fn delegated_vars(&self, delegate: &str) -> Result<Map<String, Value>, Failure> {
        let shared = self.shared;
        if shared.inventory().hosts.contains_key(delegate) {
            let mut vars = vars::host_inventory_vars(shared, delegate);
            vars.extend(shared.options.extra_vars.clone());
            vars.insert("inventory_hostname".into(), Value::from(delegate));
            let context = Context::new(vars, shared.templar.clone());
            return connection_vars(&shared.templar, &context).map_err(modules::fail);
        }
        let mut vars = Map::new();
        if matches!(delegate, "localhost" | "127.0.0.1" | "::1") {
            vars.insert("ansible_connection".into(), Value::from("local"));
        }
        Ok(vars)
    }

    async fn delegated_connection(
        &self,
        state: &mut HostState,
        settings: &connect::Settings,
    ) -> Result<Arc<crate::connection::Connection>, Failure> {
        if let Some((_, connection)) = state.delegated.iter().find(|(key, _)| *key == settings.key)
        {
            return Ok(connection.clone());
        }
        let connection =
            connect::open(settings).await.map_err(|error| Failure::Unreachable(error.0))?;
        state.delegated.push((settings.key.clone(), connection.clone()));
        Ok(connection)
    }

    /// The host as result lines show it: `h1`, or `h1 -> h2` when delegated.
    fn shown_host(&self, state: &HostState) -> String {
        match &*self.delegate_slot() {
            Some((_, shown)) => format!("{} -> {shown}", state.name),
            None => state.name.clone(),
        }
    }

    /// Applies changed_when / failed_when / ignore_errors and writes the result lines.
    fn interpret(
        &self,
        state: &mut HostState,
        outcome: modules::Outcome,
        context: &Arc<Context>,
        report: &mut Report,
        item: Option<&str>,
    ) -> (Status, Map<String, Value>) {
        let (mut result, mut failed) = match outcome {
            Ok(result) => (result, false),
            Err(Failure::Failed(result)) => (result, true),
            Err(failure @ Failure::Unreachable(_)) => {
                return self.finish_failure(state, failure, report, item);
            }
        };
        let delegate_facts =
            self.keywords.get("delegate_facts").and_then(modules::args_to_bool) == Some(true);
        let delegate = self.delegate_slot().clone().map(|(name, _)| name);
        if let Some(Value::Object(facts)) = result.get("ansible_facts").cloned() {
            let gathered = result.contains_key("_bramble_gathered");
            if let Some(delegate) = delegate.filter(|_| delegate_facts) {
                report.delegated_facts = Some((delegate, facts, gathered));
            } else if gathered {
                state.facts.extend(facts);
            } else if result.contains_key(modules::include_vars::MARKER) {
                state.included_vars.extend(facts);
            } else {
                state.registered.extend(facts);
            }
        }
        // A module that skipped itself (a command under check mode) is judged by neither
        // changed_when nor failed_when, as in ansible-core.
        let skipped = result.get("skipped") == Some(&Value::Bool(true));
        for (keyword, key) in [("changed_when", "changed"), ("failed_when", "failed")] {
            let Some(condition) = self.task.keywords.get(keyword).filter(|_| !skipped) else {
                continue;
            };
            let mut vars = context.raw().clone();
            if let Some(name) = self.task.keywords.get("register").map(display_string) {
                vars.insert(name, Value::Object(result.clone()));
            }
            let check = Context::new(vars, self.shared.templar.clone());
            let conditions = match condition {
                Value::Array(items) => items.clone(),
                other => vec![other.clone()],
            };
            let mut verdict = key == "changed" || conditions.is_empty();
            if key == "changed" {
                for condition in &conditions {
                    match self.shared.templar.condition(&display_string(condition), &check) {
                        Ok(value) => verdict &= value,
                        Err(error) => {
                            return self.finish_failure(
                                state,
                                modules::fail(error.to_string()),
                                report,
                                item,
                            );
                        }
                    }
                }
            } else {
                verdict = false;
                for condition in &conditions {
                    match self.shared.templar.condition(&display_string(condition), &check) {
                        Ok(value) => verdict |= value,
                        Err(error) => {
                            return self.finish_failure(
                                state,
                                modules::fail(error.to_string()),
                                report,
                                item,
                            );
                        }
                    }
                }
                failed = verdict;
                result.insert("failed_when_result".into(), Value::Bool(verdict));
                if verdict {
                    result.insert("_bramble_failed_when".into(), Value::Bool(true));
                }
                if !verdict {
                    result
                        .remove("msg")
                        .filter(|m| m.as_str() != Some("non-zero return code"))
                        .map(|m| result.insert("msg".into(), m));
                }
            }
            result.insert(key.into(), Value::Bool(if key == "failed" { failed } else { verdict }));
        }
        if failed {
            result.insert("failed".into(), Value::Bool(true));
            return self.finish_failure(state, Failure::Failed(result), report, item);
        }
        let status = if result.get("skipped").and_then(Value::as_bool).unwrap_or(false) {
            Status::Skipped
        } else if result.get("changed").and_then(Value::as_bool).unwrap_or(false) {
            Status::Changed
        } else {
            Status::Ok
        };
        self.print_warnings(&mut result);
        let mut shown = self.censor(&result);
        if self.module == "debug" {
            shown.remove("changed");
        }
        // Modules report a diff whether or not it was asked for (file does); only -D or the
        // `diff:` keyword shows it, as ansible-playbook's callback does.
        let diff_mode = self.flags_slot().diff.unwrap_or(self.shared.options.diff);
        if diff_mode
            && let Some(diff) = shown.get("diff")
            && let Some(text) = crate::output::render_diff(diff)
        {
            // ansible-playbook leaves a blank line after each diff.
            report.lines.push(text);
            report.lines.push(String::new());
        }
        report.lines.push(self.shared.display.result_line(
            &self.shown_host(state),
            status,
            &shown,
            item,
        ));
        (status, result)
    }

    /// A module's `warnings` (and `deprecations`) go to stderr as `[WARNING]:` lines, as
    /// ansible-playbook shows them, and leave the result.
    fn print_warnings(&self, result: &mut Map<String, Value>) {
        if let Some(Value::Array(warnings)) = result.remove("warnings") {
            for warning in warnings {
                self.shared.display.warning(&display_string(&warning));
            }
        }
        if let Some(Value::Array(deprecations)) = result.remove("deprecations") {
            for deprecation in deprecations {
                let text = deprecation.get("msg").map(display_string);
                let text = text.unwrap_or_else(|| display_string(&deprecation));
                crate::output::err(&format!("[DEPRECATION WARNING]: {text}\n"));
            }
        }
    }

    fn censor(&self, result: &Map<String, Value>) -> Map<String, Value> {
        if !self.flags_slot().no_log {
            return result.clone();
        }
        let mut hidden = modules::result([("censored", Value::from(NO_LOG_MESSAGE))]);
        if let Some(changed) = result.get("changed") {
            hidden.insert("changed".into(), changed.clone());
        }
        hidden
    }

    /// A failed or unreachable result: the [ERROR] block, the fatal line, ignore_errors.
    fn finish_failure(
        &self,
        state: &mut HostState,
        failure: Failure,
        report: &mut Report,
        item: Option<&str>,
    ) -> (Status, Map<String, Value>) {
        let (mut result, unreachable) = match failure {
            Failure::Failed(result) => (result, false),
            Failure::Unreachable(message) => (
                modules::result([
                    ("changed", Value::Bool(false)),
                    ("msg", Value::from(format!("Task failed: {message}"))),
                    ("unreachable", Value::Bool(true)),
                ]),
                true,
            ),
        };
        if !unreachable {
            result.insert("failed".into(), Value::Bool(true));
        }
        // An action that failed with only a `message` is "Unknown error." to ansible-core.
        let unknown = result.remove(modules::UNKNOWN_ERROR).is_some();
        let message = match unknown {
            true => "Unknown error.".to_string(),
            false => result.get("msg").map(display_string).unwrap_or_default(),
        };
        let by_condition = result.remove("_bramble_failed_when").is_some();
        let kind = if CONTROLLER_ONLY.contains(&self.module) || by_condition {
            "Action failed"
        } else {
            "Module failed"
        };
        let block = match result.remove(modules::CAUSED_BY) {
            Some(Value::String(cause)) => {
                // The task's line, then the file that caused it, as ansible-core chains them.
                let headline = format!("Task failed: {message}");
                let task_part = format!("{headline}\n\nTask failed.");
                let block = crate::output::error_block(&task_part, &self.task.mark);
                result.insert("msg".into(), Value::from(headline));
                format!("{block}\n<<< caused by >>>\n\n{cause}")
            }
            _ => {
                let headline = match (unreachable, message.is_empty()) {
                    (true, _) => message.clone(),
                    _ if result.contains_key("timedout") => message.clone(),
                    (false, true) => format!("Task failed: {kind}."),
                    (false, false) => format!("Task failed: {kind}: {message}"),
                };
                if unknown {
                    result.insert("msg".into(), Value::from(headline.clone()));
                }
                crate::output::error_block(&headline, &self.task.mark)
            }
        };
        report.lines.push(block);
        let ignored = !unreachable && self.ignore_errors();
        let status = if unreachable {
            Status::Unreachable
        } else if ignored {
            Status::Ignored
        } else {
            Status::Failed
        };
        let mut shown = self.censor(&result);
        shown.remove("failed");
        let line = match (item, unreachable) {
            (Some(label), false) => format!(
                "failed: [{}] (item={label}) => {}",
                self.shown_host(state),
                crate::output::python_json(&Value::Object(shown), None, true)
            ),
            _ => self.shared.display.result_line(
                &self.shown_host(state),
                if unreachable { Status::Unreachable } else { Status::Failed },
                &shown,
                None,
            ),
        };
        report.lines.push(line);
        if ignored && item.is_none() {
            report.lines.push("...ignoring".into());
        }
        (status, result)
    }

    fn ignore_errors(&self) -> bool {
        self.flags_slot().ignore_errors
    }

    fn flags_slot(&self) -> std::sync::MutexGuard<'_, Flags> {
        self.flags.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The boolean keywords rendered with the item's variables; a value that is no boolean
    /// fails the task in ansible-core's words.
    fn rendered_flags(&self, context: &Arc<Context>) -> Result<Flags, String> {
        let flag = |name: &str| -> Result<Option<bool>, String> {
            let Some(raw) = self.keywords.get(name) else { return Ok(None) };
            let value = self
                .shared
                .templar
                .render_value(raw, context)
                .map_err(|error| format!("Error processing keyword '{name}': {error}"))?;
            match modules::args_to_bool(&value) {
                Some(flag) => Ok(Some(flag)),
                None => Err(format!(
                    "Error processing keyword '{name}': The value '{}' could not be converted to 'bool'.",
                    display_string(&value)
                )),
            }
        };
        Ok(Flags {
            check_mode: flag("check_mode")?,
            diff: flag("diff")?,
            no_log: flag("no_log")?.unwrap_or(false),
            ignore_errors: flag("ignore_errors")?.unwrap_or(false),
        })
    }
}

/// The items of `loop:` (a list, as written or templated) or of `with_<lookup>:` (the
/// lookup's result for the templated terms).
pub fn loop_items(
    templar: &crate::template::Templar,
    task: &Task,
    module: &'static str,
    written: &Value,
    context: &Arc<Context>,
) -> Result<Vec<Value>, String> {
    let Some(lookup) = task.keywords.get("loop_with").map(display_string) else {
        return match templar.render_value(written, context).map_err(|e| e.to_string())? {
            Value::Array(items) => Ok(items),
            other => Err(format!(
                "The `loop` value must resolve to a 'list', not '{}'.",
                crate::template::lookups::python_type(&other)
            )),
        };
    };
    let terms = match written {
        Value::String(text) => templar.render_string(text.trim(), context),
        other => templar.render_value(other, context),
    }
    .map_err(|error| error.to_string())?;
    let terms = match terms {
        Value::Array(terms) => terms,
        other => vec![other],
    };
    let invocation = crate::template::lookups::Invocation::Loop(module);
    crate::template::lookups::run(&lookup, terms, &Map::new(), context, invocation)
        .map_err(|failure| failure.message(&lookup))
}

/// `ansible_loop` for one item of a loop with `extended: true`.
fn loop_details(items: &[Value], index: usize, all_items: bool) -> Value {
    let length = items.len();
    let mut details = modules::result([
        ("index", Value::from(index + 1)),
        ("index0", Value::from(index)),
        ("first", Value::Bool(index == 0)),
        ("last", Value::Bool(index + 1 == length)),
        ("length", Value::from(length)),
        ("revindex", Value::from(length - index)),
        ("revindex0", Value::from(length - index - 1)),
    ]);
    if all_items {
        details.insert("allitems".into(), Value::Array(items.to_vec()));
    }
    if let Some(next) = items.get(index + 1) {
        details.insert("nextitem".into(), next.clone());
    }
    if index > 0 {
        details.insert("previtem".into(), items[index - 1].clone());
    }
    Value::Object(details)
}

/// `loop_control.pause`: seconds (maybe fractional, maybe templated) between items.
fn loop_pause(
    templar: &crate::template::Templar,
    pause: &Value,
    context: &Arc<Context>,
) -> Result<Option<std::time::Duration>, String> {
    let value = templar.render_value(pause, context).map_err(|error| error.to_string())?;
    let seconds = match &value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => text.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
    .ok_or_else(|| format!("loop_control.pause must be a number of seconds, got {value}"))?;
    Ok((seconds > 0.0).then(|| std::time::Duration::from_secs_f64(seconds)))
}

/// ansible-core's result for a task stopped by its `timeout:`.
fn timed_out(limit: Duration) -> Failure {
    let seconds = limit.as_secs();
    Failure::Failed(modules::result([
        ("changed", Value::Bool(false)),
        ("msg", Value::from(format!("Task failed: Timed out after {seconds} second(s)."))),
        (
            "timedout",
            serde_json::json!({
                "frame": "Configure `DISPLAY_TRACEBACK` to see a traceback on timeout errors.",
                "period": seconds
            }),
        ),
    ]))
}

/// The conditions a task runs under: its enclosing blocks', its role entry's, then its own.
/// `Some` is the first that does not hold.
fn first_false_condition(
    templar: &crate::template::Templar,
    task: &Task,
    inherited: &Inherited,
    context: &Arc<Context>,
) -> Result<Option<Value>, String> {
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
        if !templar.condition(&expression, context).map_err(|error| error.to_string())? {
            return Ok(Some(condition));
        }
    }
    Ok(None)
}

/// Whether every condition of `task` holds with these variables.
pub fn conditions_hold(
    shared: &Shared,
    task: &Task,
    inherited: &Inherited,
    vars: Map<String, Value>,
) -> Result<bool, String> {
    let context = Context::new(vars, shared.templar.clone());
    Ok(first_false_condition(&shared.templar, task, inherited, &context)?.is_none())
}

/// How a loop item is shown in `(item=…)`: strings bare, everything else as Python prints it.
fn item_label(item: &Value) -> String {
    match item {
        Value::String(text) => text.clone(),
        other => crate::output::python_repr(other),
    }
}

/// The connection variables, templated (they may refer to other variables).
fn connection_vars(
    templar: &crate::template::Templar,
    context: &Arc<Context>,
) -> Result<Map<String, Value>, String> {
    let mut vars = Map::new();
    for name in [
        "ansible_connection",
        "ansible_host",
        "ansible_ssh_host",
        "ansible_port",
        "ansible_ssh_port",
        "ansible_user",
        "ansible_ssh_user",
        "ansible_ssh_private_key_file",
        "ansible_private_key_file",
        "ansible_password",
        "ansible_ssh_pass",
        "ansible_ssh_common_args",
        "ansible_ssh_extra_args",
        "ansible_host_key_checking",
        "ansible_ssh_timeout",
    ] {
        if let Some(raw) = context.raw().get(name) {
            let value =
                templar.render_value(raw, context).map_err(|error| format!("{name}: {error}"))?;
            vars.insert(name.to_string(), value);
        }
    }
    Ok(vars)
}

/// Become: the CLI, then play/block/task keywords, then `ansible_become*` variables.
fn become_settings(
    shared: &Shared,
    keywords: &Map<String, Value>,
    context: &Arc<Context>,
) -> Result<Become, String> {
    let templar = &shared.templar;
    let pick = |keyword: &str, variable: &str| -> Result<Option<Value>, String> {
        if let Some(raw) = context.raw().get(variable) {
            return templar
                .render_value(raw, context)
                .map(Some)
                .map_err(|e| format!("{variable}: {e}"));
        }
        match keywords.get(keyword) {
            Some(raw) => {
                templar.render_value(raw, context).map(Some).map_err(|e| format!("{keyword}: {e}"))
            }
            None => Ok(None),
        }
    };
    let enabled = pick("become", "ansible_become")?
        .as_ref()
        .and_then(modules::args_to_bool)
        .unwrap_or(shared.options.become_);
    let user = pick("become_user", "ansible_become_user")?
        .map(|v| display_string(&v))
        .or_else(|| shared.options.become_user.clone())
        .unwrap_or_else(|| "root".into());
    let method = pick("become_method", "ansible_become_method")?
        .map(|v| display_string(&v))
        .or_else(|| shared.options.become_method.clone())
        .unwrap_or_else(|| "sudo".into());
    let flags = pick("become_flags", "ansible_become_flags")?
        .map(|v| display_string(&v))
        .unwrap_or_default();
    // `ansible_become_password` (or `_pass`) wins over -K and the password file.
    let password = match pick("", "ansible_become_password")? {
        Some(value) => Some(value),
        None => pick("", "ansible_become_pass")?,
    }
    .map(|value| display_string(&value))
    .or_else(|| shared.options.become_password.clone())
    .filter(|password| enabled && !password.is_empty());
    let _ = quote;
    Ok(Become { enabled, user, method, flags, password })
}
