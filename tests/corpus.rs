//! The differential corpus: every directory under `tests/corpus/` is a small Ansible project
//! run by ansible-playbook (the oracle) and by bramble on identical copies, and the two runs
//! must agree.
//!
//! A case holds `site.yml`, `hosts` and any other files, plus optional control files that
//! are not part of the project:
//!
//! - `args`: extra command-line arguments, one per line (default `site.yml -i hosts`
//!   is replaced when the file exists and names a playbook itself).
//! - `env`: `NAME=value` lines added to both runs' environment.
//! - `unsupported`: bramble must refuse the case with `not supported yet: <this text>`;
//!   ansible-playbook is not run.
//! - `compare`: `debug` to compare only the `debug` results and task banners instead of the
//!   whole stdout (for cases whose other output lines legitimately differ).
//!
//! In every file, `@DIR@` is replaced by the run's project directory and `@HOME@` by its
//! home directory. In `hosts`, a line `@ssh NAME` becomes an inventory line for NAME reached
//! over SSH through the loopback sshd, so one case covers both connections.
//!
//! Compared: the exit code, the PLAY RECAP line of every host, the stdout normalised for
//! temp paths and timings, and the project directory's tree afterwards (paths, file types,
//! modes and contents). stderr is not compared: warnings and error wording differ, and
//! error cases are pinned by their exit code.
//!
//! `CORPUS=substring cargo test --test corpus` runs only the matching cases.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use common::Sshd;

/// Control files of a case, never copied into the project directory.
const CONTROL_FILES: &[&str] = &["args", "env", "unsupported", "compare"];

/// How many cases run at once; ansible-playbook spends much of its second waiting.
const THREADS: usize = 6;

struct Case {
    name: String,
    source: PathBuf,
}

/// One run's result, reduced to what is compared.
#[derive(Debug, PartialEq)]
struct Outcome {
    code: i32,
    recap: Vec<String>,
    stdout: String,
    tree: BTreeMap<String, String>,
}

struct Raw {
    code: i32,
    stdout: String,
    stderr: String,
}

