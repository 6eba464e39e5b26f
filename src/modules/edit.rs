//! What lineinfile, blockinfile and replace share: the file is read over the connection in one
//! command, edited on the controller by a pure function, and written back atomically only
//! when its text changed. Patterns follow Python's `re` (through fancy-regex).

use fancy_regex::{Captures, Regex};
use serde_json::{Map, Value};

use super::files::{self, FileState, Mode};
use super::{Call, Failure, fail};
use crate::connection::quote;

/// A file to edit as the query found it.
#[derive(Debug)]
pub enum Found {
    Absent,
    Directory,
    /// A file (a symlink is followed): its state, the real path to write, and its text.
    File {
        state: FileState,
        real_path: String,
        text: String,
    },
}

/// One script: what the path is, the path symlinks lead to (the path itself when it is no
/// symlink, without running readlink), then the bytes of the file.
pub fn query_command(path: &str) -> String {
    let path = quote(path);
    format!(
        "if [ -d {path} ]; then echo directory; elif [ -e {path} ]; then \
         stat -L -c '%F|%a|%U|%G|%u|%g|%s|%Y' -- {path} && \
         {{ if [ -L {path} ]; then readlink -f -- {path}; else printf '%s\\n' {path}; fi; }} && \
         cat -- {path}; else echo absent; fi"
    )
}

/// Parses what `query_command` printed.
pub fn parse_query(stdout: &[u8]) -> Result<Found, String> {
    let (first, rest) = split_line(stdout);
    match first {
        b"absent" => return Ok(Found::Absent),
        b"directory" => return Ok(Found::Directory),
        _ => {}
    }
    let state = files::parse_stat(&String::from_utf8_lossy(first))
        .ok_or_else(|| format!("unexpected stat output: {}", String::from_utf8_lossy(first)))?;
    let (real_path, content) = split_line(rest);
    let text = String::from_utf8(content.to_vec())
        .map_err(|_| "not supported yet: editing a file that is not UTF-8 text".to_string())?;
    Ok(Found::File { state, real_path: String::from_utf8_lossy(real_path).into_owned(), text })
}

fn split_line(bytes: &[u8]) -> (&[u8], &[u8]) {
    match bytes.iter().position(|b| *b == b'\n') {
        Some(index) => (&bytes[..index], &bytes[index + 1..]),
        None => (bytes, &[]),
    }
}

pub async fn query(call: &Call<'_>, path: &str) -> Result<Found, Failure> {
    let output = call.remote.run(&query_command(path)).await?;
    if output.rc != 0 {
        return Err(fail(format!("Unable to read {path}: {}", output.stderr_text().trim())));
    }
    parse_query(&output.stdout).map_err(fail)
}

/// A failure with Ansible's `rc` for path problems (256 directory, 257 missing).
pub fn path_failure(rc: i64, message: String) -> Failure {
    let mut result = Map::new();
    result.insert("changed".into(), Value::Bool(false));
    result.insert("rc".into(), Value::from(rc));
    result.insert("msg".into(), Value::String(message));
    Failure::Failed(result)
}

/// Compiles a user pattern, naming the parameter it came from when it is not valid.
pub fn compile(pattern: &str, parameter: &str) -> Result<Regex, Failure> {
    Regex::new(&python_pattern(pattern))
        .map_err(|error| fail(format!("invalid {parameter} `{pattern}`: {error}")))
}

