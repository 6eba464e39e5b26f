//! What a lab guest boots, taken from an image file. Two shapes are understood:
//!
//! - a Pi image as `bramble bake` writes it (`NAME.img.xz`, or the `.img` inside): MBR, FAT
//!   `bootfs` first with `vmlinuz`, `initrd.img` and `cmdline.txt` (`root=PARTUUID=…`),
//!   cloud-init reading its seed from there. The `.img` is unpacked once, and the boot
//!   partition copied out once, into `lab/images/KEY/`;
//! - a folder made by `tests/lab/image.sh` (`disk.qcow2`, `vmlinuz`, `initrd.img`,
//!   `cmdline`), whose guests trust the lab's own client and host keys.
//!
//! KEY is a hash of the file's path, size and modification time, so a rebuilt image is
//! unpacked anew and an unchanged one is never read twice.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::qemu::BootFiles;
use super::{Arch, io, run_tool};
use crate::error::{Error, Result};
use crate::image::disk;

/// An image ready to boot guests from.
#[derive(Clone, Debug)]
pub struct LabImage {
    /// The command line is the image's own, before [`super::qemu::kernel_cmdline`].
    pub boot: BootFiles,
    pub identity: Identity,
}

/// How a guest of this image gets its name, its login key and its host key.
#[derive(Clone, Debug)]
pub enum Identity {
    /// A cloud-init seed written to the guest's boot partition, as `bramble burn` does: the
    /// partition starts `offset` bytes into the disk, and `bootfs` is a copy of it as baked.
    Seed { bootfs: PathBuf, offset: u64 },
    /// Keys baked into the image: the client key that logs in as `pi` and the host's public
    /// key; the hostname comes from the kernel command line.
    Baked { client_key: PathBuf, host_key: PathBuf },
}

/// Turns `path` into boot files for `arch`, unpacking into `cache` what needs it.
pub async fn open(path: &Path, arch: Arch, cache: &Path) -> Result<LabImage> {
    if path.is_dir() {
        return lab_folder(path, arch);
    }
    if !path.is_file() {
        return Err(Error::lab(
            "opening the lab image",
            format!("no such file {}", path.display()),
        ));
    }
    let folder = cache.join(key(path)?);
    std::fs::create_dir_all(&folder).map_err(|e| io("creating", &folder, e))?;
    let raw = if path.to_string_lossy().ends_with(".xz") {
        unpack_xz(path, &folder.join("disk.img")).await?
    } else {
        path.to_path_buf()
    };
    pi_image(&raw, arch, &folder).await
}

/// `tests/lab/image.sh`'s folder: its keys are in the folder above it.
fn lab_folder(folder: &Path, arch: Arch) -> Result<LabImage> {
    let lab = folder.parent().unwrap_or(folder);
    let needed = [
        folder.join("disk.qcow2"),
        folder.join("vmlinuz"),
        folder.join("initrd.img"),
        folder.join("cmdline"),
        lab.join("id_ed25519"),
        lab.join("ssh_host_ed25519_key.pub"),
    ];
    if let Some(missing) = needed.iter().find(|path| !path.is_file()) {
        return Err(Error::lab(
            "opening the lab image",
            format!(
                "{} is not a lab image folder: no {}\nhint: --image takes a .img or .img.xz \
                 from bramble bake, or a folder printed by tests/lab/image.sh",
                folder.display(),
                missing.display()
            ),
        ));
    }
    let cmdline_path = folder.join("cmdline");
    let cmdline =
        std::fs::read_to_string(&cmdline_path).map_err(|e| io("reading", &cmdline_path, e))?;
    let boot = BootFiles {
        arch,
        disk: folder.join("disk.qcow2"),
        disk_format: "qcow2".into(),
        kernel: folder.join("vmlinuz"),
        initrd: folder.join("initrd.img"),
        cmdline: cmdline.trim().to_string(),
    };
    check_kernel(&boot.kernel, arch)?;
    let identity = Identity::Baked {
        client_key: lab.join("id_ed25519"),
        host_key: lab.join("ssh_host_ed25519_key.pub"),
    };
    Ok(LabImage { boot, identity })
}

/// A raw Pi image: the boot partition copied out, and the kernel files read from the copy.
async fn pi_image(raw: &Path, arch: Arch, folder: &Path) -> Result<LabImage> {
    let table = disk::read(raw).await.map_err(|e| {
        Error::lab("reading the image's partition table", format!("{}: {e}", raw.display()))
    })?;
    let boot_partition =
        table.partition(1).map_err(|e| Error::lab("opening the image", e.to_string()))?;
    let bootfs = folder.join("bootfs.img");
    if !bootfs.is_file() {
        copy_range(raw, boot_partition.offset(), boot_partition.bytes(), &bootfs)?;
    }
    for name in ["vmlinuz", "initrd.img", "cmdline.txt"] {
        let target = folder.join(name);
        if !target.is_file() {
            fat_copy_out(&bootfs, name, &target).await?;
        }
    }
    let cmdline_path = folder.join("cmdline.txt");
    let cmdline =
        std::fs::read_to_string(&cmdline_path).map_err(|e| io("reading", &cmdline_path, e))?;
    if !cmdline.contains("root=") {
        return Err(Error::lab(
            "opening the image",
            format!("its cmdline.txt names no root= device: {}", cmdline.trim()),
        ));
    }
    let boot = BootFiles {
        arch,
        disk: raw.to_path_buf(),
        disk_format: "raw".into(),
        kernel: folder.join("vmlinuz"),
        initrd: folder.join("initrd.img"),
        cmdline: cmdline.trim().to_string(),
    };
    check_kernel(&boot.kernel, arch)?;
    Ok(LabImage { boot, identity: Identity::Seed { bootfs, offset: boot_partition.offset() } })
}

