//! `file`: make a path a file, directory, symlink, hard link, touched, or absent.

use serde_json::Value;

use super::files::{self, FileKind, FileState, Mode};
use super::{Call, Outcome, fail, result};
use crate::connection::quote;

const STATES: &[&str] = &["file", "directory", "link", "hard", "touch", "absent"];

pub async fn run(call: &mut Call<'_>) -> Outcome {
    let path = call.args.required(&["path", "dest", "name"])?;
    let state = call.args.choice(&["state"], STATES, None)?;
    let mode = Mode::parse(call.args.value(&["mode"]))?;
    let owner = call.args.string(&["owner"]);
    let group = call.args.string(&["group"]);
    // A directory is looked at and, when absent, made in one round trip.
    let (existing, made) = if state.as_deref() == Some("directory") && !call.check_mode {
        make_directory(call, &path).await?
    } else {
        (files::lstat(call.remote, &path).await?, None)
    };
    let existing_before = existing.clone();
    let state = state.unwrap_or_else(|| match &existing {
        Some(current) if current.kind == FileKind::Directory => "directory".into(),
        Some(current) if current.kind == FileKind::Link => "link".into(),
        _ => "file".into(),
    });

    let mut changed = match state.as_str() {
        "absent" => return absent(call, &path, existing).await,
        "file" => {
            if existing.is_none() {
                return Err(fail(format!("file ({path}) is absent, cannot continue")));
            }
            false
        }
        "directory" => match &existing {
            Some(current) if current.kind == FileKind::Directory => false,
            Some(_) => return Err(fail(format!("{path} already exists as a file"))),
            None if made.is_some() => true,
            None => {
                if !call.check_mode {
                    call.remote
                        .check(&format!("mkdir -p -- {}", quote(&path)), &format!("mkdir {path}"))
                        .await?;
                }
                true
            }
        },
        "touch" => {
            if !call.check_mode {
                call.remote
                    .check(&format!("touch -- {}", quote(&path)), &format!("touch {path}"))
                    .await?;
            }
            true
        }
        "link" | "hard" => link(call, &path, &state, existing.as_ref()).await?,
        _ => unreachable!("state was checked against STATES"),
    };

    if call.args.flag(&["recurse"], false)? && state == "directory" {
        changed |= recurse(call, &path, mode.as_ref(), owner.as_deref(), group.as_deref()).await?;
    }
    // The path's state is already known unless this task just created or replaced it.
    let current = match made {
        Some(state) if changed => Some(state),
        _ if changed => files::lstat(call.remote, &path).await?,
        _ => existing,
    };
    // Attributes are compared from what the path had before this task set them, which for a
    // path it just created is what it was created with.
    let attributes_before = existing_before.clone().or_else(|| current.clone());
    let after = match current {
        Some(state) if !(call.check_mode && changed) => {
            let (attributes_changed, after) = files::settle_attributes(
                call.remote,
                &path,
                &state,
                mode.as_ref(),
                owner.as_deref(),
                group.as_deref(),
                call.check_mode,
            )
            .await?;
            changed |= attributes_changed;
            Some(after)
        }
        other => other,
    };
    let mut outcome =
        result([("changed", Value::Bool(changed)), ("path", Value::from(path.clone()))]);
    let previous = state_name(existing_before.as_ref());
    let attributes = attributes_before.as_ref().zip(after.as_ref());
    outcome.insert("diff".into(), diff(&path, previous, &state, attributes));
    if let Some(after) = after {
        files::describe(&mut outcome, &after);
        if state == "link" {
            outcome
                .insert("src".into(), Value::from(after.link_target.clone().unwrap_or_default()));
        }
    } else {
        outcome.insert(
            "state".into(),
            Value::from(if call.check_mode { state } else { "absent".into() }),
        );
    }
    Ok(outcome)
}

