//! slurp, tempfile, getent, fetch, script, pause and wait_for_connection against
//! ansible-playbook on the loopback sshd: each tool runs the same playbook on its own
//! directory, and the values playbooks use from the results must agree, on a first and a
//! second run.

mod common;

use std::path::Path;

use common::{Differential, Sshd};

const PLAYBOOK: &str = r####"
- hosts: all
  gather_facts: false
  tasks:
    - slurp: { src: "{{ dir }}/seed" }
      register: slurped
    - slurp: { path: "{{ dir }}/missing" }
      register: slurp_missing
      ignore_errors: true
    - slurp: { src: "{{ dir }}" }
      register: slurp_dir
      ignore_errors: true
    - tempfile: { path: "{{ dir }}", prefix: pre., suffix: .conf }
      register: temp
    - tempfile: { path: "{{ dir }}", state: directory }
      register: tempdir
    - getent: { database: passwd, key: root }
    - getent: { database: group, key: nosuchgroup, fail_key: false }
      register: nokey
    - getent: { database: passwd, key: nosuchuser }
      register: nouser
      ignore_errors: true
    - fetch: { src: "{{ dir }}/seed", dest: "{{ dir }}/fetched" }
      register: fetched
    - fetch: { src: "{{ dir }}/seed", dest: "{{ dir }}/flat.txt", flat: true }
      register: flat
    - fetch: { src: "{{ dir }}/missing", dest: "{{ dir }}/x", fail_on_missing: false }
      register: fetch_missing
    - fetch: { src: "{{ dir }}/missing", dest: "{{ dir }}/x" }
      register: fetch_failed
      ignore_errors: true
    - script: hello.sh one "two three"
      register: scripted
    - script: hello.sh
      args: { creates: "{{ dir }}/seed" }
      register: script_skipped
    - script: fails.sh
      register: script_failed
      ignore_errors: true
    - pause: { seconds: 1 }
      register: paused
    - wait_for_connection: { timeout: 10 }
      register: waited
    - assemble: { src: "{{ dir }}/frags", dest: "{{ dir }}/assembled", delimiter: "### part", mode: "0600" }
      register: assembled
    - assemble: { src: "{{ dir }}/frags", dest: "{{ dir }}/filtered", regexp: "^1", ignore_hidden: true, backup: true }
      register: filtered
    - assemble: { src: "{{ dir }}/frags", dest: "{{ dir }}/filtered", backup: true }
      check_mode: true
      register: check_backup
    - find: { paths: "{{ dir }}", patterns: "filtered.*" }
      register: backups
    - assemble: { src: "{{ dir }}/nope", dest: "{{ dir }}/x" }
      register: assemble_missing
      ignore_errors: true
    - assemble: { src: local-frags, dest: "{{ dir }}/local", remote_src: false }
      register: assembled_local
    - slurp: { src: "{{ dir }}/assembled" }
      register: assembled_text
    - debug:
        msg:
          - "assemble|{{ assembled.changed }}|{{ assembled.checksum }}|{{ assembled.md5sum }}|{{ assembled.msg }}|{{ assembled_text.content | b64decode }}"
          - "assemble filtered|{{ filtered.changed }}|{{ filtered.checksum }}|{{ 'backup_file' in filtered }}"
          - "assemble check backup|{{ check_backup.changed }}|{{ 'backup_file' in check_backup }}|{{ check_backup.backup_file | default('') | dirname }}"
          - "assemble backups|{{ backups.matched }}"
          - "assemble missing|{{ assemble_missing.msg }}"
          - "assemble local|{{ assembled_local.changed }}|{{ assembled_local.checksum }}"
          - "slurp|{{ slurped.content | b64decode }}|{{ slurped.encoding }}|{{ slurped.source }}|{{ slurped.changed }}"
          - "slurp missing|{{ slurp_missing.msg }}|{{ slurp_missing.failed }}"
          - "slurp dir|{{ slurp_dir.msg }}"
          - "tempfile|{{ temp.changed }}|{{ temp.path | dirname }}|{{ temp.path | basename | regex_replace('^pre\\.........\\.conf$', 'ok') }}|{{ temp.state }}"
          - "tempdir|{{ tempdir.state }}|{{ tempdir.path | basename | length }}"
          - "getent|{{ getent_passwd.root }}"
          - "nokey|{{ getent_group }}|{{ nokey.msg }}"
          - "nouser|{{ nouser.msg }}|{{ nouser.failed }}"
          - "fetch|{{ fetched.changed }}|{{ fetched.dest }}|{{ fetched.checksum }}|{{ fetched.md5sum }}"
          - "flat|{{ flat.changed }}|{{ flat.dest }}"
          - "fetch missing|{{ fetch_missing.msg }}|{{ fetch_missing.failed | default(false) }}"
          - "fetch failed|{{ fetch_failed.msg }}|{{ fetch_failed.failed }}"
          - "script|{{ scripted.stdout_lines }}|{{ scripted.rc }}|{{ scripted.changed }}"
          - "script skipped|{{ script_skipped.msg }}|{{ script_skipped.skipped }}"
          - "script failed|{{ script_failed.rc }}|{{ script_failed.msg }}"
          - "pause|{{ paused.stdout[:12] }}|{{ paused.delta }}|{{ paused.echo }}|{{ paused.changed }}"
          - "waited|{{ waited.elapsed is number }}"
