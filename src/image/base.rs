//! The base image from scratch: debootstrap's root file system (cached as a tarball keyed by
//! what debootstrap is given), laid out like Raspberry Pi OS with Debian's generic kernel so
//! that it also boots under `qemu-system-aarch64 -M virt` (cached as a raw image keyed by the
//! tarball and this file's settings).

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::cleanup::Cleanup;
use super::disk::{self, partuuid};
use super::mounts::{self, io};
use super::progress::Steps;
use super::recipe::Debootstrap;
use super::{binfmt, chroot_script, host, write_file};
use crate::connection::{ChrootConnection, quote};
use crate::error::{Error, Result};

/// Always installed: a bootable systemd system that cloud-init configures at first boot.
pub const CORE_PACKAGES: &[&str] = &[
    "systemd-sysv",
    "systemd-resolved",
    "udev",
    "kmod",
    "dbus",
    "libpam-systemd",
    "libnss-myhostname",
    "initramfs-tools",
    "openssh-server",
    "sudo",
    "ca-certificates",
    "iproute2",
    "procps",
    "curl",
    "locales",
    "tzdata",
    "dosfstools",
    "cloud-init",
    "cloud-guest-utils",
    // debootstrap does not resolve virtual packages: cloud-init's python3-cryptography needs
    // python3-cffi-backend-api-*, which only this package provides.
    "python3-cffi-backend",
];

/// Read by initramfs-tools before the kernel is installed, so that the first initramfs is
/// already the small one: a full (`MODULES=most`) one takes a quarter hour under qemu-user.
/// The base image removes it again once that initramfs is built, so the next kernel update
/// (on a Pi, whose SD card needs more than virtio) builds a generic `MODULES=most` one.
const INITRAMFS_CONF: &str = "# bramble: the image boots on qemu's virtio devices and on a Pi.\n\
MODULES=list\nRESUME=none\n";
const INITRAMFS_MODULES: &str = "virtio_pci\nvirtio_blk\nvirtio_net\nvirtio_scsi\nvirtio_rng\n\
virtio_mmio\next4\nvfat\nnls_cp437\nnls_ascii\n";
const INITRAMFS_MODULES_FILE: &str = "usr/share/initramfs-tools/modules.d/bramble";

/// Keeps the kernel and initramfs on the boot partition current, where a Pi's firmware
/// (and the qemu boot test) look for them.
const FIRMWARE_HOOK: &str = r#"#!/bin/sh
# bramble: copy the newest initramfs and its kernel to the boot partition.
version="$1"
initrd="${2:-/boot/initrd.img-$version}"
mountpoint -q /boot/firmware || exit 0
cp "/boot/vmlinuz-$version" /boot/firmware/vmlinuz.new
cp "$initrd" /boot/firmware/initrd.img.new
mv /boot/firmware/vmlinuz.new /boot/firmware/vmlinuz
mv /boot/firmware/initrd.img.new /boot/firmware/initrd.img
"#;

const CONFIG_TXT: &str = "# Raspberry Pi firmware settings (bramble base image).\n\
arm_64bit=1\nkernel=vmlinuz\ninitramfs initrd.img followkernel\n\
disable_overscan=1\nenable_uart=1\n";

/// NoCloud reads user-data, meta-data and network-config from the boot partition, where
/// `bramble burn` writes them, as Raspberry Pi OS trixie does.
const CLOUD_CFG: &str = "# bramble: per-device settings come from the boot partition.\n\
datasource_list: [NoCloud, None]\n\
datasource:\n  NoCloud:\n    seedfrom: file:///boot/firmware/\n";

/// cloud-init's first stage reads the seed from the boot partition, so it must wait for that
/// mount; unordered, it can run first, find no seed and fall back to no datasource at all.
const CLOUD_INIT_LOCAL_DROP_IN: &str = "[Unit]\n\
# bramble: the NoCloud seed is on the boot partition.\n\
RequiresMountsFor=/boot/firmware\n";
const CLOUD_INIT_LOCAL_DROP_IN_FILE: &str =
    "etc/systemd/system/cloud-init-local.service.d/bramble-seed.conf";

/// Host keys are removed from the image; this makes them at first boot if cloud-init did not.
const SSH_KEYGEN_UNIT: &str = "[Unit]\n\
Description=Generate the SSH host keys of a freshly burned image\n\
After=cloud-init.service cloud-init-network.service\n\
Before=ssh.service\n\
ConditionPathExistsGlob=!/etc/ssh/ssh_host_*_key\n\n\
[Service]\nType=oneshot\nExecStart=/usr/bin/ssh-keygen -A\n\n\
[Install]\nWantedBy=multi-user.target\n";

const NETWORK: &str = "[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n";

