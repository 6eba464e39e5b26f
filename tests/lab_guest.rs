//! The vertical slice on a real Debian 13 guest with systemd (qemu, TCG): `bramble run
//! site.yml` installs Node Exporter from a local mirror, a wrong checksum leaves nothing
//! behind, and a second run changes nothing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::guest::{Guest, lab_script};
use common::{Run, free_port};

const VARIANT: Option<&str> = Some("docker");

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// An inventory for the test guest, with the lab's settings and its own ports.
fn inventory(dir: &Path, guest: &Guest, http_port: u16) -> PathBuf {
    let lab_vars = std::fs::read_to_string(repo().join("inventories/lab/group_vars/all.yml"))
        .expect("lab vars");
    std::fs::create_dir_all(dir.join("group_vars")).expect("mkdir");
    std::fs::write(
        dir.join("group_vars/all.yml"),
        lab_vars.replace("10.0.2.2:8719", &format!("10.0.2.2:{http_port}")),
    )
    .expect("vars");
    let hosts = dir.join("hosts.ini");
    std::fs::write(&hosts, format!("[pis]\n{}\n", guest.host_line("lab1"))).expect("hosts");
    hosts
}

fn bramble(inventory: &Path, extra: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_bramble"))
        .current_dir(repo())
        .args(["run", "site.yml", "-i"])
        .arg(inventory)
        .args(extra)
        .output()
        .expect("bramble");
    Run::from(output)
}

#[test]
fn site_installs_node_exporter_on_a_systemd_guest() {
    // site.yml installs Docker, so the guest boots the image variant that holds it.
    lab_script("node-exporter.sh", &[], VARIANT);
    let http_port = free_port();
    lab_script("serve.sh", &[&http_port.to_string()], VARIANT);
    let guest = Guest::boot("test", VARIANT);
    let dir = tempfile::tempdir().unwrap();
    let hosts = inventory(dir.path(), &guest, http_port);

    // A wrong checksum stops at the download and leaves no binary or tarball behind.
    let wrong =
        bramble(&hosts, &["-e", &format!("node_exporter_checksum=sha256:{}", "0".repeat(64))]);
    wrong.code(2).stdout_has("did not match");
    assert_eq!(
        guest.ssh("ls /usr/local/bin/node_exporter /tmp/node_exporter-* 2>/dev/null | wc -l"),
        "0"
    );

    let started = Instant::now();
    let first = bramble(&hosts, &[]);
    let first_time = started.elapsed();
    first.success();
    assert!(!first.recap("lab1").contains("changed=0 "), "{}", first.stdout);

    assert_eq!(guest.ssh("systemctl is-active node_exporter"), "active");
    assert_eq!(guest.ssh("systemctl is-enabled node_exporter"), "enabled");
    assert_eq!(guest.ssh("stat -c %U $(readlink -f /proc/$(systemctl show -p MainPID --value node_exporter)/cwd)/ >/dev/null; ps -o user= -p $(systemctl show -p MainPID --value node_exporter)"), "node_exporter");
    let metrics = guest.ssh("curl -fsS http://127.0.0.1:9100/metrics");
    assert!(metrics.lines().any(|line| line.starts_with("node_")), "no node_ metrics:\n{metrics}");

    let started = Instant::now();
    let second = bramble(&hosts, &[]);
    let second_time = started.elapsed();
    second.success();
    assert!(
        second.recap("lab1").contains("changed=0 "),
        "second run changed something:\n{}",
        second.stdout
    );
    eprintln!(
        "timing: first run {:.1} s, second run {:.1} s",
        first_time.as_secs_f64(),
        second_time.as_secs_f64()
    );
    lab_script("serve.sh", &["--stop", &http_port.to_string()], VARIANT);
}
