//! `copy` and `template`: put content at a path on the host, atomically, only when it differs.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use sha1::{Digest, Sha1};

use super::files::{self, FileKind, Fill, Mode};
use super::{Call, Failure, Outcome, fail, result};
use crate::connection::{Output, quote};

pub async fn run_copy(call: &mut Call<'_>) -> Outcome {
    let dest = call.args.required(&["dest"])?;
    if call.args.flag(&["remote_src"], false)? {
        let src = call.args.required(&["src"])?;
        return copy_remote(call, &src, &dest).await;
    }
    let (content, src) = match (call.args.value(&["content"]).cloned(), call.args.string(&["src"]))
    {
        (Some(content), None) => (content_bytes(&content), None),
        (None, Some(src)) => {
            let path = find_local(call.search_paths, "files", &src)?;
            if path.is_dir() {
                return Err(fail(format!(
                    "not supported yet: copying the directory {} (copy single files)",
                    path.display()
                )));
            }
            let bytes = std::fs::read(&path)
                .map_err(|error| fail(format!("could not read {}: {error}", path.display())))?;
            // A vaulted source is copied decrypted, as with ansible-core's `decrypt: true`.
            let decrypt = call.args.flag(&["decrypt"], true)?;
            let bytes = if decrypt && crate::vault::is_encrypted(&bytes) {
                crate::vault::decrypt(&bytes, &path.display().to_string()).map_err(fail)?
            } else {
                bytes
            };
            (bytes, Some(path))
        }
        (Some(_), Some(_)) => return Err(fail("parameters are mutually exclusive: content|src")),
        (None, None) => return Err(fail("src (or content) is required")),
    };
    let name =
        src.as_ref().and_then(|path| path.file_name()).map(|n| n.to_string_lossy().into_owned());
    put(call, &dest, &content, name.as_deref()).await
}

pub async fn run_template(call: &mut Call<'_>) -> Outcome {
    let dest = call.args.required(&["dest"])?;
    let src = call.args.required(&["src"])?;
    let path = find_local(call.search_paths, "templates", &src)?;
    let text = std::fs::read_to_string(&path)
        .map_err(|error| fail(format!("could not read {}: {error}", path.display())))?;
    // The variables the template action adds, where the play has not set them itself.
    let mut vars = call.vars.raw().clone();
    let full = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
    for (name, value) in [
        ("ansible_managed", "Ansible managed".to_string()),
        ("template_path", src.clone()),
        ("template_fullpath", full.display().to_string()),
        ("template_destpath", dest.clone()),
    ] {
        vars.entry(name).or_insert(Value::from(value));
    }
    let context = crate::template::Context::new(vars, call.templar.clone());
    let mut rendered = call
        .templar
        .render_file(&text, &context)
        .map_err(|error| super::template_failure(&path, text.clone(), error))?;
    if let Some(sequence) = call.args.string(&["newline_sequence"]) {
        let newline = match sequence.as_str() {
            "\\n" | "\n" => "\n",
            "\\r\\n" | "\r\n" => "\r\n",
            "\\r" | "\r" => "\r",
            other => {
                return Err(fail(format!(
                    "value of newline_sequence must be one of: \\n, \\r, \\r\\n, got: {other}"
                )));
            }
        };
        rendered = rendered.replace("\r\n", "\n").replace('\n', newline);
    }
    put(call, &dest, rendered.as_bytes(), None).await
}

fn content_bytes(content: &Value) -> Vec<u8> {
    match content {
        Value::String(text) => text.clone().into_bytes(),
        other => crate::output::python_json(other, None, false).into_bytes(),
    }
}

