//! `include_vars`: variables from a YAML/JSON file or a directory of them, read on the
//! controller; the executor keeps them per host, below `set_fact` in precedence.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::{Call, Failure, Outcome, fail, result};

/// The result key that tells the executor these facts are included variables.
pub const MARKER: &str = "_bramble_include_vars";

const DEFAULT_EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

pub fn run(call: &mut Call<'_>) -> Outcome {
    include(call).map_err(|failure| match failure {
        Failure::Failed(mut result) => {
            // ansible-core's include_vars reports its reason as `message`, with empty results.
            let message = result.remove("msg").unwrap_or_default();
            Failure::Failed(super::result([
                ("ansible_facts", Value::Object(Map::new())),
                ("ansible_included_var_files", Value::Array(Vec::new())),
                ("changed", Value::Bool(false)),
                ("message", message),
                (super::UNKNOWN_ERROR, Value::Bool(true)),
            ]))
        }
        other => other,
    })
}

fn include(call: &mut Call<'_>) -> Outcome {
    let mut args = call.args.map.clone();
    // `include_vars: file.yml name=x`: the bare word is the file.
    if let Some(Value::String(raw)) = args.remove("_raw_params") {
        for word in raw.split_whitespace() {
            match word.split_once('=') {
                Some((key, value)) => args.insert(key.to_string(), Value::from(value)),
                None => args.insert("file".to_string(), Value::from(word)),
            };
        }
    }
    let args = super::Args::new(args);
    if let Some(behaviour) = args.string(&["hash_behaviour"])
        && behaviour != "replace"
    {
        return Err(fail(format!("not supported yet: include_vars hash_behaviour={behaviour}")));
    }
    let extensions = match args.value(&["extensions"]) {
        None => DEFAULT_EXTENSIONS.iter().map(|e| e.to_string()).collect(),
        Some(_) => args.list(&["extensions"]),
    };

    let files = match (args.string(&["file"]), args.string(&["dir"])) {
        (Some(_), Some(_)) => {
            return Err(fail(
                "You are mixing file only and dir only arguments, these are incompatible",
            ));
        }
        (Some(file), None) => vec![find(&file, call.search_paths, false).ok_or_else(|| {
            fail(format!(
                "Could not find or access '{file}'\nSearched in:\n{} on the Ansible Controller.\n\
                 If you are using a module and expect the file to exist on the remote, see the \
                 remote_src option",
                candidates(&file, call.search_paths).join("\n")
            ))
        })?],
        (None, Some(dir)) => {
            let root = find(&dir, call.search_paths, true)
                .ok_or_else(|| fail(format!("{dir} directory does not exist")))?;
            let depth = args.integer(&["depth"], 0)?;
            let pattern = match args.string(&["files_matching"]) {
                Some(text) => Some(
                    regex::Regex::new(&text)
                        .map_err(|error| fail(format!("files_matching: {error}")))?,
                ),
                None => None,
            };
            let ignore = args.list(&["ignore_files"]);
            let mut files = Vec::new();
            walk(&root, 1, depth, &mut files).map_err(fail)?;
            files.retain(|path| {
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                pattern.as_ref().is_none_or(|p| p.is_match(name))
                    && !ignore.iter().any(|ignored| ignored == name)
            });
            let unknown_ok = args.flag(&["ignore_unknown_extensions"], false)?;
            let mut kept = Vec::new();
            for file in files {
                let extension = file.extension().and_then(|e| e.to_str()).unwrap_or_default();
                if extensions.iter().any(|e| e == extension) {
                    kept.push(file);
                } else if !unknown_ok {
                    return Err(fail(format!(
                        "{} does not have a valid extension: {}",
                        file.display(),
                        extensions.join(", ")
                    )));
                }
            }
            kept
        }
        (None, None) => return Err(fail("one of file or dir is required")),
    };

    let mut vars = Map::new();
    for file in &files {
        vars.extend(read(file).map_err(fail)?);
    }
    let facts = match args.string(&["name"]) {
        Some(name) => Map::from_iter([(name, Value::Object(vars))]),
        None => vars,
    };
    let included: Vec<Value> = files.iter().map(|f| Value::from(f.display().to_string())).collect();
    Ok(result([
        ("ansible_facts", Value::Object(facts)),
        ("ansible_included_var_files", Value::Array(included)),
        ("changed", Value::Bool(false)),
        (MARKER, Value::Bool(true)),
    ]))
}

/// Ansible's lookup for a relative name: `vars/<name>` then `<name>` under the role, the
/// task file's directory and the playbook's directory.
fn find(name: &str, search_paths: &[PathBuf], directory: bool) -> Option<PathBuf> {
    let wanted = |path: &Path| if directory { path.is_dir() } else { path.is_file() };
    if Path::new(name).is_absolute() {
        return wanted(Path::new(name)).then(|| PathBuf::from(name));
    }
    search_paths
        .iter()
        .flat_map(|base| [base.join("vars").join(name), base.join(name)])
        .find(|path| wanted(path))
        .map(|path| std::fs::canonicalize(&path).unwrap_or(path))
}

/// Where [`find`] looks, one `\t`-indented line each, as ansible-core lists them.
fn candidates(name: &str, search_paths: &[PathBuf]) -> Vec<String> {
    search_paths
        .iter()
        .flat_map(|base| [base.join("vars").join(name), base.join(name)])
        .map(|path| format!("\t{}", path.display()))
        .collect()
}

/// Files under `directory`, sorted, each directory's own files before its subdirectories';
/// `depth` 0 means no limit.
fn walk(directory: &Path, level: i64, depth: i64, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(directory)
        .map_err(|error| format!("{}: {error}", directory.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            !path.file_name().and_then(|n| n.to_str()).unwrap_or_default().starts_with('.')
        })
        .collect();
    entries.sort();
    out.extend(entries.iter().filter(|path| path.is_file()).cloned());
    if depth == 0 || level < depth {
        for subdirectory in entries.iter().filter(|path| path.is_dir()) {
            walk(subdirectory, level + 1, depth, out)?;
        }
    }
    Ok(())
}

fn read(path: &Path) -> Result<Map<String, Value>, String> {
    let node = crate::yaml::load_file(path).map_err(|error| match error {
        crate::error::Error::VaultFailed { message, .. } => message,
        other => other.to_string(),
    })?;
    match node.to_value() {
        Value::Object(vars) => Ok(vars),
        Value::Null => Ok(Map::new()),
        _ => Err(format!("{} must be stored as a dictionary/hash", path.display())),
    }
}
