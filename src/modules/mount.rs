//! `ansible.posix.mount`: keep a file system's line in fstab and its mount state in step, on
//! Linux, with ansible.posix's matching rules (by mount point; swap lines by source).

use serde_json::Value;

use super::{Call, Failure, Outcome, fail, result};
use crate::connection::quote;

/// The mount's settings, as ansible.posix fills them in from the arguments and defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub name: String,
    pub src: Option<String>,
    pub fstype: Option<String>,
    pub opts: String,
    pub dump: String,
    pub passno: String,
}

/// fstab writes space, `&` and backslash in a field as octal escapes.
fn escape(field: &str) -> String {
    field.replace('\\', "\\134").replace(' ', "\\040").replace('&', "\\046")
}

/// The fields of an fstab or mountinfo entry with the kernel's octal escapes undone.
fn unescape(field: &str) -> String {
    let mut out = String::new();
    let mut rest = field;
    while let Some(index) = rest.find('\\') {
        out.push_str(&rest[..index]);
        let code = rest.get(index + 1..index + 4).filter(|code| code.len() == 3);
        match code.and_then(|code| u8::from_str_radix(code, 8).ok()) {
            Some(byte) => {
                out.push(byte as char);
                rest = &rest[index + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[index + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

impl Entry {
    fn line(&self, src: &str, fstype: &str) -> String {
        format!(
            "{} {} {} {} {} {}\n",
            escape(src),
            escape(&self.name),
            escape(fstype),
            escape(&self.opts),
            escape(&self.dump),
            escape(&self.passno)
        )
    }

    /// Whether an fstab line's fields name this mount: the same mount point, and for swap
    /// (mount point `none`) the same source too.
    fn matches(&self, fields: &[&str]) -> bool {
        if fields[1] != escape(&self.name) {
            return false;
        }
        let swap = fields[1] == "none" && fields[2] == "swap";
        !(swap && self.src.as_deref().is_some_and(|src| fields[0] != src))
    }
}

/// fstab with this entry set: a matching line is rewritten when a field differs, a missing
/// one is appended. The new text and whether it changed.
pub fn set_entry(fstab: &str, entry: &Entry) -> (String, bool) {
    let src = entry.src.clone().unwrap_or_default();
    let fstype = entry.fstype.clone().unwrap_or_default();
    let mut out = String::new();
    let (mut exists, mut changed) = (false, false);
    for line in fstab.split_inclusive('\n') {
        let line = if line.ends_with('\n') { line.to_string() } else { format!("{line}\n") };
        let trimmed = line.trim();
        let fields: Vec<&str> = line.split('#').next().unwrap_or("").split_whitespace().collect();
        if trimmed.is_empty()
            || trimmed.starts_with('#')
            || !(4..=6).contains(&fields.len())
            || !entry.matches(&fields)
        {
            out.push_str(&line);
            continue;
        }
        exists = true;
        let wanted = [escape(&src), escape(&fstype), escape(&entry.opts)];
        let found_dump = fields.get(4).copied().unwrap_or("0");
        let found_passno = fields.get(5).copied().unwrap_or("0");
        let differs = fields[0] != wanted[0]
            || fields[2] != wanted[1]
            || fields[3] != wanted[2]
            || found_dump != escape(&entry.dump)
            || found_passno != escape(&entry.passno);
        if differs {
            changed = true;
            out.push_str(&entry.line(&src, &fstype));
        } else {
            out.push_str(&line);
        }
    }
    if !exists {
        out.push_str(&entry.line(&src, &fstype));
        changed = true;
    }
    (out, changed)
}

/// fstab without this entry. As in ansible.posix, only lines of all six fields are removed.
pub fn unset_entry(fstab: &str, entry: &Entry) -> (String, bool) {
    let mut out = String::new();
    let mut changed = false;
    for line in fstab.split_inclusive('\n') {
        let trimmed = line.trim();
        let fields: Vec<&str> = line.split_whitespace().collect();
        if trimmed.is_empty()
            || trimmed.starts_with('#')
            || fields.len() != 6
            || !entry.matches(&fields)
        {
            out.push_str(line);
            continue;
        }
        changed = true;
    }
    (out, changed)
}

/// A mounted file system from /proc/self/mountinfo.
#[derive(Clone, Debug, PartialEq)]
pub struct Mounted {
    pub target: String,
    /// The mount source column, what `mount -v` shows first.
    pub source: String,
    /// The path below the parent mount that is mounted here, as ansible.posix works it out
    /// to recognise bind mounts (the source itself for children of the root's parent).
    pub bind_source: String,
}

/// The mounts of /proc/self/mountinfo.
pub fn parse_mountinfo(text: &str) -> Vec<Mounted> {
    struct Record<'a> {
        id: &'a str,
        parent: &'a str,
        root: String,
        target: String,
        source: String,
    }
    let records: Vec<Record> = text
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.len() >= 7).then(|| Record {
                id: fields[0],
                parent: fields[1],
                root: unescape(fields[3]),
                target: unescape(fields[4]),
                source: unescape(fields[fields.len() - 2]),
            })
        })
        .collect();
    records
        .iter()
        .map(|record| {
            let parent = records.iter().find(|other| other.id == record.parent);
            let bind_source = match parent {
                Some(parent) if record.parent != "1" => {
                    let mut root = record.root.clone();
                    if parent.root.len() > 1 && root.starts_with(&format!("{}/", parent.root)) {
                        root = root[parent.root.len()..].to_string();
                    }
                    if parent.target != "/" {
                        root = format!("{}{root}", parent.target);
                    }
                    root
                }
                _ => record.source.clone(),
            };
            Mounted { target: record.target.clone(), source: record.source.clone(), bind_source }
        })
        .collect()
}

/// What the host showed: its kernel name, fstab, mounts, and whether the mount point exists.
#[derive(Debug, Default)]
pub struct Facts {
    pub system: String,
    pub fstab: Option<String>,
    pub mounts: Vec<Mounted>,
    pub path_exists: bool,
}

fn query_command(path: &str, fstab: &str) -> String {
    format!(
        "uname -s; printf '\\036'; if [ -e {fstab} ]; then printf 'y'; cat -- {fstab}; fi; \
         printf '\\036'; cat /proc/self/mountinfo; printf '\\036'; \
         if [ -e {path} ]; then echo y; fi",
        fstab = quote(fstab),
        path = quote(path)
    )
}

pub fn parse_facts(text: &str) -> Facts {
    let parts: Vec<&str> = text.split('\u{1e}').collect();
    let part = |index: usize| parts.get(index).copied().unwrap_or("");
    Facts {
        system: part(0).trim().to_string(),
        fstab: part(1).strip_prefix('y').map(str::to_string),
        mounts: parse_mountinfo(part(2)),
        path_exists: part(3).trim() == "y",
    }
}

/// The mount points as ansible.posix sees them: `-T FSTAB` only for another file than
/// /etc/fstab, and `-t TYPE [-o OPTS] SRC` for an ephemeral mount instead.
fn fstab_arguments(fstab: &str, ephemeral: bool, entry: &Entry) -> Vec<String> {
    if ephemeral {
        let mut words = vec!["-t".to_string(), entry.fstype.clone().unwrap_or_default()];
        if entry.opts != "defaults" {
            words.extend(["-o".to_string(), entry.opts.clone()]);
        }
        words.push(entry.src.clone().unwrap_or_default());
        return words;
    }
    if fstab != "/etc/fstab" { vec!["-T".to_string(), fstab.to_string()] } else { Vec::new() }
}

pub fn mount_command(fstab: &str, ephemeral: bool, entry: &Entry) -> String {
    let mut words = vec!["mount".to_string()];
    words.extend(fstab_arguments(fstab, ephemeral, entry));
    words.push(entry.name.clone());
    crate::connection::quote_all(&words)
}

/// `mount -o remount`, and when the kernel refuses, umount and mount again.
pub fn remount_command(fstab: &str, state: &str, entry: &Entry) -> String {
    let options = if state == "remounted" && entry.opts != "defaults" {
        format!("remount,{}", entry.opts)
    } else {
        "remount".to_string()
    };
    let mut words = vec!["mount".to_string(), "-o".to_string(), options];
    words.extend(fstab_arguments(fstab, state == "ephemeral", entry));
    words.push(entry.name.clone());
    let remount = crate::connection::quote_all(&words);
    let fallback = format!(
        "umount {} && {}",
        quote(&entry.name),
        mount_command(fstab, state == "ephemeral", entry)
    );
    if state == "remounted" && entry.opts != "defaults" {
        return format!("{remount} || exit 90");
    }
    format!("{remount} || {{ {fallback}; }}")
}

const REMOUNT_REFUSED: &str = "Options were specified with remounted, but the remount command \
     failed. Failing in order to prevent an unexpected mount result. Try replacing this command \
     with a \"state: unmounted\" followed by a \"state: mounted\" using the full desired mount \
     options instead.";

const OTHER_SOURCE: &str = "Ephemeral mount point is already mounted with a different source \
     than the specified one. Failing in order to prevent an unwanted unmount or override \
     operation. Try replacing this command with a \"state: unmounted\" followed by a \"state: \
     ephemeral\", or use a different destination path.";

/// A script that makes the missing directories of `path` one by one, keeping the first it
/// made in `$made`, so that a failed mount can take them away again.
fn mkdir_command(path: &str) -> String {
    format!(
        "made=''; dir=''; parts={p}; saved_ifs=$IFS; IFS=/; set -f; for part in $parts; do \
         [ -n \"$part\" ] || continue; \
         case {p} in /*) dir=\"$dir/$part\";; *) dir=\"${{dir:+$dir/}}$part\";; esac; \
         [ -e \"$dir\" ] && continue; \
         out=$(mkdir -- \"$dir\" 2>&1) || {{ printf 'Error making dir %s: %s' {p} \"$out\" >&2; exit 91; }}; \
         [ -n \"$made\" ] || made=$dir; done; IFS=$saved_ifs; set +f; ",
        p = quote(path)
    )
}

/// Takes away the directories `mkdir_command` made, deepest first.
fn rmdir_command(path: &str) -> String {
    format!(
        "if [ -n \"${{made-}}\" ]; then dir={}; while rmdir -- \"$dir\" 2>/dev/null; do \
         [ \"$dir\" = \"$made\" ] && break; dir=$(dirname -- \"$dir\"); done; fi; ",
        quote(path)
    )
}

/// fstab, mountinfo and mount's options differ on the BSDs and Solaris.
fn supported(system: &str) -> Result<(), String> {
    match system {
        "Linux" => Ok(()),
        other => Err(format!("not supported yet: mount on {other} (Linux only)")),
    }
}

pub async fn run(call: &mut Call<'_>) -> Outcome {
    let path = call.args.required(&["path", "name"])?;
    let states = [
        "absent",
        "absent_from_fstab",
        "mounted",
        "present",
        "unmounted",
        "remounted",
        "ephemeral",
    ];
    let state = call
        .args
        .choice(&["state"], &states, None)?
        .ok_or_else(|| fail("missing required arguments: state"))?;
    let src = call.args.string(&["src"]);
    let fstype = call.args.string(&["fstype"]);
    if matches!(state.as_str(), "mounted" | "present" | "ephemeral") {
        let missing: Vec<&str> = [("src", &src), ("fstype", &fstype)]
            .iter()
            .filter(|(_, value)| value.is_none())
            .map(|(name, _)| *name)
            .collect();
        if !missing.is_empty() {
            return Err(fail(format!(
                "state is {state} but all of the following are missing: {}",
                missing.join(", ")
            )));
        }
    }
    let boot = call.args.flag(&["boot"], true)?;
    let backup = call.args.flag(&["backup"], false)?;
    let fstab = call.args.string(&["fstab"]).unwrap_or_else(|| "/etc/fstab".into());
    let mut entry = Entry {
        name: path.clone(),
        src: src.clone(),
        fstype: fstype.clone(),
        opts: call.args.string(&["opts"]).unwrap_or_else(|| "defaults".into()),
        dump: call.args.string(&["dump"]).unwrap_or_else(|| "0".into()),
        passno: call.args.string(&["passno"]).unwrap_or_else(|| "0".into()),
    };
    let mut warnings = Vec::new();
    let mut options: Vec<&str> = entry.opts.split(',').collect();
    if boot && options.contains(&"noauto") {
        warnings.push(Value::from("Ignore the 'boot' due to 'opts' contains 'noauto'."));
    } else if !boot {
        options.push("noauto");
        entry.opts = options.join(",");
    }

    let mut outcome = result([
        ("changed", Value::Bool(false)),
        ("name", Value::from(path.clone())),
        ("opts", Value::from(entry.opts.clone())),
        ("dump", Value::from(entry.dump.clone())),
        ("passno", Value::from(entry.passno.clone())),
        ("fstab", Value::from(fstab.clone())),
        ("boot", Value::from(if boot { "yes" } else { "no" })),
        ("backup_file", Value::from("")),
    ]);
    if let Some(src) = &src {
        outcome.insert("src".into(), Value::from(src.clone()));
    }
    if let Some(fstype) = &fstype {
        outcome.insert("fstype".into(), Value::from(fstype.clone()));
    }
    if !warnings.is_empty() {
        outcome.insert("warnings".into(), Value::Array(warnings));
    }

    // Query: the kernel name, fstab, the mounts and the mount point, in one command.
    let output = call.remote.check(&query_command(&path, &fstab), "reading the mounts").await?;
    let facts = parse_facts(&output.stdout_text());
    supported(&facts.system).map_err(fail)?;
    let current = facts.fstab.clone().unwrap_or_default();
    let mounted = facts.mounts.iter().find(|mount| mount.target == path);

    // Plan: the new fstab, and the commands that bring the mount to its state.
    let mut new_fstab = None;
    let mut script = String::new();
    let mut changed = false;
    match state.as_str() {
        "absent" | "absent_from_fstab" => {
            let (text, removed) = unset_entry(&current, &entry);
            if removed {
                changed = true;
                new_fstab = Some(text);
                if state == "absent" {
                    if mounted.is_some() {
                        script.push_str(&format!(
                            "out=$(umount {p} 2>&1) || {{ printf 'Error unmounting %s: %s' {p} \"$out\" >&2; exit 92; }}; ",
                            p = quote(&path)
                        ));
                    }
                    if facts.path_exists {
                        script.push_str(&format!(
                            "out=$(rmdir -- {p} 2>&1) || {{ printf 'Error rmdir %s: %s' {p} \"$out\" >&2; exit 92; }}; ",
                            p = quote(&path)
                        ));
                    }
                }
            }
        }
        "unmounted" => {
            if mounted.is_some() {
                changed = true;
                script.push_str(&format!(
                    "out=$(umount {p} 2>&1) || {{ printf 'Error unmounting %s: %s' {p} \"$out\" >&2; exit 92; }}; ",
                    p = quote(&path)
                ));
            }
        }
        "present" => {
            let (text, differs) = set_entry(&current, &entry);
            if differs {
                changed = true;
                new_fstab = Some(text);
            }
        }
        "remounted" => {
            changed = true;
            script.push_str(&format!("{{ {}; }} >&2; ", remount_command(&fstab, &state, &entry)));
        }
        _ => {
            let ephemeral = state == "ephemeral";
            if !ephemeral {
                let (text, differs) = set_entry(&current, &entry);
                if differs {
                    changed = true;
                    new_fstab = Some(text);
                }
            }
            let action = match mounted {
                Some(_) if !ephemeral => changed.then(|| remount_command(&fstab, &state, &entry)),
                Some(mount)
                    if src
                        .as_ref()
                        .is_some_and(|src| *src == mount.bind_source || *src == mount.source) =>
                {
                    changed = true;
                    Some(remount_command(&fstab, &state, &entry))
                }
                Some(_) => return Err(fail(OTHER_SOURCE)),
                None => {
                    changed = true;
                    Some(mount_command(&fstab, ephemeral, &entry))
                }
            };
            if !facts.path_exists {
                script.push_str(&mkdir_command(&path));
            }
            if let Some(action) = action {
                // A failed mount takes away the directories it made (and `run` puts the old
                // fstab back), so that a bad entry cannot break the next boot.
                script.push_str(&format!(
                    "out=$({{ {action}; }} 2>&1) || {{ rc=$?; {undo}\
                     [ $rc -eq 90 ] && exit 90; printf 'Error mounting %s: %s' {p} \"$out\" >&2; exit 93; }}; ",
                    p = quote(&path),
                    undo = rmdir_command(&path),
                ));
            }
        }
    }
    outcome.insert("changed".into(), Value::Bool(changed));
    if call.check_mode || !changed {
        return Ok(outcome);
    }

    // Modify: fstab first (the mount reads it), then the mount itself.
    if let Some(text) = &new_fstab {
        if backup && facts.fstab.is_some() {
            let name = super::edit::backup_name(&fstab);
            let copy = format!("cp -p -- {} {}", quote(&fstab), quote(&name));
            call.remote.check(&copy, "backup").await?;
            if state != "absent" && state != "absent_from_fstab" {
                outcome.insert("backup_file".into(), Value::from(name));
            }
        }
        write_fstab(call, &fstab, text).await?;
    }
    if script.is_empty() {
        return Ok(outcome);
    }
    let output = call.remote.run(&script).await?;
    let message = match output.rc {
        0 => return Ok(outcome),
        90 => REMOUNT_REFUSED.to_string(),
        _ if state == "remounted" => {
            format!("Error remounting {path}: {}", output.stderr_text().trim())
        }
        _ => output.stderr_text().trim().to_string(),
    };
    // A mount point that could not be made or mounted leaves fstab as it was.
    if matches!(output.rc, 91 | 93) && new_fstab.is_some() {
        let old = facts.fstab.as_deref().unwrap_or("");
        write_fstab(call, &fstab, old).await?;
    }
    Err(fail(message))
}

/// Writes fstab atomically, making its directory first as ansible.posix does.
async fn write_fstab(call: &Call<'_>, fstab: &str, text: &str) -> Result<(), Failure> {
    if let Some(index) = fstab.rfind('/').filter(|index| *index > 0) {
        let directory = format!("mkdir -p -- {}", quote(&fstab[..index]));
        call.remote.check(&directory, "making the fstab directory").await?;
    }
    super::files::write_atomic(call.remote, fstab, text.as_bytes(), None, None, None, None)
        .await
        .map(|_| ())
        .map_err(|failure| match failure {
            Failure::Failed(result) => {
                let detail = result.get("msg").and_then(Value::as_str).unwrap_or("").to_string();
                fail(detail)
            }
            unreachable => unreachable,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, src: &str) -> Entry {
        Entry {
            name: name.into(),
            src: Some(src.into()),
            fstype: Some("ext4".into()),
            opts: "defaults".into(),
            dump: "0".into(),
            passno: "0".into(),
        }
    }

    #[test]
    fn set_appends_rewrites_or_keeps_the_line() {
        let wanted = entry("/mnt/my data", "/srv/disk.img");
        let (text, changed) = set_entry("# fstab\nUUID=1 / ext4 rw 0 1", &wanted);
        assert!(changed);
        assert_eq!(
            text,
            "# fstab\nUUID=1 / ext4 rw 0 1\n/srv/disk.img /mnt/my\\040data ext4 defaults 0 0\n"
        );
        assert_eq!(set_entry(&text, &wanted), (text.clone(), false));
        let mut other = wanted.clone();
        other.opts = "ro".into();
        let (rewritten, changed) = set_entry(&text, &other);
        assert!(changed);
        assert!(rewritten.ends_with("/srv/disk.img /mnt/my\\040data ext4 ro 0 0\n"), "{rewritten}");
        // Four fields stand for dump and passno 0.
        let short = "/srv/disk.img /mnt/my\\040data ext4 defaults\n";
        assert_eq!(set_entry(short, &wanted), (short.to_string(), false));
    }

    #[test]
    fn swap_lines_match_by_source() {
        let mut swap = entry("none", "/swapfile");
        swap.fstype = Some("swap".into());
        let text = "/other none swap sw 0 0\n";
        let (added, changed) = set_entry(text, &swap);
        assert!(changed);
        assert_eq!(added, "/other none swap sw 0 0\n/swapfile none swap defaults 0 0\n");
        assert_eq!(unset_entry(&added, &swap), (text.to_string(), true));
    }

    #[test]
    fn unset_removes_only_whole_six_field_lines() {
        let wanted = entry("/mnt/x", "/dev/vdb");
        let text = "/dev/vdb /mnt/x ext4 defaults 0 0\n/dev/vdb /mnt/x ext4 defaults\n";
        assert_eq!(unset_entry(text, &wanted), ("/dev/vdb /mnt/x ext4 defaults\n".into(), true));
        assert!(!unset_entry("# /dev/vdb /mnt/x ext4 defaults 0 0\n", &wanted).1);
    }

    #[test]
    fn mountinfo_gives_targets_and_bind_sources() {
        let text = "22 1 253:1 / / rw - ext4 /dev/vda rw\n\
                    42 22 0:35 / /tmp rw - tmpfs tmpfs rw\n\
                    78 42 0:35 /aaa /mnt/with\\040space rw - tmpfs tmpfs rw\n";
        let mounts = parse_mountinfo(text);
        let pair = |index: usize| {
            let mount: &Mounted = &mounts[index];
            (mount.target.as_str(), mount.source.as_str(), mount.bind_source.as_str())
        };
        assert_eq!(pair(0), ("/", "/dev/vda", "/dev/vda"));
        assert_eq!(pair(1), ("/tmp", "tmpfs", "/"));
        assert_eq!(pair(2), ("/mnt/with space", "tmpfs", "/tmp/aaa"));
    }

    #[test]
    fn commands_follow_the_state_and_fstab() {
        let wanted = entry("/mnt/x", "/dev/vdb");
        assert_eq!(mount_command("/etc/fstab", false, &wanted), "mount /mnt/x");
        assert_eq!(mount_command("/tmp/fstab", false, &wanted), "mount -T /tmp/fstab /mnt/x");
        let mut ephemeral = wanted.clone();
        ephemeral.opts = "ro,noexec".into();
        assert_eq!(
            mount_command("/etc/fstab", true, &ephemeral),
            "mount -t ext4 -o ro,noexec /dev/vdb /mnt/x"
        );
        assert_eq!(
            remount_command("/etc/fstab", "remounted", &ephemeral),
            "mount -o remount,ro,noexec /mnt/x || exit 90"
        );
        assert_eq!(
            remount_command("/etc/fstab", "mounted", &wanted),
            "mount -o remount /mnt/x || { umount /mnt/x && mount /mnt/x; }"
        );
        let facts = parse_facts(
            "Linux\n\u{1e}y/a / ext4 rw\n\u{1e}22 1 253:1 / / rw - ext4 /dev/vda rw\n\u{1e}y\n",
        );
        assert_eq!(
            (facts.system.as_str(), facts.fstab.as_deref()),
            ("Linux", Some("/a / ext4 rw\n"))
        );
        assert!(facts.path_exists);
        assert_eq!(parse_facts("Linux\n\u{1e}\u{1e}\u{1e}").fstab, None);
        assert_eq!(
            supported("FreeBSD").unwrap_err(),
            "not supported yet: mount on FreeBSD (Linux only)"
        );
    }
}
