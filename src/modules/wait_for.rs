//! `wait_for`: poll the host until a port opens or closes, or a file appears, disappears or
//! contains a pattern.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Call, Failure, Outcome, fail, result};
use crate::connection::quote;

/// A one-shot probe: exits 0 when something accepts connections on host:port.
pub fn port_probe(host: &str, port: i64) -> String {
    let (host_q, port_hex) = (quote(host), format!("{port:04X}"));
    // nc or bash's /dev/tcp when present; otherwise a listening socket in /proc/net/tcp
    // (local addresses only), which needs nothing but a shell and grep.
    format!(
        "if command -v nc >/dev/null 2>&1; then nc -z -w 1 {host_q} {port}; \
         elif command -v bash >/dev/null 2>&1; then bash -c 'exec 3<>/dev/tcp/'{host_q}'/{port}' 2>/dev/null; \
         else cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk '{{print $2, $4}}' | grep -qi ':{port_hex} 0A$'; fi"
    )
}

pub fn path_probe(path: &str, pattern: Option<&str>) -> String {
    match pattern {
        Some(pattern) => {
            format!("[ -e {p} ] && grep -Eq -- {} {p}", quote(pattern), p = quote(path))
        }
        None => format!("[ -e {} ]", quote(path)),
    }
}

pub async fn run(call: &mut Call<'_>) -> Outcome {
    let args = &call.args;
    let host = args.string(&["host"]).unwrap_or_else(|| "127.0.0.1".into());
    let port = args.value(&["port"]).map(|_| args.integer(&["port"], 0)).transpose()?;
    let path = args.string(&["path"]);
    let state = args
        .choice(
            &["state"],
            &["started", "stopped", "present", "absent", "drained"],
            Some("started"),
        )?
        .unwrap_or_default();
    let timeout = Duration::from_secs(args.integer(&["timeout"], 300)?.max(0) as u64);
    let delay = Duration::from_secs(args.integer(&["delay"], 0)?.max(0) as u64);
    let sleep = Duration::from_secs(args.integer(&["sleep"], 1)?.max(1) as u64);
    let pattern = args.string(&["search_regex"]);
    if state == "drained" {
        return Err(fail("not supported yet: wait_for state=drained"));
    }
    let (probe, want_success, what) = match (&port, &path) {
        (Some(port), None) => (
            port_probe(&host, *port),
            matches!(state.as_str(), "started" | "present"),
            format!("{host}:{port}"),
        ),
        (None, Some(path)) => (
            path_probe(path, pattern.as_deref()),
            matches!(state.as_str(), "started" | "present"),
            path.clone(),
        ),
        (None, None) => {
            tokio::time::sleep(timeout).await;
            return Ok(result([
                ("changed", Value::Bool(false)),
                ("elapsed", Value::from(timeout.as_secs())),
            ]));
        }
        (Some(_), Some(_)) => return Err(fail("parameters are mutually exclusive: port|path")),
    };
    if call.check_mode {
        return Ok(result([
            ("changed", Value::Bool(false)),
            ("skipped", Value::Bool(true)),
            ("msg", Value::from("wait_for is not run in check mode")),
        ]));
    }
    tokio::time::sleep(delay).await;
    let started = Instant::now();
    loop {
        let output = call.remote.run(&probe).await?;
        if (output.rc == 0) == want_success {
            let mut outcome = result([
                ("changed", Value::Bool(false)),
                ("elapsed", Value::from(started.elapsed().as_secs())),
                ("state", Value::from(state.clone())),
            ]);
            if let Some(port) = port {
                outcome.insert("port".into(), Value::from(port));
            }
            if let Some(path) = &path {
                outcome.insert("path".into(), Value::from(path.clone()));
            }
            return Ok(outcome);
        }
        if started.elapsed() >= timeout {
            return Err(timed_out(call, &what, started.elapsed()));
        }
        tokio::time::sleep(sleep).await;
    }
}

fn timed_out(call: &Call<'_>, what: &str, elapsed: Duration) -> Failure {
    let message =
        call.args.string(&["msg"]).unwrap_or_else(|| format!("Timeout when waiting for {what}"));
    let mut failure =
        result([("changed", Value::Bool(false)), ("elapsed", Value::from(elapsed.as_secs()))]);
    failure.insert("msg".into(), Value::from(message));
    Failure::Failed(failure)
}
