//! Support for the image tests: the host packages they need (installed when missing, as
//! root), running `bramble`, and looking for leftovers (mounts, loop devices, work folders).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

pub mod arm64;

/// Image tests use loop devices and the shared cache: one at a time per test binary.
pub static SERIAL: Mutex<()> = Mutex::new(());

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The host packages bake, burn and the checks use, installed if any is missing.
pub fn ensure_packages() {
    let packages = [
        "debootstrap",
        "dosfstools",
        "mtools",
        "fdisk",
        "e2fsprogs",
        "qemu-user-static",
        "binfmt-support",
        "qemu-system-arm",
        "xz-utils",
        "zstd",
        "bmap-tools",
        "openssh-client",
    ];
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|package| {
            let output =
                Command::new("dpkg-query").args(["-W", "-f=${db:Status-Status}", package]).output();
            !matches!(output, Ok(o) if o.stdout == b"installed")
        })
        .collect();
    if missing.is_empty() {
        return;
    }
    eprintln!("installing {}", missing.join(" "));
    let update = Command::new("apt-get").args(["update", "-q"]).status().expect("apt-get");
    assert!(update.success(), "apt-get update failed");
    let install = Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .expect("apt-get install");
    assert!(install.success(), "apt-get install {} failed", missing.join(" "));
}

pub fn cache() -> PathBuf {
    let base = std::env::var_os("BRAMBLE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/bramble"));
    base.join("image")
}

pub fn bramble(arguments: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bramble"))
        .current_dir(repo())
        .args(arguments)
        .output()
        .expect("run bramble")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs a host command and returns its stdout, failing the test on a non-zero exit.
pub fn run(program: &str, arguments: &[&str]) -> String {
    let output = Command::new(program).args(arguments).output().expect(program);
    assert!(
        output.status.success(),
        "{program} {arguments:?} failed:\n{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// Mount points, loop devices and work folders left by bakes that have ended. Those of a
/// bake still running (another user of the shared cache) are not leftovers.
pub fn leftovers() -> Vec<String> {
    let cache_path = cache().to_string_lossy().into_owned();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let loops = run("losetup", &["--list", "--noheadings", "--output", "NAME,BACK-FILE"]);
    let mut found: Vec<String> = mounts
        .lines()
        .filter(|line| line.contains(&cache_path) && !of_a_running_bake(line))
        .map(|line| format!("mount: {line}"))
        .chain(
            loops
                .lines()
                .filter(|line| line.contains(&cache_path) && !of_a_running_bake(line))
                .map(|line| format!("loop: {line}")),
        )
        .collect();
    if let Ok(entries) = std::fs::read_dir(cache()) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".work-") && !of_a_running_bake(&name) {
                found.push(format!("work folder: {}", entry.path().display()));
            }
        }
    }
    found
}

/// Whether `text` names a work folder (`.work-PID-N`) whose process is alive.
pub fn of_a_running_bake(text: &str) -> bool {
    let Some((_, rest)) = text.split_once(".work-") else { return false };
    let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
    !pid.is_empty() && Path::new("/proc").join(&pid).exists()
}

pub fn sha256(path: &Path) -> String {
    let output = run("sha256sum", &[&path.to_string_lossy()]);
    output.split_whitespace().next().unwrap_or("").to_string()
}

/// The cached base images (`base-*.img`).
pub fn base_images() -> Vec<PathBuf> {
    let mut images: Vec<PathBuf> = std::fs::read_dir(cache())
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with("base-") && name.ends_with(".img")
        })
        .collect();
    images.sort();
    images
}
