//! `fetch`: copy a file from the host to the controller, under `dest/<host>/<path>` or,
//! with `flat`, to `dest` itself; written only when the checksum differs.

use std::path::{Component, Path, PathBuf};

use serde_json::{Map, Value};
use sha1::{Digest, Sha1};

use super::{Call, Failure, Outcome, fail, result};

/// Where the file lands on the controller, as Ansible's fetch action computes it.
pub fn destination(
    dest: &str,
    src: &str,
    flat: bool,
    host: &str,
    base: &Path,
) -> Result<PathBuf, String> {
    let anchored =
        |path: &str| if path.starts_with('/') { PathBuf::from(path) } else { base.join(path) };
    let path = if flat {
        if !dest.ends_with('/') && anchored(dest).is_dir() {
            return Err("dest is an existing directory, use a trailing slash if you want to fetch src into that directory".into());
        }
        if dest.ends_with('/') {
            let name = src.rsplit('/').next().unwrap_or(src);
            let joined = anchored(&format!("{dest}{name}"));
            if joined.is_dir() {
                return Err(format!(
                    "calculated dest '{}' is an existing directory, use another path that does not point to an existing directory",
                    joined.display()
                ));
            }
            joined
        } else {
            anchored(dest)
        }
    } else {
        anchored(&format!("{}/{host}/{src}", dest.trim_end_matches('/')))
    };
    Ok(normalize(&path))
}

/// `os.path.normpath` for absolute paths: no `.`, no `..`, no doubled slashes.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

fn sha1_hex(bytes: &[u8]) -> String {
    hex::encode(Sha1::digest(bytes))
}

pub async fn run(call: &mut Call<'_>) -> Outcome {
    if call.check_mode {
        return Ok(result([
            ("changed", Value::Bool(false)),
            ("skipped", Value::Bool(true)),
            ("msg", Value::from("check mode not (yet) supported for this module")),
        ]));
    }
    let (Some(src), Some(dest)) = (call.args.string(&["src"]), call.args.string(&["dest"])) else {
        return Err(fail("src and dest are required"));
    };
    let flat = call.args.flag(&["flat"], false)?;
    let fail_on_missing = call.args.flag(&["fail_on_missing"], true)?;
    let validate_checksum = call.args.flag(&["validate_checksum"], true)?;

    let data = match super::slurp::read(call, &src).await? {
        Ok(data) => data,
        Err(message) => return missing(&src, &message, fail_on_missing),
    };
    let base = call.search_paths.last().cloned().unwrap_or_else(|| PathBuf::from("."));
    let target = destination(&dest, &src, flat, call.host, &base).map_err(fail)?;
    let remote_checksum = sha1_hex(&data);
    let local = std::fs::read(&target).ok();
    let target_text = target.display().to_string();
    if local.as_deref().map(sha1_hex).as_deref() == Some(remote_checksum.as_str()) {
        let md5 = format!("{:x}", md5::compute(local.unwrap_or_default()));
        return Ok(result([
            ("changed", Value::Bool(false)),
            ("md5sum", Value::from(md5)),
            ("file", Value::from(src)),
            ("dest", Value::from(target_text)),
            ("checksum", Value::from(remote_checksum)),
        ]));
    }

    let write = || -> std::io::Result<Vec<u8>> {
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&target, &data)?;
        std::fs::read(&target)
    };
    let written = write().map_err(|error| fail(format!("Failed to fetch the file: {error}")))?;
    let new_checksum = sha1_hex(&written);
    let mut outcome = result([
        ("md5sum", Value::from(format!("{:x}", md5::compute(&written)))),
        ("dest", Value::from(target_text)),
        ("remote_md5sum", Value::Null),
        ("checksum", Value::from(new_checksum.clone())),
        ("remote_checksum", Value::from(remote_checksum.clone())),
    ]);
    if validate_checksum && new_checksum != remote_checksum {
        outcome.insert("msg".into(), Value::from("checksum mismatch"));
        outcome.insert("file".into(), Value::from(src));
        outcome.insert("changed".into(), Value::Bool(false));
        return Err(Failure::Failed(outcome));
    }
    outcome.insert("changed".into(), Value::Bool(true));
    Ok(outcome)
}

/// A file that cannot be read: a failure, or with `fail_on_missing: false` a note.
fn missing(src: &str, message: &str, fail_on_missing: bool) -> Outcome {
    let mut outcome = Map::new();
    outcome.insert("changed".into(), Value::Bool(false));
    outcome.insert("file".into(), Value::from(src));
    let note = if message.starts_with("Source is a directory") {
        if fail_on_missing {
            "remote file is a directory, fetch cannot work on directories".to_string()
        } else {
            "remote file is a directory, fetch cannot work on directories, not transferring, ignored"
                .to_string()
        }
    } else if message.contains("not found") {
        "the remote file does not exist, not transferring, ignored".to_string()
    } else {
        message.to_string()
    };
    outcome.insert("msg".into(), Value::from(note));
    if fail_on_missing { Err(Failure::Failed(outcome)) } else { Ok(outcome) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_follow_flat_and_the_host() {
        let base = Path::new("/play");
        let tree = destination("out", "/etc/hostname", false, "pi1", base).unwrap();
        assert_eq!(tree, PathBuf::from("/play/out/pi1/etc/hostname"));
        let flat = destination("/srv/keys/", "/etc/ssh/key.pub", true, "pi1", base).unwrap();
        assert_eq!(flat, PathBuf::from("/srv/keys/key.pub"));
        let named = destination("copy.txt", "/etc/x", true, "pi1", base).unwrap();
        assert_eq!(named, PathBuf::from("/play/copy.txt"));
        assert!(destination("/tmp", "/etc/x", true, "pi1", base).is_err(), "an existing directory");
    }
}
