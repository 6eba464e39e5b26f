//! Become and SSH passwords against the loopback sshd: a user whose sudo asks for a password
//! (ansible_become_password, --become-password-file, ANSIBLE_BECOME_PASSWORD_FILE), a wrong
//! one failing like ansible-core's "Incorrect sudo password" without hanging, the password
//! never reaching a command's stdin, -K refused without a terminal, and SSH password login.
//!
//! The tests run as root (as CI does) and create the local user `bramble-sudo`, whose sudo
//! rule asks for its password every time.

mod common;

use std::process::Command;
use std::sync::Once;

use common::{Sshd, Test};

const USER: &str = "bramble-sudo";
const PASSWORD: &str = "sudo-pass-42";

/// Creates the user with a password and a sudo rule that always asks for it.
fn sudo_user() {
    static SETUP: Once = Once::new();
    SETUP.call_once(|| {
        let exists = Command::new("id").arg(USER).output().expect("id").status.success();
        if !exists {
            let status = Command::new("useradd")
                .args(["-m", "-s", "/bin/sh", USER])
                .status()
                .expect("useradd");
            assert!(status.success(), "useradd {USER}");
        }
        let mut chpasswd = Command::new("chpasswd")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("chpasswd");
        use std::io::Write;
        let stdin = chpasswd.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{USER}:{PASSWORD}").expect("write");
        assert!(chpasswd.wait().expect("chpasswd").success());
        let rule = format!(
            "Defaults:{USER} timestamp_timeout=0\nDefaults:{USER} !requiretty\n{USER} ALL=(ALL) ALL\n"
        );
        std::fs::write("/etc/sudoers.d/bramble-sudo", rule).expect("sudoers rule");
    });
}

/// An inventory line for the sudo user over the loopback sshd.
fn user_line(sshd: &Sshd, name: &str, extra: &str) -> String {
    sshd.host_line(name).replace("ansible_user=root", &format!("ansible_user={USER}")) + " " + extra
}

const WHOAMI: &str = "- hosts: all\n  gather_facts: false\n  become: true\n  tasks:\n    \
    - command: id -un\n      register: who\n    - debug: var=who.stdout\n";

#[test]
fn become_password_from_a_variable() {
    sudo_user();
    let sshd = Sshd::start();
    let inventory = user_line(&sshd, "h", &format!("ansible_become_password={PASSWORD}"));
    let test = Test::new()
        .file("hosts", &format!("{inventory}\n"))
        .file("site.yml", WHOAMI)
        .arg("site.yml")
        .arg("-i")
        .arg("hosts");
    let ours = test.bramble();
    ours.success().stdout_has("\"who.stdout\": \"root\"");
    let theirs = test.ansible();
    theirs.success().stdout_has("\"who.stdout\": \"root\"");
    assert_eq!(ours.recap("h"), theirs.recap("h"));
}

#[test]
fn become_password_file_and_environment() {
    sudo_user();
    let sshd = Sshd::start();
    let test = Test::new()
        .file("hosts", &format!("{}\n", user_line(&sshd, "h", "")))
        .file("pass", &format!("{PASSWORD}\n"))
        .file("site.yml", WHOAMI)
        .arg("site.yml")
        .arg("-i")
        .arg("hosts");
    let flagged = clone_of(&test).arg("--become-password-file").arg("pass");
    flagged.bramble().success().stdout_has("\"who.stdout\": \"root\"");
    flagged.ansible().success().stdout_has("\"who.stdout\": \"root\"");

    let mut command = Command::new(env!("CARGO_BIN_EXE_bramble"));
    command
        .args(["run", "site.yml", "-i", "hosts"])
        .env("ANSIBLE_BECOME_PASSWORD_FILE", test.path("pass"))
        .current_dir(test.path(""))
        .stdin(std::process::Stdio::null());
    let output = command.output().expect("bramble");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("\"who.stdout\": \"root\""), "{stdout}");
}

/// The same project in a new builder (a Test owns its directory).
fn clone_of(test: &Test) -> Test {
    let copy = Test::new();
    for name in ["hosts", "pass", "site.yml"] {
        if let Ok(text) = std::fs::read_to_string(test.path(name)) {
            std::fs::write(copy.path(name), text).expect("copy");
        }
    }
    copy.arg("site.yml").arg("-i").arg("hosts")
}

#[test]
fn wrong_become_password_fails_the_task_without_hanging() {
    sudo_user();
    let sshd = Sshd::start();
    let inventory = user_line(&sshd, "h", "ansible_become_password=wrong-one");
    let test = Test::new()
        .file("hosts", &format!("{inventory}\n"))
        .file("site.yml", WHOAMI)
        .arg("site.yml")
        .arg("-i")
        .arg("hosts");
    let started = std::time::Instant::now();
    let ours = test.bramble();
    assert!(started.elapsed().as_secs() < 60, "bramble took too long");
    ours.code(2).stdout_has("Incorrect sudo password");
    let theirs = test.ansible();
    theirs.code(2).stdout_has("Incorrect sudo password");
    assert_eq!(ours.recap("h"), theirs.recap("h"));
}

#[test]
fn the_password_never_reaches_the_command() {
    sudo_user();
    let sshd = Sshd::start();
    // The sudo user (asks for the password) and root (sudo needs none): both must write
    // exactly the content, with the password line consumed by sudo or by the shell.
    let inventory = format!(
        "{}\n{} ansible_become_password={PASSWORD}\n",
        user_line(&sshd, "asks", &format!("ansible_become_password={PASSWORD}")),
        sshd.host_line("root_host")
    );
    let playbook = "- hosts: all\n  gather_facts: false\n  become: true\n  tasks:\n    \
        - copy:\n        content: \"line one\\nline two\\n\"\n        \
        dest: /tmp/bramble-password-{{ inventory_hostname }}\n    \
        - command: cat /tmp/bramble-password-{{ inventory_hostname }}\n      register: c\n    \
        - debug: var=c.stdout_lines\n    \
        - file: path=/tmp/bramble-password-{{ inventory_hostname }} state=absent\n";
    let test = Test::new()
        .file("hosts", &inventory)
        .file("site.yml", playbook)
        .arg("site.yml")
        .arg("-i")
        .arg("hosts");
    let ours = test.bramble();
    ours.success();
    assert!(!ours.stdout.contains(PASSWORD), "{}", ours.stdout);
    assert_eq!(ours.stdout.matches("\"line two\"").count(), 2, "{}", ours.stdout);
}

#[test]
fn ask_become_pass_needs_a_terminal() {
    let test = Test::new()
        .file("hosts", "localhost ansible_connection=local\n")
        .file("site.yml", "- hosts: all\n  gather_facts: false\n  tasks:\n    - debug: msg=ran\n")
        .arg("site.yml")
        .arg("-i")
        .arg("hosts")
        .arg("-K");
    let ours = test.bramble();
    ours.code(5).stderr_has("stdin is not a terminal");
    assert!(!ours.stdout.contains("ran"), "{}", ours.stdout);
}

#[test]
fn su_with_a_password_is_refused_clearly() {
    let test = Test::new()
        .file("hosts", "localhost ansible_connection=local ansible_become_password=x\n")
        .file(
            "site.yml",
            "- hosts: all\n  gather_facts: false\n  tasks:\n    - command: id\n      \
             become: true\n      become_method: su\n",
        )
        .arg("site.yml")
        .arg("-i")
        .arg("hosts");
    test.bramble().code(2).stdout_has("not supported yet: become_method su with a password");
}
