//! The qemu launcher: boot files and two forwarded ports in, a running TCG guest out. The
//! guest runs on its own copy-on-write overlay of the (untouched) disk, as a daemon whose pid
//! is checked against its command line before anything is done to it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Arch, io};
use crate::error::{Error, Result};

/// What a guest boots: a disk used read-only as the overlay's backing file, and the kernel,
/// initramfs and command line qemu loads directly (no firmware, no bootloader).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootFiles {
    pub arch: Arch,
    pub disk: PathBuf,
    /// `raw` or `qcow2`.
    pub disk_format: String,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub cmdline: String,
}

/// The host ports a guest's SSH (22) and Node Exporter (9100) are forwarded from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ports {
    pub ssh: u16,
    pub exporter: u16,
}

/// One guest to start: its name, what it boots, its ports and its own folder, which holds
/// `overlay.qcow2`, `qemu.pid` and `console.log`.
#[derive(Clone, Debug)]
pub struct Machine {
    pub name: String,
    pub boot: BootFiles,
    pub ports: Ports,
    pub dir: PathBuf,
    pub memory_mib: u32,
    pub cpus: u32,
    /// The overlay's virtual size in bytes; more than the disk lets the guest grow its root.
    pub disk_size: Option<u64>,
}

impl Machine {
    pub fn overlay(&self) -> PathBuf {
        self.dir.join("overlay.qcow2")
    }

    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("qemu.pid")
    }

    pub fn console_log(&self) -> PathBuf {
        self.dir.join("console.log")
    }
}

/// qemu splits option values at commas; a comma inside a value is written twice.
fn option_value(path: &Path) -> String {
    path.to_string_lossy().replace(',', ",,")
}

/// The program and arguments that boot `machine` as a daemon (a planner: no process runs).
pub fn command(machine: &Machine) -> (String, Vec<String>) {
    let boot = &machine.boot;
    let (program, board, cpu) = match boot.arch {
        Arch::Arm64 => ("qemu-system-aarch64", "virt", "cortex-a72"),
        Arch::Amd64 => ("qemu-system-x86_64", "q35", "max"),
    };
    let forwards = format!(
        "user,id=net0,hostfwd=tcp:127.0.0.1:{}-:22,hostfwd=tcp:127.0.0.1:{}-:9100",
        machine.ports.ssh, machine.ports.exporter
    );
    let drive = format!(
        "file={},format=qcow2,if=none,id=disk0,discard=unmap",
        option_value(&machine.overlay())
    );
    let pid_file = machine.pid_file();
    let arguments = [
        "-nodefaults",
        "-no-user-config",
        "-name",
        &format!("bramble-lab-{}", machine.name),
        "-machine",
        board,
        // Guests hang under KVM on the hosts this runs on: TCG always.
        "-accel",
        "tcg",
        "-cpu",
        cpu,
        "-smp",
        &machine.cpus.to_string(),
        "-m",
        &machine.memory_mib.to_string(),
        "-kernel",
        &boot.kernel.to_string_lossy(),
        "-initrd",
        &boot.initrd.to_string_lossy(),
        "-append",
        &boot.cmdline,
        "-drive",
        &drive,
        "-device",
        "virtio-blk-pci,drive=disk0",
        "-netdev",
        &forwards,
        "-device",
        "virtio-net-pci,netdev=net0",
        "-device",
        "virtio-rng-pci",
        "-display",
        "none",
        "-serial",
        &format!("file:{}", machine.console_log().to_string_lossy()),
        "-pidfile",
        &pid_file.to_string_lossy(),
        "-daemonize",
    ];
    (program.to_string(), arguments.iter().map(|a| a.to_string()).collect())
}

/// How long systemd waits for a device (the boot partition, the serial console) before it
/// gives up on the units needing it. Its default, 90 s, is measured from early boot, and an
/// emulated guest on a busy host can take longer than that just to start udev: the boot
/// partition's mount then fails and the guest stops in emergency mode.
pub const DEVICE_TIMEOUT_SECONDS: u32 = 900;

