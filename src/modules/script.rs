//! `script`: send a script from the controller and run it on the host with its arguments,
//! in one command (upload, run, clean up).

use serde_json::Value;

use super::copy::find_local;
use super::{Call, Failure, Outcome, fail, result};
use crate::connection::{quote, split_words};

/// The remote script: the bytes arrive on stdin into a private temporary directory, then the
/// user's command line runs with the script's path in place of its first word.
pub fn command(
    name: &str,
    command_line: &str,
    chdir: Option<&str>,
    executable: Option<&str>,
) -> String {
    let mut run = String::new();
    if let Some(directory) = chdir {
        run.push_str(&format!("cd {} && ", quote(directory)));
    }
    if let Some(executable) = executable {
        run.push_str(&quote(executable));
        run.push(' ');
    }
    run.push_str(command_line);
    format!(
        "d=$(mktemp -d) || exit 1; cat > \"$d\"/{name}; chmod 0700 \"$d\"/{name}; ( {run} ); \
         rc=$?; rm -rf -- \"$d\"; exit $rc",
        name = quote(name)
    )
}

async fn exists(call: &Call<'_>, path: &str) -> Result<bool, Failure> {
    Ok(call.remote.run(&format!("[ -e {} ]", quote(path))).await?.rc == 0)
}

fn skipped(message: String) -> Outcome {
    Ok(result([
        ("changed", Value::Bool(false)),
        ("skipped", Value::Bool(true)),
        ("msg", Value::from(message)),
    ]))
}

pub async fn run(call: &mut Call<'_>) -> Outcome {
    let raw = match (call.args.string(&["_raw_params"]), call.args.string(&["cmd"])) {
        (Some(_), Some(_)) => {
            return Err(fail("parameters are mutually exclusive: _raw_params|cmd"));
        }
        (Some(raw), None) | (None, Some(raw)) => raw.trim().to_string(),
        (None, None) => return Err(fail("one of the following is required: _raw_params, cmd")),
    };
    if let Some(path) = call.args.string(&["creates"])
        && exists(call, &path).await?
    {
        return skipped(format!("{path} exists, matching creates option"));
    }
    if let Some(path) = call.args.string(&["removes"])
        && !exists(call, &path).await?
    {
        return skipped(format!("{path} does not exist, matching removes option"));
    }
    let chdir = call.args.string(&["chdir"]);
    if let Some(directory) = &chdir
        && !directory.starts_with('/')
    {
        return Err(fail(format!(
            "chdir {directory} must be an absolute path for a Unix-aware remote node"
        )));
    }
    let words = split_words(&raw).map_err(fail)?;
    let Some(first) = words.first() else { return Err(fail("no script given")) };
    let source = find_local(call.search_paths, "files", first)?;
    if call.check_mode {
        if call.args.string(&["creates"]).is_some() || call.args.string(&["removes"]).is_some() {
            return Ok(result([("changed", Value::Bool(true))]));
        }
        return skipped("Check mode is not supported for this task.".into());
    }
    let bytes = std::fs::read(&source)
        .map_err(|error| fail(format!("could not read {}: {error}", source.display())))?;
    let name = source.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let command_line = raw.replacen(first.as_str(), &format!("\"$d\"/{}", quote(&name)), 1);
    let executable = call.args.string(&["executable"]);
    let script = command(&name, &command_line, chdir.as_deref(), executable.as_deref());
    let output = call.remote.run_with_input(&script, Some(&bytes)).await?;

    let stdout = output.stdout_text();
    let stderr = output.stderr_text();
    let lines = |text: &str| Value::from(text.lines().map(str::to_string).collect::<Vec<_>>());
    let mut outcome = result([
        ("changed", Value::Bool(true)),
        ("rc", Value::from(output.rc)),
        ("stdout", Value::from(stdout.clone())),
        ("stdout_lines", lines(&stdout)),
        ("stderr", Value::from(stderr.clone())),
        ("stderr_lines", lines(&stderr)),
    ]);
    if output.rc != 0 {
        outcome.insert("msg".into(), Value::from("non-zero return code"));
        return Err(Failure::Failed(outcome));
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_runs_from_a_private_directory() {
        let line = command("setup.sh", "\"$d\"/setup.sh --flag 'a b'", Some("/srv x"), None);
        assert!(line.starts_with("d=$(mktemp -d) || exit 1; cat > \"$d\"/setup.sh;"), "{line}");
        assert!(line.contains("( cd '/srv x' && \"$d\"/setup.sh --flag 'a b' );"), "{line}");
        assert!(line.ends_with("rc=$?; rm -rf -- \"$d\"; exit $rc"));
        let line = command("it's.sh", "\"$d\"/'it'\"'\"'s.sh'", None, Some("/bin/bash"));
        assert!(line.contains("cat > \"$d\"/'it'\"'\"'s.sh';"), "{line}");
        assert!(line.contains("( /bin/bash \"$d\"/"), "{line}");
    }
}
