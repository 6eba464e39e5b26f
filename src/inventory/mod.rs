//! The inventory: hosts, groups, their variables, and host patterns over them.

mod ini;
mod literal;
mod pattern;
mod vars_dir;
mod yaml_format;

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

pub use pattern::select;
pub use vars_dir::{load_vars_dirs, read_vars as read_vars_public};

/// One managed host and the variables written for it in the inventory.
#[derive(Clone, Debug, Default)]
pub struct Host {
    pub name: String,
    /// Variables written in the inventory source itself.
    pub vars: Map<String, Value>,
    /// Variables from `host_vars/` beside the inventory sources.
    pub dir_vars: Map<String, Value>,
}

/// A group: its direct hosts, child groups and variables.
#[derive(Clone, Debug, Default)]
pub struct Group {
    pub name: String,
    pub hosts: Vec<String>,
    pub children: Vec<String>,
    /// Variables written in the inventory source itself.
    pub vars: Map<String, Value>,
    /// Variables from `group_vars/` beside the inventory sources.
    pub dir_vars: Map<String, Value>,
}

/// Every host and group, in the order the sources declared them.
#[derive(Clone, Debug, Default)]
pub struct Inventory {
    pub hosts: IndexMap<String, Host>,
    pub groups: IndexMap<String, Group>,
    /// Directories whose `group_vars/` and `host_vars/` belong to this inventory.
    pub directories: Vec<PathBuf>,
    /// `localhost` was added because a play named it, not because the inventory did.
    pub implicit_localhost: bool,
}

impl Inventory {
    /// Loads every `-i` source: INI, YAML or JSON files, directories of them, or
    /// `host1,host2,` lists; then the `group_vars/` and `host_vars/` beside each.
    pub fn load(sources: &[String]) -> Result<Inventory> {
        let mut inventory = Inventory::default();
        inventory.group_mut("all");
        inventory.group_mut("ungrouped");
        for source in sources {
            inventory.load_source(source)?;
        }
        inventory.finish();
        for directory in inventory.directories.clone() {
            load_vars_dirs(&mut inventory, &directory)?;
        }
        Ok(inventory)
    }

