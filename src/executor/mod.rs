//! Running plays: hosts move through tasks in lockstep (Ansible's linear strategy), up to
//! `forks` hosts at a time, with handlers flushed after each section.

mod batch;
mod connect;
mod host_task;
mod include;
mod include_role;
mod meta;
mod vars;
mod vars_files;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;
use serde_json::{Map, Value};

use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::inventory::{self, Inventory};
use crate::output::{Display, Stats, Status};
use crate::playbook::rollout::Strategy;
use crate::playbook::tags::{self, TagFilter};
use crate::playbook::{Play, Playbook, Task, TaskBody, role::RoleScope};
use crate::template::Templar;

pub use host_task::Report;

/// What the command line asked for.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub playbooks: Vec<PathBuf>,
    pub inventories: Vec<String>,
    pub extra_vars: Map<String, Value>,
    pub limit: Option<String>,
    pub forks: usize,
    /// The connection timeout in seconds (`-T`); 0 means ansible-core's default, 10.
    pub timeout: u64,
    /// `-c`: the connection type where neither `ansible_connection` nor `connection:` says.
    pub connection: Option<String>,
    pub user: Option<String>,
    pub private_key: Option<PathBuf>,
    pub become_: bool,
    pub become_user: Option<String>,
    pub become_method: Option<String>,
    /// From `-K` or a become password file; `ansible_become_password` wins over it.
    pub become_password: Option<String>,
    /// From `-k` or a connection password file; `ansible_password` wins over it.
    pub connection_password: Option<String>,
    pub check: bool,
    pub diff: bool,
    pub verbosity: u8,
    pub list_hosts: bool,
    pub list_tasks: bool,
    pub list_tags: bool,
    pub syntax_check: bool,
    /// `-t`: run only tasks with these tags (each value may hold several, comma-separated).
    pub tags: Vec<String>,
    /// `--skip-tags`: run no task with these tags.
    pub skip_tags: Vec<String>,
    /// Ctrl-C ends the run as it ends ansible-playbook's (exit 99, no recap); an image
    /// bake, which runs playbooks inside its own interrupt handling, leaves this off.
    pub stop_on_interrupt: bool,
    /// `--start-at-task`: skip tasks until one with this name (or glob).
    pub start_at_task: Option<String>,
    /// `--step`: ask before each task.
    pub step: bool,
    /// `--force-handlers`: run notified handlers on hosts that failed.
    pub force_handlers: bool,
    /// `--ssh-common-args` / `--ssh-extra-args`, for hosts whose variables set none.
    pub ssh_common_args: Option<String>,
    pub ssh_extra_args: Option<String>,
}

/// ansible-playbook's exit codes.
pub mod exit {
    pub const OK: i32 = 0;
    pub const ERROR: i32 = 1;
    pub const HOST_FAILED: i32 = 2;
    pub const HOST_UNREACHABLE: i32 = 4;
    pub const PARSER_ERROR: i32 = 4;
    pub const OPTIONS_ERROR: i32 = 5;
    /// Stopped by Ctrl-C or SIGTERM, as a shell reports SIGINT.
    pub const INTERRUPTED: i32 = 130;
    /// ansible-playbook's code for a run stopped by Ctrl-C.
    pub const USER_INTERRUPTED: i32 = 99;
}

/// Variables keyed by group or host name.
type VarsByName = HashMap<String, Map<String, Value>>;

/// Read-only state every host's task execution shares.
pub struct Shared {
    pub options: Options,
    /// Read-mostly: `add_host` and `group_by` change it during the run.
    pub inventory: std::sync::RwLock<Inventory>,
    pub templar: Templar,
    pub display: Display,
    pub playbook_dir: PathBuf,
    pub playbook_group_vars: VarsByName,
    pub playbook_host_vars: VarsByName,
    /// The `groups` variable, kept in step with the inventory.
    pub groups: std::sync::RwLock<Value>,
    /// Every `add_host` / `group_by` change so far, kept across `meta: refresh_inventory`.
    pub inventory_changes: std::sync::Mutex<Vec<host_task::InventoryChange>>,
    pub tag_filter: TagFilter,
    /// Every connection opened, to close them all at the end or on Ctrl-C.
    pub connections: OpenConnections,
}

