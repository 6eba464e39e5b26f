//! `pause`: wait a number of seconds or minutes on the controller.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Call, Outcome, fail, result};

/// The pause in seconds, and the unit Ansible reports it in.
pub fn duration(minutes: Option<i64>, seconds: Option<i64>) -> Option<(i64, &'static str)> {
    match (minutes, seconds) {
        (Some(minutes), _) => Some(((minutes * 60).max(1), "minutes")),
        (None, Some(seconds)) => Some((seconds.max(1), "seconds")),
        (None, None) => None,
    }
}

fn optional_integer(call: &Call<'_>, name: &str) -> Result<Option<i64>, super::Failure> {
    match call.args.value(&[name]) {
        None => Ok(None),
        Some(_) => call.args.integer(&[name], 0).map(Some),
    }
}

pub async fn run(call: &mut Call<'_>) -> Outcome {
    let minutes = optional_integer(call, "minutes")?;
    let seconds = optional_integer(call, "seconds")?;
    if minutes.is_some() && seconds.is_some() {
        return Err(fail("parameters are mutually exclusive: minutes|seconds"));
    }
    let Some((wait, unit)) = duration(minutes, seconds) else {
        return Err(fail(
            "not supported yet: pause without seconds or minutes (waiting for a key press needs a TTY)",
        ));
    };
    let echo = call.args.flag(&["echo"], true)?;

    let start = now();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(wait as u64)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let shown = if unit == "minutes" { elapsed / 60.0 } else { elapsed };
    Ok(result([
        ("changed", Value::Bool(false)),
        ("rc", Value::from(0)),
        ("stderr", Value::from("")),
        ("stdout", Value::from(format!("Paused for {} {unit}", python_round(shown)))),
        ("start", Value::from(start)),
        ("stop", Value::from(now())),
        ("delta", Value::from(elapsed as i64)),
        ("user_input", Value::from("")),
        ("echo", Value::Bool(echo)),
    ]))
}

/// `round(x, 2)` printed as Python prints a float.
fn python_round(value: f64) -> String {
    let rounded = (value * 100.0).round() / 100.0;
    if rounded.fract() == 0.0 { format!("{rounded:.1}") } else { format!("{rounded}") }
}

fn now() -> String {
    chrono::Local::now().format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_units() {
        assert_eq!(duration(Some(2), None), Some((120, "minutes")));
        assert_eq!(duration(None, Some(0)), Some((1, "seconds")));
        assert_eq!(duration(None, None), None);
        assert_eq!(python_round(1.0), "1.0");
        assert_eq!(python_round(1.004), "1.0");
        assert_eq!(python_round(0.0167), "0.02");
    }
}
