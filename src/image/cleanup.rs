//! The undo stack of a bake or a base build: every mount, loop device, temporary file and
//! edit inside the image is recorded right after it is made, and undone in reverse order
//! when the stack is finished or dropped (on error, or when Ctrl-C drops the bake).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// One thing to put back.
#[derive(Debug)]
enum Undo {
    /// Unmount, first killing whatever still runs with its root below the mount point.
    Unmount(PathBuf),
    /// `losetup -d`.
    Detach(String),
    /// Put a file (or symlink) back as it was, or remove it if it did not exist.
    Restore { path: PathBuf, saved: Option<Saved> },
    /// Remove a scratch file or directory tree (never crossing into a mount).
    Remove(PathBuf),
}

/// What a path held before the bake changed it.
#[derive(Debug)]
pub enum Saved {
    /// A regular file, moved aside to this name (which keeps mode, owner and times).
    File(PathBuf),
    Symlink(PathBuf),
}

/// Undo actions, newest last. Dropping it undoes everything still recorded.
#[derive(Debug, Default)]
pub struct Cleanup {
    stack: Vec<Undo>,
}

impl Cleanup {
    pub fn new() -> Cleanup {
        Cleanup::default()
    }

    pub fn unmount(&mut self, mount_point: &Path) {
        self.stack.push(Undo::Unmount(mount_point.to_path_buf()));
    }

    pub fn detach(&mut self, device: &str) {
        self.stack.push(Undo::Detach(device.to_string()));
    }

    pub fn remove(&mut self, path: &Path) {
        self.stack.push(Undo::Remove(path.to_path_buf()));
    }

    /// Saves `path` so that it can be put back exactly, then leaves it free to be replaced:
    /// a file is moved aside (same directory, so a rename), a symlink is read and removed.
    pub fn save(&mut self, path: &Path) -> std::io::Result<()> {
        let saved = match fs::symlink_metadata(path) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => return Err(error),
            Ok(metadata) if metadata.file_type().is_symlink() => {
                let target = fs::read_link(path)?;
                fs::remove_file(path)?;
                Some(Saved::Symlink(target))
            }
            Ok(_) => {
                let aside = aside_name(path);
                fs::rename(path, &aside)?;
                Some(Saved::File(aside))
            }
        };
        self.stack.push(Undo::Restore { path: path.to_path_buf(), saved });
        Ok(())
    }

    /// Undoes the newest `count` actions, reporting the first failure.
    pub fn release(&mut self, count: usize) -> Result<(), String> {
        let mut first_error = None;
        for _ in 0..count.min(self.stack.len()) {
            if let Some(undo) = self.stack.pop()
                && let Err(error) = undo.run()
            {
                tracing::warn!("cleanup: {error}");
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// How many actions are recorded, to release back to a mark with `release_to`.
    pub fn depth(&self) -> usize {
        self.stack.len()
    }

    pub fn release_to(&mut self, depth: usize) -> Result<(), String> {
        self.release(self.stack.len().saturating_sub(depth))
    }

    /// Undoes everything, reporting the first failure.
    pub fn finish(mut self) -> Result<(), String> {
        self.release(self.stack.len())
    }

    /// Forgets the newest action without running it (a temporary file was renamed into
    /// place and is now the result).
    pub fn keep_newest(&mut self) {
        self.stack.pop();
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Err(error) = self.release(self.stack.len()) {
            crate::output::err(&format!("error: cleanup incomplete: {error}\n"));
        }
    }
}

/// Work folders (`.work-PID-N`) in `cache` left by a bake or base build that was killed
/// before it could clean up (SIGKILL, a lost terminal): whatever is still mounted from them
/// is unmounted, their loop devices detached, the folders removed. Folders of processes
/// still alive are left alone. Returns the folders cleaned, and the first failure.
pub fn sweep_stale(cache: &Path) -> (Vec<PathBuf>, Result<(), String>) {
    let mut cleaned = Vec::new();
    let mut first_error = Ok(());
    let Ok(entries) = fs::read_dir(cache) else { return (cleaned, first_error) };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(".work-").and_then(|rest| rest.split('-').next()) else {
            continue;
        };
        if pid.is_empty() || Path::new("/proc").join(pid).exists() {
            continue;
        }
        let folder = entry.path();
        let mut cleanup = Cleanup::new();
        cleanup.remove(&folder);
        for device in loops_backed_below(&folder) {
            cleanup.detach(&device);
        }
        let mut points: Vec<PathBuf> = mounts_below(&folder).collect();
        points.reverse();
        for point in points {
            cleanup.unmount(&point);
        }
        if let Err(error) = cleanup.finish() {
            first_error = first_error.and(Err(error));
        }
        cleaned.push(folder);
    }
    (cleaned, first_error)
}

/// Loop devices whose backing file lies in `folder`, from sysfs.
fn loops_backed_below(folder: &Path) -> Vec<String> {
    let folder = fs::canonicalize(folder).unwrap_or_else(|_| folder.to_path_buf());
    let Ok(entries) = fs::read_dir("/sys/block") else { return Vec::new() };
    let mut devices: Vec<String> = entries
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("loop"))
        .filter(|entry| {
            let backing = fs::read_to_string(entry.path().join("loop/backing_file"));
            backing.is_ok_and(|file| Path::new(file.trim()).starts_with(&folder))
        })
        .map(|entry| format!("/dev/{}", entry.file_name().to_string_lossy()))
        .collect();
    devices.sort();
    devices
}

fn aside_name(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.bramble-saved"))
}

