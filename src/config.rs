//! ansible.cfg and `ANSIBLE_*` environment variables: the settings bramble acts on, read from
//! the one file ansible-playbook would read, with the environment winning over the file.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// Settings bramble reads, as `(section, key, environment variable)`.
const SUPPORTED: &[(&str, &str, &str)] = &[
    ("defaults", "inventory", "ANSIBLE_INVENTORY"),
    ("defaults", "remote_user", "ANSIBLE_REMOTE_USER"),
    ("defaults", "forks", "ANSIBLE_FORKS"),
    ("defaults", "host_key_checking", "ANSIBLE_HOST_KEY_CHECKING"),
    ("defaults", "private_key_file", "ANSIBLE_PRIVATE_KEY_FILE"),
    ("defaults", "roles_path", "ANSIBLE_ROLES_PATH"),
    ("defaults", "timeout", "ANSIBLE_TIMEOUT"),
    ("defaults", "gathering", "ANSIBLE_GATHERING"),
    ("defaults", "become_password_file", "ANSIBLE_BECOME_PASSWORD_FILE"),
    ("defaults", "connection_password_file", "ANSIBLE_CONNECTION_PASSWORD_FILE"),
    ("defaults", "vault_password_file", "ANSIBLE_VAULT_PASSWORD_FILE"),
    ("defaults", "hash_behaviour", "ANSIBLE_HASH_BEHAVIOUR"),
    ("privilege_escalation", "become", "ANSIBLE_BECOME"),
    ("privilege_escalation", "become_user", "ANSIBLE_BECOME_USER"),
    ("privilege_escalation", "become_method", "ANSIBLE_BECOME_METHOD"),
    ("ssh_connection", "pipelining", "ANSIBLE_PIPELINING"),
];

/// When a play gathers facts by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Gathering {
    /// Gather unless the play says `gather_facts: false`.
    #[default]
    Implicit,
    /// Gather only when the play says `gather_facts: true`.
    Explicit,
    /// Like implicit, but a host whose facts are known is not gathered again.
    Smart,
}

/// The settings in effect before the command line is applied.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// The ansible.cfg read, if any.
    pub file: Option<PathBuf>,
    pub inventory: Vec<String>,
    pub remote_user: Option<String>,
    pub forks: Option<usize>,
    pub host_key_checking: Option<bool>,
    pub private_key_file: Option<PathBuf>,
    pub roles_path: Vec<PathBuf>,
    pub timeout: Option<u64>,
    pub gathering: Gathering,
    pub become_: Option<bool>,
    pub become_user: Option<String>,
    pub become_method: Option<String>,
    pub become_password_file: Option<PathBuf>,
    pub connection_password_file: Option<PathBuf>,
    pub vault_password_file: Option<PathBuf>,
    /// One line per setting found but not acted on.
    pub warnings: Vec<String>,
}

/// One `key = value` of an ansible.cfg, with where it was written.
struct Entry {
    section: String,
    key: String,
    value: String,
    line: usize,
}

static CURRENT: OnceLock<Config> = OnceLock::new();

/// The configuration of this run, read once (from the environment and ansible.cfg).
pub fn current() -> Result<&'static Config> {
    if let Some(config) = CURRENT.get() {
        return Ok(config);
    }
    let config = Config::load()?;
    Ok(CURRENT.get_or_init(|| config))
}

/// The ansible.cfg that ansible-playbook reads: `ANSIBLE_CONFIG`, `./ansible.cfg`,
/// `~/.ansible.cfg`, then `/etc/ansible/ansible.cfg`; the first that exists wins.
pub fn config_file() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".ansible.cfg"));
    let named = std::env::var_os("ANSIBLE_CONFIG")
        .map(PathBuf::from)
        .map(|path| if path.is_dir() { path.join("ansible.cfg") } else { path });
    named
        .into_iter()
        .chain(cwd_config())
        .chain(home)
        .chain([PathBuf::from("/etc/ansible/ansible.cfg")])
        .find(|path| path.is_file())
}

/// `./ansible.cfg`, unless the directory is world-writable (Ansible ignores it there).
fn cwd_config() -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let world_writable =
        std::fs::metadata(".").map(|meta| meta.permissions().mode() & 0o002 != 0).unwrap_or(false);
    (!world_writable).then(|| PathBuf::from("ansible.cfg"))
}

