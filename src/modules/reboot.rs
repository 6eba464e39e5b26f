//! `reboot`: restart the host and wait until it is back: the boot id must change, then the
//! test command must answer, each over a freshly opened connection that the executor keeps
//! for the tasks after.

use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::{Call, Failure, Outcome, Remote, result};
use crate::connection::{quote, quote_all};

const DEFAULT_SEARCH_PATHS: &[&str] =
    &["/sbin", "/bin", "/usr/sbin", "/usr/bin", "/usr/local/sbin"];
const DEFAULT_BOOT_TIME_COMMAND: &str = "cat /proc/sys/kernel/random/boot_id";

/// The reboot's settings, as ansible-core's action reads them (the `_sec` spellings too).
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub reboot_timeout: u64,
    pub connect_timeout: Option<u64>,
    pub pre_reboot_delay: u64,
    pub post_reboot_delay: u64,
    pub message: String,
    pub test_command: String,
    pub boot_time_command: String,
    pub search_paths: Vec<String>,
    pub reboot_command: Option<String>,
}

fn settings(call: &Call<'_>) -> Result<Settings, Failure> {
    let number = |names: &[&str], default: i64| call.args.integer(names, default);
    let connect_timeout = match call.args.value(&["connect_timeout", "connect_timeout_sec"]) {
        None => None,
        Some(_) => Some(number(&["connect_timeout", "connect_timeout_sec"], 0)?.max(0) as u64),
    };
    let search_paths = match call.args.value(&["search_paths"]) {
        None => DEFAULT_SEARCH_PATHS.iter().map(|path| path.to_string()).collect(),
        Some(_) => call.args.list(&["search_paths"]),
    };
    Ok(Settings {
        reboot_timeout: number(&["reboot_timeout", "reboot_timeout_sec"], 600)?.max(0) as u64,
        connect_timeout: connect_timeout.filter(|seconds| *seconds > 0),
        pre_reboot_delay: number(&["pre_reboot_delay", "pre_reboot_delay_sec"], 0)?.max(0) as u64,
        post_reboot_delay: number(&["post_reboot_delay", "post_reboot_delay_sec"], 0)?.max(0)
            as u64,
        message: call.args.string(&["msg"]).unwrap_or_else(|| "Reboot initiated by Ansible".into()),
        test_command: call.args.string(&["test_command"]).unwrap_or_else(|| "whoami".into()),
        boot_time_command: call
            .args
            .string(&["boot_time_command"])
            .filter(|command| !command.is_empty())
            .unwrap_or_else(|| DEFAULT_BOOT_TIME_COMMAND.into()),
        search_paths,
        reboot_command: call.args.string(&["reboot_command"]),
    })
}

/// One script for the state before the reboot: the kernel and distribution, the boot id
/// (the command's output after its exit status), and where the shutdown command lives.
pub fn query_command(settings: &Settings) -> String {
    let mut programs = vec![match &settings.reboot_command {
        Some(command) => command.split(' ').next().unwrap_or("").to_string(),
        None => "shutdown".to_string(),
    }];
    // Alpine reboots with `reboot`; which distribution this is comes back with the answer.
    if settings.reboot_command.is_none() {
        programs.push("reboot".into());
    }
    let candidates: Vec<String> = programs
        .iter()
        .filter(|program| !program.starts_with('/'))
        .flat_map(|program| {
            settings.search_paths.iter().map(move |path| format!("{path}/{program}"))
        })
        .collect();
    format!(
        "uname -s; . /etc/os-release 2>/dev/null; echo \"${{ID:-}}\"; printf '\\036'; \
         for f in {candidates}; do [ -e \"$f\" ] && echo \"$f\"; done; \
         printf '\\036'; out=$( {boot} 2>&1 ); printf '%s\\n%s' \"$?\" \"$out\"",
        candidates = if candidates.is_empty() { "''".to_string() } else { quote_all(&candidates) },
        boot = settings.boot_time_command,
    )
}

/// What the query found.
#[derive(Debug, Default, PartialEq)]
pub struct Facts {
    pub system: String,
    pub distribution: String,
    pub found: Vec<String>,
    pub boot_rc: i32,
    pub boot_id: String,
}

pub fn parse_facts(text: &str) -> Facts {
    let parts: Vec<&str> = text.split('\u{1e}').collect();
    let part = |index: usize| parts.get(index).copied().unwrap_or("");
    let mut head = part(0).lines();
    let (rc, output) = part(2).split_once('\n').unwrap_or((part(2), ""));
    Facts {
        system: head.next().unwrap_or("").trim().to_string(),
        distribution: head.next().unwrap_or("").trim().to_lowercase(),
        found: part(1).lines().map(str::to_string).collect(),
        boot_rc: rc.trim().parse().unwrap_or(-1),
        boot_id: output.trim().to_string(),
    }
}

