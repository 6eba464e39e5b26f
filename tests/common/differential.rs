//! The differential scaffold of the module tests: one project (playbook, inventory, files) run
//! by bramble and by ansible-playbook, each on its own copy of a seeded directory that the
//! playbook knows as `dir`. What is compared is the report lines of the final `debug` (the
//! `"a|b|…"` entries of its `msg` list) and, where the modules write, the two trees.

use std::path::Path;
use std::process::{Command, Stdio};

/// A project and one working directory per tool, seeded alike.
pub struct Differential {
    project: tempfile::TempDir,
    ours: tempfile::TempDir,
    theirs: tempfile::TempDir,
    arguments: Vec<String>,
}

impl Differential {
    pub fn new() -> Differential {
        let directory = || tempfile::tempdir().expect("temp dir");
        Differential {
            project: directory(),
            ours: directory(),
            theirs: directory(),
            arguments: Vec::new(),
        }
    }

    /// A file of the project (`site.yml`, `hosts`, `files/…`).
    pub fn file(self, name: &str, text: &str) -> Differential {
        let path = self.project.path().join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
        self
    }

    /// Fills both working directories the same way.
    pub fn seed(self, seed: impl Fn(&Path)) -> Differential {
        seed(self.ours.path());
        seed(self.theirs.path());
        self
    }

    /// An extra argument for both tools (`--check`, `-D`).
    pub fn arg(mut self, argument: &str) -> Differential {
        self.arguments.push(argument.to_string());
        self
    }

    /// bramble's working directory.
    pub fn ours(&self) -> &Path {
        self.ours.path()
    }

    /// Runs both tools once; their reports must be the same, and are returned.
    pub fn run_both(&self) -> Vec<String> {
        let ours = self.run(true);
        let theirs = self.run(false);
        assert_eq!(ours, theirs, "reports differ (left: bramble, right: ansible)");
        ours
    }

    /// Both working directories hold the same files, contents and modes.
    pub fn assert_same_trees(&self) {
        assert_eq!(tree(self.ours.path()), tree(self.theirs.path()), "files differ");
    }

    /// One tool on its own directory: the report lines, the directory written as `<dir>`.
    pub fn run(&self, bramble: bool) -> Vec<String> {
        let dir = if bramble { self.ours.path() } else { self.theirs.path() };
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
            .args(&self.arguments)
            .current_dir(self.project.path())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .expect("run");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{}\n{stdout}\n{}",
            if bramble { "bramble" } else { "ansible" },
            String::from_utf8_lossy(&output.stderr)
        );
        reports(&stdout, dir)
    }
}

/// The `"a|b|…"` lines of a debug `msg` list, with `dir` replaced.
pub fn reports(stdout: &str, dir: &Path) -> Vec<String> {
    let dir = dir.display().to_string();
    stdout
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with('"') && line.contains('|'))
        .map(|line| line.trim_end_matches(',').trim_matches('"').replace(&dir, "<dir>"))
        .collect()
}

/// Every file under `dir` with its content and mode; backup names lose their pid and time.
pub fn tree(dir: &Path) -> Vec<(String, String, u32)> {
    let backup = regex::Regex::new(r"\.\d+\.\d{4}-\d\d-\d\d@\d\d:\d\d:\d\d~$").expect("regex");
    let mut entries = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let name = path.strip_prefix(dir).expect("under dir").display().to_string();
            let name = backup.replace(&name, ".<backup>").into_owned();
            let metadata = path.metadata().expect("metadata");
            let mode = std::os::unix::fs::PermissionsExt::mode(&metadata.permissions());
            let text = std::fs::read_to_string(&path).expect("text file");
            entries.push((name, text, mode & 0o7777));
        }
    }
    entries.sort();
    entries
}
