//! `group_vars/` and `host_vars/` beside an inventory or a playbook.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::Inventory;
use crate::error::{Error, Result};
use crate::yaml;

/// Merges `group_vars/<group>` and `host_vars/<host>` found in `directory` into the inventory.
pub fn load_vars_dirs(inventory: &mut Inventory, directory: &Path) -> Result<()> {
    let groups: Vec<String> = inventory.groups.keys().cloned().collect();
    for group in groups {
        let vars = read_vars(&directory.join("group_vars"), &group)?;
        inventory.group_mut(&group).dir_vars.extend(vars);
    }
    let hosts: Vec<String> = inventory.hosts.keys().cloned().collect();
    for host in hosts {
        let vars = read_vars(&directory.join("host_vars"), &host)?;
        if let Some(entry) = inventory.hosts.get_mut(&host) {
            entry.dir_vars.extend(vars);
        }
    }
    Ok(())
}

/// Reads `<base>/<name>`, `<name>.yml|.yaml|.json`, or every file of the directory `<base>/<name>/`.
pub fn read_vars(base: &Path, name: &str) -> Result<Map<String, Value>> {
    let mut merged = Map::new();
    for file in candidate_files(base, name)? {
        let node = yaml::load_file(&file)?;
        match node.to_value() {
            Value::Object(vars) => merged.extend(vars),
            Value::Null => {}
            _ => return Err(Error::invalid(&node.mark, "expected a mapping of variables")),
        }
    }
    Ok(merged)
}

fn candidate_files(base: &Path, name: &str) -> Result<Vec<PathBuf>> {
    let directory = base.join(name);
    if directory.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&directory)
            .map_err(|source| Error::FileRead { path: directory.clone(), source })?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.is_file() && is_vars_file(path))
            .collect();
        files.sort();
        return Ok(files);
    }
    Ok(["", ".yml", ".yaml", ".json"]
        .iter()
        .map(|extension| base.join(format!("{name}{extension}")))
        .filter(|path| path.is_file())
        .collect())
}

fn is_vars_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let extension = path.extension().and_then(|e| e.to_str());
    !name.starts_with('.') && matches!(extension, None | Some("yml" | "yaml" | "json"))
}