/// Finds `src` on the controller: absolute, or under each search path's `<kind>/` then itself.
pub fn find_local(search_paths: &[PathBuf], kind: &str, src: &str) -> Result<PathBuf, Failure> {
    let wanted = Path::new(src);
    if wanted.is_absolute() {
        return if wanted.exists() {
            Ok(wanted.to_path_buf())
        } else {
            Err(fail(format!("Could not find or access '{src}' on the Ansible Controller.")))
        };
    }
    let candidates: Vec<PathBuf> =
        search_paths.iter().flat_map(|base| [base.join(kind).join(src), base.join(src)]).collect();
    candidates.iter().find(|path| path.exists()).cloned().ok_or_else(|| {
        let searched =
            candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
        fail(format!("Could not find or access '{src}'\nSearched in:\n\t{searched}"))
    })
}

/// The shared tail of copy and template: compare, write if different, fix attributes.
async fn put(
    call: &mut Call<'_>,
    dest: &str,
    content: &[u8],
    source_name: Option<&str>,
) -> Outcome {
    let mode = Mode::parse(call.args.value(&["mode"]))?;
    let owner = call.args.string(&["owner"]);
    let group = call.args.string(&["group"]);
    let force = call.args.flag(&["force"], true)?;
    let validate = call.args.string(&["validate"]);
    if let Some(check) = &validate
        && !check.contains("%s")
    {
        return Err(fail(format!("validate must contain %s: {check}")));
    }

    let checksum = hex::encode(Sha1::digest(content));
    let wants_backup = call.args.flag(&["backup"], false)?;

    // Query and, when the content differs, write in the same round trip where nothing has
    // to be looked at in between: the common case of a small file put in place.
    let mut dest = dest.to_string();
    let at_once = !call.check_mode
        && !call.diff
        && force
        && !wants_backup
        && !dest.ends_with('/')
        && content.len() <= AT_ONCE_LIMIT;
    let mut probe = if at_once {
        let write =
            WriteArgs { mode: mode.as_ref(), owner: &owner, group: &group, validate: &validate };
        let (probe, written) = probe_and_write(call, &dest, content, &checksum, write).await?;
        if let Some(after) = written {
            let mut outcome = result([
                ("changed", Value::Bool(true)),
                ("dest", Value::from(dest.clone())),
                ("checksum", Value::from(checksum)),
            ]);
            describe_or_size(&mut outcome, after, content.len());
            return Ok(outcome);
        }
        probe
    } else {
        files::probe(call.remote, &dest, "sha1").await?
    };

    // Otherwise the query alone (again under the source's name when dest is a directory).
    let is_directory = probe.state.as_ref().is_some_and(|state| state.kind == FileKind::Directory);
    if dest.ends_with('/') || is_directory {
        let Some(name) = source_name else {
            return Err(fail(format!("can not use content with a dir as dest: {dest}")));
        };
        dest = format!("{}/{name}", dest.trim_end_matches('/'));
        probe = files::probe(call.remote, &dest, "sha1").await?;
    }
    let differs = probe.checksum.as_deref() != Some(checksum.as_str());
    let exists = probe.state.is_some();

    let mut outcome = Map::new();
    if call.diff && differs {
        outcome.insert("diff".into(), diff_of(call, &dest, content, exists).await?);
    }
    let (changed, after) = if differs && (force || !exists) {
        if call.check_mode {
            (true, probe.state)
        } else {
            if wants_backup && exists {
                let backup = backup(call, &dest).await?;
                outcome.insert("backup_file".into(), Value::from(backup));
            }
            let written = files::write_atomic(
                call.remote,
                &dest,
                content,
                mode.as_ref(),
                owner.as_deref(),
                group.as_deref(),
                validate.as_deref(),
            )
            .await?;
            (true, written)
        }
    } else if let Some(state) = &probe.state {
        let (changed, after) = files::settle_attributes(
            call.remote,
            &dest,
            state,
            mode.as_ref(),
            owner.as_deref(),
            group.as_deref(),
            call.check_mode,
        )
        .await?;
        (changed, Some(after))
    } else {
        (false, None)
    };

    outcome.insert("changed".into(), Value::Bool(changed));
    outcome.insert("dest".into(), Value::from(dest.clone()));
    outcome.insert("checksum".into(), Value::from(checksum));
    describe_or_size(&mut outcome, after, content.len());
    Ok(outcome)
}

