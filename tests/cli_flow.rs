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

/// `vars_prompt` on a terminal (a pseudo-terminal from util-linux's `script`): bramble and
/// ansible-playbook take the same typed answers, the second one asked twice (`confirm`), the
/// empty answer taking the default.
#[test]
fn vars_prompt_reads_answers_from_a_terminal_like_ansible_playbook() {
    let playbook = "- hosts: localhost\n  gather_facts: false\n  vars_prompt:\n    \
                    - {name: who, prompt: Who, private: false}\n    \
                    - {name: secret, prompt: Secret, confirm: true}\n    \
                    - {name: port, prompt: Port, default: 8080}\n  tasks:\n    \
                    - debug: msg=\"answers {{ who }} {{ secret }} {{ port }}\"\n";
    let test = Test::new().file("site.yml", playbook).file("hosts", INVENTORY);
    let on_terminal = |command: &str| {
        let mut child = std::process::Command::new("script")
            .args(["-qec", command, "/dev/null"])
            .current_dir(test.dir.path())
            .env("ANSIBLE_PYTHON_INTERPRETER", "/usr/bin/python3")
            .env("ANSIBLE_NOCOLOR", "1")
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("script (util-linux)");
        let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut stdout = child.stdout.take().expect("stdout");
        let reader = {
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut buffer = [0u8; 4096];
                while let Ok(read) = std::io::Read::read(&mut stdout, &mut buffer) {
                    if read == 0 {
                        break;
                    }
                    seen.lock().unwrap().push_str(&String::from_utf8_lossy(&buffer[..read]));
                }
            })
        };
        // Each answer is typed once its question shows (getpass drops what was typed ahead).
        let mut stdin = child.stdin.take().expect("stdin");
        for (question, times, answer) in [
            ("Who: ", 1, "alice\n"),
            ("Secret: ", 1, "hush\n"),
            ("Secret: ", 2, "hush\n"),
            ("Port [8080]: ", 1, "\n"),
        ] {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
            while seen.lock().unwrap().matches(question).count() < times {
                assert!(
                    std::time::Instant::now() < deadline,
                    "no {question:?} in {}",
                    seen.lock().unwrap()
                );
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            std::io::Write::write_all(&mut stdin, answer.as_bytes()).expect("typing");
        }
        drop(stdin);
        child.wait().expect("script");
        reader.join().expect("reader");
        seen.lock().unwrap().clone()
    };
    let bramble = on_terminal(&format!("{} run site.yml -i hosts", env!("CARGO_BIN_EXE_bramble")));
    let ansible = on_terminal("ansible-playbook site.yml -i hosts");
    for output in [&bramble, &ansible] {
        assert!(output.contains("\"msg\": \"answers alice hush 8080\""), "{output}");
        assert!(output.contains("Port [8080]: "), "{output}");
        assert!(!output.contains("Not prompting"), "{output}");
    }
}

/// `bramble … | head`: output to a closed pipe is dropped, never a panic (exit 101).
#[test]
fn a_closed_stdout_is_no_panic() {
    let test = Test::new().file("site.yml", PLAYBOOK).file("hosts", INVENTORY);
    for arguments in [&["run", "site.yml", "-i", "hosts"][..], &["run", "--list-tasks", "site.yml"]]
    {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_bramble"))
            .args(arguments)
            .current_dir(test.dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("bramble");
        drop(child.stdout.take());
        let output = child.wait_with_output().expect("bramble");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{arguments:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{arguments:?}: {stderr}");
    }
}

/// A boolean keyword whose value is no boolean fails the task as in ansible-core (it used
/// to count as false, so `check_mode: perhaps` ran the task for real).
#[test]
fn a_keyword_that_is_no_boolean_fails_its_task() {
    let playbook = "- hosts: localhost\n  gather_facts: false\n  tasks:\n    \
                    - command: touch made\n      check_mode: perhaps\n";
    let test = Test::new().file("site.yml", playbook).file("hosts", INVENTORY);
    let run = test.arg("site.yml").arg("-i").arg("hosts").bramble();
    run.code(2).stdout_has(
        "Error processing keyword 'check_mode': The value 'perhaps' could not be converted to 'bool'.",
    );
    assert!(!run.stdout.contains("changed:"), "{}", run.stdout);
}

/// An output folder bake cannot write is refused before the bake starts, not after it.
#[test]
fn bake_refuses_an_output_folder_it_cannot_write_before_baking() {
    let recipe = concat!(env!("CARGO_MANIFEST_DIR"), "/images/lab.yml");
    let started = std::time::Instant::now();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_bramble"))
        .args(["bake", recipe, "-o", "/proc/bramble-no-such-folder/out"])
        .output()
        .expect("bramble bake");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_ne!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("creating the output folder"), "{stderr}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "it baked first: {stderr}");
}
