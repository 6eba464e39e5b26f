//! Shared file planners: reading a path's state, permissions, and atomic writes on the host.

use serde_json::{Map, Value};

use super::{Failure, Remote, fail};
use crate::connection::quote;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileKind {
    File,
    Directory,
    Link,
    Other,
}

/// What `stat` reports about a path (not following a final symlink).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileState {
    pub kind: FileKind,
    pub mode: String,
    pub owner: String,
    pub group: String,
    pub uid: i64,
    pub gid: i64,
    pub size: i64,
    pub mtime: i64,
    pub link_target: Option<String>,
}

/// A `mode:` argument: octal bits, or a symbolic `u+rwx` string for chmod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    Octal(u32),
    Symbolic(String),
}

impl Mode {
    /// Reads `mode:` as Ansible does: an integer is the bits (YAML `0644` is already 420),
    /// a string of octal digits is octal, anything else is symbolic.
    pub fn parse(value: Option<&Value>) -> Result<Option<Mode>, Failure> {
        match value {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(number)) => number
                .as_u64()
                .filter(|bits| *bits <= 0o7777)
                .map(|bits| Some(Mode::Octal(bits as u32)))
                .ok_or_else(|| fail(format!("bad symbolic permission for mode: {number}"))),
            Some(Value::String(text)) if text == "preserve" => {
                Err(fail("not supported yet: mode=preserve"))
            }
            Some(Value::String(text))
                if !text.is_empty() && text.chars().all(|c| c.is_digit(8)) =>
            {
                u32::from_str_radix(text, 8)
                    .ok()
                    .filter(|bits| *bits <= 0o7777)
                    .map(|bits| Some(Mode::Octal(bits)))
                    .ok_or_else(|| fail(format!("bad octal mode: {text}")))
            }
            Some(Value::String(text)) => {
                let valid = text.split(',').all(|clause| {
                    let clause = clause.trim_start_matches(['u', 'g', 'o', 'a']);
                    clause.starts_with(['+', '-', '='])
                        && clause[1..].chars().all(|c| "rwxXstugo".contains(c) || "+-=".contains(c))
                });
                if valid {
                    Ok(Some(Mode::Symbolic(text.clone())))
                } else {
                    Err(fail(format!("bad symbolic permission for mode: {text}")))
                }
            }
            Some(other) => {
                Err(fail(format!("mode must be an octal number or a symbolic string, got {other}")))
            }
        }
    }

    /// The argument to give chmod.
    pub fn chmod_argument(&self) -> String {
        match self {
            Mode::Octal(bits) => format!("{bits:04o}"),
            Mode::Symbolic(text) => text.clone(),
        }
    }
}

/// The shell command that prints a path's state, or `absent`.
pub fn stat_command(path: &str) -> String {
    let path = quote(path);
    format!(
        "if [ -e {path} ] || [ -L {path} ]; then stat -c '%F|%a|%U|%G|%u|%g|%s|%Y' -- {path}; \
         if [ -L {path} ]; then readlink -- {path}; fi; else echo absent; fi"
    )
}

/// Parses what `stat_command` printed.
pub fn parse_stat(text: &str) -> Option<FileState> {
    let mut lines = text.lines();
    let first = lines.next()?;
    if first == "absent" {
        return None;
    }
    let fields: Vec<&str> = first.split('|').collect();
    if fields.len() < 8 {
        return None;
    }
    let kind = match fields[0] {
        "regular file" | "regular empty file" => FileKind::File,
        "directory" => FileKind::Directory,
        "symbolic link" => FileKind::Link,
        _ => FileKind::Other,
    };
    let number = |index: usize| fields[index].trim().parse::<i64>().unwrap_or(-1);
    Some(FileState {
        kind,
        mode: format!("{:0>4}", fields[1]),
        owner: fields[2].to_string(),
        group: fields[3].to_string(),
        uid: number(4),
        gid: number(5),
        size: number(6),
        mtime: number(7),
        link_target: lines.next().map(str::to_string),
    })
}

