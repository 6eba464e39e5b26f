//! `hostname`: set the host's name, through hostnamectl on systemd hosts and through
//! /etc/hostname plus `hostname` elsewhere.

use serde_json::{Value, json};

use super::{Call, Outcome, fail, result};
use crate::connection::quote;

/// One script: `systemd` or `file`, the running name, and the static name.
pub const QUERY: &str = "if [ -d /run/systemd/system ] && command -v hostnamectl >/dev/null; \
     then echo systemd; else echo file; fi; hostname; cat /etc/hostname 2>/dev/null || echo";

/// The commands that set `name` with the given strategy.
pub fn set_command(strategy: &str, name: &str) -> String {
    let quoted = quote(name);
    match strategy {
        "systemd" => format!(
            "hostnamectl --transient set-hostname {quoted} && hostnamectl --static set-hostname {quoted}"
        ),
        _ => format!("printf '%s\\n' {quoted} > /etc/hostname && hostname {quoted}"),
    }
}

/// The facts Ansible updates after setting the name.
pub fn facts(name: &str) -> Value {
    let (short, domain) = name.split_once('.').unwrap_or((name, ""));
    json!({
        "ansible_hostname": short,
        "ansible_nodename": name,
        "ansible_fqdn": name,
        "ansible_domain": domain,
    })
}

pub async fn run(call: &mut Call<'_>) -> Outcome {
    let name = call.args.required(&["name"])?;
    let strategy = match call.args.string(&["use"]).as_deref() {
        None => None,
        Some("systemd") => Some("systemd"),
        Some("debian") | Some("generic") => Some("file"),
        Some(other) => return Err(fail(format!("not supported yet: hostname use={other}"))),
    };

    let output = call.remote.check(QUERY, "reading the hostname").await?;
    let text = output.stdout_text();
    let mut lines = text.lines();
    let found = lines.next().unwrap_or("file");
    let strategy = strategy.unwrap_or(if found == "systemd" { "systemd" } else { "file" });
    let running = lines.next().unwrap_or("").trim().to_string();
    let permanent = lines.next().unwrap_or("").trim().to_string();
    let changed = running != name || permanent != name;

    let mut outcome = result([
        ("changed", Value::Bool(changed)),
        ("name", Value::from(name.clone())),
        ("ansible_facts", facts(&name)),
    ]);
    if call.diff && changed {
        outcome.insert(
            "diff".into(),
            json!({"before": format!("hostname = {running}\n"), "after": format!("hostname = {name}\n")}),
        );
    }
    if changed && !call.check_mode {
        call.remote.check(&set_command(strategy, &name), "setting the hostname").await?;
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_and_facts() {
        assert_eq!(
            set_command("systemd", "pi 1"),
            "hostnamectl --transient set-hostname 'pi 1' && hostnamectl --static set-hostname 'pi 1'"
        );
        assert!(set_command("file", "pi").starts_with("printf '%s\\n' pi > /etc/hostname"));
        assert_eq!(facts("pi.lan")["ansible_hostname"], "pi");
        assert_eq!(facts("pi.lan")["ansible_domain"], "lan");
    }
}
