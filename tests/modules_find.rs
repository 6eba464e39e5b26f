//! find against ansible-playbook on the loopback sshd: the same tree, the same queries, and
//! the same matched paths, counts, messages and per-file keys.

mod common;

use std::path::Path;

use common::{Differential, Sshd};

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

/// The same small tree for both tools: files, a hidden one, depths, a link, a private mode.
fn seed(dir: &Path) {
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
    let pair = Differential::new()
        .file("site.yml", PLAYBOOK)
        .file("hosts", &format!("{}\n", sshd.host_line("pi1")))
        .seed(seed);
    let mine = pair.run_both();
    assert!(mine[0].starts_with("top|1|"), "{mine:#?}");
}
