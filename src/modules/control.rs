//! Modules that run on the controller only: `debug`, `set_fact`, `assert`, `fail`, `ping`,
//! and `add_host` / `group_by`, whose results the executor applies to the inventory.

use serde_json::{Map, Value};

use super::{Call, Failure, Outcome, fail, result};

pub fn debug(call: &mut Call<'_>) -> Outcome {
    let mut outcome =
        result([("changed", Value::Bool(false)), ("_ansible_verbose_always", Value::Bool(true))]);
    if let Some(name) = call.args.string(&["var"]) {
        let value = match call.templar.render_string(&format!("{{{{ {name} }}}}"), call.vars) {
            Ok(value) => value,
            Err(_) => Value::from("VARIABLE IS NOT DEFINED!"),
        };
        outcome.insert(name, value);
        return Ok(outcome);
    }
    // A msg that templates to none is shown as null, as ansible-core 2.19 shows it.
    let message = call.args.map.get("msg").cloned().unwrap_or_else(|| Value::from("Hello world!"));
    outcome.insert("msg".into(), message);
    Ok(outcome)
}

/// Facts set this way are returned under `ansible_facts`; the executor stores them.
pub fn set_fact(call: &mut Call<'_>) -> Outcome {
    let mut facts = Map::new();
    let cacheable = call.args.flag(&["cacheable"], false)?;
    for (key, value) in &call.args.map {
        if key == "cacheable" {
            continue;
        }
        if !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            || key.starts_with(|c: char| c.is_ascii_digit())
        {
            return Err(fail(format!(
                "The variable name '{key}' is not valid. Variables must start with a letter or underscore character, and contain only letters, numbers and underscores."
            )));
        }
        facts.insert(key.clone(), value.clone());
    }
    let _ = cacheable;
    Ok(result([("changed", Value::Bool(false)), ("ansible_facts", Value::Object(facts))]))
}

pub fn assert(call: &mut Call<'_>) -> Outcome {
    let conditions: Vec<String> = match call.args.value(&["that"]) {
        Some(Value::Array(items)) => items.iter().map(crate::playbook::display_string).collect(),
        Some(Value::Bool(flag)) => vec![flag.to_string()],
        Some(other) => vec![crate::playbook::display_string(other)],
        None => return Err(fail("missing required arguments: that")),
    };
    for condition in &conditions {
        let passed = call
            .templar
            .condition(condition, call.vars)
            .map_err(|error| fail(error.to_string()))?;
        if !passed {
            let message = call
                .args
                .value(&["fail_msg", "msg"])
                .cloned()
                .unwrap_or_else(|| Value::from("Assertion failed"));
            let mut outcome = result([
                ("changed", Value::Bool(false)),
                ("_ansible_verbose_always", Value::Bool(true)),
                ("assertion", Value::from(condition.clone())),
                ("evaluated_to", Value::Bool(false)),
            ]);
            outcome.insert("msg".into(), message);
            return Err(Failure::Failed(outcome));
        }
    }
    let message = call
        .args
        .value(&["success_msg"])
        .cloned()
        .unwrap_or_else(|| Value::from("All assertions passed"));
    let mut outcome =
        result([("changed", Value::Bool(false)), ("_ansible_verbose_always", Value::Bool(true))]);
    outcome.insert("msg".into(), message);
    Ok(outcome)
}

pub fn fail_module(call: &mut Call<'_>) -> Outcome {
    let message = call
        .args
        .value(&["msg"])
        .cloned()
        .unwrap_or_else(|| Value::from("Failed as requested from task"));
    let mut outcome = result([("changed", Value::Bool(false))]);
    outcome.insert("msg".into(), message);
    Err(Failure::Failed(outcome))
}

pub fn ping(call: &mut Call<'_>) -> Outcome {
    let data = call.args.string(&["data"]).unwrap_or_else(|| "pong".into());
    if data == "crash" {
        return Err(fail("boom"));
    }
    Ok(result([("changed", Value::Bool(false)), ("ping", Value::from(data))]))
}

/// `add_host`: the host, its groups and variables, for the executor to add to the inventory.
pub fn add_host(call: &mut Call<'_>) -> Outcome {
    let Some(name) = call.args.string(&["name", "host", "hostname"]) else {
        return Err(fail("missing required arguments: name"));
    };
    let groups = match call.args.value(&["groups", "group", "groupname"]) {
        None => Vec::new(),
        Some(Value::Array(items)) => items.iter().map(crate::playbook::display_string).collect(),
        Some(other) => crate::playbook::display_string(other)
            .split(',')
            .map(|group| group.trim().to_string())
            .filter(|group| !group.is_empty())
            .collect(),
    };
    let mut host_vars = Map::new();
    for (key, value) in &call.args.map {
        if !matches!(key.as_str(), "name" | "host" | "hostname" | "groups" | "group" | "groupname")
        {
            host_vars.insert(key.clone(), value.clone());
        }
    }
    let groups: Vec<Value> = groups.into_iter().map(Value::from).collect();
    let added = result([
        ("groups", Value::Array(groups)),
        ("host_name", Value::from(name)),
        ("host_vars", Value::Object(host_vars)),
    ]);
    Ok(result([("add_host", Value::Object(added)), ("changed", Value::Bool(true))]))
}

/// `group_by`: the group (and its parents) this host joins, for the executor to apply.
pub fn group_by(call: &mut Call<'_>) -> Outcome {
    let Some(key) = call.args.string(&["key"]) else {
        return Err(fail("missing required arguments: key"));
    };
    let parents: Vec<Value> = match call.args.value(&["parents"]) {
        None => vec![Value::from("all")],
        Some(Value::Array(items)) => items.clone(),
        Some(other) => vec![other.clone()],
    };
    Ok(result([
        ("add_group", Value::from(key.replace(' ', "-"))),
        ("changed", Value::Bool(true)),
        ("parent_groups", Value::Array(parents)),
    ]))
}
