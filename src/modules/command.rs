//! `command`, `shell` and `raw`: run a command line, report rc/stdout/stderr.

use std::time::Instant;

use serde_json::{Map, Value};

use super::{Call, Outcome, fail, result};
use crate::connection::{quote, quote_all, split_words};

pub async fn run(module: &str, call: &mut Call<'_>) -> Outcome {
    let args = &call.args;
    let argv: Vec<String> = args.list(&["argv"]);
    let raw = args.string(&["_raw_params", "cmd"]);
    let expand = args.flag(&["expand_argument_vars"], true)?;
    let command_line = |words: &[String]| {
        if expand { super::expand::command_line(words) } else { quote_all(words) }
    };
    let (line, shown) = match (module, raw, argv.is_empty()) {
        ("command", Some(raw), true) => {
            let words = split_words(&raw).map_err(fail)?;
            (command_line(&words), Value::from(words))
        }
        ("command", None, false) => (command_line(&argv), Value::from(argv.clone())),
        ("command", Some(_), false) => {
            return Err(fail("parameters are mutually exclusive: argv|cmd"));
        }
        (_, Some(raw), _) => (raw.clone(), Value::from(raw)),
        _ => return Err(fail("no command given")),
    };
    if line.trim().is_empty() {
        return Err(fail("no command given"));
    }

    let creates = args.string(&["creates"]);
    let removes = args.string(&["removes"]);
    let guarded = creates.is_some() || removes.is_some();
    if call.check_mode && !guarded {
        return Ok(would_run(shown, false));
    }
    let mut command = match module {
        "shell" => {
            let executable = args.string(&["executable"]).unwrap_or_else(|| "/bin/sh".into());
            format!("{} -c {}", quote(&executable), quote(&line))
        }
        _ => line,
    };
    let chdir = args.string(&["chdir"]);
    // creates/removes make the command idempotent. They are checked in the same remote
    // command, after chdir as in ansible-core (a relative path is relative to it).
    let token = format!("bramble-not-run-{}", super::files::nonce());
    let scripted = guarded || chdir.is_some();
    if scripted {
        let run = if call.check_mode { format!("echo {token}:check") } else { command };
        command =
            guarded_command(&token, chdir.as_deref(), creates.as_deref(), removes.as_deref(), &run);
    }
    let stdin = args.string(&["stdin"]).map(|mut text| {
        if args.flag(&["stdin_add_newline"], true).unwrap_or(true) {
            text.push('\n');
        }
        text.into_bytes()
    });

    let start = chrono_now();
    let started = Instant::now();
    let output = call.remote.run_with_input(&command, stdin.as_deref()).await?;
    let delta = started.elapsed();
    let end = chrono_now();
    if scripted && output.rc == 0 {
        // Check mode says "Would not run", as ansible-core's.
        let verb = if call.check_mode { "Would not run" } else { "Did not run" };
        let said = output.stdout_text();
        match said.trim_end().strip_prefix(token.as_str()) {
            Some(":creates") => {
                let path = creates.unwrap_or_default();
                return Ok(not_run(
                    shown,
                    format!("{verb} command since '{path}' exists"),
                    format!("skipped, since {path} exists"),
                ));
            }
            Some(":removes") => {
                let path = removes.unwrap_or_default();
                return Ok(not_run(
                    shown,
                    format!("{verb} command since '{path}' does not exist"),
                    format!("skipped, since {path} does not exist"),
                ));
            }
            Some(":check") => return Ok(would_run(shown, true)),
            Some(":chdir") => {
                let mut failed = would_run(shown, false);
                failed.remove("skipped");
                failed.insert("rc".into(), Value::Null);
                failed.insert(
                    "msg".into(),
                    Value::from("Unable to change directory before execution."),
                );
                return Err(super::Failure::Failed(failed));
            }
            _ => {}
        }
    }
    let strip = args.flag(&["strip_empty_ends"], true)?;
    let stdout = trim_end(output.stdout_text(), strip);
    let stderr = trim_end(output.stderr_text(), strip);
    let mut outcome = Map::new();
    outcome.insert("changed".into(), Value::Bool(true));
    outcome.insert("cmd".into(), shown);
    outcome.insert("rc".into(), Value::from(output.rc));
    outcome.insert("stdout_lines".into(), lines(&stdout));
    outcome.insert("stderr_lines".into(), lines(&stderr));
    outcome.insert("stdout".into(), Value::from(stdout));
    outcome.insert("stderr".into(), Value::from(stderr));
    outcome.insert("start".into(), Value::from(start));
    outcome.insert("end".into(), Value::from(end));
    outcome.insert("delta".into(), Value::from(format_delta(delta)));
    outcome.insert(
        "msg".into(),
        Value::from(if output.rc == 0 { "" } else { "non-zero return code" }),
    );
    if output.rc != 0 {
        return Err(super::Failure::Failed(outcome));
    }
    Ok(outcome)
}