"####;

/// Each tool's directory: a file to read and fragments to assemble.
fn seed(dir: &Path) {
    std::fs::write(dir.join("seed"), "hello\n").unwrap();
    let frags = dir.join("frags");
    std::fs::create_dir_all(frags.join("sub")).unwrap();
    std::fs::write(frags.join("20-b"), "b").unwrap();
    std::fs::write(frags.join("10-a"), "a\n").unwrap();
    std::fs::write(frags.join(".1-hidden"), "h\n").unwrap();
    std::fs::write(frags.join("15-c"), "c\n").unwrap();
}

#[test]
fn results_match_ansible_on_first_and_second_run() {
    let sshd = Sshd::start();
    let pair = Differential::new()
        .file("site.yml", PLAYBOOK)
        .file("hosts", &format!("{}\n", sshd.host_line("pi1")))
        .file("files/hello.sh", "#!/bin/sh\necho \"args: $1|$2\"\n")
        .file("files/fails.sh", "#!/bin/sh\nexit 3\n")
        .file("local-frags/b", "two\n")
        .file("local-frags/a", "one")
        .seed(seed);
    for round in ["first", "second"] {
        let mine = pair.run_both();
        let fetch = mine.iter().find(|line| line.starts_with("fetch|")).unwrap();
        let expected = if round == "first" { "fetch|True" } else { "fetch|False" };
        assert!(fetch.starts_with(expected), "{round} run: {fetch}");
    }
    let ours = pair.ours();
    let fetched = ours.join("fetched/pi1").join(ours.strip_prefix("/").unwrap());
    assert_eq!(std::fs::read_to_string(fetched.join("seed")).unwrap(), "hello\n");
    assert_eq!(std::fs::read_to_string(ours.join("flat.txt")).unwrap(), "hello\n");
}

#[test]
fn pause_without_a_duration_is_not_supported_yet() {
    let test = common::Test::new()
        .file(
            "site.yml",
            "- hosts: all\n  gather_facts: false\n  tasks:\n    - pause: { prompt: Continue? }\n",
        )
        .file("hosts", "localhost ansible_connection=local\n")
        .arg("site.yml")
        .arg("-i")
        .arg("hosts");
    test.bramble().code(2).stdout_has("not supported yet: pause without seconds or minutes");
}

/// A reboot over the local connection would restart this machine: both tools refuse it
/// before running anything, with the same result.
#[test]
fn reboot_refuses_the_local_connection_as_ansible_does() {
    let test = common::Test::new()
        .file(
            "site.yml",
            "- hosts: all\n  gather_facts: false\n  tasks:\n    - reboot:\n      register: r\n      ignore_errors: true\n    - debug: { msg: \"{{ r.msg }} {{ r.rebooted }} {{ r.changed }}\" }\n",
        )
        .file("hosts", "localhost ansible_connection=local\n")
        .arg("site.yml")
        .arg("-i")
        .arg("hosts");
    let expected =
        "Running reboot with local connection would reboot the control node. False False";
    test.ansible().success().stdout_has(expected);
    test.bramble().success().stdout_has(expected);
}
