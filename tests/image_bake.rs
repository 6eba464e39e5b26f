//! `bramble bake` end to end on the arm64 base made from scratch (debootstrap, cached by
//! content): an interrupted bake leaves nothing behind; site.yml baked with preloaded
//! Docker images passes static checks without booting; burned to a file with a hostname
//! and a key, it boots under qemu-system-aarch64 (TCG) and comes up ready over SSH.
//!
//! The base build takes many minutes the first time (debootstrap's second stage runs under
//! qemu-user); later runs reuse it from `~/.cache/bramble/image`.

mod image_support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bramble::lab::Arch;
use bramble::lab::qemu::{self, BootFiles, Machine, Ports};
use image_support::of_a_running_bake;
use image_support::{SERIAL, arm64, base_images, cache, ensure_packages, leftovers, run, sha256};
use image_support::{repo, text};

/// The stack's images as the test recipe names them; one tiny archive carries them all.
const STACK_IMAGES: [(&str, &str); 6] = [
    ("stack_alloy_image", "bramble.test/stack/alloy:1"),
    ("stack_prometheus_image", "bramble.test/stack/prometheus:1"),
    ("stack_cadvisor_image", "bramble.test/stack/cadvisor:1"),
    ("stack_loki_image", "bramble.test/stack/loki:1"),
    ("stack_grafana_image", "bramble.test/stack/grafana:1"),
    ("stack_phoenix_image", "bramble.test/stack/phoenix:1"),
];
/// Preloaded from an archive named by path rather than by reference.
const EXTRA_IMAGE: &str = "bramble.test/hello:1";
const HOSTNAME: &str = "pi07";

fn bake_command(recipe: &Path, output: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bramble"));
    command.current_dir(repo()).arg("bake").arg(recipe).arg("-o").arg(output).args(extra);
    command
}

/// Writes a line to the test process's own stderr, past libtest's capture (which only takes
/// `eprintln!`), so that CI's log shows the timings of passing tests too.
fn log(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Prints a bake's step lines (`done STEP in Ns`) so the test log carries the timings.
fn report(what: &str, stderr: &str) {
    for line in stderr.lines() {
        let word = line.split_whitespace().next().unwrap_or("");
        if ["done", "note", "baked", "burned"].contains(&word) {
            log(&format!("[{what}] {}", line.trim()));
        }
    }
}

/// The base image a bake used, from its `base image …: PATH` note.
fn base_of(stderr: &str) -> PathBuf {
    let line = stderr
        .lines()
        .find_map(|line| {
            line.split_once("base image cached: ").or(line.split_once("base image built: "))
        })
        .unwrap_or_else(|| panic!("the bake named no base image:\n{stderr}"));
    PathBuf::from(line.1.trim())
}

// ---------------------------------------------------------------------------------------
// Interruption

fn lab_recipe(dir: &Path) -> PathBuf {
    let recipe = dir.join("lab-test.yml");
    let text = format!(
        "name: lab-test\n{}headroom: 256M\nplaybook: {}\nhostname: lab\nuser:\n  name: pi\n\
         xz_level: 0\n",
        arm64::BASE,
        repo().join("images/playbooks/lab.yml").display()
    );
    std::fs::write(&recipe, text).unwrap();
    recipe
}

/// Starts a bake whose playbook pauses, waits until it is in that pause (provisioning, the
/// image mounted, a command running in the chroot), then sends `signal`.
fn interrupt_bake(recipe: &Path, output: &Path, signal: &str) -> (Output, String) {
    let stderr_path = output.with_extension(format!("{signal}.log"));
    let mut child: Child = bake_command(recipe, output, &["-e", "lab_pause_seconds=900"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .expect("start bramble bake");
    let stdout = child.stdout.take().unwrap();
    let (lines, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let pausing = line.contains("TASK [Pause for the interruption test]");
            if lines.send(line).is_err() || pausing {
                break;
            }
        }
    });
    // The first bake of a fresh cache builds the base first.
    let deadline = Instant::now() + Duration::from_secs(45 * 60);
    let mut transcript = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match seen.recv_timeout(left) {
            Ok(line) => {
                transcript += &line;
                transcript.push('\n');
                if line.contains("TASK [Pause for the interruption test]") {
                    break;
                }
            }
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "the bake never reached the pause:\n{transcript}\n{}",
                    std::fs::read_to_string(&stderr_path).unwrap_or_default()
                );
            }
        }
    }
    // Let the task's command start inside the chroot.
    std::thread::sleep(Duration::from_secs(3));
    run("kill", &[&format!("-{signal}"), &child.id().to_string()]);
    let output = child.wait_with_output().unwrap();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    (output, stderr)
}

