//! Parameters ansible-core types as `path`: a module expands `~` and `$VAR` in them on the
//! target before it uses them (`file: path=~/x` is the remote user's home). Paths without
//! either cost nothing; the others take one round trip for all of the task's.

use serde_json::Value;

use super::{Call, Failure, expand, fail};

/// The target-side `path` parameters (and their aliases) of each module; `src` of copy,
/// template and the like is on the controller and stays out.
fn path_parameters(module: &str) -> &'static [&'static str] {
    match module {
        "file" => &["path", "dest", "name", "src"],
        "copy" | "template" | "get_url" | "unarchive" => &["dest"],
        "lineinfile" | "blockinfile" | "replace" => &["path", "dest", "destfile", "name"],
        "stat" => &["path", "dest", "name"],
        "find" => &["paths", "path", "name"],
        "command" | "shell" => &["chdir", "creates", "removes"],
        "slurp" => &["src", "path"],
        "assemble" => &["dest"],
        "authorized_key" | "tempfile" => &["path"],
        "mount" => &["path", "name"],
        "apt" => &["deb"],
        "user" => &["home", "ssh_key_file"],
        _ => &[],
    }
}

/// Expands the call's `path` parameters on the target, in place.
pub async fn expand(module: &str, call: &mut Call<'_>) -> Result<(), Failure> {
    let mut places = Vec::new();
    for name in path_parameters(module) {
        match call.args.map.get(*name) {
            Some(Value::String(path)) if expand::needs_expansion(path) => {
                places.push((name.to_string(), None, path.clone()));
            }
            Some(Value::Array(items)) => {
                for (index, item) in items.iter().enumerate() {
                    if let Value::String(path) = item
                        && expand::needs_expansion(path)
                    {
                        places.push((name.to_string(), Some(index), path.clone()));
                    }
                }
            }
            _ => {}
        }
    }
    if places.is_empty() {
        return Ok(());
    }

    let words: Vec<String> = places.iter().map(|(_, _, path)| path.clone()).collect();
    let output = call.remote.run(&expand::printing_script(&words)).await?;
    let text = output.stdout_text();
    let expanded: Vec<&str> = text.split('\0').collect();
    if output.rc != 0 || expanded.len() != places.len() + 1 {
        return Err(fail(format!("could not expand the paths {words:?} on the host")));
    }
    for ((name, index, _), value) in places.into_iter().zip(expanded) {
        let slot = match (call.args.map.get_mut(&name), index) {
            (Some(Value::Array(items)), Some(index)) => items.get_mut(index),
            (slot, None) => slot,
            _ => None,
        };
        if let Some(slot) = slot {
            *slot = Value::from(value);
        }
    }
    Ok(())
}
