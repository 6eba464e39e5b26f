//! `bramble run` against a real OpenSSH server on loopback, checked against ansible-playbook
//! on the same files where the output must match.

mod common;

use common::{Sshd, Test, normalize};

const BASICS: &str = r#"
- name: Basics
  hosts: all
  gather_facts: false
  tasks:
    - name: say
      debug: msg=hello
    - name: cmd
      command: echo hi
    - name: skip
      command: echo hi
      when: false
    - name: loop
      debug: msg={{ item }}
      loop: [a, b]
    - name: loopcmd
      command: "echo {{ item }}"
      loop: [a, b]
      when: item == 'a'
    - name: failme
      command: /bin/false
      ignore_errors: true
    - name: registered
      shell: echo "{{ 'x' | upper }}" && echo err >&2
      register: out
    - name: show
      debug: var=out.stdout
    - name: fail2
      fail: msg="boom"
"#;

#[test]
fn output_matches_ansible_playbook() {
    let sshd = Sshd::start();
    let test = Test::new()
        .file("site.yml", BASICS)
        .file("hosts", &format!("[pis]\n{}\n", sshd.host_line("pi1")))
        .arg("site.yml")
        .arg("-i")
        .arg("hosts");
    let ours = test.bramble();
    let theirs = test.ansible();
    assert_eq!(
        ours.code, theirs.code,
        "exit codes differ\n{}\n---\n{}",
        ours.stdout, theirs.stdout
    );
    assert_eq!(
        normalize(&ours.stdout, test.dir.path()),
        normalize(&theirs.stdout, test.dir.path())
    );
}

#[test]
fn unreachable_host_exits_4_and_others_finish() {
    let sshd = Sshd::start();
    let dead = common::free_port();
    let inventory = format!(
        "[pis]\n{}\ndead ansible_host=127.0.0.1 ansible_port={dead} ansible_user=root\n",
        sshd.host_line("pi1")
    );
    let test = Test::new().file("site.yml", "- hosts: all\n  gather_facts: false\n  tasks:\n    - command: echo hi\n    - command: echo again\n").file("hosts", &inventory).arg("site.yml").arg("-i").arg("hosts");
    let run = test.bramble();
    run.code(4).stdout_has("fatal: [dead]: UNREACHABLE! =>").stdout_has("Connection refused");
    assert!(
        run.recap("pi1").contains("ok=2    changed=2    unreachable=0"),
        "{}",
        run.recap("pi1")
    );
    assert!(
        run.recap("dead").contains("ok=0    changed=0    unreachable=1"),
        "{}",
        run.recap("dead")
    );
    assert_eq!(test.ansible().code, 4);
}

#[test]
fn unknown_host_key_is_refused_unless_accepted() {
    let sshd = Sshd::start();
    let empty = sshd.dir.path().join("empty_known_hosts");
    let line = sshd
        .host_line("pi1")
        .replace(&sshd.known_hosts().display().to_string(), &empty.display().to_string());
    let test = Test::new()
        .file("site.yml", "- hosts: all\n  gather_facts: false\n  tasks:\n    - command: echo hi\n")
        .file("hosts", &format!("{line}\n"))
        .arg("site.yml")
        .arg("-i")
        .arg("hosts");
    test.bramble().code(4).stdout_has("host key verification failed");
    assert!(!empty.exists() || std::fs::read_to_string(&empty).unwrap().is_empty());

    let accepting = line.replace(
        "-o UserKnownHostsFile",
        "-o StrictHostKeyChecking=accept-new -o UserKnownHostsFile",
    );
    let test = Test::new()
        .file("site.yml", "- hosts: all\n  gather_facts: false\n  tasks:\n    - command: echo hi\n")
        .file("hosts", &format!("{accepting}\n"))
        .arg("site.yml")
        .arg("-i")
        .arg("hosts");
    test.bramble().success();
    assert!(
        std::fs::read_to_string(&empty).unwrap().contains("[127.0.0.1]:"),
        "the key was recorded"
    );
    test.bramble().success();
}

const FILES: &str = r#"
- hosts: all
  gather_facts: true
  vars:
    base: "{{ target_dir }}"
  tasks:
    - file: path={{ base }}/etc state=directory mode=0750
    - copy:
        dest: "{{ base }}/etc/plain.txt"
        content: "hello {{ inventory_hostname }}\n"
        mode: 0640
    - template: src=unit.j2 dest={{ base }}/etc/unit.conf
      notify: changed unit
    - copy: src=payload.txt dest={{ base }}/etc/
    - file: src={{ base }}/etc/plain.txt dest={{ base }}/link state=link
    - stat: path={{ base }}/etc/plain.txt
      register: st
    - assert:
        that:
          - st.stat.exists
          - st.stat.mode == '0640'
          - ansible_os_family == 'Debian'
  handlers:
    - name: changed unit
      command: touch {{ base }}/handler-ran