pub async fn lstat(remote: &Remote, path: &str) -> Result<Option<FileState>, Failure> {
    let output = remote.check(&stat_command(path), &format!("stat {path}")).await?;
    Ok(parse_stat(&output.stdout_text()))
}

/// A path's state and, for a regular file, its checksum: what most file modules need to
/// decide, in one round trip.
#[derive(Clone, Debug, Default)]
pub struct Probe {
    pub state: Option<FileState>,
    pub checksum: Option<String>,
}

/// The command behind [`probe`]; `algorithm` is `sha1`, `sha256`, … (`<algorithm>sum` runs).
pub fn probe_command(path: &str, algorithm: &str) -> String {
    let quoted = quote(path);
    format!(
        "{}; if [ -f {quoted} ]; then printf 'checksum:'; {algorithm}sum -- {quoted} || true; fi",
        stat_command(path)
    )
}

/// Parses what [`probe_command`] printed.
pub fn parse_probe(text: &str) -> Probe {
    let (stat, checksum) = match text.find("checksum:") {
        Some(index) => {
            (&text[..index], text[index + "checksum:".len()..].split_whitespace().next())
        }
        None => (text, None),
    };
    Probe { state: parse_stat(stat), checksum: checksum.map(str::to_string) }
}

pub async fn probe(remote: &Remote, path: &str, algorithm: &str) -> Result<Probe, Failure> {
    let output = remote.check(&probe_command(path, algorithm), &format!("stat {path}")).await?;
    Ok(parse_probe(&output.stdout_text()))
}

/// Brings owner/group/mode of a path whose state is known to what was asked, in at most one
/// round trip; returns whether anything changed and the state afterwards.
pub async fn settle_attributes(
    remote: &Remote,
    path: &str,
    state: &FileState,
    mode: Option<&Mode>,
    owner: Option<&str>,
    group: Option<&str>,
    check_mode: bool,
) -> Result<(bool, FileState), Failure> {
    let commands = attribute_commands(path, state, mode, owner, group);
    if commands.is_empty() {
        return Ok((false, state.clone()));
    }
    if check_mode {
        let symbolic_only = commands.len() == 1 && matches!(mode, Some(Mode::Symbolic(_)));
        return Ok((!symbolic_only, state.clone()));
    }
    let command = format!("{} && {{ {}; }}", commands.join(" && "), stat_command(path));
    let output = remote.check(&command, &format!("setting attributes of {path}")).await?;
    let after = parse_stat(&output.stdout_text()).unwrap_or_else(|| state.clone());
    let changed = after.mode != state.mode || after.uid != state.uid || after.gid != state.gid;
    Ok((changed, after))
}

/// The SHA-1 of a remote file (Ansible's `checksum`), or None when it is not a readable file.
pub async fn sha1(remote: &Remote, path: &str) -> Result<Option<String>, Failure> {
    let path = quote(path);
    let output = remote.run(&format!("[ -f {path} ] && sha1sum -- {path}")).await?;
    Ok(first_word(&output.stdout_text()).filter(|_| output.rc == 0))
}

fn first_word(text: &str) -> Option<String> {
    text.split_whitespace().next().map(str::to_string)
}

/// The commands that bring an existing path's owner, group and mode to what was asked,
/// or nothing when it already matches.
pub fn attribute_commands(
    path: &str,
    state: &FileState,
    mode: Option<&Mode>,
    owner: Option<&str>,
    group: Option<&str>,
) -> Vec<String> {
    let mut commands = Vec::new();
    let owner_differs = owner.is_some_and(|o| o != state.owner && o != state.uid.to_string());
    let group_differs = group.is_some_and(|g| g != state.group && g != state.gid.to_string());
    if owner_differs || group_differs {
        let spec = match (owner, group) {
            (Some(owner), Some(group)) => format!("{owner}:{group}"),
            (Some(owner), None) => owner.to_string(),
            (None, Some(group)) => format!(":{group}"),
            (None, None) => unreachable!("a differing owner or group was given"),
        };
        let flag = if state.kind == FileKind::Link { "-h " } else { "" };
        commands.push(format!("chown {flag}{} -- {}", quote(&spec), quote(path)));
    }
    match mode {
        Some(Mode::Octal(bits))
            if format!("{bits:04o}") != state.mode && state.kind != FileKind::Link =>
        {
            commands.push(format!("chmod {bits:04o} -- {}", quote(path)));
        }
        Some(Mode::Symbolic(text)) if state.kind != FileKind::Link => {
            // Symbolic modes are compared after the fact: chmod is idempotent.
            commands.push(format!("chmod {} -- {}", quote(text), quote(path)));
        }
        _ => {}
    }
    commands
}