/// The kernel command line of a Pi image's `cmdline.txt` for qemu: the Pi's consoles give way
/// to the board's serial port, and systemd waits long enough for an emulated guest's devices.
pub fn guest_cmdline(cmdline_txt: &str, arch: Arch) -> String {
    let console = match arch {
        Arch::Arm64 => "console=ttyAMA0",
        Arch::Amd64 => "console=ttyS0",
    };
    let mut words: Vec<String> = cmdline_txt
        .split_whitespace()
        .filter(|word| {
            !word.starts_with("console=")
                && !word.starts_with("systemd.hostname=")
                && !word.starts_with("systemd.default_device_timeout_sec=")
        })
        .map(str::to_string)
        .collect();
    words.push(console.to_string());
    words.push(format!("systemd.default_device_timeout_sec={DEVICE_TIMEOUT_SECONDS}"));
    words.join(" ")
}

/// [`guest_cmdline`] with the guest's hostname set from its first moment.
pub fn kernel_cmdline(cmdline_txt: &str, arch: Arch, hostname: &str) -> String {
    format!("{} systemd.hostname={hostname}", guest_cmdline(cmdline_txt, arch))
}

/// A running (or stopped) guest, known by its folder.
#[derive(Clone, Debug)]
pub struct Guest {
    pub name: String,
    pub dir: PathBuf,
    pub ports: Ports,
    pub pid: u32,
}

/// Makes a fresh overlay and starts qemu; returns once qemu runs in the background.
pub async fn start(machine: &Machine) -> Result<Guest> {
    prepare(machine).await?;
    launch(machine).await
}

/// Stops what still runs in the guest's folder and makes a fresh overlay, which can then be
/// written to (a cloud-init seed) before [`launch`]. The serial console of a previous boot
/// is kept as `console.log.previous`.
pub async fn prepare(machine: &Machine) -> Result<()> {
    std::fs::create_dir_all(&machine.dir).map_err(|e| io("creating", &machine.dir, e))?;
    stop(&machine.dir).await?;
    let log = machine.console_log();
    if log.exists() {
        let previous = machine.dir.join("console.log.previous");
        std::fs::rename(&log, &previous).map_err(|e| io("keeping", &log, e))?;
    }
    create_overlay(machine).await
}

/// Starts qemu on the overlay [`prepare`] made.
pub async fn launch(machine: &Machine) -> Result<Guest> {
    let (program, arguments) = command(machine);
    tracing::debug!(program, ?arguments, "starting qemu");
    let output = tokio::process::Command::new(&program)
        .args(&arguments)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| Error::lab("starting qemu", format!("could not run {program}: {e}")))?;
    if !output.status.success() {
        let _ = std::fs::remove_file(machine.overlay());
        return Err(Error::lab(
            format!("starting guest {}", machine.name),
            format!(
                "{program} failed ({}):\n{}\nhint: is port {} or {} taken?",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim_end(),
                machine.ports.ssh,
                machine.ports.exporter
            ),
        ));
    }
    let pid = running_pid(&machine.dir).ok_or_else(|| {
        Error::lab(
            format!("starting guest {}", machine.name),
            format!("qemu left no live pid in {}", machine.pid_file().display()),
        )
    })?;
    Ok(Guest { name: machine.name.clone(), dir: machine.dir.clone(), ports: machine.ports, pid })
}

async fn create_overlay(machine: &Machine) -> Result<()> {
    let overlay = machine.overlay();
    let _ = std::fs::remove_file(&overlay);
    let mut arguments: Vec<String> = vec![
        "create".into(),
        "-q".into(),
        "-f".into(),
        "qcow2".into(),
        "-F".into(),
        machine.boot.disk_format.clone(),
        "-b".into(),
        machine.boot.disk.to_string_lossy().into_owned(),
        overlay.to_string_lossy().into_owned(),
    ];
    if let Some(size) = machine.disk_size {
        arguments.push(size.to_string());
    }
    super::run_tool("creating the overlay", "qemu-img", &arguments).await.map(drop)
}

/// The pid in `dir/qemu.pid` if that process is alive and is the qemu of `dir`'s overlay
/// (so a recycled pid is never taken for a guest).
pub fn running_pid(dir: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(dir.join("qemu.pid")).ok()?;
    let pid: u32 = text.trim().parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    let overlay = dir.join("overlay.qcow2");
    cmdline.contains(&option_value(&overlay)).then_some(pid)
}

