//! `community.docker.docker_container`, the basic part: one container from an image with a
//! command, environment, ports, volumes, one network, restart policy and memory limit,
//! brought to started, stopped, present or absent. A container whose settings differ from
//! the asked ones is recreated; the settings are compared through a hash kept in a label.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{apply, command_line, inspect};
use crate::connection::split_words;
use crate::modules::{Call, Failure, Outcome, fail, result};

/// The label holding the hash of the settings a container was created with.
pub const CONFIG_LABEL: &str = "bramble.config";

/// The `docker create` options, image and command for the asked settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    pub image: String,
    pub command: Vec<String>,
    pub options: Vec<String>,
}

impl Settings {
    pub fn from_call(call: &Call<'_>) -> Result<Settings, Failure> {
        let args = &call.args;
        let image = args.required(&["image"])?;
        let command = match args.value(&["command"]) {
            None => Vec::new(),
            Some(Value::Array(words)) => {
                words.iter().map(crate::playbook::display_string).collect()
            }
            Some(other) => split_words(&crate::playbook::display_string(other)).map_err(fail)?,
        };
        let mut options = Vec::new();
        let mut push = |flag: &str, value: String| {
            options.push(flag.to_string());
            options.push(value);
        };
        if let Some(Value::Object(env)) = args.value(&["env"]) {
            for (key, value) in env {
                push("--env", format!("{key}={}", crate::playbook::display_string(value)));
            }
        }
        for port in args.list(&["published_ports", "ports"]) {
            push("--publish", port);
        }
        for volume in args.list(&["volumes"]) {
            push("--volume", volume);
        }
        if let Some(mode) = args.string(&["network_mode"]) {
            push("--network", mode);
        }
        match args.value(&["networks"]) {
            None => {}
            Some(Value::Array(networks)) if networks.len() <= 1 => {
                if let Some(name) = networks.first().and_then(|network| network.get("name")) {
                    push("--network", crate::playbook::display_string(name));
                }
            }
            Some(_) => {
                return Err(fail("not supported yet: docker_container with several networks"));
            }
        }
        if let Some(policy) = args.choice(
            &["restart_policy"],
            &["no", "on-failure", "always", "unless-stopped"],
            None,
        )? {
            push("--restart", policy);
        }
        if let Some(memory) = args.string(&["memory"]) {
            push("--memory", memory);
        }
        if let Some(Value::Object(labels)) = args.value(&["labels"]) {
            for (key, value) in labels {
                push("--label", format!("{key}={}", crate::playbook::display_string(value)));
            }
        }
        if args.flag(&["privileged"], false)? {
            options.push("--privileged".into());
        }
        Ok(Settings { image, command, options })
    }

    /// A hash of everything the container is created with.
    pub fn hash(&self) -> String {
        let mut hasher = Sha256::new();
        for word in std::iter::once(&self.image).chain(&self.options).chain(&self.command) {
            hasher.update(word.as_bytes());
            hasher.update([0]);
        }
        hex::encode(hasher.finalize())
    }

    /// `create` with the name, the settings and the hash label.
    pub fn create_words(&self, name: &str) -> Vec<String> {
        let mut words = vec!["create".to_string(), "--name".into(), name.into()];
        words.extend(["--label".to_string(), format!("{CONFIG_LABEL}={}", self.hash())]);
        words.extend(self.options.iter().cloned());
        words.push(self.image.clone());
        words.extend(self.command.iter().cloned());
        words
    }
}

/// The hash label of an inspected container, if bramble created it.
pub fn config_hash(found: &Value) -> Option<&str> {
    found.pointer("/Config/Labels")?.get(CONFIG_LABEL)?.as_str()
}

pub fn is_running(found: &Value) -> bool {
    found.pointer("/State/Running").and_then(Value::as_bool).unwrap_or(false)
}

pub async fn run(call: &mut Call<'_>) -> Outcome {
    let name = call.args.required(&["name"])?;
    let state = call
        .args
        .choice(&["state"], &["absent", "present", "started", "stopped"], Some("started"))?
        .unwrap_or_default();
    let settings = if state == "absent" { None } else { Some(Settings::from_call(call)?) };
    let mut found = inspect(call, "container", &name).await?;
    let mut actions: Vec<String> = Vec::new();
    let remove = command_line(call, &["rm", "--force", "--", &name]);

    let Some(settings) = settings else {
        if found.is_some() {
            apply(call, &remove, "docker rm").await?;
            actions.push(format!("Removed container {name}"));
        }
        return Ok(outcome(actions, Value::Object(Map::new())));
    };

    let stale = found
        .as_ref()
        .is_some_and(|existing| config_hash(existing) != Some(settings.hash().as_str()));
    if stale || (found.is_some() && call.args.flag(&["recreate"], false)?) {
        apply(call, &remove, "docker rm").await?;
        actions.push(format!("Removed container {name}"));
        found = None;
    }
    if found.is_none() {
        let argv = settings.create_words(&name);
        let words: Vec<&str> = argv.iter().map(String::as_str).collect();
        apply(call, &command_line(call, &words), "docker create").await?;
        actions.push(format!("Created container {name}"));
    }

    let running = found.as_ref().is_some_and(is_running);
    if state == "started" && !running {
        apply(call, &command_line(call, &["start", "--", &name]), "docker start").await?;
        actions.push(format!("Started container {name}"));
    }
    if state == "stopped" && running {
        apply(call, &command_line(call, &["stop", "--", &name]), "docker stop").await?;
        actions.push(format!("Stopped container {name}"));
    }
    let container = if call.check_mode || actions.is_empty() {
        found
    } else {
        inspect(call, "container", &name).await?
    };
    Ok(outcome(actions, container.unwrap_or(Value::Object(Map::new()))))
}

fn outcome(actions: Vec<String>, container: Value) -> Map<String, Value> {
    result([
        ("changed", Value::Bool(!actions.is_empty())),
        ("actions", Value::Array(actions.into_iter().map(Value::from).collect())),
        ("container", container),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_carries_the_hash_then_options_image_and_command() {
        let settings = Settings {
            image: "bramble/busybox:1".into(),
            command: vec!["sleep".into(), "60".into()],
            options: vec!["--memory".into(), "32m".into()],
        };
        let words = settings.create_words("web");
        assert_eq!(words[..4], ["create", "--name", "web", "--label"]);
        assert_eq!(words[4], format!("bramble.config={}", settings.hash()));
        assert_eq!(words[5..].join(" "), "--memory 32m bramble/busybox:1 sleep 60");
    }

    #[test]
    fn any_setting_changes_the_hash() {
        let base = Settings { image: "a".into(), ..Settings::default() };
        let other = Settings { command: vec!["true".into()], ..base.clone() };
        assert_ne!(base.hash(), other.hash());
        let found = serde_json::json!({
            "Config": {"Labels": {"bramble.config": base.hash()}},
            "State": {"Running": true}
        });
        assert_eq!(config_hash(&found), Some(base.hash().as_str()));
        assert!(is_running(&found));
    }
}
