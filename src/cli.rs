//! The command line: `bramble run` takes ansible-playbook's flags; `bramble bake` and
//! `bramble burn` make and write images.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::executor::Options;
use crate::{password, vault};

#[derive(Debug, Parser)]
#[command(
    name = "bramble",
    version,
    about = "Run Ansible playbooks over SSH, no Python on the targets"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run playbooks against an inventory, like ansible-playbook.
    Run(Box<RunArgs>),
    /// Bake a Raspberry Pi image from a recipe in images/.
    Bake(BakeArgs),
    /// Write an image to a card (or a file) with this card's own identity.
    Burn(BurnArgs),
    /// A local fleet of Pi-like qemu guests: up, status, down.
    #[command(subcommand)]
    Lab(LabCommand),
}

/// `bramble lab up N`, `bramble lab status`, `bramble lab down`.
#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Boot N guests lab1…labN and write their inventory.
    Up(LabUpArgs),
    /// List the fleet's guests, their ports and pids, up or down.
    Status,
    /// Stop the fleet's guests (only those, by pid).
    Down,
}

/// `bramble lab up N [--arch arm64|amd64] [--image FILE]`.
#[derive(Debug, Args)]
pub struct LabUpArgs {
    /// How many guests.
    pub count: usize,
    /// The guests' architecture.
    #[arg(long = "arch", value_enum, default_value = "arm64")]
    pub arch: crate::lab::Arch,
    /// A .img or .img.xz from bramble bake, or a folder printed by tests/lab/image.sh;
    /// without it the recipe is baked (once, cached).
    #[arg(long = "image")]
    pub image: Option<PathBuf>,
    /// The recipe to bake without --image (images/lab.yml, or images/lab-amd64.yml).
    #[arg(long = "recipe", conflicts_with = "image")]
    pub recipe: Option<PathBuf>,
    /// Private key to log in with (its .pub beside it); else one is generated.
    #[arg(long = "ssh-key")]
    pub ssh_key: Option<PathBuf>,
    /// Memory of each guest, in MiB.
    #[arg(long = "memory", default_value_t = 1024)]
    pub memory: u32,
    /// Seconds to wait for each guest's SSH (also BRAMBLE_LAB_BOOT_TIMEOUT).
    #[arg(long = "boot-timeout", env = "BRAMBLE_LAB_BOOT_TIMEOUT")]
    pub boot_timeout: Option<u64>,
    /// More output (-v to -vvvv).
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,
}

impl LabUpArgs {
    pub fn options(&self) -> crate::lab::fleet::UpOptions {
        // TCG boots an arm64 guest several times slower than an amd64 one.
        let default = match self.arch {
            crate::lab::Arch::Arm64 => 1200,
            crate::lab::Arch::Amd64 => 600,
        };
        crate::lab::fleet::UpOptions {
            count: self.count,
            arch: self.arch,
            image: self.image.clone(),
            recipe: self.recipe.clone(),
            ssh_key: self.ssh_key.clone(),
            memory_mib: self.memory,
            boot_timeout: std::time::Duration::from_secs(self.boot_timeout.unwrap_or(default)),
        }
    }
}

/// `bramble burn IMAGE DEVICE`, `bramble burn --list`.
#[derive(Debug, Args)]
pub struct BurnArgs {
    /// The image: <name>.img.xz (streamed) or a raw .img.
    #[arg(required_unless_present = "list")]
    pub image: Option<PathBuf>,
    /// A removable disk such as /dev/sdb or /dev/mmcblk0, or a regular file.
    #[arg(required_unless_present = "list")]
    pub device: Option<PathBuf>,
    /// List the removable disks and exit.
    #[arg(long = "list")]
    pub list: bool,
    /// Hostname of this card.
    #[arg(long = "hostname")]
    pub hostname: Option<String>,
    /// Login user created at first boot, with passwordless sudo.
    #[arg(long = "user")]
    pub user: Option<String>,
    /// Public key file authorized for the user (repeatable).
    #[arg(long = "ssh-key")]
    pub ssh_key: Vec<PathBuf>,
    /// Wi-Fi settings for the card.
    #[arg(long = "wifi")]
    pub wifi: Option<String>,
    /// Burn one card per host of this inventory, taking identities from host vars.
    #[arg(short = 'i', long = "inventory")]
    pub inventory: Option<String>,
    /// Write even to a non-removable or mounted disk, destroying what is on it.
    #[arg(long = "overwrite-system-disk")]
    pub overwrite_system_disk: bool,
    /// More output (-v to -vvvv).
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,
}