/// Python spells "end of text" `\Z`; the Rust engines spell it `\z`.
fn python_pattern(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut characters = pattern.chars();
    while let Some(c) = characters.next() {
        if c == '\\' {
            match characters.next() {
                Some('Z') => out.push_str("\\z"),
                Some(next) => {
                    out.push('\\');
                    out.push(next);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether a pattern matches somewhere in `text`; an engine error counts as no match.
pub fn search(regex: &Regex, text: &str) -> bool {
    regex.is_match(text).unwrap_or(false)
}

/// Expands a Python `re` replacement template (`\1`, `\g<name>`, `\n`, …) for one match.
pub fn expand(template: &str, captures: &Captures<'_, str>) -> Result<String, String> {
    let mut out = String::new();
    let mut characters = template.chars().peekable();
    let group = |name: &str| -> Result<String, String> {
        let found = match name.parse::<usize>() {
            Ok(index) if index < captures.len() => captures.get(index),
            Ok(index) => return Err(format!("invalid group reference {index}")),
            Err(_) => captures.name(name),
        };
        Ok(found.map(|m| m.as_str().to_string()).unwrap_or_default())
    };
    while let Some(c) = characters.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match characters.next() {
            None => return Err("bad escape (end of pattern)".into()),
            Some('g') => {
                if characters.next() != Some('<') {
                    return Err("missing < after \\g".into());
                }
                let name: String = characters.by_ref().take_while(|c| *c != '>').collect();
                out.push_str(&group(&name)?);
            }
            Some(d) if d.is_ascii_digit() => {
                let mut digits = d.to_string();
                if let Some(next) = characters.peek().copied().filter(char::is_ascii_digit) {
                    digits.push(next);
                    characters.next();
                }
                out.push_str(&group(&digits)?);
            }
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some('v') => out.push('\x0b'),
            Some('a') => out.push('\x07'),
            Some('\\') => out.push('\\'),
            Some(letter) if letter.is_ascii_alphabetic() => {
                return Err(format!("bad escape \\{letter}"));
            }
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
        }
    }
    Ok(out)
}

/// Python's `str.splitlines(True)` on bytes: pieces end at `\n`, `\r\n` or a lone `\r`.
pub fn split_lines_keep(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    let mut characters = text.chars().peekable();
    while let Some(c) = characters.next() {
        current.push(c);
        if c == '\r' && characters.peek() == Some(&'\n') {
            continue;
        }
        if c == '\n' || c == '\r' {
            lines.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        lines.push(current);
    }
    lines
}

/// The file parameters every editing module takes.
pub struct FileArgs {
    pub mode: Option<Mode>,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub backup: bool,
    pub validate: Option<String>,
}

impl FileArgs {
    pub fn read(call: &Call<'_>) -> Result<FileArgs, Failure> {
        let validate = call.args.string(&["validate"]);
        if let Some(check) = &validate
            && !check.contains("%s")
        {
            return Err(fail(format!("validate must contain %s: {check}")));
        }
        Ok(FileArgs {
            mode: Mode::parse(call.args.value(&["mode"]))?,
            owner: call.args.string(&["owner"]),
            group: call.args.string(&["group"]),
            backup: call.args.flag(&["backup"], false)?,
            validate,
        })
    }
}

/// What writing back did: whether anything changed, the message, and the backup made.
pub struct Committed {
    pub changed: bool,
    pub msg: String,
    pub backup: Option<String>,
}

/// Writes `after` over the file when the text changed (not in check mode), then brings
/// owner/group/mode to what was asked, extending `msg` as Ansible's `check_file_attrs` does.
pub async fn commit(
    call: &Call<'_>,
    path: &str,
    found: &Found,
    after: Option<&str>,
    msg: &str,
    args: &FileArgs,
) -> Result<Committed, Failure> {
    let (state, real_path) = match found {
        Found::File { state, real_path, .. } => (Some(state), real_path.as_str()),
        _ => (None, path),
    };

    // Attributes of an existing file are compared with what the query saw; the write keeps
    // them, so the same commands apply after it.
    let symbolic = matches!(args.mode, Some(Mode::Symbolic(_)));
    let attribute_commands = match state {
        Some(state) if !symbolic => files::attribute_commands(
            real_path,
            state,
            args.mode.as_ref(),
            args.owner.as_deref(),
            args.group.as_deref(),
        ),
        _ => Vec::new(),
    };
    let mut committed = Committed { changed: after.is_some(), msg: msg.to_string(), backup: None };

    if !call.check_mode {
        if let Some(text) = after {
            let mut script = String::new();
            if state.is_none() {
                script.push_str(&mkdir_parent(real_path));
            }
            if args.backup && state.is_some() {
                let backup = backup_name(path);
                script.push_str(&format!("cp -p -- {} {} && ", quote(real_path), quote(&backup)));
                committed.backup = Some(backup);
            }
            script.push_str(&files::atomic_write_command(
                real_path,
                files::Fill::Stdin,
                None,
                None,
                None,
                args.validate.as_deref(),
            ));
            write(call, &script, text.as_bytes(), real_path).await?;
        }
        if !attribute_commands.is_empty() {
            let what = format!("setting attributes of {real_path}");
            call.remote.check(&attribute_commands.join(" && "), &what).await?;
        }
    }

    let mut attributes_changed = !attribute_commands.is_empty();
    let exists_now = state.is_some() || (after.is_some() && !call.check_mode);
    if (state.is_none() || symbolic) && exists_now {
        attributes_changed = files::apply_attributes(
            call.remote,
            real_path,
            args.mode.as_ref(),
            args.owner.as_deref(),
            args.group.as_deref(),
            call.check_mode,
        )
        .await?;
    }
    if attributes_changed {
        if committed.changed {
            committed.msg.push_str(" and ");
        }
        committed.changed = true;
        committed.msg.push_str("ownership, perms or SE linux context changed");
    }
    Ok(committed)
}

fn mkdir_parent(path: &str) -> String {
    match path.rfind('/') {
        Some(index) if index > 0 => format!("mkdir -p -- {} && ", quote(&path[..index])),
        _ => String::new(),
    }
}

/// Ansible's backup name: `<path>.<pid>.<YYYY-MM-DD@HH:MM:SS~>`.
pub fn backup_name(path: &str) -> String {
    let stamp = chrono::Local::now().format("%Y-%m-%d@%H:%M:%S~");
    format!("{path}.{}.{stamp}", std::process::id())
}

async fn write(call: &Call<'_>, script: &str, content: &[u8], path: &str) -> Result<(), Failure> {
    let sized = format!("bramble_size={}; {script}", content.len());
    let output = call.remote.run_with_input(&sized, Some(content)).await?;
    match output.rc {
        0 => Ok(()),
        97 => {
            // The script's own note on the last line is not the validator's error output.
            let stderr = output.stderr_text();
            let error = stderr.strip_suffix("failed to validate\n").unwrap_or(&stderr);
            let mut result = Map::new();
            result.insert("changed".into(), Value::Bool(false));
            result.insert(
                "msg".into(),
                Value::from(format!("failed to validate: rc:1 error:{error}")),
            );
            Err(Failure::Failed(result))
        }
        _ => Err(fail(format!("failed to write {path}: {}", output.stderr_text().trim()))),
    }
}

/// The `diff` Ansible's editing modules return: the content, then the attributes.
pub fn content_diff(path: &str, before: &str, after: &str) -> Value {
    serde_json::json!([
        {
            "before": before,
            "after": after,
            "before_header": format!("{path} (content)"),
            "after_header": format!("{path} (content)"),
        },
        {
            "before_header": format!("{path} (file attributes)"),
            "after_header": format!("{path} (file attributes)"),
        }
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_output_parses() {
        let out = b"regular file|644|root|root|0|0|4|1\n/etc/real\nab\nc";
        let Ok(Found::File { state, real_path, text }) = parse_query(out) else { panic!() };
        assert_eq!(
            (state.mode.as_str(), real_path.as_str(), text.as_str()),
            ("0644", "/etc/real", "ab\nc")
        );
        assert!(matches!(parse_query(b"absent\n"), Ok(Found::Absent)));
        assert!(matches!(parse_query(b"directory\n"), Ok(Found::Directory)));
        assert!(parse_query(b"regular file|644|r|r|0|0|1|1\n/x\n\xff").is_err());
    }

    #[test]
    fn query_quotes_the_path() {
        assert!(query_command("/a b").contains("[ -d '/a b' ]"));
    }

    #[test]
    fn templates_expand_like_python() {
        let regex = compile(r"^(?P<key>\w+)=(\d+)$", "regexp").unwrap();
        let captures = regex.captures("port=22").unwrap().unwrap();
        assert_eq!(expand(r"\1: \2", &captures).unwrap(), "port: 22");
        assert_eq!(expand(r"\g<key>\t\g<2>\.", &captures).unwrap(), "port\t22\\.");
        assert!(expand(r"\q", &captures).is_err());
        assert!(expand(r"\5", &captures).is_err());
    }

    #[test]
    fn lines_split_like_python_bytes() {
        assert_eq!(split_lines_keep("a\r\nb\rc\nd"), ["a\r\n", "b\r", "c\n", "d"]);
        assert!(split_lines_keep("").is_empty());
    }

    #[test]
    fn end_of_text_is_translated() {
        assert!(search(&compile(r"x\Z", "regexp").unwrap(), "ax"));
        assert!(search(&compile(r"^(?!#)Port", "regexp").unwrap(), "Port 22"));
    }
}
