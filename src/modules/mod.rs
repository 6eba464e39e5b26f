//! Task modules: each turns its arguments and what it finds on the host into shell commands,
//! following Validate → Query → Modify, and stops after Query in check mode.

mod apt;
mod apt_key;
mod apt_repository;
mod args;
mod assemble;
mod authorized_key;
mod blockinfile;
mod command;
mod control;
mod copy;
mod cron;
mod deb822_repository;
mod docker;
mod edit;
mod expand;
mod fetch;
mod file;
mod files;
mod find;
mod get_url;
mod getent;
mod hostname;
pub mod include_vars;
mod lineinfile;
mod modprobe;
mod mount;
mod package;
mod package_facts;
mod paths;
mod pause;
mod reboot;
mod replace;
mod script;
mod service_facts;
mod setup;
mod slurp;
mod stat;
mod sysctl;
mod systemd;
mod tempfile;
mod timezone;
mod unarchive;
mod uri;
mod user;
mod wait_for;
mod wait_for_connection;

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::connection::{
    Become, Connection, Output, SshConnection, SshTarget, Unreachable, wrap_become,
};
use crate::template::{Context, Templar};

pub use args::{Args, to_bool as args_to_bool};

/// A module's result keys (`changed`, `msg`, `rc`, …) as Ansible returns them.
pub type Outcome = Result<Map<String, Value>, Failure>;

/// Why a module did not succeed.
#[derive(Debug)]
pub enum Failure {
    /// The module ran and failed; the map is its result, with `msg`.
    Failed(Map<String, Value>),
    /// The host could not be reached.
    Unreachable(String),
}

impl From<Unreachable> for Failure {
    fn from(error: Unreachable) -> Failure {
        Failure::Unreachable(error.0)
    }
}

/// A failed result key: the `<<< caused by >>>` section ansible-core prints after the task's
/// excerpt when the cause lies in another file (a template): its message and origin.
pub const CAUSED_BY: &str = "_bramble_caused_by";

/// A template file that failed to render: ansible-core's message, the task's failure, and
/// the file's name, line and excerpt as the cause.
pub fn template_failure(
    path: &std::path::Path,
    text: String,
    error: crate::template::FileFailure,
) -> Failure {
    let origin = match error.position {
        Some((line, column)) => {
            let source = std::sync::Arc::new(crate::error::Source { path: path.into(), text });
            let mark = crate::error::Mark { source, line, column };
            let block = crate::output::error_block(&error.message, &mark);
            block.strip_prefix("[ERROR]: ").unwrap_or(&block).to_string()
        }
        None => format!("{}\nOrigin: {}\n", error.message, path.display()),
    };
    let mut result = Map::new();
    result.insert("changed".into(), Value::Bool(false));
    result.insert("msg".into(), Value::String(error.message));
    result.insert(CAUSED_BY.into(), Value::String(origin));
    Failure::Failed(result)
}

/// A failed result key: the action gave a `message` but no `msg` (include_vars does).
pub const UNKNOWN_ERROR: &str = "_bramble_unknown_error";

/// A failure with just a message (and `changed: false`).
pub fn fail(message: impl Into<String>) -> Failure {
    let mut result = Map::new();
    result.insert("changed".into(), Value::Bool(false));
    result.insert("msg".into(), Value::String(message.into()));
    Failure::Failed(result)
}

/// The host as a module sees it: a connection and the become settings of this task.
pub struct Remote {
    /// The live connection; `reconnect` swaps in a fresh one.
    connection: std::sync::Mutex<Arc<Connection>>,
    /// How to open the connection again, for SSH; local and chroot connections never break.
    target: Option<SshTarget>,
    /// Whether `reconnect` replaced the connection the task started with.
    replaced: std::sync::atomic::AtomicBool,
    pub become_settings: Become,
    /// The task's `environment:`, exported before every command.
    pub environment: Vec<(String, String)>,
    /// The task's `timeout:`: each command is killed on the host when it runs longer.
    pub time_limit: Option<std::time::Duration>,
}