fn describe_or_size(
    outcome: &mut Map<String, Value>,
    after: Option<files::FileState>,
    size: usize,
) {
    match after {
        Some(state) => files::describe(outcome, &state),
        None => {
            outcome.insert("size".into(), Value::from(size));
        }
    }
}

/// Content up to this size goes along with the query, whether it turns out to be needed or
/// not: sending it costs less than a second round trip.
const AT_ONCE_LIMIT: usize = 64 * 1024;

/// The attributes a write gives the new file.
#[derive(Clone, Copy)]
struct WriteArgs<'a> {
    mode: Option<&'a Mode>,
    owner: &'a Option<String>,
    group: &'a Option<String>,
    validate: &'a Option<String>,
}

/// One script: what `dest` is now (as [`files::probe_command`] prints it), then, unless it
/// is a directory or already holds `checksum`'s content, `written:` and the atomic write's
/// output. Content goes on stdin either way.
pub fn probe_and_write_command(
    dest: &str,
    checksum: &str,
    mode: Option<&Mode>,
    owner: Option<&str>,
    group: Option<&str>,
    validate: Option<&str>,
) -> String {
    let quoted = quote(dest);
    let write = files::atomic_write_command(dest, Fill::Stdin, mode, owner, group, validate);
    format!(
        "{stat}; sum=; if [ -f {quoted} ]; then sum=$(sha1sum -- {quoted}) || true; \
         printf 'checksum:%s\\n' \"$sum\"; fi; case \"$sum\" in {checksum}\\ *) exit 0;; esac; \
         if [ -d {quoted} ] && [ ! -L {quoted} ]; then exit 0; fi; echo written:; {write}",
        stat = files::stat_command(dest),
    )
}

/// Runs [`probe_and_write_command`]: the probe, and the state after when it wrote.
async fn probe_and_write(
    call: &Call<'_>,
    dest: &str,
    content: &[u8],
    checksum: &str,
    write: WriteArgs<'_>,
) -> Result<(files::Probe, Option<Option<files::FileState>>), Failure> {
    let script = probe_and_write_command(
        dest,
        checksum,
        write.mode,
        write.owner.as_deref(),
        write.group.as_deref(),
        write.validate.as_deref(),
    );
    let command = format!("bramble_size={}; {script}", content.len());
    let output = call.remote.run_with_input(&command, Some(content)).await?;
    let stdout = output.stdout_text();
    match stdout.split_once("written:\n") {
        Some((before, after)) => {
            let after = Output { stdout: after.as_bytes().to_vec(), ..output.clone() };
            Ok((files::parse_probe(before), Some(files::written(&after, dest)?)))
        }
        None if output.rc != 0 => {
            Err(fail(format!("failed to look at {dest}: {}", output.stderr_text().trim())))
        }
        None => Ok((files::parse_probe(&stdout), None)),
    }
}

async fn diff_of(
    call: &Call<'_>,
    dest: &str,
    content: &[u8],
    exists: bool,
) -> Result<Value, Failure> {
    let before = if exists {
        call.remote.run(&format!("cat -- {}", quote(dest))).await?.stdout_text()
    } else {
        String::new()
    };
    let mut diff = result([
        ("before", Value::from(before)),
        ("after", Value::from(String::from_utf8_lossy(content).into_owned())),
        ("after_header", Value::from(dest.to_string())),
    ]);
    // A new file's side is plain `before`, as ansible-core names it.
    if exists {
        diff.insert("before_header".into(), Value::from(dest.to_string()));
    }
    Ok(Value::Object(diff))
}

async fn backup(call: &Call<'_>, dest: &str) -> Result<String, Failure> {
    let stamp = chrono::Local::now().format("%Y-%m-%d@%H:%M:%S~").to_string();
    let backup = format!("{dest}.{}.{stamp}", std::process::id());
    call.remote.check(&format!("cp -p -- {} {}", quote(dest), quote(&backup)), "backup").await?;
    Ok(backup)
}

