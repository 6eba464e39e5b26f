//! Where `bramble burn` may write: a regular file (for VMs and tests), or a whole removable
//! block device (SD card reader, USB) that nothing has mounted. Anything else is refused
//! unless the caller names the danger with `--overwrite-system-disk`.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A block device as `/sys/class/block` describes it.
#[derive(Clone, Debug)]
pub struct Device {
    pub name: String,
    pub path: PathBuf,
    pub bytes: u64,
    pub removable: bool,
    pub model: String,
}

#[derive(Clone, Debug)]
pub enum Target {
    File(PathBuf),
    Device(Device),
}

fn read_sys(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default().trim().to_string()
}

/// Reads one whole-disk block device from sysfs.
pub fn device(name: &str) -> Option<Device> {
    let sys = Path::new("/sys/class/block").join(name);
    if !sys.exists() || sys.join("partition").exists() {
        return None;
    }
    let link = std::fs::read_link(&sys).unwrap_or_default().to_string_lossy().into_owned();
    let removable = read_sys(&sys.join("removable")) == "1"
        || name.starts_with("mmcblk")
        || link.contains("/usb");
    let sectors: u64 = read_sys(&sys.join("size")).parse().unwrap_or(0);
    Some(Device {
        name: name.to_string(),
        path: Path::new("/dev").join(name),
        bytes: sectors * 512,
        removable,
        model: read_sys(&sys.join("device/model")),
    })
}

/// Removable whole disks, for `bramble burn --list`.
pub fn removable_devices() -> Vec<Device> {
    let mut devices: Vec<Device> = std::fs::read_dir("/sys/class/block")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| device(&entry.file_name().to_string_lossy()))
        .filter(|device| device.removable && device.bytes > 0)
        .filter(|device| !device.name.starts_with("loop") && !device.name.starts_with("ram"))
        .collect();
    devices.sort_by(|a, b| a.name.cmp(&b.name));
    devices
}

/// Mounted sources (and swap) on this device or its partitions.
fn uses_of(device: &Device) -> Vec<String> {
    let prefix = device.path.to_string_lossy().into_owned();
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let swaps = std::fs::read_to_string("/proc/swaps").unwrap_or_default();
    mounts
        .lines()
        .chain(swaps.lines().skip(1))
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let source = words.next()?;
            let point = words.next().unwrap_or("swap");
            source.starts_with(&prefix).then(|| format!("{source} on {point}"))
        })
        .collect()
}

fn in_dev(path: &Path) -> bool {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::canonicalize(parent).is_ok_and(|parent| parent.starts_with("/dev"))
}

/// Decides whether `path` may be written, and how.
pub fn check(path: &Path, overwrite_system_disk: bool) -> Result<Target> {
    let step = "checking the target";
    let metadata = match std::fs::metadata(path) {
        // /dev holds devices only: a name there that is none is a mistyped disk, and writing
        // an image to it would fill memory (devtmpfs), not a card.
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && in_dev(path) => {
            return Err(Error::image(
                step,
                format!("{} does not exist; `bramble burn --list` shows the disks", path.display()),
            ));
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Target::File(path.to_path_buf()));
        }
        Err(error) => return Err(Error::image(step, format!("{}: {error}", path.display()))),
        Ok(metadata) => metadata,
    };
    if metadata.is_file() {
        return Ok(Target::File(path.to_path_buf()));
    }
    use std::os::unix::fs::FileTypeExt;
    if !metadata.file_type().is_block_device() {
        return Err(Error::image(step, format!("{} is neither a file nor a disk", path.display())));
    }
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let name = real.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let Some(device) = device(&name) else {
        return Err(Error::image(
            step,
            format!("{} is a partition or unknown to sysfs; give the whole disk", path.display()),
        ));
    };
    let uses = uses_of(&device);
    let mut problems = Vec::new();
    if !device.removable {
        problems.push(format!("{} is not a removable disk", device.path.display()));
    }
    if !uses.is_empty() {
        problems.push(format!("{} is in use: {}", device.path.display(), uses.join(", ")));
    }
    if problems.is_empty() || overwrite_system_disk {
        return Ok(Target::Device(device));
    }
    Err(Error::image(
        step,
        format!(
            "refusing to write: {}\nhint: `bramble burn --list` shows the removable disks; \
             --overwrite-system-disk writes anyway and destroys what is on it",
            problems.join("; ")
        ),
    ))
}
