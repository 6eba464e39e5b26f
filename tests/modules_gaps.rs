//! Modules bramble does not have fail at load time, before any host is touched, with
//! ansible-playbook's "couldn't resolve module" message: here real modules from outside the
//! library issue 4 lists.

mod common;

use common::Test;

/// A playbook whose first task would leave a marker and whose second uses `module`: the
/// test, and the marker that must stay absent.
fn second_task_uses(module: &str) -> (Test, tempfile::TempDir) {
    let target = tempfile::tempdir().unwrap();
    let playbook = format!(
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - command: touch {}\n    - {module}: {{}}\n",
        target.path().join("ran").display()
    );
    let test = Test::new()
        .file("site.yml", &playbook)
        .file("hosts", "localhost ansible_connection=local\n")
        .arg("site.yml")
        .arg("-i")
        .arg("hosts");
    (test, target)
}

#[test]
fn modules_outside_the_library_fail_at_load() {
    for module in ["community.general.ufw", "ansible.posix.firewalld"] {
        let (test, target) = second_task_uses(module);
        test.bramble().code(4).stderr_has(&format!("couldn't resolve module/action `{module}`"));
        assert!(!target.path().join("ran").exists(), "{module}: a task ran before the load error");
    }
}

#[test]
fn a_module_under_another_collection_fails_at_load() {
    let cases = [
        ("ansible.posix.modprobe", "community.general.modprobe"),
        ("community.general.copy", "ansible.builtin.copy"),
        ("docker_compose_v2", "community.docker.docker_compose_v2"),
    ];
    for (module, fqcn) in cases {
        let (test, target) = second_task_uses(module);
        test.bramble().code(4).stderr_has("site.yml:5:7").stderr_has(&format!(
            "couldn't resolve module/action `{module}`; did you mean `{fqcn}`?"
        ));
        assert!(!target.path().join("ran").exists(), "{module}: a task ran before the load error");
        test.ansible().code(4).stderr_has(&format!("couldn't resolve module/action '{module}'"));
    }
}