impl Shared {
    /// The inventory as it stands now.
    pub fn inventory(&self) -> std::sync::RwLockReadGuard<'_, Inventory> {
        self.inventory.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The `groups` variable as it stands now.
    pub fn groups(&self) -> Value {
        self.groups.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Applies what `add_host` and `group_by` reported, for the tasks and plays after.
    fn change_inventory(&self, changes: Vec<host_task::InventoryChange>) {
        if changes.is_empty() {
            return;
        }
        let mut log =
            self.inventory_changes.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        log.extend(changes.iter().cloned());
        let mut inventory = self.inventory.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        Self::apply_changes(&mut inventory, changes);
        *self.groups.write().unwrap_or_else(|poisoned| poisoned.into_inner()) =
            inventory.groups_value();
    }

    fn apply_changes(inventory: &mut Inventory, changes: Vec<host_task::InventoryChange>) {
        for change in changes {
            match change {
                host_task::InventoryChange::Host { name, groups, vars } => {
                    inventory.add_runtime_host(&name, &groups, vars)
                }
                host_task::InventoryChange::Group { host, group, parents } => {
                    inventory.add_runtime_group(&host, &group, &parents)
                }
            }
        }
    }

    /// `meta: refresh_inventory`: the sources read again, then the run's own additions
    /// (which ansible-core keeps) applied on top.
    pub fn refresh_inventory(&self, mut fresh: Inventory) {
        let log = self.inventory_changes.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Self::apply_changes(&mut fresh, log.clone());
        *self.groups.write().unwrap_or_else(|poisoned| poisoned.into_inner()) =
            fresh.groups_value();
        *self.inventory.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = fresh;
    }
}

/// What a play's tasks see of the play.
#[derive(Clone)]
pub struct PlayScope {
    pub name: String,
    pub vars: Map<String, Value>,
    pub keywords: Map<String, Value>,
    pub roles: Vec<Arc<RoleScope>>,
    /// The hosts of the batch being run (all the play's hosts without `serial`).
    pub all_hosts: Vec<String>,
    /// Every host of the play, across batches (`ansible_play_hosts_all`).
    pub play_hosts_all: Vec<String>,
    pub active_hosts: Vec<String>,
    pub handlers: Vec<Task>,
    pub rollout: crate::playbook::Rollout,
}

/// One host's progress through the run.
pub struct HostState {
    pub name: String,
    pub facts: Map<String, Value>,
    pub registered: Map<String, Value>,
    /// Variables from `include_vars`, below `set_fact` in precedence.
    pub included_vars: Map<String, Value>,
    /// The play's `vars_files`, as read for this host (their names may use its variables).
    pub vars_files: Map<String, Value>,
    pub connection: Option<(connect::ConnectionKey, Arc<Connection>)>,
    /// Connections to the hosts this host's tasks were delegated to.
    pub delegated: Vec<(connect::ConnectionKey, Arc<Connection>)>,
    pub failed: bool,
    pub unreachable: bool,
    /// Handlers notified and not yet run, by the name used in `notify:`.
    pub notified: Vec<String>,
    /// Set by `meta: end_host` or `end_play`.
    pub ended: bool,
    /// Roles (by identity) a task of which ran on this host in this play.
    pub roles_started: BTreeSet<String>,
    /// Roles (by identity) this host has finished in this play: not run again.
    pub roles_done: BTreeSet<String>,
}

impl HostState {
    fn new(name: &str) -> HostState {
        HostState {
            name: name.to_string(),
            facts: Map::new(),
            registered: Map::new(),
            included_vars: Map::new(),
            vars_files: Map::new(),
            connection: None,
            delegated: Vec::new(),
            failed: false,
            unreachable: false,
            notified: Vec::new(),
            ended: false,
            roles_started: BTreeSet::new(),
            roles_done: BTreeSet::new(),
        }
    }

    fn active(&self) -> bool {
        !self.failed && !self.unreachable && !self.ended
    }
}

/// Loads everything first (nothing touches a host before all input is valid), then runs.
pub async fn run(options: Options) -> Result<i32> {
    let playbooks: Vec<Playbook> =
        options.playbooks.iter().map(|path| Playbook::load(path)).collect::<Result<_>>()?;
    for playbook in &playbooks {
        for play in &playbook.plays {
            check_notifications(play)?;
        }
    }
    if options.syntax_check {
        for path in &options.playbooks {
            crate::output::out(&format!("\nplaybook: {}\n", path.display()));
        }
        return Ok(exit::OK);
    }
    let mut inventory = Inventory::load(&options.inventories)?;
    if inventory.hosts.is_empty() && options.inventories.is_empty() {
        crate::output::err(
            "[WARNING]: No inventory was parsed, only implicit localhost is available\n",
        );
    }
    for warning in &crate::config::current()?.warnings {
        crate::output::err(&format!("[WARNING]: {warning}\n"));
    }
    add_implicit_localhost(&mut inventory, &playbooks, &options);
    if let Some(limit) = &options.limit
        && inventory::select(&inventory, limit)?.is_empty()
        && !(inventory.implicit_localhost && limit.contains("localhost"))
    {
        // A typo in --limit must not look like a successful run, as in ansible-playbook.
        crate::output::err(&format!(
            "[WARNING]: Could not match supplied host pattern, ignoring: {limit}\n"
        ));
        crate::output::err(
            "[ERROR]: Specified inventory, host pattern and/or --limit leaves us with no hosts to target.\n",
        );
        return Ok(exit::ERROR);
    }

    let playbook_dir = options
        .playbooks
        .first()
        .and_then(|p| p.parent())
        .map(|p| if p.as_os_str().is_empty() { PathBuf::from(".") } else { p.to_path_buf() })
        .unwrap_or_else(|| PathBuf::from("."));
    let playbook_dir = std::fs::canonicalize(&playbook_dir).unwrap_or(playbook_dir);
    let (playbook_group_vars, playbook_host_vars) = playbook_side_vars(&inventory, &playbook_dir)?;
    // Listing tags without asking for any lists them all, `never` included.
    let no_tags_given = options.tags.is_empty() && options.skip_tags.is_empty();
    let tag_filter = if options.list_tags && no_tags_given {
        TagFilter::new(&["never".into(), "all".into()], &[])
    } else {
        TagFilter::new(&options.tags, &options.skip_tags)
    };
    let shared = Shared {
        tag_filter,
        groups: std::sync::RwLock::new(inventory.groups_value()),
        inventory_changes: std::sync::Mutex::new(Vec::new()),
        display: Display::new(options.verbosity),
        templar: Templar::new(),
        playbook_dir,
        playbook_group_vars,
        playbook_host_vars,
        inventory: std::sync::RwLock::new(inventory),
        options,
        connections: OpenConnections::default(),
    };
    if shared.options.stop_on_interrupt {
        watch_interrupts(shared.connections.clone());
    }
    let mut runner = Runner::new(&shared);
    runner.start_at = shared.options.start_at_task.clone();
    runner.stepping = shared.options.step;
    runner.run_playbooks(&playbooks).await?;
    close_connections(&shared.connections).await;
    if shared.options.list_hosts || shared.options.list_tasks || shared.options.list_tags {
        return Ok(exit::OK);
    }
    // ansible-playbook reports a start task it never met, and still exits 0.
    if let Some(pattern) = &runner.start_at {
        crate::output::err(&format!(
            "[ERROR]: No matching task \"{pattern}\" found. Note: --start-at-task can only \
             follow static includes.\n"
        ));
    }
    // A host that no task ever reported on has no recap line.
    runner.stats.retain(|_, s| {
        s.ok + s.changed + s.unreachable + s.failed + s.skipped + s.rescued + s.ignored > 0
    });
    shared.display.recap(&runner.stats);
    // The exit code follows the hosts' state at the end: `meta: clear_host_errors` forgives.
    let unreachable = runner.hosts.values().any(|h| h.unreachable);
    let failed = runner.hosts.values().any(|h| h.failed);
    Ok(if runner.stopped_by_failures {
        exit::HOST_FAILED
    } else if unreachable {
        exit::HOST_UNREACHABLE
    } else if failed {
        exit::HOST_FAILED
    } else {
        exit::OK
    })
}

/// Every connection opened by a run.
type OpenConnections = Arc<std::sync::Mutex<Vec<Arc<Connection>>>>;

/// Ctrl-C ends the run as it ends ansible-playbook's: connections closed, no recap, exit 99.
/// The watch has a thread of its own, so that it answers even while every worker of the
/// run's runtime is busy hashing or templating.
fn watch_interrupts(connections: OpenConnections) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
    std::thread::spawn(move || {
        let Ok(watcher) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            return;
        };
        if watcher.block_on(tokio::signal::ctrl_c()).is_err() {
            return;
        }
        let (closed, wait) = std::sync::mpsc::channel();
        runtime.spawn(async move {
            close_connections(&connections).await;
            let _ = closed.send(());
        });
        // Exiting closes the sockets anyway; the goodbye is a courtesy worth a moment only.
        let _ = wait.recv_timeout(std::time::Duration::from_millis(1500));
        crate::output::clear_progress();
        crate::output::err("[ERROR]: User interrupted execution\n");
        std::process::exit(exit::USER_INTERRUPTED);
    });
}

