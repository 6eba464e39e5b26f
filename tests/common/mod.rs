//! Test support: a real OpenSSH server on loopback, the qemu lab guest, a fluent builder that
//! runs `bramble` (and ansible-playbook, the oracle) on the same files, the module tests'
//! differential scaffold, and output normalisation.
#![allow(dead_code)]

mod differential;
pub mod guest;

#[allow(unused_imports)]
pub use differential::{Differential, tree};

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// An sshd started for one test on 127.0.0.1, stopped when dropped.
pub struct Sshd {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl Sshd {
    pub fn start() -> Sshd {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path();
        keygen(&path.join("host_key"));
        keygen(&path.join("client_key"));
        std::fs::copy(path.join("client_key.pub"), path.join("authorized_keys"))
            .expect("authorized_keys");
        std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
        let port = free_port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nAuthorizedKeysFile {keys}\nPidFile {pid}\n\
             StrictModes no\nPermitRootLogin yes\nPasswordAuthentication no\nUsePAM no\nMaxSessions 64\nMaxStartups 64\n",
            host = path.join("host_key").display(),
            keys = path.join("authorized_keys").display(),
            pid = path.join("sshd.pid").display(),
        );
        std::fs::write(path.join("sshd_config"), config).expect("sshd_config");
        let child = clean_login(path)
            .args(["/usr/sbin/sshd", "-D", "-e", "-f"])
            .arg(path.join("sshd_config"))
            .stderr(std::fs::File::create(path.join("sshd.log")).expect("log"))
            .spawn()
            .expect("start /usr/sbin/sshd (is openssh-server installed?)");
        wait_for_port(port);
        let host_key = std::fs::read_to_string(path.join("host_key.pub")).expect("host key");
        let line = format!(
            "[127.0.0.1]:{port} {}",
            host_key.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
        );
        std::fs::write(path.join("known_hosts"), line + "\n").expect("known_hosts");
        Sshd { port, dir, child }
    }

    pub fn key(&self) -> PathBuf {
        self.dir.path().join("client_key")
    }

    pub fn known_hosts(&self) -> PathBuf {
        self.dir.path().join("known_hosts")
    }

    /// An inventory line for a host reached through this server.
    pub fn host_line(&self, name: &str) -> String {
        format!(
            "{name} ansible_host=127.0.0.1 ansible_port={} ansible_user=root ansible_ssh_private_key_file={} ansible_ssh_common_args='-o UserKnownHostsFile={}' ansible_python_interpreter=/usr/bin/python3",
            self.port,
            self.key().display(),
            self.known_hosts().display()
        )
    }
}

/// The command that starts sshd: in its own mount namespace with an empty ~/.bashrc over
/// the user's, when there is one. bash reads ~/.bashrc for every command sshd starts; this
/// machine's runs `pyenv init` (300 ms a command), which a test host would not.
fn clean_login(dir: &Path) -> Command {
    let bashrc = std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".bashrc"));
    let Some(bashrc) = bashrc.filter(|path| path.exists()) else {
        let mut command = Command::new("env");
        command.arg("--");
        return command;
    };
    let empty = dir.join("empty_bashrc");
    std::fs::write(&empty, "").expect("empty_bashrc");
    let mut command = Command::new("unshare");
    command
        .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg(r#"mount --bind "$1" "$2" && shift 2 && exec "$@""#)
        .arg("sh")
        .arg(&empty)
        .arg(&bashrc);
    command
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen");
    assert!(status.success(), "ssh-keygen failed");
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

pub fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on 127.0.0.1:{port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What a finished command gave.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<std::process::Output> for Run {
    fn from(output: std::process::Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    pub fn success(&self) -> &Run {
        assert_eq!(
            self.code, 0,
            "expected success\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code, code,
            "unexpected exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn stdout_has(&self, text: &str) -> &Run {
        assert!(
            self.stdout.contains(text),
            "stdout lacks {text:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    pub fn stderr_has(&self, text: &str) -> &Run {
        assert!(
            self.stderr.contains(text),
            "stderr lacks {text:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// The `changed=` count of one host's recap line.
    pub fn changed(&self, host: &str) -> u32 {
        let recap = self.recap(host);
        let count = recap.split("changed=").nth(1).and_then(|rest| rest.split(' ').next());
        count.and_then(|count| count.parse().ok()).unwrap_or_else(|| panic!("{recap}"))
    }

    /// The recap line of one host.
    pub fn recap(&self, host: &str) -> String {
        self.stdout
            .lines()
            .find(|line| line.starts_with(&format!("{host} ")) && line.contains(" : ok="))
            .unwrap_or_else(|| panic!("no recap for {host}\n{}", self.stdout))
            .to_string()
    }
}

/// A project directory with a playbook and inventory, run by bramble or ansible-playbook.
pub struct Test {
    pub dir: tempfile::TempDir,
    arguments: Vec<String>,
}

impl Test {
    pub fn new() -> Test {
        Test { dir: tempfile::tempdir().expect("temp dir"), arguments: Vec::new() }
    }

    pub fn file(self, name: &str, text: &str) -> Test {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
        self
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn arg(mut self, argument: &str) -> Test {
        self.arguments.push(argument.to_string());
        self
    }

    /// `bramble run <arguments>` in the project directory.
    pub fn bramble(&self) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_bramble"));
        command.arg("run").args(&self.arguments);
        self.execute(command)
    }

    /// `ansible-playbook <arguments>`, the oracle.
    pub fn ansible(&self) -> Run {
        let mut command = Command::new("ansible-playbook");
        command
            .args(&self.arguments)
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
            .env("ANSIBLE_PYTHON_INTERPRETER", "/usr/bin/python3")
            .env("ANSIBLE_LOCALHOST_WARNING", "0");
        self.execute(command)
    }

    fn execute(&self, mut command: Command) -> Run {
        let output = command
            .current_dir(self.dir.path())
            .env_remove("ANSIBLE_HOST_KEY_CHECKING")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .expect("run");
        Run::from(output)
    }
}

/// Output with times, durations and temp paths replaced, for comparing runs.
pub fn normalize(text: &str, dir: &Path) -> String {
    let times = regex::Regex::new(r#""(delta|end|start)": "[^"]*""#).expect("regex");
    let text = times.replace_all(text, r#""$1": "<time>""#);
    let text = text.replace(
        &std::fs::canonicalize(dir).unwrap_or(dir.to_path_buf()).display().to_string(),
        "<dir>",
    );
    text.lines()
        .filter(|line| {
            !line.starts_with("[WARNING]: Host '")
                && !line.contains("discovered Python interpreter")
        })
        .collect::<Vec<_>>()
        .join("\n")
}
