//! Image recipes: the YAML files in `images/` naming a base, the headroom, the playbook that
//! provisions the image, and the identity baked into it.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

use super::host::parse_size;
use crate::error::{Error, Result};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// The output is `<name>.img.xz`.
    pub name: String,
    pub base: Base,
    /// Space added to the root file system before provisioning, like `2G`.
    #[serde(default = "default_headroom")]
    pub headroom: String,
    /// Relative to the recipe's folder; by default the repository's `site.yml`.
    pub playbook: Option<PathBuf>,
    /// Extra variables for the playbook.
    #[serde(default)]
    pub vars: Map<String, Value>,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub user: Option<User>,
    #[serde(default)]
    pub locale: Option<String>,
    #[serde(default)]
    pub timezone: Option<String>,
    /// Docker images to preload, loaded at first boot: `docker save` archives (paths ending
    /// in `.tar`, `.tar.gz`, ...) or references found in the archives of `docker_archives`.
    #[serde(default)]
    pub docker_images: Vec<String>,
    /// The folder of archives that references are looked up in, relative to the recipe's
    /// folder; by default `docker-archives`.
    #[serde(default)]
    pub docker_archives: Option<PathBuf>,
    /// xz preset, 0 (fast) to 9 (small).
    #[serde(default = "default_xz_level")]
    pub xz_level: u8,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Base {
    Debootstrap(Debootstrap),
    /// A local raw `.img` (such as an unpacked Raspberry Pi OS Lite image).
    File(PathBuf),
    Url(String),
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Debootstrap {
    #[serde(default = "default_suite")]
    pub suite: String,
    #[serde(default = "default_architecture", alias = "arch")]
    pub architecture: String,
    #[serde(default = "default_mirror")]
    pub mirror: String,
    /// Installed on top of the core packages and the kernel.
    #[serde(default)]
    pub packages: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    /// Public keys, one per entry.
    #[serde(default)]
    pub authorized_keys: Vec<String>,
    /// Files holding public keys, relative to the recipe's folder.
    #[serde(default)]
    pub authorized_key_files: Vec<PathBuf>,
}

fn default_headroom() -> String {
    "2G".into()
}

fn default_xz_level() -> u8 {
    6
}

fn default_suite() -> String {
    "trixie".into()
}

fn default_architecture() -> String {
    "arm64".into()
}

fn default_mirror() -> String {
    "http://deb.debian.org/debian".into()
}

/// A recipe, with the folder its relative paths start from.
#[derive(Debug)]
pub struct Loaded {
    pub recipe: Recipe,
    pub dir: PathBuf,
    pub headroom: u64,
}

impl Loaded {
    pub fn load(path: &Path) -> Result<Loaded> {
        let node = crate::yaml::load_file(path)?;
        let invalid = |message: String| Error::argument(format!("{}: {message}", path.display()));
        let recipe: Recipe =
            serde_json::from_value(node.to_value()).map_err(|e| invalid(e.to_string()))?;
        let headroom = parse_size(&recipe.headroom).ok_or_else(|| {
            invalid(format!("headroom `{}` is not a size like 2G or 512M", recipe.headroom))
        })?;
        if !recipe.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(invalid(format!("name `{}` must be letters, digits, - _ .", recipe.name)));
        }
        if recipe.xz_level > 9 {
            return Err(invalid(format!("xz_level {} is not 0 to 9", recipe.xz_level)));
        }
        if let Base::Url(url) = &recipe.base {
            return Err(Error::NotSupported {
                what: format!("downloading a base image ({url}); download it and use `file:`"),
            });
        }
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir };
        Ok(Loaded { recipe, dir, headroom })
    }

    /// The playbook to provision with: the recipe's, or `site.yml` one folder up.
    pub fn playbook(&self) -> PathBuf {
        match &self.recipe.playbook {
            Some(path) => self.dir.join(path),
            None => self.dir.join("../site.yml"),
        }
    }

    /// The folder image references in `docker_images` are looked up in.
    pub fn docker_archives(&self) -> PathBuf {
        self.dir.join(self.recipe.docker_archives.as_deref().unwrap_or("docker-archives".as_ref()))
    }

    /// Every authorized key, from the recipe and its key files.
    pub fn authorized_keys(&self) -> Result<Vec<String>> {
        let Some(user) = &self.recipe.user else { return Ok(Vec::new()) };
        let mut keys = user.authorized_keys.clone();
        for file in &user.authorized_key_files {
            let path = self.dir.join(file);
            let text = std::fs::read_to_string(&path)
                .map_err(|source| Error::FileRead { path: path.clone(), source })?;
            keys.extend(text.lines().filter(|l| !l.trim().is_empty()).map(str::to_string));
        }
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Loaded> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.yml");
        std::fs::write(&path, text).unwrap();
        Loaded::load(&path)
    }

    #[test]
    fn defaults() {
        let loaded = load("name: lab\nbase:\n  debootstrap: {}\n").unwrap();
        assert_eq!(loaded.headroom, 2 << 30);
        let Base::Debootstrap(spec) = &loaded.recipe.base else { panic!("not debootstrap") };
        assert_eq!((spec.suite.as_str(), spec.architecture.as_str()), ("trixie", "arm64"));
        assert!(loaded.playbook().ends_with("../site.yml"));
    }

    #[test]
    fn url_base_is_not_supported_yet() {
        let error = load("name: x\nbase:\n  url: https://example.org/a.img.xz\n").unwrap_err();
        assert!(error.to_string().starts_with("not supported yet: downloading a base image"));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let error = load("name: x\nbase: {debootstrap: {}}\nheadrom: 1G\n").unwrap_err();
        assert!(error.to_string().contains("unknown field `headrom`"), "{error}");
    }
}