/// Applies owner/group/mode; reports whether anything changed.
pub async fn apply_attributes(
    remote: &Remote,
    path: &str,
    mode: Option<&Mode>,
    owner: Option<&str>,
    group: Option<&str>,
    check_mode: bool,
) -> Result<bool, Failure> {
    let Some(before) = lstat(remote, path).await? else { return Ok(false) };
    let commands = attribute_commands(path, &before, mode, owner, group);
    if commands.is_empty() {
        return Ok(false);
    }
    if check_mode {
        return Ok(!matches!(mode, Some(Mode::Symbolic(_))) || commands.len() > 1);
    }
    remote.check(&commands.join(" && "), &format!("setting attributes of {path}")).await?;
    let after = lstat(remote, path).await?;
    Ok(after.is_none_or(|after| {
        after.mode != before.mode || after.uid != before.uid || after.gid != before.gid
    }))
}

/// With `bramble_size` set to the content's length, a shorter temp file (the connection broke
/// while the content streamed in, so cat saw an early end) is thrown away, not installed.
const INCOMPLETE: &str = "[ -z \"${bramble_size-}\" ] || [ \"$(wc -c < \"$tmp\")\" -eq \"$bramble_size\" ] || \
     { echo 'the content arrived incomplete' >&2; exit 98; }; ";

/// A script that writes stdin to `dest` through a temporary file in the same directory and
/// renames it into place, so a reader never sees a torn file.
pub fn atomic_write_command(
    dest: &str,
    mode: Option<&Mode>,
    owner: Option<&str>,
    group: Option<&str>,
    validate: Option<&str>,
) -> String {
    let dest_q = quote(dest);
    let directory = match dest.rfind('/') {
        Some(0) => "/".to_string(),
        Some(index) => dest[..index].to_string(),
        None => ".".to_string(),
    };
    let missing = quote(&format!("Destination directory {directory} does not exist"));
    let mut script = format!(
        "set -e; [ -d {dir} ] || {{ echo {missing} >&2; exit 96; }}; tmp=$(mktemp {}/.bramble-XXXXXXXX); trap 'rm -f -- \"$tmp\"' EXIT; trap 'exit 1' HUP INT TERM PIPE; cat > \"$tmp\"; {INCOMPLETE}",
        quote(&directory),
        dir = quote(&directory),
    );
    script.push_str(&format!(
        "if [ -e {dest_q} ]; then chmod \"$(stat -c %a -- {dest_q})\" \"$tmp\"; chown \"$(stat -c %u:%g -- {dest_q})\" \"$tmp\"; \
         else chmod \"$(printf %o $((0666 & ~0$(umask))))\" \"$tmp\"; fi; "
    ));
    if let Some(mode) = mode {
        script.push_str(&format!("chmod {} \"$tmp\"; ", quote(&mode.chmod_argument())));
    }
    match (owner, group) {
        (Some(owner), Some(group)) => {
            script.push_str(&format!("chown {} \"$tmp\"; ", quote(&format!("{owner}:{group}"))))
        }
        (Some(owner), None) => script.push_str(&format!("chown {} \"$tmp\"; ", quote(owner))),
        (None, Some(group)) => script.push_str(&format!("chgrp {} \"$tmp\"; ", quote(group))),
        (None, None) => {}
    }
    if let Some(validate) = validate {
        // `%s` names the new content before it replaces anything, as Ansible's validate does.
        let check = validate.replace("%s", "\"$tmp\"");
        script.push_str(&format!("{check} >&2 || {{ echo 'failed to validate' >&2; exit 97; }}; "));
    }
    script.push_str(&format!("mv -f -- \"$tmp\" {dest_q}; trap - EXIT"));
    script
}