"#;

#[test]
fn files_are_idempotent_and_handlers_run_once() {
    let sshd = Sshd::start();
    let target = tempfile::tempdir().unwrap();
    let test = Test::new()
        .file("site.yml", FILES)
        .file("templates/unit.j2", "[Unit]\n{% for n in [1, 2] %}\nline{{ n }}\n{% endfor %}\narch={{ ansible_architecture }}\n")
        .file("files/payload.txt", "payload\n")
        .file("hosts", &format!("{}\n", sshd.host_line("pi1")))
        .arg("site.yml").arg("-i").arg("hosts").arg("-e").arg(&format!("target_dir={}", target.path().display()));
    let first = test.bramble();
    first.success().stdout_has("RUNNING HANDLER [changed unit]");
    assert!(first.recap("pi1").contains("changed=6"), "{}", first.recap("pi1"));
    let unit = std::fs::read_to_string(target.path().join("etc/unit.conf")).unwrap();
    assert_eq!(unit, format!("[Unit]\nline1\nline2\narch={}\n", std::env::consts::ARCH));
    assert!(target.path().join("handler-ran").exists());
    let leftovers: Vec<_> = std::fs::read_dir(target.path().join("etc"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".bramble"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left behind: {leftovers:?}");

    let second = test.bramble();
    second.success();
    assert!(second.recap("pi1").contains("changed=0"), "{}", second.stdout);
    assert!(!second.stdout.contains("RUNNING HANDLER"));
}

#[test]
fn check_mode_changes_nothing() {
    let sshd = Sshd::start();
    let target = tempfile::tempdir().unwrap();
    let playbook = format!(
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - copy: content=x dest={}/new.txt\n    - command: touch {}/touched\n",
        target.path().display(),
        target.path().display()
    );
    let test = Test::new()
        .file("site.yml", &playbook)
        .file("hosts", &format!("{}\n", sshd.host_line("pi1")))
        .arg("site.yml")
        .arg("-i")
        .arg("hosts")
        .arg("--check");
    let run = test.bramble();
    run.success().stdout_has("changed: [pi1]").stdout_has("skipping: [pi1]");
    assert!(!target.path().join("new.txt").exists());
    assert!(!target.path().join("touched").exists());
}

#[test]
fn become_runs_as_the_become_user() {
    let sshd = Sshd::start();
    let playbook = "- hosts: all\n  gather_facts: false\n  become: true\n  become_user: nobody\n  tasks:\n    - command: id -un\n      register: who\n    - assert: { that: [\"who.stdout == 'nobody'\"] }\n";
    let test = Test::new()
        .file("site.yml", playbook)
        .file("hosts", &format!("{}\n", sshd.host_line("pi1")))
        .arg("site.yml")
        .arg("-i")
        .arg("hosts");
    test.bramble().success();
}

#[test]
fn bad_input_names_file_and_line_and_touches_nothing() {
    let target = tempfile::tempdir().unwrap();
    let marker = target.path().join("ran");
    let playbook = format!(
        "- hosts: all\n  tasks:\n    - command: touch {}\n    - cpoy: src=a dest=b\n",
        marker.display()
    );
    let test = Test::new()
        .file("site.yml", &playbook)
        .file("hosts", "localhost ansible_connection=local\n")
        .arg("site.yml")
        .arg("-i")
        .arg("hosts");
    let run = test.bramble();
    run.code(4)
        .stderr_has("site.yml:4:7")
        .stderr_has("couldn't resolve module/action `cpoy`; did you mean `copy`?")
        .stderr_has("    - cpoy: src=a dest=b");
    assert!(!marker.exists());
    assert_eq!(test.ansible().code, 4);

    let test = Test::new()
        .file("site.yml", "- hosts: all\n  tasks:\n    - copy: dest=/tmp/x contnet=y\n")
        .file("hosts", "localhost ansible_connection=local\n")
        .arg("site.yml")
        .arg("-i")
        .arg("hosts");
    test.bramble()
        .code(4)
        .stderr_has("Unsupported parameters for (copy) module: contnet; did you mean `content`?");
}

#[test]
fn undefined_variable_fails_the_task_naming_it() {
    let test = Test::new()
        .file(
            "site.yml",
            "- hosts: all\n  gather_facts: false\n  tasks:\n    - debug: msg=\"{{ nope }}\"\n",
        )
        .file("hosts", "localhost ansible_connection=local\n")
        .arg("site.yml")
        .arg("-i")
        .arg("hosts");
    test.bramble().code(2).stdout_has("'nope' is undefined").stdout_has("site.yml:4:7");
}

#[test]
fn unarchive_keeps_the_mode_of_its_destination() {
    let sshd = Sshd::start();
    let work = tempfile::tempdir().unwrap();
    let dest = work.path().join("dl");
    std::fs::create_dir_all(work.path().join("src/pkg")).unwrap();
    std::fs::write(work.path().join("src/pkg/bin"), "binary\n").unwrap();
    let archive = work.path().join("pkg.tar.gz");
    let packed = std::process::Command::new("tar")
        .arg("-czf")
        .arg(&archive)
        .arg("-C")
        .arg(work.path().join("src"))
        .arg("pkg")
        .status()
        .unwrap();
    assert!(packed.success());
    std::fs::create_dir(&dest).unwrap();
    std::process::Command::new("chmod").arg("1777").arg(&dest).status().unwrap();
    let playbook = format!(
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - unarchive: src={} dest={} remote_src=true\n",
        archive.display(),
        dest.display()
    );
    let test = Test::new()
        .file("site.yml", &playbook)
        .file("hosts", &format!("{}\n", sshd.host_line("pi1")))
        .arg("site.yml")
        .arg("-i")
        .arg("hosts");
    assert!(test.bramble().success().recap("pi1").contains("changed=1"));
    assert_eq!(std::fs::read_to_string(dest.join("pkg/bin")).unwrap(), "binary\n");
    let mode = std::process::Command::new("stat").args(["-c", "%a"]).arg(&dest).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&mode.stdout).trim(), "1777");
    assert!(test.bramble().success().recap("pi1").contains("changed=0"));
}

