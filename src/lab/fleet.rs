//! `bramble lab up N`, `status` and `down`: a fleet of guests `lab1`…`labN` booted from one
//! image, each on its own overlay with its own ports, and the files that reach them.
//!
//! Everything lives in `${BRAMBLE_CACHE:-~/.cache/bramble}/lab/fleet/`: `fleet.json` (what
//! was started), `hosts.ini` (the inventory), `known_hosts` (the guests' host keys, known
//! before they boot), `id_ed25519` (the login key when the user gives none) and one folder
//! per guest with its overlay, pid file, host key and serial console log.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use super::image::{self, Identity, LabImage};
use super::qemu::{self, Machine, Ports};
use super::seed::{self, GuestIdentity};
use super::{Arch, io, lab_dir, run_tool};
use crate::connection::{HostKeyPolicy, SshConnection, SshTarget};
use crate::error::{Error, Result};

/// The login user of every guest, as on Raspberry Pi OS.
pub const USER: &str = "pi";
/// The first ports tried; taken ones are skipped.
const FIRST_SSH_PORT: u16 = 2201;
const FIRST_EXPORTER_PORT: u16 = 9101;

/// What `bramble lab up` was asked for.
#[derive(Clone, Debug)]
pub struct UpOptions {
    pub count: usize,
    pub arch: Arch,
    /// An image file or a `tests/lab` image folder; without it the arch's recipe is baked.
    pub image: Option<PathBuf>,
    /// The recipe baked when no image is given.
    pub recipe: Option<PathBuf>,
    /// The private key to log in with (its `.pub` beside it); else one is generated.
    pub ssh_key: Option<PathBuf>,
    pub memory_mib: u32,
    pub boot_timeout: Duration,
}

/// `lab/fleet/`, or `BRAMBLE_LAB_FLEET` (tests keep their fleet apart from the user's).
pub fn fleet_dir() -> PathBuf {
    std::env::var_os("BRAMBLE_LAB_FLEET")
        .map(PathBuf::from)
        .unwrap_or_else(|| lab_dir().join("fleet"))
}

/// The recipe baked for an architecture when no image is given.
pub fn default_recipe(arch: Arch) -> PathBuf {
    match arch {
        Arch::Arm64 => PathBuf::from("images/lab.yml"),
        Arch::Amd64 => PathBuf::from("images/lab-amd64.yml"),
    }
}

/// One guest of the fleet, as `fleet.json` records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub ports: Ports,
}

/// `bramble lab up`: boots the guests, writes the inventory and known_hosts, and returns once
/// every guest lets the user in over SSH. If one does not, all of them are stopped.
pub async fn up(options: &UpOptions) -> Result<()> {
    let fleet = fleet_dir();
    if let Some(running) = running_members(&fleet).first() {
        return Err(Error::lab(
            "starting the fleet",
            format!("{running} is still running\nhint: bramble lab status; bramble lab down first"),
        ));
    }
    if options.count == 0 {
        return Err(Error::argument("bramble lab up needs at least one guest"));
    }
    std::fs::create_dir_all(&fleet).map_err(|e| io("creating", &fleet, e))?;
    let image_path = match &options.image {
        Some(path) => path.clone(),
        None => bake(options).await?,
    };
    let image = image::open(&image_path, options.arch, &lab_dir().join("images")).await?;
    let client_key = client_key(&image, options, &fleet).await?;

    let members = allocate(options.count)?;
    let mut known_hosts = String::new();
    let started = tokio::time::Instant::now();
    for member in &members {
        let host_key = boot(&image, member, &client_key, options, &fleet).await?;
        known_hosts += &format!("[127.0.0.1]:{} {}\n", member.ports.ssh, key_fields(&host_key));
    }
    let known_hosts_path = fleet.join("known_hosts");
    write(&known_hosts_path, &known_hosts)?;
    let inventory = fleet.join("hosts.ini");
    write(&inventory, &inventory_text(&members, &client_key, &known_hosts_path))?;
    write_state(&fleet, options.arch, &image_path, &members)?;

    crate::output::err(&format!(
        "{:>12} {} {} guest(s) from {}, waiting for SSH\n",
        "booting",
        options.count,
        options.arch.name(),
        image_path.display()
    ));
    let waits = members
        .iter()
        .map(|member| wait_for_ssh(member, &client_key, &known_hosts_path, options.boot_timeout));
    let results = futures::future::join_all(waits).await;
    if let Some(Err(error)) = results.into_iter().find(Result::is_err) {
        stop_all(&fleet).await?;
        return Err(error);
    }
    crate::output::err(&format!("{:>12} in {} s\n", "up", started.elapsed().as_secs()));
    print_where(&fleet, &members);
    Ok(())
}