impl Config {
    /// Reads the environment and the ansible.cfg found where Ansible looks.
    pub fn load() -> Result<Config> {
        let file = config_file();
        let entries = match &file {
            Some(path) => parse(path)?,
            None => Vec::new(),
        };
        let environment = |name: &str| std::env::var(name).ok();
        Config::resolve(file, &entries, &environment)
    }

    fn resolve(
        file: Option<PathBuf>,
        entries: &[Entry],
        environment: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config> {
        let mut config = Config { file: file.clone(), ..Config::default() };
        let file_name = file.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        let directory = file
            .as_ref()
            .and_then(|p| p.parent())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        for entry in entries {
            let known = SUPPORTED.iter().any(|(section, key, _)| {
                *section == entry.section && (*key == entry.key || alias(&entry.key) == *key)
            });
            if !known {
                config.warnings.push(format!(
                    "not supported yet: the setting [{}] {} ({file_name}:{}) is ignored",
                    entry.section, entry.key, entry.line
                ));
            }
        }

        // The environment wins over the file; paths from the file are relative to it.
        let lookup = |section: &str, key: &str, variable: &str| -> Option<(String, bool)> {
            if let Some(value) = environment(variable) {
                return Some((value, false));
            }
            if variable == "ANSIBLE_PIPELINING"
                && let Some(value) = environment("ANSIBLE_SSH_PIPELINING")
            {
                return Some((value, false));
            }
            entries
                .iter()
                .rev()
                .find(|e| e.section == section && (e.key == key || alias(&e.key) == key))
                .map(|e| (e.value.clone(), true))
        };
        let path = |value: &str, from_file: bool| -> PathBuf {
            let expanded = expand_home(value);
            if from_file && expanded.is_relative() { directory.join(expanded) } else { expanded }
        };
        for (section, key, variable) in SUPPORTED {
            let Some((value, from_file)) = lookup(section, key, variable) else { continue };
            let origin = if from_file {
                format!("[{section}] {key} in {file_name}")
            } else {
                variable.to_string()
            };
            match *key {
                "inventory" => {
                    config.inventory = value
                        .split(',')
                        .map(str::trim)
                        .filter(|source| !source.is_empty())
                        .map(|source| path(source, from_file).display().to_string())
                        .collect()
                }
                "remote_user" => config.remote_user = Some(value),
                "forks" => config.forks = Some(integer(&value, &origin)? as usize),
                "host_key_checking" => config.host_key_checking = Some(boolean(&value, &origin)?),
                "private_key_file" => config.private_key_file = Some(path(&value, from_file)),
                "roles_path" => {
                    config.roles_path = value
                        .split(':')
                        .filter(|s| !s.is_empty())
                        .map(|p| path(p, from_file))
                        .collect()
                }
                "timeout" => config.timeout = Some(integer(&value, &origin)?),
                "gathering" => {
                    config.gathering = match value.trim() {
                        "implicit" => Gathering::Implicit,
                        "explicit" => Gathering::Explicit,
                        "smart" => Gathering::Smart,
                        other => {
                            return Err(Error::argument(format!(
                                "{origin}: gathering must be implicit, explicit or smart, \
                                 not `{other}`"
                            )));
                        }
                    }
                }
                "become_password_file" => {
                    config.become_password_file = Some(path(&value, from_file))
                }
                "connection_password_file" => {
                    config.connection_password_file = Some(path(&value, from_file))
                }
                "vault_password_file" => config.vault_password_file = Some(path(&value, from_file)),
                "hash_behaviour" => match value.trim() {
                    "replace" => {}
                    "merge" => {
                        return Err(Error::NotSupported {
                            what: format!("hash_behaviour = merge ({origin}); only replace is"),
                        });
                    }
                    other => {
                        return Err(Error::argument(format!(
                            "{origin}: hash_behaviour must be replace or merge, not `{other}`"
                        )));
                    }
                },
                "become" => config.become_ = Some(boolean(&value, &origin)?),
                "become_user" => config.become_user = Some(value),
                "become_method" => config.become_method = Some(value),
                // Accepted: every command already runs in one SSH exec, with nothing to pipe.
                "pipelining" => {
                    boolean(&value, &origin)?;
                }
                _ => {}
            }
        }
        if config.roles_path.is_empty() {
            config.roles_path = default_roles_path();
        }
        Ok(config)
    }
}

/// Older names Ansible still reads for a setting.
fn alias(key: &str) -> &str {
    match key {
        "hostfile" => "inventory",
        "roles" => "roles_path",
        "sudo_user" => "become_user",
        _ => key,
    }
}

/// `~/.ansible/roles:/usr/share/ansible/roles:/etc/ansible/roles`.
pub fn default_roles_path() -> Vec<PathBuf> {
    let home = std::env::var_os("ANSIBLE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| expand_home("~/.ansible"));
    vec![home.join("roles"), "/usr/share/ansible/roles".into(), "/etc/ansible/roles".into()]
}

fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ if path == "~" => std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default(),
        _ => PathBuf::from(path),
    }
}

