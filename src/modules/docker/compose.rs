//! `community.docker.docker_compose_v2`: brings a Compose project to a state with
//! `docker compose`, and reports a change only when its containers, networks or volumes
//! changed (container ids and states before and after, and the events compose prints).

use serde_json::{Map, Value};

use super::{command_line, json_records};
use crate::connection::quote_all;
use crate::modules::{Call, Failure, Outcome, fail, result};

/// The file names compose looks for when `files` is not given.
const DEFAULT_FILES: &[&str] =
    &["compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml"];

/// Event statuses that mean compose changed something (present participles such as
/// `Creating` are always followed by one of these).
const CHANGE_STATUSES: &[&str] =
    &["Created", "Recreated", "Started", "Stopped", "Removed", "Restarted", "Killed"];

/// The module's arguments, checked.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Options {
    pub project_src: String,
    pub project_name: Option<String>,
    pub files: Vec<String>,
    pub env_files: Vec<String>,
    pub profiles: Vec<String>,
    pub state: String,
    pub pull: String,
    pub build: String,
    pub recreate: String,
    pub remove_orphans: bool,
    pub remove_images: Option<String>,
    pub remove_volumes: bool,
    pub services: Vec<String>,
    pub dependencies: bool,
    pub wait: bool,
    pub wait_timeout: Option<i64>,
    pub timeout: Option<i64>,
}

impl Options {
    pub fn from_call(call: &Call<'_>) -> Result<Options, Failure> {
        let args = &call.args;
        let state = args.choice(
            &["state"],
            &["present", "stopped", "restarted", "absent"],
            Some("present"),
        )?;
        let pull =
            args.choice(&["pull"], &["always", "missing", "never", "policy"], Some("policy"))?;
        let build = args.choice(&["build"], &["always", "never", "policy"], Some("policy"))?;
        let recreate = args.choice(&["recreate"], &["always", "never", "auto"], Some("auto"))?;
        let optional_integer = |name: &str| -> Result<Option<i64>, Failure> {
            match args.value(&[name]) {
                None => Ok(None),
                Some(_) => args.integer(&[name], 0).map(Some),
            }
        };
        Ok(Options {
            project_src: args.required(&["project_src"])?,
            project_name: args.string(&["project_name"]),
            files: args.list(&["files"]),
            env_files: args.list(&["env_files"]),
            profiles: args.list(&["profiles"]),
            state: state.unwrap_or_default(),
            pull: pull.unwrap_or_default(),
            build: build.unwrap_or_default(),
            recreate: recreate.unwrap_or_default(),
            remove_orphans: args.flag(&["remove_orphans"], false)?,
            remove_images: args.choice(&["remove_images"], &["all", "local"], None)?,
            remove_volumes: args.flag(&["remove_volumes"], false)?,
            services: args.list(&["services"]),
            dependencies: args.flag(&["dependencies"], true)?,
            wait: args.flag(&["wait"], false)?,
            wait_timeout: optional_integer("wait_timeout")?,
            timeout: optional_integer("timeout")?,
        })
    }
}

/// `compose` and the options naming the project: directory, files, name, env files, profiles.
pub fn project_words(options: &Options, dry_run: bool) -> Vec<String> {
    let mut words = vec!["compose".to_string(), "--ansi".into(), "never".into()];
    words.extend(["--project-directory".to_string(), options.project_src.clone()]);
    for file in &options.files {
        words.extend(["--file".to_string(), project_path(&options.project_src, file)]);
    }
    if let Some(name) = &options.project_name {
        words.extend(["--project-name".to_string(), name.clone()]);
    }
    for env_file in &options.env_files {
        words.extend(["--env-file".to_string(), project_path(&options.project_src, env_file)]);
    }
    for profile in &options.profiles {
        words.extend(["--profile".to_string(), profile.clone()]);
    }
    if dry_run {
        words.push("--dry-run".into());
    }
    words
}

/// A file named relative to the project folder, as community.docker reads `files`.
fn project_path(project_src: &str, file: &str) -> String {
    if file.starts_with('/') {
        file.to_string()
    } else {
        format!("{}/{file}", project_src.trim_end_matches('/'))
    }
}

