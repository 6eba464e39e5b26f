//! `bramble burn IMAGE TARGET`: stream an image (raw or `.img.xz`, never unpacked to a temp
//! file) onto a card or a file, writing only the blocks its `.bmap` lists and the first MiB
//! last (so an interrupted burn leaves no bootable half-card), read it back to verify, then
//! give the card its own identity: a new disk identifier with cmdline.txt and /etc/fstab
//! following it, and cloud-init files (or bookworm's firstrun.sh) on the boot partition.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

use super::artifact::{BLOCK, BlockMap, parse_bmap};
use super::cleanup::Cleanup;
use super::cloud_init::{self, DeviceIdentity};
use super::disk::{self, partuuid};
use super::mounts::{self, io};
use super::progress::Steps;
use super::target::{self, Target};
use super::{base, cache_dir, fat, firstrun, host, write_file};
use crate::error::{Error, Result};

/// The first MiB holds the partition table and the boot sector: written last.
const HEAD: u64 = 1 << 20;
const CHUNK: usize = 1 << 20;

#[derive(Clone, Debug, Default)]
pub struct BurnOptions {
    pub image: PathBuf,
    pub target: PathBuf,
    pub hostname: Option<String>,
    pub user: Option<String>,
    pub ssh_keys: Vec<PathBuf>,
    pub overwrite_system_disk: bool,
}

pub async fn burn(options: &BurnOptions) -> Result<()> {
    super::require_root("bramble burn")?;
    let target = target::check(&options.target, options.overwrite_system_disk)?;
    let same = |a: &Path, b: &Path| {
        std::fs::canonicalize(a)
            .ok()
            .zip(std::fs::canonicalize(b).ok())
            .is_some_and(|(a, b)| a == b)
    };
    if same(&options.image, &options.target) {
        return Err(crate::error::Error::image(
            "checking the target",
            format!("{} is the image itself", options.target.display()),
        ));
    }
    let keys = read_keys(&options.ssh_keys)?;
    let mut steps = Steps::new();
    let bmap = find_bmap(&options.image)?;
    let expected = expected_sha256(&options.image);
    let size = match &bmap {
        Some(bmap) => bmap.image_size,
        None => image_size(&options.image).await?,
    };
    if let Target::Device(device) = &target
        && device.bytes < size
    {
        return Err(Error::image(
            "checking the target",
            format!(
                "{} holds {} bytes; the image needs {size}",
                device.path.display(),
                device.bytes
            ),
        ));
    }

    steps.start("write");
    let image = options.image.clone();
    let path = options.target.clone();
    let is_file = matches!(target, Target::File(_));
    let map = bmap.clone();
    let written = tokio::task::spawn_blocking(move || {
        write_image(&image, &path, is_file, size, map.as_ref(), expected.as_deref())
    })
    .await
    .map_err(|e| Error::image("writing", e.to_string()))??;
    steps.done();

    steps.start("verify");
    let path = options.target.clone();
    tokio::task::spawn_blocking(move || verify(&path, size, bmap.as_ref(), &written))
        .await
        .map_err(|e| Error::image("verifying", e.to_string()))??;
    steps.done();

    steps.start("identity");
    let identity = DeviceIdentity {
        instance_id: format!(
            "bramble-{}-{:08x}",
            options.hostname.as_deref().unwrap_or("pi"),
            disk::random_disk_id()
        ),
        hostname: options.hostname.clone(),
        user: options.user.clone(),
        authorized_keys: keys,
    };
    personalize(&options.target, &identity).await?;
    steps.done();
    crate::output::err(&format!(
        "{:>12} {} ({})\n",
        "burned",
        options.target.display(),
        steps.summary()
    ));
    Ok(())
}

fn read_keys(files: &[PathBuf]) -> Result<Vec<String>> {
    let mut keys = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(path)
            .map_err(|source| Error::FileRead { path: path.clone(), source })?;
        keys.extend(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string));
    }
    Ok(keys)
}

