//! find against ansible-playbook on the loopback sshd: the same tree, the same queries, and
//! the same matched paths, counts, messages and per-file keys.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::Sshd;

const PLAYBOOK: &str = r#"
- hosts: all
  gather_facts: false
  tasks:
    - find: { paths: "{{ dir }}", patterns: "*.conf" }
      register: top
    - find: { paths: "{{ dir }}", patterns: ["*.conf"], recurse: true }
      register: deep
    - find: { paths: "{{ dir }}", patterns: "*.conf", recurse: true, hidden: true }
      register: hidden
    - find: { paths: "{{ dir }}", file_type: directory, recurse: true }
      register: dirs
    - find: { paths: "{{ dir }}", file_type: any }
      register: any
    - find: { paths: "{{ dir }}", recurse: true, contains: "port" }
      register: contains
    - find: { paths: "{{ dir }}", recurse: true, size: "-1k", age: "-1d" }
      register: small
    - find: { paths: "{{ dir }}", recurse: true, size: "1k" }
      register: big
    - find: { paths: "{{ dir }}", patterns: '.*\.log$', use_regex: true, recurse: true }
      register: regex
    - find: { paths: "{{ dir }}", patterns: "*", excludes: "b*", recurse: true }
      register: excluded
    - find: { paths: "{{ dir }}", recurse: true, depth: 2 }
      register: depth
    - find: { paths: ["{{ dir }}/nope", "{{ dir }}/sub"] }
      register: missing
    - find: { paths: "{{ dir }}", file_type: link }
      register: links
    - find: { paths: "{{ dir }}", patterns: a.conf, get_checksum: true }
      register: summed
    - find: { paths: "{{ dir }}", recurse: true, mode: "0600" }
      register: private
    - debug:
        msg:
          - "top|{{ top.matched }}|{{ top.examined }}|{{ top.msg }}|{{ top.files | map(attribute='path') | list }}|{{ top.changed }}"
          - "deep|{{ deep.matched }}|{{ deep.examined }}|{{ deep.files | map(attribute='path') | sort }}"
          - "hidden|{{ hidden.matched }}|{{ hidden.files | map(attribute='path') | sort }}"
          - "dirs|{{ dirs.matched }}|{{ dirs.files | map(attribute='path') | sort }}"
          - "any|{{ any.matched }}|{{ any.files | map(attribute='path') | sort }}"
          - "contains|{{ contains.files | map(attribute='path') | sort }}"
          - "small|{{ small.matched }}|big|{{ big.files | map(attribute='path') | list }}"
          - "regex|{{ regex.files | map(attribute='path') | sort }}"
          - "excluded|{{ excluded.files | map(attribute='path') | sort }}"
          - "depth|{{ depth.matched }}|{{ depth.examined }}|{{ depth.files | map(attribute='path') | sort }}"
          - "missing|{{ missing.msg }}|{{ missing.skipped_paths | list }}|{{ missing.matched }}"
          - "links|{{ links.files | map(attribute='path') | list }}|{{ links.files[0].islnk }}"
          - "summed|{{ summed.files[0].checksum }}|{{ summed.files[0].mode }}|{{ summed.files[0].pw_name }}|{{ summed.files[0].size }}"
          - "keys|{{ summed.files[0] | list | sort }}"
          - "private|{{ private.files | map(attribute='path') | list }}"
"#;

fn reports(stdout: &str, dir: &Path) -> Vec<String> {
    let dir = dir.display().to_string();
    stdout
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with('"') && line.contains('|'))
        .map(|line| line.trim_end_matches(',').trim_matches('"').replace(&dir, "<dir>"))
        .collect()
}

fn run(bramble: bool, project: &Path, dir: &Path) -> Vec<String> {
    let mut command = if bramble {
        let mut command = Command::new(env!("CARGO_BIN_EXE_bramble"));
        command.arg("run");
        command
    } else {
        let mut command = Command::new("ansible-playbook");
        command
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_PIPELINING", "1")
            .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
            .env("ANSIBLE_PYTHON_INTERPRETER", "/usr/bin/python3");
        command
    };
    let output = command
        .args(["site.yml", "-i", "hosts", "-e"])
        .arg(format!("dir={}", dir.display()))
        .current_dir(project)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}\n{stdout}\n{}",
        if bramble { "bramble" } else { "ansible" },
        String::from_utf8_lossy(&output.stderr)
    );
    reports(&stdout, dir)
}

fn tree(dir: &Path) {
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("a.conf", "listen 80\n");
    write("b.log", "log\n");
    write(".hidden.conf", "x\n");
    write("sub/c.conf", "port 22\n");
    write("sub/deep/d.conf", "no\n");
    write("sub/deep/deeper/e.conf", "no\n");
    write("big.bin", &"x".repeat(4096));
    std::os::unix::fs::symlink(dir.join("a.conf"), dir.join("link.conf")).unwrap();
    let private = std::os::unix::fs::PermissionsExt::from_mode(0o600);
    std::fs::set_permissions(dir.join("sub/c.conf"), private).unwrap();
}

#[test]
fn find_matches_ansible() {
    let sshd = Sshd::start();
    let project = tempfile::tempdir().unwrap();
    std::fs::write(project.path().join("site.yml"), PLAYBOOK).unwrap();
    std::fs::write(project.path().join("hosts"), format!("{}\n", sshd.host_line("pi1"))).unwrap();
    let (ours, theirs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    tree(ours.path());
    tree(theirs.path());
    let mine = run(true, project.path(), ours.path());
    let oracle = run(false, project.path(), theirs.path());
    assert_eq!(mine, oracle, "left: bramble, right: ansible");
    assert!(mine[0].starts_with("top|1|"), "{mine:#?}");
}