/// Boot partition size is fixed; the root partition gets the tree plus this much.
const ROOT_SLACK: u64 = 384 << 20;

/// The cached base image for a debootstrap recipe, built if missing.
pub async fn ensure(spec: &Debootstrap, cache: &Path, steps: &mut Steps) -> Result<PathBuf> {
    // Provisioning runs the image's programs too, so this holds for a cached base as well.
    binfmt::ensure(&spec.architecture).await?;
    let rootfs_key = rootfs_key(spec);
    let image = cache.join(format!("base-{}.img", image_key(&rootfs_key)));
    if image.is_file() {
        steps.note(&format!("base image cached: {}", image.display()));
        return Ok(image);
    }
    std::fs::create_dir_all(cache).map_err(|e| io("creating the cache", cache, e))?;
    host::require(&[
        "debootstrap",
        "sfdisk",
        "mkfs.vfat",
        "mkfs.ext4",
        "zstd",
        "losetup",
        "mcopy",
    ])?;
    let tarball = cache.join(format!("rootfs-{rootfs_key}.tar.zst"));
    if !tarball.is_file() {
        let emulated = if binfmt::entry_for(&spec.architecture)?.is_some() {
            ", the second stage under qemu-user"
        } else {
            ""
        };
        steps.note(&format!(
            "debootstrap {} {} into {} (minutes{emulated})",
            spec.suite,
            spec.architecture,
            tarball.display()
        ));
        build_rootfs(spec, cache, &tarball, steps).await?;
    }
    steps.start("base image");
    build_image(&tarball, cache, &image).await?;
    steps.done();
    steps.note(&format!("base image built: {}", image.display()));
    Ok(image)
}

fn hex_digest(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hex::encode(hasher.finalize())[..16].to_string()
}

/// Everything debootstrap's output depends on.
pub fn rootfs_key(spec: &Debootstrap) -> String {
    let packages = packages(spec).join(",");
    hex_digest(&[
        "rootfs-2",
        INITRAMFS_MODULES_FILE,
        &spec.suite,
        &spec.architecture,
        &spec.mirror,
        &packages,
        INITRAMFS_CONF,
        INITRAMFS_MODULES,
        FIRMWARE_HOOK,
    ])
}

fn image_key(rootfs_key: &str) -> String {
    hex_digest(&[
        "image-3",
        rootfs_key,
        CONFIG_TXT,
        CLOUD_CFG,
        CLOUD_INIT_LOCAL_DROP_IN,
        SSH_KEYGEN_UNIT,
        NETWORK,
    ])
}

fn packages(spec: &Debootstrap) -> Vec<String> {
    let kernel = match spec.architecture.as_str() {
        "armhf" => "linux-image-armmp-lpae".to_string(),
        other => format!("linux-image-{other}"),
    };
    let mut all: Vec<String> = CORE_PACKAGES.iter().map(|p| p.to_string()).collect();
    all.push(kernel);
    all.extend(spec.packages.iter().cloned());
    all.sort();
    all.dedup();
    all
}

/// A scratch directory in the cache (same file system, so results are renamed into place),
/// removed by the cleanup stack.
pub fn work_dir(cache: &Path, cleanup: &mut Cleanup) -> Result<PathBuf> {
    let name = format!(".work-{}-{}", std::process::id(), disk::random_disk_id());
    let dir = cache.join(name);
    std::fs::create_dir_all(&dir).map_err(|e| io("creating a work directory", &dir, e))?;
    cleanup.remove(&dir);
    Ok(dir)
}