impl BurnArgs {
    pub fn options(&self) -> Result<crate::image::burn::BurnOptions> {
        if self.wifi.is_some() {
            return Err(Error::NotSupported { what: "--wifi (burn with a wired network)".into() });
        }
        if self.inventory.is_some() {
            return Err(Error::NotSupported {
                what: "--inventory (burn one card per host: run burn once per card)".into(),
            });
        }
        let (Some(image), Some(device)) = (&self.image, &self.device) else {
            return Err(Error::argument("burn needs an IMAGE and a DEVICE"));
        };
        Ok(crate::image::burn::BurnOptions {
            image: image.clone(),
            target: device.clone(),
            hostname: self.hostname.clone(),
            user: self.user.clone(),
            ssh_keys: self.ssh_key.clone(),
            overwrite_system_disk: self.overwrite_system_disk,
        })
    }
}

/// `bramble bake RECIPE`.
#[derive(Debug, Args)]
pub struct BakeArgs {
    /// The recipe, such as images/pi-observability.yml.
    pub recipe: PathBuf,
    /// Folder for <name>.img.xz and its .sha256, .img.sha256 and .bmap files.
    #[arg(short = 'o', long = "output", default_value = ".")]
    pub output: PathBuf,
    /// Extra variables for the recipe's playbook, as with `run`.
    #[arg(short = 'e', long = "extra-vars")]
    pub extra_vars: Vec<String>,
    /// More output from the playbook (-v to -vvvv).
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,
}

impl BakeArgs {
    pub fn options(&self) -> Result<crate::image::bake::BakeOptions> {
        let mut extra_vars = Map::new();
        for text in &self.extra_vars {
            extra_vars.extend(parse_extra_vars(text)?);
        }
        Ok(crate::image::bake::BakeOptions {
            recipe: self.recipe.clone(),
            output: self.output.clone(),
            extra_vars,
            verbosity: self.verbose,
        })
    }
}

/// ansible-playbook's flags, under the same names.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Playbook files, run in order.
    #[arg(required = true)]
    pub playbooks: Vec<PathBuf>,
    /// Inventory file, directory, or comma-separated host list (repeatable).
    #[arg(short = 'i', long = "inventory", alias = "inventory-file")]
    pub inventory: Vec<String>,
    /// Extra variables: key=value, JSON/YAML text, or @file (repeatable).
    #[arg(short = 'e', long = "extra-vars")]
    pub extra_vars: Vec<String>,
    /// Limit the run to hosts matching this pattern (given twice, the last one counts).
    #[arg(short = 'l', long = "limit", overrides_with = "limit")]
    pub limit: Option<String>,
    /// How many hosts to work on at once (default 5, or ansible.cfg's forks).
    #[arg(short = 'f', long = "forks", value_parser = parse_forks)]
    pub forks: Option<usize>,
    /// Seconds to wait for a host to connect or to answer keepalives before it is unreachable
    /// (default 10, or ansible.cfg's timeout).
    #[arg(short = 'T', long = "timeout")]
    pub timeout: Option<u64>,
    /// Connection type for hosts that set no `ansible_connection` (ssh, local, chroot).
    #[arg(short = 'c', long = "connection")]
    pub connection: Option<String>,
    /// Connect as this user.
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// Use this private key file for SSH.
    #[arg(long = "private-key", alias = "key-file")]
    pub private_key: Option<PathBuf>,
    /// Ask for the SSH password.
    #[arg(short = 'k', long = "ask-pass")]
    pub ask_pass: bool,
    /// Read the SSH password from this file (an executable one is run).
    #[arg(long = "connection-password-file", alias = "conn-pass-file")]
    pub connection_password_file: Option<PathBuf>,
    /// Ask for the become (sudo) password.
    #[arg(short = 'K', long = "ask-become-pass")]
    pub ask_become_pass: bool,
    /// Read the become password from this file (an executable one is run).
    #[arg(long = "become-password-file", alias = "become-pass-file")]
    pub become_password_file: Option<PathBuf>,
    /// Read a vault password from this file, or run it when executable (repeatable).
    #[arg(long = "vault-password-file", alias = "vault-pass-file")]
    pub vault_password_file: Vec<PathBuf>,
    /// A vault identity: `label@file`, `label@prompt`, or a file (repeatable).
    #[arg(long = "vault-id")]
    pub vault_id: Vec<String>,
    /// Ask for the vault password.
    #[arg(short = 'J', long = "ask-vault-password", alias = "ask-vault-pass")]
    pub ask_vault_password: bool,
    /// Run operations with become (sudo).
    #[arg(short = 'b', long = "become")]
    pub become_: bool,
    /// Become this user (default root).
    #[arg(long = "become-user")]
    pub become_user: Option<String>,
    /// Privilege escalation method (sudo or su).
    #[arg(long = "become-method")]
    pub become_method: Option<String>,
    /// Change nothing; report what would change.
    #[arg(short = 'C', long = "check")]
    pub check: bool,
    /// Show the differences in changed files.
    #[arg(short = 'D', long = "diff")]
    pub diff: bool,
    /// More output (-v to -vvvv).
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Check the playbook's syntax, run nothing.
    #[arg(long = "syntax-check")]
    pub syntax_check: bool,
    /// List the hosts each play would run on.
    #[arg(long = "list-hosts")]
    pub list_hosts: bool,
    /// List the tasks each play would run.
    #[arg(long = "list-tasks")]
    pub list_tasks: bool,
    /// List the tags of each play's tasks.
    #[arg(long = "list-tags")]
    pub list_tags: bool,
    /// Run only tasks tagged with these tags (comma-separated, repeatable).
    #[arg(short = 't', long = "tags")]
    pub tags: Vec<String>,
    /// Run no task tagged with these tags (comma-separated, repeatable).
    #[arg(long = "skip-tags")]
    pub skip_tags: Vec<String>,
    /// Start the playbook at the task with this name (or glob).
    #[arg(long = "start-at-task")]
    pub start_at_task: Option<String>,
    /// Confirm each task before running it (needs a terminal).
    #[arg(long = "step")]
    pub step: bool,
    /// Run notified handlers even on hosts where a task failed.
    #[arg(long = "force-handlers")]
    pub force_handlers: bool,
    /// SSH options for every host, as `ansible_ssh_common_args` (a host's own wins).
    #[arg(long = "ssh-common-args", allow_hyphen_values = true)]
    pub ssh_common_args: Option<String>,
    /// More SSH options for every host, as `ansible_ssh_extra_args` (a host's own wins).
    #[arg(long = "ssh-extra-args", allow_hyphen_values = true)]
    pub ssh_extra_args: Option<String>,
    /// Clear the fact cache: bramble keeps none between runs, so there is nothing to clear.
    #[arg(long = "flush-cache")]
    pub flush_cache: bool,
}