impl Remote {
    pub fn new(
        connection: Arc<Connection>,
        target: Option<SshTarget>,
        become_settings: Become,
        environment: Vec<(String, String)>,
        time_limit: Option<std::time::Duration>,
    ) -> Remote {
        Remote {
            connection: std::sync::Mutex::new(connection),
            target,
            replaced: std::sync::atomic::AtomicBool::new(false),
            become_settings,
            environment,
            time_limit,
        }
    }

    /// The connection commands go through now.
    pub fn connection(&self) -> Arc<Connection> {
        self.connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Whether the host is this machine (`ansible_connection=local`).
    pub fn is_local(&self) -> bool {
        matches!(*self.connection(), Connection::Local(_))
    }

    /// Whether `reconnect` can open a fresh session (SSH only).
    pub fn reconnectable(&self) -> bool {
        self.target.is_some()
    }

    /// Closes the connection and opens a fresh one, giving up after `timeout` (the host's
    /// own connection timeout when `None`), as a reboot or a host coming back needs. On
    /// local and chroot connections there is nothing to reopen.
    pub async fn reconnect(&self, timeout: Option<std::time::Duration>) -> Result<(), Unreachable> {
        let Some(target) = &self.target else { return Ok(()) };
        let mut target = target.clone();
        if let Some(timeout) = timeout {
            target.timeout = timeout;
        }
        let limit = target.timeout + std::time::Duration::from_secs(5);
        let opening = SshConnection::connect(target);
        let fresh = match tokio::time::timeout(limit, opening).await {
            Ok(result) => Arc::new(Connection::Ssh(result?)),
            Err(_) => return Err(Unreachable(format!("no SSH session within {limit:?}"))),
        };
        let old = std::mem::replace(
            &mut *self.connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner()),
            fresh,
        );
        self.replaced.store(true, std::sync::atomic::Ordering::SeqCst);
        // A host that went away may never answer the goodbye.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), old.close()).await;
        Ok(())
    }

    /// The connection `reconnect` opened, for the executor to keep using after the task.
    pub fn replacement(&self) -> Option<Arc<Connection>> {
        self.replaced.load(std::sync::atomic::Ordering::SeqCst).then(|| self.connection())
    }

    /// Runs a command line as the become user, if any.
    pub async fn run(&self, command: &str) -> Result<Output, Failure> {
        self.run_with_input(command, None).await
    }

    pub async fn run_with_input(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
    ) -> Result<Output, Failure> {
        let mut line = String::new();
        for (name, value) in &self.environment {
            if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(fail(format!("invalid environment variable name `{name}`")));
            }
            line.push_str(&format!("export {name}={}; ", crate::connection::quote(value)));
        }
        line.push_str(command);
        if let Some(limit) = self.time_limit {
            line = crate::connection::with_time_limit(&line, limit);
        }
        let wrapped = wrap_become(&line, &self.become_settings).map_err(fail)?;
        let input = self.become_settings.stdin(stdin);
        let output = self.connection().exec(&wrapped, input.as_deref()).await?;
        if let Some(message) = become_failure(&self.become_settings, &output) {
            return Err(fail(message));
        }
        Ok(output)
    }

    /// Runs a command that must succeed; a non-zero exit becomes a failure quoting stderr.
    pub async fn check(&self, command: &str, what: &str) -> Result<Output, Failure> {
        let output = self.run(command).await?;
        if output.rc != 0 {
            let mut result = Map::new();
            result.insert("changed".into(), Value::Bool(false));
            result.insert("rc".into(), Value::from(output.rc));
            result.insert("stderr".into(), Value::String(output.stderr_text()));
            let detail = output.stderr_text().trim().to_string();
            let detail =
                if detail.is_empty() { output.stdout_text().trim().to_string() } else { detail };
            result.insert("msg".into(), Value::String(format!("{what} failed: {detail}")));
            return Err(Failure::Failed(result));
        }
        Ok(output)
    }
}

/// When sudo itself refused (unknown user, a password needed), the command never ran: that
/// is the task's failure, not the command's result.
fn become_failure(settings: &Become, output: &Output) -> Option<String> {
    let sudo = settings.enabled && matches!(settings.method.as_str(), "" | "sudo");
    let stderr = output.stderr_text();
    let wrong_password =
        stderr.starts_with("Sorry, try again.") || stderr.contains("incorrect password attempt");
    if sudo && settings.password.is_some() && output.rc == 1 && wrong_password {
        return Some("Incorrect sudo password".to_string());
    }
    let refused =
        sudo && output.rc == 1 && output.stdout.is_empty() && stderr.starts_with("sudo: ");
    refused.then(|| {
        let user = if settings.user.is_empty() { "root" } else { &settings.user };
        format!(
            "Task failed: failed to become {user} with sudo: {}",
            stderr.lines().next().unwrap_or("").trim_start_matches("sudo: ")
        )
    })
}

