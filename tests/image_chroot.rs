//! The chroot connection through the ordinary executor, on a tiny root made of the host's
//! own shell, and the image commands' `not supported yet` errors.

mod image_support;

use std::path::Path;
use std::process::Command;

use image_support::{bramble, text};

/// A root holding only /bin/sh and the libraries it links.
fn tiny_root(root: &Path) {
    let shell = std::fs::canonicalize("/bin/sh").unwrap();
    let libraries = text(&Command::new("ldd").arg(&shell).output().unwrap().stdout);
    let mut files = vec![shell.to_string_lossy().into_owned()];
    files.extend(
        libraries.split_whitespace().filter(|word| word.starts_with('/')).map(str::to_string),
    );
    for file in files {
        let inside = root.join(file.trim_start_matches('/'));
        std::fs::create_dir_all(inside.parent().unwrap()).unwrap();
        std::fs::copy(&file, &inside).unwrap();
    }
    let bin = root.join("bin/sh");
    if !bin.exists() {
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::os::unix::fs::symlink(&shell, &bin).unwrap();
    }
}

#[test]
fn tasks_run_inside_the_chroot() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    tiny_root(&root);
    let inventory = dir.path().join("hosts.ini");
    std::fs::write(
        &inventory,
        format!("box ansible_connection=chroot ansible_host={}\n", root.display()),
    )
    .unwrap();
    let playbook = dir.path().join("play.yml");
    std::fs::write(
        &playbook,
        "- hosts: all\n  gather_facts: false\n  tasks:\n\
         \x20   - name: Write a file at the chroot's /\n\
         \x20     ansible.builtin.raw: echo inside > /proof-of-chroot\n",
    )
    .unwrap();
    let output = bramble(&["run", &playbook.to_string_lossy(), "-i", &inventory.to_string_lossy()]);
    assert!(output.status.success(), "{}{}", text(&output.stdout), text(&output.stderr));
    assert!(text(&output.stdout).contains("changed: [box]"), "{}", text(&output.stdout));
    assert_eq!(std::fs::read_to_string(root.join("proof-of-chroot")).unwrap(), "inside\n");
    assert!(!Path::new("/proof-of-chroot").exists());
}

#[test]
fn a_root_without_a_shell_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("hosts.ini");
    std::fs::write(
        &inventory,
        format!("box ansible_connection=chroot ansible_host={}\n", dir.path().display()),
    )
    .unwrap();
    let playbook = dir.path().join("play.yml");
    std::fs::write(
        &playbook,
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.raw: 'true'\n",
    )
    .unwrap();
    let output = bramble(&["run", &playbook.to_string_lossy(), "-i", &inventory.to_string_lossy()]);
    assert_eq!(output.status.code(), Some(4), "{}", text(&output.stdout));
    assert!(text(&output.stdout).contains("has no /bin/sh"), "{}", text(&output.stdout));
}

#[test]
fn downloading_a_base_is_not_supported_yet() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = dir.path().join("r.yml");
    std::fs::write(&recipe, "name: r\nbase:\n  url: https://example.org/raspios.img.xz\n").unwrap();
    let output = bramble(&["bake", &recipe.to_string_lossy()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("not supported yet: downloading a base image"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn burn_wifi_and_inventory_are_not_supported_yet() {
    let wifi = bramble(&["burn", "x.img.xz", "out.img", "--wifi", "ssid"]);
    assert!(text(&wifi.stderr).contains("not supported yet: --wifi"), "{}", text(&wifi.stderr));
    let many = bramble(&["burn", "x.img.xz", "out.img", "--inventory", "hosts"]);
    assert!(
        text(&many.stderr).contains("not supported yet: --inventory"),
        "{}",
        text(&many.stderr)
    );
}

#[test]
fn burn_refuses_a_partition_or_a_missing_image() {
    let output = bramble(&["burn", "/nonexistent.img.xz", "/nonexistent-target.img"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
}
