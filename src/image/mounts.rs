//! Mounting an image for work: rootfs at the mount point, bootfs's files unpacked into its
//! `/boot/firmware` (see `fat`), and the host's /dev, /dev/pts, /proc and /sys inside, each
//! mount recorded in the cleanup stack.

use std::path::{Path, PathBuf};

use super::cleanup::Cleanup;
use super::disk::{self, Table};
use super::host;
use crate::error::{Error, Result};

/// Where an image is mounted while it is worked on.
pub struct Mounted {
    pub root: PathBuf,
    pub table: Table,
    /// The loop device of the root partition, for resize2fs.
    pub root_device: String,
    pub boot_device: String,
}

impl Mounted {
    /// Writes `/boot/firmware` back to bootfs; done once the work succeeded, since a failed
    /// bake throws the whole copy away.
    pub async fn save_boot(&self) -> Result<()> {
        super::fat::repack(&self.boot_device, &self.root.join("boot/firmware")).await
    }
}

/// Attaches both partitions and mounts them, with the pseudo file systems a chroot needs.
pub async fn mount(image: &Path, root: &Path, cleanup: &mut Cleanup) -> Result<Mounted> {
    let table = disk::read(image).await?;
    let boot_device = disk::attach(image, table.partition(1)?, cleanup).await?;
    let root_device = disk::attach(image, table.partition(2)?, cleanup).await?;
    mount_device(&root_device, root, cleanup).await?;
    let firmware = root.join("boot/firmware");
    std::fs::create_dir_all(&firmware).map_err(|e| io("creating /boot/firmware", &firmware, e))?;
    super::fat::unpack(&boot_device, &firmware).await?;
    bind_host(root, cleanup).await?;
    Ok(Mounted { root: root.to_path_buf(), table, root_device, boot_device })
}

pub async fn mount_device(device: &str, point: &Path, cleanup: &mut Cleanup) -> Result<()> {
    host::run("mounting", "mount", &[device.as_ref(), point.as_os_str()]).await?;
    cleanup.unmount(point);
    Ok(())
}

/// /dev and /dev/pts are bound from the host; /proc and /sys are fresh mounts of their own
/// kind, which is what binding them would give without their submounts.
pub async fn bind_host(root: &Path, cleanup: &mut Cleanup) -> Result<()> {
    let mounts: [(&[&str], &str); 4] = [
        (&["--bind", "/dev"], "dev"),
        (&["--bind", "/dev/pts"], "dev/pts"),
        (&["-t", "proc", "proc"], "proc"),
        (&["-t", "sysfs", "sysfs"], "sys"),
    ];
    for (arguments, inside) in mounts {
        let point = root.join(inside);
        std::fs::create_dir_all(&point).map_err(|e| io("creating a mount point", &point, e))?;
        let mut all: Vec<&std::ffi::OsStr> = arguments.iter().map(|a| a.as_ref()).collect();
        all.push(point.as_os_str());
        host::run("binding the host's /dev /proc /sys", "mount", &all).await?;
        cleanup.unmount(&point);
    }
    Ok(())
}

pub fn io(step: &str, path: &Path, error: std::io::Error) -> Error {
    Error::image(step, format!("{}: {error}", path.display()))
}

/// Free bytes and total bytes of the file system mounted at `path` (the image's, not the
/// host's), from `df`.
pub async fn free_space(path: &Path) -> Result<(u64, u64)> {
    let text = host::run(
        "checking free space",
        "df",
        &["--block-size=1".as_ref(), "--output=avail,size".as_ref(), path.as_os_str()],
    )
    .await?;
    let numbers: Vec<u64> = text
        .lines()
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    match numbers[..] {
        [available, size] => Ok((available, size)),
        _ => Err(Error::image("checking free space", format!("unexpected df output: {text}"))),
    }
}