/// debootstrap in two stages, so the initramfs settings are in place before the kernel's
/// package runs update-initramfs.
async fn build_rootfs(
    spec: &Debootstrap,
    cache: &Path,
    tarball: &Path,
    steps: &mut Steps,
) -> Result<()> {
    let mut cleanup = Cleanup::new();
    let work = work_dir(cache, &mut cleanup)?;
    let root = work.join("root");
    let debs = cache.join("debs");
    std::fs::create_dir_all(&debs).map_err(|e| io("creating the package cache", &debs, e))?;
    let include = format!("--include={}", packages(spec).join(","));
    let arch = format!("--arch={}", spec.architecture);
    let cache_dir = format!("--cache-dir={}", debs.display());
    // A debootstrap that dies leaves /proc and /sys mounted in its target.
    cleanup.unmount(&root.join("sys"));
    cleanup.unmount(&root.join("proc"));
    steps.start("debootstrap, first stage");
    host::run(
        "debootstrap (first stage)",
        "debootstrap",
        &[
            "--foreign",
            "--variant=minbase",
            &arch,
            &cache_dir,
            &include,
            &spec.suite,
            &root.to_string_lossy(),
            &spec.mirror,
        ],
    )
    .await?;

    write_file(&root, "etc/initramfs-tools/conf.d/bramble", INITRAMFS_CONF, 0o644)?;
    // mkinitramfs reads /etc/initramfs-tools/modules (a conffile, which dpkg would ask
    // about if changed) and /usr/share/initramfs-tools/modules.d/*, not /etc/…/modules.d.
    write_file(&root, INITRAMFS_MODULES_FILE, INITRAMFS_MODULES, 0o644)?;
    write_file(&root, "etc/initramfs/post-update.d/bramble-firmware", FIRMWARE_HOOK, 0o755)?;
    trim_package_lists(&root)?;
    steps.start("debootstrap, second stage");
    host::run(
        "debootstrap (second stage, under qemu-user)",
        "chroot",
        &[root.to_string_lossy().as_ref(), "/debootstrap/debootstrap", "--second-stage"],
    )
    .await?;
    cleanup.release_to(1).map_err(|e| Error::image("debootstrap", e))?;

    steps.start("save the root file system");
    let partial = work.join("rootfs.tar.zst");
    let script = format!(
        "tar --numeric-owner --xattrs --xattrs-include='*' -C {} -cf - . | zstd -q -T0 -o {}",
        quote(&root.to_string_lossy()),
        quote(&partial.to_string_lossy())
    );
    host::shell("saving the root file system", &script).await?;
    let size = host::run(
        "measuring the root file system",
        "du",
        &["-sb".as_ref(), "--one-file-system".as_ref(), root.as_os_str()],
    )
    .await?;
    let size = size.split_whitespace().next().unwrap_or("0");
    write_file(&work, "rootfs.size", &format!("{size}\n"), 0o644)?;
    rename(&work.join("rootfs.size"), &tarball.with_extension("size"))?;
    rename(&partial, tarball)?;
    steps.done();
    cleanup.finish().map_err(|e| Error::image("debootstrap", e))
}

/// Cuts the mirror's package lists in the target down to the packages the first stage
/// downloaded. The second stage scans those lists with perl once per dependency pass; under
/// qemu-user each scan of a whole suite takes minutes, of the few hundred stanzas, moments.
/// The first stage resolved every dependency, so the result is the same.
fn trim_package_lists(root: &Path) -> Result<()> {
    let debpaths = root.join("debootstrap/debpaths");
    let listed = std::fs::read_to_string(&debpaths).map_err(|e| io("reading", &debpaths, e))?;
    let wanted: std::collections::HashSet<&str> =
        listed.lines().filter_map(|line| line.split_whitespace().next()).collect();
    let lists = root.join("var/lib/apt/lists");
    let entries = std::fs::read_dir(&lists).map_err(|e| io("reading", &lists, e))?;
    for path in entries.flatten().map(|entry| entry.path()) {
        if !path.to_string_lossy().ends_with("_Packages") {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| io("reading", &path, e))?;
        std::fs::write(&path, keep_stanzas(&text, &wanted))
            .map_err(|e| io("trimming", &path, e))?;
    }
    Ok(())
}

/// The stanzas of a `Packages` file whose `Package:` is in `wanted`.
fn keep_stanzas(text: &str, wanted: &std::collections::HashSet<&str>) -> String {
    let mut kept = String::new();
    for stanza in text.split("\n\n") {
        let name = stanza.lines().find_map(|line| line.strip_prefix("Package: "));
        if name.is_some_and(|name| wanted.contains(name.trim())) {
            kept += stanza.trim_matches('\n');
            kept += "\n\n";
        }
    }
    kept
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).map_err(|e| io("saving to the cache", to, e))
}

fn tree_size(tarball: &Path) -> u64 {
    std::fs::read_to_string(tarball.with_extension("size"))
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(3 << 30)
}

