//! `systemd_service` (also `systemd`, `service`): unit state, enablement, masking, daemon-reload.

use serde_json::{Map, Value};

use super::{Call, Failure, Outcome, fail, result};
use crate::connection::quote;

const PROPERTIES: &str = "Id,LoadState,ActiveState,SubState,UnitFileState,Description,MainPID";

/// Parses `systemctl show` output into its properties.
pub fn parse_show(text: &str) -> Map<String, Value> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.to_string(), Value::from(value)))
        .collect()
}

/// What has to happen to reach the asked `state` from the current ActiveState.
pub fn state_action(state: &str, active_state: &str) -> Option<&'static str> {
    let running = matches!(active_state, "active" | "activating" | "reloading");
    match state {
        "started" if !running => Some("start"),
        "stopped" if running => Some("stop"),
        "restarted" => Some("restart"),
        "reloaded" => Some(if running { "reload" } else { "start" }),
        _ => None,
    }
}

pub async fn run(call: &mut Call<'_>) -> Outcome {
    let scope = call
        .args
        .choice(&["scope"], &["system", "user", "global"], Some("system"))?
        .unwrap_or_default();
    let systemctl =
        if scope == "system" { "systemctl".to_string() } else { format!("systemctl --{scope}") };
    let state =
        call.args.choice(&["state"], &["started", "stopped", "restarted", "reloaded"], None)?;
    let enabled = call.args.maybe_flag(&["enabled"])?;
    let masked = call.args.maybe_flag(&["masked"])?;
    let name = call.args.string(&["name"]);
    let no_block = if call.args.flag(&["no_block"], false)? { " --no-block" } else { "" };

    if call.args.flag(&["daemon_reexec"], false)? && !call.check_mode {
        call.remote.check(&format!("{systemctl} daemon-reexec"), "systemctl daemon-reexec").await?;
    }
    let reload_warning = if call.args.flag(&["daemon_reload"], false)? && !call.check_mode {
        daemon_reload(call, &systemctl).await?
    } else {
        None
    };
    let Some(name) = name else {
        if state.is_some() || enabled.is_some() || masked.is_some() {
            return Err(fail("missing required arguments: name"));
        }
        return Ok(with_warning(result([("changed", Value::Bool(false))]), reload_warning));
    };
    let outcome = manage(call, &systemctl, &name, state, enabled, masked, no_block).await?;
    Ok(with_warning(outcome, reload_warning))
}

/// `systemctl daemon-reload`. As in ansible-core, a failure in a chroot (an image being
/// baked, where no systemd runs) or with `SYSTEMD_OFFLINE=1` is a warning, not an error:
/// the units are read at the next boot anyway.
async fn daemon_reload(call: &Call<'_>, systemctl: &str) -> Result<Option<String>, Failure> {
    let output = call.remote.run(&format!("{systemctl} daemon-reload")).await?;
    if output.rc == 0 {
        return Ok(None);
    }
    let error = output.stderr_text();
    let test =
        format!("{}[ \"${{SYSTEMD_OFFLINE:-}}\" = 1 ] || is_chroot", super::setup::IS_CHROOT);
    let offline = call.remote.run(&test).await?.rc == 0;
    if !offline {
        return Err(fail(format!("failure {} during daemon-reload: {error}", output.rc)));
    }
    Ok(Some(format!(
        "daemon-reload failed, but target is a chroot or systemd is offline. Continuing. \
         Error was: {} / {error}",
        output.rc
    )))
}

/// Adds `warning` to the result's `warnings`.
fn with_warning(mut outcome: Map<String, Value>, warning: Option<String>) -> Map<String, Value> {
    if let Some(warning) = warning {
        let warnings = outcome.entry("warnings").or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = warnings {
            list.insert(0, Value::from(warning));
        }
    }
    outcome
}