pub async fn write_atomic(
    remote: &Remote,
    dest: &str,
    content: &[u8],
    mode: Option<&Mode>,
    owner: Option<&str>,
    group: Option<&str>,
    validate: Option<&str>,
) -> Result<Option<FileState>, Failure> {
    let command = format!(
        "bramble_size={}; {}; {}",
        content.len(),
        atomic_write_command(dest, mode, owner, group, validate),
        stat_command(dest)
    );
    let output = remote.run_with_input(&command, Some(content)).await?;
    if output.rc == 97 {
        let mut outcome =
            super::result([("changed", Value::Bool(false)), ("exit_status", Value::from(1))]);
        outcome.insert("stderr".into(), Value::from(output.stderr_text()));
        outcome.insert("stdout".into(), Value::from(output.stdout_text()));
        outcome.insert(
            "msg".into(),
            Value::from(format!("failed to validate: rc:1 error:{}", output.stderr_text().trim())),
        );
        return Err(Failure::Failed(outcome));
    }
    if output.rc != 0 {
        let stderr = output.stderr_text();
        if output.rc == 96 {
            return Err(fail(stderr.trim().to_string()));
        }
        return Err(fail(format!("failed to write {dest}: {}", stderr.trim())));
    }
    Ok(parse_stat(&output.stdout_text()))
}

/// The keys Ansible's file-like modules report about a path.
pub fn describe(result: &mut Map<String, Value>, state: &FileState) {
    let kind = match state.kind {
        FileKind::File => "file",
        FileKind::Directory => "directory",
        FileKind::Link => "link",
        FileKind::Other => "file",
    };
    result.insert("state".into(), Value::from(kind));
    result.insert("mode".into(), Value::from(state.mode.clone()));
    result.insert("owner".into(), Value::from(state.owner.clone()));
    result.insert("group".into(), Value::from(state.group.clone()));
    result.insert("uid".into(), Value::from(state.uid));
    result.insert("gid".into(), Value::from(state.gid));
    result.insert("size".into(), Value::from(state.size));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn modes_read_like_ansible() {
        assert_eq!(Mode::parse(Some(&json!(420))).ok().flatten(), Some(Mode::Octal(0o644)));
        assert_eq!(Mode::parse(Some(&json!("0755"))).ok().flatten(), Some(Mode::Octal(0o755)));
        assert_eq!(
            Mode::parse(Some(&json!("u+rwx,g-w"))).ok().flatten(),
            Some(Mode::Symbolic("u+rwx,g-w".into()))
        );
        assert!(Mode::parse(Some(&json!("rwx"))).is_err());
    }

    #[test]
    fn stat_output_parses() {
        let state = parse_stat("regular file|644|root|root|0|0|12|1700000000\n").unwrap();
        assert_eq!((state.kind, state.mode.as_str(), state.size), (FileKind::File, "0644", 12));
        let link = parse_stat("symbolic link|777|root|root|0|0|4|1\n/tmp/x\n").unwrap();
        assert_eq!(link.link_target.as_deref(), Some("/tmp/x"));
        assert!(parse_stat("absent\n").is_none());
    }

    #[test]
    fn attributes_only_change_what_differs() {
        let state = parse_stat("regular file|644|root|root|0|0|12|1\n").unwrap();
        assert!(
            attribute_commands("/f", &state, Some(&Mode::Octal(0o644)), Some("root"), Some("0"))
                .is_empty()
        );
        assert_eq!(
            attribute_commands("/f", &state, Some(&Mode::Octal(0o600)), None, None),
            ["chmod 0600 -- /f"]
        );
        assert_eq!(
            attribute_commands("/a b", &state, None, Some("pi"), None),
            ["chown pi -- '/a b'"]
        );
    }
}
