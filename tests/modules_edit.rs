//! lineinfile, blockinfile and replace against ansible-playbook on the loopback sshd: the same
//! cases run by both tools on their own copies of the same files must leave the same content
//! and report the same `msg`, `changed`, `failed`, `found`, `rc` and backup keys, on the first
//! run, on the second (nothing left to change) and under `--check`.

mod common;

use std::path::Path;

use common::{Differential, Sshd, Test, tree};

/// One case: the file's starting content (None: no file) and the task's arguments, in which
/// `P` stands for the case's path.
struct Case {
    seed: Option<&'static str>,
    task: &'static str,
}

const fn case(seed: Option<&'static str>, task: &'static str) -> Case {
    Case { seed, task }
}

const CASES: &[Case] = &[
    // lineinfile
    case(Some("a\nb\n"), "lineinfile: { path: P, line: c }"),
    case(Some("#Port 22\nX\n"), "lineinfile: { path: P, regexp: '^#?Port ', line: Port 2222 }"),
    case(
        Some("PermitRootLogin yes\n"),
        r"lineinfile: { path: P, regexp: '^(PermitRootLogin) .*$', line: '\1 no', backrefs: true }",
    ),
    case(
        Some("x\n"),
        r"lineinfile: { path: P, regexp: '^(Nope) .*$', line: '\1 no', backrefs: true }",
    ),
    case(
        Some("[main]\na=1\n[other]\n"),
        r"lineinfile: { path: P, insertafter: '^\[main\]', line: b=2 }",
    ),
    case(Some("a\n"), "lineinfile: { path: P, insertbefore: BOF, line: '# header' }"),
    case(
        Some("x\ny\nx\n"),
        "lineinfile: { path: P, insertbefore: '^x', firstmatch: true, line: new }",
    ),
    case(Some("x\ny\nx\n"), "lineinfile: { path: P, insertbefore: '^x', line: new }"),
    case(Some("foo bar\nbaz\n"), "lineinfile: { path: P, search_string: bar, line: replaced }"),
    case(Some("#c1\nkeep\n#c2\n"), "lineinfile: { path: P, regexp: '^#', state: absent }"),
    case(Some("a\nb\n"), "lineinfile: { path: P, line: b, state: absent }"),
    case(None, "lineinfile: { path: P/sub/file, line: new, create: true }"),
    case(None, "lineinfile: { path: P, line: new }"),
    case(Some("a\n"), "lineinfile: { path: P, line: b, backup: true }"),
    case(Some("a\n"), "lineinfile: { path: P, line: a, mode: '0600' }"),
    case(Some("a\n"), "lineinfile: { path: P, line: z, mode: '0600' }"),
    case(Some("a\nb"), "lineinfile: { path: P, line: b }"),
    case(Some("a\n"), "lineinfile: { path: P, line: bad, validate: 'grep -q good %s' }"),
    case(Some("a\nEND\n"), "lineinfile: { path: P, line: x, insertafter: '^END$' }"),
    case(None, "lineinfile: { path: P, line: x, state: absent }"),
    // blockinfile
    case(Some("a\n"), "blockinfile: { path: P, block: \"x=1\\ny=2\" }"),
    case(
        Some("a\n# BEGIN ANSIBLE MANAGED BLOCK\nold\n# END ANSIBLE MANAGED BLOCK\nz\n"),
        "blockinfile: { path: P, block: new }",
    ),
    case(
        Some("a\n# BEGIN ANSIBLE MANAGED BLOCK\nold\n# END ANSIBLE MANAGED BLOCK\nz\n"),
        "blockinfile: { path: P, state: absent }",
    ),
    case(
        Some("a\nz\n"),
        "blockinfile: { path: P, marker: '// {mark} custom', insertbefore: '^z', block: k }",
    ),
    case(None, "blockinfile: { path: P/sub/new, create: true, block: x }"),
    case(None, "blockinfile: { path: P, block: x }"),
    case(Some("k1\nk2\nz\n"), "blockinfile: { path: P, insertafter: '^k', block: b }"),
    case(
        Some("a\nz\n"),
        "blockinfile: { path: P, insertafter: '^a', block: b, prepend_newline: true, append_newline: true }",
    ),
    case(Some("a"), "blockinfile: { path: P, block: b, backup: true, marker_begin: START }"),
    // replace
    case(Some("a=1\nb=2\n"), r"replace: { path: P, regexp: '^(\w)=(\d)$', replace: '\2=\1' }"),
    case(
        Some("x\n<a>\nx\n</a>\nx\n"),
        "replace: { path: P, regexp: x, replace: y, after: '<a>', before: '</a>' }",
    ),
    case(Some("abc\n"), "replace: { path: P, regexp: zzz, replace: y }"),
    case(Some("abc\n"), "replace: { path: P, regexp: b, after: nomatch }"),
    case(Some("abc\n"), "replace: { path: P, regexp: b, replace: B, backup: true, mode: '0640' }"),
    case(None, "replace: { path: P, regexp: b }"),
    case(Some("  indented\n"), "replace: { path: P, regexp: '^\\s+', replace: '' }"),
];

