//! SSH through russh: one authenticated session per host, one channel per command, host keys
//! checked against known_hosts.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::known_hosts::{check_known_hosts_path, learn_known_hosts_path};
use russh::keys::{PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::{ChannelMsg, Disconnect};

use super::{Output, Unreachable};

/// What to do with a host key that no known_hosts file lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostKeyPolicy {
    /// Refuse the host (OpenSSH's `StrictHostKeyChecking=yes`, Ansible's default).
    Strict,
    /// Accept and record it in the first known_hosts file (`accept-new`).
    AcceptNew,
    /// Accept without recording (`host_key_checking = False`).
    Off,
}

/// Everything needed to open a session to one host.
#[derive(Clone, Debug)]
pub struct SshTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub private_keys: Vec<PathBuf>,
    pub password: Option<String>,
    pub known_hosts: Vec<PathBuf>,
    pub policy: HostKeyPolicy,
    /// For the TCP connection and handshake, and for a host that stops answering: after
    /// this long without a word from it the session is given up and the host unreachable.
    pub timeout: Duration,
}

struct Verifier {
    target: SshTarget,
    verdict: Arc<Mutex<Option<String>>>,
}

impl client::Handler for Verifier {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        offered: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = match offered {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            PublicKeyOrCertificate::Certificate(certificate) => {
                PublicKey::from(certificate.public_key().clone())
            }
        };
        let verdict = self.judge(&key);
        let accepted = verdict.is_none();
        *self.verdict.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = verdict;
        Ok(accepted)
    }
}