/// Everything a module call gets: host, templated arguments, modes, and the task's variables.
pub struct Call<'a> {
    pub host: &'a str,
    pub remote: &'a Remote,
    pub args: Args,
    pub check_mode: bool,
    pub diff: bool,
    pub vars: &'a Arc<Context>,
    pub templar: &'a Templar,
    /// Where `src:` of copy/template is looked for: role then playbook directories.
    pub search_paths: &'a [PathBuf],
}

/// A module bramble implements: its name, aliases, and accepted parameters.
pub struct Spec {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub params: &'static [&'static str],
}

const APT_PARAMS: &[&str] = &[
    "name",
    "package",
    "pkg",
    "state",
    "update_cache",
    "update-cache",
    "update_cache_retries",
    "update_cache_retry_max_delay",
    "cache_valid_time",
    "purge",
    "deb",
    "default_release",
    "default-release",
    "install_recommends",
    "install-recommends",
    "force",
    "upgrade",
    "dpkg_options",
    "autoremove",
    "autoclean",
    "fail_on_autoremove",
    "policy_rc_d",
    "only_upgrade",
    "force_apt_get",
    "clean",
    "allow_unauthenticated",
    "allow-unauthenticated",
    "allow_downgrade",
    "allow-downgrade",
    "allow_downgrades",
    "allow-downgrades",
    "allow_change_held_packages",
    "lock_timeout",
    "auto_install_module_deps",
];

/// `package` hands everything but `use` to the package manager's module.
const PACKAGE_PARAMS: &[&str] = &[
    "use",
    "name",
    "package",
    "pkg",
    "state",
    "update_cache",
    "update-cache",
    "update_cache_retries",
    "update_cache_retry_max_delay",
    "cache_valid_time",
    "purge",
    "deb",
    "default_release",
    "default-release",
    "install_recommends",
    "install-recommends",
    "force",
    "upgrade",
    "dpkg_options",
    "autoremove",
    "autoclean",
    "fail_on_autoremove",
    "policy_rc_d",
    "only_upgrade",
    "force_apt_get",
    "clean",
    "allow_unauthenticated",
    "allow-unauthenticated",
    "allow_downgrade",
    "allow-downgrade",
    "allow_downgrades",
    "allow-downgrades",
    "allow_change_held_packages",
    "lock_timeout",
    "auto_install_module_deps",
];