/// The command that reboots: `shutdown -r MINUTES "MESSAGE"` as ansible-core words it for
/// Linux (Alpine's `reboot` takes no arguments), or the given `reboot_command`.
pub fn reboot_command(settings: &Settings, facts: &Facts) -> Result<String, String> {
    if facts.system != "Linux" {
        return Err(format!("not supported yet: reboot on {} (Linux only)", facts.system));
    }
    let alpine = facts.distribution == "alpine" && settings.reboot_command.is_none();
    let program = match &settings.reboot_command {
        Some(command) => command.split(' ').next().unwrap_or("").to_string(),
        None if alpine => "reboot".to_string(),
        None => "shutdown".to_string(),
    };
    let path = if program.starts_with('/') {
        program.clone()
    } else {
        let suffix = format!("/{program}");
        let found = facts.found.iter().find(|path| path.ends_with(&suffix));
        let Some(found) = found else {
            let paths: Vec<String> =
                settings.search_paths.iter().map(|path| format!("'{path}'")).collect();
            return Err(format!(
                "Unable to find command \"{program}\" in search paths: [{}]",
                paths.join(", ")
            ));
        };
        found.clone()
    };
    // A given reboot_command is shell text, its arguments as the user wrote them.
    if let Some(command) = &settings.reboot_command {
        let arguments = command.split_once(' ').map(|(_, rest)| rest).unwrap_or("");
        return Ok(format!("{} {arguments}", quote(&path)).trim_end().to_string());
    }
    if alpine {
        return Ok(quote(&path));
    }
    let minutes = (settings.pre_reboot_delay / 60).to_string();
    Ok(quote_all(&[path, "-r".into(), minutes, settings.message.clone()]))
}

/// ansible-core's wait between attempts: 2^n seconds and a random fraction, at most 12 s.
fn backoff(attempt: u32) -> Duration {
    let fraction = u64::from(std::process::id().wrapping_mul(attempt + 7) % 1000);
    let seconds = 2u64.saturating_pow(attempt).min(12);
    Duration::from_secs(seconds) + Duration::from_millis(fraction)
}

fn outcome(changed: bool, rebooted: bool, started: Instant) -> Map<String, Value> {
    result([
        ("changed", Value::Bool(changed)),
        ("elapsed", Value::from(started.elapsed().as_secs())),
        ("rebooted", Value::Bool(rebooted)),
    ])
}

fn failed(mut result: Map<String, Value>, message: String) -> Failure {
    result.insert("failed".into(), Value::Bool(true));
    result.insert("msg".into(), Value::from(message));
    Failure::Failed(result)
}

/// Why one attempt did not succeed, in a line.
fn reason(failure: &Failure) -> String {
    match failure {
        Failure::Unreachable(message) => message.clone(),
        Failure::Failed(result) => {
            result.get("msg").and_then(Value::as_str).unwrap_or("failed").to_string()
        }
    }
}

/// Runs `attempt` over a fresh connection until it succeeds or `timeout` has passed; the
/// last error when it never did.
async fn until_success<F, Fut>(
    remote: &Remote,
    timeout: u64,
    connect_timeout: Option<Duration>,
    mut attempt: F,
) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), Failure>>,
{
    let deadline = Instant::now() + Duration::from_secs(timeout);
    let mut failures = 0;
    let mut last = String::new();
    // A session opened just before the host went down can hang; each try is bounded.
    let bound = connect_timeout.unwrap_or(Duration::from_secs(10)) * 3;
    while Instant::now() < deadline {
        let tried = async {
            remote.reconnect(connect_timeout).await?;
            attempt().await
        };
        match tokio::time::timeout(bound, tried).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(failure)) => last = reason(&failure),
            Err(_) => last = format!("no answer within {} s", bound.as_secs()),
        }
        tracing::debug!("reboot: attempt {failures} failed: {last}");
        tokio::time::sleep(backoff(failures)).await;
        failures += 1;
    }
    Err(last)
}