/// `remote_src: true`: both ends are on the host.
async fn copy_remote(call: &mut Call<'_>, src: &str, dest: &str) -> Outcome {
    let mode = Mode::parse(call.args.value(&["mode"]))?;
    let owner = call.args.string(&["owner"]);
    let group = call.args.string(&["group"]);
    let Some(source) = files::lstat(call.remote, src).await? else {
        return Err(fail(format!("Source {src} not found")));
    };
    if source.kind == FileKind::Directory {
        return Err(fail(format!(
            "not supported yet: copying the directory {src} with remote_src"
        )));
    }
    let mut dest = dest.to_string();
    if dest.ends_with('/')
        || files::lstat(call.remote, &dest).await?.is_some_and(|s| s.kind == FileKind::Directory)
    {
        let name = src.rsplit('/').next().unwrap_or(src);
        dest = format!("{}/{name}", dest.trim_end_matches('/'));
    }
    let checksum = files::sha1(call.remote, src).await?.unwrap_or_default();
    let differs = files::sha1(call.remote, &dest).await?.as_deref() != Some(checksum.as_str());
    let changed = if differs {
        if !call.check_mode {
            let script = files::atomic_write_command(
                &dest,
                Fill::RemoteFile(src),
                mode.as_ref(),
                owner.as_deref(),
                group.as_deref(),
                None,
            );
            call.remote.check(&script, &format!("copying {src} to {dest}")).await?;
        }
        true
    } else {
        files::apply_attributes(
            call.remote,
            &dest,
            mode.as_ref(),
            owner.as_deref(),
            group.as_deref(),
            call.check_mode,
        )
        .await?
    };
    let mut outcome = result([
        ("changed", Value::Bool(changed)),
        ("dest", Value::from(dest.clone())),
        ("src", Value::from(src.to_string())),
        ("checksum", Value::from(checksum)),
    ]);
    if let Some(state) = files::lstat(call.remote, &dest).await? {
        files::describe(&mut outcome, &state);
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::files::tests::{SHELLS, run_in, shells};

    #[test]
    fn probe_and_write_writes_only_content_that_differs() {
        let dir = tempfile::tempdir().expect("temp dir");
        let dest = dir.path().join("issue");
        let dest_text = dest.to_str().expect("utf-8 path");
        let content = b"hello\n";
        let checksum = hex::encode(Sha1::digest(content));
        let script = format!(
            "bramble_size={}; {}",
            content.len(),
            probe_and_write_command(dest_text, &checksum, None, None, None, None)
        );
        for shell in SHELLS {
            let (rc, stdout) = run_in(shell, &script, content);
            assert_eq!(rc, 0, "{stdout}");
            let (before, after) = stdout.split_once("written:\n").expect("a write");
            assert!(files::parse_probe(before).state.is_none(), "{stdout}");
            assert_eq!(files::parse_stat(after).expect("state after").size, 6);
            let (rc, again) = run_in(shell, &script, content);
            assert_eq!(rc, 0);
            assert!(!again.contains("written:"), "{again}");
            assert_eq!(files::parse_probe(&again).checksum.as_deref(), Some(checksum.as_str()));
            std::fs::remove_file(&dest).expect("remove");
        }
    }

    #[test]
    fn probe_and_write_leaves_a_directory_to_the_caller() {
        let dir = tempfile::tempdir().expect("temp dir");
        let dest = dir.path().to_str().expect("utf-8 path");
        let script = probe_and_write_command(dest, "0", None, None, None, None);
        for (rc, stdout) in shells(&script, b"x") {
            assert_eq!(rc, 0, "{stdout}");
            assert!(!stdout.contains("written:"), "{stdout}");
            let state = files::parse_probe(&stdout).state.expect("a state");
            assert_eq!(state.kind, FileKind::Directory);
        }
    }
}