const SPECS: &[Spec] = &[
    Spec { name: "apt", aliases: &[], params: APT_PARAMS },
    Spec { name: "package", aliases: &[], params: PACKAGE_PARAMS },
    Spec { name: "package_facts", aliases: &[], params: &["manager", "strategy"] },
    Spec {
        name: "apt_repository",
        aliases: &[],
        params: &[
            "repo",
            "state",
            "mode",
            "update_cache",
            "update-cache",
            "update_cache_retries",
            "update_cache_retry_max_delay",
            "filename",
            "install_python_apt",
            "validate_certs",
            "codename",
        ],
    },
    Spec { name: "deb822_repository", aliases: &[], params: deb822_repository::PARAMS },
    Spec {
        name: "apt_key",
        aliases: &[],
        params: &["id", "url", "data", "file", "keyring", "validate_certs", "keyserver", "state"],
    },
    Spec { name: "timezone", aliases: &[], params: &["name", "hwclock", "rtc"] },
    Spec {
        name: "cron",
        aliases: &[],
        params: &[
            "name",
            "user",
            "job",
            "value",
            "cron_file",
            "state",
            "backup",
            "minute",
            "hour",
            "day",
            "dom",
            "month",
            "weekday",
            "dow",
            "special_time",
            "disabled",
            "env",
            "insertafter",
            "insertbefore",
        ],
    },
    Spec {
        name: "command",
        aliases: &[],
        params: &[
            "_raw_params",
            "cmd",
            "argv",
            "chdir",
            "creates",
            "removes",
            "stdin",
            "stdin_add_newline",
            "strip_empty_ends",
            "expand_argument_vars",
        ],
    },
    Spec {
        name: "shell",
        aliases: &[],
        params: &[
            "_raw_params",
            "cmd",
            "chdir",
            "creates",
            "removes",
            "stdin",
            "stdin_add_newline",
            "strip_empty_ends",
            "executable",
        ],
    },
    Spec { name: "raw", aliases: &[], params: &["_raw_params", "executable"] },
    Spec {
        name: "copy",
        aliases: &[],
        params: &[
            "src",
            "content",
            "dest",
            "mode",
            "owner",
            "group",
            "force",
            "backup",
            "remote_src",
            "directory_mode",
            "validate",
            "decrypt",
            "follow",
            "local_follow",
            "checksum",
            "unsafe_writes",
            "attributes",
            "seuser",
            "serole",
            "setype",
            "selevel",
        ],
    },
    Spec {
        name: "template",
        aliases: &[],
        params: &[
            "src",
            "dest",
            "mode",
            "owner",
            "group",
            "force",
            "backup",
            "validate",
            "newline_sequence",
            "trim_blocks",
            "lstrip_blocks",
            "variable_start_string",
            "variable_end_string",
            "block_start_string",
            "block_end_string",
            "output_encoding",
            "follow",
            "unsafe_writes",
            "attributes",
        ],
    },
    Spec {
        name: "file",
        aliases: &[],
        params: &[
            "path",
            "dest",
            "name",
            "state",
            "mode",
            "owner",
            "group",
            "src",
            "recurse",
            "force",
            "follow",
            "modification_time",
            "access_time",
            "attributes",
            "unsafe_writes",
        ],
    },
    Spec {
        name: "get_url",
        aliases: &[],
        params: &[
            "url",
            "dest",
            "checksum",
            "mode",
            "owner",
            "group",
            "force",
            "timeout",
            "headers",
            "url_username",
            "url_password",
            "validate_certs",
            "backup",
            "tmp_dest",
            "http_agent",
            "use_proxy",
            "force_basic_auth",
        ],
    },
    Spec {
        name: "unarchive",
        aliases: &[],
        params: &[
            "src",
            "dest",
            "remote_src",
            "creates",
            "mode",
            "owner",
            "group",
            "extra_opts",
            "include",
            "exclude",
            "list_files",
            "keep_newer",
            "copy",
            "validate_certs",
        ],
    },
    Spec {
        name: "user",
        aliases: &[],
        params: &[
            "name",
            "state",
            "system",
            "shell",
            "home",
            "create_home",
            "createhome",
            "groups",
            "group",
            "append",
            "uid",
            "comment",
            "password",
            "remove",
            "force",
            "move_home",
            "update_password",
            "expires",
            "password_lock",
        ],
    },
    Spec {
        name: "group",
        aliases: &[],
        params: &["name", "state", "system", "gid", "local", "non_unique", "force"],
    },
    Spec {
        name: "systemd_service",
        aliases: &["systemd", "service"],
        params: &[
            "name",
            "state",
            "enabled",
            "daemon_reload",
            "daemon_reexec",
            "masked",
            "scope",
            "no_block",
            "force",
            "arguments",
            "args",
            "pattern",
            "sleep",
            "runlevel",
            "use",
        ],
    },
    Spec {
        name: "wait_for",
        aliases: &[],
        params: &[
            "host",
            "port",
            "path",
            "state",
            "timeout",
            "delay",
            "sleep",
            "search_regex",
            "connect_timeout",
            "msg",
            "active_connection_states",
            "exclude_hosts",
        ],
    },
    Spec {
        name: "uri",
        aliases: &[],
        params: &[
            "url",
            "method",
            "body",
            "body_format",
            "status_code",
            "return_content",
            "headers",
            "url_username",
            "url_password",
            "user",
            "password",
            "force_basic_auth",
            "timeout",
            "dest",
            "validate_certs",
            "follow_redirects",
            "creates",
            "removes",
        ],
    },
    Spec {
        name: "stat",
        aliases: &[],
        params: &[
            "path",
            "get_checksum",
            "checksum_algorithm",
            "follow",
            "get_mime",
            "get_attributes",
            "get_md5",
        ],
    },
    Spec {
        name: "setup",
        aliases: &["gather_facts"],
        params: &["gather_subset", "filter", "gather_timeout", "fact_path"],
    },
    Spec {
        name: "lineinfile",
        aliases: &[],
        params: &[
            "path",
            "dest",
            "destfile",
            "name",
            "state",
            "regexp",
            "regex",
            "search_string",
            "line",
            "value",
            "insertafter",
            "insertbefore",
            "backrefs",
            "create",
            "backup",
            "firstmatch",
            "validate",
            "mode",
            "owner",
            "group",
            "unsafe_writes",
        ],
    },
    Spec {
        name: "blockinfile",
        aliases: &[],
        params: &[
            "path",
            "dest",
            "destfile",
            "name",
            "state",
            "marker",
            "block",
            "content",
            "insertafter",
            "insertbefore",
            "create",
            "backup",
            "validate",
            "marker_begin",
            "marker_end",
            "append_newline",
            "prepend_newline",
            "mode",
            "owner",
            "group",
            "unsafe_writes",
        ],
    },
    Spec {
        name: "replace",
        aliases: &[],
        params: &[
            "path",
            "dest",
            "destfile",
            "name",
            "regexp",
            "replace",
            "after",
            "before",
            "backup",
            "validate",
            "encoding",
            "mode",
            "owner",
            "group",
            "unsafe_writes",
        ],
    },
    Spec {
        name: "find",
        aliases: &[],
        params: &[
            "paths",
            "name",
            "path",
            "patterns",
            "pattern",
            "excludes",
            "exclude",
            "contains",
            "read_whole_file",
            "file_type",
            "age",
            "age_stamp",
            "size",
            "recurse",
            "hidden",
            "follow",
            "get_checksum",
            "checksum_algorithm",
            "checksum",
            "checksum_algo",
            "use_regex",
            "depth",
            "mode",
            "exact_mode",
            "encoding",
            "limit",
        ],
    },
    Spec {
        name: "authorized_key",
        aliases: &[],
        params: &[
            "user",
            "key",
            "path",
            "manage_dir",
            "state",
            "key_options",
            "exclusive",
            "validate_certs",
            "comment",
            "follow",
        ],
    },
    Spec {
        name: "assemble",
        aliases: &[],
        params: &[
            "src",
            "dest",
            "delimiter",
            "backup",
            "remote_src",
            "regexp",
            "ignore_hidden",
            "validate",
            "decrypt",
            "mode",
            "owner",
            "group",
            "unsafe_writes",
        ],
    },
    Spec {
        name: "sysctl",
        aliases: &[],
        params: &[
            "name",
            "key",
            "value",
            "val",
            "state",
            "sysctl_file",
            "reload",
            "sysctl_set",
            "ignoreerrors",
        ],
    },
    Spec { name: "hostname", aliases: &[], params: &["name", "use"] },
    Spec { name: "slurp", aliases: &[], params: &["src", "path"] },
    Spec { name: "tempfile", aliases: &[], params: &["state", "path", "prefix", "suffix"] },
    Spec {
        name: "getent",
        aliases: &[],
        params: &["database", "key", "service", "split", "fail_key"],
    },
    Spec {
        name: "fetch",
        aliases: &[],
        params: &["src", "dest", "flat", "fail_on_missing", "validate_checksum"],
    },
    Spec {
        name: "script",
        aliases: &[],
        params: &["_raw_params", "cmd", "creates", "removes", "chdir", "executable", "decrypt"],
    },
    Spec { name: "pause", aliases: &[], params: &["minutes", "seconds", "prompt", "echo"] },
    Spec { name: "service_facts", aliases: &[], params: &[] },
    Spec { name: "modprobe", aliases: &[], params: &["name", "state", "params", "persistent"] },
    Spec {
        name: "mount",
        aliases: &[],
        params: &[
            "path",
            "name",
            "src",
            "fstype",
            "opts",
            "opts_no_log",
            "dump",
            "passno",
            "state",
            "fstab",
            "boot",
            "backup",
        ],
    },
    Spec {
        name: "reboot",
        aliases: &[],
        params: &[
            "reboot_timeout",
            "reboot_timeout_sec",
            "connect_timeout",
            "connect_timeout_sec",
            "msg",
            "pre_reboot_delay",
            "pre_reboot_delay_sec",
            "post_reboot_delay",
            "post_reboot_delay_sec",
            "test_command",
            "boot_time_command",
            "search_paths",
            "reboot_command",
        ],
    },
    Spec {
        name: "wait_for_connection",
        aliases: &[],
        params: &["connect_timeout", "delay", "sleep", "timeout"],
    },
    Spec { name: "debug", aliases: &[], params: &["msg", "var", "verbosity"] },
    Spec { name: "set_fact", aliases: &[], params: &["*"] },
    Spec { name: "add_host", aliases: &[], params: &["*"] },
    Spec { name: "group_by", aliases: &[], params: &["key", "parents"] },
    Spec {
        name: "include_vars",
        aliases: &[],
        params: &[
            "_raw_params",
            "file",
            "dir",
            "name",
            "depth",
            "files_matching",
            "ignore_files",
            "extensions",
            "ignore_unknown_extensions",
            "hash_behaviour",
        ],
    },
    Spec {
        name: "assert",
        aliases: &[],
        params: &["that", "fail_msg", "msg", "success_msg", "quiet"],
    },
    Spec { name: "fail", aliases: &[], params: &["msg"] },
    Spec { name: "ping", aliases: &[], params: &["data"] },
    Spec { name: "meta", aliases: &[], params: &["_raw_params"] },
    Spec {
        name: "docker_compose_v2",
        aliases: &[],
        params: &[
            "project_src",
            "project_name",
            "files",
            "env_files",
            "profiles",
            "state",
            "pull",
            "build",
            "recreate",
            "remove_orphans",
            "remove_images",
            "remove_volumes",
            "services",
            "dependencies",
            "wait",
            "wait_timeout",
            "timeout",
            "check_files_existing",
            "docker_host",
        ],
    },
    Spec {
        name: "docker_image",
        aliases: &[],
        params: &[
            "name",
            "tag",
            "source",
            "load_path",
            "state",
            "force_source",
            "force_absent",
            "docker_host",
        ],
    },
    Spec {
        name: "docker_network",
        aliases: &[],
        params: &[
            "name",
            "network_name",
            "state",
            "driver",
            "internal",
            "attachable",
            "force",
            "docker_host",
        ],
    },
    Spec {
        name: "docker_volume",
        aliases: &[],
        params: &[
            "volume_name",
            "name",
            "state",
            "driver",
            "driver_options",
            "labels",
            "recreate",
            "docker_host",
        ],
    },
    Spec {
        name: "docker_container",
        aliases: &[],
        params: &[
            "name",
            "image",
            "state",
            "command",
            "env",
            "published_ports",
            "ports",
            "volumes",
            "network_mode",
            "networks",
            "restart_policy",
            "memory",
            "labels",
            "privileged",
            "recreate",
            "docker_host",
        ],
    },
];

