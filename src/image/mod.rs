//! Raspberry Pi images: `bramble bake` builds one from a recipe in `images/` by running the
//! recipe's playbook through a chroot connection with the ordinary executor, and
//! `bramble burn` writes one to a card (or a file) with a per-device identity.
//!
//! Everything that changes the host (loop devices, mounts, temporary files) or the image
//! only while it is worked on is recorded in a [`cleanup::Cleanup`] stack and undone on
//! success, on error and on interruption alike.

pub mod artifact;
pub mod bake;
pub mod base;
pub mod binfmt;
pub mod burn;
pub mod cleanup;
pub mod cloud_init;
pub mod disk;
pub mod docker_images;
pub mod fat;
pub mod firstrun;
pub mod host;
pub mod identity;
pub mod mounts;
pub mod progress;
pub mod recipe;
pub mod target;
pub mod workbench;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::connection::ChrootConnection;
use crate::error::{Error, Result};

/// `${BRAMBLE_CACHE:-~/.cache/bramble}/image`: base images, root file systems, packages.
pub fn cache_dir() -> PathBuf {
    let base = std::env::var_os("BRAMBLE_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
        PathBuf::from(home).join(".cache/bramble")
    });
    base.join("image")
}

/// Writes `text` to `root`/`inside` with `mode`, creating the folders on the way.
pub fn write_file(root: &Path, inside: &str, text: &str, mode: u32) -> Result<()> {
    let path = root.join(inside);
    let failed = |e: std::io::Error| mounts::io("writing into the image", &path, e);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(failed)?;
    }
    std::fs::write(&path, text).map_err(failed)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).map_err(failed)
}

/// Runs a script inside the image; a non-zero exit is an error quoting its stderr.
pub async fn chroot_script(chroot: &ChrootConnection, step: &str, script: &str) -> Result<String> {
    let output =
        chroot.exec(script, None).await.map_err(|unreachable| Error::image(step, unreachable.0))?;
    if output.rc != 0 {
        return Err(Error::image(
            step,
            format!("exit {} in the image:\n{}", output.rc, output.stderr_text().trim_end()),
        ));
    }
    Ok(output.stdout_text())
}

/// Image work needs root: loop devices, mounts and chroot.
pub fn require_root(what: &str) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(u32::MAX);
    if uid == 0 {
        return Ok(());
    }
    Err(Error::image(what, "needs root (loop devices, mounts, chroot)\nhint: run it with sudo"))
}

/// Runs `work` until it ends or the process gets SIGINT, SIGTERM or SIGHUP. On a signal
/// `work` is dropped, and with it every [`cleanup::Cleanup`] it holds, which unmounts and
/// detaches what it had set up before the process exits.
pub async fn until_interrupted<T>(work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    use tokio::signal::unix::{SignalKind, signal};
    let listen = |kind: SignalKind| {
        signal(kind).map_err(|e| Error::image("listening for Ctrl-C", e.to_string()))
    };
    let mut interrupt = listen(SignalKind::interrupt())?;
    let mut terminate = listen(SignalKind::terminate())?;
    let mut hangup = listen(SignalKind::hangup())?;
    tokio::select! {
        result = work => result,
        _ = interrupt.recv() => Err(Error::Interrupted),
        _ = terminate.recv() => Err(Error::Interrupted),
        _ = hangup.recv() => Err(Error::Interrupted),
    }
}