/// The compose subcommand and its options that reach `options.state`.
pub fn action_words(options: &Options) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    let mut push = |word: &str| words.push(word.to_string());
    match options.state.as_str() {
        "present" => {
            push("up");
            push("--detach");
            push("--quiet-pull");
            if options.pull != "policy" {
                push("--pull");
                push(&options.pull);
            }
            match options.build.as_str() {
                "always" => push("--build"),
                "never" => push("--no-build"),
                _ => {}
            }
            match options.recreate.as_str() {
                "always" => push("--force-recreate"),
                "never" => push("--no-recreate"),
                _ => {}
            }
            if options.remove_orphans {
                push("--remove-orphans");
            }
            if !options.dependencies {
                push("--no-deps");
            }
            if options.wait {
                push("--wait");
                if let Some(seconds) = options.wait_timeout {
                    push("--wait-timeout");
                    push(&seconds.to_string());
                }
            }
        }
        "stopped" => push("stop"),
        "restarted" => {
            push("restart");
            if !options.dependencies {
                push("--no-deps");
            }
        }
        _ => {
            push("down");
            if options.remove_orphans {
                push("--remove-orphans");
            }
            if let Some(images) = &options.remove_images {
                push("--rmi");
                push(images);
            }
            if options.remove_volumes {
                push("--volumes");
            }
        }
    }
    if let Some(seconds) = options.timeout {
        words.push("--timeout".into());
        words.push(seconds.to_string());
    }
    words.extend(options.services.iter().cloned());
    words
}

/// `compose ps` listing every container of the project (or of `services`), as JSON.
pub fn ps_words(options: &Options) -> Vec<String> {
    let mut words = project_words(options, false);
    words.extend(["ps", "--all", "--format", "json"].map(String::from));
    words.extend(options.services.iter().cloned());
    words
}

/// What identifies a container's state for change detection: a recreated container has a
/// new id, a started or stopped one a new state.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ContainerState {
    pub name: String,
    pub id: String,
    pub state: String,
}

/// The containers `compose ps --format json` lists, sorted by name.
pub fn container_states(records: &[Value]) -> Vec<ContainerState> {
    let field = |record: &Value, key: &str| {
        record.get(key).and_then(Value::as_str).unwrap_or_default().to_string()
    };
    let mut states: Vec<ContainerState> = records
        .iter()
        .map(|record| ContainerState {
            name: field(record, "Name"),
            id: field(record, "ID"),
            state: field(record, "State"),
        })
        .collect();
    states.sort();
    states
}

/// One line of compose's progress output: `Container web-1  Started`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub what: String,
    pub id: String,
    pub status: String,
}

/// The events in compose's stderr (with or without the `DRY-RUN MODE -` prefix).
pub fn events(stderr: &str) -> Vec<Event> {
    stderr
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let line = line.strip_prefix("DRY-RUN MODE -").map(str::trim).unwrap_or(line);
            let (what, rest) = line.split_once(' ')?;
            if !matches!(what, "Container" | "Network" | "Volume" | "Image") {
                return None;
            }
            let (id, status) = rest.trim().rsplit_once(' ')?;
            Some(Event {
                what: what.to_ascii_lowercase(),
                id: id.trim().to_string(),
                status: status.trim().to_string(),
            })
        })
        .collect()
}

/// Whether the events report a change to a container, network or volume.
pub fn events_changed(events: &[Event]) -> bool {
    events
        .iter()
        .any(|event| event.what != "image" && CHANGE_STATUSES.contains(&event.status.as_str()))
}

fn event_values(events: &[Event]) -> Value {
    Value::Array(
        events
            .iter()
            .map(|event| {
                let mut map = Map::new();
                map.insert("what".into(), Value::from(event.what.clone()));
                map.insert("id".into(), Value::from(event.id.clone()));
                map.insert("status".into(), Value::from(event.status.clone()));
                Value::Object(map)
            })
            .collect(),
    )
}

pub async fn run(call: &mut Call<'_>) -> Outcome {
    let options = Options::from_call(call)?;
    if options.files.is_empty() && call.args.flag(&["check_files_existing"], true)? {
        require_compose_file(call, &options.project_src).await?;
    }

    let before = containers(call, &options).await?;
    let mut argv = project_words(&options, call.check_mode);
    argv.extend(action_words(&options));
    let words: Vec<&str> = argv.iter().map(String::as_str).collect();
    let line = command_line(call, &words);
    let output = call.remote.run(&line).await?;
    let stderr = output.stderr_text();
    let seen = events(&stderr);
    let mut outcome = result([
        ("cmd", Value::from(line.clone())),
        ("rc", Value::from(output.rc)),
        ("stdout", Value::from(output.stdout_text())),
        ("stderr", Value::from(stderr.clone())),
        ("actions", event_values(&seen)),
    ]);
    if output.rc != 0 {
        let detail = stderr.trim().lines().last().unwrap_or("").to_string();
        outcome.insert("changed".into(), Value::Bool(false));
        outcome.insert(
            "msg".into(),
            Value::from(format!("docker compose {} failed: {detail}", options.state)),
        );
        return Err(Failure::Failed(outcome));
    }

    let after = if call.check_mode { before.clone() } else { containers(call, &options).await? };
    let changed = events_changed(&seen) || container_states(&before) != container_states(&after);
    outcome.insert("changed".into(), Value::Bool(changed));
    outcome.insert("containers".into(), Value::Array(after));
    Ok(outcome)
}

