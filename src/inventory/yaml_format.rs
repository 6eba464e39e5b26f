//! The YAML (and JSON) inventory format: groups with `hosts`, `vars` and `children`,
//! values typed as YAML reads them.

use std::path::Path;

use serde_json::{Map, Value};

use super::Inventory;
use super::ini::{expand_range, split_port};
use crate::error::{Error, Result};
use crate::yaml::{self, Node};

/// Adds what a YAML or JSON inventory file declares to `inventory`.
pub fn parse(inventory: &mut Inventory, path: &Path) -> Result<()> {
    let root = yaml::load_file(path)?;
    if root.is_null() {
        return Ok(());
    }
    let entries = root.as_map().ok_or_else(|| {
        Error::invalid(&root.mark, "a YAML inventory is a mapping of group names")
    })?;
    for (name, body) in entries {
        group(inventory, name, body)?;
    }
    Ok(())
}

fn group(inventory: &mut Inventory, name: &str, body: &Node) -> Result<()> {
    inventory.group_mut(name);
    if body.is_null() {
        return Ok(());
    }
    let entries = body
        .as_map()
        .ok_or_else(|| Error::invalid(&body.mark, format!("group `{name}` must be a mapping")))?;
    for (key, value) in entries {
        match key.as_str() {
            "hosts" => hosts(inventory, name, value)?,
            "vars" => {
                let vars = mapping(value, "vars")?;
                inventory.group_mut(name).vars.extend(vars);
            }
            "children" => children(inventory, name, value)?,
            other => {
                return Err(Error::invalid(
                    &value.mark,
                    format!(
                        "group `{name}` has the key `{other}`; expected `hosts`, `vars` or `children`"
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn hosts(inventory: &mut Inventory, group: &str, node: &Node) -> Result<()> {
    if node.is_null() {
        return Ok(());
    }
    let entries = node
        .as_map()
        .ok_or_else(|| Error::invalid(&node.mark, "`hosts` must be a mapping of host names"))?;
    for (pattern, vars_node) in entries {
        let mut vars = mapping(vars_node, "host vars")?;
        let (pattern, port) = split_port(pattern);
        if let Some(port) = port {
            vars.insert("ansible_port".into(), Value::from(port));
        }
        let names =
            expand_range(pattern).map_err(|message| Error::invalid(&vars_node.mark, message))?;
        for host in names {
            inventory.add_host_to(group, &host).vars.extend(vars.clone());
        }
    }
    Ok(())
}

fn children(inventory: &mut Inventory, parent: &str, node: &Node) -> Result<()> {
    if node.is_null() {
        return Ok(());
    }
    let entries = node
        .as_map()
        .ok_or_else(|| Error::invalid(&node.mark, "`children` must be a mapping of groups"))?;
    for (child, body) in entries {
        let list = &mut inventory.group_mut(parent).children;
        if !list.contains(child) {
            list.push(child.clone());
        }
        group(inventory, child, body)?;
    }
    Ok(())
}

fn mapping(node: &Node, what: &str) -> Result<Map<String, Value>> {
    match node.to_value() {
        Value::Null => Ok(Map::new()),
        Value::Object(map) => Ok(map),
        _ => Err(Error::invalid(&node.mark, format!("{what} must be a mapping"))),
    }
}