/// Processes whose root directory lies in the image cache (a chroot left running).
fn processes_in_cache() -> Vec<String> {
    let cache = std::fs::canonicalize(cache()).unwrap_or_else(|_| cache());
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|entry| {
            let root = std::fs::read_link(entry.path().join("root")).ok()?;
            let ours = root.starts_with(&cache) && !of_a_running_bake(&root.to_string_lossy());
            ours.then(|| {
                let command =
                    std::fs::read_to_string(entry.path().join("cmdline")).unwrap_or_default();
                format!("{}: {}", entry.file_name().to_string_lossy(), command.replace('\0', " "))
            })
        })
        .collect()
}

#[test]
fn an_interrupted_bake_leaves_no_mount_no_loop_device_and_the_base_intact() {
    ensure_packages();
    let _serial = SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let recipe = lab_recipe(dir.path());
    let output = dir.path().join("out");
    let hashes_before: BTreeMap<PathBuf, String> =
        base_images().into_iter().map(|path| (path.clone(), sha256(&path))).collect();

    // Ctrl-C: the bake puts everything back before it exits.
    let (interrupted, stderr) = interrupt_bake(&recipe, &output, "INT");
    report("SIGINT", &stderr);
    assert!(!interrupted.status.success(), "an interrupted bake succeeded:\n{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert_eq!(leftovers(), Vec::<String>::new(), "left behind by SIGINT:\n{stderr}");
    assert_eq!(processes_in_cache(), Vec::<String>::new());
    let base = base_of(&stderr);
    let base_hash = hashes_before.get(&base).cloned().unwrap_or_else(|| sha256(&base));
    assert_eq!(sha256(&base), base_hash, "SIGINT changed the cached base");

    // SIGKILL: nothing can run; the next bake finds the remains and cleans them up.
    let (killed, stderr) = interrupt_bake(&recipe, &output, "KILL");
    assert!(!killed.status.success());
    assert!(!leftovers().is_empty(), "a killed bake left nothing to clean: was it mid-bake?");
    let next = bake_command(&recipe, &output, &[]).output().unwrap();
    let next_stderr = text(&next.stderr);
    report("after SIGKILL", &next_stderr);
    assert!(
        next.status.success(),
        "the bake after SIGKILL failed:\n{}{next_stderr}",
        text(&next.stdout)
    );
    assert!(
        next_stderr.contains("cleaned up after an interrupted bake"),
        "{stderr}\n{next_stderr}"
    );
    assert_eq!(leftovers(), Vec::<String>::new());
    assert_eq!(processes_in_cache(), Vec::<String>::new());
    assert_eq!(base_of(&next_stderr), base);
    assert_eq!(sha256(&base), base_hash, "the cached base changed");
    assert!(output.join("lab-test.img.xz").is_file());
}

// ---------------------------------------------------------------------------------------
// The site.yml image, baked once for the static checks and the boot test

struct Baked {
    /// Kept for the life of the test process: the outputs and the key live in it.
    dir: tempfile::TempDir,
    image_xz: PathBuf,
    /// The image unpacked (sparse), for the static checks.
    raw: PathBuf,
    key: PathBuf,
}

fn observability_recipe(dir: &Path) -> PathBuf {
    // The stack's images, all in one archive found by reference, plus one named by path.
    let tags: Vec<&str> = STACK_IMAGES.iter().map(|(_, image)| *image).collect();
    arm64::tiny_docker_archive(&dir.join("docker-archives/stack.tar"), &tags);
    arm64::tiny_docker_archive(&dir.join("extra/hello.tar"), &[EXTRA_IMAGE]);
    let www = dir.join("www");
    let (version, checksum) = arm64::node_exporter_release(&www);
    let port = arm64::serve(&www);

    let mut vars = format!(
        "  docker_source: debian\n  node_exporter_version: \"{version}\"\n\
         \x20 node_exporter_download_url: \
         \"http://127.0.0.1:{port}/node_exporter-{version}.linux-arm64.tar.gz\"\n\
         \x20 node_exporter_checksum: \"sha256:{checksum}\"\n"
    );
    for (name, image) in STACK_IMAGES {
        vars += &format!("  {name}: {image}\n");
    }
    let images: String = tags.iter().map(|tag| format!("  - {tag}\n")).collect();
    let recipe = dir.join("observability-test.yml");
    let text = format!(
        "name: observability-test\n{}headroom: 1G\nplaybook: {}\nhostname: raspberrypi\n\
         user:\n  name: pi\ntimezone: UTC\nxz_level: 0\ndocker_images:\n{images}  - extra/hello.tar\n\
         vars:\n{vars}",
        arm64::BASE,
        repo().join("site.yml").display()
    );
    std::fs::write(&recipe, text).unwrap();
    recipe
}

/// The shared bake, made by the first test that needs it; a failed bake fails every test
/// that needs it without being tried again.
fn baked() -> &'static Baked {
    static BAKED: OnceLock<Result<Baked, String>> = OnceLock::new();
    let result = BAKED.get_or_init(|| {
        std::panic::catch_unwind(bake_site).map_err(|panic| {
            let message = panic.downcast_ref::<String>().cloned();
            let message = message.or_else(|| panic.downcast_ref::<&str>().map(|m| m.to_string()));
            message.unwrap_or_default()
        })
    });
    match result {
        Ok(baked) => baked,
        Err(message) => panic!("the shared bake of site.yml failed: {message}"),
    }
}