/// Bakes the architecture's recipe once; later calls find it in `lab/baked/KEY/`, KEY being
/// a hash of the recipe, its playbook and this bramble's version.
async fn bake(options: &UpOptions) -> Result<PathBuf> {
    let recipe = options.recipe.clone().unwrap_or_else(|| default_recipe(options.arch));
    let loaded = crate::image::recipe::Loaded::load(&recipe)?;
    let mut parts = Vec::new();
    for path in [recipe.clone(), loaded.playbook()] {
        parts.push(std::fs::read(&path).map_err(|e| io("reading the recipe", &path, e))?);
    }
    parts.push(env!("CARGO_PKG_VERSION").as_bytes().to_vec());
    let key = {
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        for part in &parts {
            hasher.update(part);
            hasher.update([0]);
        }
        hex::encode(hasher.finalize())[..16].to_string()
    };
    let output = lab_dir().join("baked").join(&key);
    let baked = output.join(format!("{}.img.xz", loaded.recipe.name));
    if baked.is_file() {
        return Ok(baked);
    }
    crate::output::err(&format!(
        "{:>12} {} (once; cached in {})\n",
        "baking",
        recipe.display(),
        output.display()
    ));
    std::fs::create_dir_all(&output).map_err(|e| io("creating", &output, e))?;
    let bake =
        crate::image::bake::BakeOptions { recipe, output: output.clone(), ..Default::default() };
    let outputs = crate::image::until_interrupted(crate::image::bake::bake(&bake)).await?;
    Ok(outputs.image_xz)
}

/// The login key: the user's, the lab's (for a `tests/lab` image, which trusts only that
/// one), or one generated for the fleet and kept across fleets.
async fn client_key(image: &LabImage, options: &UpOptions, fleet: &Path) -> Result<PathBuf> {
    match (&image.identity, &options.ssh_key) {
        (Identity::Baked { .. }, Some(_)) => Err(Error::NotSupported {
            what: "--ssh-key with a tests/lab image folder (its guests trust only the lab key)"
                .into(),
        }),
        (Identity::Baked { client_key, .. }, None) => Ok(client_key.clone()),
        (Identity::Seed { .. }, Some(key)) => {
            let public = public_of(key);
            if !key.is_file() || !public.is_file() {
                return Err(Error::argument(format!(
                    "--ssh-key {}: needs the private key and {} beside it",
                    key.display(),
                    public.display()
                )));
            }
            Ok(key.clone())
        }
        (Identity::Seed { .. }, None) => {
            let key = fleet.join("id_ed25519");
            if !key.is_file() {
                keygen(&key, "bramble-lab").await?;
            }
            Ok(key)
        }
    }
}

fn public_of(key: &Path) -> PathBuf {
    let mut name = key.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

async fn keygen(path: &Path, comment: &str) -> Result<()> {
    for stale in [path.to_path_buf(), public_of(path)] {
        let _ = std::fs::remove_file(stale);
    }
    let arguments = ["-q".as_ref(), "-t".as_ref(), "ed25519".as_ref(), "-N".as_ref(), "".as_ref()]
        .into_iter()
        .chain(["-C".as_ref(), comment.as_ref(), "-f".as_ref(), path.as_os_str()]);
    let arguments: Vec<&std::ffi::OsStr> = arguments.collect();
    run_tool("generating an SSH key", "ssh-keygen", &arguments).await.map(drop)
}

/// Names `lab1`…`labN`, each with two free loopback ports.
fn allocate(count: usize) -> Result<Vec<Member>> {
    let mut taken = Vec::new();
    let mut members = Vec::new();
    for index in 1..=count {
        let ssh = free_port(FIRST_SSH_PORT, &taken)?;
        taken.push(ssh);
        let exporter = free_port(FIRST_EXPORTER_PORT, &taken)?;
        taken.push(exporter);
        members.push(Member { name: format!("lab{index}"), ports: Ports { ssh, exporter } });
    }
    Ok(members)
}

fn free_port(from: u16, taken: &[u16]) -> Result<u16> {
    (from..=u16::MAX)
        .filter(|port| !taken.contains(port))
        .find(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .ok_or_else(|| Error::lab("choosing ports", format!("no free port from {from}")))
}

/// Starts one guest; returns its host's public key.
async fn boot(
    image: &LabImage,
    member: &Member,
    client_key: &Path,
    options: &UpOptions,
    fleet: &Path,
) -> Result<String> {
    let dir = fleet.join(&member.name);
    let mut boot = image.boot.clone();
    boot.cmdline = qemu::kernel_cmdline(&boot.cmdline, options.arch, &member.name);
    let disk_size = match &image.identity {
        // Room for cloud-init to grow the root partition into.
        Identity::Seed { .. } => Some(disk_bytes(&boot.disk).max(4 << 30)),
        Identity::Baked { .. } => None,
    };
    let machine = Machine {
        name: member.name.clone(),
        boot,
        ports: member.ports,
        dir: dir.clone(),
        memory_mib: options.memory_mib,
        cpus: 1,
        disk_size,
    };
    qemu::prepare(&machine).await?;
    let host_key = match &image.identity {
        Identity::Seed { bootfs, offset } => {
            let key = dir.join("ssh_host_ed25519_key");
            keygen(&key, &member.name).await?;
            let private = std::fs::read_to_string(&key).map_err(|e| io("reading", &key, e))?;
            let public = read(&public_of(&key))?;
            let authorized = read(&public_of(client_key))?;
            let identity = GuestIdentity {
                hostname: member.name.clone(),
                user: USER.into(),
                authorized_key: authorized.trim().to_string(),
                host_key: (private, public.clone()),
                instance_id: format!(
                    "bramble-{}-{}",
                    member.name,
                    crate::image::disk::random_disk_id()
                ),
            };
            let work = dir.join("seed");
            let _ = std::fs::remove_dir_all(&work);
            std::fs::create_dir_all(&work).map_err(|e| io("creating", &work, e))?;
            let files = seed::seed_files(&identity);
            seed::write(&machine.overlay(), bootfs, *offset, &files, &work).await?;
            std::fs::remove_dir_all(&work).map_err(|e| io("removing", &work, e))?;
            public
        }
        Identity::Baked { host_key, .. } => read(host_key)?,
    };
    qemu::launch(&machine).await?;
    Ok(host_key)
}

fn disk_bytes(disk: &Path) -> u64 {
    std::fs::metadata(disk).map(|meta| meta.len()).unwrap_or(0)
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| io("reading", path, e))
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| io("writing", path, e))
}

