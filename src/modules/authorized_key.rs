//! `ansible.posix.authorized_key`: add or remove SSH public keys in a user's
//! authorized_keys, keeping the other lines and their order, as ansible.posix does.

use serde_json::Value;

use super::files;
use super::{Call, Outcome, fail, result};
use crate::connection::quote;

const KEY_TYPES: &[&str] = &[
    "ssh-dss",
    "ssh-rsa",
    "ssh-ed25519",
    "ssh-ed448",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "sk-ssh-ed25519@openssh.com",
    "ssh-rsa-cert-v01@openssh.com",
    "ssh-dss-cert-v01@openssh.com",
    "ssh-ed25519-cert-v01@openssh.com",
    "ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "ecdsa-sha2-nistp384-cert-v01@openssh.com",
    "ecdsa-sha2-nistp521-cert-v01@openssh.com",
];

/// One line of an authorized_keys file.
#[derive(Clone, Debug, PartialEq)]
pub enum Line {
    Key {
        options: Vec<(String, Option<String>)>,
        key_type: String,
        blob: String,
        comment: String,
    },
    /// A comment, a blank or an unparsable line: kept as it is.
    Other(String),
}

impl Line {
    fn identity(&self) -> &str {
        match self {
            Line::Key { blob, .. } => blob,
            Line::Other(text) => text,
        }
    }

    fn render(&self) -> String {
        match self {
            Line::Other(text) => text.clone(),
            Line::Key { options, key_type, blob, comment } => {
                let mut line = String::new();
                if !options.is_empty() {
                    let parts: Vec<String> = options
                        .iter()
                        .map(|(name, value)| match value {
                            Some(value) => format!("{name}={value}"),
                            None => name.clone(),
                        })
                        .collect();
                    line.push_str(&parts.join(","));
                    line.push(' ');
                }
                format!("{line}{key_type} {blob} {comment}\n")
            }
        }
    }
}

/// Splits `options` at commas outside double quotes: `name` or `name=value`.
pub fn parse_options(text: &str) -> Vec<(String, Option<String>)> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ',' if !quoted => parts.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    parts.push(current);
    parts
        .into_iter()
        .map(|part| part.trim().to_string())
        .filter(|part| !part.is_empty())
        .map(|part| match part.split_once('=') {
            Some((name, value)) => (name.to_string(), Some(value.to_string())),
            None => (part, None),
        })
        .collect()
}

/// Parses a key line: `[options] type blob [comment]`; None when it holds no key.
pub fn parse_key(raw: &str) -> Option<Line> {
    let raw = raw.replace("\\#", "#");
    let words: Vec<&str> = raw.split_whitespace().collect();
    if words.first() == Some(&"#") {
        return Some(Line::Other(raw));
    }
    let type_index = words.iter().position(|word| KEY_TYPES.contains(word))?;
    let blob = words.get(type_index + 1)?;
    let options =
        if type_index > 0 { parse_options(&words[..type_index].join(" ")) } else { Vec::new() };
    Some(Line::Key {
        options,
        key_type: words[type_index].to_string(),
        blob: blob.to_string(),
        comment: words.get(type_index + 2..).map(|rest| rest.join(" ")).unwrap_or_default(),
    })
}

/// What to do with the keys.
pub struct Plan {
    pub keys: Vec<String>,
    pub present: bool,
    pub exclusive: bool,
    pub key_options: Option<String>,
    pub comment: Option<String>,
}

/// The new file text, or None when nothing changes.
pub fn apply(existing: &str, plan: &Plan) -> Result<Option<String>, String> {
    let mut lines: Vec<Line> = existing
        .split_inclusive('\n')
        .map(|line| parse_key(line).unwrap_or_else(|| Line::Other(line.to_string())))
        .collect();
    let mut changed = false;
    let mut wanted = Vec::new();
    for raw in &plan.keys {
        let Some(mut new) = parse_key(raw).filter(|line| matches!(line, Line::Key { .. })) else {
            return Err(format!("invalid key specified: {raw}"));
        };
        if let Line::Key { options, comment, .. } = &mut new {
            if let Some(text) = &plan.key_options {
                *options = parse_options(text);
            }
            if let Some(text) = &plan.comment {
                *comment = text.clone();
            }
        }
        let position = lines.iter().position(|line| line.identity() == new.identity());
        if plan.present {
            wanted.push(new.identity().to_string());
            match position {
                Some(index) if lines[index] == new => {}
                Some(index) => {
                    // A key with other options or comment is dropped and written anew last.
                    lines.remove(index);
                    lines.push(new);
                    changed = true;
                }
                None => {
                    lines.push(new);
                    changed = true;
                }
            }
        } else if let Some(index) = position {
            lines.remove(index);
            changed = true;
        }
    }
    if plan.present && plan.exclusive {
        let before = lines.len();
        lines.retain(|line| wanted.iter().any(|identity| identity == line.identity()));
        changed |= lines.len() != before;
    }
    Ok(changed.then(|| lines.iter().map(Line::render).collect()))
}

