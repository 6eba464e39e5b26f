//! Making a mounted image safe to provision, and putting it back exactly: services must not
//! start (policy-rc.d), preloaded libraries must not load into qemu-user (ld.so.preload),
//! name resolution must work (resolv.conf, a file or a symlink), and an initramfs built
//! meanwhile must not depend on the build host's hardware (`MODULES=most`).

use std::path::Path;

use super::cleanup::Cleanup;
use super::mounts::io;
use super::write_file;
use crate::error::Result;

const POLICY_RC: &str =
    "#!/bin/sh\n# bramble bake: no service starts while the image is built.\nexit 101\n";
const INITRAMFS_MOST: &str =
    "# bramble bake: a generic initramfs while the image is built.\nMODULES=most\n";
const INITRAMFS_OVERRIDE: &str = "etc/initramfs-tools/conf.d/zz-bramble-bake";

/// Applies every change, each recorded in `cleanup` before it is made.
pub fn prepare(root: &Path, cleanup: &mut Cleanup) -> Result<()> {
    replace(root, "usr/sbin/policy-rc.d", POLICY_RC, 0o755, cleanup)?;

    let preload = root.join("etc/ld.so.preload");
    if preload.symlink_metadata().is_ok() {
        // Saving moves it aside, which is all disabling needs.
        cleanup.save(&preload).map_err(|e| io("disabling ld.so.preload", &preload, e))?;
    }

    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    replace(root, "etc/resolv.conf", &host_resolv, 0o644, cleanup)?;

    if root.join("etc/initramfs-tools/conf.d").is_dir() {
        replace(root, INITRAMFS_OVERRIDE, INITRAMFS_MOST, 0o644, cleanup)?;
    }
    Ok(())
}

fn replace(root: &Path, inside: &str, text: &str, mode: u32, cleanup: &mut Cleanup) -> Result<()> {
    let path = root.join(inside);
    cleanup.save(&path).map_err(|e| io("preparing the image", &path, e))?;
    write_file(root, inside, text, mode)
}