async fn fat_copy_out(bootfs: &Path, name: &str, target: &Path) -> Result<()> {
    let partial = target.with_extension("partial");
    let source = format!("::/{name}");
    let arguments =
        ["-i".as_ref(), bootfs.as_os_str(), "-n".as_ref(), source.as_ref(), partial.as_os_str()];
    run_tool(&format!("reading {name} from the boot partition"), "mcopy", &arguments).await?;
    std::fs::rename(&partial, target).map_err(|e| io("saving", target, e))
}

/// Copies `length` bytes at `offset` of `source` into a new sparse file.
fn copy_range(source: &Path, offset: u64, length: u64, target: &Path) -> Result<()> {
    let partial = target.with_extension("partial");
    let step = "copying the boot partition";
    let mut input = std::fs::File::open(source).map_err(|e| io(step, source, e))?;
    input.seek(SeekFrom::Start(offset)).map_err(|e| io(step, source, e))?;
    let mut output = std::fs::File::create(&partial).map_err(|e| io(step, &partial, e))?;
    let mut input = input.take(length);
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = input.read(&mut buffer).map_err(|e| io(step, source, e))?;
        if read == 0 {
            break;
        }
        let chunk = &buffer[..read];
        if chunk.iter().all(|byte| *byte == 0) {
            output.seek(SeekFrom::Current(read as i64)).map_err(|e| io(step, &partial, e))?;
        } else {
            output.write_all(chunk).map_err(|e| io(step, &partial, e))?;
        }
    }
    output.set_len(length).map_err(|e| io(step, &partial, e))?;
    std::fs::rename(&partial, target).map_err(|e| io(step, target, e))
}

async fn unpack_xz(xz: &Path, target: &Path) -> Result<PathBuf> {
    if target.is_file() {
        return Ok(target.to_path_buf());
    }
    crate::output::err(&format!("{:>12} {} (once)\n", "unpacking", xz.display()));
    let partial = target.with_extension("partial");
    let script = format!(
        "xz -dc -T0 {} | cp --sparse=always /dev/stdin {}",
        crate::connection::quote(&xz.to_string_lossy()),
        crate::connection::quote(&partial.to_string_lossy())
    );
    run_tool("unpacking the image", "sh", &["-c", &script]).await?;
    std::fs::rename(&partial, target).map_err(|e| io("unpacking the image", target, e))?;
    Ok(target.to_path_buf())
}

/// The cache key of an image file: its path, size and modification time.
fn key(path: &Path) -> Result<String> {
    let canonical = path.canonicalize().map_err(|e| io("opening the lab image", path, e))?;
    let meta = std::fs::metadata(&canonical).map_err(|e| io("opening the lab image", path, e))?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|age| age.as_nanos())
        .unwrap_or(0);
    let mut hasher = Sha256::new();
    hasher.update(canonical.to_string_lossy().as_bytes());
    hasher.update(format!("\0{}\0{modified}", meta.len()).as_bytes());
    Ok(hex::encode(hasher.finalize())[..16].to_string())
}

/// The architecture a kernel file was built for, when its header says so: an arm64 `Image`
/// carries `ARMd` at 0x38, an x86 bzImage `HdrS` at 0x202. Compressed kernels say nothing.
pub fn kernel_arch(header: &[u8]) -> Option<Arch> {
    if header.get(0x38..0x3c) == Some(b"ARM\x64") {
        return Some(Arch::Arm64);
    }
    if header.get(0x202..0x206) == Some(b"HdrS") {
        return Some(Arch::Amd64);
    }
    None
}

fn check_kernel(kernel: &Path, arch: Arch) -> Result<()> {
    let mut header = vec![0u8; 0x400];
    let mut file = std::fs::File::open(kernel).map_err(|e| io("reading the kernel", kernel, e))?;
    let read = file.read(&mut header).map_err(|e| io("reading the kernel", kernel, e))?;
    match kernel_arch(&header[..read]) {
        Some(found) if found != arch => Err(Error::lab(
            "checking the kernel",
            format!(
                "{} is an {} kernel, but the guests were asked to be {}\nhint: pass --arch {}",
                kernel.display(),
                found.name(),
                arch.name(),
                found.name()
            ),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_headers_tell_the_architecture() {
        let mut arm = vec![0u8; 0x400];
        arm[0x38..0x3c].copy_from_slice(b"ARM\x64");
        assert_eq!(kernel_arch(&arm), Some(Arch::Arm64));
        let mut x86 = vec![0u8; 0x400];
        x86[0x202..0x206].copy_from_slice(b"HdrS");
        assert_eq!(kernel_arch(&x86), Some(Arch::Amd64));
        assert_eq!(kernel_arch(&[0x1f, 0x8b, 8, 0]), None);
    }

    #[test]
    fn a_range_is_copied_sparse_and_whole() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("disk");
        let mut bytes = vec![0u8; 3 << 20];
        bytes[(1 << 20) + 5] = 7;
        bytes[(3 << 20) - 1] = 9;
        std::fs::write(&source, &bytes).unwrap();
        let target = dir.path().join("part");
        copy_range(&source, 1 << 20, 2 << 20, &target).unwrap();
        let copied = std::fs::read(&target).unwrap();
        assert_eq!(copied, bytes[1 << 20..]);
    }

    #[test]
    fn a_folder_without_the_lab_files_is_refused_with_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        let error = lab_folder(dir.path(), Arch::Amd64).unwrap_err().to_string();
        assert!(error.contains("is not a lab image folder"), "{error}");
        assert!(error.contains("hint: --image takes"), "{error}");
    }
}