/// One script: the path's state as [`files::stat_command`] prints it; when there is nothing
/// there, `made:` and the state of the directory made in its place.
pub fn make_directory_command(path: &str) -> String {
    let quoted = quote(path);
    format!(
        "{}; if [ ! -e {quoted} ] && [ ! -L {quoted} ]; then mkdir -p -- {quoted} && \
         echo made: && {}; fi",
        files::stat_command(path),
        files::stat_command(path)
    )
}

/// Runs [`make_directory_command`]: the state before, and after when it made the directory.
async fn make_directory(
    call: &Call<'_>,
    path: &str,
) -> Result<(Option<FileState>, Option<FileState>), super::Failure> {
    let output = call.remote.check(&make_directory_command(path), &format!("mkdir {path}")).await?;
    let stdout = output.stdout_text();
    match stdout.split_once("made:\n") {
        Some((before, after)) => Ok((files::parse_stat(before), files::parse_stat(after))),
        None => Ok((files::parse_stat(&stdout), None)),
    }
}

async fn absent(call: &Call<'_>, path: &str, existing: Option<FileState>) -> Outcome {
    let Some(_) = existing else {
        return Ok(result([
            ("changed", Value::Bool(false)),
            ("path", Value::from(path)),
            ("state", Value::from("absent")),
        ]));
    };
    let mut before = serde_json::json!({"path": path, "state": state_name(existing.as_ref())});
    if existing.as_ref().is_some_and(|current| current.kind == FileKind::Directory) {
        before["path_content"] = directory_content(call, path).await?;
    }
    if !call.check_mode {
        call.remote
            .check(&format!("rm -rf -- {}", quote(path)), &format!("removing {path}"))
            .await?;
    }
    let mut outcome = result([
        ("changed", Value::Bool(true)),
        ("path", Value::from(path)),
        ("state", Value::from("absent")),
    ]);
    let after = serde_json::json!({"path": path, "state": "absent"});
    outcome.insert("diff".into(), serde_json::json!({"before": before, "after": after}));
    Ok(outcome)
}

/// What a directory about to be removed holds, for the diff: ansible-core lists every
/// directory and every other entry below it (in walk order; find's order here).
async fn directory_content(call: &Call<'_>, path: &str) -> Result<Value, super::Failure> {
    let path = quote(path);
    let command =
        format!("find {path} -mindepth 1 -type d; echo /; find {path} -mindepth 1 ! -type d");
    let listing = call.remote.check(&command, "listing the directory").await?.stdout_text();
    let (directories, files) = listing.split_once("/\n").unwrap_or((&listing, ""));
    let lines = |text: &str| -> Vec<Value> { text.lines().map(Value::from).collect() };
    Ok(serde_json::json!({"directories": lines(directories), "files": lines(files)}))
}

/// ansible-core's name for what is at a path now.
fn state_name(current: Option<&FileState>) -> &'static str {
    match current.map(|s| &s.kind) {
        None => "absent",
        Some(FileKind::Directory) => "directory",
        Some(FileKind::Link) => "link",
        Some(_) => "file",
    }
}

/// The result's `diff`, as ansible-core's file module builds it: the state when it changes,
/// then each attribute that changed (mode as octal text, owner and group as numbers).
fn diff(
    path: &str,
    previous: &str,
    state: &str,
    attributes: Option<(&FileState, &FileState)>,
) -> Value {
    let mut old = serde_json::json!({"path": path});
    let mut new = serde_json::json!({"path": path});
    if previous != state {
        old["state"] = Value::from(previous);
        new["state"] = Value::from(state);
    }
    if let Some((before, after)) = attributes {
        if before.mode != after.mode {
            old["mode"] = Value::from(before.mode.clone());
            new["mode"] = Value::from(after.mode.clone());
        }
        for (key, was, now) in [("owner", before.uid, after.uid), ("group", before.gid, after.gid)]
        {
            if was != now {
                old[key] = Value::from(was);
                new[key] = Value::from(now);
            }
        }
    }
    serde_json::json!({"before": old, "after": new})
}

