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

    // creates/removes make the command idempotent: checked before anything runs.
    if let Some(path) = args.string(&["creates"])
        && exists(call, &path).await?
    {
        return Ok(not_run(
            shown,
            format!("Did not run command since '{path}' exists"),
            format!("skipped, since {path} exists"),
        ));
    }
    if let Some(path) = args.string(&["removes"])
        && !exists(call, &path).await?
    {
        return Ok(not_run(
            shown,
            format!("Did not run command since '{path}' does not exist"),
            format!("skipped, since {path} does not exist"),
        ));
    }
    if call.check_mode {
        let mut skipped = result([("changed", Value::Bool(false)), ("skipped", Value::Bool(true))]);
        skipped.insert("msg".into(), Value::from("Command would have run if not in check mode"));
        return Ok(skipped);
    }

    let mut command = match module {
        "shell" => {
            let executable = args.string(&["executable"]).unwrap_or_else(|| "/bin/sh".into());
            format!("{} -c {}", quote(&executable), quote(&line))
        }
        _ => line,
    };
    if let Some(directory) = args.string(&["chdir"]) {
        command = format!("cd {} && {command}", quote(&directory));
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

async fn exists(call: &Call<'_>, path: &str) -> Result<bool, super::Failure> {
    // Unquoted on purpose for globs, as Ansible's creates/removes accept them; each
    // character that is not a glob is still quoted.
    let pattern: String =
        path.chars()
            .map(|c| {
                if matches!(c, '*' | '?' | '[' | ']') {
                    c.to_string()
                } else {
                    quote(&c.to_string())
                }
            })
            .collect();
    let output = call
        .remote
        .run(&format!("for f in {pattern}; do [ -e \"$f\" ] && exit 0; done; exit 1"))
        .await?;
    Ok(output.rc == 0)
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