fn bake_site() -> Baked {
    ensure_packages();
    let dir = tempfile::tempdir().unwrap();
    let recipe = observability_recipe(dir.path());
    let output = dir.path().join("out");
    let started = Instant::now();
    let bake = bake_command(&recipe, &output, &[]).output().unwrap();
    let stderr = text(&bake.stderr);
    report("bake site.yml", &stderr);
    log(&format!("[bake site.yml] {:.0}s in all", started.elapsed().as_secs_f64()));
    assert!(bake.status.success(), "bake failed:\n{}{stderr}", text(&bake.stdout));
    // Starting a unit in the chroot is deferred to the first boot, and the bake says so.
    let deferred = stderr.lines().find(|line| line.contains("will start at first boot"));
    let deferred = deferred.unwrap_or_else(|| panic!("no deferred units reported:\n{stderr}"));
    for unit in ["node_exporter.service", "stack.service"] {
        assert!(deferred.contains(unit), "{unit} is not reported: {deferred}");
    }
    assert!(stderr.contains("of Docker images, loaded at first boot"), "{stderr}");
    assert_eq!(leftovers(), Vec::<String>::new());
    // The packages the docker role fetched stay in the cache for the next bake: the image's
    // `apt-get clean` ran after the cache was unbound.
    let cached: Vec<String> = std::fs::read_dir(cache().join("debs"))
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    for package in ["docker.io_", "containerd_", "linux-image-arm64_"] {
        assert!(
            cached.iter().any(|name| name.starts_with(package) && name.ends_with("_arm64.deb")),
            "no {package}*_arm64.deb left in the package cache"
        );
    }

    let image_xz = output.join("observability-test.img.xz");
    let raw = dir.path().join("observability-test.img");
    let unpack = format!(
        "xz -dc -T0 '{}' | cp --sparse=always /dev/stdin '{}'",
        image_xz.display(),
        raw.display()
    );
    run("sh", &["-c", &unpack]);
    let key = dir.path().join("id_ed25519");
    run(
        "ssh-keygen",
        &["-q", "-t", "ed25519", "-N", "", "-C", "burn@test", "-f", &key.to_string_lossy()],
    );
    Baked { dir, image_xz, raw, key }
}

struct Partition {
    start: u64,
    sectors: u64,
    kind: String,
}

fn partitions(image: &Path) -> (String, Vec<Partition>) {
    let table: serde_json::Value =
        serde_json::from_str(&run("sfdisk", &["--json", &image.to_string_lossy()])).unwrap();
    let table = &table["partitiontable"];
    assert_eq!(table["label"], "dos");
    let id = table["id"].as_str().unwrap().trim_start_matches("0x").to_string();
    let parts = table["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| Partition {
            start: p["start"].as_u64().unwrap(),
            sectors: p["size"].as_u64().unwrap(),
            kind: p["type"].as_str().unwrap().to_string(),
        })
        .collect();
    (format!("{:0>8}", id), parts)
}

/// A file of the root file system (partition 2), read with debugfs, no mount.
fn root_file(image: &Path, root: &Partition, path: &str) -> String {
    let spec = format!("{}?offset={}", image.display(), root.start * 512);
    run("debugfs", &["-R", &format!("cat {path}"), &spec])
}

