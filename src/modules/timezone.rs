//! `community.general.timezone`: the zone and the hardware clock's mode, through timedatectl
//! where it works (a running systemd) and otherwise through Debian's files (/etc/timezone,
//! the /etc/localtime link, /etc/default/rcS, hwclock), as a chroot such as a bake has them.

use base64::Engine;
use serde_json::{Map, Value};

use super::{Call, Failure, Outcome, fail, result};
use crate::connection::quote;

const ZONEINFO: &str = "/usr/share/zoneinfo";

/// The settings in the order Ansible visits them: hwclock, then name.
const KEYS: &[&str] = &["hwclock", "name"];

/// What one query found on the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// `timedatectl status` when timedatectl works, with its path.
    pub timedatectl: Option<(String, String)>,
    /// Where each needed command is (`cp`, `ln`, `hwclock`, `dpkg-reconfigure`).
    pub commands: Vec<(String, String)>,
    /// The directories searched, for the message naming a missing command.
    pub search_path: String,
    pub zone_file_exists: bool,
    pub timezone_file: Option<String>,
    pub rcs_file: Option<String>,
    pub adjtime_file: Option<String>,
    /// /etc/localtime: `link TARGET`, `broken TARGET`, `same` or `differs`.
    pub localtime: String,
}

impl Facts {
    fn command(&self, name: &str) -> Option<&str> {
        self.commands.iter().find(|(command, _)| command == name).map(|(_, path)| path.as_str())
    }

    fn require(&self, name: &str) -> Result<&str, Failure> {
        self.command(name).ok_or_else(|| {
            fail(format!(
                "Failed to find required executable \"{name}\" in paths: {}",
                self.search_path
            ))
        })
    }
}

/// The query: timedatectl's status if it works, else the files and commands the Debian way
/// needs, each file as `NAME BASE64` or `NAME absent`.
pub fn query_command(zone: Option<&str>) -> String {
    let zone_file = quote(&format!("{ZONEINFO}/{}", zone.unwrap_or("UTC")));
    format!(
        "p=$PATH; for d in /sbin /usr/sbin /usr/local/sbin; do case \":$p:\" in *\":$d:\"*) ;; \
         *) [ -e \"$d\" ] && p=\"$p:$d\";; esac; done; echo \"search $p\"; \
         for c in timedatectl cp ln hwclock dpkg-reconfigure; do \
         w=$(PATH=$p command -v \"$c\") && echo \"command $c $w\"; done; \
         if w=$(PATH=$p command -v timedatectl) && \"$w\" >/dev/null 2>&1; then \
         echo \"status $(\"$w\" status | base64 -w0)\"; fi; \
         [ -f {zone_file} ] && echo zonefile; \
         for f in timezone:/etc/timezone rcs:/etc/default/rcS adjtime:/etc/adjtime; do \
         if [ -f \"${{f#*:}}\" ]; then echo \"${{f%%:*}} $(base64 -w0 < \"${{f#*:}}\")\"; \
         else echo \"${{f%%:*}} absent\"; fi; done; \
         if [ -L /etc/localtime ]; then if [ -e /etc/localtime ]; then printf 'localtime link '; \
         else printf 'localtime broken '; fi; readlink /etc/localtime; \
         elif cmp -s /etc/localtime {zone_file}; then echo 'localtime same'; \
         else echo 'localtime differs'; fi"
    )
}