pub async fn run(call: &mut Call<'_>) -> Outcome {
    let settings = settings(call)?;
    let started = Instant::now();
    if call.remote.is_local() {
        let message = "Running reboot with local connection would reboot the control node.";
        return Err(failed(outcome(false, false, started), message.into()));
    }
    if call.check_mode {
        return Ok(result([
            ("changed", Value::Bool(true)),
            ("elapsed", Value::from(0)),
            ("rebooted", Value::Bool(true)),
        ]));
    }
    if !call.remote.reconnectable() {
        let message = "not supported yet: reboot over a chroot connection";
        return Err(failed(outcome(false, false, started), message.into()));
    }

    // Query: the system, the shutdown command and the boot id, in one command.
    let output = call.remote.run(&query_command(&settings)).await?;
    let facts = parse_facts(&output.stdout_text());
    if facts.boot_rc != 0 {
        let message = format!(
            "reboot: failed to get host boot time info, rc: {}, stdout: {}, stderr: ",
            facts.boot_rc, facts.boot_id
        );
        return Err(failed(outcome(false, false, started), message));
    }
    let command = reboot_command(&settings, &facts)
        .map_err(|message| failed(outcome(false, false, started), message))?;

    // Reboot. The session may break before the command reports back; that is a reboot too.
    let started = Instant::now();
    match call.remote.run(&command).await {
        Ok(output) if output.rc != 0 => {
            let message = format!(
                "Reboot command failed. Error was: '{}, {}'",
                output.stdout_text().trim(),
                output.stderr_text().trim()
            );
            return Err(failed(outcome(false, false, started), message));
        }
        Ok(_) | Err(Failure::Unreachable(_)) => {}
        Err(failure) => return Err(failure),
    }
    tokio::time::sleep(Duration::from_secs(settings.post_reboot_delay)).await;

    // Wait for a new boot id, then for the test command, each on fresh connections; the
    // second wait is back on the host's own connection timeout, as in ansible-core.
    let remote = call.remote;
    let connect_timeout = settings.connect_timeout.map(Duration::from_secs);
    let boot_changed = until_success(remote, settings.reboot_timeout, connect_timeout, || {
        let command = settings.boot_time_command.clone();
        let previous = facts.boot_id.clone();
        async move {
            let output = remote.run(&command).await?;
            let current = output.stdout_text().trim().to_string();
            if output.rc != 0 || current.is_empty() || current == previous {
                return Err(super::fail("boot time has not changed"));
            }
            Ok(())
        }
    });
    if let Err(last) = boot_changed.await {
        tracing::debug!("reboot: last error before the timeout: {last}");
        let message = format!(
            "Timed out waiting for last boot time check (timeout={})",
            settings.reboot_timeout
        );
        return Err(failed(outcome(false, true, started), message));
    }
    let tested = until_success(remote, settings.reboot_timeout, None, || {
        let command = settings.test_command.clone();
        async move {
            let output = remote.run(&command).await?;
            if output.rc != 0 {
                let message = format!(
                    "Test command failed: {} {}",
                    output.stderr_text(),
                    output.stdout_text()
                );
                return Err(super::fail(message));
            }
            Ok(())
        }
    });
    if let Err(last) = tested.await {
        tracing::debug!("reboot: last error before the timeout: {last}");
        let message = format!(
            "Timed out waiting for post-reboot test command (timeout={})",
            settings.reboot_timeout
        );
        return Err(failed(outcome(false, true, started), message));
    }
    Ok(outcome(true, true, started))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Settings {
        Settings {
            reboot_timeout: 600,
            connect_timeout: None,
            pre_reboot_delay: 0,
            post_reboot_delay: 0,
            message: "Reboot initiated by Ansible".into(),
            test_command: "whoami".into(),
            boot_time_command: DEFAULT_BOOT_TIME_COMMAND.into(),
            search_paths: DEFAULT_SEARCH_PATHS.iter().map(|path| path.to_string()).collect(),
            reboot_command: None,
        }
    }

    fn debian() -> Facts {
        parse_facts(
            "Linux\ndebian\n\u{1e}/usr/sbin/shutdown\n/usr/bin/shutdown\n\u{1e}0\n5c8f-aa\n",
        )
    }

    #[test]
    fn the_query_gives_system_shutdown_path_and_boot_id() {
        let facts = debian();
        assert_eq!(facts.system, "Linux");
        assert_eq!(facts.distribution, "debian");
        assert_eq!(facts.found, ["/usr/sbin/shutdown", "/usr/bin/shutdown"]);
        assert_eq!((facts.boot_rc, facts.boot_id.as_str()), (0, "5c8f-aa"));
        let query = query_command(&defaults());
        assert!(query.contains("for f in /sbin/shutdown /bin/shutdown "), "{query}");
        assert!(query.ends_with(
            "out=$( cat /proc/sys/kernel/random/boot_id 2>&1 ); printf '%s\\n%s' \"$?\" \"$out\""
        ));
    }

    #[test]
    fn shutdown_takes_whole_minutes_and_the_quoted_message() {
        let mut settings = defaults();
        settings.pre_reboot_delay = 150;
        settings.message = "it's time".into();
        assert_eq!(
            reboot_command(&settings, &debian()).unwrap(),
            "/usr/sbin/shutdown -r 2 'it'\"'\"'s time'"
        );
    }

    #[test]
    fn a_given_reboot_command_keeps_its_arguments() {
        let mut settings = defaults();
        settings.reboot_command = Some("systemctl reboot --no-wall".into());
        let facts = parse_facts("Linux\ndebian\n\u{1e}/usr/bin/systemctl\n\u{1e}0\nid\n");
        assert_eq!(
            reboot_command(&settings, &facts).unwrap(),
            "/usr/bin/systemctl reboot --no-wall"
        );
        let missing = parse_facts("Linux\ndebian\n\u{1e}\u{1e}0\nid\n");
        assert_eq!(
            reboot_command(&settings, &missing).unwrap_err(),
            "Unable to find command \"systemctl\" in search paths: ['/sbin', '/bin', '/usr/sbin', '/usr/bin', '/usr/local/sbin']"
        );
        let bsd = parse_facts("FreeBSD\n\n\u{1e}\u{1e}0\nid\n");
        assert!(reboot_command(&defaults(), &bsd).unwrap_err().starts_with("not supported yet"));
    }

    #[test]
    fn backoff_grows_to_twelve_seconds() {
        assert!(backoff(0) < Duration::from_secs(2));
        assert!(backoff(3) >= Duration::from_secs(8));
        assert!(backoff(10) < Duration::from_secs(13));
    }
}
