//! `bramble burn` on a small image with the Raspberry Pi OS layout made here (no base build):
//! streamed from .img.xz to a regular file, verified, then given its own disk identifier,
//! PARTUUIDs and cloud-init seed; both file systems stay clean.

mod image_support;

use std::path::Path;
use std::process::Command;

use image_support::{bramble, ensure_packages, run, text};

const DISK_ID: &str = "0x1234abcd";

/// bootfs (FAT32, 8 MiB in, 64 MiB) and rootfs (ext4, 32 MiB) holding fstab and os-release.
fn small_image(dir: &Path, codename: &str) -> std::path::PathBuf {
    let image = dir.join("small.img");
    run("truncate", &["-s", "104M", &image.to_string_lossy()]);
    let layout = format!(
        "label: dos\nlabel-id: {DISK_ID}\nunit: sectors\n\nstart=16384, size=131072, type=c\n\
         start=147456, type=83\n"
    );
    let script = format!("printf '%s' '{layout}' | sfdisk --quiet {}", image.display());
    run("sh", &["-c", &script]);
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    std::fs::write(
        tree.join("etc/fstab"),
        "PARTUUID=1234abcd-01 /boot/firmware vfat defaults 0 2\n\
         PARTUUID=1234abcd-02 / ext4 defaults,noatime 0 1\n",
    )
    .unwrap();
    std::fs::write(
        tree.join("etc/os-release"),
        format!("ID=debian\nVERSION_CODENAME={codename}\n"),
    )
    .unwrap();
    let root = dir.join("root.ext4");
    run("mkfs.ext4", &["-q", "-d", &tree.to_string_lossy(), &root.to_string_lossy(), "32M"]);
    let boot = dir.join("boot.fat");
    run("truncate", &["-s", "64M", &boot.to_string_lossy()]);
    run("mkfs.vfat", &["-F", "32", "-n", "bootfs", &boot.to_string_lossy()]);
    let cmdline = dir.join("cmdline.txt");
    std::fs::write(&cmdline, "console=serial0,115200 root=PARTUUID=1234abcd-02 rootwait\n")
        .unwrap();
    let mcopy = Command::new("mcopy")
        .env("MTOOLS_SKIP_CHECK", "1")
        .args(["-i", &boot.to_string_lossy(), &cmdline.to_string_lossy(), "::/cmdline.txt"])
        .status()
        .unwrap();
    assert!(mcopy.success());
    for (part, seek) in [(&boot, "16384"), (&root, "147456")] {
        run(
            "dd",
            &[
                &format!("if={}", part.display()),
                &format!("of={}", image.display()),
                "bs=512",
                &format!("seek={seek}"),
                "conv=notrunc,sparse",
                "status=none",
            ],
        );
    }
    run("xz", &["-T0", "-0", "-k", &image.to_string_lossy()]);
    image
}

fn mtype(card: &Path, offset: u64, name: &str) -> String {
    let output = Command::new("mtype")
        .env("MTOOLS_SKIP_CHECK", "1")
        .args(["-i", &format!("{}@@{offset}", card.display()), &format!("::/{name}")])
        .output()
        .unwrap();
    assert!(output.status.success(), "mtype {name}: {}", text(&output.stderr));
    text(&output.stdout)
}