/// Every name a task may use (without collection prefixes), for "did you mean".
pub const NAMES: &[&str] = &[
    "command",
    "shell",
    "raw",
    "apt",
    "package",
    "package_facts",
    "apt_repository",
    "deb822_repository",
    "apt_key",
    "timezone",
    "cron",
    "copy",
    "template",
    "file",
    "get_url",
    "unarchive",
    "user",
    "group",
    "systemd_service",
    "systemd",
    "service",
    "wait_for",
    "uri",
    "stat",
    "setup",
    "gather_facts",
    "lineinfile",
    "blockinfile",
    "replace",
    "find",
    "authorized_key",
    "assemble",
    "sysctl",
    "hostname",
    "slurp",
    "tempfile",
    "getent",
    "fetch",
    "script",
    "pause",
    "wait_for_connection",
    "service_facts",
    "modprobe",
    "mount",
    "reboot",
    "debug",
    "set_fact",
    "add_host",
    "group_by",
    "assert",
    "fail",
    "ping",
    "meta",
    "docker_compose_v2",
    "docker_image",
    "docker_network",
    "docker_volume",
    "docker_container",
    "import_tasks",
    "include_tasks",
    "import_role",
    "include_role",
    "include_vars",
];

/// Options that `command`/`shell` accept inside their free-form text.
pub const FREE_FORM_OPTIONS: &[&str] = &[
    "chdir",
    "creates",
    "removes",
    "executable",
    "stdin",
    "stdin_add_newline",
    "strip_empty_ends",
];