pub fn parse_query(text: &str) -> Facts {
    let mut facts = Facts::default();
    let decode = |data: &str| {
        let bytes =
            base64::engine::general_purpose::STANDARD.decode(data.trim()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    let file = |data: &str| (data != "absent").then(|| decode(data));
    let mut status = None;
    for line in text.lines() {
        let (name, rest) = line.split_once(' ').unwrap_or((line, ""));
        match name {
            "search" => facts.search_path = rest.to_string(),
            "command" => {
                if let Some((command, path)) = rest.split_once(' ') {
                    facts.commands.push((command.to_string(), path.to_string()));
                }
            }
            "status" => status = Some(decode(rest)),
            "zonefile" => facts.zone_file_exists = true,
            "timezone" => facts.timezone_file = file(rest),
            "rcs" => facts.rcs_file = file(rest),
            "adjtime" => facts.adjtime_file = file(rest),
            "localtime" => facts.localtime = rest.to_string(),
            _ => {}
        }
    }
    if let (Some(status), Some(path)) = (status, facts.command("timedatectl")) {
        facts.timedatectl = Some((path.to_string(), status));
    }
    facts
}

/// The first capture of `pattern` (multi-line) in `text`.
fn capture(pattern: &str, text: &str) -> Option<String> {
    let pattern = regex::Regex::new(&format!("(?m){pattern}")).ok()?;
    pattern.captures(text).and_then(|found| found.get(1)).map(|m| m.as_str().to_string())
}

fn truthy(value: &str) -> bool {
    matches!(value.to_lowercase().as_str(), "yes" | "on" | "1" | "true" | "y" | "t")
}

const RCS_UTC: &str = r"^UTC\s*=\s*(\S+)";
const TIMEZONE_LINE: &str = r"^(\S+)";

/// A setting as timedatectl reports it.
pub fn systemd_value(key: &str, status: &str) -> Result<String, Failure> {
    let pattern = if key == "hwclock" {
        r"^\s*RTC in local TZ\s*:\s*(\S+)"
    } else {
        r"^\s*Time ?zone\s*:\s*(\S+)"
    };
    let value = capture(pattern, status)
        .ok_or_else(|| fail(format!("timedatectl status does not say the {key}")))?;
    if key == "hwclock" {
        return Ok(if truthy(&value) { "local" } else { "UTC" }.into());
    }
    Ok(value)
}

/// A setting as Debian's files show it; `after` makes an unreadable /etc/timezone an error.
pub fn files_value(
    key: &str,
    planned: &str,
    facts: &Facts,
    after: bool,
) -> Result<String, Failure> {
    if key == "hwclock" {
        let value = match facts.rcs_file.as_deref().and_then(|text| capture(RCS_UTC, text)) {
            None => "n/a".to_string(),
            Some(flag) => if truthy(&flag) { "UTC" } else { "local" }.to_string(),
        };
        if value != planned {
            return Ok(value);
        }
        let adjtime =
            facts.adjtime_file.as_deref().and_then(|text| capture(r"^(UTC|LOCAL)$", text));
        return Ok(match adjtime.as_deref() {
            Some("LOCAL") => "local".into(),
            _ => "UTC".into(),
        });
    }
    let value = match facts.timezone_file.as_deref() {
        None => return Ok("n/a".into()),
        Some(text) => match capture(TIMEZONE_LINE, text) {
            Some(value) => value,
            None if after => {
                return Err(tz_abort(
                    "tried to configure name using a file \"/etc/timezone\", but could not find a valid value in it",
                    &[],
                ));
            }
            None => return Ok("n/a".into()),
        },
    };
    if value != planned {
        return Ok(value);
    }
    let (kind, target) = facts.localtime.split_once(' ').unwrap_or((&facts.localtime, ""));
    Ok(match kind {
        "link" => match link_zone(target) {
            Some(zone) => zone,
            None => "n/a".into(),
        },
        "same" => value,
        _ => "n/a".into(),
    })
}

/// The zone a /etc/localtime link points into, as the part after `…/zoneinfo/`.
fn link_zone(target: &str) -> Option<String> {
    let found = ["/usr/share/zoneinfo/", "/etc/zoneinfo/"]
        .iter()
        .filter_map(|marker| target.find(marker).map(|index| index + marker.len()))
        .min()?;
    Some(target[found..].to_string())
}

/// Ansible's abort: the message, then the steps already taken.
fn tz_abort(message: &str, done: &[String]) -> Failure {
    let mut lines = vec!["Error message:".to_string(), message.to_string()];
    if !done.is_empty() {
        lines.push("Other message(s):".into());
        lines.extend(done.iter().cloned());
    }
    fail(lines.join("\n"))
}

/// The file's lines with every line matching `pattern` replaced by one `line`, where the
/// first was (or at the top), and the number of lines deleted.
pub fn edit_lines(text: Option<&str>, pattern: &str, line: &str) -> (String, usize) {
    let pattern = regex::Regex::new(pattern).expect("static regex");
    let mut lines: Vec<&str> = text.unwrap_or("").split_inclusive('\n').collect();
    let matched: Vec<usize> =
        lines.iter().enumerate().filter(|(_, l)| pattern.is_match(l)).map(|(i, _)| i).collect();
    let insert_at = matched.first().copied().unwrap_or(0);
    for index in matched.iter().rev() {
        lines.remove(*index);
    }
    lines.insert(insert_at, line);
    (lines.concat(), matched.len())
}

/// `{'name': 'x'}`, as Python prints a dict of strings.
fn python_dict(values: &[(&str, String)]) -> String {
    let items: Vec<String> =
        values.iter().map(|(key, value)| format!("'{key}': '{value}'")).collect();
    format!("{{{}}}", items.join(", "))
}

/// The commands and file edits that set `key` the Debian way, and the messages they add.
pub enum Step {
    Write { path: String, content: String },
    Run { argv: Vec<String> },
}

pub fn files_plan(
    key: &str,
    planned: &str,
    facts: &Facts,
) -> Result<(Vec<Step>, Vec<String>), Failure> {
    let mut messages = Vec::new();
    let mut steps = Vec::new();
    if key == "hwclock" {
        let (option, utc) =
            if planned == "local" { ("--localtime", "no") } else { ("--utc", "yes") };
        let (content, deleted) =
            edit_lines(facts.rcs_file.as_deref(), RCS_UTC, &format!("UTC={utc}\n"));
        messages.push(format!("Added 1 line and deleted {deleted} line(s) on /etc/default/rcS"));
        steps.push(Step::Write { path: "/etc/default/rcS".into(), content });
        let argv = vec![facts.require("hwclock")?.to_string(), "--systohc".into(), option.into()];
        messages.push(format!("executed `{}`", argv.join(" ")));
        steps.push(Step::Run { argv });
    } else {
        let (content, deleted) =
            edit_lines(facts.timezone_file.as_deref(), TIMEZONE_LINE, &format!("{planned}\n"));
        messages.push(format!("Added 1 line and deleted {deleted} line(s) on /etc/timezone"));
        steps.push(Step::Write { path: "/etc/timezone".into(), content });
        let link = vec![
            facts.require("ln")?.to_string(),
            "-sf".into(),
            format!("{ZONEINFO}/{planned}"),
            "/etc/localtime".into(),
        ];
        let reconfigure = vec![
            facts.require("dpkg-reconfigure")?.to_string(),
            "--frontend".into(),
            "noninteractive".into(),
            "tzdata".into(),
        ];
        steps.push(Step::Run { argv: link });
        steps.push(Step::Run { argv: reconfigure });
    }
    Ok((steps, messages))
}

/// The timedatectl command that sets `key`.
pub fn systemd_argv(timedatectl: &str, key: &str, planned: &str) -> Vec<String> {
    let (subcommand, value) = if key == "hwclock" {
        ("set-local-rtc", if planned == "local" { "yes" } else { "no" })
    } else {
        ("set-timezone", planned)
    };
    vec![timedatectl.into(), subcommand.into(), value.into()]
}

/// Which way settings are read and written.
enum Way {
    Systemd(String),
    Files,
}

/// Ansible's checks before anything is read: the zone exists, the commands are there.
fn choose_way(planned: &[(&str, String)], facts: &Facts) -> Result<Way, Failure> {
    let zone = planned.iter().any(|(key, _)| *key == "name");
    let zone_name = planned.iter().find(|(key, _)| *key == "name").map(|(_, v)| v.as_str());
    let verify = || {
        if zone && !facts.zone_file_exists {
            return Err(tz_abort(
                &format!("given timezone \"{}\" is not available", zone_name.unwrap_or("")),
                &[],
            ));
        }
        Ok(())
    };
    if let Some((path, _)) = &facts.timedatectl {
        verify()?;
        return Ok(Way::Systemd(path.clone()));
    }
    verify()?;
    if zone {
        facts.require("cp")?;
    }
    facts.require("hwclock")?;
    if facts.command("dpkg-reconfigure").is_none() {
        return Err(fail(
            "not supported yet: timezone on a host with neither a running systemd nor dpkg-reconfigure",
        ));
    }
    if zone {
        facts.require("ln")?;
    }
    Ok(Way::Files)
}

fn current(
    way: &Way,
    planned: &[(&str, String)],
    facts: &Facts,
    after: bool,
) -> Result<Vec<(&'static str, String)>, Failure> {
    let mut values = Vec::new();
    for key in KEYS {
        let Some((_, wanted)) = planned.iter().find(|(k, _)| k == key) else { continue };
        let value = match (way, &facts.timedatectl) {
            (Way::Systemd(_), Some((_, status))) => systemd_value(key, status)?,
            _ => files_value(key, wanted, facts, after)?,
        };
        values.push((*key, value));
    }
    Ok(values)
}

fn as_map(values: &[(&str, String)]) -> Value {
    let map: Map<String, Value> =
        values.iter().map(|(key, value)| (key.to_string(), Value::from(value.clone()))).collect();
    Value::Object(map)
}

async fn query(call: &Call<'_>, zone: Option<&str>) -> Result<Facts, Failure> {
    let output = call.remote.check(&query_command(zone), "reading the time zone").await?;
    Ok(parse_query(&output.stdout_text()))
}

/// Runs one command as Ansible's run_command with check_rc does, failing with its output.
async fn execute(call: &Call<'_>, argv: &[String]) -> Result<(), Failure> {
    let command = crate::connection::quote_all(argv);
    let output = call.remote.run(&command).await?;
    if output.rc == 0 {
        return Ok(());
    }
    let mut failure = result([
        ("changed", Value::Bool(false)),
        ("cmd", Value::from(argv.join(" "))),
        ("rc", Value::from(output.rc)),
        ("stdout", Value::from(output.stdout_text())),
        ("stderr", Value::from(output.stderr_text())),
    ]);
    failure.insert("msg".into(), Value::from(output.stderr_text().trim_end().to_string()));
    Err(Failure::Failed(failure))
}

pub async fn run(call: &mut Call<'_>) -> Outcome {
    let hwclock = call.args.choice(&["hwclock", "rtc"], &["local", "UTC"], None)?;
    let name = call.args.string(&["name"]);
    let mut planned: Vec<(&str, String)> = Vec::new();
    if let Some(hwclock) = hwclock {
        planned.push(("hwclock", hwclock));
    }
    if let Some(name) = &name {
        planned.push(("name", name.clone()));
    }
    if planned.is_empty() {
        return Err(fail("one of the following is required: hwclock, name"));
    }

    let facts = query(call, name.as_deref()).await?;
    let way = choose_way(&planned, &facts)?;
    let before = current(&way, &planned, &facts, false)?;
    if call.check_mode {
        let diff = serde_json::json!({"before": as_map(&before), "after": as_map(&planned)});
        return Ok(result([("changed", Value::Bool(before != planned)), ("diff", diff)]));
    }

    // Modify: each setting that differs, hwclock first, as Ansible orders them.
    let mut messages = Vec::new();
    for ((key, now), (_, wanted)) in before.iter().zip(&planned) {
        if now == wanted {
            continue;
        }
        match &way {
            Way::Systemd(timedatectl) => {
                let argv = systemd_argv(timedatectl, key, wanted);
                execute(call, &argv).await?;
                messages.push(format!("executed `{}`", argv.join(" ")));
            }
            Way::Files => {
                let (steps, added) = files_plan(key, wanted, &facts)?;
                apply(call, &steps).await?;
                messages.extend(added);
            }
        }
    }

    let after_facts = query(call, name.as_deref()).await?;
    let after = current(&way, &planned, &after_facts, true)?;
    if after != planned {
        return Err(tz_abort(
            &format!(
                "still not desired state, though changes have made - planned: {}, after: {}",
                python_dict(&planned),
                python_dict(&after)
            ),
            &messages,
        ));
    }
    let diff = serde_json::json!({"before": as_map(&before), "after": as_map(&after)});
    let mut outcome = result([("changed", Value::Bool(before != after)), ("diff", diff)]);
    if !messages.is_empty() {
        outcome.insert("msg".into(), Value::from(messages.join("\n")));
    }
    Ok(outcome)
}

async fn apply(call: &Call<'_>, steps: &[Step]) -> Result<(), Failure> {
    for step in steps {
        match step {
            Step::Write { path, content } => {
                super::files::write_atomic(
                    call.remote,
                    path,
                    content.as_bytes(),
                    None,
                    None,
                    None,
                    None,
                )
                .await?;
            }
            Step::Run { argv } => execute(call, argv).await?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chroot_facts() -> Facts {
        parse_query(
            "search /usr/local/bin:/usr/bin:/bin:/sbin:/usr/sbin\n\
             command timedatectl /usr/bin/timedatectl\ncommand cp /usr/bin/cp\n\
             command ln /usr/bin/ln\ncommand dpkg-reconfigure /usr/sbin/dpkg-reconfigure\n\
             zonefile\ntimezone absent\nrcs absent\nadjtime absent\n\
             localtime link /usr/share/zoneinfo/Etc/UTC\n",
        )
    }

    #[test]
    fn a_chroot_without_systemd_uses_the_files_and_needs_hwclock() {
        let facts = chroot_facts();
        assert_eq!(facts.timedatectl, None);
        let planned = vec![("name", "Europe/Paris".to_string())];
        let Err(Failure::Failed(failure)) = choose_way(&planned, &facts) else {
            panic!("hwclock is required")
        };
        assert_eq!(
            failure["msg"],
            "Failed to find required executable \"hwclock\" in paths: \
             /usr/local/bin:/usr/bin:/bin:/sbin:/usr/sbin"
        );
        let mut facts = facts;
        facts.commands.push(("hwclock".into(), "/usr/sbin/hwclock".into()));
        assert!(matches!(choose_way(&planned, &facts), Ok(Way::Files)));
        assert_eq!(files_value("name", "Europe/Paris", &facts, false).unwrap(), "n/a");
    }

    #[test]
    fn zone_set_the_debian_way() {
        let mut facts = chroot_facts();
        facts.commands.push(("hwclock".into(), "/usr/sbin/hwclock".into()));
        let (steps, messages) = files_plan("name", "Europe/Paris", &facts).unwrap();
        assert_eq!(messages, ["Added 1 line and deleted 0 line(s) on /etc/timezone"]);
        let Step::Write { path, content } = &steps[0] else { panic!("a write first") };
        assert_eq!((path.as_str(), content.as_str()), ("/etc/timezone", "Europe/Paris\n"));
        let Step::Run { argv } = &steps[1] else { panic!("then ln") };
        assert_eq!(
            argv,
            &["/usr/bin/ln", "-sf", "/usr/share/zoneinfo/Europe/Paris", "/etc/localtime"]
        );
        let (_, messages) = files_plan("hwclock", "UTC", &facts).unwrap();
        assert_eq!(
            messages,
            [
                "Added 1 line and deleted 0 line(s) on /etc/default/rcS",
                "executed `/usr/sbin/hwclock --systohc --utc`"
            ]
        );
    }

    #[test]
    fn files_are_read_as_ansible_reads_them() {
        let mut facts = chroot_facts();
        facts.timezone_file = Some("Europe/Paris\n".into());
        facts.localtime = "link /usr/share/zoneinfo/Europe/Paris".into();
        assert_eq!(files_value("name", "Europe/Paris", &facts, true).unwrap(), "Europe/Paris");
        facts.localtime = "link /usr/share/zoneinfo/Asia/Tokyo".into();
        assert_eq!(files_value("name", "Europe/Paris", &facts, true).unwrap(), "Asia/Tokyo");
        facts.localtime = "differs".into();
        assert_eq!(files_value("name", "Europe/Paris", &facts, true).unwrap(), "n/a");
        facts.rcs_file = Some("# rcS\nUTC=no\n".into());
        assert_eq!(files_value("hwclock", "UTC", &facts, false).unwrap(), "local");
        assert_eq!(files_value("hwclock", "local", &facts, false).unwrap(), "UTC");
        facts.adjtime_file = Some("0.0 0 0.0\n0\nLOCAL\n".into());
        assert_eq!(files_value("hwclock", "local", &facts, false).unwrap(), "local");
    }

    #[test]
    fn edits_replace_every_match_with_one_line() {
        assert_eq!(edit_lines(None, TIMEZONE_LINE, "UTC\n"), ("UTC\n".into(), 0));
        assert_eq!(
            edit_lines(Some("# x\nUTC=no\nA=1\nUTC=no\n"), RCS_UTC, "UTC=yes\n"),
            ("# x\nUTC=yes\nA=1\n".into(), 2)
        );
    }

    #[test]
    fn timedatectl_status_is_read_and_set() {
        let status = "               Local time: Thu 2026-12-03 20:00:00 CET\n\
                      Time zone: Europe/Paris (CET, +0100)\n  RTC in local TZ: no\n";
        assert_eq!(systemd_value("name", status).unwrap(), "Europe/Paris");
        assert_eq!(systemd_value("hwclock", status).unwrap(), "UTC");
        assert_eq!(
            systemd_argv("/usr/bin/timedatectl", "hwclock", "local"),
            ["/usr/bin/timedatectl", "set-local-rtc", "yes"]
        );
        assert!(
            query_command(Some("Europe/Paris; rm"))
                .contains("'/usr/share/zoneinfo/Europe/Paris; rm'")
        );
    }

    #[test]
    fn settings_diff_as_sorted_json() {
        let diff = serde_json::json!({
            "before": {"name": "Europe/Paris"},
            "after": {"name": "Asia/Tokyo"},
        });
        assert_eq!(
            crate::output::render_diff(&diff).unwrap_or_default(),
            "--- before\n+++ after\n@@ -1,3 +1,3 @@\n {\n-    \"name\": \"Europe/Paris\"\n\
             +    \"name\": \"Asia/Tokyo\"\n }"
        );
    }

    #[test]
    fn a_missing_zone_is_refused_first() {
        let mut facts = chroot_facts();
        facts.zone_file_exists = false;
        let planned = vec![("name", "Nowhere/Land".to_string())];
        let Err(Failure::Failed(failure)) = choose_way(&planned, &facts) else { panic!() };
        assert_eq!(
            failure["msg"],
            "Error message:\ngiven timezone \"Nowhere/Land\" is not available"
        );
        assert_eq!(python_dict(&planned), "{'name': 'Nowhere/Land'}");
    }
}
