//! Partition surgery on a raw image file, laid out like Raspberry Pi OS.
//!
//! The disk is MBR (the Pi's firmware reads nothing else): partition 1 is FAT32 `bootfs`
//! from 8 MiB, partition 2 is ext4 `rootfs` right after it and runs to the end of the disk.
//! Partitions are reached through loop devices set up with an offset and a size limit, one
//! per partition, so nothing depends on the kernel re-reading the table (`--partscan`
//! needs udev to create the nodes, which containers and chroots often lack).

use std::path::Path;

use serde_json::Value;

use super::cleanup::Cleanup;
use super::host;
use crate::connection::quote;
use crate::error::{Error, Result};

pub const SECTOR: u64 = 512;
/// The boot partition starts at 8 MiB, as in current Raspberry Pi OS images.
pub const BOOT_START: u64 = (8 << 20) / SECTOR;
pub const BOOT_SECTORS: u64 = (512 << 20) / SECTOR;
pub const ROOT_START: u64 = BOOT_START + BOOT_SECTORS;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    pub number: u32,
    pub start: u64,
    pub sectors: u64,
    pub kind: String,
}

impl Partition {
    pub fn offset(&self) -> u64 {
        self.start * SECTOR
    }

    pub fn bytes(&self) -> u64 {
        self.sectors * SECTOR
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    pub disk_id: u32,
    pub partitions: Vec<Partition>,
}

impl Table {
    pub fn partition(&self, number: u32) -> Result<&Partition> {
        self.partitions.iter().find(|p| p.number == number).ok_or_else(|| {
            Error::image("reading the partition table", format!("no partition {number}"))
        })
    }
}

/// The PARTUUID Linux gives an MBR partition: the disk identifier and the number.
pub fn partuuid(disk_id: u32, number: u32) -> String {
    format!("{disk_id:08x}-{number:02}")
}

/// The sfdisk script of a fresh image: bootfs (W95 FAT32 LBA) and rootfs (Linux) to the end.
pub fn layout_script(disk_id: u32) -> String {
    format!(
        "label: dos\nlabel-id: 0x{disk_id:08x}\nunit: sectors\n\n\
         start={BOOT_START}, size={BOOT_SECTORS}, type=c\nstart={ROOT_START}, type=83\n"
    )
}

/// Parses `sfdisk --json` output.
pub fn parse_table(json: &str) -> Result<Table> {
    let invalid = |what: &str| Error::image("reading the partition table", what.to_string());
    let value: Value = serde_json::from_str(json).map_err(|e| invalid(&e.to_string()))?;
    let table = &value["partitiontable"];
    if table["label"] != "dos" {
        return Err(invalid("the image has no MBR (dos) partition table"));
    }
    let id = table["id"].as_str().ok_or_else(|| invalid("no disk identifier"))?;
    let disk_id = u32::from_str_radix(id.trim_start_matches("0x"), 16)
        .map_err(|_| invalid(&format!("disk identifier {id} is not hexadecimal")))?;
    let mut partitions = Vec::new();
    for (index, entry) in table["partitions"].as_array().into_iter().flatten().enumerate() {
        let node = entry["node"].as_str().unwrap_or("");
        let number = node
            .rsplit(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|digits| digits.parse().ok())
            .unwrap_or(index as u32 + 1);
        partitions.push(Partition {
            number,
            start: entry["start"].as_u64().ok_or_else(|| invalid("partition without start"))?,
            sectors: entry["size"].as_u64().ok_or_else(|| invalid("partition without size"))?,
            kind: entry["type"].as_str().unwrap_or("").to_string(),
        });
    }
    Ok(Table { disk_id, partitions })
}

pub async fn read(image: &Path) -> Result<Table> {
    parse_table(
        &host::run(
            "reading the partition table",
            "sfdisk",
            &["--json".as_ref(), image.as_os_str()],
        )
        .await?,
    )
}

/// Writes the Raspberry Pi OS layout onto `image` (which must already have its size).
pub async fn write_layout(image: &Path, disk_id: u32) -> Result<()> {
    let script = format!(
        "printf %s {} | sfdisk --quiet --no-reread --no-tell-kernel {}",
        quote(&layout_script(disk_id)),
        quote(&image.to_string_lossy())
    );
    host::shell("partitioning", &script).await.map(drop)
}

/// Sets a new disk identifier (the PARTUUIDs change with it).
pub async fn set_disk_id(image: &Path, disk_id: u32) -> Result<()> {
    host::run(
        "setting the disk identifier",
        "sfdisk",
        &["--disk-id".as_ref(), image.as_os_str(), format!("0x{disk_id:08x}").as_ref()],
    )
    .await
    .map(drop)
}

/// Moves the end of partition 2 to the end of the disk.
pub async fn grow_root(image: &Path) -> Result<()> {
    let script = format!(
        "printf %s ', +' | sfdisk --quiet --no-reread --no-tell-kernel -N 2 {}",
        quote(&image.to_string_lossy())
    );
    host::shell("growing partition 2", &script).await.map(drop)
}

/// A loop device over one partition, detached by `cleanup`.
pub async fn attach(image: &Path, partition: &Partition, cleanup: &mut Cleanup) -> Result<String> {
    let device = host::run(
        "attaching a loop device",
        "losetup",
        &[
            "--find".as_ref(),
            "--show".as_ref(),
            "--offset".as_ref(),
            partition.offset().to_string().as_ref(),
            "--sizelimit".as_ref(),
            partition.bytes().to_string().as_ref(),
            image.as_os_str(),
        ],
    )
    .await?;
    let device = device.trim().to_string();
    cleanup.detach(&device);
    Ok(device)
}

/// A random 32-bit disk identifier, never 0 (which means "none" to some tools).
pub fn random_disk_id() -> u32 {
    let mut bytes = [0u8; 4];
    let filled = std::fs::File::open("/dev/urandom")
        .and_then(|mut file| std::io::Read::read_exact(&mut file, &mut bytes));
    let id = match filled {
        Ok(()) => u32::from_le_bytes(bytes),
        Err(_) => {
            std::process::id() ^ std::time::UNIX_EPOCH.elapsed().map_or(1, |d| d.subsec_nanos())
        }
    };
    id.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sfdisk_json() {
        let json = r#"{"partitiontable": {"label": "dos", "id": "0x5e3da3da",
            "device": "x.img", "unit": "sectors", "sectorsize": 512, "partitions": [
            {"node": "x.img1", "start": 16384, "size": 1048576, "type": "c"},
            {"node": "x.img2", "start": 1064960, "size": 4194304, "type": "83"}]}}"#;
        let table = parse_table(json).unwrap();
        assert_eq!(table.disk_id, 0x5e3da3da);
        assert_eq!(table.partitions[1].number, 2);
        assert_eq!(table.partitions[1].offset(), 1064960 * 512);
        assert_eq!(partuuid(table.disk_id, 2), "5e3da3da-02");
    }

    #[test]
    fn layout_is_aligned_like_raspberry_pi_os() {
        let script = layout_script(0xabc);
        assert!(script.contains("label-id: 0x00000abc"));
        assert!(script.contains("start=16384, size=1048576, type=c"));
        assert_eq!(ROOT_START * SECTOR % (4 << 20), 0);
    }
}
