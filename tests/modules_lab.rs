//! System modules on a real Debian 13 guest (qemu, TCG), never on this machine: sysctl and
//! hostname change the system they run on. Changed then ok, and `--check` changes nothing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Run, free_port};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn script(name: &str, arguments: &[&str]) {
    let output = Command::new(repo().join("tests/lab").join(name))
        .args(arguments)
        .output()
        .expect("run a lab script");
    assert!(
        output.status.success(),
        "tests/lab/{name} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A guest booted for this test alone, stopped when dropped.
struct Guest {
    name: String,
    port: u16,
}

impl Guest {
    fn boot() -> Guest {
        let name = format!("modules{}", std::process::id());
        let port = free_port();
        script("boot.sh", &[&name, &port.to_string()]);
        Guest { name, port }
    }

    fn ssh(&self, command: &str) -> String {
        let output = Command::new(repo().join("tests/lab/ssh.sh"))
            .arg(&self.name)
            .arg(command)
            .output()
            .expect("ssh");
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("tests/lab/stop.sh")).arg(&self.name).status();
    }
}

const PLAYBOOK: &str = r#"
- hosts: all
  gather_facts: false
  become: true
  tasks:
    - ansible.posix.sysctl:
        name: vm.swappiness
        value: "{{ swappiness }}"
        sysctl_file: /etc/sysctl.d/90-bramble.conf
        sysctl_set: true
    - hostname: { name: "{{ new_name }}" }
"#;

fn args(values: &[String]) -> Vec<&str> {
    values.iter().map(String::as_str).collect()
}

fn bramble(dir: &Path, extra: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_bramble"))
        .current_dir(dir)
        .args(["run", "site.yml", "-i", "hosts"])
        .args(extra)
        .output()
        .expect("bramble");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[test]
fn sysctl_and_hostname_change_once_and_check_mode_changes_nothing() {
    script("image.sh", &[]);
    let guest = Guest::boot();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("site.yml"), PLAYBOOK).unwrap();
    let key = std::env::var("BRAMBLE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/bramble"))
        .join("lab");
    std::fs::write(
        dir.path().join("hosts"),
        format!(
            "lab1 ansible_host=127.0.0.1 ansible_port={} ansible_user=pi ansible_ssh_private_key_file={} ansible_ssh_common_args='-o UserKnownHostsFile={}'\n",
            guest.port,
            key.join("id_ed25519").display(),
            key.join("known_hosts").display()
        ),
    )
    .unwrap();
    let vars = |swappiness: &str, name: &str| {
        vec!["-e".to_string(), format!("swappiness={swappiness} new_name={name}")]
    };

    let first = bramble(dir.path(), &args(&vars("33", "bramblelab")));
    first.success();
    assert!(first.recap("lab1").contains("changed=2 "), "{}", first.stdout);
    assert_eq!(guest.ssh("cat /proc/sys/vm/swappiness"), "33");
    assert_eq!(guest.ssh("cat /etc/sysctl.d/90-bramble.conf"), "vm.swappiness=33");
    assert_eq!(guest.ssh("hostname; cat /etc/hostname"), "bramblelab\nbramblelab");

    let second = bramble(dir.path(), &args(&vars("33", "bramblelab")));
    second.success();
    assert!(second.recap("lab1").contains("changed=0 "), "{}", second.stdout);

    let mut check = vars("44", "otherlab");
    check.push("--check".into());
    let checked = bramble(dir.path(), &args(&check));
    checked.success();
    assert!(checked.recap("lab1").contains("changed=2 "), "{}", checked.stdout);
    assert_eq!(guest.ssh("cat /proc/sys/vm/swappiness; hostname"), "33\nbramblelab");
}