/// The unit's mask, enablement and state, brought to what was asked.
async fn manage(
    call: &Call<'_>,
    systemctl: &str,
    name: &str,
    state: Option<String>,
    enabled: Option<bool>,
    masked: Option<bool>,
    no_block: &str,
) -> Outcome {
    let name = name.to_string();
    let unit = quote(&name);
    let status = match show(call, systemctl, &unit).await {
        Ok(status) if status.contains_key("LoadState") => status,
        // Checked only when show gives nothing, so a booted host pays no extra round trip.
        _ if !systemd_running(call).await? => {
            return run_offline(call, systemctl, &name, state.as_deref(), enabled, masked).await;
        }
        shown => shown?,
    };
    let text = |key: &str| status.get(key).and_then(Value::as_str).unwrap_or("").to_string();
    let mut outcome = result([("name", Value::from(name.clone()))]);
    let mut changed = false;

    if let Some(masked) = masked {
        let is_masked = text("UnitFileState") == "masked" || text("LoadState") == "masked";
        if masked != is_masked {
            changed = true;
            run_unless_check(
                call,
                &format!("{systemctl} {} {unit}", if masked { "mask" } else { "unmask" }),
            )
            .await?;
        }
    }
    if text("LoadState") == "not-found"
        && (state.is_some() || enabled.is_some())
        && !(call.check_mode && changed)
    {
        return Err(fail(format!("Could not find the requested service {name}: host")));
    }
    if let Some(enabled) = enabled {
        // `systemctl show`'s UnitFileState is what `is-enabled` prints, without a round trip.
        let current = text("UnitFileState");
        let is_enabled = matches!(
            current.as_str(),
            "enabled" | "enabled-runtime" | "static" | "alias" | "indirect" | "generated"
        );
        if enabled != is_enabled {
            changed = true;
            run_unless_check(
                call,
                &format!("{systemctl} {} {unit}", if enabled { "enable" } else { "disable" }),
            )
            .await?;
        }
        outcome.insert("enabled".into(), Value::Bool(enabled));
    }
    if let Some(state) = &state {
        if let Some(action) = state_action(state, &text("ActiveState")) {
            changed = true;
            run_unless_check(call, &format!("{systemctl}{no_block} {action} {unit}")).await?;
        }
        let reported = if state == "stopped" { "stopped" } else { "started" };
        outcome.insert("state".into(), Value::from(reported));
    }

    let status =
        if changed && !call.check_mode { show(call, systemctl, &unit).await? } else { status };
    outcome.insert("status".into(), Value::Object(status));
    outcome.insert("changed".into(), Value::Bool(changed));
    Ok(outcome)
}

/// Whether systemd runs on the host, as `sd_booted()` decides it.
async fn systemd_running(call: &Call<'_>) -> Result<bool, Failure> {
    Ok(call.remote.run("test -d /run/systemd/system").await?.rc == 0)
}

/// Without a running systemd (a chroot, such as an image being baked), unit files can still
/// be enabled, disabled and masked, but nothing can start: a requested state is left to the
/// next boot and reported in the result's warnings rather than as a failure.
async fn run_offline(
    call: &Call<'_>,
    systemctl: &str,
    name: &str,
    state: Option<&str>,
    enabled: Option<bool>,
    masked: Option<bool>,
) -> Outcome {
    let unit = quote(name);
    let probe = call.remote.run(&format!("{systemctl} is-enabled {unit}")).await?;
    let current = probe.stdout_text().trim().to_string();
    if current.is_empty() || current == "not-found" {
        return Err(fail(format!("Could not find the requested service {name}: host")));
    }
    let mut outcome = result([("name", Value::from(name))]);
    let mut changed = false;
    if let Some(masked) = masked
        && masked != (current == "masked")
    {
        changed = true;
        let verb = if masked { "mask" } else { "unmask" };
        run_unless_check(call, &format!("{systemctl} {verb} {unit}")).await?;
    }
    if let Some(enabled) = enabled {
        let is_enabled = matches!(current.as_str(), "enabled" | "static" | "alias" | "indirect");
        if enabled != is_enabled {
            changed = true;
            let verb = if enabled { "enable" } else { "disable" };
            run_unless_check(call, &format!("{systemctl} {verb} {unit}")).await?;
        }
        outcome.insert("enabled".into(), Value::Bool(enabled));
    }
    if let Some(state) = state {
        let reported = if state == "stopped" { "stopped" } else { "started" };
        outcome.insert("state".into(), Value::from(reported));
        if reported == "started" {
            let note = format!("systemd is not running here: {name} starts at the next boot");
            outcome.insert("warnings".into(), Value::from(vec![Value::from(note)]));
        }
    }
    outcome.insert("changed".into(), Value::Bool(changed));
    Ok(outcome)
}

async fn show(call: &Call<'_>, systemctl: &str, unit: &str) -> Result<Map<String, Value>, Failure> {
    let output = call
        .remote
        .run(&format!("{systemctl} show {unit} --property={PROPERTIES} --no-pager"))
        .await?;
    if output.rc != 0 {
        let stderr = output.stderr_text();
        let reason = if stderr.contains("not been booted with systemd")
            || stderr.contains("System has not been booted")
        {
            "systemd is not running on this host (is it a container or chroot?)".to_string()
        } else {
            stderr.trim().to_string()
        };
        return Err(fail(format!("failed to query the unit: {reason}")));
    }
    Ok(parse_show(&output.stdout_text()))
}

async fn run_unless_check(call: &Call<'_>, command: &str) -> Result<(), Failure> {
    if call.check_mode {
        return Ok(());
    }
    let output = call.remote.run(command).await?;
    if output.rc != 0 {
        return Err(fail(format!("Unable to {command}: {}", output.stderr_text().trim())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn started_only_when_not_running() {
        assert_eq!(state_action("started", "inactive"), Some("start"));
        assert_eq!(state_action("started", "active"), None);
        assert_eq!(state_action("stopped", "active"), Some("stop"));
        assert_eq!(state_action("restarted", "active"), Some("restart"));
        assert_eq!(state_action("reloaded", "inactive"), Some("start"));
    }

    #[test]
    fn show_output() {
        let status =
            parse_show("Id=node_exporter.service\nActiveState=active\nUnitFileState=enabled\n");
        assert_eq!(status["ActiveState"], "active");
    }
}
