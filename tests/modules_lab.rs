//! System modules on a real Debian 13 guest (qemu, TCG), never on this machine: sysctl and
//! hostname change the system they run on. Changed then ok, and `--check` changes nothing.

mod common;

use std::path::Path;
use std::process::Command;

use common::Run;
use common::guest::Guest;

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
    let guest = Guest::boot("modules", None);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("site.yml"), PLAYBOOK).unwrap();
    std::fs::write(dir.path().join("hosts"), guest.host_line("lab1") + "\n").unwrap();
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
