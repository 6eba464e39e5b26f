//! `user` and `group`: accounts through getent, useradd/usermod/userdel and groupadd/groupdel.

use serde_json::Value;

use super::{Call, Failure, Outcome, fail, result};
use crate::connection::{quote, quote_all};

/// One `passwd` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: i64,
    pub gid: i64,
    pub comment: String,
    pub home: String,
    pub shell: String,
}

pub fn parse_passwd(line: &str) -> Option<Account> {
    let fields: Vec<&str> = line.trim_end().split(':').collect();
    if fields.len() < 7 {
        return None;
    }
    Some(Account {
        name: fields[0].into(),
        uid: fields[2].parse().ok()?,
        gid: fields[3].parse().ok()?,
        comment: fields[4].into(),
        home: fields[5].into(),
        shell: fields[6].into(),
    })
}

/// What the user asked for, from the module arguments.
#[derive(Clone, Debug, Default)]
pub struct Wanted {
    pub name: String,
    pub system: bool,
    pub shell: Option<String>,
    pub home: Option<String>,
    pub create_home: bool,
    pub group: Option<String>,
    pub groups: Option<Vec<String>>,
    pub append: bool,
    pub uid: Option<String>,
    pub comment: Option<String>,
    pub password: Option<String>,
}

/// The useradd command for a new account.
pub fn useradd_command(wanted: &Wanted) -> String {
    let mut words: Vec<String> = vec!["useradd".into()];
    if wanted.system {
        words.push("-r".into());
    }
    let options = [
        ("-s", &wanted.shell),
        ("-d", &wanted.home),
        ("-g", &wanted.group),
        ("-u", &wanted.uid),
        ("-c", &wanted.comment),
        ("-p", &wanted.password),
    ];
    for (flag, value) in options {
        if let Some(value) = value {
            words.push(flag.into());
            words.push(value.clone());
        }
    }
    if let Some(groups) = wanted.groups.as_ref().filter(|g| !g.is_empty()) {
        words.push("-G".into());
        words.push(groups.join(","));
    }
    words.push(if wanted.create_home { "-m" } else { "-M" }.into());
    words.push(wanted.name.clone());
    quote_all(&words)
}

/// The usermod command that brings `current` to `wanted`, or None when nothing differs.
pub fn usermod_command(
    wanted: &Wanted,
    current: &Account,
    primary_group: Option<&str>,
    member_of: &[String],
) -> Option<String> {
    let mut words: Vec<String> = Vec::new();
    let mut differ = |flag: &str, want: &Option<String>, have: &str| {
        if let Some(want) = want
            && want != have
        {
            words.push(flag.into());
            words.push(want.clone());
        }
    };
    differ("-s", &wanted.shell, &current.shell);
    differ("-d", &wanted.home, &current.home);
    differ("-u", &wanted.uid, &current.uid.to_string());
    differ("-c", &wanted.comment, &current.comment);
    if let Some(group) = &wanted.group
        && Some(group.as_str()) != primary_group
        && *group != current.gid.to_string()
    {
        words.push("-g".into());
        words.push(group.clone());
    }
    if let Some(groups) = &wanted.groups {
        let missing = groups.iter().any(|g| !member_of.contains(g));
        let extra = !wanted.append && member_of.iter().any(|g| !groups.contains(g));
        if missing || extra {
            if wanted.append {
                words.push("-a".into());
            }
            words.push("-G".into());
            words.push(groups.join(","));
        }
    }
    if words.is_empty() {
        return None;
    }
    let mut command = vec!["usermod".to_string()];
    command.extend(words);
    command.push(wanted.name.clone());
    Some(quote_all(&command))
}

async fn lookup(call: &Call<'_>, database: &str, name: &str) -> Result<Option<String>, Failure> {
    let output = call.remote.run(&format!("getent {database} {}", quote(name))).await?;
    Ok((output.rc == 0)
        .then(|| output.stdout_text().trim().to_string())
        .filter(|line| !line.is_empty()))
}

fn wanted_of(call: &Call<'_>, name: String) -> Result<Wanted, Failure> {
    let args = &call.args;
    Ok(Wanted {
        name,
        system: args.flag(&["system"], false)?,
        shell: args.string(&["shell"]),
        home: args.string(&["home"]),
        create_home: args.flag(&["create_home", "createhome"], true)?,
        group: args.string(&["group"]),
        groups: args.value(&["groups"]).map(|_| args.list(&["groups"])),
        append: args.flag(&["append"], false)?,
        uid: args.string(&["uid"]),
        comment: args.string(&["comment"]),
        password: args.string(&["password"]),
    })
}