/// The collection prefixes under which a module loads ("" for its bare name): ansible-core's
/// own modules, then those it moved out to collections and still routes its names to, and
/// their new homes (the last entry, the collection a module's FQCN names).
fn homes(module: &str) -> &'static [&'static str] {
    match module {
        "timezone" | "modprobe" => &["", "ansible.builtin", "ansible.legacy", "community.general"],
        "authorized_key" | "sysctl" | "mount" => {
            &["", "ansible.builtin", "ansible.legacy", "ansible.posix"]
        }
        // These went from ansible-core to community.general and on to community.docker.
        "docker_image" | "docker_network" | "docker_volume" | "docker_container" => {
            &["", "ansible.builtin", "ansible.legacy", "community.general", "community.docker"]
        }
        // Born in community.docker: only its FQCN loads.
        "docker_compose_v2" => &["community.docker"],
        _ => &["", "ansible.legacy", "ansible.builtin"],
    }
}

/// Splits `community.general.modprobe` into its collection and its module name.
fn split_collection(name: &str) -> (&str, &str) {
    name.rsplit_once('.').unwrap_or(("", name))
}

fn spec_named(short: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|spec| spec.name == short || spec.aliases.contains(&short))
}

/// The module's canonical name, for a short name, an alias, or an FQCN; `None` for a name
/// ansible-core cannot resolve either, such as a module under another collection's prefix.
pub fn canonical(name: &str) -> Option<&'static str> {
    let (collection, short) = split_collection(name);
    let spec = spec_named(short)?;
    homes(spec.name).contains(&collection).then_some(spec.name)
}