fn playbook() -> String {
    let mut text = String::from("- hosts: all\n  gather_facts: false\n  tasks:\n");
    for (index, case) in CASES.iter().enumerate() {
        let task = with_path(case.task, index);
        text.push_str(&format!(
            "    - {task}\n      register: r{index}\n      ignore_errors: true\n"
        ));
    }
    text.push_str("    - debug:\n        msg:\n");
    for index in 0..CASES.len() {
        let r = format!("r{index}");
        text.push_str(&format!(
            "          - \"{index}|{{{{ {r}.msg | default('') }}}}|{{{{ {r}.changed }}}}|{{{{ {r}.failed | default(false) }}}}|{{{{ 'backup' in {r} }}}}|{{{{ ({r}.backup | default('')) != '' }}}}|{{{{ 'backup_file' in {r} }}}}|{{{{ {r}.found | default('-') }}}}|{{{{ {r}.rc | default('-') }}}}\"\n"
        ));
    }
    text
}

/// `path: P/rest` becomes `path: "{{ dir }}/caseN/rest"`.
fn with_path(task: &str, index: usize) -> String {
    let start = task.find("path: P").expect("every case has `path: P`") + "path: ".len();
    let end = task[start..].find([',', ' ']).map_or(task.len(), |i| start + i);
    let suffix = &task[start + 1..end];
    format!("{}\"{{{{ dir }}}}/case{index}{suffix}\"{}", &task[..start], &task[end..])
}

fn seed(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for (index, case) in CASES.iter().enumerate() {
        if let Some(text) = case.seed {
            let path = dir.join(format!("case{index}"));
            std::fs::write(&path, text).unwrap();
            let mode = std::os::unix::fs::PermissionsExt::from_mode(0o644);
            std::fs::set_permissions(&path, mode).unwrap();
        }
    }
}

/// The cases' project on the loopback sshd, each tool on its own seeded directory.
fn pair(sshd: &Sshd, extra: &[&str]) -> Differential {
    let mut pair = Differential::new()
        .file("site.yml", &playbook())
        .file("hosts", &format!("{}\n", sshd.host_line("pi1")))
        .seed(seed);
    for argument in extra {
        pair = pair.arg(argument);
    }
    pair
}

/// Both tools once: the same reports and the same files.
fn run_both(pair: &Differential) -> Vec<String> {
    let reports = pair.run_both();
    pair.assert_same_trees();
    reports
}

#[test]
fn edits_match_ansible_and_the_second_run_changes_nothing() {
    let sshd = Sshd::start();
    let pair = pair(&sshd, &[]);
    let first = run_both(&pair);
    assert!(first.iter().any(|line| line.contains("|line added|True|")), "{first:#?}");
    let second = run_both(&pair);
    let changed: Vec<_> =
        second.iter().filter(|line| line.split('|').nth(2) == Some("True")).collect();
    assert!(changed.is_empty(), "changed on the second run: {changed:#?}");
}

#[test]
fn check_mode_matches_ansible_and_changes_nothing() {
    let sshd = Sshd::start();
    let pair = pair(&sshd, &["--check"]);
    let before = tree(pair.ours());
    let reports = run_both(&pair);
    assert!(reports.iter().any(|line| line.contains("|Block inserted|True|")), "{reports:#?}");
    assert_eq!(tree(pair.ours()), before, "check mode changed files");
}

#[test]
fn diff_mode_shows_the_added_line() {
    let sshd = Sshd::start();
    let target = tempfile::tempdir().unwrap();
    std::fs::write(target.path().join("f"), "a\n").unwrap();
    let playbook = format!(
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - lineinfile: {{ path: {}/f, line: added }}\n",
        target.path().display()
    );
    let test = Test::new()
        .file("site.yml", &playbook)
        .file("hosts", &format!("{}\n", sshd.host_line("pi1")))
        .arg("site.yml")
        .arg("-i")
        .arg("hosts")
        .arg("-D");
    test.bramble().success().stdout_has("+added").stdout_has("changed: [pi1]");
    std::fs::write(target.path().join("f"), "a\n").unwrap();
    test.ansible().success().stdout_has("+added");
}