impl Verifier {
    /// `None` to accept, or why the key is refused.
    fn judge(&self, key: &PublicKey) -> Option<String> {
        let target = &self.target;
        for file in &target.known_hosts {
            match check_known_hosts_path(&target.host, target.port, key, file) {
                Ok(true) => return None,
                Ok(false) => {}
                Err(russh::keys::Error::KeyChanged { line }) => {
                    return Some(format!(
                        "REMOTE HOST IDENTIFICATION HAS CHANGED for {}: the key differs from {}:{line}",
                        target.host,
                        file.display()
                    ));
                }
                Err(error) => tracing::warn!("reading {}: {error}", file.display()),
            }
        }
        match target.policy {
            HostKeyPolicy::Off => None,
            HostKeyPolicy::AcceptNew => {
                let file = target.known_hosts.first()?;
                if let Err(error) = learn_known_hosts_path(&target.host, target.port, key, file) {
                    tracing::warn!("could not record the host key in {}: {error}", file.display());
                }
                None
            }
            HostKeyPolicy::Strict => Some(format!(
                "host key verification failed: {}:{} is not in {}; add it with ssh-keyscan, or \
                 set `ansible_ssh_common_args='-o StrictHostKeyChecking=accept-new'` (or \
                 ANSIBLE_HOST_KEY_CHECKING=False) to accept it",
                target.host,
                target.port,
                target
                    .known_hosts
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

/// An authenticated SSH session.
pub struct SshConnection {
    handle: Handle<Verifier>,
}

impl SshConnection {
    pub async fn connect(target: SshTarget) -> Result<SshConnection, Unreachable> {
        let verdict = Arc::new(Mutex::new(None));
        let verifier = Verifier { target: target.clone(), verdict: verdict.clone() };
        let config = Arc::new(client::Config {
            inactivity_timeout: None,
            keepalive_interval: Some(keepalive_interval(target.timeout)),
            keepalive_max: KEEPALIVES_MISSED,
            nodelay: true,
            ..client::Config::default()
        });
        let address = (target.host.as_str(), target.port);
        let connecting = client::connect(config, address, verifier);
        let mut handle = match tokio::time::timeout(target.timeout, connecting).await {
            Err(_) => {
                return Err(Unreachable(format!(
                    "ssh: connect to host {} port {}: Connection timed out",
                    target.host, target.port
                )));
            }
            Ok(Err(error)) => {
                let refused = verdict.lock().unwrap_or_else(|p| p.into_inner()).take();
                return Err(Unreachable(refused.unwrap_or_else(|| connect_error(&target, &error))));
            }
            Ok(Ok(handle)) => handle,
        };
        authenticate(&mut handle, &target).await?;
        Ok(SshConnection { handle })
    }

    /// Runs one command on its own channel. A session that ends meanwhile (the host went
    /// away, or stopped answering keepalives) ends the command too, even where russh would
    /// keep waiting for room to send its input.
    pub async fn exec(&self, command: &str, stdin: Option<&[u8]>) -> Result<Output, Unreachable> {
        tokio::select! {
            output = self.exec_on_channel(command, stdin) => output,
            () = self.session_gone() => Err(Unreachable(
                "ssh session broke: the host stopped answering or closed the connection".into(),
            )),
        }
    }

    async fn session_gone(&self) {
        while !self.handle.is_closed() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn exec_on_channel(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
    ) -> Result<Output, Unreachable> {
        let broken = |error: russh::Error| Unreachable(format!("ssh session broke: {error}"));
        let mut channel = self.handle.channel_open_session().await.map_err(broken)?;
        channel.exec(true, command).await.map_err(broken)?;
        if let Some(data) = stdin {
            channel.data(data).await.map_err(broken)?;
        }
        channel.eof().await.map_err(broken)?;
        let mut output = Output { rc: -1, ..Output::default() };
        while let Some(message) = channel.wait().await {
            match message {
                ChannelMsg::Data { data } => output.stdout.extend_from_slice(&data),
                ChannelMsg::ExtendedData { data, ext: 1 } => output.stderr.extend_from_slice(&data),
                ChannelMsg::ExitStatus { exit_status } => output.rc = exit_status as i32,
                ChannelMsg::ExitSignal { signal_name, .. } => {
                    output.rc = 128;
                    output
                        .stderr
                        .extend_from_slice(format!("killed by signal {signal_name:?}").as_bytes());
                }
                _ => {}
            }
        }
        if output.rc == -1 {
            return Err(Unreachable(
                "ssh channel closed before the command reported its exit status".into(),
            ));
        }
        Ok(output)
    }

    pub async fn close(&self) {
        let _ = self.handle.disconnect(Disconnect::ByApplication, "", "en").await;
    }
}

/// Keepalives unanswered before the session is dropped; with the interval below, a silent
/// host is given up about one connection timeout after it went quiet.
const KEEPALIVES_MISSED: usize = 2;

fn keepalive_interval(timeout: Duration) -> Duration {
    (timeout / (KEEPALIVES_MISSED as u32 + 1)).max(Duration::from_millis(500))
}

fn connect_error(target: &SshTarget, error: &russh::Error) -> String {
    let detail = match error {
        russh::Error::IO(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => "Connection refused".to_string(),
            _ => io.to_string(),
        },
        other => other.to_string(),
    };
    format!(
        "Failed to connect to the host via ssh: ssh: connect to host {} port {}: {detail}",
        target.host, target.port
    )
}

/// Tries the given key files, then the ssh-agent, then a password; the first to work wins.
async fn authenticate(
    handle: &mut Handle<Verifier>,
    target: &SshTarget,
) -> Result<(), Unreachable> {
    let mut tried = Vec::new();
    for path in &target.private_keys {
        match russh::keys::load_secret_key(path, None) {
            Ok(key) => {
                let hash = handle.best_supported_rsa_hash().await.ok().flatten().flatten();
                let key = PrivateKeyWithHashAlg::new(Arc::new(key), hash);
                match handle.authenticate_publickey(&target.user, key).await {
                    Ok(result) if result.success() => return Ok(()),
                    _ => tried.push(format!("key {}", path.display())),
                }
            }
            Err(error) => tried.push(format!("key {} (unreadable: {error})", path.display())),
        }
    }
    if try_agent(handle, target).await {
        return Ok(());
    }
    if std::env::var_os("SSH_AUTH_SOCK").is_some() {
        tried.push("ssh-agent".into());
    }
    if let Some(password) = &target.password {
        if let Ok(result) = handle.authenticate_password(&target.user, password).await
            && result.success()
        {
            return Ok(());
        }
        tried.push("password".into());
    }
    Err(Unreachable(format!(
        "Failed to connect to the host via ssh: {}@{}: Permission denied (tried {})",
        target.user,
        target.host,
        if tried.is_empty() {
            "no credentials: give --private-key or ansible_ssh_private_key_file".to_string()
        } else {
            tried.join(", ")
        }
    )))
}

async fn try_agent(handle: &mut Handle<Verifier>, target: &SshTarget) -> bool {
    let Ok(mut agent) = russh::keys::agent::client::AgentClient::connect_env().await else {
        return false;
    };
    let Ok(identities) = agent.request_identities().await else { return false };
    for identity in identities {
        let key = identity.public_key().into_owned();
        let hash = handle.best_supported_rsa_hash().await.ok().flatten().flatten();
        if let Ok(result) =
            handle.authenticate_publickey_with(&target.user, key, hash, &mut agent).await
            && result.success()
        {
            return true;
        }
    }
    false
}
