//! Running foreign-architecture binaries in a chroot: the kernel's binfmt_misc must hand
//! them to qemu-user, registered with the F flag so the interpreter works inside any root.

use std::path::Path;

use super::host;
use crate::error::{Error, Result};

const BINFMT: &str = "/proc/sys/fs/binfmt_misc";

/// The qemu-user binfmt entry that runs `architecture` (Debian's name), if it is foreign.
pub fn entry_for(architecture: &str) -> Result<Option<&'static str>> {
    let host = std::env::consts::ARCH;
    let (entry, native) = match architecture {
        "arm64" => ("qemu-aarch64", "aarch64"),
        "armhf" | "armel" => ("qemu-arm", "arm"),
        "amd64" => ("qemu-x86_64", "x86_64"),
        other => {
            return Err(Error::NotSupported { what: format!("base architecture {other}") });
        }
    };
    Ok(if host == native { None } else { Some(entry) })
}

/// Makes sure binfmt_misc is mounted and the entry enabled, doing the standard setup steps
/// itself when the packages are installed, and saying how to fix it otherwise.
pub async fn ensure(architecture: &str) -> Result<()> {
    let Some(entry) = entry_for(architecture)? else { return Ok(()) };
    let step = "checking qemu-user for the image's architecture";
    if !Path::new(BINFMT).join("status").exists() {
        host::run(step, "mount", &["-t", "binfmt_misc", "binfmt_misc", BINFMT]).await?;
    }
    let path = Path::new(BINFMT).join(entry);
    if !path.exists() && Path::new("/usr/sbin/update-binfmts").exists() {
        host::run(step, "update-binfmts", &["--enable", entry]).await?;
    }
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let problem = if text.is_empty() {
        format!("binfmt_misc has no {entry} entry, so {architecture} programs cannot run here")
    } else if !text.lines().any(|line| line == "enabled") {
        format!("the binfmt_misc entry {entry} is disabled")
    } else if !text.lines().any(|line| line.starts_with("flags:") && line.contains('F')) {
        format!("the binfmt_misc entry {entry} lacks the F flag, so it fails inside a chroot")
    } else {
        return Ok(());
    };
    Err(Error::image(
        step,
        format!(
            "{problem}\nhint: apt-get install qemu-user-static binfmt-support && \
             update-binfmts --enable {entry}"
        ),
    ))
}
