//! `tempfile`: create a temporary file or directory on the host and report its path.

use serde_json::Value;

use super::files::{self};
use super::{Call, Outcome, fail, result};
use crate::connection::quote;

/// `mktemp` with Python's naming (prefix, eight random characters, suffix), then the stat
/// line of what it made, in one command.
pub fn command(directory: bool, path: Option<&str>, prefix: &str, suffix: &str) -> String {
    let mut words = vec!["mktemp".to_string()];
    if directory {
        words.push("-d".into());
    }
    match path {
        Some(path) => words.push(format!("--tmpdir={}", quote(path))),
        None => words.push("--tmpdir".into()),
    }
    if !suffix.is_empty() {
        words.push(format!("--suffix={}", quote(suffix)));
    }
    words.push(quote(&format!("{prefix}XXXXXXXX")));
    format!(
        "p=$({}) && printf '%s\\n' \"$p\" && stat -c '%F|%a|%U|%G|%u|%g|%s|%Y' -- \"$p\"",
        words.join(" ")
    )
}

fn is_name_component(text: &str) -> bool {
    !text.contains('/')
}

pub async fn run(call: &mut Call<'_>) -> Outcome {
    let state = call.args.choice(&["state"], &["file", "directory"], Some("file"))?;
    let path = call.args.string(&["path"]);
    let prefix = call.args.string(&["prefix"]).unwrap_or_else(|| "ansible.".into());
    let suffix = call.args.string(&["suffix"]).unwrap_or_default();
    for (name, value) in [("prefix", &prefix), ("suffix", &suffix)] {
        if !is_name_component(value) {
            return Err(fail(format!("{name} must be a valid file name component, got '{value}'")));
        }
    }
    if call.check_mode {
        return Ok(result([
            ("changed", Value::Bool(false)),
            ("skipped", Value::Bool(true)),
            ("msg", Value::from("remote module (tempfile) does not support check mode")),
        ]));
    }
    let directory = state.as_deref() == Some("directory");
    let command = command(directory, path.as_deref(), &prefix, &suffix);
    let output = call.remote.check(&command, "mktemp").await?;
    let text = output.stdout_text();
    let (created, stat) = text.split_once('\n').unwrap_or((text.as_str(), ""));
    let mut outcome =
        result([("changed", Value::Bool(true)), ("path", Value::from(created.to_string()))]);
    if let Some(state) = files::parse_stat(stat) {
        files::describe(&mut outcome, &state);
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mktemp_gets_prefix_suffix_and_directory() {
        let line = command(true, Some("/var/tmp x"), "ansible.", ".conf");
        assert!(
            line.starts_with(
                "p=$(mktemp -d --tmpdir='/var/tmp x' --suffix=.conf ansible.XXXXXXXX)"
            ),
            "{line}"
        );
        assert!(line.contains("stat -c '%F|%a|%U|%G|%u|%g|%s|%Y' -- \"$p\""), "{line}");
    }
}