fn root_listing(image: &Path, root: &Partition, path: &str) -> String {
    let spec = format!("{}?offset={}", image.display(), root.start * 512);
    run("debugfs", &["-R", &format!("ls -l {path}"), &spec])
}

fn boot_file(image: &Path, boot: &Partition, name: &str) -> String {
    let output = Command::new("mtype")
        .env("MTOOLS_SKIP_CHECK", "1")
        .args(["-i", &format!("{}@@{}", image.display(), boot.start * 512), &format!("::/{name}")])
        .output()
        .unwrap();
    assert!(output.status.success(), "mtype {name}: {}", text(&output.stderr));
    text(&output.stdout)
}

/// Runs a file system checker on one partition through a read-only loop device.
fn fsck(image: &Path, partition: &Partition, checker: &[&str]) {
    let device = run(
        "losetup",
        &[
            "--find",
            "--show",
            "--read-only",
            "--offset",
            &(partition.start * 512).to_string(),
            "--sizelimit",
            &(partition.sectors * 512).to_string(),
            &image.to_string_lossy(),
        ],
    );
    let device = device.trim();
    let check = Command::new(checker[0]).args(&checker[1..]).arg(device).output().unwrap();
    run("losetup", &["-d", device]);
    assert!(check.status.success(), "{checker:?}: {}{}", text(&check.stdout), text(&check.stderr));
}

#[test]
fn a_baked_image_passes_the_static_checks() {
    let _serial = SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let baked = baked();
    let image = &baked.raw;
    let (id, parts) = partitions(image);
    let size = std::fs::metadata(image).unwrap().len();

    // Raspberry Pi OS's layout: FAT32 LBA at 8 MiB, Linux after it to the end, 4 MiB aligned.
    assert_eq!(parts.len(), 2);
    let (boot, root) = (&parts[0], &parts[1]);
    assert_eq!((boot.kind.as_str(), boot.start), ("c", 16384));
    assert_eq!(root.kind, "83");
    for part in &parts {
        assert_eq!(
            part.start * 512 % (4 << 20),
            0,
            "partition at sector {} is not aligned",
            part.start
        );
    }
    assert!(root.start >= boot.start + boot.sectors);
    assert_eq!((root.start + root.sectors) * 512, size, "rootfs does not end at the disk's end");

    // PARTUUIDs follow the disk identifier.
    let cmdline = boot_file(image, boot, "cmdline.txt");
    assert!(cmdline.contains(&format!("root=PARTUUID={id}-02 ")), "{id}: {cmdline}");
    let fstab = root_file(image, root, "/etc/fstab");
    assert!(fstab.contains(&format!("PARTUUID={id}-01  /boot/firmware")), "{id}: {fstab}");
    assert!(fstab.contains(&format!("PARTUUID={id}-02  /  ")), "{id}: {fstab}");
    assert!(boot_file(image, boot, "config.txt").contains("kernel=vmlinuz"));

    // Ready for a first boot: no host keys, no machine id.
    let ssh = root_listing(image, root, "/etc/ssh");
    assert!(!ssh.contains("ssh_host_"), "host keys in the image:\n{ssh}");
    assert_eq!(root_file(image, root, "/etc/machine-id"), "uninitialized\n");

    // No package files in the image: the cache was bound there only while provisioning.
    let archives = root_listing(image, root, "/var/cache/apt/archives");
    assert!(!archives.contains(".deb"), "packages left in the image:\n{archives}");

    // What the bake changed while working is put back.
    let sbin = root_listing(image, root, "/usr/sbin");
    assert!(!sbin.contains("policy-rc.d"), "policy-rc.d left in the image");
    let resolv = root_listing(image, root, "/etc");
    assert!(!resolv.contains("bramble-saved"), "a saved file was not put back:\n{resolv}");
    let initramfs = root_listing(image, root, "/etc/initramfs-tools/conf.d");
    assert!(!initramfs.contains("bramble"), "initramfs settings not restored:\n{initramfs}");

    // The Docker archives and their loader, enabled for the first boot; the stack's unit.
    let inbox = root_listing(image, root, "/var/lib/bramble/docker-images");
    assert!(inbox.contains("01-stack.tar") && inbox.contains("07-hello.tar"), "{inbox}");
    let wants = root_listing(image, root, "/etc/systemd/system/multi-user.target.wants");
    for unit in [
        "bramble-docker-images.service",
        "stack.service",
        "docker.service",
        "node_exporter.service",
    ] {
        assert!(wants.contains(unit), "{unit} is not enabled:\n{wants}");
    }

    fsck(image, boot, &["fsck.vfat", "-n"]);
    fsck(image, root, &["e2fsck", "-fn"]);
    assert!(baked.image_xz.with_file_name("observability-test.bmap").is_file());
}

