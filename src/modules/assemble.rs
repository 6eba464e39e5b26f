//! `assemble`: concatenate a directory's fragments (sorted by name) into one file, written
//! atomically only when its checksum differs.

use std::path::Path;

use serde_json::Value;
use sha1::{Digest, Sha1};

use super::files::{self, Mode};
use super::{Call, Failure, Outcome, edit, fail, result};
use crate::connection::quote;

/// One script: the destination's SHA-1 line (empty when it has none), then
/// `missing`/`notdir`, or `ok` and each regular file of `src` as `name\0size\0bytes`.
pub fn query_command(src: &str, dest: &str) -> String {
    let (src, dest) = (quote(src), quote(dest));
    format!(
        "{{ [ -f {dest} ] && sha1sum -- {dest} | cut -d' ' -f1; }} || echo; \
         if [ ! -e {src} ]; then echo missing; exit 0; fi; if [ ! -d {src} ]; then echo notdir; exit 0; fi; \
         echo ok; cd {src} || exit 1; \
         for f in * .*; do [ -f \"$f\" ] || continue; printf '%s\\0%s\\0' \"$f\" \"$(wc -c < \"$f\")\"; cat -- \"$f\"; done"
    )
}

/// The fragments in what `query_command` printed after its two lines.
pub fn parse_fragments(mut bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut fragments = Vec::new();
    while !bytes.is_empty() {
        let Some(end) = bytes.iter().position(|b| *b == 0) else { break };
        let name = String::from_utf8_lossy(&bytes[..end]).into_owned();
        bytes = &bytes[end + 1..];
        let Some(end) = bytes.iter().position(|b| *b == 0) else { break };
        let size: usize = String::from_utf8_lossy(&bytes[..end]).trim().parse().unwrap_or(0);
        bytes = &bytes[end + 1..];
        let size = size.min(bytes.len());
        fragments.push((name, bytes[..size].to_vec()));
        bytes = &bytes[size..];
    }
    fragments
}

/// Python's `codecs.escape_decode` for the escapes a delimiter uses.
pub fn unescape(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut characters = text.chars().peekable();
    while let Some(c) = characters.next() {
        if c != '\\' {
            let mut buffer = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
            continue;
        }
        match characters.next() {
            Some('n') => out.push(b'\n'),
            Some('t') => out.push(b'\t'),
            Some('r') => out.push(b'\r'),
            Some('0') => out.push(0),
            Some('\\') => out.push(b'\\'),
            Some('\'') => out.push(b'\''),
            Some('"') => out.push(b'"'),
            Some('x') => {
                let hex: String = characters.by_ref().take(2).collect();
                out.push(u8::from_str_radix(&hex, 16).unwrap_or(b'?'));
            }
            Some(other) => {
                out.push(b'\\');
                let mut buffer = [0; 4];
                out.extend_from_slice(other.encode_utf8(&mut buffer).as_bytes());
            }
            None => out.push(b'\\'),
        }
    }
    out
}

/// The assembled bytes: fragments in name order, a delimiter line between them, and a
/// newline after a fragment that lacks one (when another follows).
pub fn assemble(
    mut fragments: Vec<(String, Vec<u8>)>,
    delimiter: Option<&str>,
    regexp: Option<&fancy_regex::Regex>,
    ignore_hidden: bool,
) -> Vec<u8> {
    fragments.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut out = Vec::new();
    let mut first = true;
    let mut add_newline = false;
    for (name, content) in fragments {
        if regexp.is_some_and(|regexp| !edit::search(regexp, &name))
            || (ignore_hidden && name.starts_with('.'))
        {
            continue;
        }
        if add_newline {
            out.push(b'\n');
        }
        if !first && let Some(delimiter) = delimiter.filter(|d| !d.is_empty()) {
            let delimiter = unescape(delimiter);
            out.extend_from_slice(&delimiter);
            if delimiter.last() != Some(&b'\n') {
                out.push(b'\n');
            }
        }
        first = false;
        add_newline = !content.ends_with(b"\n");
        out.extend_from_slice(&content);
    }
    out
}

fn local_fragments(src: &Path) -> Result<Vec<(String, Vec<u8>)>, Failure> {
    let entries = std::fs::read_dir(src)
        .map_err(|error| fail(format!("Source ({}) is not a directory: {error}", src.display())))?;
    let mut fragments = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_file() {
            let bytes = std::fs::read(&path)
                .map_err(|error| fail(format!("could not read {}: {error}", path.display())))?;
            fragments.push((entry.file_name().to_string_lossy().into_owned(), bytes));
        }
    }
    Ok(fragments)
}