/// One script: the user's passwd entry, the key file's path, and its content if any.
pub fn query_command(user: &str, path: Option<&str>) -> String {
    let file = match path {
        Some(path) => quote(path),
        None => "\"$(printf '%s' \"$e\" | cut -d: -f6)/.ssh/authorized_keys\"".into(),
    };
    format!(
        "e=$(getent passwd {}) || {{ echo nouser; exit 0; }}; printf '%s\\n' \"$e\"; f={file}; \
         printf '%s\\n' \"$f\"; if [ -f \"$f\" ]; then echo present; cat -- \"$f\"; else echo absent; fi",
        quote(user)
    )
}

/// Before writing: the `.ssh` directory (with `manage_dir`) and an empty key file owned by
/// the user, as ansible.posix creates them.
pub fn prepare_command(keyfile: &str, uid: &str, gid: &str, manage_dir: bool) -> String {
    let directory =
        keyfile.rsplit_once('/').map_or(".", |(dir, _)| if dir.is_empty() { "/" } else { dir });
    let owner = quote(&format!("{uid}:{gid}"));
    let (directory, file) = (quote(directory), quote(keyfile));
    let mut script = String::new();
    if manage_dir {
        script.push_str(&format!(
            "if [ ! -e {directory} ]; then mkdir -m 0700 -- {directory} && chown {owner} {directory}; fi && \
             chmod 0700 {directory} && "
        ));
    }
    script.push_str(&format!(
        "if [ ! -e {file} ]; then mkdir -p -- {directory} && : > {file} && chown {owner} {file} && chmod 0600 {file}; fi"
    ));
    script
}