/// The names a bake gives the block map of `NAME.img.xz`, in the order bmaptool looks.
fn bmap_candidates(image: &Path) -> Vec<PathBuf> {
    let name = image.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let stem = name.trim_end_matches(".xz").trim_end_matches(".img").to_string();
    vec![
        image.with_file_name(format!("{name}.bmap")),
        image.with_file_name(format!("{}.bmap", name.trim_end_matches(".xz"))),
        image.with_file_name(format!("{stem}.bmap")),
    ]
}

fn find_bmap(image: &Path) -> Result<Option<BlockMap>> {
    for candidate in bmap_candidates(image) {
        if let Ok(text) = std::fs::read_to_string(&candidate) {
            tracing::debug!("using the block map {}", candidate.display());
            return parse_bmap(&text).map(Some);
        }
    }
    Ok(None)
}

/// The raw image's sha256 from `NAME.img.sha256`, if the bake left one.
fn expected_sha256(image: &Path) -> Option<String> {
    let name = image.file_name()?.to_string_lossy().into_owned();
    let raw = name.trim_end_matches(".xz");
    let text = std::fs::read_to_string(image.with_file_name(format!("{raw}.sha256"))).ok()?;
    text.split_whitespace().next().map(str::to_string)
}

async fn image_size(image: &Path) -> Result<u64> {
    if !is_xz(image) {
        return std::fs::metadata(image).map(|m| m.len()).map_err(|e| io("reading", image, e));
    }
    let listing = host::run(
        "reading the image size",
        "xz",
        &["--robot".as_ref(), "--list".as_ref(), image.as_os_str()],
    )
    .await?;
    listing
        .lines()
        .find(|line| line.starts_with("totals"))
        .and_then(|line| line.split('\t').nth(4))
        .and_then(|size| size.parse().ok())
        .ok_or_else(|| Error::image("reading the image size", "xz --list gave no size"))
}

fn is_xz(image: &Path) -> bool {
    image.extension().is_some_and(|extension| extension == "xz")
}

/// Opens the image as a stream of raw bytes: xz decompresses in a child process.
fn open_source(image: &Path) -> Result<(Box<dyn Read + Send>, Option<std::process::Child>)> {
    if !is_xz(image) {
        let file = File::open(image).map_err(|e| io("opening the image", image, e))?;
        return Ok((Box::new(file), None));
    }
    let mut child = Command::new("xz")
        .args(["-dc", "-T0"])
        .arg(image)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| Error::image("decompressing", format!("could not run xz: {e}")))?;
    let stdout = child.stdout.take().ok_or_else(|| Error::image("decompressing", "no pipe"))?;
    Ok((Box::new(stdout), Some(child)))
}

/// The parts of `[start, start + length)` that the block map lists, as byte ranges.
pub fn mapped_parts(bmap: Option<&BlockMap>, start: u64, length: u64) -> Vec<(u64, u64)> {
    let end = start + length;
    let Some(bmap) = bmap else { return vec![(start, end)] };
    bmap.ranges
        .iter()
        .map(|range| (range.first * BLOCK, (range.last + 1) * BLOCK))
        .filter(|(first, last)| *first < end && *last > start)
        .map(|(first, last)| (first.max(start), last.min(end)))
        .collect()
}