pub async fn run(call: &mut Call<'_>) -> Outcome {
    let src = call.args.required(&["src"])?;
    let dest = call.args.required(&["dest"])?;
    let remote_src = call.args.flag(&["remote_src"], true)?;
    let delimiter = call.args.string(&["delimiter"]);
    let regexp = match call.args.string(&["regexp"]) {
        Some(text) => Some(
            fancy_regex::Regex::new(&text)
                .map_err(|error| fail(format!("Invalid Regexp ({error}) in \"{text}\"")))?,
        ),
        None => None,
    };
    let ignore_hidden = call.args.flag(&["ignore_hidden"], false)?;
    let validate = call.args.string(&["validate"]);
    if let Some(check) = &validate
        && !check.contains("%s")
    {
        return Err(fail(format!("validate must contain %s: {check}")));
    }
    let backup = call.args.flag(&["backup"], false)?;
    let mode = Mode::parse(call.args.value(&["mode"]))?;
    let owner = call.args.string(&["owner"]);
    let group = call.args.string(&["group"]);

    // Query: the fragments (on the host, or on the controller) and the current checksum.
    let output = call.remote.check(&query_command(&src, &dest), "reading fragments").await?;
    let (dest_hash, rest) = split_line(&output.stdout);
    let (status, rest) = split_line(rest);
    let fragments = match (status, remote_src) {
        (b"missing", true) => return Err(fail(format!("Source ({src}) does not exist"))),
        (b"notdir", true) => return Err(fail(format!("Source ({src}) is not a directory"))),
        (_, true) => parse_fragments(rest),
        (_, false) => {
            let base = call.search_paths.last().map(|p| p.join(&src));
            let local =
                base.filter(|_| !src.starts_with('/')).unwrap_or_else(|| src.clone().into());
            local_fragments(&local)?
        }
    };
    let content = assemble(fragments, delimiter.as_deref(), regexp.as_ref(), ignore_hidden);
    let checksum = hex::encode(Sha1::digest(&content));
    let dest_hash = String::from_utf8_lossy(dest_hash).trim().to_string();

    let mut outcome = result([
        ("src", Value::from(src.clone())),
        ("dest", Value::from(dest.clone())),
        ("checksum", Value::from(checksum.clone())),
        ("md5sum", Value::from(format!("{:x}", md5::compute(&content)))),
    ]);
    let mut changed = false;
    if checksum != dest_hash {
        changed = true;
        // As in Ansible, check mode names the backup it would make without making it.
        if backup && !dest_hash.is_empty() {
            let stamp = chrono::Local::now().format("%Y-%m-%d@%H:%M:%S~");
            let name = format!("{dest}.{}.{stamp}", std::process::id());
            if !call.check_mode {
                let copy = format!("cp -p -- {} {}", quote(&dest), quote(&name));
                call.remote.check(&copy, "backup").await?;
            }
            outcome.insert("backup_file".into(), Value::from(name));
        }
        if !call.check_mode {
            files::write_atomic(
                call.remote,
                &dest,
                &content,
                None,
                None,
                None,
                validate.as_deref(),
            )
            .await?;
        }
    }
    let exists = !call.check_mode || !dest_hash.is_empty();
    if exists {
        let attributes = files::apply_attributes(
            call.remote,
            &dest,
            mode.as_ref(),
            owner.as_deref(),
            group.as_deref(),
            call.check_mode,
        )
        .await?;
        changed |= attributes;
    }
    outcome.insert("changed".into(), Value::Bool(changed));
    outcome.insert("msg".into(), Value::from("OK"));
    Ok(outcome)
}

fn split_line(bytes: &[u8]) -> (&[u8], &[u8]) {
    match bytes.iter().position(|b| *b == b'\n') {
        Some(index) => (&bytes[..index], &bytes[index + 1..]),
        None => (bytes, &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fragments(items: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        items.iter().map(|(n, c)| (n.to_string(), c.as_bytes().to_vec())).collect()
    }

    #[test]
    fn fragments_join_in_name_order_with_delimiters() {
        let parts = fragments(&[("20-b", "b"), ("10-a", "a\n"), (".hidden", "h\n")]);
        assert_eq!(assemble(parts.clone(), None, None, true), b"a\nb");
        assert_eq!(assemble(parts.clone(), Some("### \\t"), None, true), b"a\n### \t\nb");
        let regexp = fancy_regex::Regex::new("^20").unwrap();
        assert_eq!(assemble(parts, None, Some(&regexp), false), b"b");
        let unterminated = fragments(&[("1", "x"), ("2", "y")]);
        assert_eq!(assemble(unterminated, Some("--"), None, false), b"x\n--\ny");
    }

    #[test]
    fn query_output_parses() {
        let parsed = parse_fragments(b"a\x003\0ab\nb\x000\0");
        assert_eq!(parsed, fragments(&[("a", "ab\n"), ("b", "")]));
        assert!(query_command("/etc/x.d", "/etc/x").contains("cd /etc/x.d || exit 1"));
    }
}
