//! ansible.posix.authorized_key on the loopback sshd. ansible.posix is not installed next to
//! ansible-core here, so these pin the end state ansible.posix documents: the directory
//! and file it creates, the key lines it writes, changed then ok, and `--check`.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{Sshd, Test};

const A: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA alice@pi";
const B: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAB bob";

fn test(sshd: &Sshd, tasks: &str, extra: &[&str]) -> Test {
    let mut test = Test::new()
        .file("site.yml", &format!("- hosts: all\n  gather_facts: false\n  tasks:\n{tasks}"))
        .file("hosts", &format!("{}\n", sshd.host_line("pi1")))
        .arg("site.yml")
        .arg("-i")
        .arg("hosts");
    for argument in extra {
        test = test.arg(argument);
    }
    test
}

fn task(path: &std::path::Path, arguments: &str) -> String {
    format!(
        "    - ansible.posix.authorized_key:\n        user: root\n        path: {}\n{arguments}",
        path.display()
    )
}

#[test]
fn keys_are_added_once_replaced_exclusively_and_removed() {
    let sshd = Sshd::start();
    let target = tempfile::tempdir().unwrap();
    let keys = target.path().join("ssh/authorized_keys");

    let add = task(&keys, &format!("        key: \"{A}\\n{B}\"\n"));
    let check = test(&sshd, &add, &["--check"]).bramble();
    check.success().stdout_has("changed: [pi1]");
    assert!(!keys.exists(), "check mode wrote the file");

    let first = test(&sshd, &add, &[]).bramble();
    first.success().stdout_has("changed: [pi1]");
    assert_eq!(std::fs::read_to_string(&keys).unwrap(), format!("{A}\n{B}\n"));
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!((mode(keys.parent().unwrap()), mode(&keys)), (0o700, 0o600));
    test(&sshd, &add, &[]).bramble().success().stdout_has("ok: [pi1]");

    let exclusive = task(
        &keys,
        &format!("        key: \"{B}\"\n        exclusive: true\n        key_options: no-pty\n"),
    );
    test(&sshd, &exclusive, &[]).bramble().success().stdout_has("changed: [pi1]");
    assert_eq!(std::fs::read_to_string(&keys).unwrap(), format!("no-pty {B}\n"));

    let absent = task(&keys, &format!("        key: \"{B}\"\n        state: absent\n"));
    test(&sshd, &absent, &[]).bramble().success().stdout_has("changed: [pi1]");
    assert_eq!(std::fs::read_to_string(&keys).unwrap(), "");
    test(&sshd, &absent, &[]).bramble().success().stdout_has("ok: [pi1]");
}

#[test]
fn unknown_users_and_key_urls_fail_clearly() {
    let sshd = Sshd::start();
    let missing = "    - authorized_key: { user: no-such-user-here, key: \"ssh-rsa AAAA\" }\n";
    test(&sshd, missing, &[])
        .bramble()
        .code(2)
        .stdout_has("Failed to lookup user no-such-user-here");
    let url = "    - authorized_key: { user: root, key: \"https://example.org/keys\" }\n";
    test(&sshd, url, &[])
        .bramble()
        .code(2)
        .stdout_has("not supported yet: authorized_key with a key URL");
}