/// Says goodbye to every host connected to, all at once; a host that no longer answers
/// gets a second, not more.
async fn close_connections(connections: &OpenConnections) {
    let open: Vec<Arc<Connection>> =
        std::mem::take(&mut *connections.lock().unwrap_or_else(|p| p.into_inner()));
    let closing = open.iter().map(|connection| {
        tokio::time::timeout(std::time::Duration::from_secs(1), connection.close())
    });
    futures::future::join_all(closing).await;
}

/// `localhost` exists implicitly (connection local) when a play names it and the inventory does not.
fn add_implicit_localhost(inventory: &mut Inventory, playbooks: &[Playbook], options: &Options) {
    let named = playbooks.iter().flat_map(|p| &p.plays).any(|play| {
        play.hosts.split([':', ',']).any(|term| matches!(term.trim(), "localhost" | "127.0.0.1"))
    });
    let limited = options.limit.as_deref().is_some_and(|limit| limit.contains("localhost"));
    if (named || limited) && !inventory.hosts.contains_key("localhost") {
        let host = inventory.add_host_to("ungrouped", "localhost");
        host.vars.insert("ansible_connection".into(), Value::from("local"));
        // The implicit localhost belongs to no group, not even `all` for patterns.
        inventory.groups["ungrouped"].hosts.retain(|name| name != "localhost");
        inventory.implicit_localhost = true;
    }
}

/// `group_vars/` and `host_vars/` next to the playbook, which outrank the inventory's.
fn playbook_side_vars(
    inventory: &Inventory,
    directory: &std::path::Path,
) -> Result<(VarsByName, VarsByName)> {
    let mut groups = HashMap::new();
    let mut hosts = HashMap::new();
    let canonical = |p: &std::path::Path| std::fs::canonicalize(p).ok();
    if inventory.directories.iter().any(|d| canonical(d) == canonical(directory)) {
        return Ok((groups, hosts));
    }
    for group in inventory.groups.keys() {
        groups.insert(
            group.clone(),
            inventory::read_vars_public(&directory.join("group_vars"), group)?,
        );
    }
    for host in inventory.hosts.keys() {
        hosts
            .insert(host.clone(), inventory::read_vars_public(&directory.join("host_vars"), host)?);
    }
    Ok((groups, hosts))
}

