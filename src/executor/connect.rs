//! Turning a host's connection variables into a live connection, opened once and reused.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use crate::connection::{
    ChrootConnection, Connection, HostKeyPolicy, LocalConnection, SshConnection, SshTarget,
    Unreachable, split_words,
};

/// Connections are reused while these stay the same.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectionKey {
    Local,
    Chroot { root: PathBuf },
    Ssh { host: String, port: u16, user: String },
}

/// The connection settings of one host, read from its (templated) variables.
#[derive(Clone, Debug)]
pub struct Settings {
    pub key: ConnectionKey,
    pub target: Option<SshTarget>,
}

fn text(vars: &serde_json::Map<String, Value>, name: &str) -> Option<String> {
    vars.get(name).filter(|v| !v.is_null()).map(crate::playbook::display_string)
}

fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

/// Reads `ansible_connection`, `ansible_host`, `ansible_port`, `ansible_user`, keys, and the
/// `-o` options of `ansible_ssh_common_args` / `ansible_ssh_extra_args` that matter here.
pub fn settings(
    host: &str,
    vars: &serde_json::Map<String, Value>,
    options: &super::Options,
    play_user: Option<String>,
) -> Result<Settings, String> {
    let connection = text(vars, "ansible_connection")
        .or_else(|| options.connection.clone())
        .unwrap_or_else(|| "ssh".into());
    // Connection plugins may be named by their collection, as `-c ansible.builtin.local`.
    let name = ["ansible.builtin.", "ansible.legacy.", "community.general."]
        .iter()
        .find_map(|prefix| connection.strip_prefix(prefix))
        .unwrap_or(&connection);
    match name {
        "local" => return Ok(Settings { key: ConnectionKey::Local, target: None }),
        // As in Ansible, the chroot directory is the host's address.
        "chroot" => {
            let root = text(vars, "ansible_host").unwrap_or_else(|| host.to_string());
            let key = ConnectionKey::Chroot { root: expand_home(&root) };
            return Ok(Settings { key, target: None });
        }
        "ssh" | "smart" | "paramiko" => {}
        other => {
            return Err(format!(
                "not supported yet: ansible_connection={other} (use ssh, local or chroot)"
            ));
        }
    }
    let address = text(vars, "ansible_host")
        .or_else(|| text(vars, "ansible_ssh_host"))
        .unwrap_or_else(|| host.to_string());
    let port = match vars.get("ansible_port").or_else(|| vars.get("ansible_ssh_port")) {
        None | Some(Value::Null) => 22,
        Some(value) => crate::playbook::display_string(value)
            .parse::<u16>()
            .map_err(|_| format!("ansible_port must be a port number, got {value}"))?,
    };
    let user = text(vars, "ansible_user")
        .or_else(|| text(vars, "ansible_ssh_user"))
        .or(play_user)
        .or_else(|| options.user.clone())
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "root".into());

    let mut private_keys: Vec<PathBuf> = Vec::new();
    if let Some(key) = &options.private_key {
        private_keys.push(key.clone());
    }
    if let Some(key) = text(vars, "ansible_ssh_private_key_file")
        .or_else(|| text(vars, "ansible_private_key_file"))
    {
        private_keys.insert(0, expand_home(&key));
    }
    let mut known_hosts: Vec<PathBuf> = Vec::new();
    let mut policy = host_key_policy(vars);
    let arguments = [
        ("ansible_ssh_common_args", &options.ssh_common_args),
        ("ansible_ssh_extra_args", &options.ssh_extra_args),
    ]
    .iter()
    .filter_map(|(name, flag)| text(vars, name).or_else(|| (*flag).clone()))
    .chain(std::env::var("ANSIBLE_SSH_ARGS").ok())
    .collect::<Vec<_>>()
    .join(" ");
    for (key, value) in ssh_options(&arguments)? {
        match key.to_ascii_lowercase().as_str() {
            "userknownhostsfile" => known_hosts.extend(value.split_whitespace().map(expand_home)),
            "stricthostkeychecking" => {
                policy = match value.to_ascii_lowercase().as_str() {
                    "accept-new" => HostKeyPolicy::AcceptNew,
                    "no" | "off" => HostKeyPolicy::Off,
                    _ => HostKeyPolicy::Strict,
                }
            }
            "identityfile" => private_keys.push(expand_home(&value)),
            other => tracing::debug!("ignoring ssh option {other}"),
        }
    }
    if known_hosts.is_empty() {
        known_hosts.push(expand_home("~/.ssh/known_hosts"));
    }
    if private_keys.is_empty() {
        for name in ["id_ed25519", "id_ecdsa", "id_rsa"] {
            let path = expand_home(&format!("~/.ssh/{name}"));
            if path.is_file() {
                private_keys.push(path);
            }
        }
    }
    let password = text(vars, "ansible_password")
        .or_else(|| text(vars, "ansible_ssh_pass"))
        .or_else(|| options.connection_password.clone());
    let timeout = match text(vars, "ansible_ssh_timeout") {
        Some(seconds) => seconds.trim().parse::<u64>().map_err(|_| {
            format!("ansible_ssh_timeout must be a number of seconds, got {seconds}")
        })?,
        None => options.timeout,
    };
    let timeout = std::time::Duration::from_secs(if timeout == 0 { 10 } else { timeout });
    let key = ConnectionKey::Ssh { host: address.clone(), port, user: user.clone() };
    Ok(Settings {
        key,
        target: Some(SshTarget {
            host: address,
            port,
            user,
            private_keys,
            password,
            known_hosts,
            policy,
            timeout,
        }),
    })
}

