//! The FAT boot partition, reached with mtools rather than mounted: many build hosts (VMs
//! with minimal kernels, containers) cannot mount vfat, and mtools works on any block
//! device or file. While an image is worked on, the partition's files live in the root
//! file system's `/boot/firmware` folder, where tasks see them as on a running Pi.

use std::path::Path;

use super::host;
use crate::error::{Error, Result};

/// Copies every file of the FAT at `device` into `folder` (empty), keeping times.
pub async fn unpack(device: &str, folder: &Path) -> Result<()> {
    let listing = host::run("reading bootfs", "mdir", &["-i", device, "-b", "::/"]).await?;
    if listing.trim().is_empty() {
        return Ok(());
    }
    host::run(
        "reading bootfs",
        "mcopy",
        &[
            "-i".as_ref(),
            device.as_ref(),
            "-s".as_ref(),
            "-p".as_ref(),
            "-m".as_ref(),
            "-n".as_ref(),
            "::/*".as_ref(),
            folder.as_os_str(),
        ],
    )
    .await
    .map(drop)
}

/// Makes the FAT at `device` hold exactly the files of `folder`, then empties the folder.
/// The file system is made anew with the same label and serial number.
pub async fn repack(device: &str, folder: &Path) -> Result<()> {
    let step = "writing bootfs";
    let serial = host::run(step, "blkid", &["-o", "value", "-s", "UUID", device]).await?;
    let serial = serial.trim().replace('-', "");
    let mut format = vec!["-F", "32", "-n", "bootfs"];
    if !serial.is_empty() {
        format.extend(["-i", serial.as_str()]);
    }
    format.push(device);
    host::run(step, "mkfs.vfat", &format).await?;
    let entries: Vec<std::path::PathBuf> = std::fs::read_dir(folder)
        .map_err(|e| Error::image(step, format!("{}: {e}", folder.display())))?
        .flatten()
        .map(|entry| entry.path())
        .collect();
    if entries.is_empty() {
        return Ok(());
    }
    let options = ["-i", device, "-s", "-p", "-m", "-o"];
    let mut arguments: Vec<&std::ffi::OsStr> = options.iter().map(|a| a.as_ref()).collect();
    arguments.extend(entries.iter().map(|path| path.as_os_str()));
    arguments.push("::/".as_ref());
    host::run(step, "mcopy", &arguments).await?;
    for entry in &entries {
        let removed = if entry.is_dir() {
            std::fs::remove_dir_all(entry)
        } else {
            std::fs::remove_file(entry)
        };
        removed.map_err(|e| Error::image(step, format!("{}: {e}", entry.display())))?;
    }
    Ok(())
}

/// Reads one file of the FAT.
pub async fn read(device: &str, name: &str) -> Result<String> {
    host::run("reading bootfs", "mtype", &["-i", device, &format!("::/{name}")]).await
}

/// Writes (or replaces) one file of the FAT from `source`.
pub async fn write(device: &str, source: &Path, name: &str) -> Result<()> {
    host::run(
        "writing bootfs",
        "mcopy",
        &[
            "-i".as_ref(),
            device.as_ref(),
            "-o".as_ref(),
            source.as_os_str(),
            format!("::/{name}").as_ref(),
        ],
    )
    .await
    .map(drop)
}