/// `type base64` of an OpenSSH public key line, without its comment.
fn key_fields(public: &str) -> String {
    public.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

/// The inventory of the fleet: one group `lab`, the ports as host variables.
pub fn inventory_text(members: &[Member], client_key: &Path, known_hosts: &Path) -> String {
    let mut text =
        String::from("# Written by bramble lab up; bramble lab down stops these.\n[lab]\n");
    for member in members {
        text += &format!(
            "{} ansible_host=127.0.0.1 ansible_port={} lab_node_exporter_port={}\n",
            member.name, member.ports.ssh, member.ports.exporter
        );
    }
    text += &format!(
        "\n[lab:vars]\nansible_user={USER}\nansible_ssh_private_key_file={}\n\
         ansible_ssh_common_args='-o UserKnownHostsFile={}'\n",
        client_key.display(),
        known_hosts.display()
    );
    text
}

fn write_state(fleet: &Path, arch: Arch, image: &Path, members: &[Member]) -> Result<()> {
    let guests: Vec<Value> = members
        .iter()
        .map(
            |m| json!({"name": m.name, "ssh_port": m.ports.ssh, "exporter_port": m.ports.exporter}),
        )
        .collect();
    let state = json!({"arch": arch.name(), "image": image.to_string_lossy(), "guests": guests});
    let text = serde_json::to_string_pretty(&state).unwrap_or_default();
    write(&fleet.join("fleet.json"), &(text + "\n"))
}

/// The guests `fleet.json` records, in order.
pub fn members(fleet: &Path) -> Vec<Member> {
    let text = std::fs::read_to_string(fleet.join("fleet.json")).unwrap_or_default();
    let state: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let port = |guest: &Value, key: &str| guest[key].as_u64().and_then(|p| u16::try_from(p).ok());
    state["guests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|guest| {
            Some(Member {
                name: guest["name"].as_str()?.to_string(),
                ports: Ports {
                    ssh: port(guest, "ssh_port")?,
                    exporter: port(guest, "exporter_port")?,
                },
            })
        })
        .collect()
}

fn running_members(fleet: &Path) -> Vec<String> {
    members(fleet)
        .into_iter()
        .filter(|member| qemu::running_pid(&fleet.join(&member.name)).is_some())
        .map(|member| member.name)
        .collect()
}

