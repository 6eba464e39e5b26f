//! `service_facts`: the host's services as `ansible_facts.services`, from the SysV scripts that
//! `service --status-all` lists and from systemd's units and unit files, in one round trip.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::{Call, Outcome, fail, result};

/// systemd words that name a broken unit whatever its other columns say.
const BAD_STATES: &[&str] = &["not-found", "masked", "failed"];

/// One shell script, its parts split by RS characters: which service managers exist, then
/// `service --status-all` with its exit status, then `systemctl list-units` and
/// `list-unit-files` with theirs, then `NAME TAB RC TAB ActiveState=…` for each unit file
/// that `list-units` did not show.
pub const QUERY: &str = r#"PATH="$PATH:/sbin:/usr/sbin:/usr/local/sbin:/usr/local/bin"; LC_ALL=C; LANG=C; export LC_ALL LANG
for tool in service chkconfig initctl rc-status systemctl; do command -v "$tool" >/dev/null 2>&1 && printf '%s ' "$tool"; done
systemd=no
if command -v systemctl >/dev/null 2>&1; then
  if [ -e /run/systemd/system/ ] || [ -e /dev/.run/systemd/ ] || [ -e /dev/.systemd/ ] || grep -q systemd /proc/1/comm 2>/dev/null; then systemd=yes; fi
fi
printf '%s\036' "$systemd"
[ -d /etc/init.d ] && printf 'initd '
if command -v service >/dev/null 2>&1; then out=$(service --status-all 2>&1); printf '%s\n%s' "$?" "$out"; fi
printf '\036'
if [ "$systemd" = yes ]; then
  units=$(systemctl list-units --no-pager --type service --all --plain 2>&1); printf '%s\n%s' "$?" "$units"; printf '\036'
  files=$(systemctl list-unit-files --no-pager --type service --all 2>&1); printf '%s\n%s' "$?" "$files"; printf '\036'
  names=$(printf '%s\n' "$units" | grep -F .service | awk '{print $1}')
  printf '%s\n' "$files" | grep -F .service | while read -r name _; do
    printf '%s\n' "$names" | grep -qxF -- "$name" && continue
    shown=$(systemctl show "$name" --property=ActiveState 2>/dev/null); printf '%s\t%s\t%s\n' "$name" "$?" "$shown"
  done
fi
"#;

/// An `rc` line then the command's output.
fn status_and_text(part: &str) -> (i32, &str) {
    let (rc, text) = part.split_once('\n').unwrap_or((part, ""));
    (rc.trim().parse().unwrap_or(-1), text)
}

/// The services the query output describes, and the warnings ansible-core would give.
pub fn parse(text: &str) -> Result<(Map<String, Value>, Vec<String>), String> {
    let parts: Vec<&str> = text.split('\u{1e}').collect();
    let part = |index: usize| parts.get(index).copied().unwrap_or("");
    let (tools, systemd) = part(0).rsplit_once(' ').unwrap_or(("", part(0)));
    let tools: BTreeSet<&str> = tools.split_whitespace().collect();
    let mut services = Map::new();
    let mut warnings = Vec::new();

    if let Some(other) = ["chkconfig", "initctl", "rc-status"].iter().find(|t| tools.contains(*t)) {
        return Err(format!(
            "not supported yet: service_facts on a host with {other} (SysV through `service` \
             and systemd are)"
        ));
    }
    if tools.contains("service") {
        let sysv = part(1);
        let (has_initd, sysv) = match sysv.strip_prefix("initd ") {
            Some(rest) => (true, rest),
            None => (false, sysv),
        };
        let (rc, listing) = status_and_text(sysv);
        // `service` without /etc/init.d exits 4 on hosts that never had SysV scripts.
        if rc != 4 || has_initd {
            if rc != 0 {
                warnings
                    .push(format!("Unable to query 'service' tool ({rc}): {}", listing.trim_end()));
            }
            sysv_services(listing, &mut services);
        }
    }
    if systemd.trim() == "yes" {
        systemd_units(part(2), &mut services, &mut warnings);
        systemd_unit_files(part(3), part(4), &mut services, &mut warnings)?;
    }
    Ok((services, warnings))
}

/// `service --status-all` lines: ` [ + ]  name` (running) or ` [ - ]  name`.
fn sysv_services(listing: &str, services: &mut Map<String, Value>) {
    for line in listing.lines() {
        let Some(rest) = line.trim_start().strip_prefix("[ ") else { continue };
        let Some((mark, name)) = rest.split_once(" ]") else { continue };
        let name = name.trim_start();
        if !matches!(mark, "+" | "-") || name.is_empty() {
            continue;
        }
        let state = if mark == "+" { "running" } else { "stopped" };
        services.insert(name.into(), json!({"name": name, "state": state, "source": "sysv"}));
    }
}

fn systemd_units(part: &str, services: &mut Map<String, Value>, warnings: &mut Vec<String>) {
    let (rc, listing) = status_and_text(part);
    if rc != 0 {
        warnings.push(format!("Could not list units from systemd: {listing}"));
        return;
    }
    for line in listing.lines().filter(|line| line.contains(".service")) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 4 {
            continue;
        }
        let described = &fields[..fields.len() - 1];
        let status =
            BAD_STATES.iter().find(|bad| described.contains(bad)).copied().unwrap_or(fields[2]);
        let state = if fields[3] == "running" { "running" } else { "stopped" };
        let name = fields[0];
        services.insert(
            name.into(),
            json!({"name": name, "state": state, "status": status, "source": "systemd"}),
        );
    }
}