/// The name that loads a module written under the wrong collection (or bare, for one
/// that only loads by its FQCN): `ansible.posix.modprobe` gives `community.general.modprobe`.
pub fn fully_qualified(name: &str) -> Option<String> {
    let (_, short) = split_collection(name);
    let spec = spec_named(short)?;
    let home = homes(spec.name).last()?;
    Some(format!("{home}.{short}"))
}

/// Modules whose free-form text is the command to run.
pub fn takes_free_form(module: &str) -> bool {
    matches!(module, "command" | "shell" | "raw" | "meta" | "script" | "include_vars")
}

/// Rejects parameters the module does not have, before anything runs.
pub fn check_parameters(module: &str, args: &Map<String, Value>) -> Result<(), String> {
    let Some(spec) = SPECS.iter().find(|spec| spec.name == module) else { return Ok(()) };
    if spec.params.contains(&"*") {
        return Ok(());
    }
    let mut unknown: Vec<&str> =
        args.keys().map(String::as_str).filter(|key| !spec.params.contains(key)).collect();
    if unknown.is_empty() {
        return Ok(());
    }
    unknown.sort();
    let hint = unknown
        .first()
        .and_then(|key| crate::playbook::closest(key, spec.params))
        .map(|best| format!("; did you mean `{best}`?"))
        .unwrap_or_default();
    let supported =
        spec.params.iter().filter(|p| !p.starts_with('_')).copied().collect::<Vec<_>>().join(", ");
    Err(format!(
        "Unsupported parameters for ({module}) module: {}{hint}. Supported parameters include: {supported}.",
        unknown.join(", ")
    ))
}

