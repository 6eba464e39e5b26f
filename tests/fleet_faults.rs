//! Faults a rollout must survive, with real parts: each host is an OpenSSH server that the
//! test starts in a network namespace it creates (a veth pair to the root namespace), so
//! that a host going away is its sshd and sessions frozen or killed, as a guest would be.
//!
//! Needs root (network namespaces), `ip` and `/usr/sbin/sshd`.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The connection timeout the runs use (`ansible_ssh_timeout`), in seconds.
const TIMEOUT: u64 = 3;

/// Gives each host of this process its own /30 subnet.
static NEXT_HOST: AtomicU32 = AtomicU32::new(0);

/// One sshd in a network namespace of its own, reached at `address` port 22.
struct NsHost {
    namespace: String,
    address: String,
    dir: tempfile::TempDir,
    sshd: Child,
}

impl NsHost {
    fn start() -> NsHost {
        let index = NEXT_HOST.fetch_add(1, Ordering::SeqCst);
        let second = 100 + std::process::id() % 100;
        let outside = format!("10.{second}.{index}.1");
        let address = format!("10.{second}.{index}.2");
        let tag = format!("{}x{index}", std::process::id());
        let namespace = format!("bramble-ff-{tag}");
        let (veth, peer) = (format!("bf{tag}a"), format!("bf{tag}b"));
        ip(&["netns", "add", &namespace]);
        ip(&["link", "add", &veth, "type", "veth", "peer", "name", &peer]);
        ip(&["link", "set", &peer, "netns", &namespace]);
        ip(&["addr", "add", &format!("{outside}/30"), "dev", &veth]);
        ip(&["link", "set", &veth, "up"]);
        in_namespace(&namespace, &["ip", "addr", "add", &format!("{address}/30"), "dev", &peer]);
        in_namespace(&namespace, &["ip", "link", "set", &peer, "up"]);
        in_namespace(&namespace, &["ip", "link", "set", "lo", "up"]);

        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path();
        keygen(&path.join("host_key"));
        keygen(&path.join("client_key"));
        std::fs::copy(path.join("client_key.pub"), path.join("authorized_keys")).expect("keys");
        std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
        let config = format!(
            "Port 22\nListenAddress {address}\nHostKey {host}\nAuthorizedKeysFile {keys}\n\
             PidFile {pid}\nStrictModes no\nPermitRootLogin yes\nPasswordAuthentication no\n\
             UsePAM no\nMaxSessions 64\nMaxStartups 64\n",
            host = path.join("host_key").display(),
            keys = path.join("authorized_keys").display(),
            pid = path.join("sshd.pid").display(),
        );
        std::fs::write(path.join("sshd_config"), config).expect("sshd_config");
        let sshd = Command::new("ip")
            .args(["netns", "exec", &namespace, "/usr/sbin/sshd", "-D", "-e", "-f"])
            .arg(path.join("sshd_config"))
            .stderr(std::fs::File::create(path.join("sshd.log")).expect("log"))
            .spawn()
            .expect("start sshd in the namespace");
        let host_key = std::fs::read_to_string(path.join("host_key.pub")).expect("host key");
        let key: Vec<&str> = host_key.split_whitespace().take(2).collect();
        std::fs::write(path.join("known_hosts"), format!("{address} {}\n", key.join(" ")))
            .expect("known_hosts");
        let host = NsHost { namespace, address, dir, sshd };
        host.wait_until_listening();
        host
    }

    fn wait_until_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let target = format!("{}:22", self.address).parse().expect("address");
        while std::net::TcpStream::connect_timeout(&target, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "sshd in {} does not listen", self.namespace);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn host_line(&self, name: &str) -> String {
        format!(
            "{name} ansible_host={} ansible_user=root ansible_ssh_private_key_file={} \
             ansible_ssh_common_args='-o UserKnownHostsFile={}' ansible_ssh_timeout={TIMEOUT}",
            self.address,
            self.dir.path().join("client_key").display(),
            self.dir.path().join("known_hosts").display()
        )
    }

    /// The per-connection sshd processes of this host (the listener is not one).
    fn sshd_processes(&self) -> Vec<u32> {
        descendants(self.sshd.id()).into_iter().filter(|pid| command_name(*pid) == "sshd").collect()
    }