fn systemd_unit_files(
    part: &str,
    shown: &str,
    services: &mut Map<String, Value>,
    warnings: &mut Vec<String>,
) -> Result<(), String> {
    let (rc, listing) = status_and_text(part);
    if rc != 0 {
        warnings.push(format!("Could not get unit files data from systemd: {listing}"));
        return Ok(());
    }
    let active_states: Map<String, Value> = shown
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, '\t');
            let (name, rc, text) = (fields.next()?, fields.next()?, fields.next().unwrap_or(""));
            let state = match text.strip_prefix("ActiveState=") {
                Some(state) if rc == "0" && !state.trim().is_empty() => state.trim_end(),
                _ if rc == "0" && !text.is_empty() => text.trim_end(),
                _ => "unknown",
            };
            Some((name.to_string(), Value::from(state)))
        })
        .collect();
    for line in listing.lines().filter(|line| line.contains(".service")) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [name, status, ..] = fields[..] else {
            return Err(format!(
                "Malformed output discovered from systemd list-unit-files: {line}"
            ));
        };
        match services.get_mut(name) {
            None => {
                let state = active_states.get(name).cloned().unwrap_or(Value::from("unknown"));
                services.insert(
                    name.into(),
                    json!({"name": name, "state": state, "status": status, "source": "systemd"}),
                );
            }
            Some(service) => {
                let bad = service["status"].as_str().is_some_and(|s| BAD_STATES.contains(&s));
                if !bad {
                    service["status"] = Value::from(status);
                }
            }
        }
    }
    Ok(())
}

pub async fn run(call: &mut Call<'_>) -> Outcome {
    let script = format!("/bin/sh -c {}", crate::connection::quote(QUERY));
    let output = call.remote.run(&script).await?;
    let (services, warnings) = parse(&output.stdout_text()).map_err(fail)?;
    let mut outcome = if services.is_empty() {
        result([
            ("changed", Value::Bool(false)),
            ("skipped", Value::Bool(true)),
            (
                "msg",
                Value::from(
                    "Failed to find any services. This can be due to privileges or some other \
                     configuration issue.",
                ),
            ),
        ])
    } else {
        // Facts a module gathers go to ansible_facts, not among set_fact's variables.
        result([
            ("changed", Value::Bool(false)),
            ("ansible_facts", json!({ "services": services })),
            ("_bramble_gathered", Value::Bool(true)),
        ])
    };
    if !warnings.is_empty() {
        outcome.insert("warnings".into(), warnings.into_iter().map(Value::from).collect());
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNITS: &str = "0
cron.service                 loaded    active   running Regular background program processing daemon
getty@tty1.service           loaded    active   running Getty on tty1
nfs.service                  not-found inactive dead    nfs.service
ssh.service                  loaded    failed   failed  OpenBSD Secure Shell server
systemd-fsck-root.service    loaded    active   exited  File System Check on Root Device

LOAD   = Reflects whether the unit definition was properly loaded.
";

    const FILES: &str = "0
UNIT FILE                    STATE           PRESET
cron.service                 enabled         enabled
getty@.service               enabled         enabled
ssh.service                  enabled         enabled
rsync.service                disabled        enabled
systemd-fsck-root.service    enabled-runtime disabled

5 unit files listed.
";

    fn query_output(sysv: &str) -> String {
        let shown = "getty@.service\t1\t\nrsync.service\t0\tActiveState=inactive\n";
        format!("service systemctl yes\u{1e}initd {sysv}\u{1e}{UNITS}\u{1e}{FILES}\u{1e}{shown}")
    }

    #[test]
    fn units_then_unit_files_give_state_and_status() {
        let (services, warnings) =
            parse(&query_output("0\n [ + ]  cron\n [ - ]  rsync\n")).unwrap();
        assert!(warnings.is_empty());
        let expect = |name: &str, value: Value| assert_eq!(services[name], value, "{name}");
        expect("cron", json!({"name": "cron", "state": "running", "source": "sysv"}));
        expect("rsync", json!({"name": "rsync", "state": "stopped", "source": "sysv"}));
        expect(
            "cron.service",
            json!({"name": "cron.service", "state": "running", "status": "enabled", "source": "systemd"}),
        );
        expect(
            "ssh.service",
            json!({"name": "ssh.service", "state": "stopped", "status": "failed", "source": "systemd"}),
        );
        expect(
            "nfs.service",
            json!({"name": "nfs.service", "state": "stopped", "status": "not-found", "source": "systemd"}),
        );
        expect(
            "systemd-fsck-root.service",
            json!({"name": "systemd-fsck-root.service", "state": "stopped", "status": "enabled-runtime", "source": "systemd"}),
        );
        expect(
            "getty@.service",
            json!({"name": "getty@.service", "state": "unknown", "status": "enabled", "source": "systemd"}),
        );
        expect(
            "rsync.service",
            json!({"name": "rsync.service", "state": "inactive", "status": "disabled", "source": "systemd"}),
        );
        assert_eq!(services.len(), 9);
    }

    #[test]
    fn a_failing_service_tool_warns() {
        let (_, warnings) = parse(&query_output("1\noops\n")).unwrap();
        assert_eq!(warnings, ["Unable to query 'service' tool (1): oops"]);
    }

    #[test]
    fn other_init_systems_are_not_supported_yet() {
        let error = parse("chkconfig systemctl yes\u{1e}\u{1e}").unwrap_err();
        assert!(error.starts_with("not supported yet: service_facts"), "{error}");
        assert_eq!(parse("no\u{1e}\u{1e}").unwrap().0.len(), 0);
    }
}
