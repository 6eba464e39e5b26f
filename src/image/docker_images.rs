//! Docker images preloaded into a baked image: the recipe lists archives (`docker save`
//! output) or image references found in an archive folder; the bake copies them into the
//! image with a oneshot unit that loads them at first boot, before anything that runs
//! containers, so the stack comes up with no registry in reach.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::host;
use super::mounts::io;
use crate::error::{Error, Result};

/// Where the archives wait in the image until the first boot loads them.
pub const INBOX: &str = "var/lib/bramble/docker-images";
pub const UNIT_NAME: &str = "bramble-docker-images.service";
const LOADER: &str = "usr/lib/bramble/load-docker-images";

/// Loads each archive, then deletes it, so a later boot finds nothing left to do; an
/// archive that fails to load stays for the next boot and fails the unit.
const LOADER_SCRIPT: &str = "#!/bin/sh
# Written by bramble bake: loads the Docker images baked into this image.
set -u
status=0
for archive in /var/lib/bramble/docker-images/*; do
    [ -f \"$archive\" ] || continue
    if docker load --input \"$archive\"; then
        rm -f -- \"$archive\"
    else
        echo \"could not load $archive\" >&2
        status=1
    fi
done
exit $status
";

/// Ordered after Docker and before whatever starts containers (units that want their
/// images say `After=bramble-docker-images.service`).
const UNIT: &str = "[Unit]
Description=Load the Docker images baked into this image
Requires=docker.service
After=docker.service
ConditionDirectoryNotEmpty=/var/lib/bramble/docker-images

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/lib/bramble/load-docker-images

[Install]
WantedBy=multi-user.target
";

/// One archive to preload and the name it gets in the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preload {
    pub archive: PathBuf,
    pub name: String,
}

/// Whether a recipe entry names an archive file rather than an image reference.
pub fn is_archive(entry: &str) -> bool {
    [".tar", ".tar.gz", ".tgz", ".tar.xz", ".tar.zst"].iter().any(|end| entry.ends_with(end))
}

/// A reference as Docker stores it in an archive: no `docker.io/` or `library/` prefix,
/// and `:latest` when no tag or digest is given.
pub fn normalize(reference: &str) -> String {
    let short = reference.strip_prefix("docker.io/").unwrap_or(reference);
    let short = short.strip_prefix("library/").unwrap_or(short);
    let name_part = short.rsplit('/').next().unwrap_or(short);
    if name_part.contains(':') || name_part.contains('@') {
        short.to_string()
    } else {
        format!("{short}:latest")
    }
}

/// The `RepoTags` of every image in a `manifest.json` of the docker-archive format.
pub fn repo_tags(manifest: &str) -> Result<Vec<String>> {
    let value: Value = serde_json::from_str(manifest)
        .map_err(|e| Error::image("reading a Docker archive", format!("manifest.json: {e}")))?;
    let images = value.as_array().ok_or_else(|| {
        Error::image("reading a Docker archive", "manifest.json is not a list of images")
    })?;
    Ok(images
        .iter()
        .flat_map(|image| image["RepoTags"].as_array().cloned().unwrap_or_default())
        .filter_map(|tag| tag.as_str().map(normalize))
        .collect())
}

async fn archive_tags(archive: &Path) -> Result<Vec<String>> {
    let step = format!("reading the Docker archive {}", archive.display());
    // GNU tar sees the compression by itself when reading.
    let manifest =
        host::run(&step, "tar", &["-xOf".as_ref(), archive.as_os_str(), "manifest.json".as_ref()])
            .await?;
    repo_tags(&manifest)
}

/// Resolves the recipe's entries: archives relative to the recipe's folder, references
/// looked up by the tags inside the archives of `folder`.
pub async fn resolve(entries: &[String], recipe_dir: &Path, folder: &Path) -> Result<Vec<Preload>> {
    let mut catalogue: Option<Vec<(PathBuf, Vec<String>)>> = None;
    let mut preloads = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let archive = if is_archive(entry) {
            let path = recipe_dir.join(entry);
            if !path.is_file() {
                return Err(Error::image(
                    "docker_images",
                    format!("no such archive {}", path.display()),
                ));
            }
            archive_tags(&path).await?;
            path
        } else {
            if catalogue.is_none() {
                catalogue = Some(read_catalogue(folder).await?);
            }
            find_reference(entry, folder, catalogue.as_deref().unwrap_or_default())?
        };
        let file =
            archive.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        preloads.push(Preload { archive, name: format!("{:02}-{file}", index + 1) });
    }
    Ok(preloads)
}

async fn read_catalogue(folder: &Path) -> Result<Vec<(PathBuf, Vec<String>)>> {
    let listing = std::fs::read_dir(folder).map_err(|e| {
        Error::image(
            "docker_images",
            format!(
                "image references are looked up in {}: {e}\nhint: put `docker save` archives \
                 there, or set `docker_archives` in the recipe",
                folder.display()
            ),
        )
    })?;
    let mut archives: Vec<PathBuf> = listing
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.is_file() && is_archive(&path.to_string_lossy()))
        .collect();
    archives.sort();
    let mut catalogue = Vec::new();
    for archive in archives {
        let tags = archive_tags(&archive).await?;
        catalogue.push((archive, tags));
    }
    Ok(catalogue)
}

fn find_reference(
    reference: &str,
    folder: &Path,
    catalogue: &[(PathBuf, Vec<String>)],
) -> Result<PathBuf> {
    let wanted = normalize(reference);
    let found = catalogue.iter().find(|(_, tags)| tags.contains(&wanted));
    found.map(|(archive, _)| archive.clone()).ok_or_else(|| {
        Error::image(
            "docker_images",
            format!(
                "no archive in {} holds {reference}\nhint: no registry is used; make one with \
                 `docker save {reference} -o {}/NAME.tar`",
                folder.display(),
                folder.display()
            ),
        )
    })
}

/// Copies the archives into the mounted image and installs the unit that loads them.
pub fn install(root: &Path, preloads: &[Preload]) -> Result<()> {
    let inbox = root.join(INBOX);
    std::fs::create_dir_all(&inbox).map_err(|e| io("preloading Docker images", &inbox, e))?;
    for preload in preloads {
        let inside = inbox.join(&preload.name);
        std::fs::copy(&preload.archive, &inside)
            .map_err(|e| io("preloading Docker images", &inside, e))?;
    }
    super::write_file(root, LOADER, LOADER_SCRIPT, 0o755)?;
    super::write_file(root, &format!("etc/systemd/system/{UNIT_NAME}"), UNIT, 0o644)
}

/// Bytes the archives take, to check the image has room for them.
pub fn total_size(preloads: &[Preload]) -> u64 {
    preloads.iter().filter_map(|p| std::fs::metadata(&p.archive).ok()).map(|m| m.len()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_normalized_like_docker_stores_them() {
        assert_eq!(normalize("docker.io/grafana/loki:3.5.2"), "grafana/loki:3.5.2");
        assert_eq!(normalize("busybox"), "busybox:latest");
        assert_eq!(normalize("docker.io/library/busybox:1.37"), "busybox:1.37");
        assert_eq!(normalize("localhost:5000/tiny"), "localhost:5000/tiny:latest");
        assert_eq!(
            normalize("gcr.io/cadvisor/cadvisor:v0.52.1"),
            "gcr.io/cadvisor/cadvisor:v0.52.1"
        );
    }

    #[test]
    fn tags_come_from_the_manifest() {
        let manifest = r#"[{"Config": "c.json", "RepoTags": ["grafana/loki:3.5.2", "tiny"],
            "Layers": ["l/layer.tar"]}, {"Config": "d.json", "RepoTags": null, "Layers": []}]"#;
        assert_eq!(repo_tags(manifest).unwrap(), vec!["grafana/loki:3.5.2", "tiny:latest"]);
        assert!(repo_tags("{}").is_err());
    }

    #[test]
    fn archives_are_told_from_references() {
        assert!(is_archive("docker/loki.tar"));
        assert!(is_archive("loki.tar.gz"));
        assert!(!is_archive("grafana/loki:3.5.2"));
    }

    #[test]
    fn a_missing_reference_says_how_to_make_it() {
        let catalogue = vec![(PathBuf::from("/a/x.tar"), vec!["x:1".to_string()])];
        let error = find_reference("grafana/loki:3.5.2", Path::new("/a"), &catalogue).unwrap_err();
        assert!(error.to_string().contains("docker save grafana/loki:3.5.2"), "{error}");
        assert_eq!(
            find_reference("x:1", Path::new("/a"), &catalogue).unwrap(),
            Path::new("/a/x.tar")
        );
    }
}
