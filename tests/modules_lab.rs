//! System modules on a real Debian 13 guest (qemu, TCG), never on this machine: sysctl,
//! hostname, service_facts, modprobe, mount, reboot and wait_for_connection change or read
//! the system they run on. Changed then ok, and `--check` changes nothing (a snapshot of
//! what the module touches, before and after).
//!
//! ansible-playbook, the oracle elsewhere, needs Python on the target and the lab guest has
//! none on purpose; so the expected results here are ansible-core 2.19's, community.general's
//! and ansible.posix's as their documentation and source give them (quoted per case), checked
//! against what the guest itself reports through plain ssh.
//!
//! One guest serves every case, in sequence, from one `#[test]`; the reboot comes last.

mod common;

use std::path::Path;
use std::process::Command;

use common::Run;
use common::guest::Guest;

fn bramble(dir: &Path, playbook: &str, text: &str, extra: &[&str]) -> Run {
    std::fs::write(dir.join(playbook), text).expect("playbook");
    let output = Command::new(env!("CARGO_BIN_EXE_bramble"))
        .current_dir(dir)
        .args(["run", playbook, "-i", "hosts"])
        .args(extra)
        .output()
        .expect("bramble");
    Run::from(output)
}

const SYSCTL_HOSTNAME: &str = r#"
- hosts: all
  gather_facts: false
  become: true
  tasks:
    - ansible.posix.sysctl:
        name: vm.swappiness
        value: "{{ swappiness }}"
        sysctl_file: /etc/sysctl.d/90-bramble.conf
        sysctl_set: true
    - hostname: { name: "{{ new_name }}" }
"#;

fn sysctl_and_hostname(guest: &Guest, dir: &Path) {
    eprintln!("modules_lab: sysctl and hostname");
    let vars = |swappiness: &str, name: &str| format!("swappiness={swappiness} new_name={name}");
    let first = bramble(dir, "sysctl.yml", SYSCTL_HOSTNAME, &["-e", &vars("33", "bramblelab")]);
    first.success();
    assert_eq!(first.changed("lab1"), 2, "{}", first.stdout);
    assert_eq!(guest.ssh("cat /proc/sys/vm/swappiness"), "33");
    assert_eq!(guest.ssh("cat /etc/sysctl.d/90-bramble.conf"), "vm.swappiness=33");
    assert_eq!(guest.ssh("hostname; cat /etc/hostname"), "bramblelab\nbramblelab");

    let second = bramble(dir, "sysctl.yml", SYSCTL_HOSTNAME, &["-e", &vars("33", "bramblelab")]);
    second.success();
    assert_eq!(second.changed("lab1"), 0, "{}", second.stdout);

    let checked =
        bramble(dir, "sysctl.yml", SYSCTL_HOSTNAME, &["-e", &vars("44", "otherlab"), "--check"]);
    checked.success();
    assert_eq!(checked.changed("lab1"), 2, "{}", checked.stdout);
    assert_eq!(guest.ssh("cat /proc/sys/vm/swappiness; hostname"), "33\nbramblelab");
}

/// The services, written on the controller as JSON for the test to read.
const SERVICE_FACTS: &str = r#"
- hosts: all
  gather_facts: false
  tasks:
    - service_facts:
      register: found
    - assert:
        that:
          - not found.changed
          - ansible_facts.services['ssh.service'].state == 'running'
          - ansible_facts.services['ssh.service'].status == 'enabled'
          - ansible_facts.services['ssh.service'].source == 'systemd'
    - copy:
        content: "{{ ansible_facts.services | to_json }}"
        dest: "{{ playbook_dir }}/services.json"
      delegate_to: localhost
"#;

