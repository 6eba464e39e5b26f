//! `getent`: entries of a name service database as `getent_<database>` facts.

use serde_json::{Map, Value};

use super::{Call, Failure, Outcome, fail, result};
use crate::connection::quote_all;

pub fn command(database: &str, key: Option<&str>, service: Option<&str>) -> String {
    let mut words = vec!["getent", database];
    words.extend(key);
    if let Some(service) = service {
        words.extend(["-s", service]);
    }
    quote_all(&words)
}

/// Parses getent's lines: the first field is the key, the rest its value; a key seen more
/// than once gets a list of values, as Ansible builds it.
pub fn parse(stdout: &str, split: Option<&str>) -> Map<String, Value> {
    let mut tree = Map::new();
    let mut seen: Map<String, Value> = Map::new();
    for line in stdout.lines() {
        let record: Vec<&str> = match split {
            Some(separator) => line.split(separator).collect(),
            None => line.split_whitespace().collect(),
        };
        let Some((key, rest)) = record.split_first() else { continue };
        let rest = Value::from(rest.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        match seen.get(*key).and_then(Value::as_u64) {
            Some(count) => {
                if count == 1 {
                    let first = tree.remove(*key).unwrap_or(Value::Null);
                    tree.insert(key.to_string(), Value::Array(vec![first]));
                }
                if let Some(Value::Array(values)) = tree.get_mut(*key) {
                    values.push(rest);
                }
                seen.insert(key.to_string(), Value::from(count + 1));
            }
            None => {
                tree.insert(key.to_string(), rest);
                seen.insert(key.to_string(), Value::from(1));
            }
        }
    }
    tree
}

pub async fn run(call: &mut Call<'_>) -> Outcome {
    let database = call.args.required(&["database"])?;
    let key = call.args.string(&["key"]);
    let service = call.args.string(&["service"]);
    let fail_key = call.args.flag(&["fail_key"], true)?;
    let split = call.args.string(&["split"]).or_else(|| {
        ["passwd", "shadow", "group", "gshadow"].contains(&database.as_str()).then(|| ":".into())
    });
    let output = call.remote.run(&command(&database, key.as_deref(), service.as_deref())).await?;
    let facts = |tree: Map<String, Value>| {
        let mut facts = Map::new();
        facts.insert(format!("getent_{database}"), Value::Object(tree));
        Value::Object(facts)
    };
    match output.rc {
        0 => {
            let tree = parse(&output.stdout_text(), split.as_deref());
            Ok(result([("changed", Value::Bool(false)), ("ansible_facts", facts(tree))]))
        }
        2 if !fail_key => {
            let mut tree = Map::new();
            tree.insert(key.unwrap_or_default(), Value::Null);
            Ok(result([
                ("changed", Value::Bool(false)),
                ("ansible_facts", facts(tree)),
                ("msg", Value::from(message(2))),
            ]))
        }
        127 => Err(fail("Failed to find required executable \"getent\"")),
        rc => Err::<_, Failure>(fail(message(rc))),
    }
}

fn message(rc: i32) -> &'static str {
    match rc {
        1 => "Missing arguments, or database unknown.",
        2 => "One or more supplied key could not be found in the database.",
        3 => "Enumeration not supported on this database.",
        _ => "Unexpected failure!",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_split_by_database() {
        let tree = parse("root:x:0:0:root:/root:/bin/bash\n", Some(":"));
        assert_eq!(tree["root"], json!(["x", "0", "0", "root", "/root", "/bin/bash"]));
        let hosts = parse("127.0.0.1 localhost\n127.0.0.1 other\n", None);
        assert_eq!(hosts["127.0.0.1"], json!([["localhost"], ["other"]]));
        assert_eq!(command("passwd", Some("a b"), Some("files")), "getent passwd 'a b' -s files");
    }
}