/// `ansible_host_key_checking`, else the `host_key_checking` setting: false turns checking off.
fn host_key_policy(vars: &serde_json::Map<String, Value>) -> HostKeyPolicy {
    let configured = crate::config::current().ok().and_then(|config| config.host_key_checking);
    let setting =
        vars.get("ansible_host_key_checking").cloned().or_else(|| configured.map(Value::Bool));
    match setting.as_ref().and_then(crate::modules::args_to_bool) {
        Some(false) => HostKeyPolicy::Off,
        _ => HostKeyPolicy::Strict,
    }
}

/// The `-o Key=Value` pairs of an ssh argument string.
pub fn ssh_options(arguments: &str) -> Result<Vec<(String, String)>, String> {
    let words = split_words(arguments)?;
    let mut pairs = Vec::new();
    let mut words = words.iter();
    while let Some(word) = words.next() {
        let option = if word == "-o" {
            words.next().cloned()
        } else {
            word.strip_prefix("-o").map(str::to_string)
        };
        if let Some(option) = option
            && let Some((key, value)) = option.split_once('=').or_else(|| option.split_once(' '))
        {
            pairs.push((key.trim().to_string(), value.trim().to_string()));
        }
    }
    Ok(pairs)
}

pub async fn open(settings: &Settings) -> Result<Arc<Connection>, Unreachable> {
    if let ConnectionKey::Chroot { root } = &settings.key {
        return Ok(Arc::new(Connection::Chroot(ChrootConnection::open(root)?)));
    }
    match &settings.target {
        None => Ok(Arc::new(Connection::Local(LocalConnection))),
        Some(target) => {
            Ok(Arc::new(Connection::Ssh(SshConnection::connect(target.clone()).await?)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ssh_options;

    #[test]
    fn reads_dash_o_options() {
        let pairs =
            ssh_options("-o UserKnownHostsFile=/tmp/kh -oStrictHostKeyChecking=accept-new -C")
                .unwrap();
        assert_eq!(
            pairs,
            [
                ("UserKnownHostsFile".to_string(), "/tmp/kh".to_string()),
                ("StrictHostKeyChecking".to_string(), "accept-new".to_string())
            ]
        );
    }
}