    fn load_source(&mut self, source: &str) -> Result<()> {
        let path = Path::new(source);
        if !path.exists() && source.contains(',') {
            for name in source.split(',').map(str::trim).filter(|name| !name.is_empty()) {
                self.add_host_to("ungrouped", name);
            }
            return Ok(());
        }
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|source| Error::FileRead { path: path.to_path_buf(), source })?
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|entry| entry.is_file() && is_inventory_file(entry))
                .collect();
            entries.sort();
            for entry in entries {
                self.load_file(&entry)?;
            }
            self.directories.push(path.to_path_buf());
            return Ok(());
        }
        if !path.exists() {
            // ansible-playbook warns and goes on with what the other sources give.
            crate::output::err(&format!(
                "[WARNING]: Unable to parse {} as an inventory source\n",
                path.display()
            ));
            return Ok(());
        }
        self.load_file(path)?;
        let directory = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let directory =
            if directory.as_os_str().is_empty() { PathBuf::from(".") } else { directory };
        if !self.directories.contains(&directory) {
            self.directories.push(directory);
        }
        Ok(())
    }

    fn load_file(&mut self, path: &Path) -> Result<()> {
        let text = crate::yaml::read_text(path)?;
        let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if matches!(extension, "yml" | "yaml" | "json") {
            return yaml_format::parse(self, path);
        }
        ini::parse(self, path, &text)
    }

    /// The group of that name, created empty (under `all`) if new.
    pub fn group_mut(&mut self, name: &str) -> &mut Group {
        self.groups
            .entry(name.to_string())
            .or_insert_with(|| Group { name: name.to_string(), ..Group::default() })
    }

    pub fn add_host_to(&mut self, group: &str, name: &str) -> &mut Host {
        let members = &mut self.group_mut(group).hosts;
        if !members.iter().any(|member| member == name) {
            members.push(name.to_string());
        }
        self.hosts
            .entry(name.to_string())
            .or_insert_with(|| Host { name: name.to_string(), ..Host::default() })
    }

    /// `add_host` during a run: the host joins these groups (created if new), or
    /// `ungrouped`, and takes these variables.
    pub fn add_runtime_host(&mut self, name: &str, groups: &[String], vars: Map<String, Value>) {
        if groups.is_empty() {
            self.add_host_to("ungrouped", name);
        }
        for group in groups {
            self.add_host_to(group, name);
        }
        self.hosts[name].vars.extend(vars);
        self.refinish();
    }

    /// `group_by` during a run: the host joins `group`, which becomes a child of `parents`.
    pub fn add_runtime_group(&mut self, host: &str, group: &str, parents: &[String]) {
        self.add_host_to(group, host);
        for parent in parents.iter().filter(|parent| *parent != "all") {
            let parent = self.group_mut(parent);
            if !parent.children.iter().any(|child| child == group) {
                parent.children.push(group.to_string());
            }
        }
        self.refinish();
    }

    /// `finish` again after a run-time change, keeping the implicit localhost out of groups.
    fn refinish(&mut self) {
        self.finish();
        if self.implicit_localhost {
            self.groups["ungrouped"].hosts.retain(|name| name != "localhost");
        }
    }

    /// Hangs top-level groups under `all` and puts group-less hosts in `ungrouped`.
    fn finish(&mut self) {
        let children: Vec<String> =
            self.groups.values().flat_map(|group| group.children.clone()).collect();
        let top: Vec<String> = self
            .groups
            .keys()
            .filter(|name| *name != "all" && !children.contains(name))
            .cloned()
            .collect();
        self.groups["all"].children = top;
        let grouped: Vec<String> = self
            .groups
            .values()
            .filter(|group| group.name != "all" && group.name != "ungrouped")
            .flat_map(|group| group.hosts.clone())
            .collect();
        let lonely: Vec<String> =
            self.hosts.keys().filter(|name| !grouped.contains(name)).cloned().collect();
        let ungrouped = self.group_mut("ungrouped");
        ungrouped.hosts.retain(|name| lonely.contains(name));
        for name in lonely {
            if !ungrouped.hosts.contains(&name) {
                ungrouped.hosts.push(name);
            }
        }
    }

    /// Every host of a group, its own and its descendants', in declaration order.
    pub fn group_hosts(&self, name: &str) -> Vec<String> {
        if name == "all" {
            let implicit = |host: &String| self.implicit_localhost && host == "localhost";
            return self.hosts.keys().filter(|host| !implicit(host)).cloned().collect();
        }
        let mut found = Vec::new();
        self.collect_hosts(name, &mut found, 0);
        found
    }

    fn collect_hosts(&self, name: &str, found: &mut Vec<String>, depth: usize) {
        let Some(group) = self.groups.get(name) else { return };
        for host in &group.hosts {
            if !found.contains(host) {
                found.push(host.clone());
            }
        }
        if depth < 64 {
            for child in &group.children {
                self.collect_hosts(child, found, depth + 1);
            }
        }
    }

    /// The groups a host belongs to, in variable-merge order: depth below `all`, then
    /// `ansible_group_priority` (default 1), then name.
    pub fn host_groups(&self, host: &str) -> Vec<(usize, String)> {
        let mut found: Vec<(usize, i64, String)> = self
            .groups
            .keys()
            .filter(|name| self.group_hosts(name).iter().any(|member| member == host))
            .map(|name| (self.depth(name, 0), self.priority(name), name.clone()))
            .collect();
        found.sort();
        found.into_iter().map(|(depth, _, name)| (depth, name)).collect()
    }

    fn priority(&self, name: &str) -> i64 {
        let Some(group) = self.groups.get(name) else { return 1 };
        let value = group
            .dir_vars
            .get("ansible_group_priority")
            .or(group.vars.get("ansible_group_priority"));
        match value {
            Some(Value::Number(number)) => number.as_i64().unwrap_or(1),
            Some(Value::String(text)) => text.trim().parse().unwrap_or(1),
            _ => 1,
        }
    }

    /// The longest chain of parents from `all` down to the group, as Ansible counts depth.
    fn depth(&self, name: &str, guard: usize) -> usize {
        if name == "all" || guard > 64 {
            return 0;
        }
        let parents = self.groups.values().filter(|group| group.children.iter().any(|c| c == name));
        parents.map(|parent| self.depth(&parent.name, guard + 1) + 1).max().unwrap_or(1)
    }

    /// Group variables merged in Ansible's order (see `executor::vars`), then the host's own.
    pub fn host_vars(&self, host: &str) -> Map<String, Value> {
        let mut merged = Map::new();
        let groups = self.host_groups(host);
        let (all, others): (Vec<_>, Vec<_>) = groups.iter().partition(|(_, name)| name == "all");
        for layer in [&all, &others] {
            for (_, name) in layer.iter() {
                merged.extend(self.groups[name.as_str()].vars.clone());
            }
        }
        for layer in [&all, &others] {
            for (_, name) in layer.iter() {
                merged.extend(self.groups[name.as_str()].dir_vars.clone());
            }
        }
        if let Some(entry) = self.hosts.get(host) {
            merged.extend(entry.vars.clone());
            merged.extend(entry.dir_vars.clone());
        }
        merged
    }

    /// `group_names`: the host's groups without `all` (`ungrouped` stays), sorted.
    pub fn group_names(&self, host: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .host_groups(host)
            .into_iter()
            .map(|(_, name)| name)
            .filter(|name| name != "all")
            .collect();
        names.sort();
        names
    }

    /// The `groups` magic variable: every group name to its host names.
    pub fn groups_value(&self) -> Value {
        let mut groups = Map::new();
        for name in self.groups.keys() {
            let hosts = self.group_hosts(name).into_iter().map(Value::String).collect();
            groups.insert(name.clone(), Value::Array(hosts));
        }
        Value::Object(groups)
    }
}

fn is_inventory_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    !name.starts_with('.')
        && !name.ends_with('~')
        && !matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("retry" | "pyc" | "cfg" | "md" | "orig" | "ini~")
        )
}