async fn link(
    call: &Call<'_>,
    path: &str,
    state: &str,
    existing: Option<&FileState>,
) -> Result<bool, super::Failure> {
    let src = call.args.required(&["src"])?;
    let force = call.args.flag(&["force"], false)?;
    if state == "link" {
        if existing.is_some_and(|current| {
            current.kind == FileKind::Link && current.link_target.as_deref() == Some(src.as_str())
        }) {
            return Ok(false);
        }
        if existing.is_some_and(|current| current.kind != FileKind::Link) && !force {
            return Err(fail(format!(
                "refusing to convert from {} to symlink for {path}",
                kind_name(existing)
            )));
        }
        if !call.check_mode {
            call.remote
                .check(
                    &format!("ln -sfn -- {} {}", quote(&src), quote(path)),
                    &format!("linking {path}"),
                )
                .await?;
        }
        return Ok(true);
    }
    let same = call.remote.run(&format!("[ {} -ef {} ]", quote(&src), quote(path))).await?;
    if same.rc == 0 {
        return Ok(false);
    }
    if !call.check_mode {
        call.remote
            .check(
                &format!("ln -f -- {} {}", quote(&src), quote(path)),
                &format!("hard linking {path}"),
            )
            .await?;
    }
    Ok(true)
}

fn kind_name(state: Option<&FileState>) -> &'static str {
    match state.map(|s| &s.kind) {
        Some(FileKind::Directory) => "directory",
        Some(FileKind::File) => "file",
        _ => "other",
    }
}

/// `recurse: true` applies owner/group/mode below the directory; changed only if any differed.
async fn recurse(
    call: &Call<'_>,
    path: &str,
    mode: Option<&Mode>,
    owner: Option<&str>,
    group: Option<&str>,
) -> Result<bool, super::Failure> {
    let mut tests = Vec::new();
    if let Some(owner) = owner {
        tests.push(format!("! -user {}", quote(owner)));
    }
    if let Some(group) = group {
        tests.push(format!("! -group {}", quote(group)));
    }
    if let Some(Mode::Octal(bits)) = mode {
        tests.push(format!("! -perm {bits:04o}"));
    }
    if tests.is_empty() {
        return Ok(false);
    }
    let find = format!(
        "find {} -mindepth 1 \\( {} \\) -print | head -n 1",
        quote(path),
        tests.join(" -o ")
    );
    let differing = call.remote.check(&find, "find").await?.stdout_text();
    if differing.trim().is_empty() {
        return Ok(false);
    }
    if !call.check_mode {
        let mut commands = Vec::new();
        match (owner, group) {
            (Some(o), Some(g)) => {
                commands.push(format!("chown -R {} {}", quote(&format!("{o}:{g}")), quote(path)))
            }
            (Some(o), None) => commands.push(format!("chown -R {} {}", quote(o), quote(path))),
            (None, Some(g)) => commands.push(format!("chgrp -R {} {}", quote(g), quote(path))),
            (None, None) => {}
        }
        if let Some(mode) = mode {
            commands.push(format!("chmod -R {} {}", quote(&mode.chmod_argument()), quote(path)));
        }
        call.remote.check(&commands.join(" && "), "recursive attributes").await?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::files::tests::{SHELLS, run_in};

    #[test]
    fn make_directory_reports_the_state_before_and_after() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("a/b");
        let script = make_directory_command(path.to_str().expect("utf-8 path"));
        for shell in SHELLS {
            let (rc, stdout) = run_in(shell, &script, b"");
            assert_eq!(rc, 0, "{stdout}");
            let (before, after) = stdout.split_once("made:\n").expect("made");
            assert!(files::parse_stat(before).is_none(), "{stdout}");
            assert_eq!(files::parse_stat(after).expect("after").kind, FileKind::Directory);
            let (_, again) = run_in(shell, &script, b"");
            assert!(!again.contains("made:"), "{again}");
            std::fs::remove_dir_all(dir.path().join("a")).expect("remove");
        }
    }
}
