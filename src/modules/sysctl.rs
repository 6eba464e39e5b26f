//! `ansible.posix.sysctl`: keep a kernel parameter in a sysctl file (and optionally in the
//! running kernel), reloading the file when it changed.

use serde_json::Value;

use super::files;
use super::{Call, Outcome, fail, result};
use crate::connection::quote;

/// Values compare as their whitespace-separated words (`4096  87380` is `4096 87380`).
fn same_value(a: &str, b: &str) -> bool {
    a.split_whitespace().eq(b.split_whitespace())
}

/// The key of a `key = value` line, or None for comments, blanks and other lines.
fn line_key(line: &str) -> Option<(&str, &str)> {
    let trimmed = line.trim();
    if trimmed.is_empty() || trimmed.starts_with(['#', ';']) {
        return None;
    }
    trimmed.split_once('=').map(|(key, value)| (key.trim(), value.trim()))
}

/// The new file text for `name` set to `value` (None: removed); the first line with the key
/// is rewritten as `name=value`, later ones are dropped, a missing key is appended.
pub fn edit(text: &str, name: &str, value: Option<&str>) -> String {
    let mut out = String::new();
    let mut written = false;
    for line in text.split_inclusive('\n') {
        match line_key(line) {
            Some((key, _)) if key == name => {
                if let (Some(value), false) = (value, written) {
                    out.push_str(&format!("{name}={value}\n"));
                    written = true;
                }
            }
            _ => out.push_str(line),
        }
    }
    if let (Some(value), false) = (value, written) {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&format!("{name}={value}\n"));
    }
    out
}

/// The value already in the file for `name`, if any.
pub fn file_value<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().filter_map(line_key).find(|(key, _)| *key == name).map(|(_, value)| value)
}

/// `value:` as Ansible reads it: booleans are 1/0, the rest is trimmed text.
fn value_text(value: &Value) -> String {
    match value {
        Value::Bool(flag) => if *flag { "1" } else { "0" }.to_string(),
        Value::String(text) => match text.trim().to_ascii_lowercase().as_str() {
            "yes" | "true" | "on" => "1".into(),
            "no" | "false" | "off" => "0".into(),
            _ => text.trim().to_string(),
        },
        other => other.to_string(),
    }
}

pub async fn run(call: &mut Call<'_>) -> Outcome {
    let name = call.args.required(&["name", "key"])?;
    let present = call.args.choice(&["state"], &["present", "absent"], Some("present"))?.as_deref()
        == Some("present");
    let value = call.args.value(&["value", "val"]).map(value_text);
    if present && value.is_none() {
        return Err(fail("value cannot be None"));
    }
    let file = call.args.string(&["sysctl_file"]).unwrap_or_else(|| "/etc/sysctl.conf".into());
    let reload = call.args.flag(&["reload"], true)?;
    let sysctl_set = call.args.flag(&["sysctl_set"], false)?;
    let ignore_errors = call.args.flag(&["ignoreerrors"], false)?;

    // Query: the file and the running value, in one command.
    let query = format!(
        "cat -- {} 2>/dev/null; printf '\\0'; sysctl -n -- {} 2>/dev/null",
        quote(&file),
        quote(&name)
    );
    let output = call.remote.run(&query).await?;
    let text = output.stdout_text();
    let (current_file, running) = text.split_once('\0').unwrap_or((text.as_str(), ""));
    let running = running.trim();
    let new = edit(current_file, &name, if present { value.as_deref() } else { None });
    let file_changed = match (file_value(current_file, &name), present, &value) {
        (Some(old), true, Some(value)) => !same_value(old, value),
        (None, true, _) => true,
        (found, false, _) => found.is_some(),
        (Some(_), true, None) => false,
    };
    let kernel_changed =
        sysctl_set && present && value.as_deref().is_some_and(|value| !same_value(running, value));

    let mut outcome = result([("changed", Value::Bool(file_changed || kernel_changed))]);
    if call.diff && file_changed {
        outcome.insert(
            "diff".into(),
            serde_json::json!({"before": current_file, "after": new, "before_header": file, "after_header": file}),
        );
    }
    if call.check_mode {
        return Ok(outcome);
    }
    if file_changed {
        files::write_atomic(call.remote, &file, new.as_bytes(), None, None, None, None).await?;
    }
    if kernel_changed && let Some(value) = &value {
        let set = format!("sysctl -w {}", quote(&format!("{name}={value}")));
        let output = call.remote.run(&set).await?;
        if output.rc != 0 && !ignore_errors {
            return Err(fail(format!("setting {name} failed: {}", output.stderr_text().trim())));
        }
    }
    if file_changed && reload {
        let output = call.remote.run(&format!("sysctl -p {}", quote(&file))).await?;
        if output.rc != 0 && !ignore_errors {
            return Err(fail(format!(
                "Failed to reload sysctl: {}{}",
                output.stdout_text(),
                output.stderr_text()
            )));
        }
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_rewritten_appended_or_removed() {
        let text = "# c\nnet.ipv4.ip_forward = 0\nvm.swappiness=10\nnet.ipv4.ip_forward=0\n";
        assert_eq!(
            edit(text, "net.ipv4.ip_forward", Some("1")),
            "# c\nnet.ipv4.ip_forward=1\nvm.swappiness=10\n"
        );
        assert_eq!(edit("a=1", "b", Some("2")), "a=1\nb=2\n");
        assert_eq!(edit(text, "net.ipv4.ip_forward", None), "# c\nvm.swappiness=10\n");
        assert_eq!(file_value(text, "vm.swappiness"), Some("10"));
        assert!(same_value("4096\t87380", "4096 87380"));
        assert_eq!(value_text(&Value::Bool(true)), "1");
        assert_eq!(value_text(&Value::from(" yes ")), "1");
    }
}