/// Streams the image onto the target and returns the sha256 of what was read.
fn write_image(
    image: &Path,
    path: &Path,
    is_file: bool,
    size: u64,
    bmap: Option<&BlockMap>,
    expected: Option<&str>,
) -> Result<String> {
    let failed = |e: std::io::Error| io("writing", path, e);
    let mut options = OpenOptions::new();
    options.write(true).read(true);
    if is_file {
        options.create(true);
    } else {
        // O_EXCL on a block device: fail if the kernel has it in use (mounted, in a RAID).
        options.custom_flags(libc::O_EXCL);
    }
    let target = options.open(path).map_err(failed)?;
    if is_file {
        // Unmapped blocks must read back as zeros: drop the old content, keep a larger size.
        let length = target.metadata().map_err(failed)?.len().max(size);
        target.set_len(0).and_then(|()| target.set_len(length)).map_err(failed)?;
    }

    let (mut source, child) = open_source(image)?;
    let mut hasher = Sha256::new();
    let mut head = Vec::with_capacity(HEAD as usize);
    let mut buffer = vec![0u8; CHUNK];
    let mut position = 0u64;
    loop {
        let count = read_full(&mut source, &mut buffer).map_err(|e| io("reading", image, e))?;
        if count == 0 {
            break;
        }
        let chunk = &buffer[..count];
        hasher.update(chunk);
        let keep = (HEAD.saturating_sub(position) as usize).min(count);
        head.extend_from_slice(&chunk[..keep]);
        let start = position + keep as u64;
        for (first, last) in mapped_parts(bmap, start, (count - keep) as u64) {
            let slice = &chunk[(first - position) as usize..(last - position) as usize];
            target.write_all_at(slice, first).map_err(failed)?;
        }
        position += count as u64;
    }
    if let Some(mut child) = child {
        let status = child.wait().map_err(|e| io("decompressing", image, e))?;
        if !status.success() {
            return Err(Error::image("decompressing", format!("xz failed ({status})")));
        }
    }
    let sha256 = hex::encode(hasher.finalize());
    if position != size {
        return Err(Error::image("writing", format!("the image has {position} bytes, not {size}")));
    }
    if let Some(expected) = expected
        && expected != sha256
    {
        return Err(Error::image(
            "writing",
            format!("the image's sha256 is {sha256}, its .img.sha256 says {expected}"),
        ));
    }
    target.write_all_at(&head, 0).map_err(failed)?;
    target.sync_all().map_err(failed)?;
    Ok(sha256)
}