pub async fn run_user(call: &mut Call<'_>) -> Outcome {
    let name = call.args.required(&["name"])?;
    let state =
        call.args.choice(&["state"], &["present", "absent"], Some("present"))?.unwrap_or_default();
    let current = lookup(call, "passwd", &name).await?.and_then(|line| parse_passwd(&line));

    if state == "absent" {
        let changed = current.is_some();
        if changed && !call.check_mode {
            let remove = if call.args.flag(&["remove"], false)? { "-r " } else { "" };
            call.remote.check(&format!("userdel {remove}{}", quote(&name)), "userdel").await?;
        }
        return Ok(result([
            ("changed", Value::Bool(changed)),
            ("name", Value::from(name)),
            ("state", Value::from("absent")),
        ]));
    }

    let wanted = wanted_of(call, name.clone())?;
    let command = match &current {
        None => Some(useradd_command(&wanted)),
        Some(account) => {
            let primary = lookup(call, "group", &account.gid.to_string())
                .await?
                .and_then(|line| line.split(':').next().map(str::to_string));
            let member_of =
                call.remote.run(&format!("id -Gn {}", quote(&name))).await?.stdout_text();
            let mut member_of: Vec<String> =
                member_of.split_whitespace().map(str::to_string).collect();
            member_of.retain(|group| Some(group) != primary.as_ref());
            usermod_command(&wanted, account, primary.as_deref(), &member_of)
        }
    };
    let changed = command.is_some();
    if let (Some(command), false) = (&command, call.check_mode) {
        let output = call.remote.run(command).await?;
        if output.rc != 0 {
            return Err(fail(format!(
                "{} failed (rc={}): {}",
                command.split(' ').next().unwrap_or("useradd"),
                output.rc,
                output.stderr_text().trim()
            )));
        }
    }
    let account = lookup(call, "passwd", &name).await?.and_then(|line| parse_passwd(&line));
    let mut outcome = result([
        ("changed", Value::Bool(changed)),
        ("name", Value::from(name)),
        ("state", Value::from("present")),
        ("system", Value::Bool(wanted.system)),
    ]);
    if let Some(account) = account {
        outcome.insert("uid".into(), Value::from(account.uid));
        outcome.insert("group".into(), Value::from(account.gid));
        outcome.insert("home".into(), Value::from(account.home));
        outcome.insert("shell".into(), Value::from(account.shell));
        outcome.insert("comment".into(), Value::from(account.comment));
    }
    Ok(outcome)
}

pub async fn run_group(call: &mut Call<'_>) -> Outcome {
    let name = call.args.required(&["name"])?;
    let state =
        call.args.choice(&["state"], &["present", "absent"], Some("present"))?.unwrap_or_default();
    let current = lookup(call, "group", &name).await?;
    let gid_wanted = call.args.string(&["gid"]);
    let current_gid = current.as_ref().and_then(|line| line.split(':').nth(2).map(str::to_string));
    let command = match (state.as_str(), &current) {
        ("absent", Some(_)) => Some(format!("groupdel {}", quote(&name))),
        ("absent", None) => None,
        (_, None) => {
            let mut words = vec!["groupadd".to_string()];
            if call.args.flag(&["system"], false)? {
                words.push("-r".into());
            }
            if let Some(gid) = &gid_wanted {
                words.extend(["-g".to_string(), gid.clone()]);
            }
            words.push(name.clone());
            Some(quote_all(&words))
        }
        (_, Some(_)) => match &gid_wanted {
            Some(gid) if Some(gid) != current_gid.as_ref() => {
                Some(quote_all(&["groupmod", "-g", gid, &name]))
            }
            _ => None,
        },
    };
    let changed = command.is_some();
    if let (Some(command), false) = (&command, call.check_mode) {
        call.remote.check(command, command.split(' ').next().unwrap_or("groupadd")).await?;
    }
    let mut outcome = result([
        ("changed", Value::Bool(changed)),
        ("name", Value::from(name.clone())),
        ("state", Value::from(state.clone())),
    ]);
    if state == "present" {
        if let Some(gid) = lookup(call, "group", &name)
            .await?
            .and_then(|line| line.split(':').nth(2).and_then(|g| g.parse::<i64>().ok()))
        {
            outcome.insert("gid".into(), Value::from(gid));
        }
        outcome.insert("system".into(), Value::Bool(call.args.flag(&["system"], false)?));
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node_exporter() -> Wanted {
        Wanted {
            name: "node_exporter".into(),
            system: true,
            shell: Some("/usr/sbin/nologin".into()),
            create_home: false,
            group: Some("node_exporter".into()),
            ..Wanted::default()
        }
    }

    #[test]
    fn new_system_user() {
        assert_eq!(
            useradd_command(&node_exporter()),
            "useradd -r -s /usr/sbin/nologin -g node_exporter -M node_exporter"
        );
    }

    #[test]
    fn existing_user_changes_only_what_differs() {
        let current =
            parse_passwd("node_exporter:x:999:999::/home/node_exporter:/usr/sbin/nologin").unwrap();
        assert_eq!(usermod_command(&node_exporter(), &current, Some("node_exporter"), &[]), None);
        let mut wanted = node_exporter();
        wanted.shell = Some("/bin/false".into());
        wanted.groups = Some(vec!["docker".into()]);
        wanted.append = true;
        assert_eq!(
            usermod_command(&wanted, &current, Some("node_exporter"), &[]).unwrap(),
            "usermod -s /bin/false -a -G docker node_exporter"
        );
    }
}
