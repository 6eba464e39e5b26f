//! `unarchive` with `remote_src`: unpack beside the destination, compare, copy only what differs.

use serde_json::Value;

use super::files::{self, FileKind, Mode};
use super::{Call, Outcome, fail, result};
use crate::connection::quote;

/// The extract command for an archive name, or None when the format is not known.
pub fn extract_command(
    src: &str,
    into: &str,
    extra: &[String],
    include: &[String],
) -> Option<String> {
    let lower = src.to_ascii_lowercase();
    let (src_q, into_q) = (quote(src), quote(into));
    let extra: String = extra.iter().map(|option| format!(" {}", quote(option))).collect();
    let include: String = include.iter().map(|member| format!(" {}", quote(member))).collect();
    let flag = if lower.ends_with(".tar.gz") || lower.ends_with(".tgz") {
        "z"
    } else if lower.ends_with(".tar.xz") || lower.ends_with(".txz") {
        "J"
    } else if lower.ends_with(".tar.bz2") || lower.ends_with(".tbz2") {
        "j"
    } else if lower.ends_with(".tar.zst") {
        return Some(format!("zstd -dc -- {src_q} | tar -xf - -C {into_q}{extra}{include}"));
    } else if lower.ends_with(".tar") {
        ""
    } else if lower.ends_with(".zip") {
        return Some(format!("unzip -q -o{extra} {src_q}{include} -d {into_q}"));
    } else {
        return None;
    };
    Some(format!("tar -x{flag}f {src_q} -C {into_q}{extra}{include}"))
}

/// Unpacks into a scratch directory inside `dest`, reports `CHANGED` when any file is new or
/// differs, and (unless checking) copies the tree over.
pub fn unpack_script(extract: &str, dest: &str, check_mode: bool) -> String {
    let dest_q = quote(dest);
    // Each top-level entry is copied on its own: copying "." would also give the
    // destination directory the scratch directory's 0700 mode.
    let copy = if check_mode {
        String::new()
    } else {
        format!("find . -mindepth 1 -maxdepth 1 -exec cp -a {{}} {dest_q}/ \\; ; ")
    };
    format!(
        "set -e; scratch=$(mktemp -d {dest_q}/.bramble-unarchive-XXXXXXXX); trap 'rm -rf -- \"$scratch\"' EXIT; \
         {}; cd \"$scratch\"; \
         if find . ! -type d | while IFS= read -r f; do \
         if [ ! -e {dest_q}/\"$f\" ] && [ ! -L {dest_q}/\"$f\" ] || ! cmp -s \"$f\" {dest_q}/\"$f\"; then echo \"$f\"; break; fi; \
         done | grep -q .; then echo CHANGED; {copy}fi; \
         find . -mindepth 1 -maxdepth 1 | sed 's|^\\./||'",
        extract.replace(&quote("@SCRATCH@"), "\"$scratch\"")
    )
}

pub async fn run(call: &mut Call<'_>) -> Outcome {
    let src = call.args.required(&["src"])?;
    let dest = call.args.required(&["dest"])?;
    let remote_src = call.args.flag(&["remote_src"], false)? || !call.args.flag(&["copy"], true)?;
    if !remote_src {
        return Err(fail(
            "not supported yet: unarchive from the controller; copy the archive first and use remote_src: true",
        ));
    }
    if let Some(creates) = call.args.string(&["creates"])
        && files::lstat(call.remote, &creates).await?.is_some()
    {
        return Ok(result([
            ("changed", Value::Bool(false)),
            ("dest", Value::from(dest)),
            ("src", Value::from(src)),
            ("msg", Value::from(format!("skipped, since {creates} exists"))),
        ]));
    }
    if files::lstat(call.remote, &src).await?.is_none() {
        return Err(fail(format!("Source '{src}' does not exist")));
    }
    if !files::lstat(call.remote, &dest)
        .await?
        .is_some_and(|state| state.kind == FileKind::Directory)
    {
        return Err(fail(format!("dest '{dest}' must be an existing dir")));
    }
    let extra = call.args.list(&["extra_opts"]);
    let include = call.args.list(&["include"]);
    if call.args.value(&["exclude"]).is_some() {
        return Err(fail("not supported yet: unarchive exclude"));
    }
    let extract = extract_command(&src, "@SCRATCH@", &extra, &include)
        .ok_or_else(|| fail(format!("Failed to find handler for \"{src}\". Make sure the required command to extract the file is installed.")))?;
    let output = call
        .remote
        .check(&unpack_script(&extract, &dest, call.check_mode), &format!("unpacking {src}"))
        .await?;
    let text = output.stdout_text();
    let mut changed = text.lines().next() == Some("CHANGED");
    let entries: Vec<String> =
        text.lines().filter(|line| *line != "CHANGED").map(str::to_string).collect();

    let mode = Mode::parse(call.args.value(&["mode"]))?;
    let owner = call.args.string(&["owner"]);
    let group = call.args.string(&["group"]);
    for entry in &entries {
        let path = format!("{}/{entry}", dest.trim_end_matches('/'));
        changed |= files::apply_attributes(
            call.remote,
            &path,
            mode.as_ref(),
            owner.as_deref(),
            group.as_deref(),
            call.check_mode,
        )
        .await?;
    }
    let mut outcome = result([
        ("changed", Value::Bool(changed)),
        ("dest", Value::from(dest.clone())),
        ("src", Value::from(src)),
        ("handler", Value::from("TgzArchive")),
    ]);
    if call.args.flag(&["list_files"], false)? {
        outcome.insert("files".into(), Value::from(entries));
    }
    if let Some(state) = files::lstat(call.remote, &dest).await? {
        files::describe(&mut outcome, &state);
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_by_name() {
        assert_eq!(
            extract_command("/t/a.tar.gz", "/d", &[], &[]).unwrap(),
            "tar -xzf /t/a.tar.gz -C /d"
        );
        assert_eq!(
            extract_command("/t/a.tar.xz", "/d", &["--strip-components=1".into()], &[]).unwrap(),
            "tar -xJf /t/a.tar.xz -C /d --strip-components=1"
        );
        assert!(extract_command("/t/a.rar", "/d", &[], &[]).is_none());
    }
}
