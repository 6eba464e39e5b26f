//! `bramble lab`: a cloud-init seed lands in a guest's overlay and nowhere else (no guest
//! needed), and a fleet of two guests comes up with its own names, takes a rolling `bramble
//! run` through the inventory it wrote, reports itself in `status`, and leaves no qemu
//! behind after `down`.
//!
//! The fleet boots the amd64 image of `tests/lab/image.sh` (built and cached for the other
//! guest tests too) to keep CI time down: TCG boots arm64 several times slower, and the
//! arm64 bake from scratch is still being made to boot under qemu-system-aarch64.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use bramble::lab::seed;
use common::{Run, Test};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tool(program: &str, arguments: &[&str]) -> String {
    let output = Command::new(program)
        .args(arguments)
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {arguments:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn path(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

#[tokio::test]
async fn seed_is_written_into_the_overlay_and_the_disk_stays_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let bootfs = dir.path().join("bootfs.img");
    tool("mkfs.vfat", &["-C", "-F", "32", "-n", "bootfs", path(&bootfs), "65536"]);
    let config = dir.path().join("config.txt");
    std::fs::write(&config, "arm_64bit=1\n").unwrap();
    tool("mcopy", &["-i", path(&bootfs), path(&config), "::/config.txt"]);

    // A disk with the boot partition 1 MiB in, and a marker after it.
    let offset = 1u64 << 20;
    let disk = dir.path().join("disk.img");
    let mut bytes = vec![0u8; offset as usize];
    bytes.extend(std::fs::read(&bootfs).unwrap());
    bytes.extend(b"after the partition");
    // qemu sees disks in whole sectors.
    bytes.resize(bytes.len().div_ceil(512) * 512, b'.');
    std::fs::write(&disk, &bytes).unwrap();
    let overlay = dir.path().join("overlay.qcow2");
    tool(
        "qemu-img",
        &["create", "-q", "-f", "qcow2", "-F", "raw", "-b", path(&disk), path(&overlay)],
    );

    let files = [("user-data", "#cloud-config\n{}\n".to_string()), ("meta-data", "{}\n".into())];
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    seed::write(&overlay, &bootfs, offset, &files, &work).await.unwrap();

    assert_eq!(std::fs::read(&disk).unwrap(), bytes, "the backing disk was written to");
    let flat = dir.path().join("flat.img");
    tool("qemu-img", &["convert", "-f", "qcow2", "-O", "raw", path(&overlay), path(&flat)]);
    let partition = format!("{}@@{offset}", path(&flat));
    assert_eq!(tool("mtype", &["-i", &partition, "::/user-data"]), "#cloud-config\n{}\n");
    assert_eq!(tool("mtype", &["-i", &partition, "::/meta-data"]), "{}\n");
    assert_eq!(tool("mtype", &["-i", &partition, "::/config.txt"]), "arm_64bit=1\n");
    let flat = std::fs::read(&flat).unwrap();
    assert_eq!(flat.len(), bytes.len());
    let after = offset as usize + std::fs::metadata(&bootfs).unwrap().len() as usize;
    assert_eq!(flat[after..], bytes[after..]);
    assert_eq!(flat[..offset as usize], bytes[..offset as usize]);
}

/// `bramble lab ARGUMENTS` in the repository with the test's own fleet folder.
fn lab(fleet: &Path, arguments: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_bramble"))
        .arg("lab")
        .args(arguments)
        .current_dir(repo())
        .env("BRAMBLE_LAB_FLEET", fleet)
        .env("NO_COLOR", "1")
        .output()
        .expect("run bramble lab");
    Run::from(output)
}

/// The folder of the lab image, built once by `tests/lab/image.sh`.
fn lab_image() -> String {
    let output = Command::new(repo().join("tests/lab/image.sh")).output().expect("image.sh");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Pids of the qemu processes whose command line names `needle`.
fn qemu_pids(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.starts_with("qemu-system") && cmdline.contains(needle) {
            pids.push(pid);
        }
    }
    pids
}

/// Stops the fleet if the test ends early, so no guest outlives it.
struct Down<'a>(&'a Path);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        lab(self.0, &["down"]);
    }
}

const ROLLING: &str = "\
- name: Rolling change across the lab fleet
  hosts: lab
  gather_facts: false
  tasks:
    - name: Ask the guest its name
      ansible.builtin.command: hostname
      register: name
      changed_when: false

    - name: Each guest is who the inventory says
      ansible.builtin.assert:
        that: name.stdout == inventory_hostname

    - name: Write the release marker
      ansible.builtin.copy:
        dest: /tmp/release
        content: \"{{ inventory_hostname }} release 2\\n\"
        mode: \"0644\"
";

#[test]
fn fleet_of_two_comes_up_takes_a_rolling_run_and_goes_down() {
    let fleet = tempfile::tempdir().unwrap();
    let fleet = fleet.path();
    let _down = Down(fleet);

    let image = lab_image();
    let up =
        lab(fleet, &["up", "2", "--arch", "amd64", "--image", &image, "--boot-timeout", "900"]);
    up.success().stdout_has("lab1 ").stdout_has("lab2 ");
    let inventory = fleet.join("hosts.ini");
    assert!(inventory.is_file(), "no inventory: {}", up.stdout);
    let known_hosts = std::fs::read_to_string(fleet.join("known_hosts")).unwrap();
    assert_eq!(known_hosts.lines().count(), 2, "{known_hosts}");

    let status = lab(fleet, &["status"]);
    status.success();
    let lines: Vec<&str> = status.stdout.lines().skip(1).collect();
    assert_eq!(lines.len(), 2, "{}", status.stdout);
    let mut pids = Vec::new();
    for line in &lines {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields[4], "up", "{line}");
        pids.push(fields[3].parse::<u32>().expect("a pid"));
    }
    let fleet_text = fleet.to_string_lossy().into_owned();
    let mut running = qemu_pids(&fleet_text);
    running.sort();
    pids.sort();
    assert_eq!(running, pids, "status names other pids than the fleet's qemus");

    lab(fleet, &["up", "1", "--arch", "amd64", "--image", &image])
        .code(1)
        .stderr_has("still running");

    let run = Test::new()
        .file("rolling.yml", ROLLING)
        .arg("rolling.yml")
        .arg("-i")
        .arg(path(&inventory))
        .bramble();
    run.success();
    for host in ["lab1", "lab2"] {
        let recap = run.recap(host);
        assert!(recap.contains("ok=3") && recap.contains("changed=1"), "{recap}");
    }

    lab(fleet, &["down"]).success().stderr_has("stopped lab1").stderr_has("stopped lab2");
    assert!(qemu_pids(&fleet_text).is_empty(), "qemu still runs for {fleet_text}");
    let after = lab(fleet, &["status"]);
    assert_eq!(after.stdout.matches("  down\n").count(), 2, "{}", after.stdout);
}