/// Runs one module call.
pub async fn run(module: &str, call: &mut Call<'_>) -> Outcome {
    paths::expand(module, call).await?;
    match module {
        "command" | "shell" | "raw" => command::run(module, call).await,
        "apt" => apt::run(call).await,
        "package" => package::run(call).await,
        "package_facts" => package_facts::run(call).await,
        "apt_repository" => apt_repository::run(call).await,
        "deb822_repository" => deb822_repository::run(call).await,
        "apt_key" => apt_key::run(call).await,
        "timezone" => timezone::run(call).await,
        "cron" => cron::run(call).await,
        "copy" => copy::run_copy(call).await,
        "template" => copy::run_template(call).await,
        "file" => file::run(call).await,
        "get_url" => get_url::run(call).await,
        "unarchive" => unarchive::run(call).await,
        "user" => user::run_user(call).await,
        "group" => user::run_group(call).await,
        "systemd_service" => systemd::run(call).await,
        "wait_for" => wait_for::run(call).await,
        "uri" => uri::run(call).await,
        "stat" => stat::run(call).await,
        "setup" => setup::run(call).await,
        "lineinfile" => lineinfile::run(call).await,
        "blockinfile" => blockinfile::run(call).await,
        "replace" => replace::run(call).await,
        "find" => find::run(call).await,
        "authorized_key" => authorized_key::run(call).await,
        "assemble" => assemble::run(call).await,
        "sysctl" => sysctl::run(call).await,
        "hostname" => hostname::run(call).await,
        "slurp" => slurp::run(call).await,
        "tempfile" => tempfile::run(call).await,
        "getent" => getent::run(call).await,
        "fetch" => fetch::run(call).await,
        "script" => script::run(call).await,
        "pause" => pause::run(call).await,
        "wait_for_connection" => wait_for_connection::run(call).await,
        "service_facts" => service_facts::run(call).await,
        "modprobe" => modprobe::run(call).await,
        "mount" => mount::run(call).await,
        "reboot" => reboot::run(call).await,
        "debug" => control::debug(call),
        "set_fact" => control::set_fact(call),
        "include_vars" => include_vars::run(call),
        "add_host" => control::add_host(call),
        "group_by" => control::group_by(call),
        "assert" => control::assert(call),
        "fail" => control::fail_module(call),
        "ping" => control::ping(call),
        "docker_compose_v2" => docker::compose::run(call).await,
        "docker_image" => docker::image::run(call).await,
        "docker_network" => docker::network::run(call).await,
        "docker_volume" => docker::volume::run(call).await,
        "docker_container" => docker::container::run(call).await,
        other => Err(fail(format!("not supported yet: the module `{other}`"))),
    }
}

/// A result map from pairs, for concise module code.
pub fn result(pairs: impl IntoIterator<Item = (&'static str, Value)>) -> Map<String, Value> {
    pairs.into_iter().map(|(key, value)| (key.to_string(), value)).collect()
}

#[cfg(test)]
mod tests {
    use super::{canonical, fully_qualified};

    // As ansible-core 2.19's module loader resolves them with ansible.posix, community.general
    // and community.docker installed.
    #[test]
    fn only_real_collections_resolve_a_module() {
        assert_eq!(canonical("ansible.builtin.copy"), Some("copy"));
        assert_eq!(canonical("ansible.legacy.service"), Some("systemd_service"));
        assert_eq!(canonical("community.general.modprobe"), Some("modprobe"));
        assert_eq!(canonical("ansible.builtin.modprobe"), Some("modprobe"));
        assert_eq!(canonical("ansible.posix.mount"), Some("mount"));
        assert_eq!(canonical("community.general.docker_image"), Some("docker_image"));
        assert_eq!(canonical("community.docker.docker_compose_v2"), Some("docker_compose_v2"));
        assert_eq!(canonical("ansible.posix.modprobe"), None);
        assert_eq!(canonical("community.general.copy"), None);
        assert_eq!(canonical("community.docker.mount"), None);
        assert_eq!(canonical("ansible.posix.docker_image"), None);
        assert_eq!(canonical("docker_compose_v2"), None);
        assert_eq!(canonical("community.general.docker_compose_v2"), None);
        assert_eq!(canonical("my.collection.debug"), None);
    }

    #[test]
    fn a_misplaced_module_is_named_by_its_fqcn() {
        let hint = fully_qualified("ansible.posix.modprobe");
        assert_eq!(hint.as_deref(), Some("community.general.modprobe"));
        let hint = fully_qualified("docker_compose_v2");
        assert_eq!(hint.as_deref(), Some("community.docker.docker_compose_v2"));
        let hint = fully_qualified("community.general.service");
        assert_eq!(hint.as_deref(), Some("ansible.builtin.service"));
        assert_eq!(fully_qualified("ansible.builtin.nothing"), None);
    }
}