#[test]
fn a_become_user_that_does_not_exist_fails_without_a_change() {
    let sshd = Sshd::start();
    let playbook = "- hosts: all\n  gather_facts: false\n  tasks:\n    - command: id -un\n      become: true\n      become_user: nosuchuser\n      ignore_errors: true\n";
    let test = Test::new()
        .file("site.yml", playbook)
        .file("hosts", &format!("{}\n", sshd.host_line("pi1")))
        .arg("site.yml")
        .arg("-i")
        .arg("hosts");
    let run = test.bramble();
    run.success().stdout_has("failed to become nosuchuser with sudo: unknown user");
    assert!(run.recap("pi1").contains("changed=0"), "{}", run.recap("pi1"));
}

#[test]
fn a_limit_that_matches_nothing_is_an_error() {
    let test = Test::new()
        .file("site.yml", "- hosts: all\n  gather_facts: false\n  tasks:\n    - debug: msg=hi\n")
        .file("hosts", "pi1 ansible_connection=local\n")
        .arg("site.yml")
        .arg("-i")
        .arg("hosts")
        .arg("-l")
        .arg("nomatch");
    test.bramble().code(1).stderr_has("Could not match supplied host pattern, ignoring: nomatch");
    assert_eq!(test.ansible().code, 1);
}

#[test]
fn an_unsupported_ansible_cfg_setting_is_named_as_ignored() {
    let test = Test::new()
        .file("site.yml", "- hosts: all\n  gather_facts: false\n  tasks:\n    - debug: msg=hi\n")
        .file("hosts", "pi1 ansible_connection=local\n")
        .file("ansible.cfg", "[defaults]\nforks = 3\nstdout_callback = yaml\n")
        .arg("site.yml")
        .arg("-i")
        .arg("hosts");
    test.bramble()
        .success()
        .stderr_has("not supported yet: the setting [defaults] stdout_callback (")
        .stderr_has("ansible.cfg:3) is ignored");
}

/// `--ssh-common-args` reaches hosts whose variables set none, as ansible-playbook's does;
/// `-l` given twice keeps the last, as ansible-playbook's does.
#[test]
fn ssh_common_args_from_the_command_line_and_a_repeated_limit() {
    let sshd = Sshd::start();
    let line = format!(
        "pi1 ansible_host=127.0.0.1 ansible_port={} ansible_user=root ansible_ssh_private_key_file={}\n",
        sshd.port,
        sshd.key().display()
    );
    let common = format!("-o UserKnownHostsFile={}", sshd.known_hosts().display());
    let run = Test::new()
        .file(
            "site.yml",
            "- hosts: all\n  gather_facts: false\n  tasks:\n    - command: echo over-ssh\n",
        )
        .file("hosts", &line)
        .arg("site.yml")
        .arg("-i")
        .arg("hosts")
        .arg(&format!("--ssh-common-args={common}"))
        .arg("-l")
        .arg("nothing")
        .arg("-l")
        .arg("pi1")
        .bramble();
    run.success().stdout_has("changed: [pi1]");
    let without = Test::new()
        .file("site.yml", "- hosts: all\n  gather_facts: false\n  tasks:\n    - command: echo x\n")
        .file("hosts", &line)
        .arg("site.yml")
        .arg("-i")
        .arg("hosts")
        .bramble();
    without.code(4);
}
