//! `wait_for_connection`: close and reopen the host's connection and run a trivial command,
//! until it answers or time runs out; the executor keeps the connection that answered.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Call, Failure, Outcome, fail, result};

/// Why one attempt did not answer, in a line.
async fn attempt(call: &Call<'_>, connect_timeout: Duration) -> Result<(), String> {
    let reason = |failure: Failure| match failure {
        Failure::Unreachable(error) => error,
        Failure::Failed(result) => {
            result.get("msg").and_then(Value::as_str).unwrap_or("").to_string()
        }
    };
    call.remote.reconnect(Some(connect_timeout)).await.map_err(|error| error.0)?;
    match tokio::time::timeout(connect_timeout, call.remote.run("echo ping")).await {
        Ok(Ok(output)) if output.rc == 0 => Ok(()),
        Ok(Ok(output)) => Err(output.stderr_text().trim().to_string()),
        Ok(Err(failure)) => Err(reason(failure)),
        Err(_) => Err(format!("no answer within {} seconds", connect_timeout.as_secs())),
    }
}

pub async fn run(call: &mut Call<'_>) -> Outcome {
    let timeout = call.args.integer(&["timeout"], 600)?;
    let delay = call.args.integer(&["delay"], 0)?;
    let sleep = call.args.integer(&["sleep"], 1)?;
    let connect_timeout = call.args.integer(&["connect_timeout"], 5)?;
    if call.check_mode {
        return Ok(result([
            ("changed", Value::Bool(false)),
            ("skipped", Value::Bool(true)),
            ("msg", Value::from("check mode not supported for this module")),
        ]));
    }

    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(delay.max(0) as u64)).await;
    let deadline = Duration::from_secs(timeout.max(0) as u64);
    let connect_timeout = Duration::from_secs(connect_timeout.max(1) as u64);
    loop {
        let last_error = match attempt(call, connect_timeout).await {
            Ok(()) => break,
            Err(error) => error,
        };
        if started.elapsed() >= deadline {
            return Err(fail(format!("timed out waiting for ping module test: {last_error}")));
        }
        tokio::time::sleep(Duration::from_secs(sleep.max(1) as u64)).await;
    }
    let elapsed = started.elapsed().as_secs();
    Ok(result([("changed", Value::Bool(false)), ("elapsed", Value::from(elapsed))]))
}