impl Undo {
    fn run(self) -> Result<(), String> {
        match self {
            Undo::Unmount(point) => unmount(&point),
            Undo::Detach(device) => command("losetup", &["-d", &device]),
            Undo::Restore { path, saved } => restore(&path, saved),
            Undo::Remove(path) => remove(&path),
        }
    }
}

fn restore(path: &Path, saved: Option<Saved>) -> Result<(), String> {
    let describe = |error: std::io::Error| format!("restoring {}: {error}", path.display());
    match fs::symlink_metadata(path) {
        Ok(metadata) if metadata.is_dir() => fs::remove_dir_all(path).map_err(describe)?,
        Ok(_) => fs::remove_file(path).map_err(describe)?,
        Err(_) => {}
    }
    match saved {
        None => Ok(()),
        Some(Saved::File(aside)) => fs::rename(aside, path).map_err(describe),
        Some(Saved::Symlink(target)) => std::os::unix::fs::symlink(target, path).map_err(describe),
    }
}

fn remove(path: &Path) -> Result<(), String> {
    // A debootstrap that was interrupted leaves its children running in the tree.
    kill_processes_inside(path);
    if mounts_below(path).next().is_some() {
        return Err(format!("not removing {}: something is still mounted in it", path.display()));
    }
    let result = match fs::symlink_metadata(path) {
        Err(_) => return Ok(()),
        Ok(metadata) if metadata.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
    };
    result.map_err(|error| format!("removing {}: {error}", path.display()))
}

/// Unmounts `point`. Processes still running inside it (a task's children when the bake was
/// interrupted) would keep it busy, so they are killed first: they belong to this bake.
fn unmount(point: &Path) -> Result<(), String> {
    if !is_mounted(point) {
        return Ok(());
    }
    for attempt in 0..20 {
        kill_processes_inside(point);
        let status = Command::new("umount").arg(point).status();
        if matches!(status, Ok(status) if status.success()) || !is_mounted(point) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100 * (attempt + 1)));
    }
    Err(format!("{} is still busy and stays mounted", point.display()))
}

fn command(program: &str, args: &[&str]) -> Result<(), String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|error| format!("could not run {program}: {error}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!("{program} {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim()))
}

/// Mount points at or below `path`, deepest first, from /proc/self/mountinfo.
pub fn mounts_below(path: &Path) -> impl Iterator<Item = PathBuf> {
    let path = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<PathBuf> = text
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mount_path)
        .filter(|point| point.starts_with(&path))
        .collect();
    points.sort_by_key(|point| std::cmp::Reverse(point.components().count()));
    points.into_iter()
}

pub fn is_mounted(point: &Path) -> bool {
    let point = fs::canonicalize(point).unwrap_or_else(|_| point.to_path_buf());
    mounts_below(&point).any(|mounted| mounted == point)
}

/// mountinfo writes space, tab, newline and backslash as octal escapes.
fn unescape_mount_path(text: &str) -> PathBuf {
    let mut bytes = Vec::with_capacity(text.len());
    let raw = text.as_bytes();
    let mut index = 0;
    while index < raw.len() {
        if raw[index] == b'\\'
            && index + 3 < raw.len()
            && let Ok(value) = u8::from_str_radix(&text[index + 1..index + 4], 8)
        {
            bytes.push(value);
            index += 4;
            continue;
        }
        bytes.push(raw[index]);
        index += 1;
    }
    PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(bytes))
}

/// Sends SIGKILL to every process whose root directory is `root` or below it.
pub fn kill_processes_inside(root: &Path) {
    let Ok(entries) = fs::read_dir("/proc") else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().filter(|n| n.bytes().all(|b| b.is_ascii_digit())) else {
            continue;
        };
        if let Ok(process_root) = fs::read_link(entry.path().join("root"))
            && process_root.starts_with(root)
        {
            tracing::debug!(pid, "killing a process left in {}", root.display());
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mount_path("/mnt/a\\040b"), PathBuf::from("/mnt/a b"));
        assert_eq!(unescape_mount_path("/plain"), PathBuf::from("/plain"));
    }

    #[test]
    fn sweeps_work_folders_of_dead_processes_only() {
        let cache = tempfile::tempdir().unwrap();
        // PIDs never reach this value (pid_max is at most 2^22).
        let dead = cache.path().join(".work-999999999-7");
        let alive = cache.path().join(format!(".work-{}-7", std::process::id()));
        for folder in [&dead, &alive] {
            fs::create_dir_all(folder.join("root/etc")).unwrap();
            fs::write(folder.join("root/etc/hostname"), "pi\n").unwrap();
        }
        let (cleaned, outcome) = sweep_stale(cache.path());
        outcome.unwrap();
        assert_eq!(cleaned, vec![dead.clone()]);
        assert!(!dead.exists());
        assert!(alive.join("root/etc/hostname").is_file());
    }

    #[test]
    fn restores_files_and_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("resolv.conf");
        let link = dir.path().join("link");
        let absent = dir.path().join("policy-rc.d");
        fs::write(&file, "nameserver 1.1.1.1\n").unwrap();
        std::os::unix::fs::symlink("../run/resolv.conf", &link).unwrap();
        let mut cleanup = Cleanup::new();
        for path in [&file, &link, &absent] {
            cleanup.save(path).unwrap();
            fs::write(path, "temporary").unwrap();
        }
        cleanup.finish().unwrap();
        assert_eq!(fs::read_to_string(&file).unwrap(), "nameserver 1.1.1.1\n");
        assert_eq!(fs::read_link(&link).unwrap(), PathBuf::from("../run/resolv.conf"));
        assert!(!absent.exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