/// `-f`: ansible-playbook refuses fewer than one process.
fn parse_forks(text: &str) -> std::result::Result<usize, String> {
    let forks: usize = text.parse().map_err(|_| format!("invalid int value: '{text}'"))?;
    if forks < 1 {
        return Err("The number of processes (--forks) must be >= 1".into());
    }
    Ok(forks)
}

impl RunArgs {
    pub fn options(&self) -> Result<Options> {
        let mut extra_vars = Map::new();
        for text in &self.extra_vars {
            extra_vars.extend(parse_extra_vars(text)?);
        }
        // The command line wins over ANSIBLE_* variables, which win over ansible.cfg.
        let config = crate::config::current()?;
        if self.step && !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            return Err(Error::argument(
                "--step asks before each task and needs a terminal, but stdin is not a TTY",
            ));
        }
        vault::set_secrets(self.vault_secrets()?);
        let inventories = if self.inventory.is_empty() {
            config.inventory.clone()
        } else {
            self.inventory.clone()
        };
        Ok(Options {
            playbooks: self.playbooks.clone(),
            inventories,
            extra_vars,
            limit: self.limit.clone(),
            forks: self.forks.or(config.forks).unwrap_or(5),
            timeout: self.timeout.or(config.timeout).unwrap_or(10),
            connection: self.connection.clone(),
            user: self.user.clone().or_else(|| config.remote_user.clone()),
            private_key: self.private_key.clone().or_else(|| config.private_key_file.clone()),
            become_: self.become_ || config.become_.unwrap_or(false),
            become_user: self.become_user.clone().or_else(|| config.become_user.clone()),
            become_method: self.become_method.clone().or_else(|| config.become_method.clone()),
            become_password: self.become_password(config)?,
            connection_password: self.connection_password(config)?,
            check: self.check,
            diff: self.diff,
            verbosity: self.verbose,
            list_hosts: self.list_hosts,
            list_tasks: self.list_tasks,
            list_tags: self.list_tags,
            tags: self.tags.clone(),
            stop_on_interrupt: true,
            skip_tags: self.skip_tags.clone(),
            syntax_check: self.syntax_check,
            start_at_task: self.start_at_task.clone(),
            step: self.step,
            force_handlers: self.force_handlers,
            ssh_common_args: self.ssh_common_args.clone(),
            ssh_extra_args: self.ssh_extra_args.clone(),
        })
    }
}

impl RunArgs {
    /// `-K`, `--become-password-file`, then the `become_password_file` setting.
    fn become_password(&self, config: &crate::config::Config) -> Result<Option<String>> {
        if self.ask_become_pass {
            let alternative = "--become-password-file or ansible_become_password";
            return password::prompt("BECOME password: ", "-K", alternative).map(Some);
        }
        match self.become_password_file.as_ref().or(config.become_password_file.as_ref()) {
            Some(path) => password::from_file(path, "become password").map(Some),
            None => Ok(None),
        }
    }