fn integer(value: &str, origin: &str) -> Result<u64> {
    value
        .trim()
        .parse()
        .map_err(|_| Error::argument(format!("{origin}: expected a whole number, got `{value}`")))
}

/// Ansible's boolean spellings.
fn boolean(value: &str, origin: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "yes" | "y" | "true" | "t" | "on" => Ok(true),
        "0" | "no" | "n" | "false" | "f" | "off" | "" => Ok(false),
        _ => Err(Error::argument(format!("{origin}: expected a boolean, got `{value}`"))),
    }
}

/// Reads an INI ansible.cfg: `[section]` headers, `key = value` (or `key: value`) lines,
/// `#` and `;` comments.
fn parse(path: &Path) -> Result<Vec<Entry>> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| Error::FileRead { path: path.to_path_buf(), source })?;
    parse_text(path, &text)
}

fn parse_text(path: &Path, text: &str) -> Result<Vec<Entry>> {
    let mut entries = Vec::new();
    let mut section = String::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_string();
            continue;
        }
        let Some((key, value)) = line.split_once(['=', ':']) else {
            return Err(Error::argument(format!(
                "{}:{}: expected `key = value` in an ansible.cfg, found `{line}`",
                path.display(),
                index + 1
            )));
        };
        // An inline comment needs a space before its `;` or `#`, as in Python's configparser.
        let value = [" ;", " #"]
            .iter()
            .filter_map(|mark| value.find(mark))
            .min()
            .map_or(value, |end| &value[..end]);
        entries.push(Entry {
            section: section.clone(),
            key: key.trim().to_string(),
            value: value.trim().to_string(),
            line: index + 1,
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(text: &str, environment: &[(&str, &str)]) -> Result<Config> {
        let path = Path::new("/project/ansible.cfg");
        let entries = parse_text(path, text)?;
        let lookup = |name: &str| {
            environment.iter().find(|(key, _)| *key == name).map(|(_, v)| v.to_string())
        };
        Config::resolve(Some(path.to_path_buf()), &entries, &lookup)
    }

    #[test]
    fn file_settings_with_paths_relative_to_the_file() {
        let config = resolve(
            "[defaults]\ninventory = hosts\nforks = 3 ; three\nroles_path = roles:/opt/r\n\
             [privilege_escalation]\nbecome = yes\n",
            &[],
        )
        .unwrap();
        assert_eq!(config.inventory, ["/project/hosts"]);
        assert_eq!(config.forks, Some(3));
        assert_eq!(config.roles_path, [PathBuf::from("/project/roles"), "/opt/r".into()]);
        assert_eq!(config.become_, Some(true));
        assert!(config.warnings.is_empty());
    }

    #[test]
    fn environment_wins_and_unknown_settings_are_named() {
        let config =
            resolve("[defaults]\nforks = 3\nstdout_callback = yaml\n", &[("ANSIBLE_FORKS", "7")])
                .unwrap();
        assert_eq!(config.forks, Some(7));
        assert_eq!(
            config.warnings,
            ["not supported yet: the setting [defaults] stdout_callback (/project/ansible.cfg:3) \
              is ignored"]
        );
    }

    #[test]
    fn merge_is_refused() {
        let error = resolve("[defaults]\nhash_behaviour = merge\n", &[]).unwrap_err();
        assert!(error.to_string().starts_with("not supported yet: hash_behaviour = merge"));
    }
}