    /// The guest freezes: sshd and its sessions stop answering, connections stay open.
    fn freeze(&self) {
        signal(self.sshd.id(), libc::SIGSTOP);
        for pid in self.sshd_processes() {
            signal(pid, libc::SIGSTOP);
        }
    }

    /// The connections drop: every per-connection sshd dies, the commands they ran see
    /// their input end; the listener stays, so a rerun can connect.
    fn cut_connections(&self) {
        for pid in self.sshd_processes() {
            signal(pid, libc::SIGKILL);
        }
    }
}

impl Drop for NsHost {
    fn drop(&mut self) {
        let all = descendants(self.sshd.id());
        signal(self.sshd.id(), libc::SIGCONT);
        for pid in &all {
            signal(*pid, libc::SIGCONT);
        }
        for pid in all.iter().rev() {
            signal(*pid, libc::SIGKILL);
        }
        let _ = self.sshd.kill();
        let _ = self.sshd.wait();
        let _ = Command::new("ip").args(["netns", "del", &self.namespace]).status();
    }
}

fn ip(arguments: &[&str]) {
    let status = Command::new("ip").args(arguments).status().expect("ip");
    assert!(status.success(), "ip {arguments:?} failed");
}

fn in_namespace(namespace: &str, command: &[&str]) {
    let mut arguments = vec!["netns", "exec", namespace];
    arguments.extend_from_slice(command);
    ip(&arguments);
}

fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen");
    assert!(status.success(), "ssh-keygen failed");
}

fn signal(pid: u32, signal: i32) {
    // SAFETY: kill(2) on a pid this test started (or a descendant of one); no memory involved.
    unsafe {
        libc::kill(pid as i32, signal);
    }
}

fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: the fields follow the last one.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn command_name(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_string()
}

fn command_line(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " ").trim().to_string())
        .unwrap_or_default()
}