async fn containers(call: &Call<'_>, options: &Options) -> Result<Vec<Value>, Failure> {
    let argv = ps_words(options);
    let words: Vec<&str> = argv.iter().map(String::as_str).collect();
    let output = call.remote.check(&command_line(call, &words), "docker compose ps").await?;
    json_records(&output.stdout_text()).map_err(fail)
}

async fn require_compose_file(call: &Call<'_>, project_src: &str) -> Result<(), Failure> {
    let paths: Vec<String> =
        DEFAULT_FILES.iter().map(|file| project_path(project_src, file)).collect();
    let line = format!("for f in {}; do [ -e \"$f\" ] && exit 0; done; exit 1", quote_all(&paths));
    if call.remote.run(&line).await?.rc == 0 {
        return Ok(());
    }
    Err(fail(format!("\"{project_src}\" does not contain any of {}", DEFAULT_FILES.join(", "))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(state: &str) -> Options {
        Options {
            project_src: "/srv/app".into(),
            state: state.into(),
            pull: "policy".into(),
            build: "policy".into(),
            recreate: "auto".into(),
            dependencies: true,
            ..Options::default()
        }
    }

    #[test]
    fn present_is_up_detached_with_the_asked_options() {
        let mut asked = options("present");
        asked.pull = "never".into();
        asked.recreate = "always".into();
        asked.remove_orphans = true;
        asked.wait = true;
        asked.wait_timeout = Some(60);
        asked.services = vec!["web".into()];
        assert_eq!(
            action_words(&asked).join(" "),
            "up --detach --quiet-pull --pull never --force-recreate --remove-orphans --wait \
             --wait-timeout 60 web"
        );
        assert_eq!(action_words(&options("present")).join(" "), "up --detach --quiet-pull");
    }

    #[test]
    fn other_states_map_to_stop_restart_and_down() {
        assert_eq!(action_words(&options("stopped")), ["stop"]);
        assert_eq!(action_words(&options("restarted")), ["restart"]);
        let mut absent = options("absent");
        absent.remove_images = Some("local".into());
        absent.remove_volumes = true;
        absent.timeout = Some(5);
        assert_eq!(action_words(&absent).join(" "), "down --rmi local --volumes --timeout 5");
    }

    #[test]
    fn project_words_resolve_files_against_the_project() {
        let mut asked = options("present");
        asked.files = vec!["a.yaml".into(), "/etc/b.yaml".into()];
        asked.project_name = Some("demo".into());
        assert_eq!(
            project_words(&asked, true).join(" "),
            "compose --ansi never --project-directory /srv/app --file /srv/app/a.yaml \
             --file /etc/b.yaml --project-name demo --dry-run"
        );
    }

    #[test]
    fn events_are_read_from_real_and_dry_runs() {
        let stderr = " Network proj_default  Creating\n Network proj_default  Created\n \
                      DRY-RUN MODE -  Container proj-web-1  Recreated\n warning: something\n";
        let seen = events(stderr);
        assert_eq!(seen.len(), 3);
        assert_eq!(
            seen[2],
            Event { what: "container".into(), id: "proj-web-1".into(), status: "Recreated".into() }
        );
        assert!(events_changed(&seen));
        assert!(!events_changed(&events(" Container proj-web-1  Running\n")));
        assert!(!events_changed(&events(" Image busybox  Pulled\n")));
    }

    #[test]
    fn a_new_id_or_state_is_a_change_and_status_text_is_not() {
        let record = |id: &str, state: &str, status: &str| serde_json::json!({"Name": "web-1", "ID": id, "State": state, "Status": status});
        let running = container_states(&[record("a1", "running", "Up 5 seconds")]);
        assert_eq!(running, container_states(&[record("a1", "running", "Up 2 minutes")]));
        assert_ne!(running, container_states(&[record("b2", "running", "Up 1 second")]));
        assert_ne!(running, container_states(&[record("a1", "exited", "Exited (0)")]));
        assert_ne!(running, container_states(&[]));
    }
}
