//! Modules of the library that bramble does not have yet fail at load time, before any
//! host is touched, with ansible-playbook's "couldn't resolve module" message.

mod common;

use common::Test;

#[test]
fn unimplemented_system_modules_fail_at_load() {
    let target = tempfile::tempdir().unwrap();
    let marker = target.path().join("ran");
    for module in ["community.general.modprobe", "service_facts", "reboot"] {
        let playbook = format!(
            "- hosts: all\n  gather_facts: false\n  tasks:\n    - command: touch {}\n    - {module}: {{}}\n",
            marker.display()
        );
        let test = Test::new()
            .file("site.yml", &playbook)
            .file("hosts", "localhost ansible_connection=local\n")
            .arg("site.yml")
            .arg("-i")
            .arg("hosts");
        test.bramble().code(4).stderr_has(&format!("couldn't resolve module/action `{module}`"));
        assert!(!marker.exists(), "{module}: a task ran before the load error");
    }
}