fn read_full(source: &mut dyn Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match source.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(count) => filled += count,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// Reads the target back, past the page cache: every mapped range against the bmap's
/// checksums, or the whole image against the stream's sha256.
fn verify(path: &Path, size: u64, bmap: Option<&BlockMap>, written: &str) -> Result<()> {
    let failed = |e: std::io::Error| io("verifying", path, e);
    let file = File::open(path).map_err(failed)?;
    // SAFETY: advice on a descriptor this function owns; no memory is involved.
    unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    let mut buffer = vec![0u8; CHUNK];
    let mut hash_span = |first: u64, last: u64| -> Result<String> {
        let mut hasher = Sha256::new();
        let mut offset = first;
        while offset < last {
            let count = ((last - offset) as usize).min(CHUNK);
            file.read_exact_at(&mut buffer[..count], offset).map_err(failed)?;
            hasher.update(&buffer[..count]);
            offset += count as u64;
        }
        Ok(hex::encode(hasher.finalize()))
    };
    match bmap {
        Some(bmap) => {
            for range in &bmap.ranges {
                let end = ((range.last + 1) * BLOCK).min(size);
                if hash_span(range.first * BLOCK, end)? != range.sha256 {
                    return Err(Error::image(
                        "verifying",
                        format!(
                            "blocks {}-{} read back differ from the image",
                            range.first, range.last
                        ),
                    ));
                }
            }
            Ok(())
        }
        None if hash_span(0, size)? == written => Ok(()),
        None => Err(Error::image("verifying", "what was read back differs from the image")),
    }
}

/// Gives the written card its own disk identifier and cloud-init seed.
async fn personalize(path: &Path, identity: &DeviceIdentity) -> Result<()> {
    let old = disk::read(path).await?;
    let new_id = disk::random_disk_id();
    disk::set_disk_id(path, new_id).await?;
    let table = disk::read(path).await?;

    let mut cleanup = Cleanup::new();
    let work = base::work_dir(&cache_dir(), &mut cleanup)?;
    let root = work.join("root");
    std::fs::create_dir_all(&root).map_err(|e| io("mount point", &root, e))?;
    let boot_device = disk::attach(path, table.partition(1)?, &mut cleanup).await?;
    let root_device = disk::attach(path, table.partition(2)?, &mut cleanup).await?;
    mounts::mount_device(&root_device, &root, &mut cleanup).await?;

    let release = std::fs::read_to_string(root.join("etc/os-release")).unwrap_or_default();
    let bookworm = release.lines().any(|line| line == "VERSION_CODENAME=bookworm");
    replace_partuuids(&root.join("etc/fstab"), old.disk_id, new_id)?;
    let cmdline = work.join("cmdline.txt");
    let mut cmdline_text = fat::read(&boot_device, "cmdline.txt").await?;
    if bookworm {
        cmdline_text = firstrun::cmdline(&cmdline_text);
    }
    std::fs::write(&cmdline, cmdline_text).map_err(|e| io("writing", &cmdline, e))?;
    replace_partuuids(&cmdline, old.disk_id, new_id)?;
    fat::write(&boot_device, &cmdline, "cmdline.txt").await?;
    for (name, text) in first_boot_files(identity, bookworm) {
        write_file(&work, name, &text, 0o644)?;
        fat::write(&boot_device, &work.join(name), name).await?;
    }
    cleanup.finish().map_err(|e| Error::image("cleaning up", e))
}

/// The boot partition's files that give the card its identity at first boot: cloud-init's
/// seed (trixie-based releases), or bookworm's `firstrun.sh` and `userconf.txt`.
fn first_boot_files(identity: &DeviceIdentity, bookworm: bool) -> Vec<(&'static str, String)> {
    if !bookworm {
        return vec![
            ("meta-data", cloud_init::meta_data(identity)),
            ("user-data", cloud_init::user_data(identity)),
            ("network-config", cloud_init::network_config()),
        ];
    }
    let mut files = vec![(firstrun::SCRIPT_NAME, firstrun::script(identity))];
    if let Some(user) = &identity.user {
        files.push(("userconf.txt", firstrun::userconf(user)));
    }
    files
}

/// Points every `PARTUUID=<old id>-NN` in a file at the new disk identifier.
fn replace_partuuids(path: &Path, old: u32, new: u32) -> Result<()> {
    let text = std::fs::read_to_string(path).map_err(|e| io("reading", path, e))?;
    let mut fixed = text.clone();
    for number in 1..=4 {
        fixed = fixed.replace(
            &format!("PARTUUID={}", partuuid(old, number)),
            &format!("PARTUUID={}", partuuid(new, number)),
        );
    }
    if fixed == text {
        return Err(Error::image(
            "fixing PARTUUIDs",
            format!("{} names no PARTUUID of disk {old:08x}", path.display()),
        ));
    }
    std::fs::write(path, fixed).map_err(|e| io("writing", path, e))
}

#[cfg(test)]
mod tests {
    use super::super::artifact::Range;
    use super::*;

    #[test]
    fn only_mapped_parts_are_written() {
        let bmap = BlockMap {
            image_size: 1 << 30,
            ranges: vec![Range { first: 256, last: 511, sha256: String::new() }],
        };
        assert!(mapped_parts(Some(&bmap), 0, 1 << 20).is_empty());
        assert_eq!(mapped_parts(Some(&bmap), 1 << 20, 1 << 20), vec![(1 << 20, 2 << 20)]);
        assert_eq!(mapped_parts(Some(&bmap), 3 << 19, 1 << 20), vec![(3 << 19, 2 << 20)]);
        assert_eq!(mapped_parts(None, 5, 10), vec![(5, 15)]);
    }

    #[test]
    fn bmap_names() {
        let names = bmap_candidates(Path::new("/o/lab.img.xz"));
        assert_eq!(names[2], PathBuf::from("/o/lab.bmap"));
    }
}
