//! Shared file planners: reading a path's state, permissions, and atomic writes on the host.

use serde_json::{Map, Value};

use super::{Failure, Remote, fail};
use crate::connection::{Output, quote};

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

    /// The bits this mode gives a path whose bits are `current`, as ansible-core works out
    /// a symbolic mode (no `who` means `a`, the umask plays no part; `X` counts for a
    /// directory or when anyone may execute). `None` for a clause it cannot read.
    pub fn resolve(&self, current: u32, is_directory: bool) -> Option<u32> {
        let text = match self {
            Mode::Octal(bits) => return Some(*bits),
            Mode::Symbolic(text) => text,
        };
        let mut mode = current & 0o7777;
        for clause in text.split(',') {
            let split = clause.find(['+', '-', '='])?;
            let (who, mut rest) = clause.split_at(split);
            let who = if who.is_empty() || who.contains('a') { "ugo" } else { who };
            if !who.chars().all(|c| "ugo".contains(c)) {
                return None;
            }
            while let Some(operator) = rest.chars().next() {
                let perms_end = rest[1..].find(['+', '-', '=']).map_or(rest.len(), |i| i + 1);
                let perms = &rest[1..perms_end];
                rest = &rest[perms_end..];
                let before = mode;
                let mut bits = 0;
                let mut mask = 0;
                for class in who.chars() {
                    let shift = match class {
                        'u' => 6,
                        'g' => 3,
                        _ => 0,
                    };
                    mask |= (0o7 << shift)
                        | match class {
                            'u' => 0o4000,
                            'g' => 0o2000,
                            _ => 0o1000,
                        };
                    for perm in perms.chars() {
                        bits |= match perm {
                            'r' => 0o4 << shift,
                            'w' => 0o2 << shift,
                            'x' => 0o1 << shift,
                            'X' if is_directory || before & 0o111 != 0 => 0o1 << shift,
                            'X' => 0,
                            's' if class == 'u' => 0o4000,
                            's' if class == 'g' => 0o2000,
                            't' if class == 'o' => 0o1000,
                            's' | 't' => 0,
                            'u' => ((before >> 6) & 0o7) << shift,
                            'g' => ((before >> 3) & 0o7) << shift,
                            'o' => (before & 0o7) << shift,
                            _ => return None,
                        };
                    }
                }
                mode = match operator {
                    '+' => mode | bits,
                    '-' => mode & !bits,
                    _ => (mode & !mask) | bits,
                };
            }
        }
        Some(mode)
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
        return Ok((would_change(&commands, mode, state), state.clone()));
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
        return Ok(would_change(&commands, mode, &before));
    }
    remote.check(&commands.join(" && "), &format!("setting attributes of {path}")).await?;
    let after = lstat(remote, path).await?;
    Ok(after.is_none_or(|after| {
        after.mode != before.mode || after.uid != before.uid || after.gid != before.gid
    }))
}

/// Whether attribute commands would change anything, told without running them (check
/// mode): each does, but for a lone symbolic chmod, which changes only bits that differ; a
/// symbolic mode it cannot work out counts as a change.
fn would_change(commands: &[String], mode: Option<&Mode>, state: &FileState) -> bool {
    let symbolic_only = commands.len() == 1 && matches!(mode, Some(Mode::Symbolic(_)));
    if !symbolic_only {
        return true;
    }
    let Some(current) = u32::from_str_radix(&state.mode, 8).ok() else { return true };
    let resolved = mode.and_then(|mode| mode.resolve(current, state.kind == FileKind::Directory));
    resolved.is_none_or(|bits| bits != current)
}

/// What `stat -c` prints for [`parse_stat`], as one format string.
const STAT_FORMAT: &str = "%F|%a|%U|%G|%u|%g|%s|%Y";

/// A name for a temporary file that no other write (of this or another controller) picks.
fn temp_name() -> String {
    format!(".bramble-{}", nonce())
}