#[test]
fn corpus_agrees_with_ansible_playbook() {
    let started = Instant::now();
    let cases = discover();
    assert!(!cases.is_empty(), "no corpus cases found");
    let sshd = Arc::new(Sshd::start());
    let queue = Arc::new(Mutex::new(cases.into_iter().collect::<Vec<_>>()));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let count = Arc::new(Mutex::new(0usize));
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let (queue, failures, sshd, count) =
                (queue.clone(), failures.clone(), sshd.clone(), count.clone());
            std::thread::spawn(move || {
                loop {
                    let Some(case) = queue.lock().expect("queue").pop() else { break };
                    let verdict = run_case(&case, &sshd);
                    *count.lock().expect("count") += 1;
                    if let Err(report) = verdict {
                        failures.lock().expect("failures").push(report);
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("worker thread");
    }
    let failures = failures.lock().expect("failures");
    let total = *count.lock().expect("count");
    eprintln!("corpus: {total} cases in {:.1}s", started.elapsed().as_secs_f64());
    assert!(
        failures.is_empty(),
        "{} of {total} corpus cases disagree with ansible-playbook:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

fn discover() -> Vec<Case> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let filter = std::env::var("CORPUS").unwrap_or_default();
    let mut cases: Vec<Case> = std::fs::read_dir(&root)
        .expect("tests/corpus")
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().is_dir())
        .map(|entry| Case {
            name: entry.file_name().to_string_lossy().into_owned(),
            source: entry.path(),
        })
        .filter(|case| case.name.contains(&filter))
        .collect();
    // Popped from the end: alphabetical order of start.
    cases.sort_by(|a, b| b.name.cmp(&a.name));
    cases
}

/// Runs one case both ways; `Err` carries a report of every difference.
fn run_case(case: &Case, sshd: &Sshd) -> Result<(), String> {
    if let Some(expected) = read_control(case, "unsupported") {
        return check_unsupported(case, sshd, expected.trim());
    }
    let (ours, our_dir) = execute(case, sshd, Runner::Bramble);
    let (theirs, their_dir) = execute(case, sshd, Runner::Ansible);
    let debug_only = read_control(case, "compare").is_some_and(|mode| mode.trim() == "debug");
    let ours_reduced = reduce(&ours, our_dir.path(), debug_only);
    let theirs_reduced = reduce(&theirs, their_dir.path(), debug_only);
    if ours_reduced == theirs_reduced {
        return Ok(());
    }
    Err(describe(&case.name, &ours, &theirs, &ours_reduced, &theirs_reduced))
}

fn check_unsupported(case: &Case, sshd: &Sshd, expected: &str) -> Result<(), String> {
    let (ours, _dir) = execute(case, sshd, Runner::Bramble);
    let wanted = format!("not supported yet: {expected}");
    let said = format!("{}{}", ours.stdout, ours.stderr);
    if ours.code != 0 && said.contains("not supported yet") && said.contains(expected) {
        return Ok(());
    }
    Err(format!(
        "== {}: expected bramble to refuse with `{wanted}`, got exit {}\n--- stdout\n{}\n--- stderr\n{}",
        case.name, ours.code, ours.stdout, ours.stderr
    ))
}

#[derive(Clone, Copy, PartialEq)]
enum Runner {
    Bramble,
    Ansible,
}

/// Copies the case into a fresh project directory and runs it there.
fn execute(case: &Case, sshd: &Sshd, runner: Runner) -> (Raw, tempfile::TempDir) {
    let root = tempfile::tempdir().expect("temp dir");
    let project = root.path().join("project");
    let home = root.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let substitute = |text: &str| {
        text.replace("@DIR@", &project.display().to_string())
            .replace("@HOME@", &home.display().to_string())
    };
    copy_tree(&case.source, &project, &substitute, sshd, true);

    let mut arguments: Vec<String> = match read_control(case, "args") {
        Some(text) => text.lines().filter(|l| !l.trim().is_empty()).map(&substitute).collect(),
        None => Vec::new(),
    };
    if !arguments.iter().any(|a| a.ends_with(".yml") || a.ends_with(".yaml")) {
        arguments.insert(0, "site.yml".into());
    }
    if !arguments.iter().any(|a| a == "-i" || a.starts_with("--inventory"))
        && project.join("hosts").exists()
    {
        arguments.extend(["-i".into(), "hosts".into()]);
    }

    let mut command = match runner {
        Runner::Bramble => {
            let mut command = Command::new(env!("CARGO_BIN_EXE_bramble"));
            command.arg("run");
            command
        }
        Runner::Ansible => {
            let mut command = Command::new("ansible-playbook");
            command.env("ANSIBLE_PYTHON_INTERPRETER", "/usr/bin/python3");
            command
        }
    };
    command
        .args(&arguments)
        .current_dir(&project)
        .env("HOME", &home)
        .env("NO_COLOR", "1")
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
        .env("ANSIBLE_LOCALHOST_WARNING", "0")
        .env("ANSIBLE_LOCAL_TEMP", root.path().join("ansible-tmp"))
        .env_remove("ANSIBLE_HOST_KEY_CHECKING")
        .env_remove("ANSIBLE_CONFIG")
        .env_remove("ANSIBLE_INVENTORY")
        .stdin(Stdio::null());
    if let Some(text) = read_control(case, "env") {
        for line in text.lines().filter(|l| l.contains('=')) {
            let (name, value) = line.split_once('=').expect("NAME=value");
            command.env(name.trim(), substitute(value.trim()));
        }
    }
    let output = command.output().expect("start the runner");
    let raw = Raw {
        code: output.status.code().unwrap_or(-1),
        stdout: substitute_back(&String::from_utf8_lossy(&output.stdout), &project, &home),
        stderr: substitute_back(&String::from_utf8_lossy(&output.stderr), &project, &home),
    };
    (raw, root)
}

fn substitute_back(text: &str, project: &Path, home: &Path) -> String {
    text.replace(&project.display().to_string(), "@DIR@")
        .replace(&home.display().to_string(), "@HOME@")
}

fn read_control(case: &Case, name: &str) -> Option<String> {
    std::fs::read_to_string(case.source.join(name)).ok()
}

fn copy_tree(from: &Path, to: &Path, substitute: &dyn Fn(&str) -> String, sshd: &Sshd, top: bool) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read case dir").filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let source = entry.path();
        let target = to.join(&name);
        if top && CONTROL_FILES.contains(&name.as_str()) {
            continue;
        }
        if source.is_dir() {
            copy_tree(&source, &target, substitute, sshd, false);
            continue;
        }
        let bytes = std::fs::read(&source).expect("read case file");
        match String::from_utf8(bytes) {
            Ok(text) => {
                let mut text = substitute(&text);
                if name == "hosts" || name.ends_with(".ini") {
                    text = expand_ssh_hosts(&text, sshd);
                }
                std::fs::write(&target, text).expect("write case file");
            }
            Err(binary) => std::fs::write(&target, binary.into_bytes()).expect("write"),
        }
        let mode = std::fs::metadata(&source).expect("stat").permissions().mode();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
}

fn expand_ssh_hosts(text: &str, sshd: &Sshd) -> String {
    text.lines()
        .map(|line| match line.strip_prefix("@ssh ") {
            Some(rest) => {
                let mut words = rest.split_whitespace();
                let name = words.next().unwrap_or("ssh");
                let extra: Vec<&str> = words.collect();
                format!("{} {}", sshd.host_line(name), extra.join(" "))
            }
            None => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// The parts of a run that must agree.
fn reduce(raw: &Raw, root: &Path, debug_only: bool) -> Outcome {
    let stdout = normalize(&raw.stdout);
    let recap = stdout
        .lines()
        .skip_while(|line| !line.starts_with("PLAY RECAP"))
        .filter(|line| line.contains(" : ok="))
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let stdout = if debug_only { debug_lines(&stdout) } else { stdout };
    Outcome { code: raw.code, recap, stdout, tree: tree(&root.join("project")) }
}

/// Timings vary between runs, and so does the order in which hosts finish a task.
fn normalize(text: &str) -> String {
    let times = regex::Regex::new(r#""(delta|end|start)": "[^"]*""#).expect("regex");
    let text = times.replace_all(text, r#""$1": "<time>""#);
    let lines: Vec<&str> =
        text.lines().filter(|line| !line.contains("discovered Python interpreter")).collect();
    sort_host_results(&lines).join("\n")
}

/// Within each task, orders the per-host results by host name (stably, so one host's loop
/// items keep their order): hosts run in parallel and report in whatever order they finish.
fn sort_host_results(lines: &[&str]) -> Vec<String> {
    let start = regex::Regex::new(r"^(ok|changed|skipping|fatal|failed|FAILED - RETRYING): \[")
        .expect("regex");
    let host =
        regex::Regex::new(r"^(?:ok|changed|skipping|fatal|failed|FAILED - RETRYING): \[([^\]]+)\]")
            .expect("regex");
    let mut out = Vec::new();
    let mut chunks: Vec<Vec<&str>> = Vec::new();
    let mut open_error = false;
    let flush = |chunks: &mut Vec<Vec<&str>>, out: &mut Vec<String>| {
        let key = |chunk: &Vec<&str>| -> String {
            chunk
                .iter()
                .find_map(|line| host.captures(line).map(|c| c[1].to_string()))
                .unwrap_or_default()
        };
        chunks.sort_by_key(key);
        out.extend(chunks.drain(..).flatten().map(str::to_string));
    };
    for line in lines {
        let begins_result = line.starts_with("[ERROR]:") || start.is_match(line);
        let closes_error =
            open_error && (line.starts_with("fatal: [") || line.starts_with("failed: ["));
        if closes_error {
            open_error = false;
            chunks.last_mut().expect("open chunk").push(line);
        } else if begins_result {
            open_error = line.starts_with("[ERROR]:");
            chunks.push(vec![line]);
        } else if open_error {
            chunks.last_mut().expect("open chunk").push(line);
        } else if line.is_empty() || line.starts_with("TASK [") || line.starts_with("PLAY ") {
            flush(&mut chunks, &mut out);
            out.push(line.to_string());
        } else if let Some(chunk) = chunks.last_mut() {
            chunk.push(line);
        } else {
            out.push(line.to_string());
        }
    }
    flush(&mut chunks, &mut out);
    out
}

/// Banners and the results of `debug` tasks (`ok: [h] => {` and what follows up to `}`).
fn debug_lines(stdout: &str) -> String {
    let mut kept = Vec::new();
    let mut inside = false;
    for line in stdout.lines() {
        if line.starts_with("TASK [") || line.starts_with("PLAY [") {
            kept.push(line);
        } else if line.starts_with("ok: [") && line.ends_with("=> {") {
            inside = true;
            kept.push(line);
        } else if inside {
            kept.push(line);
            inside = line != "}";
        }
    }
    kept.join("\n")
}

/// Every path under `root` with its type, mode and contents.
fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut entries = BTreeMap::new();
    walk(root, root, &mut entries);
    entries
}

fn walk(root: &Path, directory: &Path, entries: &mut BTreeMap<String, String>) {
    let Ok(listing) = std::fs::read_dir(directory) else { return };
    for entry in listing.filter_map(|e| e.ok()) {
        let path = entry.path();
        let relative = path.strip_prefix(root).expect("under root").display().to_string();
        let Ok(metadata) = std::fs::symlink_metadata(&path) else { continue };
        let mode = metadata.permissions().mode() & 0o7777;
        let description = if metadata.file_type().is_symlink() {
            let target = std::fs::read_link(&path).map(|t| t.display().to_string());
            format!("link -> {}", target.unwrap_or_default())
        } else if metadata.is_dir() {
            walk(root, &path, entries);
            format!("dir {mode:o}")
        } else {
            let contents = std::fs::read(&path).unwrap_or_default();
            format!("file {mode:o} {:?}", String::from_utf8_lossy(&contents))
        };
        entries.insert(relative, description);
    }
}

/// A readable report of how two runs differ.
fn describe(name: &str, ours: &Raw, theirs: &Raw, a: &Outcome, b: &Outcome) -> String {
    let mut report = format!("== {name}");
    if a.code != b.code {
        report += &format!("\nexit code: bramble {} ansible {}", a.code, b.code);
    }
    if a.recap != b.recap {
        report += &format!("\nrecap: bramble {:?}\n       ansible {:?}", a.recap, b.recap);
    }
    if a.stdout != b.stdout {
        report += "\nstdout (- ansible, + bramble):\n";
        let diff = similar::TextDiff::from_lines(&b.stdout, &a.stdout);
        report += &diff.unified_diff().context_radius(2).to_string();
    }
    if a.tree != b.tree {
        report += "\nfile tree (- ansible, + bramble):";
        for (path, theirs_entry) in &b.tree {
            match a.tree.get(path) {
                Some(ours_entry) if ours_entry == theirs_entry => {}
                Some(ours_entry) => {
                    report += &format!("\n- {path}: {theirs_entry}\n+ {path}: {ours_entry}")
                }
                None => report += &format!("\n- {path}: {theirs_entry}"),
            }
        }
        for (path, ours_entry) in &a.tree {
            if !b.tree.contains_key(path) {
                report += &format!("\n+ {path}: {ours_entry}");
            }
        }
    }
    if a.code != b.code || a.stdout.is_empty() {
        report += &format!("\n--- bramble stderr\n{}", ours.stderr.trim_end());
        report += &format!("\n--- ansible stderr\n{}", theirs.stderr.trim_end());
    }
    report
}
