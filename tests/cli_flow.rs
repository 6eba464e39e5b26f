//! Command-line flags that steer a run (`--step`, `--forks`) and load-time keyword errors,
//! where bramble's refusal is clearer than ansible-playbook's (which crashes on `--step`
//! without a terminal).

mod common;

use common::Test;

const PLAYBOOK: &str = "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - debug: msg=hi\n";
const INVENTORY: &str = "localhost ansible_connection=local\n";

#[test]
fn step_without_a_terminal_is_refused_before_anything_runs() {
    let run = Test::new()
        .file("site.yml", PLAYBOOK)
        .file("hosts", INVENTORY)
        .arg("site.yml")
        .arg("-i")
        .arg("hosts")
        .arg("--step")
        .bramble();
    run.code(5).stderr_has("--step asks before each task and needs a terminal");
    assert!(!run.stdout.contains("PLAY ["), "nothing may run: {}", run.stdout);
}

#[test]
fn zero_forks_is_refused_like_ansible_playbook() {
    let test = Test::new()
        .file("site.yml", PLAYBOOK)
        .file("hosts", INVENTORY)
        .arg("site.yml")
        .arg("-i")
        .arg("hosts")
        .arg("-f")
        .arg("0");
    test.bramble().code(2).stderr_has("The number of processes (--forks) must be >= 1");
    test.ansible().code(2).stderr_has("The number of processes (--forks) must be >= 1");
}

#[test]
fn misspelt_keyword_says_what_was_meant() {
    let playbook = "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - name: t\n      \
                    debug: msg=hi\n      whn: false\n";
    let test = Test::new()
        .file("site.yml", playbook)
        .file("hosts", INVENTORY)
        .arg("site.yml")
        .arg("-i")
        .arg("hosts");
    test.bramble()
        .code(4)
        .stderr_has("conflicting action statements: debug, whn")
        .stderr_has("did you mean the keyword `when`?")
        .stderr_has("site.yml:4:7");
    test.ansible().code(4).stderr_has("conflicting action statements: debug, whn");
}