    /// `-k`, `--connection-password-file`, then the `connection_password_file` setting.
    fn connection_password(&self, config: &crate::config::Config) -> Result<Option<String>> {
        if self.ask_pass {
            let alternative = "--connection-password-file or ansible_password";
            return password::prompt("SSH password: ", "-k", alternative).map(Some);
        }
        match self.connection_password_file.as_ref().or(config.connection_password_file.as_ref()) {
            Some(path) => password::from_file(path, "connection password").map(Some),
            None => Ok(None),
        }
    }

    /// Every vault secret given: `--vault-id`, `--vault-password-file`, the setting, `-J`.
    pub fn vault_secrets(&self) -> Result<Vec<vault::Secret>> {
        let config = crate::config::current()?;
        let mut sources: Vec<(String, String)> = Vec::new();
        for identity in &self.vault_id {
            match identity.split_once('@') {
                Some((label, source)) => sources.push((label.to_string(), source.to_string())),
                None => sources.push(("default".into(), identity.clone())),
            }
        }
        for path in &self.vault_password_file {
            sources.push(("default".into(), path.display().to_string()));
        }
        if sources.is_empty()
            && let Some(path) = &config.vault_password_file
        {
            sources.push(("default".into(), path.display().to_string()));
        }
        if self.ask_vault_password {
            sources.push(("default".into(), "prompt".into()));
        }
        let mut secrets = Vec::new();
        for (id, source) in sources {
            let password = if source == "prompt" {
                let prompt = if id == "default" {
                    "Vault password: ".to_string()
                } else {
                    format!("Vault password ({id}): ")
                };
                password::prompt(&prompt, "-J/--vault-id ...@prompt", "--vault-password-file")?
            } else {
                password::from_file(std::path::Path::new(&source), "vault password")?
                    .trim()
                    .to_string()
            };
            secrets.push(vault::Secret { id, password: password.into_bytes() });
        }
        Ok(secrets)
    }
}

/// `-e`: `@file` (YAML/JSON), a `{...}` or `[...]` document, or `key=value key2=value2`
/// (strings).
pub fn parse_extra_vars(text: &str) -> Result<Map<String, Value>> {
    if let Some(path) = text.strip_prefix('@') {
        let node = crate::yaml::load_file(std::path::Path::new(path))?;
        return as_mapping(node, text);
    }
    let trimmed = text.trim_start();
    if trimmed.starts_with(['{', '[']) || trimmed.starts_with('-') && trimmed.contains('\n') {
        let node = crate::yaml::load_str(std::path::Path::new("<extra vars>"), text.to_string())?;
        return as_mapping(node, text);
    }
    // ansible-playbook silently drops a word without `=`; bramble refuses it, in ansible-core's
    // words for extra vars that are not a mapping.
    crate::playbook::task::free_form("set_fact", text).map_err(|message| {
        let reason = match message.split_once(" is not `key=value`") {
            Some((word, _)) => format!("{word} is not key=value, @file, or a YAML/JSON mapping"),
            None => message,
        };
        Error::argument(format!("{}: {reason}", not_a_dictionary(text)))
    })
}

/// ansible-core's message for extra vars that are not a mapping.
fn not_a_dictionary(text: &str) -> String {
    format!("Invalid extra vars data supplied. '{text}' could not be made into a dictionary")
}

fn as_mapping(node: crate::yaml::Node, text: &str) -> Result<Map<String, Value>> {
    match node.to_value() {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(Map::new()),
        _ => Err(Error::argument(not_a_dictionary(text))),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_extra_vars;
    use serde_json::json;

    #[test]
    fn extra_vars_forms() {
        assert_eq!(json!(parse_extra_vars("a=1 b='x y'").unwrap()), json!({"a": "1", "b": "x y"}));
        assert_eq!(
            json!(parse_extra_vars("{\"n\": 2, \"on\": yes}").unwrap()),
            json!({"n": 2, "on": true})
        );
    }

    #[test]
    fn extra_vars_that_are_no_mapping_say_so_as_ansible_core_does() {
        let error = parse_extra_vars("[1, 2]").unwrap_err().to_string();
        assert_eq!(
            error,
            "Invalid extra vars data supplied. '[1, 2]' could not be made into a dictionary"
        );
        let error = parse_extra_vars("a=1 notkv").unwrap_err().to_string();
        assert_eq!(
            error,
            "Invalid extra vars data supplied. 'a=1 notkv' could not be made into a dictionary: \
             `notkv` is not key=value, @file, or a YAML/JSON mapping"
        );
    }
}
