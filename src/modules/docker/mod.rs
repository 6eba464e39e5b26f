//! The community.docker modules bramble implements, as planners over the `docker` CLI on the
//! target: from arguments and what `docker … inspect` / `docker compose ps` report to the
//! commands that reach the asked state.

pub mod compose;
pub mod container;
pub mod image;
pub mod network;
pub mod volume;

use serde_json::Value;

use super::{Call, Failure};
use crate::connection::quote_all;

/// The `docker` command with the connection options every module accepts.
pub fn docker_words(docker_host: Option<&str>) -> Vec<String> {
    let mut words = vec!["docker".to_string()];
    if let Some(host) = docker_host {
        words.push("--host".into());
        words.push(host.into());
    }
    words
}

/// `docker` plus `words`, as one quoted command line.
pub fn command_line(call: &Call<'_>, words: &[&str]) -> String {
    let mut argv = docker_words(call.args.string(&["docker_host"]).as_deref());
    argv.extend(words.iter().map(|word| word.to_string()));
    quote_all(&argv)
}

/// Reads JSON that is either one array or one object per line (`docker … --format json`
/// prints either, depending on its version).
pub fn json_records(text: &str) -> Result<Vec<Value>, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    if trimmed.starts_with('[') {
        return match serde_json::from_str(trimmed) {
            Ok(Value::Array(items)) => Ok(items),
            Ok(other) => Ok(vec![other]),
            Err(error) => Err(format!("docker printed JSON that does not parse: {error}")),
        };
    }
    trimmed
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line).map_err(|error| {
                format!("docker printed a line that is not JSON ({error}): {line}")
            })
        })
        .collect()
}

/// `docker KIND inspect NAME`: the object, or `None` when there is no such object.
pub async fn inspect(call: &Call<'_>, kind: &str, name: &str) -> Result<Option<Value>, Failure> {
    let line = command_line(call, &[kind, "inspect", "--", name]);
    let output = call.remote.run(&line).await?;
    if output.rc != 0 {
        let stderr = output.stderr_text();
        if is_missing(&stderr) {
            return Ok(None);
        }
        return Err(super::fail(format!("docker {kind} inspect {name} failed: {}", stderr.trim())));
    }
    let records = json_records(&output.stdout_text()).map_err(super::fail)?;
    Ok(records.into_iter().next())
}

/// Whether docker's error says the object does not exist (wording differs across versions).
pub fn is_missing(stderr: &str) -> bool {
    let lower = stderr.to_ascii_lowercase();
    lower.contains("no such") || lower.contains("not found")
}

/// Runs a docker command line unless in check mode; a failure quotes docker's stderr.
pub async fn apply(call: &Call<'_>, line: &str, what: &str) -> Result<(), Failure> {
    if call.check_mode {
        return Ok(());
    }
    call.remote.check(line, what).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_records_reads_arrays_and_lines() {
        assert_eq!(json_records("").unwrap().len(), 0);
        assert_eq!(json_records("[{\"a\":1},{\"a\":2}]").unwrap().len(), 2);
        assert_eq!(json_records("{\"a\":1}\n{\"a\":2}\n").unwrap().len(), 2);
        assert!(json_records("{oops").is_err());
    }

    #[test]
    fn docker_host_comes_first() {
        assert_eq!(docker_words(Some("tcp://h:2375")), ["docker", "--host", "tcp://h:2375"]);
        assert_eq!(docker_words(None), ["docker"]);
    }
}