/// Every process under `root`, parents before children.
fn descendants(root: u32) -> Vec<u32> {
    let pids: Vec<u32> = std::fs::read_dir("/proc")
        .map(|entries| entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default();
    let mut found = vec![root];
    let mut index = 0;
    while index < found.len() {
        let current = found[index];
        found.extend(pids.iter().filter(|pid| parent(**pid) == Some(current)));
        index += 1;
    }
    found.remove(0);
    found
}

/// A bramble run in the background, watched while faults are made.
struct Background {
    child: Child,
    started: Instant,
}

impl Background {
    fn start(dir: &Path, arguments: &[&str]) -> Background {
        let child = Command::new(env!("CARGO_BIN_EXE_bramble"))
            .arg("run")
            .args(arguments)
            .current_dir(dir)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start bramble");
        Background { child, started: Instant::now() }
    }

    /// Waits at most `limit` for the run to end: (exit code, stdout, stderr, time taken).
    fn finish(mut self, limit: Duration) -> (i32, String, String, Duration) {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("bramble still runs after {limit:?}: it hangs");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let elapsed = self.started.elapsed();
        let (mut stdout, mut stderr) = (String::new(), String::new());
        if let Some(mut pipe) = self.child.stdout.take() {
            let _ = pipe.read_to_string(&mut stdout);
        }
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        (status.code().unwrap_or(-1), stdout, stderr, elapsed)
    }
}

/// Polls `condition` every 20 ms for at most `limit`.
fn wait_for(what: &str, limit: Duration, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The atomic writes' temp files (`.bramble-XXXXXXXX`) in a directory.
fn temp_files(directory: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(directory)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(".bramble-"))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn recap_line(stdout: &str, host: &str) -> Option<String> {
    stdout
        .lines()
        .find(|line| line.starts_with(&format!("{host} ")) && line.contains(" : ok="))
        .map(str::to_string)
}

/// Writes a playbook project: `hosts` for the given hosts, and `site.yml`.
fn project(hosts: &[(&str, &NsHost)], playbook: &str) -> common::Test {
    let inventory: Vec<String> = hosts.iter().map(|(name, host)| host.host_line(name)).collect();
    common::Test::new()
        .file("hosts", &format!("[fleet]\n{}\n", inventory.join("\n")))
        .file("site.yml", playbook)
}

/// The rolling playbook of the unreachable tests: each host leaves a marker when it starts
/// the long step, so the test knows when to stop it.
fn rolling_playbook(markers: &Path, serial: &str) -> String {
    format!(
        "- hosts: fleet\n  gather_facts: false\n{serial}  tasks:\n    - command: 'true'\n    \
         - shell: touch {markers}/started-{{{{ inventory_hostname }}}}; sleep 2\n    \
         - command: 'true'\n",
        markers = markers.display()
    )
}

#[test]
fn a_host_frozen_mid_run_is_unreachable_and_the_others_finish() {
    let fleet = [NsHost::start(), NsHost::start(), NsHost::start()];
    let markers = tempfile::tempdir().expect("markers");
    let names = [("one", &fleet[0]), ("two", &fleet[1]), ("three", &fleet[2])];
    let test = project(&names, &rolling_playbook(markers.path(), ""));
    let run = Background::start(test.dir.path(), &["site.yml", "-i", "hosts"]);

    let marker = markers.path().join("started-two");
    wait_for("host two to start its long step", Duration::from_secs(30), || marker.exists());
    let frozen = Instant::now();
    fleet[1].freeze();
    let (code, stdout, stderr, _) = run.finish(Duration::from_secs(60));
    let noticed = frozen.elapsed();

    assert_eq!(code, 4, "exit code\n{stdout}\n{stderr}");
    assert!(stdout.contains("fatal: [two]: UNREACHABLE!"), "{stdout}");
    assert!(
        noticed < Duration::from_secs(TIMEOUT + 6),
        "the frozen host took {noticed:?} to be given up (timeout {TIMEOUT} s)"
    );
    let recap = |host| recap_line(&stdout, host).unwrap_or_else(|| panic!("no recap\n{stdout}"));
    assert!(recap("one").contains("ok=3 "), "{stdout}");
    assert!(recap("three").contains("ok=3 "), "{stdout}");
    assert!(recap("two").contains("unreachable=1 "), "{stdout}");
}

#[test]
fn serial_one_with_no_failures_allowed_stops_before_the_next_host() {
    let fleet = [NsHost::start(), NsHost::start(), NsHost::start()];
    let markers = tempfile::tempdir().expect("markers");
    let names = [("one", &fleet[0]), ("two", &fleet[1]), ("three", &fleet[2])];
    let serial = "  serial: 1\n  max_fail_percentage: 0\n";
    let test = project(&names, &rolling_playbook(markers.path(), serial));
    let run = Background::start(test.dir.path(), &["site.yml", "-i", "hosts"]);

    let marker = markers.path().join("started-two");
    wait_for("host two to start its long step", Duration::from_secs(30), || marker.exists());
    fleet[1].freeze();
    let (code, stdout, stderr, _) = run.finish(Duration::from_secs(60));

    assert_eq!(code, 4, "exit code\n{stdout}\n{stderr}");
    assert!(stdout.contains("fatal: [two]: UNREACHABLE!"), "{stdout}");
    assert!(recap_line(&stdout, "one").is_some_and(|l| l.contains("ok=3 ")), "{stdout}");
    assert!(recap_line(&stdout, "three").is_none(), "host three was touched\n{stdout}");
    assert!(!markers.path().join("started-three").exists(), "host three ran a task");
    assert_eq!(stdout.matches("PLAY [fleet]").count(), 2, "{stdout}");
}

/// A copy big enough to be cut while its content is still on the way.
fn large_content(fill: u8) -> Vec<u8> {
    (0..48 * 1024 * 1024usize).map(|index| fill.wrapping_add((index % 251) as u8)).collect()
}

#[test]
fn a_copy_cut_mid_transfer_keeps_the_old_file_and_a_rerun_completes() {
    let host = NsHost::start();
    let target = tempfile::tempdir().expect("target dir");
    let dest = target.path().join("payload.bin");
    std::fs::write(&dest, b"old content\n").expect("old content");
    let playbook = format!(
        "- hosts: fleet\n  gather_facts: false\n  tasks:\n    - copy:\n        src: big.bin\n        \
         dest: {}\n",
        dest.display()
    );
    let test = project(&[("one", &host)], &playbook);
    let content = large_content(7);
    std::fs::write(test.path("big.bin"), &content).expect("big file");

    let run = Background::start(test.dir.path(), &["site.yml", "-i", "hosts"]);
    wait_for("the copy to start streaming", Duration::from_secs(30), || {
        !temp_files(target.path()).is_empty()
    });
    host.cut_connections();
    let (code, stdout, stderr, _) = run.finish(Duration::from_secs(30));
    assert_eq!(code, 4, "exit code\n{stdout}\n{stderr}");
    assert!(stdout.contains("fatal: [one]: UNREACHABLE!"), "{stdout}");
    assert_eq!(std::fs::read(&dest).expect("dest"), b"old content\n", "the old file changed");
    wait_for("the temp file to be removed", Duration::from_secs(10), || {
        temp_files(target.path()).is_empty()
    });

    let rerun = Background::start(test.dir.path(), &["site.yml", "-i", "hosts"]);
    let (code, stdout, stderr, _) = rerun.finish(Duration::from_secs(60));
    assert_eq!(code, 0, "rerun\n{stdout}\n{stderr}");
    assert!(std::fs::read(&dest).expect("dest") == content, "the rerun did not install it");
    assert!(temp_files(target.path()).is_empty(), "a temp file is left");
}

#[test]
fn sigint_exits_promptly_with_ansibles_code_and_leaves_no_temp_files() {
    let fleet = [NsHost::start(), NsHost::start()];
    let targets = [tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir")];
    for target in &targets {
        std::fs::write(target.path().join("payload.bin"), b"old\n").expect("old content");
    }
    let playbook = "- hosts: fleet\n  gather_facts: false\n  tasks:\n    - copy:\n        \
                    src: big.bin\n        dest: '{{ target }}/payload.bin'\n";
    let mut hosts = String::from("[fleet]\n");
    for (index, (host, target)) in fleet.iter().zip(&targets).enumerate() {
        let line = host.host_line(&format!("h{index}"));
        hosts += &format!("{line} target={}\n", target.path().display());
    }
    let test = common::Test::new().file("hosts", &hosts).file("site.yml", playbook);
    std::fs::write(test.path("big.bin"), large_content(3)).expect("big file");

    let mut run = Background::start(test.dir.path(), &["site.yml", "-i", "hosts"]);
    wait_for("a copy to start streaming", Duration::from_secs(30), || {
        targets.iter().any(|t| !temp_files(t.path()).is_empty())
    });
    signal(run.child.id(), libc::SIGINT);
    run.started = Instant::now();
    let (code, stdout, stderr, elapsed) = run.finish(Duration::from_secs(20));

    assert_eq!(code, 99, "exit code\n{stdout}\n{stderr}");
    assert!(stderr.contains("[ERROR]: User interrupted execution"), "{stderr}");
    assert!(!stdout.contains("PLAY RECAP"), "{stdout}");
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?} to stop");
    for target in &targets {
        wait_for("the temp files to be removed", Duration::from_secs(10), || {
            temp_files(target.path()).is_empty()
        });
        assert_eq!(std::fs::read(target.path().join("payload.bin")).expect("dest"), b"old\n");
    }
    // Every session was closed: nothing but the listener is left of each sshd.
    for host in &fleet {
        wait_for("the sessions to close", Duration::from_secs(10), || {
            host.sshd_processes().is_empty()
        });
    }
}

#[test]
fn a_task_timeout_stops_a_command_that_never_returns() {
    let host = NsHost::start();
    let playbook = "- hosts: fleet\n  gather_facts: false\n  tasks:\n    - command: sleep 1037\n      \
                    timeout: 2\n    - debug: msg=never\n";
    let test = project(&[("one", &host)], playbook);
    let run = Background::start(test.dir.path(), &["site.yml", "-i", "hosts"]);
    let (code, stdout, stderr, elapsed) = run.finish(Duration::from_secs(30));

    assert_eq!(code, 2, "exit code\n{stdout}\n{stderr}");
    assert!(stdout.contains("[ERROR]: Task failed: Timed out after 2 second(s)."), "{stdout}");
    assert!(stdout.contains(r#""timedout": {"#), "{stdout}");
    assert!(!stdout.contains("never"), "{stdout}");
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    // On the host, the command itself is gone too.
    wait_for("the remote sleep to be killed", Duration::from_secs(5), || {
        !descendants(host.sshd.id()).iter().any(|pid| command_line(*pid) == "sleep 1037")
    });
}
