//! `community.docker.docker_image`: makes sure an image is present (pulled, loaded from a
//! tar archive made by `docker save`, or already local) or absent.

use serde_json::{Map, Value};

use super::{apply, command_line, inspect};
use crate::modules::{Call, Outcome, fail, result};

/// `name` and `tag` as one reference: a tag inside `name` wins, as in community.docker.
pub fn reference(name: &str, tag: &str) -> String {
    if name.contains('@') {
        return name.to_string();
    }
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') { name.to_string() } else { format!("{name}:{tag}") }
}

/// What reaching `present` from `exists` takes, for a source: `None` when nothing does.
pub fn present_action(source: &str, exists: bool, force_source: bool) -> Option<&'static str> {
    match source {
        "pull" if !exists || force_source => Some("pull"),
        "load" if !exists || force_source => Some("load"),
        _ => None,
    }
}

pub async fn run(call: &mut Call<'_>) -> Outcome {
    let name = call.args.required(&["name"])?;
    let tag = call.args.string(&["tag"]).unwrap_or_else(|| "latest".into());
    let image = reference(&name, &tag);
    let state =
        call.args.choice(&["state"], &["present", "absent"], Some("present"))?.unwrap_or_default();
    let source = call.args.choice(&["source"], &["pull", "load", "local", "build"], None)?;
    if source.as_deref() == Some("build") {
        return Err(fail("not supported yet: docker_image with source=build"));
    }
    let current = inspect(call, "image", &image).await?;

    if state == "absent" {
        let Some(found) = current else {
            return Ok(outcome(false, Vec::new(), Value::Object(Map::new())));
        };
        let mut words = vec!["image", "rm"];
        if call.args.flag(&["force_absent"], false)? {
            words.push("--force");
        }
        words.extend(["--", image.as_str()]);
        apply(call, &command_line(call, &words), "docker image rm").await?;
        return Ok(outcome(true, vec![format!("Removed image {image}")], found));
    }

    let source = source
        .ok_or_else(|| fail("state is present but all of the following are missing: source"))?;
    let force_source = call.args.flag(&["force_source"], false)?;
    let action = present_action(&source, current.is_some(), force_source);
    let Some(action) = action else {
        return match current {
            Some(found) => Ok(outcome(false, Vec::new(), found)),
            None => Err(fail(format!("Cannot find the image {image} locally."))),
        };
    };

    let before_id = current.as_ref().and_then(|found| found.get("Id")).cloned();
    let (line, message) = if action == "pull" {
        (command_line(call, &["pull", "--quiet", "--", &image]), format!("Pulled image {image}"))
    } else {
        let path = call.args.required(&["load_path"])?;
        (
            command_line(call, &["load", "--input", &path]),
            format!("Loaded image {image} from {path}"),
        )
    };
    if call.check_mode {
        return Ok(outcome(true, vec![message], current.unwrap_or(Value::Object(Map::new()))));
    }
    apply(call, &line, &format!("docker {action}")).await?;

    let Some(found) = inspect(call, "image", &image).await? else {
        return Err(fail(format!("The archive did not contain image {image}.")));
    };
    let changed = found.get("Id").cloned() != before_id;
    let actions = if changed { vec![message] } else { Vec::new() };
    Ok(outcome(changed, actions, found))
}

fn outcome(changed: bool, actions: Vec<String>, image: Value) -> serde_json::Map<String, Value> {
    result([
        ("changed", Value::Bool(changed)),
        ("actions", Value::Array(actions.into_iter().map(Value::from).collect())),
        ("image", image),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_adds_the_tag_unless_name_has_one() {
        assert_eq!(reference("busybox", "latest"), "busybox:latest");
        assert_eq!(reference("bramble/busybox:1", "latest"), "bramble/busybox:1");
        assert_eq!(reference("registry:5000/app", "2"), "registry:5000/app:2");
        assert_eq!(reference("app@sha256:abc", "2"), "app@sha256:abc");
    }

    #[test]
    fn present_acts_only_when_missing_or_forced() {
        assert_eq!(present_action("load", false, false), Some("load"));
        assert_eq!(present_action("load", true, false), None);
        assert_eq!(present_action("load", true, true), Some("load"));
        assert_eq!(present_action("pull", false, false), Some("pull"));
        assert_eq!(present_action("local", false, true), None);
    }
}