/// Sixteen hex digits no other call (of this or another controller) returns: the process id,
/// a counter and the clock, hashed with a per-process random key.
pub fn nonce() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static KEY: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    let mut hasher = KEY.get_or_init(Default::default).build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    hasher.write_u128(nanos.map(|since| since.as_nanos()).unwrap_or_default());
    format!("{:016x}", hasher.finish())
}

/// Where the new content comes from in an atomic write.
#[derive(Clone, Copy, Debug)]
pub enum Fill<'a> {
    /// The command's stdin (checked against `bramble_size` when the caller sets it).
    Stdin,
    /// A file already on the host.
    RemoteFile(&'a str),
    /// A file already on the host, removed once read (a download's temporary file).
    TakeRemoteFile(&'a str),
}

/// A script that writes new content to `dest` through a temporary file in the same directory
/// and renames it into place, so a reader never sees a torn file; it prints the state of
/// `dest` afterwards as [`stat_command`] does. The new file keeps the mode and owner of the
/// one it replaces unless others are asked for.
///
/// Every process counts on a small host, so the script starts few: `cat`, one `stat` that
/// gives the temp file's size and state and the old file's mode and owner, `mv`, and `chmod`
/// or `chown` only where they change something (then a second `stat` for the names).
pub fn atomic_write_command(
    dest: &str,
    fill: Fill<'_>,
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
    let temp = quote(&format!("{}/{}", directory.trim_end_matches('/'), temp_name()));
    let fill = match fill {
        Fill::Stdin => "cat > \"$tmp\"".to_string(),
        Fill::RemoteFile(source) => format!("cat -- {} > \"$tmp\"", quote(source)),
        Fill::TakeRemoteFile(source) => {
            format!("cat -- {0} > \"$tmp\"; rm -f -- {0}", quote(source))
        }
    };
    let mut steps = vec![
        "set -e".to_string(),
        format!("[ -d {dir} ] || {{ echo {missing} >&2; exit 96; }}", dir = quote(&directory)),
        format!("tmp={temp}"),
        "trap 'rm -f -- \"$tmp\"' EXIT".to_string(),
        "trap 'exit 1' HUP INT TERM PIPE".to_string(),
        // noclobber: the temp file is created, never one that exists already opened.
        format!("set -C; {fill}; set +C"),
        // $1..$8: the temp file; $9..$16: what dest (followed) is now, when it exists.
        format!(
            "info=$(stat -L -c '{STAT_FORMAT}' -- \"$tmp\" {dest_q} 2>/dev/null) || true; \
             IFS='|\n'; set -- $info; unset IFS; restat="
        ),
        // A connection cut while the content streamed in makes cat see an early end: a
        // shorter temp file is thrown away, not installed.
        "[ -z \"${bramble_size-}\" ] || [ \"$7\" = \"$bramble_size\" ] || \
         { echo 'the content arrived incomplete' >&2; exit 98; }"
            .to_string(),
    ];
    if !matches!(mode, Some(Mode::Octal(_))) {
        steps.push(
            "if [ $# -gt 8 ] && [ \"${10}\" != \"$2\" ]; then chmod \"${10}\" \"$tmp\"; restat=1; fi"
                .to_string(),
        );
    }
    steps.push(
        "if [ $# -gt 8 ] && [ \"${13}:${14}\" != \"$5:$6\" ]; then \
         chown \"${13}:${14}\" \"$tmp\"; restat=1; fi"
            .to_string(),
    );
    match mode {
        Some(Mode::Octal(bits)) => steps.push(format!(
            "if [ \"$2\" != {bits:o} ]; then chmod {bits:04o} \"$tmp\"; restat=1; fi"
        )),
        Some(Mode::Symbolic(text)) => {
            steps.push(format!("chmod {} \"$tmp\"; restat=1", quote(text)))
        }
        None => {}
    }
    let ownership = match (owner, group) {
        (Some(owner), Some(group)) => Some(format!("chown {}", quote(&format!("{owner}:{group}")))),
        (Some(owner), None) => Some(format!("chown {}", quote(owner))),
        (None, Some(group)) => Some(format!("chgrp {}", quote(group))),
        (None, None) => None,
    };
    if let Some(ownership) = ownership {
        steps.push(format!("{ownership} \"$tmp\"; restat=1"));
    }
    if let Some(validate) = validate {
        // `%s` names the new content before it replaces anything, as Ansible's validate does.
        let check = validate.replace("%s", "\"$tmp\"");
        steps.push(format!("{check} >&2 || {{ echo 'failed to validate' >&2; exit 97; }}"));
    }
    steps.push(format!("mv -f -- \"$tmp\" {dest_q}; trap - EXIT"));
    // The rename keeps what the first stat saw, unless chmod or chown ran since.
    steps.push(format!(
        "if [ -n \"$restat\" ]; then stat -c '{STAT_FORMAT}' -- {dest_q}; \
         else printf '%s|%s|%s|%s|%s|%s|%s|%s\\n' \"$1\" \"$2\" \"$3\" \"$4\" \"$5\" \"$6\" \"$7\" \"$8\"; fi"
    ));
    steps.join("; ")
}

/// Writes `content` to `dest` atomically (see [`atomic_write_command`]); the state after.
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
        "bramble_size={}; {}",
        content.len(),
        atomic_write_command(dest, Fill::Stdin, mode, owner, group, validate)
    );
    let output = remote.run_with_input(&command, Some(content)).await?;
    written(&output, dest)
}