// ---------------------------------------------------------------------------------------
// Booting the burned image

/// A guest booted from a burned file by the lab's qemu launcher (on an overlay 1 GiB larger
/// than the card, so the first boot has room to grow into), stopped when dropped.
struct Guest {
    runtime: tokio::runtime::Runtime,
    dir: PathBuf,
    ports: Ports,
    key: PathBuf,
    known_hosts: PathBuf,
    console: PathBuf,
}

impl Guest {
    fn boot(card: &Path, dir: &Path, key: &Path) -> Guest {
        let (_, parts) = partitions(card);
        let boot = &parts[0];
        let source = format!("{}@@{}", card.display(), boot.start * 512);
        for name in ["vmlinuz", "initrd.img"] {
            let status = Command::new("mcopy")
                .env("MTOOLS_SKIP_CHECK", "1")
                .args(["-n", "-i", &source, &format!("::/{name}")])
                .arg(dir.join(name))
                .status()
                .unwrap();
            assert!(status.success(), "mcopy {name}");
        }
        // The card's own command line as the lab boots it; the hostname must come from the
        // burned identity, so none is added.
        let cmdline = qemu::guest_cmdline(&boot_file(card, boot, "cmdline.txt"), Arch::Arm64);
        let card_size = std::fs::metadata(card).unwrap().len();
        let machine = Machine {
            name: "image-test".into(),
            boot: BootFiles {
                arch: Arch::Arm64,
                disk: card.to_path_buf(),
                disk_format: "raw".into(),
                kernel: dir.join("vmlinuz"),
                initrd: dir.join("initrd.img"),
                cmdline,
            },
            ports: Ports { ssh: free_port(), exporter: free_port() },
            dir: dir.join("guest"),
            memory_mib: 2048,
            cpus: 2,
            disk_size: Some(card_size + (1 << 30)),
        };
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(qemu::start(&machine)).unwrap_or_else(|error| panic!("{error}"));
        Guest {
            runtime,
            dir: machine.dir.clone(),
            ports: machine.ports,
            key: key.to_path_buf(),
            known_hosts: dir.join("known_hosts"),
            console: machine.console_log(),
        }
    }

    fn ssh(&self, command: &str) -> Output {
        Command::new("ssh")
            .args(["-p", &self.ports.ssh.to_string(), "-i"])
            .arg(&self.key)
            .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=20"])
            .args(["-o", "StrictHostKeyChecking=accept-new"])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", self.known_hosts.display()))
            .arg("pi@127.0.0.1")
            .arg(command)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Runs a command in the guest; its stdout, trimmed. A failure quotes the command.
    fn run(&self, command: &str) -> String {
        let output = self.ssh(command);
        assert!(
            output.status.success(),
            "`{command}` failed in the guest:\n{}{}",
            text(&output.stdout),
            text(&output.stderr)
        );
        text(&output.stdout).trim().to_string()
    }

    fn wait_for_ssh(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.ssh("true").status.success() {
                return;
            }
            if qemu::running_pid(&self.dir).is_none() {
                panic!("qemu is gone:\n{}", self.console_tail());
            }
            assert!(
                Instant::now() < deadline,
                "no SSH after {timeout:?}:\n{}",
                self.console_tail()
            );
            std::thread::sleep(Duration::from_secs(5));
        }
    }

