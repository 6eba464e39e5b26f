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
            Ok(format!("sudo {flags} -u {} /bin/sh -c {}", quote(user), quote(command)))
        }
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