/// Reads the outcome of an [`atomic_write_command`]: the state after, or why it failed.
pub fn written(output: &Output, dest: &str) -> Result<Option<FileState>, Failure> {
    match output.rc {
        0 => Ok(parse_stat(&output.stdout_text())),
        97 => {
            let mut outcome =
                super::result([("changed", Value::Bool(false)), ("exit_status", Value::from(1))]);
            outcome.insert("stderr".into(), Value::from(output.stderr_text()));
            outcome.insert("stdout".into(), Value::from(output.stdout_text()));
            outcome.insert(
                "msg".into(),
                Value::from(format!(
                    "failed to validate: rc:1 error:{}",
                    output.stderr_text().trim()
                )),
            );
            Err(Failure::Failed(outcome))
        }
        96 => Err(fail(output.stderr_text().trim().to_string())),
        _ => Err(fail(format!("failed to write {dest}: {}", output.stderr_text().trim()))),
    }
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
pub(crate) mod tests {
    use super::*;

    #[test]
    fn symbolic_modes_resolve_as_ansible_core_works_them_out() {
        let resolve = |text: &str, current: u32, directory: bool| {
            Mode::Symbolic(text.into()).resolve(current, directory)
        };
        assert_eq!(resolve("u=rw,g=r,o=", 0o644, false), Some(0o640));
        assert_eq!(resolve("g+w,o-r", 0o644, false), Some(0o660));
        assert_eq!(resolve("u+x", 0o644, false), Some(0o744));
        assert_eq!(resolve("+x", 0o644, false), Some(0o755));
        assert_eq!(resolve("a-w", 0o664, false), Some(0o444));
        assert_eq!(resolve("u=rw,g=r,o=r", 0o644, false), Some(0o644));
        assert_eq!(resolve("a+X", 0o644, false), Some(0o644));
        assert_eq!(resolve("a+X", 0o644, true), Some(0o755));
        assert_eq!(resolve("a+X", 0o744, false), Some(0o755));
        assert_eq!(resolve("g=u", 0o640, false), Some(0o660));
        assert_eq!(resolve("u+s,o+t", 0o755, true), Some(0o5755));
        assert_eq!(resolve("u+rw-x", 0o700, false), Some(0o600));
        assert_eq!(resolve("z+x", 0o644, false), None);
    }
    use serde_json::json;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    /// Runs a script as a host's shell would (dash, as /bin/sh on Debian, and bash, a login
    /// shell), feeding `input`; the exit code and stdout of each.
    pub(crate) fn shells(script: &str, input: &[u8]) -> Vec<(i32, String)> {
        SHELLS.iter().map(|shell| run_in(shell, script, input)).collect()
    }

    pub(crate) const SHELLS: [&str; 2] = ["sh", "bash"];

    pub(crate) fn run_in(shell: &str, script: &str, input: &[u8]) -> (i32, String) {
        let mut child = std::process::Command::new(shell)
            .args(["-c", script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("a shell");
        child.stdin.take().expect("stdin").write_all(input).expect("input");
        let output = child.wait_with_output().expect("shell output");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        (output.status.code().unwrap_or(-1), stdout)
    }

    fn mode_of(path: &std::path::Path) -> u32 {
        std::fs::metadata(path).expect("metadata").permissions().mode() & 0o7777
    }

    fn leftovers(directory: &std::path::Path) -> Vec<String> {
        std::fs::read_dir(directory)
            .expect("read_dir")
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|name| name.starts_with(".bramble-"))
            .collect()
    }

    #[test]
    fn atomic_write_keeps_the_old_mode_and_prints_the_new_state() {
        let dir = tempfile::tempdir().expect("temp dir");
        let dest = dir.path().join("motd");
        let dest_text = dest.to_str().expect("utf-8 path");
        for (rc, stdout) in {
            std::fs::write(&dest, "old\n").expect("old content");
            std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o600)).expect("mode");
            let script = format!(
                "bramble_size=4; {}",
                atomic_write_command(dest_text, Fill::Stdin, None, None, None, None)
            );
            shells(&script, b"new\n")
        } {
            assert_eq!(rc, 0, "{stdout}");
            let state = parse_stat(&stdout).expect("a state");
            assert_eq!((state.kind, state.mode.as_str(), state.size), (FileKind::File, "0600", 4));
            assert_eq!(std::fs::read_to_string(&dest).expect("content"), "new\n");
            assert_eq!(mode_of(&dest), 0o600);
        }
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn atomic_write_of_a_new_file_gets_the_mode_asked_or_the_umask() {
        let dir = tempfile::tempdir().expect("temp dir");
        let dest = dir.path().join("new");
        let dest_text = dest.to_str().expect("utf-8 path");
        for (mode, expected) in [(Some(Mode::Octal(0o640)), "0640"), (None, "0644")] {
            let write =
                atomic_write_command(dest_text, Fill::Stdin, mode.as_ref(), None, None, None);
            let script = format!("umask 022; rm -f -- {}; {write}", quote(dest_text));
            for (rc, stdout) in shells(&script, b"x") {
                assert_eq!(rc, 0, "{stdout}");
                assert_eq!(parse_stat(&stdout).expect("a state").mode, expected);
                assert_eq!(format!("{:04o}", mode_of(&dest)), expected);
            }
        }
    }

    #[test]
    fn atomic_write_throws_away_content_cut_short() {
        let dir = tempfile::tempdir().expect("temp dir");
        let dest = dir.path().join("big");
        std::fs::write(&dest, "old").expect("old content");
        let script = format!(
            "bramble_size=10; {}",
            atomic_write_command(dest.to_str().expect("path"), Fill::Stdin, None, None, None, None)
        );
        for (rc, _) in shells(&script, b"short") {
            assert_eq!(rc, 98);
        }
        assert_eq!(std::fs::read_to_string(&dest).expect("content"), "old");
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn atomic_write_starts_no_process_it_can_do_without() {
        let script = atomic_write_command("/etc/motd", Fill::Stdin, None, None, None, None);
        assert!(!script.contains("mktemp") && !script.contains("wc "), "{script}");
        assert_eq!(script.matches("stat -").count(), 2, "{script}");
        let other = atomic_write_command("/etc/motd", Fill::Stdin, None, None, None, None);
        assert_ne!(script, other, "each write gets its own temp file name");
    }

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