/// Stops the guest of `dir`, if one runs: SIGTERM, then SIGKILL after 10 s. The overlay is
/// removed (nothing on it is meant to outlive the guest); the console log stays.
pub async fn stop(dir: &Path) -> Result<bool> {
    let stopped = match running_pid(dir) {
        Some(pid) => {
            signal(pid, libc::SIGTERM);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while running_pid(dir) == Some(pid) && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if running_pid(dir) == Some(pid) {
                signal(pid, libc::SIGKILL);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            true
        }
        None => false,
    };
    for name in ["qemu.pid", "overlay.qcow2"] {
        let path = dir.join(name);
        if path.exists() {
            std::fs::remove_file(&path).map_err(|e| io("removing", &path, e))?;
        }
    }
    Ok(stopped)
}

fn signal(pid: u32, number: i32) {
    let Ok(pid) = i32::try_from(pid) else { return };
    // SAFETY: kill(2) only sends a signal; the pid was checked to be this guest's qemu.
    unsafe {
        libc::kill(pid, number);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(arch: Arch) -> Machine {
        Machine {
            name: "lab1".into(),
            boot: BootFiles {
                arch,
                disk: "/cache/base.img".into(),
                disk_format: "raw".into(),
                kernel: "/cache/vmlinuz".into(),
                initrd: "/cache/initrd.img".into(),
                cmdline: "root=PARTUUID=1234abcd-02 console=ttyAMA0".into(),
            },
            ports: Ports { ssh: 2201, exporter: 9101 },
            dir: "/fleet/lab,1".into(),
            memory_mib: 1024,
            cpus: 1,
            disk_size: None,
        }
    }

    fn value_after<'a>(arguments: &'a [String], flag: &str) -> Vec<&'a str> {
        arguments.windows(2).filter(|pair| pair[0] == flag).map(|pair| pair[1].as_str()).collect()
    }

    #[test]
    fn arm64_guest_is_a_virt_board_under_tcg_with_both_ports_forwarded() {
        let (program, arguments) = command(&machine(Arch::Arm64));
        assert_eq!(program, "qemu-system-aarch64");
        assert_eq!(value_after(&arguments, "-machine"), ["virt"]);
        assert_eq!(value_after(&arguments, "-cpu"), ["cortex-a72"]);
        assert_eq!(value_after(&arguments, "-accel"), ["tcg"]);
        assert!(!arguments.iter().any(|a| a.contains("kvm")));
        assert_eq!(
            value_after(&arguments, "-netdev"),
            ["user,id=net0,hostfwd=tcp:127.0.0.1:2201-:22,hostfwd=tcp:127.0.0.1:9101-:9100"]
        );
        // The comma in the folder name is doubled, as qemu's option parser wants.
        assert_eq!(
            value_after(&arguments, "-drive"),
            ["file=/fleet/lab,,1/overlay.qcow2,format=qcow2,if=none,id=disk0,discard=unmap"]
        );
        assert_eq!(
            value_after(&arguments, "-append"),
            ["root=PARTUUID=1234abcd-02 console=ttyAMA0"]
        );
        assert_eq!(arguments.last().map(String::as_str), Some("-daemonize"));
    }

    #[test]
    fn amd64_guest_is_q35() {
        let (program, arguments) = command(&machine(Arch::Amd64));
        assert_eq!(program, "qemu-system-x86_64");
        assert_eq!(value_after(&arguments, "-machine"), ["q35"]);
    }

    #[test]
    fn pi_cmdline_gets_the_boards_console_and_the_hostname() {
        let pi = "console=serial0,115200 console=tty1 root=PARTUUID=5a1e2b3c-02 rootfstype=ext4 \
                  fsck.repair=yes rootwait\n";
        assert_eq!(
            kernel_cmdline(pi, Arch::Arm64, "lab2"),
            "root=PARTUUID=5a1e2b3c-02 rootfstype=ext4 fsck.repair=yes rootwait \
             console=ttyAMA0 systemd.default_device_timeout_sec=900 systemd.hostname=lab2"
        );
        assert!(kernel_cmdline(pi, Arch::Amd64, "lab1").contains(" console=ttyS0 "));
    }

    #[test]
    fn a_pid_file_naming_another_process_is_not_a_guest() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("qemu.pid"), format!("{}\n", std::process::id())).unwrap();
        assert_eq!(running_pid(dir.path()), None);
    }
}