    fn console_tail(&self) -> String {
        let console = std::fs::read_to_string(&self.console).unwrap_or_default();
        let lines: Vec<&str> = console.lines().rev().take(60).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.runtime.block_on(qemu::stop(&self.dir));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn a_burned_image_boots_ready_under_qemu() {
    let _serial = SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let baked = baked();
    let dir = baked.dir.path().join("boot");
    std::fs::create_dir_all(&dir).unwrap();

    let card = dir.join("card.img");
    let image_size = std::fs::metadata(&baked.raw).unwrap().len();
    let public_key = baked.key.with_extension("pub");
    let started = Instant::now();
    let burn = Command::new(env!("CARGO_BIN_EXE_bramble"))
        .arg("burn")
        .arg(&baked.image_xz)
        .arg(&card)
        .args(["--hostname", HOSTNAME, "--user", "pi", "--ssh-key"])
        .arg(&public_key)
        .output()
        .unwrap();
    report("burn", &text(&burn.stderr));
    assert!(burn.status.success(), "burn failed:\n{}", text(&burn.stderr));
    log(&format!("[burn] {:.0}s", started.elapsed().as_secs_f64()));

    let started = Instant::now();
    let mut guest = Guest::boot(&card, &dir, &baked.key);
    let timeout = std::env::var("BRAMBLE_IMAGE_BOOT_TIMEOUT")
        .ok()
        .and_then(|seconds| seconds.parse().ok())
        .unwrap_or(1200);
    guest.wait_for_ssh(Duration::from_secs(timeout));
    log(&format!("[boot] SSH answered after {:.0}s", started.elapsed().as_secs_f64()));
    // Startup is over once every unit that was going to start has (or has failed).
    let state = text(&guest.ssh("timeout 900 systemctl is-system-running --wait").stdout);
    log(&format!("[boot] system {} after {:.0}s", state.trim(), started.elapsed().as_secs_f64()));
    let failed = guest.run("systemctl --failed --no-legend --plain | cut -d' ' -f1");
    assert_eq!(
        failed,
        "",
        "failed units:\n{}",
        guest.run("sudo journalctl -b --no-pager -p warning | tail -50")
    );

    // Identity as burned: the hostname, the key (we are logged in with it).
    assert_eq!(guest.run("hostname"), HOSTNAME);
    let authorized = guest.run("cat ~/.ssh/authorized_keys");
    let key_text = std::fs::read_to_string(&public_key).unwrap();
    assert!(authorized.contains(key_text.trim()), "{authorized}");

    // A new machine: its own machine id and SSH host keys, made at this boot.
    let machine_id = guest.run("cat /etc/machine-id");
    assert!(
        machine_id.len() == 32 && machine_id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{machine_id}"
    );
    let host_key = guest.run("cat /etc/ssh/ssh_host_ed25519_key.pub");
    let known = std::fs::read_to_string(&guest.known_hosts).unwrap();
    let presented = host_key.split_whitespace().nth(1).unwrap();
    assert!(known.contains(presented), "the guest's key is not the one it presented");

    // The root file system grew to the end of the (larger) card.
    let disk = guest.run("cat /sys/class/block/vda/size").parse::<u64>().unwrap() * 512;
    let root_end: u64 = guest
        .run("echo $(( $(cat /sys/class/block/vda2/start) + $(cat /sys/class/block/vda2/size) ))")
        .parse::<u64>()
        .unwrap()
        * 512;
    assert!(disk - root_end < 4 << 20, "rootfs ends at {root_end} of {disk}");
    let root_size: u64 = guest.run("df -B1 --output=size / | tail -1").parse().unwrap();
    assert!(
        root_size > image_size + (1 << 30) - (700 << 20),
        "/ is {root_size} bytes on a {disk}-byte disk"
    );

    // node_exporter and Docker running; the preloaded images loaded; the stack up.
    assert_eq!(
        guest.run("systemctl is-active node_exporter docker bramble-docker-images stack"),
        "active\nactive\nactive\nactive"
    );
    let metrics =
        run("curl", &["-fsS", &format!("http://127.0.0.1:{}/metrics", guest.ports.exporter)]);
    let series = metrics.lines().filter(|line| line.starts_with("node_")).count();
    assert!(series > 50, "node_exporter serves {series} node_ series:\n{metrics}");
    for (_, image) in STACK_IMAGES.iter().chain(&[("", EXTRA_IMAGE)]) {
        guest.run(&format!("sudo docker image inspect --format '{{{{.Id}}}}' {image}"));
    }
    assert_eq!(guest.run("sudo ls -A /var/lib/bramble/docker-images"), "");
    let running = guest.run("sudo docker ps --format '{{.Names}}' | sort | tr '\\n' ' '");
    assert_eq!(running, "alloy cadvisor grafana loki phoenix prometheus", "{running}");
    for file in [
        "prometheus/prometheus.yml",
        "loki/loki.yaml",
        "grafana/compose.yaml",
        "alloy/config.alloy",
    ] {
        guest.run(&format!("test -s ~/.iac-toolbox/{file}"));
    }
    log(&format!(
        "[boot test] {:.0}s from power on to all checks",
        started.elapsed().as_secs_f64()
    ));
}
