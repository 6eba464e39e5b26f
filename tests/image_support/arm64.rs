//! arm64 fixtures for the bake tests, made from Debian's own packages since no registry and
//! no GitHub are reachable: a tiny Docker image archive (docker-archive format, written with
//! tar, busybox-static as its root file system) and an upstream-style Node Exporter release
//! packed from Debian's prometheus-node-exporter; and a small web server on 127.0.0.1.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use super::{cache, run, sha256};

pub const SUITE: &str = "trixie";
pub const MIRROR: &str = "http://deb.debian.org/debian";

/// The base every bake test shares, and the same as `images/lab.yml`'s, so that one cached
/// debootstrap serves the lab and the tests: bramble's core packages only. Docker is
/// installed by site.yml's docker role while baking, as it would be on a user's image.
pub const BASE: &str = "base:
  debootstrap:
    suite: trixie
    architecture: arm64
";

/// The arm64 `.deb` of `package` from the bake's package cache, downloaded (with
/// debootstrap, which needs no arm64 apt setup on the host) when missing.
pub fn deb(package: &str) -> PathBuf {
    let debs = cache().join("debs");
    let find = || {
        std::fs::read_dir(&debs).ok()?.flatten().map(|entry| entry.path()).find(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with(&format!("{package}_")) && name.ends_with("_arm64.deb")
        })
    };
    if let Some(found) = find() {
        return found;
    }
    std::fs::create_dir_all(&debs).unwrap();
    let target = tempfile::tempdir().unwrap();
    run(
        "debootstrap",
        &[
            "--download-only",
            "--arch=arm64",
            "--variant=minbase",
            &format!("--include={package}"),
            &format!("--cache-dir={}", debs.display()),
            SUITE,
            &target.path().to_string_lossy(),
            MIRROR,
        ],
    );
    find().unwrap_or_else(|| panic!("debootstrap downloaded no {package} for arm64"))
}

fn extract(deb: &Path, into: &Path) {
    run("dpkg-deb", &["--extract", &deb.to_string_lossy(), &into.to_string_lossy()]);
}

/// Writes a docker-archive (what `docker save` makes) holding one image tagged with every
/// name in `tags`: one layer with a static busybox whose entrypoint sleeps and ignores its
/// arguments, so any Compose service's `command:` keeps it running.
pub fn tiny_docker_archive(archive: &Path, tags: &[&str]) {
    let work = tempfile::tempdir().unwrap();
    let unpacked = work.path().join("deb");
    extract(&deb("busybox-static"), &unpacked);
    let rootfs = work.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    // trixie's package has it in /usr/bin (merged /usr); older ones in /bin.
    let busybox = ["usr/bin/busybox", "bin/busybox"]
        .iter()
        .map(|inside| unpacked.join(inside))
        .find(|path| path.is_file())
        .expect("busybox-static holds no busybox");
    std::fs::copy(busybox, rootfs.join("bin/busybox")).unwrap();
    for tool in ["sh", "sleep"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(tool)).unwrap();
    }

    let image = work.path().join("image");
    std::fs::create_dir_all(image.join("layer")).unwrap();
    let layer = image.join("layer/layer.tar");
    run(
        "tar",
        &[
            "--sort=name",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "--mtime=@0",
            "-C",
            &rootfs.to_string_lossy(),
            "-cf",
            &layer.to_string_lossy(),
            ".",
        ],
    );
    let config = serde_json::json!({
        "architecture": "arm64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {
            "Env": ["PATH=/bin"],
            "Entrypoint": ["/bin/sh", "-c", "exec sleep 2147483647", "--"],
        },
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", sha256(&layer))]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "bramble's image tests"}],
    });
    let config_text = serde_json::to_string(&config).unwrap();
    let config_path = image.join("config.json");
    std::fs::write(&config_path, &config_text).unwrap();
    let config_name = format!("{}.json", sha256(&config_path));
    std::fs::rename(&config_path, image.join(&config_name)).unwrap();
    let manifest = serde_json::json!([{"Config": config_name, "RepoTags": tags, "Layers": ["layer/layer.tar"]}]);
    std::fs::write(image.join("manifest.json"), manifest.to_string()).unwrap();
    std::fs::create_dir_all(archive.parent().unwrap()).unwrap();
    // Member names as `docker save` writes them: no leading `./`.
    let image_dir = image.to_string_lossy();
    let archive_path = archive.to_string_lossy();
    run("tar", &["-C", &image_dir, "-cf", &archive_path, "manifest.json", &config_name, "layer"]);
}

/// Packs Debian's arm64 prometheus-node-exporter as upstream's release tarball in `www`;
/// returns the version and the tarball's sha256.
pub fn node_exporter_release(www: &Path) -> (String, String) {
    let package = deb("prometheus-node-exporter");
    let version = run("dpkg-deb", &["--field", &package.to_string_lossy(), "Version"]);
    let version = version.trim();
    let version = version.split_once(':').map_or(version, |(_, rest)| rest);
    let version = version.rsplit_once('-').map_or(version, |(upstream, _)| upstream).to_string();
    let work = tempfile::tempdir().unwrap();
    extract(&package, &work.path().join("deb"));
    let name = format!("node_exporter-{version}.linux-arm64");
    let folder = work.path().join(&name);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(
        work.path().join("deb/usr/bin/prometheus-node-exporter"),
        folder.join("node_exporter"),
    )
    .unwrap();
    std::fs::create_dir_all(www).unwrap();
    let tarball = www.join(format!("{name}.tar.gz"));
    run("tar", &["-C", &work.path().to_string_lossy(), "-czf", &tarball.to_string_lossy(), &name]);
    (version, sha256(&tarball))
}

/// Serves the files of a folder over HTTP/1.0 on 127.0.0.1 from a thread, for as long as
/// the test process lives.
pub fn serve(folder: &Path) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let folder = folder.to_path_buf();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(&stream);
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            // Read the headers too: closing with unread bytes would reset the connection.
            let mut header = String::new();
            while reader.read_line(&mut header).is_ok_and(|count| count > 2) {
                header.clear();
            }
            let path = request.split_whitespace().nth(1).unwrap_or("/").trim_start_matches('/');
            let file = (!path.contains("..")).then(|| std::fs::read(folder.join(path)).ok());
            let mut stream = &stream;
            let _ = match file.flatten() {
                Some(body) => stream
                    .write_all(
                        format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", body.len())
                            .as_bytes(),
                    )
                    .and_then(|()| stream.write_all(&body)),
                None => stream.write_all(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
            };
        }
    });
    port
}
