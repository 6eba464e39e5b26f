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

#[test]
fn extra_vars_that_are_no_mapping_are_refused_in_ansible_cores_words() {
    let run = |value: &str| {
        Test::new()
            .file("site.yml", PLAYBOOK)
            .file("hosts", INVENTORY)
            .arg("site.yml")
            .arg("-i")
            .arg("hosts")
            .arg("-e")
            .arg(value)
    };
    let list = run("[1, 2]");
    let message = "Invalid extra vars data supplied. '[1, 2]' could not be made into a dictionary";
    list.bramble().code(5).stderr_has(message);
    list.ansible().code(5).stderr_has(message);
    // ansible-playbook ignores a bare word; bramble refuses it before anything runs.
    let word = run("notkv").bramble();
    word.code(5)
        .stderr_has("Invalid extra vars data supplied. 'notkv' could not be made into a dictionary")
        .stderr_has("`notkv` is not key=value, @file, or a YAML/JSON mapping");
    assert!(!word.stderr.contains("set_fact"), "{}", word.stderr);
    assert!(!word.stdout.contains("PLAY ["), "nothing may run: {}", word.stdout);
}

#[test]
fn a_bad_ini_inventory_line_names_the_path_as_given_and_its_line() {
    let project = |inventory: &str| {
        Test::new()
            .file("site.yml", PLAYBOOK)
            .file("inventories/lab/hosts", "[web]\nweb1\nweb2 ansible_port\n")
            .arg("site.yml")
            .arg("-i")
            .arg(inventory)
    };
    project("inventories/lab/hosts").bramble().code(4).stderr_has(
        "[ERROR]: inventories/lab/hosts:3: expected `key=value` after the host name, found `ansible_port`",
    );
    let elsewhere = tempfile::tempdir().unwrap();
    let absolute = elsewhere.path().join("hosts");
    std::fs::write(&absolute, "[web]\nweb1 ansible_host\n").unwrap();
    let absolute = absolute.display().to_string();
    project(&absolute).bramble().code(4).stderr_has(&format!("[ERROR]: {absolute}:2: "));
}