/// ansible-core 2.19's service_facts on systemd (modules/service_facts.py): every unit of
/// `systemctl list-units --type service --all` with state `running` when its SUB column is
/// running (else `stopped`) and status its ACTIVE column unless a column says not-found,
/// masked or failed; then unit files not listed there, with their ActiveState; and the
/// unit-file state as status for the rest. Checked here against the guest's own systemctl.
fn service_facts(guest: &Guest, dir: &Path) {
    eprintln!("modules_lab: service_facts");
    bramble(dir, "services.yml", SERVICE_FACTS, &[]).success();
    let text = std::fs::read_to_string(dir.join("services.json")).expect("services.json");
    let services: serde_json::Value = serde_json::from_str(&text).expect("json");
    let units =
        guest.ssh("systemctl list-units --no-pager --type service --all --plain --no-legend");
    let mut checked = 0;
    for line in units.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let entry = &services[fields[0]];
        let state = if fields[3] == "running" { "running" } else { "stopped" };
        assert_eq!(entry["state"], state, "{line}: {entry}");
        assert_eq!(entry["source"], "systemd", "{line}");
        checked += 1;
    }
    assert!(checked > 10, "only {checked} units listed:\n{units}");
    let files = guest.ssh("systemctl list-unit-files --no-pager --type service --no-legend");
    for line in files.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let entry = &services[fields[0]];
        assert!(entry.is_object(), "{} missing", fields[0]);
        if !["not-found", "masked", "failed"].contains(&entry["status"].as_str().unwrap_or("")) {
            assert_eq!(entry["status"], fields[1], "{line}");
        }
    }
    // In check mode nothing differs for a module that only reads.
    bramble(dir, "services.yml", SERVICE_FACTS, &["--check"]).success();
}

const MODPROBE: &str = r#"
- hosts: all
  gather_facts: false
  become: true
  tasks:
    - community.general.modprobe:
        name: dummy
        state: "{{ state }}"
        params: "{{ params }}"
        persistent: "{{ state }}"
      register: probed
    - assert:
        that:
          - probed.name == 'dummy'
          - probed.state == state
          - probed.params == params
"#;

fn modprobe_snapshot(guest: &Guest) -> String {
    guest.root(
        "grep -c '^dummy ' /proc/modules; ip -o link show type dummy | wc -l; \
         cat /etc/modules-load.d/dummy.conf /etc/modprobe.d/dummy.conf 2>&1; true",
    )
}

/// community.general.modprobe: result keys changed, name, params, state; persistent present
/// writes /etc/modules-load.d/NAME.conf and /etc/modprobe.d/NAME.conf, absent comments the
/// lines out; check mode runs `modprobe -n` and reports the change.
fn modprobe(guest: &Guest, dir: &Path) {
    eprintln!("modules_lab: modprobe");
    let present = ["-e", "state=present", "-e", "params=numdummies=2"];
    let first = bramble(dir, "modprobe.yml", MODPROBE, &present);
    first.success();
    assert_eq!(first.changed("lab1"), 1, "{}", first.stdout);
    assert_eq!(
        modprobe_snapshot(guest),
        "1\n2\ndummy\noptions dummy numdummies=2",
        "{}",
        first.stdout
    );
    let second = bramble(dir, "modprobe.yml", MODPROBE, &present);
    second.success();
    assert_eq!(second.changed("lab1"), 0, "{}", second.stdout);

    let before = modprobe_snapshot(guest);
    let absent = ["-e", "state=absent", "-e", "params="];
    let checked = bramble(dir, "modprobe.yml", MODPROBE, &[&absent[..], &["--check"]].concat());
    checked.success();
    assert_eq!(checked.changed("lab1"), 1, "{}", checked.stdout);
    assert_eq!(modprobe_snapshot(guest), before);

    let removed = bramble(dir, "modprobe.yml", MODPROBE, &absent);
    removed.success();
    assert_eq!(removed.changed("lab1"), 1, "{}", removed.stdout);
    assert!(modprobe_snapshot(guest).starts_with("0\n0\n"), "{}", modprobe_snapshot(guest));
    assert_eq!(guest.root("cat /etc/modules-load.d/dummy.conf"), "#dummy");
    assert_eq!(guest.root("cat /etc/modprobe.d/dummy.conf"), "#options dummy numdummies=2");
    let again = bramble(dir, "modprobe.yml", MODPROBE, &absent);
    again.success();
    assert_eq!(again.changed("lab1"), 0, "{}", again.stdout);
}