/// Every `notify:` must name a handler (or a `listen:` topic) of its play.
fn check_notifications(play: &Play) -> Result<()> {
    let mut known: Vec<String> = Vec::new();
    for handler in &play.handlers {
        if let Some(name) = &handler.name {
            known.push(name.clone());
            if let Some(role) = &handler.role {
                known.push(format!("{} : {name}", role.name));
            }
        }
        if let Some(listen) = handler.keywords.get("listen") {
            known.extend(string_list(listen));
        }
    }
    let mut tasks: Vec<&Task> = Vec::new();
    for list in [&play.pre_tasks, &play.tasks, &play.post_tasks, &play.handlers] {
        collect_tasks(list, &mut tasks);
    }
    for task in tasks {
        if let Some(notify) = task.keywords.get("notify") {
            for name in string_list(notify) {
                if !name.contains("{{") && !known.contains(&name) {
                    return Err(Error::invalid(
                        &task.mark,
                        format!(
                            "The requested handler '{name}' was not found in either the main handlers list nor in the listening handlers list"
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The play's own `tags:`.
fn play_tags(play: &Play) -> BTreeSet<String> {
    play.keywords.get("tags").map(tags::parse).unwrap_or_default().into_iter().collect()
}

/// A task's tags with those it inherits from its blocks, role and play.
pub fn task_tags(task: &Task, inherited: &BTreeSet<String>) -> BTreeSet<String> {
    let mut all = inherited.clone();
    if let Some(role) = &task.role {
        all.extend(role.tags.iter().cloned());
    }
    if let Some(own) = task.keywords.get("tags") {
        all.extend(tags::parse(own));
    }
    all
}

/// Which sections of a block [`selected_leaves`] walks: `--list-tasks` and `--list-tags`
/// show only `block:` tasks, as ansible-core 2.19 lists them; `--start-at-task` looks
/// through all three.
#[derive(Clone, Copy)]
enum Sections {
    All,
    BlockOnly,
}

/// The tasks (not blocks) the tag filter selects, with their whole tag sets, in order.
fn selected_leaves<'a>(
    list: &'a [Task],
    inherited: &BTreeSet<String>,
    filter: &TagFilter,
    sections: Sections,
    out: &mut Vec<(&'a Task, BTreeSet<String>)>,
) {
    for task in list {
        let tags = task_tags(task, inherited);
        match &task.body {
            TaskBody::Block { block, rescue, always } => {
                let others: &[&Vec<Task>] = match sections {
                    Sections::All => &[rescue, always],
                    Sections::BlockOnly => &[],
                };
                for section in std::iter::once(&block).chain(others) {
                    selected_leaves(section, &tags, filter, sections, out);
                }
            }
            _ if crate::playbook::role::is_complete_marker(task) => {}
            _ if filter.selects(&tags) => out.push((task, tags)),
            _ => {}
        }
    }
}

fn collect_tasks<'a>(list: &'a [Task], out: &mut Vec<&'a Task>) {
    for task in list {
        out.push(task);
        if let TaskBody::Block { block, rescue, always } = &task.body {
            collect_tasks(block, out);
            collect_tasks(rescue, out);
            collect_tasks(always, out);
        }
    }
}

/// Whether the task (or a block around it) says `run_once`.
fn is_run_once(task: &Task, inherited: &Inherited) -> bool {
    // add_host runs once for the batch, as ansible-core's bypass of the host loop.
    if matches!(task.body, TaskBody::Module { module: "add_host", .. }) {
        return true;
    }
    let value = task.keywords.get("run_once").or_else(|| inherited.keywords.get("run_once"));
    value.and_then(crate::modules::args_to_bool).unwrap_or(false)
}

/// The first task (not block) of a list, where a run of it starts.
fn first_task(list: &[Task]) -> Option<&Task> {
    list.iter().find_map(|task| match &task.body {
        TaskBody::Block { block, rescue, always } => {
            first_task(block).or_else(|| first_task(rescue)).or_else(|| first_task(always))
        }
        _ if crate::playbook::role::is_complete_marker(task) => None,
        _ => Some(task),
    })
}

/// `--start-at-task`: the name, or `role : name`, equal to the pattern or matching it as a glob.
fn task_matches(task: &Task, pattern: &str) -> bool {
    let glob = crate::template::lookups::glob_matches;
    let shown = task.display_name();
    let names = task.name.iter().chain(std::iter::once(&shown));
    names.into_iter().any(|name| name == pattern || glob(pattern, name))
}

/// The names a handler answers to: its name, `role : name`, and its `listen` topics.
fn handler_names(handler: &Task) -> Vec<String> {
    let mut names: Vec<String> = handler.name.iter().cloned().collect();
    if let (Some(role), Some(name)) = (&handler.role, &handler.name) {
        names.push(format!("{} : {name}", role.name));
    }
    if let Some(listen) = handler.keywords.get("listen") {
        names.extend(string_list(listen));
    }
    names
}

/// A keyword's truth (`any_errors_fatal: yes`).
fn flag(keywords: &Map<String, Value>, name: &str) -> bool {
    keywords.get(name).and_then(crate::modules::args_to_bool).unwrap_or(false)
}

/// `throttle:` as a host count; 0 means no limit.
fn throttle(value: &Value) -> Option<usize> {
    let limit = crate::playbook::display_string(value).trim().parse::<usize>().ok()?;
    (limit > 0).then_some(limit)
}

pub fn string_list(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items.iter().map(crate::playbook::display_string).collect(),
        Value::Null => Vec::new(),
        other => vec![crate::playbook::display_string(other)],
    }
}

/// Keywords that flow from a block into its tasks.
#[derive(Clone, Default)]
pub struct Inherited {
    pub when: Vec<Value>,
    pub tags: BTreeSet<String>,
    pub vars: Vec<Map<String, Value>>,
    pub keywords: Map<String, Value>,
    /// Hosts inside a block with a `rescue:`: their failures do not count against
    /// `max_fail_percentage` until the rescue has had its say.
    pub rescuable: Vec<String>,
}

/// How a play ended, for the playbook loop.
#[derive(PartialEq)]
enum PlayEnd {
    Finished,
    AllFailed,
}

struct Runner<'s> {
    shared: &'s Shared,
    hosts: BTreeMap<String, HostState>,
    stats: BTreeMap<String, Stats>,
    /// Set when `max_fail_percentage` stopped a batch: ansible-playbook then exits 2.
    stopped_by_failures: bool,
    progress: crate::output::Progress,
    /// `--start-at-task` not reached yet: tasks are skipped until it is.
    start_at: Option<String>,
    /// `--step` still asking (answering `c` stops it).
    stepping: bool,
    /// The run has said once that vars_prompt could not ask (no terminal).
    prompt_warned: bool,
}

/// Asks vars_prompt questions on the terminal; nothing when stdin is not one.
struct TerminalAsker;

impl crate::playbook::prompt::Asker for TerminalAsker {
    fn ask(&mut self, question: &str, echo: bool) -> Option<std::io::Result<String>> {
        use std::io::IsTerminal;
        std::io::stdin().is_terminal().then(|| crate::password::ask(question, echo))
    }

    fn mismatch(&mut self) {
        crate::output::out("***** VALUES ENTERED DO NOT MATCH ****\n");
    }
}

impl<'s> Runner<'s> {
    fn new(shared: &'s Shared) -> Runner<'s> {
        Runner {
            shared,
            hosts: BTreeMap::new(),
            stats: BTreeMap::new(),
            stopped_by_failures: false,
            progress: crate::output::Progress::new(),
            start_at: None,
            stepping: false,
            prompt_warned: false,
        }
    }

    async fn run_playbooks(&mut self, playbooks: &[Playbook]) -> Result<()> {
        let options = &self.shared.options;
        for (playbook, path) in playbooks.iter().zip(&options.playbooks) {
            if options.list_hosts || options.list_tasks || options.list_tags {
                self.list(playbook, path)?;
                continue;
            }
            for play in &playbook.plays {
                // A play whose every host failed ends its playbook, as in ansible-core.
                if self.run_play(play).await? == PlayEnd::AllFailed {
                    break;
                }
            }
        }
        Ok(())
    }

    fn play_hosts(&self, play: &Play) -> Result<Vec<String>> {
        let inventory = self.shared.inventory();
        let inventory = &*inventory;
        let mut hosts = inventory::select(inventory, &play.hosts)?;
        if inventory.implicit_localhost
            && play.hosts.split([':', ',']).any(|t| t.trim() == "localhost")
            && !hosts.iter().any(|h| h == "localhost")
        {
            hosts.push("localhost".into());
        }
        if let Some(limit) = &self.shared.options.limit {
            let allowed = inventory::select(inventory, limit)?;
            hosts.retain(|host| allowed.contains(host));
        }
        Ok(hosts)
    }

    /// `--list-hosts`, `--list-tasks`, `--list-tags`: what would run, as ansible-playbook
    /// prints it.
    fn list(&self, playbook: &Playbook, path: &std::path::Path) -> Result<()> {
        let options = &self.shared.options;
        crate::output::out(&format!("\nplaybook: {}\n", path.display()));
        for (index, play) in playbook.plays.iter().enumerate() {
            let hosts = self.play_hosts(play)?;
            let name = play.name.clone().unwrap_or_else(|| play.hosts.clone());
            let play_tags = play_tags(play);
            let shown: Vec<&str> = play_tags.iter().map(String::as_str).collect();
            let mut text = format!(
                "\n  play #{} ({}): {}\tTAGS: [{}]",
                index + 1,
                play.hosts,
                name,
                shown.join(",")
            );
            if options.list_hosts {
                text += &format!("\n    pattern: ['{}']\n    hosts ({}):", play.hosts, hosts.len());
                for host in &hosts {
                    text += &format!("\n      {host}");
                }
            }
            crate::output::out(&format!("{text}\n"));
            if !(options.list_tasks || options.list_tags) {
                continue;
            }
            let mut text =
                if options.list_tasks { "    tasks:\n".to_string() } else { String::new() };
            let mut leaves = Vec::new();
            for list in [&play.pre_tasks, &play.tasks, &play.post_tasks] {
                let filter = &self.shared.tag_filter;
                selected_leaves(list, &play_tags, filter, Sections::BlockOnly, &mut leaves);
            }
            let mut all_tags = play_tags.clone();
            for (task, tags) in &leaves {
                all_tags.extend(tags.iter().cloned());
                if options.list_tasks {
                    let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
                    text +=
                        &format!("      {}\tTAGS: [{}]\n", task.display_name(), tags.join(", "));
                }
            }
            if options.list_tags {
                let tags: Vec<&str> = all_tags.iter().map(String::as_str).collect();
                text += &format!("      TASK TAGS: [{}]\n", tags.join(", "));
            }
            crate::output::out(&format!("{}\n", text.trim_end_matches('\n')));
        }
        Ok(())
    }

    /// Runs a play batch by batch (`serial`), each batch as ansible-core runs a whole play:
    /// its banner, facts, sections and handlers.
    async fn run_play(&mut self, play: &Play) -> Result<PlayEnd> {
        let display = &self.shared.display;
        let title = play.name.clone().unwrap_or_else(|| play.hosts.clone());
        // vars_prompt is asked first, whatever the play's hosts, as ansible-playbook does.
        let prompted = self.prompted_vars(play)?;
        let all_hosts = batch::ordered(self.play_hosts(play)?, play.rollout.order);
        // While the start task is ahead, a play without it is skipped whole.
        if let Some(pattern) = &self.start_at
            && !self.play_has_task(play, pattern)
        {
            display.banner(&format!("PLAY [{title}]"));
            return Ok(PlayEnd::Finished);
        }
        for host in &all_hosts {
            let state = self.hosts.entry(host.clone()).or_insert_with(|| HostState::new(host));
            state.ended = false;
            // Roles run once per play: a new play starts afresh.
            state.roles_started.clear();
            state.roles_done.clear();
            self.stats.entry(host.clone()).or_default();
        }
        let hosts: Vec<String> =
            all_hosts.iter().filter(|h| self.hosts[*h].active()).cloned().collect();
        if hosts.is_empty() {
            display.banner(&format!("PLAY [{title}]"));
            display.print("skipping: no hosts matched");
            return Ok(PlayEnd::Finished);
        }
        let batches = batch::batches(&hosts, &play.rollout.serial);
        let count = batches.len();
        for (index, batch) in batches.into_iter().enumerate() {
            self.progress.start_batch(index + 1, count, batch.len());
            let mut vars = play.vars.clone();
            vars.extend(prompted.clone());
            let mut scope = PlayScope {
                name: title.clone(),
                vars,
                keywords: play.keywords.clone(),
                roles: play.roles.clone(),
                all_hosts: batch.clone(),
                play_hosts_all: all_hosts.clone(),
                active_hosts: batch.clone(),
                handlers: play.handlers.clone(),
                rollout: play.rollout.clone(),
            };
            // A vars file that cannot be read (or decrypted) stops the run before the play.
            self.load_vars_files(play, &scope)?;
            display.banner(&format!("PLAY [{title}]"));
            self.run_batch(play, &mut scope).await;
            let outcomes = batch
                .iter()
                .map(|h| (h.as_str(), self.hosts[h].failed || self.hosts[h].unreachable));
            self.progress.finish_batch(outcomes);
            // A batch whose every host failed ends the playbook, as in ansible-core; so does
            // a batch stopped by any_errors_fatal or max_fail_percentage (all its hosts fail).
            if batch.iter().all(|h| self.hosts[h].failed || self.hosts[h].unreachable) {
                return Ok(PlayEnd::AllFailed);
            }
        }
        Ok(PlayEnd::Finished)
    }

    /// The play's `vars_prompt` answers (they rank just above its `vars:`). Without a
    /// terminal nothing is asked: defaults, and one warning for the run.
    fn prompted_vars(&mut self, play: &Play) -> Result<Map<String, Value>> {
        if play.prompts.is_empty() {
            return Ok(Map::new());
        }
        let extra = &self.shared.options.extra_vars;
        // A default is rendered now, with the play's vars, and kept as text.
        let mut vars = play.vars.clone();
        vars.extend(extra.clone());
        let templar = &self.shared.templar;
        let context = crate::template::Context::new(vars, templar.clone());
        let mut prompts = play.prompts.clone();
        for prompt in &mut prompts {
            if let Some(default) = &prompt.default {
                let rendered = templar.render_value(default, &context).map_err(|error| {
                    Error::template(format!("vars_prompt {}: default: {error}", prompt.name))
                })?;
                let text = match rendered {
                    Value::String(text) => text,
                    other => crate::output::python_repr(&other),
                };
                prompt.default = Some(Value::String(text));
            }
        }
        let (values, asked) =
            crate::playbook::prompt::answers(&prompts, extra, &mut TerminalAsker)?;
        if !asked && !self.prompt_warned {
            self.prompt_warned = true;
            self.shared.display.warning("Not prompting as we are not in interactive mode");
        }
        Ok(values)
    }

    async fn run_batch(&mut self, play: &Play, scope: &mut PlayScope) {
        match play.rollout.strategy {
            Strategy::Linear => self.run_sections(play, scope).await,
            Strategy::Free => self.run_free(play, scope).await,
        }
    }

    /// `strategy: free`: each host of the batch runs the play on its own, up to `forks` at
    /// a time, none waiting for another between tasks.
    async fn run_free(&mut self, play: &Play, scope: &mut PlayScope) {
        if scope.rollout.max_fail_percentage.is_some() {
            self.shared.display.warning(
                "Using max_fail_percentage with the free strategy is not supported, as tasks \
                 are executed independently on each host",
            );
        }
        // Every host's runner reads the others' variables from the run's shared hostvars.
        self.refresh_scope(scope);
        let mut runners = Vec::new();
        for host in &scope.all_hosts {
            let Some(state) = self.hosts.remove(host) else { continue };
            let mut runner = Runner::new(self.shared);
            runner.start_at = self.start_at.clone();
            runner.hosts.insert(host.clone(), state);
            runner.stats.insert(host.clone(), self.stats.remove(host).unwrap_or_default());
            let mut own = scope.clone();
            own.all_hosts = vec![host.clone()];
            own.rollout.max_fail_percentage = None;
            runners.push((runner, own));
        }
        let forks = self.shared.options.forks.max(1);
        let finished: Vec<Runner> =
            futures::stream::iter(runners.into_iter().map(|(mut runner, mut own)| async move {
                runner.run_sections(play, &mut own).await;
                runner
            }))
            .buffer_unordered(forks)
            .collect()
            .await;
        for mut runner in finished {
            self.hosts.append(&mut runner.hosts);
            self.stats.append(&mut runner.stats);
        }
    }

    /// The linear strategy over the batch: facts, then each section and its handlers.
    async fn run_sections(&mut self, play: &Play, scope: &mut PlayScope) {
        let gathering = crate::config::current().map(|c| c.gathering).unwrap_or_default();
        let gather = play.gather_facts.unwrap_or(gathering != crate::config::Gathering::Explicit);
        // `smart` gathers only hosts whose facts are not known yet.
        let ungathered: Vec<String> =
            scope.all_hosts.iter().filter(|h| self.hosts[*h].facts.is_empty()).cloned().collect();
        let only = (gathering == crate::config::Gathering::Smart).then_some(ungathered);
        // ansible-core gathers facts, whatever the play says, when --start-at-task lands on the
        // play's first task (its iterator has not moved past fact gathering).
        let starts_here = self.start_at.as_ref().is_some_and(|pattern| {
            let sections = [&play.pre_tasks, &play.tasks, &play.post_tasks];
            sections
                .into_iter()
                .find_map(|list| first_task(list))
                .is_some_and(|task| task_matches(task, pattern))
        });
        if (gather || starts_here) && only.as_ref().is_none_or(|hosts| !hosts.is_empty()) {
            let setup = Task {
                name: Some("Gathering Facts".into()),
                mark: play.mark.clone(),
                body: TaskBody::Module { module: "setup", args: Map::new() },
                keywords: Map::from_iter([("tags".to_string(), Value::from("always"))]),
                role: None,
            };
            let only = only.as_deref();
            let pending = self.start_at.take();
            self.run_list(std::slice::from_ref(&setup), scope, &Inherited::default(), only).await;
            self.start_at = pending;
        }
        let inherited = Inherited { tags: play_tags(play), ..Inherited::default() };
        for section in [&play.pre_tasks, &play.tasks, &play.post_tasks] {
            self.run_list(section, scope, &inherited, None).await;
            // The implicit flush is a task tagged `always`: `--skip-tags always` skips it.
            if self.shared.tag_filter.selects(&BTreeSet::from(["always".to_string()])) {
                self.flush_handlers(scope, true).await;
            }
            if !self.any_active(scope) {
                break;
            }
        }
    }

    fn any_active(&self, scope: &PlayScope) -> bool {
        scope.all_hosts.iter().any(|h| self.hosts[h].active())
    }

    /// The batch's active hosts, and `hostvars` for this runner's hosts (under
    /// `strategy: free` each host's runner refreshes its own; all share one store).
    fn refresh_scope(&self, scope: &mut PlayScope) {
        scope.active_hosts =
            scope.all_hosts.iter().filter(|h| self.hosts[*h].active()).cloned().collect();
        let hostvars = self.shared.templar.hostvars();
        for (name, host) in &self.hosts {
            let mut vars = vars::host_inventory_vars(self.shared, name);
            vars.extend(vars::fact_vars(&host.facts));
            vars.extend(host.included_vars.clone());
            vars.extend(host.registered.clone());
            vars.insert("inventory_hostname".into(), Value::from(name.clone()));
            hostvars.set(name, vars);
        }
    }

    /// Runs a task list on the play's active hosts (or just `only`, for rescue/always).
    fn run_list<'a>(
        &'a mut self,
        tasks: &'a [Task],
        scope: &'a mut PlayScope,
        inherited: &'a Inherited,
        only: Option<&'a [String]>,
    ) -> futures::future::BoxFuture<'a, ()> {
        Box::pin(async move {
            for task in tasks {
                let hosts: Vec<String> = scope
                    .all_hosts
                    .iter()
                    .filter(|h| self.hosts[*h].active() && only.is_none_or(|o| o.contains(h)))
                    .cloned()
                    .collect();
                if hosts.is_empty() {
                    return;
                }
                // A role already done on a host is skipped there, without a word.
                let hosts: Vec<String> =
                    hosts.into_iter().filter(|h| !self.role_done(h, task)).collect();
                if hosts.is_empty() {
                    continue;
                }
                if crate::playbook::role::is_complete_marker(task) {
                    self.complete_role(task, &hosts);
                    continue;
                }
                let tags = task_tags(task, &inherited.tags);
                let is_block = matches!(task.body, TaskBody::Block { .. });
                if !is_block && !self.shared.tag_filter.selects(&tags) {
                    continue;
                }
                if !is_block && !self.steer(task) {
                    continue;
                }
                self.start_role(task, &hosts);
                match &task.body {
                    TaskBody::Include { file, base } => {
                        self.include(task, file, base, scope, inherited, &hosts).await
                    }
                    TaskBody::IncludeRole { args } => {
                        self.include_role(task, args, scope, inherited, &hosts).await
                    }
                    TaskBody::Module { module: "meta", args } => {
                        self.meta(task, args, scope, inherited, &hosts).await
                    }
                    TaskBody::Module { .. } => {
                        self.shared.display.banner(&format!("TASK [{}]", task.display_name()));
                        self.run_task(task, scope, inherited, &hosts, false).await;
                    }
                    TaskBody::Block { block, rescue, always } => {
                        let mut inner = inherited.clone();
                        inner.tags = tags;
                        if let Some(when) = task.keywords.get("when") {
                            inner.when.push(when.clone());
                        }
                        if let Some(Value::Object(vars)) = task.keywords.get("vars") {
                            inner.vars.push(vars.clone());
                        }
                        for (key, value) in &task.keywords {
                            if !matches!(key.as_str(), "when" | "vars" | "name") {
                                inner.keywords.insert(key.clone(), value.clone());
                            }
                        }
                        self.run_block(block, rescue, always, scope, &inner, &hosts).await;
                    }
                }
            }
        })
    }

    /// `--start-at-task` and `--step`: whether this task runs.
    fn steer(&mut self, task: &Task) -> bool {
        if let Some(pattern) = &self.start_at {
            if !task_matches(task, pattern) {
                return false;
            }
            self.start_at = None;
        }
        let is_meta = matches!(task.body, TaskBody::Module { module: "meta", .. });
        if !self.stepping || is_meta {
            return true;
        }
        crate::output::out(&format!(
            "Perform task: TASK: {} (N)o/(y)es/(c)ontinue: ",
            task.display_name()
        ));
        let mut answer = String::new();
        if std::io::stdin().read_line(&mut answer).is_err() {
            return false;
        }
        match answer.trim().to_ascii_lowercase().as_str() {
            "y" | "yes" => true,
            "c" | "continue" => {
                self.stepping = false;
                true
            }
            _ => false,
        }
    }

    /// Whether the play holds a task (that the tags select) where `--start-at-task` lands.
    fn play_has_task(&self, play: &Play, pattern: &str) -> bool {
        let mut leaves = Vec::new();
        for list in [&play.pre_tasks, &play.tasks, &play.post_tasks] {
            let filter = &self.shared.tag_filter;
            selected_leaves(list, &play_tags(play), filter, Sections::All, &mut leaves);
        }
        leaves.iter().any(|(task, _)| task_matches(task, pattern))
    }

    /// Whether `task` belongs to a role `host` has finished (and that may not run twice).
    fn role_done(&self, host: &str, task: &Task) -> bool {
        task.role.as_ref().is_some_and(|role| {
            !role.allow_duplicates && self.hosts[host].roles_done.contains(&role.identity)
        })
    }

    fn start_role(&mut self, task: &Task, hosts: &[String]) {
        let Some(role) = &task.role else { return };
        for host in hosts {
            if let Some(state) = self.hosts.get_mut(host) {
                state.roles_started.insert(role.identity.clone());
            }
        }
    }

    /// A role's last (hidden) task: hosts that ran any of its tasks are done with it.
    fn complete_role(&mut self, task: &Task, hosts: &[String]) {
        let Some(role) = &task.role else { return };
        for host in hosts {
            if let Some(state) = self.hosts.get_mut(host)
                && state.roles_started.contains(&role.identity)
            {
                state.roles_done.insert(role.identity.clone());
            }
        }
    }

    async fn run_block(
        &mut self,
        block: &[Task],
        rescue: &[Task],
        always: &[Task],
        scope: &mut PlayScope,
        inherited: &Inherited,
        hosts: &[String],
    ) {
        let mut inside = inherited.clone();
        if !rescue.is_empty() {
            inside.rescuable.extend(hosts.iter().cloned());
        }
        self.run_list(block, scope, &inside, Some(hosts)).await;
        let failed: Vec<String> = hosts
            .iter()
            .filter(|h| self.hosts[*h].failed && !self.hosts[*h].unreachable)
            .cloned()
            .collect();
        if !rescue.is_empty() && !failed.is_empty() {
            for host in &failed {
                let state = self.hosts.get_mut(host).expect("host state exists");
                state.failed = false;
                // A host failed by another's any_errors_fatal has no failure to rescue.
                let stats = self.stats.entry(host.clone()).or_default();
                if stats.failed > 0 {
                    stats.failed -= 1;
                    stats.rescued += 1;
                }
            }
            self.run_list(rescue, scope, inherited, Some(&failed)).await;
        }
        if !always.is_empty() {
            let still_failed: Vec<String> = hosts
                .iter()
                .filter(|h| self.hosts[*h].failed && !self.hosts[*h].unreachable)
                .cloned()
                .collect();
            for host in &still_failed {
                self.hosts.get_mut(host).expect("host state exists").failed = false;
            }
            self.run_list(always, scope, inherited, Some(hosts)).await;
            for host in &still_failed {
                self.hosts.get_mut(host).expect("host state exists").failed = true;
            }
        }
    }

    /// Runs one task on `hosts`, up to `forks` at a time, printing each result as it lands.
    async fn run_task(
        &mut self,
        task: &Task,
        scope: &mut PlayScope,
        inherited: &Inherited,
        hosts: &[String],
        is_handler: bool,
    ) {
        self.refresh_scope(scope);
        let shared = self.shared;
        let scope_ref: &PlayScope = scope;
        let keywords = host_task::effective_keywords(scope, inherited, task);
        let forks = match keywords.get("throttle").and_then(throttle) {
            Some(limit) => shared.options.forks.min(limit),
            None => shared.options.forks,
        }
        .max(1);
        let all_hosts = hosts;
        let run_once = is_run_once(task, inherited);
        let hosts = if run_once { &hosts[..hosts.len().min(1)] } else { hosts };
        let before = hosts.first().map(|h| self.hosts[h].registered.clone()).unwrap_or_default();
        let mut states: Vec<HostState> =
            hosts.iter().filter_map(|h| self.hosts.remove(h)).collect();
        let reports: Vec<(HostState, Report)> = {
            let futures = states.drain(..).map(|mut state| async move {
                let report =
                    host_task::run(shared, scope_ref, &mut state, task, inherited, is_handler)
                        .await;
                shared.display.print_report(&report);
                (state, report)
            });
            futures::stream::iter(futures).buffer_unordered(forks).collect().await
        };
        let mut any_failed = false;
        let mut delegated = Vec::new();
        let mut changes = Vec::new();
        for (state, report) in reports {
            let stats = self.stats.entry(state.name.clone()).or_default();
            for status in &report.statuses {
                stats.count(*status, report.changed);
                any_failed |= matches!(status, Status::Failed | Status::Unreachable);
            }
            delegated.extend(report.delegated_facts);
            changes.extend(report.inventory_changes);
            self.progress.task_done(&state.name, !state.active() && !state.ended);
            self.hosts.insert(state.name.clone(), state);
        }
        self.shared.change_inventory(changes);
        // Facts for a delegated host land once every host's state is back in place.
        for (delegate, facts, gathered) in delegated {
            let target =
                self.hosts.entry(delegate.clone()).or_insert_with(|| HostState::new(&delegate));
            let place = if gathered { &mut target.facts } else { &mut target.registered };
            place.extend(facts);
        }
        if run_once && let Some(first) = hosts.first() {
            self.share_run_once(first, &before, all_hosts);
        }
        let fatal = flag(&keywords, "any_errors_fatal") && !flag(&keywords, "ignore_errors");
        if fatal && any_failed {
            self.fail_batch(scope);
        }
        self.check_max_fail_percentage(scope, inherited, hosts.len());
    }

    /// Marks every host of the batch still going as failed, without counting a failure in
    /// its recap, as ansible-core does for `any_errors_fatal` and `max_fail_percentage`.
    fn fail_batch(&mut self, scope: &PlayScope) {
        for host in &scope.all_hosts {
            if let Some(state) = self.hosts.get_mut(host)
                && !state.unreachable
            {
                state.failed = true;
            }
        }
    }

    /// After each task: more than `max_fail_percentage` of the batch failed (unreachable
    /// hosts do not count, as in ansible-core) stops the batch and the playbook.
    fn check_max_fail_percentage(&mut self, scope: &PlayScope, inherited: &Inherited, ran: usize) {
        let Some(percentage) = scope.rollout.max_fail_percentage else { return };
        if ran == 0 || self.stopped_by_failures {
            return;
        }
        let failed = scope
            .all_hosts
            .iter()
            .filter(|h| !inherited.rescuable.contains(h))
            .filter(|h| self.hosts.get(*h).is_some_and(|s| s.failed && !s.unreachable))
            .count();
        if batch::too_many_failed(failed, scope.all_hosts.len(), percentage) {
            self.fail_batch(scope);
            self.stopped_by_failures = true;
            // ansible-core says so twice: once for the rule, once for the empty batch.
            self.shared.display.banner("NO MORE HOSTS LEFT");
            self.shared.display.banner("NO MORE HOSTS LEFT");
        }
    }

    /// `run_once`: what the one host registered or set is set on every host of the batch,
    /// and its failure (unless ignored) stops them all, as in ansible-core.
    fn share_run_once(&mut self, first: &str, before: &Map<String, Value>, hosts: &[String]) {
        let after = &self.hosts[first];
        let failed = after.failed;
        let changed: Map<String, Value> = after
            .registered
            .iter()
            .filter(|(key, value)| before.get(*key) != Some(*value))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        for host in hosts.iter().filter(|h| h.as_str() != first) {
            if let Some(state) = self.hosts.get_mut(host) {
                state.registered.extend(changed.clone());
                state.failed |= failed;
            }
        }
    }

    /// Runs the notified handlers. With force_handlers, the flush at the end of a section
    /// (`implicit`) also runs them on hosts that failed, as ansible-core does.
    async fn flush_handlers(&mut self, scope: &mut PlayScope, implicit: bool) {
        let forced = self.shared.options.force_handlers
            || scope.keywords.get("force_handlers").and_then(crate::modules::args_to_bool)
                == Some(true);
        let force = implicit && forced;
        let handlers = scope.handlers.clone();
        let names: Vec<Vec<String>> = handlers.iter().map(handler_names).collect();
        for (index, handler) in handlers.iter().enumerate() {
            let own = &names[index];
            let hosts: Vec<String> = scope
                .all_hosts
                .iter()
                .filter(|h| {
                    let state = &self.hosts[*h];
                    let runs = state.active()
                        || force && state.failed && !state.unreachable && !state.ended;
                    runs && state.notified.iter().any(|n| own.contains(n))
                })
                .cloned()
                .collect();
            if hosts.is_empty() {
                continue;
            }
            self.shared.display.banner(&format!("RUNNING HANDLER [{}]", handler.display_name()));
            self.run_task(handler, scope, &Inherited::default(), &hosts, true).await;
            // A `listen` topic shared with a later handler stays pending until that one runs.
            let later: Vec<&String> = names[index + 1..].iter().flatten().collect();
            for host in &hosts {
                if let Some(state) = self.hosts.get_mut(host) {
                    state.notified.retain(|n| !own.contains(n) || later.contains(&n));
                }
            }
        }
    }
}