/// Partitions a new raw image, makes both file systems, unpacks the tree and sets it up to
/// boot, then renames it into the cache.
async fn build_image(tarball: &Path, cache: &Path, image: &Path) -> Result<()> {
    let mut cleanup = Cleanup::new();
    let work = work_dir(cache, &mut cleanup)?;
    let raw = work.join("base.img");
    let root_bytes = (tree_size(tarball) * 6 / 5 + ROOT_SLACK).div_ceil(4 << 20) * (4 << 20);
    let size = disk::ROOT_START * disk::SECTOR + root_bytes;
    host::run(
        "creating the image",
        "truncate",
        &["-s".as_ref(), size.to_string().as_ref(), raw.as_os_str()],
    )
    .await?;
    let disk_id = disk::random_disk_id();
    disk::write_layout(&raw, disk_id).await?;
    let table = disk::read(&raw).await?;
    let boot = disk::attach(&raw, table.partition(1)?, &mut cleanup).await?;
    let rootfs = disk::attach(&raw, table.partition(2)?, &mut cleanup).await?;
    host::run("making bootfs", "mkfs.vfat", &["-F", "32", "-n", "bootfs", &boot]).await?;
    host::run("making rootfs", "mkfs.ext4", &["-q", "-L", "rootfs", &rootfs]).await?;
    cleanup.release_to(1).map_err(|e| Error::image("making file systems", e))?;

    let root = work.join("mnt");
    std::fs::create_dir_all(&root).map_err(|e| io("creating a mount point", &root, e))?;
    let mounted = mounts::mount(&raw, &root, &mut cleanup).await?;
    let script = format!(
        "zstd -q -dc {} | tar --numeric-owner --xattrs --xattrs-include='*' -xpf - -C {}",
        quote(&tarball.to_string_lossy()),
        quote(&root.to_string_lossy())
    );
    host::shell("unpacking the root file system", &script).await?;
    configure(&mounted.root, mounted.table.disk_id).await?;
    mounted.save_boot().await?;
    cleanup.release_to(1).map_err(|e| Error::image("unmounting the base image", e))?;

    rename(&raw, image)?;
    cleanup.finish().map_err(|e| Error::image("base image", e))
}

/// The Raspberry Pi OS shape inside: fstab and cmdline.txt by PARTUUID, config.txt, the
/// kernel on bootfs, networking, cloud-init reading bootfs, no host keys, no machine id.
async fn configure(root: &Path, disk_id: u32) -> Result<()> {
    let fstab = format!(
        "proc            /proc           proc    defaults          0       0\n\
         PARTUUID={}  /boot/firmware  vfat    defaults          0       2\n\
         PARTUUID={}  /               ext4    defaults,noatime  0       1\n",
        partuuid(disk_id, 1),
        partuuid(disk_id, 2)
    );
    write_file(root, "etc/fstab", &fstab, 0o644)?;
    let cmdline = format!(
        "console=serial0,115200 console=tty1 root=PARTUUID={} rootfstype=ext4 \
         fsck.repair=yes rootwait\n",
        partuuid(disk_id, 2)
    );
    write_file(root, "boot/firmware/cmdline.txt", &cmdline, 0o755)?;
    write_file(root, "boot/firmware/config.txt", CONFIG_TXT, 0o755)?;
    write_file(root, "etc/hostname", "raspberrypi\n", 0o644)?;
    write_file(
        root,
        "etc/hosts",
        "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n\
         127.0.1.1\traspberrypi\n",
        0o644,
    )?;
    write_file(root, "etc/cloud/cloud.cfg.d/90-bramble-nocloud.cfg", CLOUD_CFG, 0o644)?;
    write_file(root, CLOUD_INIT_LOCAL_DROP_IN_FILE, CLOUD_INIT_LOCAL_DROP_IN, 0o644)?;
    write_file(root, "etc/systemd/network/20-wired.network", NETWORK, 0o644)?;
    write_file(
        root,
        "etc/systemd/system/regenerate-ssh-host-keys.service",
        SSH_KEYGEN_UNIT,
        0o644,
    )?;

    let chroot = ChrootConnection::open(root).map_err(|e| Error::image("base image", e.0))?;
    let script = "set -e
for kernel in /boot/vmlinuz-*; do version=${kernel#/boot/vmlinuz-}; done
cp \"/boot/vmlinuz-$version\" /boot/firmware/vmlinuz
cp \"/boot/initrd.img-$version\" /boot/firmware/initrd.img
for dtb in /usr/lib/linux-image-\"$version\"/broadcom/bcm27*.dtb; do
  [ -e \"$dtb\" ] && cp \"$dtb\" /boot/firmware/
done
rm -f /etc/initramfs-tools/conf.d/bramble /usr/share/initramfs-tools/modules.d/bramble
systemctl enable systemd-networkd.service regenerate-ssh-host-keys.service
rm -f /etc/ssh/ssh_host_*
echo uninitialized > /etc/machine-id
rm -f /var/lib/dbus/machine-id
rm -rf /var/cache/apt/archives/*.deb /var/lib/apt/lists/*
";
    chroot_script(&chroot, "setting up the base image", script).await.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_lists_keep_only_the_downloaded_packages() {
        let text = "Package: a\nDepends: b\n\nPackage: big\nVersion: 1\n\nPackage: b\nVersion: 2\n";
        let wanted = ["a", "b"].into_iter().collect();
        assert_eq!(
            keep_stanzas(text, &wanted),
            "Package: a\nDepends: b\n\nPackage: b\nVersion: 2\n\n"
        );
    }
}