pub async fn run(call: &mut Call<'_>) -> Outcome {
    let user = call.args.required(&["user"])?;
    let key = call.args.required(&["key"])?;
    let path = call.args.string(&["path"]);
    let manage_dir = call.args.flag(&["manage_dir"], true)?;
    let present = call.args.choice(&["state"], &["present", "absent"], Some("present"))?.as_deref()
        == Some("present");
    let exclusive = call.args.flag(&["exclusive"], false)?;
    let key_options = call.args.string(&["key_options"]);
    let comment = call.args.string(&["comment"]);
    if key.starts_with("http://") || key.starts_with("https://") {
        return Err(fail("not supported yet: authorized_key with a key URL"));
    }
    if call.args.flag(&["follow"], false)? {
        return Err(fail("not supported yet: authorized_key with follow"));
    }

    // Query: the user and the current file, in one command.
    let output = call.remote.check(&query_command(&user, path.as_deref()), "reading keys").await?;
    let text = output.stdout_text();
    let mut parts = text.splitn(4, '\n');
    let entry = parts.next().unwrap_or_default();
    if entry == "nouser" {
        return Err(fail(format!("Failed to lookup user {user}: user not found")));
    }
    let fields: Vec<&str> = entry.split(':').collect();
    let (uid, gid) = (fields.get(2).copied().unwrap_or("0"), fields.get(3).copied().unwrap_or("0"));
    let keyfile = parts.next().unwrap_or_default().to_string();
    let existing = if parts.next() == Some("present") { parts.next().unwrap_or("") } else { "" };

    let plan = Plan {
        keys: key
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect(),
        present,
        exclusive,
        key_options: key_options.clone(),
        comment: comment.clone(),
    };
    let new = apply(existing, &plan).map_err(fail)?;

    let mut outcome = result([
        ("changed", Value::Bool(new.is_some())),
        ("user", Value::from(user.clone())),
        ("key", Value::from(key.clone())),
        ("path", path.clone().map(Value::from).unwrap_or(Value::Null)),
        ("manage_dir", Value::Bool(manage_dir)),
        ("state", Value::from(if present { "present" } else { "absent" })),
        ("key_options", key_options.map(Value::from).unwrap_or(Value::Null)),
        ("exclusive", Value::Bool(exclusive)),
        ("comment", comment.map(Value::from).unwrap_or(Value::Null)),
        ("keyfile", Value::from(keyfile.clone())),
    ]);
    if let Some(new) = &new {
        if call.diff {
            outcome.insert(
                "diff".into(),
                serde_json::json!({
                    "before_header": keyfile, "after_header": keyfile,
                    "before": existing, "after": new,
                }),
            );
        }
        if !call.check_mode {
            let script = format!(
                "{} && {}",
                prepare_command(&keyfile, uid, gid, manage_dir),
                files::atomic_write_command(&keyfile, files::Fill::Stdin, None, None, None, None)
            );
            let output = call.remote.run_with_input(&script, Some(new.as_bytes())).await?;
            if output.rc != 0 {
                return Err(fail(format!(
                    "failed to write {keyfile}: {}",
                    output.stderr_text().trim()
                )));
            }
        }
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "ssh-ed25519 AAAAC3A alice@pi";
    const B: &str = "ssh-rsa AAAAB3B bob";

    fn plan(keys: &[&str]) -> Plan {
        Plan {
            keys: keys.iter().map(|k| k.to_string()).collect(),
            present: true,
            exclusive: false,
            key_options: None,
            comment: None,
        }
    }

    #[test]
    fn keys_parse_with_options_and_comments() {
        let Some(Line::Key { options, key_type, blob, comment }) =
            parse_key(r#"from="10.0.0.1,10.0.0.2",no-pty ssh-ed25519 AAAA my key"#)
        else {
            panic!("a key")
        };
        assert_eq!(options[0], ("from".into(), Some("\"10.0.0.1,10.0.0.2\"".into())));
        assert_eq!(options[1], ("no-pty".into(), None));
        assert_eq!(
            (key_type.as_str(), blob.as_str(), comment.as_str()),
            ("ssh-ed25519", "AAAA", "my key")
        );
        assert!(parse_key("not a key").is_none());
    }

    #[test]
    fn present_appends_once_and_keeps_other_lines() {
        let first = apply("# mine\n", &plan(&[A])).unwrap().unwrap();
        assert_eq!(first, format!("# mine\n{A}\n"));
        assert_eq!(apply(&first, &plan(&[A])).unwrap(), None);
        let bare = apply("", &plan(&["ssh-rsa AAAAB3B"])).unwrap().unwrap();
        assert_eq!(bare, "ssh-rsa AAAAB3B \n", "no comment leaves the trailing space");
    }

    #[test]
    fn options_change_rewrites_the_key() {
        let mut with_options = plan(&[A]);
        with_options.key_options = Some("no-pty".into());
        let text = apply(&format!("{A}\n{B}\n"), &with_options).unwrap().unwrap();
        assert_eq!(text, format!("{B}\nno-pty {A}\n"));
    }

    #[test]
    fn exclusive_and_absent_remove_keys() {
        let mut only_a = plan(&[A]);
        only_a.exclusive = true;
        assert_eq!(apply(&format!("{B}\n{A}\n"), &only_a).unwrap().unwrap(), format!("{A}\n"));
        let mut remove = plan(&[A]);
        remove.present = false;
        assert_eq!(apply(&format!("{A}\n{B}\n"), &remove).unwrap().unwrap(), format!("{B}\n"));
        assert_eq!(apply(&format!("{B}\n"), &remove).unwrap(), None);
        assert!(apply("", &plan(&["garbage"])).is_err());
    }

    #[test]
    fn commands_quote_and_create_the_directory() {
        assert!(query_command("pi", None).starts_with("e=$(getent passwd pi) || "));
        let prepare = prepare_command("/home/pi/.ssh/authorized_keys", "1000", "1000", true);
        assert!(prepare.starts_with(
            "if [ ! -e /home/pi/.ssh ]; then mkdir -m 0700 -- /home/pi/.ssh && chown 1000:1000"
        ));
        assert!(prepare.ends_with("chmod 0600 /home/pi/.ssh/authorized_keys; fi"));
    }
}