/// One script: change directory (or say `<token>:chdir` and stop), say `<token>:creates` (or
/// `:removes`) and stop when the guard holds, else run the command. The command goes on its own line, so that whatever it
/// ends with (a comment) cannot swallow the guard.
fn guarded_command(
    token: &str,
    chdir: Option<&str>,
    creates: Option<&str>,
    removes: Option<&str>,
    command: &str,
) -> String {
    let mut script = String::new();
    if let Some(directory) = chdir {
        script.push_str(&format!(
            "cd {} 2>/dev/null || {{ echo {token}:chdir; exit 0; }}\n",
            quote(directory)
        ));
    }
    if let Some(path) = creates {
        let pattern = glob_pattern(path);
        script.push_str(&format!(
            "for f in {pattern}; do [ -e \"$f\" ] && {{ echo {token}:creates; exit 0; }}; done\n"
        ));
    }
    if let Some(path) = removes {
        let pattern = glob_pattern(path);
        script.push_str(&format!(
            "bramble_found=; for f in {pattern}; do [ -e \"$f\" ] && bramble_found=1 && break; done\n\
             [ -n \"$bramble_found\" ] || {{ echo {token}:removes; exit 0; }}\n"
        ));
    }
    script.push_str(command);
    script
}

/// A creates/removes path as a shell word: glob characters bare (Ansible's creates and
/// removes accept globs), every other character quoted.
fn glob_pattern(path: &str) -> String {
    path.chars()
        .map(
            |c| {
                if matches!(c, '*' | '?' | '[' | ']') {
                    c.to_string()
                } else {
                    quote(&c.to_string())
                }
            },
        )
        .collect()
}

/// Check mode's result, as ansible-core's: a command with creates/removes whose guard would
/// let it run reports changed; one without them is skipped (it cannot tell).
fn would_run(cmd: Value, guarded: bool) -> Map<String, Value> {
    let mut outcome = result([
        ("changed", Value::Bool(guarded)),
        ("cmd", cmd),
        ("delta", Value::Null),
        ("end", Value::Null),
        ("msg", Value::from("Command would have run if not in check mode")),
        ("rc", Value::from(0)),
        ("start", Value::Null),
        ("stderr", Value::from("")),
        ("stderr_lines", Value::Array(Vec::new())),
        ("stdout", Value::from("")),
        ("stdout_lines", Value::Array(Vec::new())),
    ]);
    if !guarded {
        outcome.insert("skipped".into(), Value::Bool(true));
    }
    outcome
}

fn not_run(cmd: Value, msg: String, stdout: String) -> Map<String, Value> {
    result([
        ("changed", Value::Bool(false)),
        ("cmd", cmd),
        ("rc", Value::from(0)),
        ("stdout", Value::from(stdout.clone())),
        ("stdout_lines", Value::from(vec![stdout])),
        ("stderr", Value::from("")),
        ("stderr_lines", Value::Array(Vec::new())),
        ("msg", Value::from(msg)),
    ])
}

fn trim_end(text: String, strip: bool) -> String {
    if strip { text.trim_end_matches(['\n', '\r']).to_string() } else { text }
}

fn lines(text: &str) -> Value {
    Value::from(text.lines().map(str::to_string).collect::<Vec<_>>())
}

fn format_delta(delta: std::time::Duration) -> String {
    let seconds = delta.as_secs();
    format!(
        "{}:{:02}:{:02}.{:06}",
        seconds / 3600,
        (seconds / 60) % 60,
        seconds % 60,
        delta.subsec_micros()
    )
}

/// Local wall-clock time as Python's `datetime.now()` prints it.
fn chrono_now() -> String {
    chrono::Local::now().format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::files::tests::shells;

    const TOKEN: &str = "bramble-not-run-test";

    /// The guarded script in `dir`, under dash and bash: (rc, stdout) of each.
    fn guarded(
        dir: &std::path::Path,
        creates: Option<&str>,
        removes: Option<&str>,
    ) -> Vec<(i32, String)> {
        let chdir = dir.to_str().expect("utf-8 path");
        let command = "echo ran; exit 3 # a trailing comment";
        shells(&guarded_command(TOKEN, Some(chdir), creates, removes, command), b"")
    }

    #[test]
    fn creates_and_removes_are_checked_after_chdir_in_the_same_script() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("here.txt"), "").expect("a file");
        let not_run = |what: &str| vec![(0, format!("{TOKEN}:{what}\n")); 2];
        let ran = vec![(3, "ran\n".to_string()); 2];
        assert_eq!(guarded(dir.path(), Some("here.txt"), None), not_run("creates"));
        assert_eq!(guarded(dir.path(), Some("*.txt"), None), not_run("creates"));
        assert_eq!(guarded(dir.path(), Some("missing"), None), ran);
        assert_eq!(guarded(dir.path(), Some("*.none"), None), ran);
        assert_eq!(guarded(dir.path(), None, Some("missing")), not_run("removes"));
        assert_eq!(guarded(dir.path(), None, Some("h?re.txt")), ran);
        assert_eq!(guarded(dir.path(), Some("missing"), Some("missing")), not_run("removes"));
        let spaced = dir.path().join("a b");
        std::fs::write(&spaced, "").expect("a spaced name");
        assert_eq!(guarded(dir.path(), Some("a b"), None), not_run("creates"));
    }

    #[test]
    fn a_directory_that_cannot_be_entered_is_said_and_nothing_runs() {
        let dir = tempfile::tempdir().expect("temp dir");
        let gone = dir.path().join("gone");
        assert_eq!(guarded(&gone, Some("x"), None), vec![(0, format!("{TOKEN}:chdir\n")); 2]);
        assert_eq!(guarded(&gone, None, None), vec![(0, format!("{TOKEN}:chdir\n")); 2]);
    }
}