#[test]
fn burn_to_a_file_gives_the_card_its_own_identity() {
    ensure_packages();
    let dir = tempfile::tempdir().unwrap();
    let image = small_image(dir.path(), "trixie");
    let xz = image.with_extension("img.xz");
    let key = dir.path().join("key.pub");
    std::fs::write(&key, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITestKeyOnly burn@test\n").unwrap();
    let card = dir.path().join("card.img");

    let output = bramble(&[
        "burn",
        &xz.to_string_lossy(),
        &card.to_string_lossy(),
        "--hostname",
        "pi03",
        "--user",
        "ops",
        "--ssh-key",
        &key.to_string_lossy(),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));

    let table: serde_json::Value =
        serde_json::from_str(&run("sfdisk", &["--json", &card.to_string_lossy()])).unwrap();
    let id = table["partitiontable"]["id"].as_str().unwrap().trim_start_matches("0x").to_string();
    assert_ne!(id, DISK_ID.trim_start_matches("0x"), "the disk identifier was not renewed");
    let boot = 16384 * 512;
    let cmdline = mtype(&card, boot, "cmdline.txt");
    assert!(cmdline.contains(&format!("root=PARTUUID={id}-02")), "{cmdline}");
    let meta = mtype(&card, boot, "meta-data");
    assert!(meta.contains("\"local-hostname\": \"pi03\""), "{meta}");
    assert!(meta.contains("\"instance-id\": \"bramble-pi03-"), "{meta}");
    let user = mtype(&card, boot, "user-data");
    assert!(user.starts_with("#cloud-config\n"), "{user}");
    assert!(user.contains("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITestKeyOnly burn@test"));
    assert!(mtype(&card, boot, "network-config").contains("\"dhcp4\": true"));

    let fstab = run(
        "debugfs",
        &["-R", "cat /etc/fstab", &format!("{}?offset={}", card.display(), 147456 * 512)],
    );
    assert!(fstab.contains(&format!("PARTUUID={id}-01 /boot/firmware")), "{fstab}");
    assert!(fstab.contains(&format!("PARTUUID={id}-02 / ")), "{fstab}");
    assert!(!fstab.contains("1234abcd"), "{fstab}");

    for (offset, size, checker) in
        [(16384 * 512, 64 << 20, ["fsck.vfat", "-n"]), (147456 * 512, 32 << 20, ["e2fsck", "-fn"])]
    {
        let device = run(
            "losetup",
            &[
                "--find",
                "--show",
                "--read-only",
                "--offset",
                &offset.to_string(),
                "--sizelimit",
                &size.to_string(),
                &card.to_string_lossy(),
            ],
        );
        let device = device.trim();
        let check = Command::new(checker[0]).args(&checker[1..]).arg(device).output().unwrap();
        run("losetup", &["-d", device]);
        assert!(
            check.status.success(),
            "{checker:?}: {}{}",
            text(&check.stdout),
            text(&check.stderr)
        );
    }
}

/// Bookworm has no cloud-init: the identity goes into firstrun.sh, run once through
/// `systemd.run=` on the kernel command line, and userconf.txt.
#[test]
fn burn_gives_a_bookworm_card_firstrun_and_userconf() {
    ensure_packages();
    let dir = tempfile::tempdir().unwrap();
    let image = small_image(dir.path(), "bookworm");
    let xz = image.with_extension("img.xz");
    let key = dir.path().join("key.pub");
    std::fs::write(&key, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITestKeyOnly burn@test\n").unwrap();
    let card = dir.path().join("card.img");
    let output = bramble(&[
        "burn",
        &xz.to_string_lossy(),
        &card.to_string_lossy(),
        "--hostname",
        "pi04",
        "--user",
        "ops",
        "--ssh-key",
        &key.to_string_lossy(),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));

    let table: serde_json::Value =
        serde_json::from_str(&run("sfdisk", &["--json", &card.to_string_lossy()])).unwrap();
    let id = table["partitiontable"]["id"].as_str().unwrap().trim_start_matches("0x").to_string();
    let boot = 16384 * 512;
    let cmdline = mtype(&card, boot, "cmdline.txt");
    assert_eq!(cmdline.lines().count(), 1, "{cmdline}");
    assert!(cmdline.contains(&format!("root=PARTUUID={id}-02 rootwait")), "{cmdline}");
    assert!(
        cmdline.trim_end().ends_with(
            "systemd.run=/boot/firmware/firstrun.sh systemd.run_success_action=reboot \
             systemd.unit=kernel-command-line.target"
        ),
        "{cmdline}"
    );
    let script = mtype(&card, boot, "firstrun.sh");
    assert!(script.starts_with("#!/bin/sh\n"), "{script}");
    assert!(script.contains("pi04 > /etc/hostname"), "{script}");
    assert!(script.contains("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITestKeyOnly burn@test"));
    assert!(script.contains("rm -f /boot/firmware/firstrun.sh"), "{script}");
    assert_eq!(mtype(&card, boot, "userconf.txt"), "ops:*\n");
    let listing = Command::new("mdir")
        .env("MTOOLS_SKIP_CHECK", "1")
        .args(["-b", "-i", &format!("{}@@{boot}", card.display()), "::/"])
        .output()
        .unwrap();
    assert!(!text(&listing.stdout).contains("user-data"), "cloud-init seed on a bookworm card");

    // The script must at least be valid shell.
    let syntax = dir.path().join("firstrun.sh");
    std::fs::write(&syntax, &script).unwrap();
    run("sh", &["-n", &syntax.to_string_lossy()]);
}

#[test]
fn burn_refuses_a_disk_that_is_not_removable() {
    let Some(disk) =
        ["/dev/vda", "/dev/sda", "/dev/nvme0n1"].into_iter().find(|d| Path::new(d).exists())
    else {
        panic!("no system disk found to test the refusal on");
    };
    let output = bramble(&["burn", "/nonexistent.img.xz", disk]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("refusing to write"), "{stderr}");
    assert!(stderr.contains("--overwrite-system-disk"), "{stderr}");
}

/// A mistyped device name under /dev is refused before anything is written (a file there
/// would fill memory), and so is the image as its own target.
#[test]
fn burn_refuses_a_missing_device_and_the_image_itself() {
    let dir = tempfile::tempdir().unwrap();
    let image = small_image(dir.path(), "trixie");
    let missing = "/dev/bramble-no-such-disk";
    let output = bramble(&["burn", &image.to_string_lossy(), missing]);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("does not exist"), "{}", text(&output.stderr));
    assert!(!Path::new(missing).exists(), "{missing} was created");
    let output = bramble(&["burn", &image.to_string_lossy(), &image.to_string_lossy()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("is the image itself"), "{}", text(&output.stderr));
}
