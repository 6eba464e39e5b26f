//! `wait_for_connection`: retry a trivial command on the host until it answers or time runs
//! out.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Call, Failure, Outcome, fail, result};

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
    loop {
        let attempt = tokio::time::timeout(
            Duration::from_secs(connect_timeout.max(1) as u64),
            call.remote.run("echo ping"),
        )
        .await;
        let last_error = match attempt {
            Ok(Ok(output)) if output.rc == 0 => break,
            Ok(Ok(output)) => output.stderr_text().trim().to_string(),
            Ok(Err(Failure::Unreachable(error))) => error,
            Ok(Err(Failure::Failed(result))) => {
                result.get("msg").and_then(Value::as_str).unwrap_or("").to_string()
            }
            Err(_) => format!("no answer within {connect_timeout} seconds"),
        };
        if started.elapsed() >= deadline {
            return Err(fail(format!("timed out waiting for ping module test: {last_error}")));
        }
        tokio::time::sleep(Duration::from_secs(sleep.max(1) as u64)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(result([("changed", Value::Bool(false)), ("elapsed", Value::from(elapsed as i64))]))
}
