//! How commands reach a host: over SSH (russh), on this machine, or inside a chroot, always
//! through `sh -c`.

mod chroot;
mod local;
mod quote;
mod ssh;

use std::time::Duration;

pub use chroot::ChrootConnection;
pub use local::LocalConnection;
pub use quote::{quote, quote_all, split_words};
pub use ssh::{HostKeyPolicy, SshConnection, SshTarget};

/// What a finished remote command gave back.
#[derive(Clone, Debug, Default)]
pub struct Output {
    pub rc: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// The host could not be reached or the session broke: Ansible's UNREACHABLE.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unreachable(pub String);

/// A live connection to one host, reused by every task.
pub enum Connection {
    Ssh(SshConnection),
    Local(LocalConnection),
    Chroot(ChrootConnection),
}

/// Privilege escalation settings for one command.
#[derive(Clone, Debug, Default)]
pub struct Become {
    pub enabled: bool,
    pub user: String,
    pub method: String,
    pub flags: String,
    /// The become password, fed to sudo on stdin ahead of the command's own input.
    pub password: Option<String>,
}

impl Become {
    /// The bytes to send on stdin: the password line first when sudo may ask for it.
    pub fn stdin(&self, input: Option<&[u8]>) -> Option<Vec<u8>> {
        match (&self.password, self.enabled && is_sudo(&self.method)) {
            (Some(password), true) => {
                let mut bytes = format!("{password}\n").into_bytes();
                bytes.extend_from_slice(input.unwrap_or_default());
                Some(bytes)
            }
            _ => input.map(<[u8]>::to_vec),
        }
    }
}

fn is_sudo(method: &str) -> bool {
    matches!(method, "" | "sudo")
}

impl Connection {
    /// Runs a shell command line, feeding `stdin` if given.
    pub async fn exec(&self, command: &str, stdin: Option<&[u8]>) -> Result<Output, Unreachable> {
        tracing::debug!(command, "exec");
        match self {
            Connection::Ssh(ssh) => ssh.exec(command, stdin).await,
            Connection::Local(local) => local.exec(command, stdin).await,
            Connection::Chroot(chroot) => chroot.exec(command, stdin).await,
        }
    }

    pub async fn close(&self) {
        if let Connection::Ssh(ssh) = self {
            ssh.close().await;
        }
    }
}

/// Wraps a command so it runs as the become user (sudo or su), or as is.
pub fn wrap_become(command: &str, settings: &Become) -> Result<String, String> {
    if !settings.enabled {
        return Ok(command.to_string());
    }
    let user = if settings.user.is_empty() { "root" } else { &settings.user };
    match settings.method.as_str() {
        "" | "sudo" => {
            let flags = if settings.flags.is_empty() { "-H -S -n" } else { &settings.flags };
            let sudo = |flags: &str| {
                format!("sudo {flags} -u {} /bin/sh -c {}", quote(user), quote(command))
            };
            if settings.password.is_none() {
                return Ok(sudo(flags));
            }
            // stdin starts with the password line. sudo -S reads exactly that line when it
            // asks; when it needs none (NOPASSWD, a cached ticket) the shell reads the line
            // away, so the command never sees the password.
            let asking: Vec<&str> = flags.split_whitespace().filter(|f| *f != "-n").collect();
            Ok(format!(
                "if sudo -n -u {user} true 2>/dev/null; then IFS= read -r _; exec {quiet}; \
                 else exec {asking}; fi",
                user = quote(user),
                quiet = sudo(flags),
                asking = sudo(&format!("{} -p ''", asking.join(" "))),
            ))
        }
        "su" if settings.password.is_some() => Err(
            "not supported yet: become_method su with a password (su reads it from a terminal); \
             use sudo"
                .to_string(),
        ),
        "su" => Ok(format!("su {} -c {}", quote(user), quote(command))),
        other => Err(format!("not supported yet: become_method `{other}` (use sudo or su)")),
    }
}

/// Runs a command under coreutils' `timeout`, which kills its whole process group once
/// `limit` has passed (one second later than the controller gives up, so the controller
/// reports the timeout); without `timeout` on the host the command runs unlimited there.
pub fn with_time_limit(command: &str, limit: Duration) -> String {
    let seconds = limit.as_secs() + 1;
    format!(
        "if command -v timeout >/dev/null 2>&1; then exec timeout -s KILL {seconds} /bin/sh -c {0}; \
         else exec /bin/sh -c {0}; fi",
        quote(command)
    )
}