const MOUNT: &str = r#"
- hosts: all
  gather_facts: false
  become: true
  tasks:
    - ansible.posix.mount:
        path: /mnt/bramble/tmp
        src: tmpfs
        fstype: tmpfs
        opts: "{{ opts | default('size=8m') }}"
        state: "{{ state }}"
      register: mounted
    - assert:
        that:
          - mounted.name == '/mnt/bramble/tmp'
          - mounted.fstab == '/etc/fstab'
          - mounted.dump == '0' and mounted.passno == '0'
          - mounted.boot == 'yes'
          - mounted.backup_file == ''
    - ansible.posix.mount:
        path: /mnt/bramble/image
        src: /root/bramble.img
        fstype: ext4
        state: "{{ state }}"
"#;

fn mount_snapshot(guest: &Guest) -> String {
    guest.root(
        "grep bramble /etc/fstab; findmnt -rn -o TARGET,FSTYPE,OPTIONS | grep bramble; \
         ls -d /mnt/bramble/* 2>/dev/null; true",
    )
}

/// ansible.posix.mount: result keys changed, name, src, fstype, opts, dump, passno, fstab,
/// boot ("yes"/"no") and backup_file; mounted writes fstab and mounts (a changed line
/// remounts), unmounted only unmounts, absent removes the line, unmounts and removes the
/// mount point.
fn mount(guest: &Guest, dir: &Path) {
    eprintln!("modules_lab: mount");
    // The guest has no mkfs; the image is made here and copied over.
    let image = dir.join("bramble.img");
    std::fs::File::create(&image).and_then(|file| file.set_len(16 << 20)).expect("image");
    let made = Command::new("mkfs.ext4").arg("-qF").arg(&image).status().expect("mkfs.ext4");
    assert!(made.success(), "mkfs.ext4 failed");
    guest.upload(&image, "/root/bramble.img");
    let mounted = ["-e", "state=mounted"];
    let first = bramble(dir, "mount.yml", MOUNT, &mounted);
    first.success();
    assert_eq!(first.changed("lab1"), 2, "{}", first.stdout);
    let snapshot = mount_snapshot(guest);
    assert!(snapshot.contains("tmpfs /mnt/bramble/tmp tmpfs size=8m 0 0"), "{snapshot}");
    assert!(snapshot.contains("/root/bramble.img /mnt/bramble/image ext4 defaults 0 0"));
    assert!(snapshot.contains("/mnt/bramble/tmp tmpfs rw,relatime,size=8192k"), "{snapshot}");
    assert!(snapshot.contains("/mnt/bramble/image ext4"), "{snapshot}");
    let second = bramble(dir, "mount.yml", MOUNT, &mounted);
    second.success();
    assert_eq!(second.changed("lab1"), 0, "{}", second.stdout);

    // A changed option rewrites the line and remounts.
    let bigger = bramble(dir, "mount.yml", MOUNT, &["-e", "state=mounted", "-e", "opts=size=16m"]);
    bigger.success();
    assert_eq!(bigger.changed("lab1"), 1, "{}", bigger.stdout);
    assert!(mount_snapshot(guest).contains("size=16384k"), "{}", mount_snapshot(guest));

    let before = mount_snapshot(guest);
    let checked = bramble(dir, "mount.yml", MOUNT, &["-e", "state=absent", "--check"]);
    checked.success();
    assert_eq!(checked.changed("lab1"), 2, "{}", checked.stdout);
    assert_eq!(mount_snapshot(guest), before);

    let unmounted = bramble(dir, "mount.yml", MOUNT, &["-e", "state=unmounted"]);
    unmounted.success();
    assert_eq!(unmounted.changed("lab1"), 2, "{}", unmounted.stdout);
    let snapshot = mount_snapshot(guest);
    assert!(!snapshot.contains(" tmpfs rw"), "{snapshot}");
    assert!(snapshot.contains("tmpfs /mnt/bramble/tmp tmpfs size=16m 0 0"), "{snapshot}");

    let absent = bramble(dir, "mount.yml", MOUNT, &["-e", "state=absent"]);
    absent.success();
    assert_eq!(absent.changed("lab1"), 2, "{}", absent.stdout);
    assert_eq!(mount_snapshot(guest), "");
    let again = bramble(dir, "mount.yml", MOUNT, &["-e", "state=absent"]);
    again.success();
    assert_eq!(again.changed("lab1"), 0, "{}", again.stdout);
}

