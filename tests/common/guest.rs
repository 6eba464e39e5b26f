//! The qemu lab guest (Debian 13, systemd, user `pi` with sudo, no Python) as a test sees it:
//! booted once per test file by `tests/lab/boot.sh`, reached over ssh, stopped when dropped.
//!
//! The test harness runs a file's `#[test]` functions on several threads and never drops a
//! `static`, so a file that shares one guest does it by running its cases in sequence from
//! one `#[test]` that owns the `Guest`.

use std::path::PathBuf;
use std::process::Command;

use super::free_port;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `${BRAMBLE_CACHE:-~/.cache/bramble}/lab`, where the lab scripts keep keys and images.
pub fn lab_dir() -> PathBuf {
    std::env::var("BRAMBLE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/bramble")
        })
        .join("lab")
}

/// Runs `tests/lab/NAME ARGUMENTS` for an image variant (none: the base image), asserting
/// success; its stdout, trimmed.
pub fn lab_script(name: &str, arguments: &[&str], variant: Option<&str>) -> String {
    let mut command = Command::new(repo().join("tests/lab").join(name));
    command.args(arguments);
    match variant {
        Some(variant) => command.env("BRAMBLE_LAB_VARIANT", variant),
        None => command.env_remove("BRAMBLE_LAB_VARIANT"),
    };
    let output = command.output().expect("run a lab script");
    assert!(
        output.status.success(),
        "tests/lab/{name} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// A lab guest booted for one test file, stopped (its overlay dropped) when dropped.
pub struct Guest {
    pub name: String,
    pub port: u16,
    variant: Option<String>,
}

impl Guest {
    /// Builds the image if needed and boots a guest named PREFIX and this process's id, with
    /// ssh forwarded to a free port on 127.0.0.1. `BRAMBLE_LAB_BOOT_TIMEOUT` (boot.sh's)
    /// bounds the wait.
    pub fn boot(prefix: &str, variant: Option<&str>) -> Guest {
        lab_script("image.sh", &[], variant);
        let name = format!("{prefix}{}", std::process::id());
        let port = free_port();
        lab_script("boot.sh", &[&name, &port.to_string()], variant);
        Guest { name, port, variant: variant.map(str::to_string) }
    }

    /// Runs a command as `pi`; its stdout, trimmed, whatever its exit status.
    pub fn ssh(&self, command: &str) -> String {
        let output = self.login("pi", command);
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// Runs a command as root, asserting that it succeeds; its stdout, trimmed.
    pub fn root(&self, command: &str) -> String {
        let output = self.login("root", command);
        assert!(
            output.status.success(),
            "`{command}` failed in the guest:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// Copies a file of this machine to `path` in the guest, as root.
    pub fn upload(&self, local: &std::path::Path, path: &str) {
        let status = Command::new(repo().join("tests/lab/ssh.sh"))
            .arg(format!("root@{}", self.name))
            .arg(format!("cat > '{path}'"))
            .stdin(std::fs::File::open(local).expect("file to upload"))
            .status()
            .expect("tests/lab/ssh.sh");
        assert!(status.success(), "copying {} to the guest failed", local.display());
    }

    fn login(&self, user: &str, command: &str) -> std::process::Output {
        Command::new(repo().join("tests/lab/ssh.sh"))
            .arg(format!("{user}@{}", self.name))
            .arg(command)
            .output()
            .expect("tests/lab/ssh.sh")
    }

    /// An inventory line for this guest as user `pi`, with the lab's key and known_hosts, so
    /// that bramble and ansible-playbook reach it alike. The SSH timeout is 30 s: on a loaded
    /// machine a TCG guest (a docker one just booted most of all) can leave keepalives
    /// unanswered for the default 10 s, and the session is dropped as unreachable.
    pub fn host_line(&self, name: &str) -> String {
        let lab = lab_dir();
        format!(
            "{name} ansible_host=127.0.0.1 ansible_port={} ansible_user=pi ansible_ssh_timeout=30 \
             ansible_ssh_private_key_file={} ansible_ssh_common_args='-o UserKnownHostsFile={}'",
            self.port,
            lab.join("id_ed25519").display(),
            lab.join("known_hosts").display()
        )
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let variant = self.variant.as_deref();
        let mut command = Command::new(repo().join("tests/lab/stop.sh"));
        if let Some(variant) = variant {
            command.env("BRAMBLE_LAB_VARIANT", variant);
        }
        let _ = command.arg(&self.name).status();
    }
}
