//! `community.docker.docker_volume`: a named volume with a driver, created or removed.

use serde_json::{Map, Value};

use super::{apply, command_line, inspect};
use crate::modules::{Call, Outcome, result};

/// `volume create` for `name` with a driver, driver options and labels.
pub fn create_words(
    name: &str,
    driver: &str,
    options: &Map<String, Value>,
    labels: &Map<String, Value>,
) -> Vec<String> {
    let mut words = vec!["volume".to_string(), "create".into(), "--driver".into(), driver.into()];
    for (key, value) in options {
        words.extend(["--opt".to_string(), format!("{key}={}", plain(value))]);
    }
    for (key, value) in labels {
        words.extend(["--label".to_string(), format!("{key}={}", plain(value))]);
    }
    words.extend(["--".to_string(), name.to_string()]);
    words
}

fn plain(value: &Value) -> String {
    crate::playbook::display_string(value)
}

/// Whether an existing volume has to be recreated, by community.docker's `recreate`.
pub fn needs_recreate(recreate: &str, found: &Value, driver: &str) -> bool {
    let current = found.get("Driver").and_then(Value::as_str).unwrap_or_default();
    match recreate {
        "always" => true,
        "options-changed" => current != driver,
        _ => false,
    }
}

pub async fn run(call: &mut Call<'_>) -> Outcome {
    let name = call.args.required(&["volume_name", "name"])?;
    let state =
        call.args.choice(&["state"], &["present", "absent"], Some("present"))?.unwrap_or_default();
    let found = inspect(call, "volume", &name).await?;
    let remove = command_line(call, &["volume", "rm", "--", &name]);

    if state == "absent" {
        if found.is_none() {
            return Ok(outcome(false, Vec::new(), Value::Object(Map::new())));
        }
        apply(call, &remove, "docker volume rm").await?;
        return Ok(outcome(
            true,
            vec![format!("Removed volume {name}")],
            Value::Object(Map::new()),
        ));
    }

    let driver = call.args.string(&["driver"]).unwrap_or_else(|| "local".into());
    let recreate = call
        .args
        .choice(&["recreate"], &["always", "never", "options-changed"], Some("never"))?
        .unwrap_or_default();
    let mut actions = Vec::new();
    if let Some(existing) = &found {
        if !needs_recreate(&recreate, existing, &driver) {
            return Ok(outcome(false, actions, existing.clone()));
        }
        apply(call, &remove, "docker volume rm").await?;
        actions.push(format!("Removed volume {name}"));
    }
    let object = |key: &str| match call.args.value(&[key]) {
        Some(Value::Object(map)) => map.clone(),
        _ => Map::new(),
    };
    let argv = create_words(&name, &driver, &object("driver_options"), &object("labels"));
    let words: Vec<&str> = argv.iter().map(String::as_str).collect();
    apply(call, &command_line(call, &words), "docker volume create").await?;
    actions.push(format!("Created volume {name} with driver {driver}"));
    let volume = if call.check_mode { None } else { inspect(call, "volume", &name).await? };
    Ok(outcome(true, actions, volume.unwrap_or(Value::Object(Map::new()))))
}

fn outcome(changed: bool, actions: Vec<String>, volume: Value) -> Map<String, Value> {
    result([
        ("changed", Value::Bool(changed)),
        ("actions", Value::Array(actions.into_iter().map(Value::from).collect())),
        ("volume", volume),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_passes_options_and_labels() {
        let options = serde_json::json!({"type": "tmpfs", "o": "size=64m"});
        let labels = serde_json::json!({"owner": "stack"});
        assert_eq!(
            create_words(
                "data",
                "local",
                options.as_object().unwrap(),
                labels.as_object().unwrap()
            )
            .join(" "),
            "volume create --driver local --opt type=tmpfs --opt o=size=64m --label owner=stack \
             -- data"
        );
    }

    #[test]
    fn recreate_follows_the_policy() {
        let found = serde_json::json!({"Driver": "local"});
        assert!(!needs_recreate("never", &found, "other"));
        assert!(needs_recreate("options-changed", &found, "other"));
        assert!(!needs_recreate("options-changed", &found, "local"));
        assert!(needs_recreate("always", &found, "local"));
    }
}