/// wait_for_connection after the host dropped every session of `pi`: the task must open a
/// new connection, and the task after it must run on that.
const RECONNECT: &str = r#"
- hosts: all
  gather_facts: false
  tasks:
    - shell: "(sleep 2; pkill -KILL -f '^sshd[^ ]*: pi') >/dev/null 2>&1 &"
      become: true
    - wait_for_connection: { delay: 5, timeout: 60 }
    - command: whoami
      register: who
    - assert: { that: [who.stdout == 'pi'] }
"#;

/// ansible-core's reboot action: result changed, elapsed (whole seconds) and rebooted;
/// check mode reports changed and rebooted without rebooting.
const REBOOT: &str = r#"
- hosts: all
  gather_facts: false
  become: true
  tasks:
    - reboot: { reboot_timeout: 1200, connect_timeout: 15, msg: "bramble's reboot" }
      register: rebooted
    - command: cat /proc/sys/kernel/random/boot_id
      register: boot
      changed_when: false
    - assert:
        that:
          - rebooted.changed and rebooted.rebooted
          - rebooted.elapsed is number
    - copy:
        content: "{{ boot.stdout }}"
        dest: "{{ playbook_dir }}/boot_id"
      delegate_to: localhost
      become: false
"#;

const REBOOT_CHECK: &str = r#"
- hosts: all
  gather_facts: false
  become: true
  tasks:
    - reboot:
      register: rebooted
    - assert: { that: [rebooted.changed, rebooted.rebooted, rebooted.elapsed == 0] }
"#;

fn reconnect_and_reboot(guest: &Guest, dir: &Path) {
    eprintln!("modules_lab: wait_for_connection after the sessions were killed");
    bramble(dir, "reconnect.yml", RECONNECT, &[]).success();

    eprintln!("modules_lab: reboot");
    let boot_id = || guest.ssh("cat /proc/sys/kernel/random/boot_id");
    let before = boot_id();
    let checked = bramble(dir, "reboot_check.yml", REBOOT_CHECK, &["--check"]);
    checked.success();
    assert_eq!(boot_id(), before, "check mode rebooted");

    let started = std::time::Instant::now();
    let rebooted = bramble(dir, "reboot.yml", REBOOT, &[]);
    rebooted.success();
    // The reboot (always changed, as in ansible-core) and the copy of its boot id.
    assert_eq!(rebooted.changed("lab1"), 2, "{}", rebooted.stdout);
    let after = std::fs::read_to_string(dir.join("boot_id")).expect("boot_id");
    assert_ne!(after.trim(), before);
    assert_eq!(boot_id(), after.trim());
    eprintln!("timing: reboot took {:.0} s", started.elapsed().as_secs_f64());
}

#[test]
fn system_modules_on_a_guest() {
    let guest = Guest::boot("modules", None);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hosts"), guest.host_line("lab1") + "\n").unwrap();

    sysctl_and_hostname(&guest, dir.path());
    service_facts(&guest, dir.path());
    modprobe(&guest, dir.path());
    mount(&guest, dir.path());
    reconnect_and_reboot(&guest, dir.path());
}
