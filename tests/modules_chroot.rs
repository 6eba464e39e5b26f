//! apt, package, package_facts, apt_repository, deb822_repository, apt_key, timezone and cron
//! against ansible-core on the same inputs: two chroots of one Debian trixie root
//! (ansible-playbook reaches its copy with community.general.chroot, bramble its own with
//! `ansible_connection=chroot`), a signed local repository of tiny packages served on
//! 127.0.0.1, and the same steps run on both. Each step runs twice (changed, then ok), results
//! are compared key by key, and the end states (dpkg's view of every package, apt's manual
//! marks, sources and keyrings, root's crontab and /etc/cron.d, the time zone files) must be
//! the same. Nothing reaches the internet and this machine's own packages are never touched.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{Test, free_port, wait_for_port};

/// The two roots, the repository and its HTTP server.
struct World {
    dir: tempfile::TempDir,
    port: u16,
    server: Child,
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/packages").join(name)
}

fn sh(command: &str) -> String {
    let output = Command::new("sh").args(["-c", command]).output().expect("sh");
    assert!(
        output.status.success(),
        "`{command}` failed\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

impl World {
    fn new() -> World {
        let tarball = sh(&script("root.sh").display().to_string()).trim().to_string();
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path();
        sh(&format!("{} {}", script("repo.sh").display(), path.display()));
        let port = free_port();
        for root in ["oracle", "target"] {
            let root = path.join(root);
            std::fs::create_dir(&root).expect("root");
            sh(&format!(
                "zstd -q -dc {tarball} | tar --numeric-owner -xpf - -C {}",
                root.display()
            ));
            std::fs::create_dir_all(root.join("etc/apt/keyrings")).expect("keyrings");
            std::fs::copy(path.join("key.gpg"), root.join("etc/apt/keyrings/bramble-tests.gpg"))
                .expect("key");
            std::fs::write(
                root.join("etc/apt/sources.list.d/bramble-tests.list"),
                format!(
                    "deb [signed-by=/etc/apt/keyrings/bramble-tests.gpg] http://127.0.0.1:{port}/ ./\n"
                ),
            )
            .expect("sources");
        }
        // ansible-core's deb822_repository needs python-debian on the target; the root
        // has none, so the oracle's copy gets the controller's (pure Python, with chardet).
        for package in ["debian", "chardet"] {
            let source = Path::new("/usr/lib/python3/dist-packages").join(package);
            assert!(source.is_dir(), "{} is missing: install python3-debian", source.display());
            sh(&format!(
                "cp -r {} {}",
                source.display(),
                path.join("oracle/usr/lib/python3/dist-packages").display()
            ));
        }
        // The armored key is served too, for signed_by and apt_key as a URL.
        std::fs::copy(path.join("key.asc"), path.join("repo/key.asc")).expect("key.asc");
        let server = Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1", "--directory"])
            .arg(path.join("repo"))
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m http.server");
        wait_for_port(port);
        World { dir, port, server }
    }

    fn root(&self, side: &str) -> PathBuf {
        self.dir.path().join(side)
    }

    fn inventory(&self) -> String {
        format!(
            "oracle ansible_connection=community.general.chroot ansible_host={} \
             ansible_python_interpreter=/usr/bin/python3\n\
             target ansible_connection=chroot ansible_host={}\n",
            self.root("oracle").display(),
            self.root("target").display()
        )
    }

    /// What dpkg, apt-mark and cron see inside one root, to compare end states. crontab's
    /// own header names a temp file and a time, so it is left out.
    fn state(&self, side: &str) -> String {
        sh(&format!(
            "chroot {} sh -c \"dpkg-query -W -f='\\${{Package}} \\${{Version}} \\${{db:Status-Abbrev}}\\n'; \
             echo manual:; apt-mark showmanual | grep bramble; echo crontab:; \
             crontab -l 2>/dev/null | grep -v '^# [D(]'; echo cron.d:; \
             ls -l /etc/cron.d | grep -v e2scrub; cat /etc/cron.d/bramble* 2>/dev/null; \
             echo sources:; stat -c '%n %a %s' /etc/apt/sources.list* /etc/apt/sources.list.d/*; \
             cat /etc/apt/sources.list.d/*; echo keyrings:; \
             stat -c '%n %a %s' /etc/apt/keyrings/*; sha256sum /etc/apt/keyrings/*; \
             echo timezone:; readlink /etc/localtime; cat /etc/timezone /etc/default/rcS \
             /var/log/bramble-hwclock 2>/dev/null; true\"",
            self.root(side).display()
        ))
    }

    /// Runs `tasks` (YAML, indented for a play's task list) with both tools, each on its
    /// own root, and returns the registered results of every task, oracle's then target's.
    fn run(&self, tasks: &str, extra: &[&str]) -> (Vec<Value>, Vec<Value>) {
        let playbook = format!("- hosts: HOST\n  gather_facts: false\n  tasks:\n{tasks}");
        let mut results = Vec::new();
        for (side, runner) in [("oracle", true), ("target", false)] {
            let mut test = Test::new()
                .file("site.yml", &playbook.replace("HOST", side))
                .file("hosts", &self.inventory())
                .arg("site.yml")
                .arg("-i")
                .arg("hosts");
            for argument in extra {
                test = test.arg(argument);
            }
            let run = if runner { test.ansible() } else { test.bramble() };
            assert!(
                run.code == 0 || run.code == 2,
                "{side} failed to run\n{}\n{}",
                run.stdout,
                run.stderr
            );
            results.push(registered(&run.stdout));
        }
        let target = results.pop().unwrap_or_default();
        let oracle = results.pop().unwrap_or_default();
        assert_eq!(oracle.len(), target.len(), "not as many results\n{oracle:#?}\n{target:#?}");
        (oracle, target)
    }
}

/// The variable of every `debug: var=…` in ansible-playbook's default output.
fn registered(stdout: &str) -> Vec<Value> {
    let mut found = Vec::new();
    let mut block: Option<String> = None;
    for line in stdout.lines() {
        if let Some(text) = block.as_mut() {
            text.push_str(line);
            text.push('\n');
            if line == "}" {
                let value: Value = serde_json::from_str(text).expect("debug output is JSON");
                let shown = value.as_object().and_then(|map| map.values().next().cloned());
                found.push(shown.unwrap_or_default());
                block = None;
            }
        } else if line.starts_with("ok: [") && line.ends_with("=> {") {
            block = Some("{\n".into());
        }
    }
    found
}

/// A step's task twice (the second run must change nothing), each result shown.
fn twice(module: &str, args: &str) -> String {
    let task = format!(
        "    - {module}: {args}\n      register: r\n      ignore_errors: true\n    - debug: var=r\n"
    );
    task.repeat(2)
}

fn once(module: &str, args: &str) -> String {
    twice(module, args)[..twice(module, args).len() / 2].to_string()
}

/// Keys whose values depend on the run (apt's download speeds, clocks) or on how the
/// command line was quoted; they must be present on both sides, with any value.
const VOLATILE: &[&str] = &[
    "stdout",
    "stdout_lines",
    "stderr",
    "stderr_lines",
    "cache_update_time",
    "diff",
    "msg",
    "backup_file",
];

/// bramble's `register` leaves out `failed: false`, which ansible-core 2.19 adds to every
/// registered result; that is the executor's business, so `failed` is compared as a flag.
/// `exception` is Python's traceback, which bramble has none of.
fn compare(step: &str, oracle: &Value, target: &Value) {
    let failed = |value: &Value| value["failed"].as_bool().unwrap_or(false);
    assert_eq!(failed(oracle), failed(target), "{step}: failed\n{oracle:#}\n{target:#}");
    let keys = |value: &Value| -> Vec<String> {
        let mut keys: Vec<String> = value
            .as_object()
            .map(|map| {
                map.keys()
                    .filter(|key| !["warnings", "failed", "exception"].contains(&key.as_str()))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        keys.sort();
        keys
    };
    assert_eq!(keys(oracle), keys(target), "{step}: result keys\n{oracle:#}\n{target:#}");
    for key in keys(oracle) {
        if !VOLATILE.contains(&key.as_str()) {
            assert_eq!(oracle[&key], target[&key], "{step}: `{key}`\n{oracle:#}\n{target:#}");
        }
    }
}

/// Runs the step twice on both sides: the same results, changed then ok, the same end state.
fn step(world: &World, name: &str, module: &str, args: &str) -> (Vec<Value>, Vec<Value>) {
    let (oracle, target) = world.run(&twice(module, args), &[]);
    for (oracle, target) in oracle.iter().zip(&target) {
        compare(name, oracle, target);
    }
    assert_eq!(target[0]["changed"], true, "{name}: first run\n{:#}", target[0]);
    assert_eq!(target[1]["changed"], false, "{name}: second run\n{:#}", target[1]);
    assert_eq!(world.state("oracle"), world.state("target"), "{name}: end state");
    (oracle, target)
}

/// Runs the step once under --check: the same results, and nothing changes on either side.
fn check_mode(world: &World, name: &str, module: &str, args: &str) {
    let before = (world.state("oracle"), world.state("target"));
    let (oracle, target) = world.run(&once(module, args), &["--check"]);
    compare(name, &oracle[0], &target[0]);
    assert_eq!(target[0]["changed"], true, "{name}: would change\n{:#}", target[0]);
    assert_eq!((world.state("oracle"), world.state("target")), before, "{name}: --check changed");
}

#[test]
fn apt_matches_ansible_on_a_local_repository() {
    let world = World::new();

    step(&world, "update_cache", "apt", "{update_cache: true}");
    let (oracle, target) =
        world.run(&once("apt", "{update_cache: true, cache_valid_time: 3600}"), &[]);
    compare("cache_valid_time", &oracle[0], &target[0]);
    assert_eq!(target[0]["changed"], false);
    check_mode(&world, "check install", "apt", "{name: bramble-hello=1.0-1}");
    step(&world, "pinned version", "apt", "{name: bramble-hello=1.0-1}");
    check_mode(&world, "check latest", "apt", "{name: bramble-hello, state: latest}");
    step(&world, "latest", "apt", "{name: bramble-hello, state: latest}");
    step(&world, "downgrade", "apt", "{name: 'bramble-hello=1.0*', allow_downgrade: true}");
    step(&world, "dependencies", "apt", "{name: [bramble-tool], install_recommends: false}");
    step(
        &world,
        "remove with autoremove",
        "apt",
        "{name: bramble-tool, state: absent, autoremove: true}",
    );
    step(&world, "upgrade dist", "apt", "{upgrade: dist}");
    step(&world, "purge", "apt", "{name: bramble-hello, state: absent, purge: true}");
    let url = format!("http://127.0.0.1:{}/bramble-hello_1.0-1_all.deb", world.port);
    step(&world, "deb from a URL", "apt", &format!("{{deb: '{url}'}}"));
    step(&world, "package", "package", "{name: bramble-tool, state: present}");

    let repo = format!(
        "deb [signed-by=/etc/apt/keyrings/bramble-tests.gpg] http://127.0.0.1:{} ./",
        world.port
    );
    let named = format!("{{repo: '{repo}', filename: bramble-copy, mode: '0600'}}");
    check_mode(&world, "check a repository", "apt_repository", &named);
    step(&world, "repository", "apt_repository", &named);
    let gone = format!("{{repo: '{repo}', filename: bramble-copy, state: absent}}");
    step(&world, "repository removed", "apt_repository", &gone);
    let suggested = format!("{{repo: '{repo}', update_cache: false}}");
    step(&world, "repository in a file named after the host", "apt_repository", &suggested);
    // ansible-core fails here with Python's "list index out of range"; bramble names the
    // problem instead, and neither writes anything.
    let before = (world.state("oracle"), world.state("target"));
    let (oracle, target) = world.run(&once("apt_repository", "{repo: 'deb'}"), &[]);
    assert_eq!(
        (oracle[0]["failed"].as_bool(), target[0]["failed"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(target[0]["msg"], "Invalid repository string: deb (expected a URI and a suite)");
    assert_eq!((world.state("oracle"), world.state("target")), before);

    // A name apt does not know fails the same way on both sides.
    let (oracle, target) = world.run(&once("apt", "{name: bramble-nothing}"), &[]);
    compare("unknown package", &oracle[0], &target[0]);
    assert_eq!(target[0]["msg"], "No package matching 'bramble-nothing' is available");
    assert_eq!(oracle[0]["msg"], target[0]["msg"]);

    // package_facts sees the same packages with the same details.
    let facts = "    - package_facts: {}\n    - debug: var=ansible_facts.packages\n";
    let (oracle, target) = world.run(facts, &[]);
    let names = |value: &Value| value.as_object().map(|map| map.len()).unwrap_or(0);
    assert!(names(&target[0]) > 50, "package_facts found too few packages\n{:#}", target[0]);
    assert_eq!(names(&oracle[0]), names(&target[0]));
    for name in ["bramble-hello", "bramble-tool", "bramble-dep", "bash", "python3-apt"] {
        assert_eq!(oracle[0][name], target[0][name], "package_facts of {name}");
    }
}

/// apt-get waits for dpkg's lock instead of failing while another apt run holds it.
#[test]
fn apt_waits_for_the_dpkg_lock() {
    let world = World::new();
    let holder = Command::new("chroot")
        .arg(world.root("target"))
        .args([
            "python3",
            "-c",
            "import fcntl, time; f = open('/var/lib/dpkg/lock-frontend', 'w'); \
             fcntl.lockf(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(6)",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("lock holder");
    let mut holder = holder;
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("lock holder output");
    assert_eq!(line.trim(), "locked");

    let started = Instant::now();
    let test = Test::new()
        .file(
            "site.yml",
            "- hosts: target\n  gather_facts: false\n  tasks:\n    - apt: {name: bramble-dep, update_cache: true}\n",
        )
        .file("hosts", &world.inventory())
        .arg("site.yml")
        .arg("-i")
        .arg("hosts");
    test.bramble().success();
    assert!(started.elapsed() >= Duration::from_secs(4), "apt did not wait for the lock");
    let _ = holder.wait();
    assert!(world.state("target").contains("bramble-dep 1.0-1 ii"));
}

#[test]
fn cron_matches_ansible() {
    let world = World::new();
    let backup = "{name: backup, minute: '0', hour: '1', job: 'tar czf /tmp/etc.tgz /etc'}";
    check_mode(&world, "check a new job", "cron", backup);
    step(&world, "new job", "cron", backup);
    step(
        &world,
        "moved job",
        "cron",
        "{name: backup, hour: '2', job: 'tar czf /tmp/etc.tgz /etc', backup: true}",
    );
    step(&world, "variable", "cron", "{name: MAILTO, env: true, job: root}");
    step(
        &world,
        "variable after",
        "cron",
        "{name: SHELL, env: true, job: /bin/sh, insertafter: MAILTO}",
    );
    step(&world, "disabled", "cron", "{name: sync, weekday: '1-5', job: sync, disabled: true}");
    let file = "{name: daily, special_time: daily, user: root, job: /usr/local/bin/d, cron_file: bramble-tests}";
    step(&world, "cron file", "cron", file);
    step(
        &world,
        "second job in the file",
        "cron",
        "{name: hourly, minute: '5', user: root, job: /bin/true, cron_file: bramble-tests}",
    );
    step(
        &world,
        "job out of the file",
        "cron",
        "{name: hourly, state: absent, cron_file: bramble-tests}",
    );
    check_mode(
        &world,
        "check removing the file",
        "cron",
        "{name: daily, state: absent, cron_file: bramble-tests}",
    );
    step(&world, "file removed", "cron", "{name: daily, state: absent, cron_file: bramble-tests}");
    step(&world, "job removed", "cron", "{name: backup, state: absent}");

    let (oracle, target) =
        world.run(&once("cron", "{name: x, cron_file: bramble-tests, job: 'true'}"), &[]);
    compare("cron_file without user", &oracle[0], &target[0]);
    assert_eq!(
        target[0]["msg"],
        "To use cron_file=... parameter you must specify user=... as well"
    );
}

/// deb822_repository (key by URL, by path and inline; removal; apt reading what it wrote),
/// apt_key on a Debian without apt-key, and timezone in a chroot with no systemd running.
#[test]
fn deb822_apt_key_and_timezone_match_ansible() {
    let world = World::new();
    let base = format!("http://127.0.0.1:{}/", world.port);
    for side in ["oracle", "target"] {
        let one_line = world.root(side).join("etc/apt/sources.list.d/bramble-tests.list");
        std::fs::remove_file(one_line).expect("the one-line source");
    }

    // A key by URL: fetched into /etc/apt/keyrings, and apt trusts what it signs.
    let by_url = format!(
        "{{name: 'Bramble_URL repo', uris: '{base}', suites: './', signed_by: '{base}key.asc', \
         architectures: [amd64], enabled: true, by_hash: false}}"
    );
    check_mode(&world, "check a deb822 repository", "deb822_repository", &by_url);
    let (_, target) = step(&world, "deb822 with a key by URL", "deb822_repository", &by_url);
    assert_eq!(target[0]["key_filename"], "/etc/apt/keyrings/bramble-url-repo.asc");
    assert_eq!(target[0]["dest"], "/etc/apt/sources.list.d/bramble-url-repo.sources");
    let (oracle, target) = world.run(&once("apt", "{update_cache: true}"), &[]);
    compare("update_cache through the deb822 source", &oracle[0], &target[0]);
    assert_ne!(target[0]["failed"], true, "apt update failed\n{:#}", target[0]);
    step(&world, "a package from the deb822 source", "apt", "{name: bramble-dep}");
    let gone = "{name: 'Bramble_URL repo', state: absent}";
    check_mode(&world, "check removing a deb822 repository", "deb822_repository", gone);
    step(&world, "deb822 removed with its key", "deb822_repository", gone);

    // Every field, disabled (apt never reads it), to pin each field's name and form.
    let every = format!(
        "{{name: Every field, uris: ['{base}', 'http://127.0.0.2/'], suites: ['./'], \
         components: [main, contrib], types: [deb, deb-src], architectures: 'amd64,arm64', \
         languages: [en, de], targets: [Packages], inrelease_path: InRelease, \
         date_max_future: 600, allow_downgrade_to_insecure: false, allow_insecure: no, \
         allow_weak: false, by_hash: true, check_date: true, check_valid_until: false, \
         pdiffs: false, trusted: false, enabled: false, mode: '0640'}}"
    );
    let (_, target) = step(&world, "deb822 with every field", "deb822_repository", &every);
    assert!(target[0]["repo"].as_str().unwrap_or_default().contains("Allow-Weak: no\n"));
    step(&world, "every field removed", "deb822_repository", "{name: Every field, state: absent}");

    // A keyring already on the host is named as it is; -D shows the same.
    let by_path = format!(
        "{{name: by-path, uris: ['{base}'], suites: ['./'], types: deb, \
         signed_by: /etc/apt/keyrings/bramble-tests.gpg, mode: '0600'}}"
    );
    let (oracle, target) = world.run(&once("deb822_repository", &by_path), &["--diff"]);
    compare("deb822 with a key by path", &oracle[0], &target[0]);
    assert_eq!(target[0]["key_filename"], "/etc/apt/keyrings/bramble-tests.gpg");
    assert_eq!(world.state("oracle"), world.state("target"), "deb822 by path: end state");
    step(&world, "by-path removed", "deb822_repository", "{name: by-path, state: absent}");

    // An inline armored key goes into the stanza on continuation lines.
    let key = world.dir.path().join("key.asc");
    let inline = format!(
        "{{name: inline, uris: '{base}', suites: './', \
         signed_by: \"{{{{ lookup('file', '{}') }}}}\"}}",
        key.display()
    );
    step(&world, "deb822 with an inline key", "deb822_repository", &inline);
    let (oracle, target) = world.run(&once("apt", "{update_cache: true}"), &[]);
    compare("update_cache with the inline key", &oracle[0], &target[0]);
    assert_ne!(target[0]["failed"], true, "apt update failed\n{:#}", target[0]);

    // Debian 13 has no apt-key: both fail and name it.
    let (oracle, target) =
        world.run(&once("apt_key", &format!("{{url: '{base}key.asc', keyring: /k.gpg}}")), &[]);
    compare("apt_key without apt-key", &oracle[0], &target[0]);
    let message = target[0]["msg"].as_str().unwrap_or_default();
    assert!(message.starts_with("Failed to find required executable \"apt-key\" in paths: "));

    // No systemd runs in a chroot, so both go Debian's way, which needs hwclock: absent from
    // this root, then a stand-in that records its arguments (the real one would set this
    // machine's clock).
    let zone = "{name: Europe/Paris, hwclock: UTC}";
    let (oracle, target) = world.run(&once("community.general.timezone", zone), &[]);
    compare("timezone without hwclock", &oracle[0], &target[0]);
    let message = target[0]["msg"].as_str().unwrap_or_default();
    assert!(message.starts_with("Failed to find required executable \"hwclock\""), "{message}");
    for side in ["oracle", "target"] {
        let hwclock = world.root(side).join("usr/sbin/hwclock");
        std::fs::write(&hwclock, "#!/bin/sh\necho \"$@\" >>/var/log/bramble-hwclock\n")
            .expect("hwclock");
        sh(&format!("chmod 0755 {}", hwclock.display()));
    }
    check_mode(&world, "check a time zone", "community.general.timezone", zone);
    let (oracle, target) = step(&world, "time zone", "community.general.timezone", zone);
    for (oracle, target) in oracle.iter().zip(&target) {
        assert_eq!((&oracle["msg"], &oracle["diff"]), (&target["msg"], &target["diff"]));
    }
    let tokyo = "{name: Asia/Tokyo}";
    let (oracle, target) = world.run(&once("timezone", tokyo), &["--diff", "--check"]);
    compare("time zone under -C -D", &oracle[0], &target[0]);
    assert_eq!(oracle[0]["diff"], target[0]["diff"]);
    let (oracle, target) = world.run(&once("timezone", "{name: Nowhere/Land}"), &[]);
    compare("unknown time zone", &oracle[0], &target[0]);
    assert_eq!(oracle[0]["msg"], target[0]["msg"]);
    assert_eq!(world.state("oracle"), world.state("target"), "time zones: end state");
}

/// apt_key where apt-key exists (Debian 12, as this machine): both tools on this machine
/// through a local connection, each on its own keyring file in a temporary directory, so no
/// key of this machine's apt is ever read or written.
#[test]
fn apt_key_matches_ansible_where_apt_key_exists() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path();
    sh(&format!(
        "export GNUPGHOME={0}/gnupg; mkdir -m 0700 $GNUPGHOME; \
         gpg --batch --quiet --passphrase '' --quick-gen-key \
         'bramble apt_key tests <tests@bramble.invalid>' ed25519 sign never; \
         gpg --batch --armor --export >{0}/key.asc",
        path.display()
    ));
    let listing = sh(&format!("gpg --with-colons {}/key.asc 2>/dev/null", path.display()));
    let fingerprint = listing.lines().find_map(|line| line.split(':').nth(4)).unwrap_or_default();
    let inventory = format!(
        "oracle ansible_connection=local ansible_python_interpreter=/usr/bin/python3 \
         keyring={0}/oracle.gpg\ntarget ansible_connection=local keyring={0}/target.gpg\n",
        path.display()
    );
    let both = |tasks: &str, extra: &[&str]| -> (Vec<Value>, Vec<Value>) {
        let playbook = format!("- hosts: HOST\n  gather_facts: false\n  tasks:\n{tasks}");
        let mut results = Vec::new();
        for side in ["oracle", "target"] {
            let mut test = Test::new()
                .file("site.yml", &playbook.replace("HOST", side))
                .file("hosts", &inventory)
                .arg("site.yml")
                .arg("-i")
                .arg("hosts");
            for argument in extra {
                test = test.arg(argument);
            }
            let run = if side == "oracle" { test.ansible() } else { test.bramble() };
            assert!(run.code == 0, "{side} failed to run\n{}\n{}", run.stdout, run.stderr);
            results.push(registered(&run.stdout));
        }
        let target = results.pop().unwrap_or_default();
        (results.pop().unwrap_or_default(), target)
    };
    let keys = |side: &str| {
        let keyring = path.join(format!("{side}.gpg"));
        if !keyring.exists() {
            return String::new();
        }
        sh(&format!(
            "gpg --with-colons --show-keys {} 2>/dev/null | grep ^fpr; true",
            keyring.display()
        ))
    };
    let keyring = "keyring: '{{ keyring }}'";

    if !Path::new("/usr/bin/apt-key").exists() {
        let (oracle, target) =
            both(&once("apt_key", &format!("{{id: {fingerprint}, {keyring}}}")), &[]);
        compare("apt_key without apt-key", &oracle[0], &target[0]);
        assert_eq!(target[0]["failed"], true, "apt-key is missing here\n{:#}", target[0]);
        return;
    }
    let key = path.join("key.asc");
    let steps = [
        ("a key from a file", format!("{{file: '{}', {keyring}}}", key.display())),
        (
            "the same key as data",
            format!("{{data: \"{{{{ lookup('file', '{}') }}}}\", {keyring}}}", key.display()),
        ),
        ("removed by id", format!("{{id: '{fingerprint}', {keyring}, state: absent}}")),
    ];
    for (index, (name, args)) in steps.iter().enumerate() {
        let (oracle, target) = both(&once("apt_key", args), &["--check"]);
        compare(name, &oracle[0], &target[0]);
        let (oracle, target) = both(&twice("apt_key", args), &[]);
        for (oracle, target) in oracle.iter().zip(&target) {
            compare(name, oracle, target);
        }
        // The data step finds the key the file step added.
        assert_eq!(target[0]["changed"], index != 1, "{name}: first run\n{:#}", target[0]);
        assert_eq!(target[1]["changed"], false, "{name}: second run\n{:#}", target[1]);
        assert_eq!(keys("oracle"), keys("target"), "{name}: keyrings");
    }
    assert!(!keys("target").contains(fingerprint), "the key was not removed");
}