/// Tries to log in as the fleet user and run `true` until it works or time runs out.
async fn wait_for_ssh(
    member: &Member,
    client_key: &Path,
    known_hosts: &Path,
    timeout: Duration,
) -> Result<()> {
    let target = SshTarget {
        host: "127.0.0.1".into(),
        port: member.ports.ssh,
        user: USER.into(),
        private_keys: vec![client_key.to_path_buf()],
        password: None,
        known_hosts: vec![known_hosts.to_path_buf()],
        policy: HostKeyPolicy::Strict,
        timeout: Duration::from_secs(10),
    };
    let dir = fleet_dir().join(&member.name);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last;
    loop {
        match SshConnection::connect(target.clone()).await {
            Ok(connection) => {
                let answered = connection.exec("true", None).await;
                connection.close().await;
                match answered {
                    Ok(output) if output.rc == 0 => return Ok(()),
                    Ok(output) => last = format!("`true` exited {}", output.rc),
                    Err(error) => last = error.0,
                }
            }
            Err(error) => last = error.0,
        }
        if qemu::running_pid(&dir).is_none() {
            return Err(boot_failed(member, &dir, "qemu exited while the guest was booting"));
        }
        if tokio::time::Instant::now() >= deadline {
            let why = format!("no SSH login within {} s (last: {last})", timeout.as_secs());
            return Err(boot_failed(member, &dir, &why));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

fn boot_failed(member: &Member, dir: &Path, why: &str) -> Error {
    let log = dir.join("console.log");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(20).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Error::lab(
        format!("booting {}", member.name),
        format!(
            "{why}\nthe serial console ends:\n{}\nhint: the whole log is {} (kept after down)",
            tail.join("\n"),
            log.display()
        ),
    )
}

fn print_where(fleet: &Path, members: &[Member]) {
    crate::output::out(&format!("inventory    {}\n", fleet.join("hosts.ini").display()));
    crate::output::out(&format!("known_hosts  {}\n", fleet.join("known_hosts").display()));
    for member in members {
        crate::output::out(&format!(
            "{:<12} ssh -p {} {USER}@127.0.0.1   node exporter 127.0.0.1:{}\n",
            member.name, member.ports.ssh, member.ports.exporter
        ));
    }
    crate::output::out(&format!(
        "run          bramble run site.yml -i {}\n",
        fleet.join("hosts.ini").display()
    ));
}

/// One line of `bramble lab status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub member: Member,
    pub pid: Option<u32>,
}

/// What runs of the fleet `fleet.json` records.
pub fn status(fleet: &Path) -> Vec<Status> {
    members(fleet)
        .into_iter()
        .map(|member| {
            let pid = qemu::running_pid(&fleet.join(&member.name));
            Status { member, pid }
        })
        .collect()
}

/// The table `bramble lab status` prints.
pub fn status_table(lines: &[Status]) -> String {
    let mut text =
        format!("{:<8} {:>6} {:>9} {:>8}  {}\n", "NAME", "SSH", "EXPORTER", "PID", "STATE");
    for line in lines {
        let pid = line.pid.map(|pid| pid.to_string()).unwrap_or_else(|| "-".into());
        let state = if line.pid.is_some() { "up" } else { "down" };
        text += &format!(
            "{:<8} {:>6} {:>9} {:>8}  {state}\n",
            line.member.name, line.member.ports.ssh, line.member.ports.exporter, pid
        );
    }
    text
}

/// `bramble lab down`: stops the fleet's own guests, by the pids their folders record. The
/// console logs, inventory and keys stay.
pub async fn stop_all(fleet: &Path) -> Result<Vec<String>> {
    let mut stopped = Vec::new();
    for member in members(fleet) {
        if qemu::stop(&fleet.join(&member.name)).await? {
            stopped.push(member.name);
        }
    }
    Ok(stopped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inventory_names_each_guest_with_its_ports() {
        let members = [
            Member { name: "lab1".into(), ports: Ports { ssh: 2201, exporter: 9101 } },
            Member { name: "lab2".into(), ports: Ports { ssh: 2202, exporter: 9102 } },
        ];
        let text =
            inventory_text(&members, Path::new("/f/id_ed25519"), Path::new("/f/known_hosts"));
        assert!(text.contains(
            "[lab]\nlab1 ansible_host=127.0.0.1 ansible_port=2201 lab_node_exporter_port=9101\n\
             lab2 ansible_host=127.0.0.1 ansible_port=2202 lab_node_exporter_port=9102\n"
        ));
        assert!(text.contains("ansible_user=pi\nansible_ssh_private_key_file=/f/id_ed25519\n"));
        assert!(text.contains("ansible_ssh_common_args='-o UserKnownHostsFile=/f/known_hosts'"));
    }

    #[test]
    fn state_round_trips_and_a_dead_guest_reads_down() {
        let dir = tempfile::tempdir().unwrap();
        let members = allocate(2).unwrap();
        assert_ne!(members[0].ports.ssh, members[1].ports.ssh);
        write_state(dir.path(), Arch::Amd64, Path::new("/x.img"), &members).unwrap();
        let lines = status(dir.path());
        assert_eq!(
            lines.iter().map(|l| &l.member).collect::<Vec<_>>(),
            members.iter().collect::<Vec<_>>()
        );
        assert!(lines.iter().all(|line| line.pid.is_none()));
        assert!(status_table(&lines).contains("  down\n"));
    }
}
