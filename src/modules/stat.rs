//! `stat`: what is at a path, under `stat.*` as Ansible returns it.

use serde_json::{Map, Value};

use super::files::{self, FileKind};
use super::{Call, Outcome, fail, result};
use crate::connection::quote;

pub async fn run(call: &mut Call<'_>) -> Outcome {
    let path = call.args.required(&["path"])?;
    let follow = call.args.flag(&["follow"], false)?;
    let get_checksum = call.args.flag(&["get_checksum"], true)?;
    let algorithm = call
        .args
        .choice(
            &["checksum_algorithm"],
            &["sha1", "sha224", "sha256", "sha384", "sha512", "md5"],
            Some("sha1"),
        )?
        .unwrap_or_default();
    let target = if follow {
        let resolved = call.remote.run(&format!("readlink -f -- {}", quote(&path))).await?;
        if resolved.rc == 0 { resolved.stdout_text().trim().to_string() } else { path.clone() }
    } else {
        path.clone()
    };
    // The state and the checksum in one round trip.
    let probe = if get_checksum {
        files::probe(call.remote, &target, &algorithm).await?
    } else {
        files::Probe { state: files::lstat(call.remote, &target).await?, checksum: None }
    };
    let Some(state) = probe.state else {
        return Ok(result([
            ("changed", Value::Bool(false)),
            ("stat", serde_json::json!({"exists": false})),
        ]));
    };
    let mut stat = Map::new();
    let bits = u32::from_str_radix(&state.mode, 8).unwrap_or(0);
    stat.insert("exists".into(), Value::Bool(true));
    stat.insert("path".into(), Value::from(path.clone()));
    stat.insert("isdir".into(), Value::Bool(state.kind == FileKind::Directory));
    stat.insert("isreg".into(), Value::Bool(state.kind == FileKind::File));
    stat.insert("islnk".into(), Value::Bool(state.kind == FileKind::Link));
    stat.insert("mode".into(), Value::from(state.mode.clone()));
    stat.insert("uid".into(), Value::from(state.uid));
    stat.insert("gid".into(), Value::from(state.gid));
    stat.insert("pw_name".into(), Value::from(state.owner.clone()));
    stat.insert("gr_name".into(), Value::from(state.group.clone()));
    stat.insert("size".into(), Value::from(state.size));
    stat.insert("mtime".into(), Value::from(state.mtime));
    stat.insert("xusr".into(), Value::Bool(bits & 0o100 != 0));
    stat.insert("rusr".into(), Value::Bool(bits & 0o400 != 0));
    stat.insert("wusr".into(), Value::Bool(bits & 0o200 != 0));
    stat.insert("executable".into(), Value::Bool(bits & 0o111 != 0));
    if let Some(target) = &state.link_target {
        stat.insert("lnk_source".into(), Value::from(target.clone()));
        stat.insert("lnk_target".into(), Value::from(target.clone()));
    }
    if let Some(checksum) = probe.checksum.filter(|_| state.kind == FileKind::File) {
        stat.insert("checksum".into(), Value::from(checksum));
    } else if get_checksum && state.kind == FileKind::File {
        // The probe found no checksum: run it again alone for the error.
        let output = call.remote.run(&format!("{algorithm}sum -- {}", quote(&target))).await?;
        if output.rc != 0 {
            return Err(fail(format!(
                "could not checksum {path}: {}",
                output.stderr_text().trim()
            )));
        }
        let checksum = output.stdout_text().split_whitespace().next().unwrap_or("").to_string();
        stat.insert("checksum".into(), Value::from(checksum));
    }
    Ok(result([("changed", Value::Bool(false)), ("stat", Value::Object(stat))]))
}
