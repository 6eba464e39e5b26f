//! The docker and stack roles and the docker modules on a real Debian 13 guest with Docker
//! (the lab's "docker" image variant, qemu TCG). No registry is reachable, so the compose
//! module runs an image the test builds from busybox in the guest and loads with
//! `docker_image`; `site.yml` deploys the stack with `stack_start: false` (its images
//! cannot be pulled) and is checked file by file, then must change nothing on a second run.

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

/// An inventory for the guest with the lab's settings and this test's ports.
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

fn bramble(playbook: &Path, inventory: &Path, extra: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_bramble"))
        .current_dir(repo())
        .arg("run")
        .arg(playbook)
        .arg("-i")
        .arg(inventory)
        .args(extra)
        .output()
        .expect("bramble");
    Run::from(output)
}

/// The compose module's playbook: load the image, a network, a volume, a single container,
/// and a Compose project whose memory limit and state come from extra vars.
const COMPOSE_PLAY: &str = r#"
- hosts: all
  become: true
  gather_facts: false
  vars:
    state: present
    memory: 32m
  tasks:
    - name: Load the test image from its archive
      community.docker.docker_image:
        name: bramble/busybox
        tag: "1"
        source: load
        load_path: /root/busybox.tar
    - name: A network
      community.docker.docker_network:
        name: bramble-test
        state: "{{ state }}"
    - name: A volume
      community.docker.docker_volume:
        volume_name: bramble-test-data
        state: "{{ state }}"
    - name: A single container
      community.docker.docker_container:
        name: bramble-single
        image: bramble/busybox:1
        command: ["/bin/sleep", "3600"]
        memory: 16m
        restart_policy: unless-stopped
        state: "{{ 'started' if state == 'present' else 'absent' }}"
    - name: The project's folder
      ansible.builtin.file:
        path: /root/project
        state: directory
        mode: "0755"
    - name: The project
      ansible.builtin.copy:
        dest: /root/project/compose.yaml
        mode: "0644"
        content: |
          name: demo
          services:
            web:
              image: bramble/busybox:1
              command: ["/bin/sleep", "3600"]
              mem_limit: {{ memory }}
              restart: unless-stopped
    - name: Bring the project to its state
      community.docker.docker_compose_v2:
        project_src: /root/project
        state: "{{ state }}"
        pull: never
        remove_orphans: true
"#;

fn compose_module_up_noop_recreate_down(guest: &Guest, hosts: &Path, dir: &Path) {
    // An image from the guest's own busybox, saved and removed again so that loading it is
    // real work for docker_image.
    guest.root(
        "set -e; rm -rf /root/bb; mkdir -p /root/bb/bin; cp /bin/busybox /root/bb/bin/; \
         ln -s busybox /root/bb/bin/sleep; ln -s busybox /root/bb/bin/sh; \
         tar -C /root/bb -c . | docker import - bramble/busybox:1 >/dev/null; \
         docker save -o /root/busybox.tar bramble/busybox:1; docker image rm bramble/busybox:1",
    );
    let play = dir.join("compose.yml");
    std::fs::write(&play, COMPOSE_PLAY).expect("playbook");
    let container = || guest.root("docker ps -q --filter label=com.docker.compose.project=demo");

    eprintln!("stack_guest: compose module, first run");
    let up = bramble(&play, hosts, &[]);
    up.success();
    assert!(up.changed("lab1") >= 5, "{}", up.stdout);
    guest.root("docker image inspect bramble/busybox:1 >/dev/null");
    let first = container();
    assert!(!first.is_empty(), "no running container after up");
    assert_eq!(guest.root("docker inspect -f '{{.State.Running}}' bramble-single"), "true");

    eprintln!("stack_guest: compose module, re-run");
    let again = bramble(&play, hosts, &[]);
    again.success();
    assert_eq!(again.changed("lab1"), 0, "a re-run changed something:\n{}", again.stdout);
    assert_eq!(container(), first);

    eprintln!("stack_guest: compose module, changed memory limit");
    let bigger = bramble(&play, hosts, &["-e", "memory=48m"]);
    bigger.success();
    assert_eq!(bigger.changed("lab1"), 2, "{}", bigger.stdout);
    let second = container();
    assert!(!second.is_empty() && second != first, "not recreated: {first} -> {second}");
    let limit = guest.root(&format!("docker inspect -f '{{{{.HostConfig.Memory}}}}' {second}"));
    assert_eq!(limit, (48 * 1024 * 1024).to_string());

    eprintln!("stack_guest: compose module, absent");
    let down = bramble(&play, hosts, &["-e", "state=absent", "-e", "memory=48m"]);
    down.success();
    assert!(down.changed("lab1") >= 4, "{}", down.stdout);
    assert_eq!(guest.root("docker ps -aq --filter label=com.docker.compose.project=demo"), "");
    assert_eq!(guest.root("docker ps -aq --filter name=bramble-single"), "");
    assert_eq!(guest.root("docker network ls -q --filter name=^bramble-test$"), "");
}

fn site_deploys_the_stack_and_then_changes_nothing(guest: &Guest, hosts: &Path) {
    let site = repo().join("site.yml");
    eprintln!("stack_guest: site.yml, first run");
    let started = Instant::now();
    let first = bramble(&site, hosts, &[]);
    let first_time = started.elapsed();
    first.success();
    assert!(first.changed("lab1") > 0, "{}", first.stdout);

    let base = "/home/pi/.iac-toolbox";
    assert_eq!(guest.root("docker info --format '{{.LoggingDriver}}'"), "json-file");
    assert!(guest.root("cat /etc/docker/daemon.json").contains("\"max-size\": \"10m\""));
    assert!(guest.root("id -nG pi").split(' ').any(|group| group == "docker"));
    assert_eq!(guest.root("systemctl is-enabled docker"), "enabled");
    assert_eq!(guest.root("docker network inspect -f '{{.Driver}}' monitoring"), "bridge");
    for service in ["alloy", "prometheus", "cadvisor", "loki", "grafana", "phoenix"] {
        guest.root(&format!("cd {base}/{service} && docker compose config -q"));
    }
    let secrets = format!("{base}/secrets/grafana_admin_password {base}/secrets/phoenix_secret");
    let modes = guest.root(&format!("stat -c '%a %U' {secrets} {base}/grafana/grafana.env"));
    assert_eq!(modes, "600 pi\n600 pi\n600 pi");
    let before = guest.root(&format!("sha256sum {secrets}"));

    eprintln!("stack_guest: site.yml, second run");
    let started = Instant::now();
    let second = bramble(&site, hosts, &[]);
    let second_time = started.elapsed();
    second.success();
    assert_eq!(second.changed("lab1"), 0, "the second run changed something:\n{}", second.stdout);
    assert_eq!(guest.root(&format!("sha256sum {secrets}")), before);
    eprintln!(
        "timing: site.yml first run {:.1} s, second run {:.1} s",
        first_time.as_secs_f64(),
        second_time.as_secs_f64()
    );
}

#[test]
fn docker_modules_and_the_stack_on_a_guest_with_docker() {
    lab_script("node-exporter.sh", &[], VARIANT);
    let http_port = free_port();
    lab_script("serve.sh", &[&http_port.to_string()], VARIANT);
    let guest = Guest::boot("stack", VARIANT);
    let dir = tempfile::tempdir().unwrap();
    let hosts = inventory(dir.path(), &guest, http_port);

    compose_module_up_noop_recreate_down(&guest, &hosts, dir.path());
    site_deploys_the_stack_and_then_changes_nothing(&guest, &hosts);
    lab_script("serve.sh", &["--stop", &http_port.to_string()], VARIANT);
}
