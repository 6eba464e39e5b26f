//! `community.docker.docker_network`: a network with a driver and flags, created, recreated
//! when those differ, or removed.

use serde_json::{Map, Value};

use super::{apply, command_line, inspect};
use crate::modules::{Call, Outcome, result};

/// The settings of a network this module compares and creates with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    pub driver: String,
    pub internal: bool,
    pub attachable: bool,
}

/// The settings an existing network has, from `docker network inspect`.
pub fn current(found: &Value) -> Wanted {
    Wanted {
        driver: found.get("Driver").and_then(Value::as_str).unwrap_or_default().to_string(),
        internal: found.get("Internal").and_then(Value::as_bool).unwrap_or(false),
        attachable: found.get("Attachable").and_then(Value::as_bool).unwrap_or(false),
    }
}

/// `network create` for `name` with the wanted settings.
pub fn create_words(name: &str, wanted: &Wanted) -> Vec<String> {
    let mut words = vec!["network".to_string(), "create".into(), "--driver".into()];
    words.push(wanted.driver.clone());
    if wanted.internal {
        words.push("--internal".into());
    }
    if wanted.attachable {
        words.push("--attachable".into());
    }
    words.extend(["--".to_string(), name.to_string()]);
    words
}

pub async fn run(call: &mut Call<'_>) -> Outcome {
    let name = call.args.required(&["name", "network_name"])?;
    let state =
        call.args.choice(&["state"], &["present", "absent"], Some("present"))?.unwrap_or_default();
    let found = inspect(call, "network", &name).await?;
    let remove = command_line(call, &["network", "rm", "--", &name]);

    if state == "absent" {
        if found.is_none() {
            return Ok(outcome(false, Vec::new(), Value::Object(Map::new())));
        }
        apply(call, &remove, "docker network rm").await?;
        return Ok(outcome(
            true,
            vec![format!("Removed network {name}")],
            Value::Object(Map::new()),
        ));
    }

    let wanted = Wanted {
        driver: call.args.string(&["driver"]).unwrap_or_else(|| "bridge".into()),
        internal: call.args.flag(&["internal"], false)?,
        attachable: call.args.flag(&["attachable"], false)?,
    };
    let mut actions = Vec::new();
    if let Some(existing) = &found {
        if current(existing) == wanted && !call.args.flag(&["force"], false)? {
            return Ok(outcome(false, actions, existing.clone()));
        }
        apply(call, &remove, "docker network rm").await?;
        actions.push(format!("Removed network {name}"));
    }
    let argv = create_words(&name, &wanted);
    let words: Vec<&str> = argv.iter().map(String::as_str).collect();
    apply(call, &command_line(call, &words), "docker network create").await?;
    actions.push(format!("Created network {name} with driver {}", wanted.driver));
    let network = if call.check_mode { None } else { inspect(call, "network", &name).await? };
    Ok(outcome(true, actions, network.unwrap_or(Value::Object(Map::new()))))
}

fn outcome(changed: bool, actions: Vec<String>, network: Value) -> Map<String, Value> {
    result([
        ("changed", Value::Bool(changed)),
        ("actions", Value::Array(actions.into_iter().map(Value::from).collect())),
        ("network", network),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inspected_network_compares_with_what_is_asked() {
        let found =
            serde_json::json!({"Name": "monitoring", "Driver": "bridge", "Internal": false});
        let wanted = Wanted { driver: "bridge".into(), internal: false, attachable: false };
        assert_eq!(current(&found), wanted);
        assert_ne!(current(&found), Wanted { internal: true, ..wanted.clone() });
        assert_eq!(
            create_words("monitoring", &Wanted { attachable: true, ..wanted }).join(" "),
            "network create --driver bridge --attachable -- monitoring"
        );
    }
}
