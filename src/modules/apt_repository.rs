//! `apt_repository`: one-line apt sources in /etc/apt/sources.list and sources.list.d/*.list.
//! The files are read in one query, the edit is planned on their lines (a disabled copy of
//! the line is enabled again, new lines go to a file named after the host), and only the
//! files whose text changes are written, then apt's lists are refreshed.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use super::files::{Mode, write_atomic};
use super::{Call, Failure, Outcome, fail, result};
use crate::connection::quote;

const SOURCES_DIR: &str = "/etc/apt/sources.list.d";

/// One line of a sources file, as Ansible's apt_repository reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub valid: bool,
    pub enabled: bool,
    pub source: String,
    pub comment: String,
}

/// Splits a line into enabled flag, source (whitespace collapsed) and trailing comment.
pub fn parse_line(line: &str) -> Line {
    let mut text = line.trim();
    let mut enabled = true;
    if let Some(rest) = text.strip_prefix('#') {
        enabled = false;
        text = rest;
    }
    let mut comment = String::new();
    if let Some(index) = text.find('#').filter(|index| *index > 0) {
        comment = text[index + 1..].trim().to_string();
        text = &text[..index];
    }
    let mut source = text.trim().to_string();
    let words: Vec<&str> = source.split_whitespace().collect();
    let valid = matches!(words.first(), Some(&"deb") | Some(&"deb-src"));
    if valid {
        source = words.join(" ");
    }
    Line { valid, enabled, source, comment }
}

fn render_line(line: &Line) -> String {
    let mut text = String::new();
    if !line.enabled {
        text.push_str("# ");
    }
    text.push_str(&line.source);
    if !line.comment.is_empty() {
        text.push_str(" # ");
        text.push_str(&line.comment);
    }
    text.push('\n');
    text
}

/// Every sources file with its parsed lines, in path order.
pub type Sources = BTreeMap<String, Vec<Line>>;

/// The text Ansible would write for each file that still has lines.
pub fn dump(sources: &Sources) -> BTreeMap<String, String> {
    sources
        .iter()
        .filter(|(_, lines)| !lines.is_empty())
        .map(|(path, lines)| (path.clone(), lines.iter().map(render_line).collect()))
        .collect()
}

/// The file a new line goes to: `filename` or the line's host, as `NAME.list`.
pub fn suggest_filename(source: &str, filename: Option<&str>) -> String {
    if let Some(filename) = filename {
        return format!("{filename}.list");
    }
    let options = regex::Regex::new(r"\[[^\]]+\]").expect("static regex");
    let scheme = regex::Regex::new(r"\w+://").expect("static regex");
    let line = options.replace_all(source, "");
    let line = scheme.replace_all(&line, "");
    let first = line.split_whitespace().find(|part| !matches!(*part, "deb" | "deb-src"));
    let first = first.unwrap_or("");
    let first = first.split_once('@').map_or(first, |(_, host)| host);
    let cleaned: String =
        first.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { ' ' }).collect();
    format!("{}.list", cleaned.split_whitespace().collect::<Vec<_>>().join("_"))
}

fn expand_path(filename: &str) -> String {
    if filename.contains('/') { filename.to_string() } else { format!("{SOURCES_DIR}/{filename}") }
}

/// Adds `repo` (enabling any copy of it), returning the file a new line went to.
pub fn add(
    sources: &mut Sources,
    repo: &str,
    filename: Option<&str>,
) -> Result<Option<String>, String> {
    let line = parse_line(repo);
    if !line.valid || !line.enabled {
        return Err(format!("Invalid repository string: {}", line.source));
    }
    let mut found = false;
    for entry in sources.values_mut().flatten() {
        if entry.valid && entry.source == line.source {
            entry.enabled = true;
            found = true;
        }
    }
    if found {
        return Ok(None);
    }
    // Ansible's module crashes on a line with nothing after its type; this says why.
    if line.source.split_whitespace().count() < 3 {
        return Err(format!(
            "Invalid repository string: {} (expected a URI and a suite)",
            line.source
        ));
    }
    let path = expand_path(&suggest_filename(&line.source, filename));
    let new = Line { valid: true, enabled: true, source: line.source, comment: String::new() };
    sources.entry(path.clone()).or_default().push(new);
    Ok(Some(path))
}

/// Removes every enabled copy of `repo`.
pub fn remove(sources: &mut Sources, repo: &str) -> Result<(), String> {
    let line = parse_line(repo);
    if !line.valid || !line.enabled {
        return Err(format!("Invalid repository string: {}", line.source));
    }
    for lines in sources.values_mut() {
        lines.retain(|entry| !(entry.valid && entry.enabled && entry.source == line.source));
    }
    Ok(())
}

/// Prints each file as `@@ PATH` and its text, symlinks with their target as `@> TARGET`.
const QUERY: &str = "for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do \
     [ -f \"$f\" ] || continue; printf '@@ %s\\n' \"$f\"; \
     if [ -L \"$f\" ]; then printf '@> %s\\n' \"$(readlink \"$f\")\"; fi; \
     cat \"$f\"; printf '\\n@@\\n'; done";

/// Reads the query's answer: the parsed files, their raw text and symlink targets.
fn parse_query(text: &str) -> (Sources, BTreeMap<String, String>) {
    let mut sources = Sources::new();
    let mut links = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches('\n');
        if let Some(path) = bare.strip_prefix("@@ ") {
            current = Some((path.to_string(), String::new()));
        } else if bare == "@@" {
            if let Some((path, mut body)) = current.take() {
                body.pop();
                sources.insert(path, body.lines().map(parse_line).collect());
            }
        } else if let (Some(target), Some((path, body))) = (bare.strip_prefix("@> "), &current)
            && body.is_empty()
        {
            links.insert(path.clone(), target.to_string());
        } else if let Some((_, body)) = current.as_mut() {
            body.push_str(line);
        }
    }
    (sources, links)
}

pub async fn run(call: &mut Call<'_>) -> Outcome {
    let repo = call.args.required(&["repo"])?;
    let state = call.args.choice(&["state"], &["absent", "present"], Some("present"))?;
    let state = state.unwrap_or_default();
    let update_cache = call.args.flag(&["update_cache", "update-cache"], true)?;
    let retries = call.args.integer(&["update_cache_retries"], 5)?.max(1);
    let max_delay = call.args.integer(&["update_cache_retry_max_delay"], 12)?;
    let filename = call.args.string(&["filename"]);
    let mode = Mode::parse(call.args.value(&["mode"]))?;
    if repo.is_empty() {
        return Err(fail("Please set argument 'repo' to a non-empty value"));
    }
    if repo.starts_with("ppa:") {
        return Err(fail("not supported yet: apt_repository with a ppa: repository"));
    }

    let output = call.remote.check(QUERY, "reading apt's sources").await?;
    let (mut sources, links) = parse_query(&output.stdout_text());
    let before = dump(&sources);
    let added_to = if state == "present" {
        add(&mut sources, &repo, filename.as_deref()).map_err(fail)?
    } else {
        remove(&mut sources, &repo).map_err(fail)?;
        None
    };
    let after = dump(&sources);
    let changed = before != after;

    let added: Vec<&String> = after.keys().filter(|path| !before.contains_key(*path)).collect();
    let removed: Vec<&String> = before.keys().filter(|path| !after.contains_key(*path)).collect();
    let mut diff = Vec::new();
    if changed && call.diff {
        for path in added.iter().chain(&removed) {
            diff.push(json!({
                "before": before.get(*path).cloned().unwrap_or_default(),
                "after": after.get(*path).cloned().unwrap_or_default(),
                "before_header": if before.contains_key(*path) { path.as_str() } else { "/dev/null" },
                "after_header": if after.contains_key(*path) { path.as_str() } else { "/dev/null" },
            }));
        }
    }
    let outcome = result([
        ("changed", Value::Bool(changed)),
        ("repo", Value::from(repo.clone())),
        ("sources_added", json!(added)),
        ("sources_removed", json!(removed)),
        ("state", Value::from(state)),
        ("diff", Value::from(diff)),
    ]);
    if !changed || call.check_mode {
        return Ok(outcome);
    }

    // Modify: write what changed (through a symlink to its target), drop emptied files.
    let default_mode = Mode::parse(Some(&Value::from("0644")))?;
    for (path, text) in &after {
        if before.get(path) == Some(text) {
            continue;
        }
        let target = links.get(path).cloned().unwrap_or_else(|| path.clone());
        let new_mode = if added_to.as_ref() == Some(path) {
            mode.clone().or(default_mode.clone())
        } else {
            None
        };
        write_atomic(call.remote, &target, text.as_bytes(), new_mode.as_ref(), None, None, None)
            .await?;
    }
    // Like Ansible, a change also deletes every file left without a line (an empty
    // sources.list too).
    let emptied = sources.iter().filter(|(_, lines)| lines.is_empty()).map(|(path, _)| path);
    for path in emptied {
        call.remote.check(&format!("rm -f {}", quote(path)), "removing an apt source").await?;
    }
    if update_cache {
        refresh(call, retries, max_delay).await?;
    }
    Ok(outcome)
}

/// apt-get update with Ansible's retries.
async fn refresh(call: &Call<'_>, retries: i64, max_delay: i64) -> Result<(), Failure> {
    let mut reason = String::from("unknown reason");
    for attempt in 0..retries {
        let output = call
            .remote
            .run("export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8; apt-get update -q")
            .await?;
        let stderr = output.stderr_text();
        if output.rc == 0 && !stderr.contains("Some index files failed to download") {
            return Ok(());
        }
        reason = stderr.trim().to_string();
        let delay = (1_i64 << attempt.min(10)).min(max_delay.max(0));
        tokio::time::sleep(Duration::from_secs(delay as u64)).await;
    }
    Err(fail(format!("Failed to update apt cache after {retries} retries: {reason}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_like_ansible() {
        let line = parse_line("#  deb   http://x/debian  trixie main # mine");
        assert_eq!(
            line,
            Line {
                valid: true,
                enabled: false,
                source: "deb http://x/debian trixie main".into(),
                comment: "mine".into()
            }
        );
        assert!(!parse_line("# a comment").valid);
        assert_eq!(render_line(&line), "# deb http://x/debian trixie main # mine\n");
    }

    #[test]
    fn filenames_come_from_the_host() {
        assert_eq!(
            suggest_filename("deb [signed-by=/k.gpg] http://127.0.0.1:8000/ ./", None),
            "127_0_0_1_8000.list"
        );
        assert_eq!(
            suggest_filename(
                "deb https://user:pw@download.docker.com/linux/debian trixie stable",
                None
            ),
            "download_docker_com_linux_debian.list"
        );
        assert_eq!(suggest_filename("deb http://x/ ./", Some("mine")), "mine.list");
    }

    #[test]
    fn add_enables_a_disabled_copy_and_remove_drops_enabled_ones() {
        let mut sources = Sources::new();
        sources.insert(
            "/etc/apt/sources.list".into(),
            vec![parse_line("# deb http://x/ ./"), parse_line("# just a comment")],
        );
        assert_eq!(add(&mut sources, "deb  http://x/ ./", None), Ok(None));
        assert_eq!(dump(&sources)["/etc/apt/sources.list"], "deb http://x/ ./\n# just a comment\n");
        let added = add(&mut sources, "deb http://y/ ./", Some("y")).unwrap();
        assert_eq!(added.as_deref(), Some("/etc/apt/sources.list.d/y.list"));
        remove(&mut sources, "deb http://y/ ./").unwrap();
        assert!(!dump(&sources).contains_key("/etc/apt/sources.list.d/y.list"));
        assert!(add(&mut sources, "# deb http://z/ ./", None).is_err());
        assert_eq!(
            add(&mut sources, "deb", None).unwrap_err(),
            "Invalid repository string: deb (expected a URI and a suite)"
        );
    }

    #[test]
    fn query_answer_keeps_files_and_links() {
        let text = "@@ /etc/apt/sources.list\ndeb http://x/ ./\n\n@@\n\
                    @@ /etc/apt/sources.list.d/l.list\n@> /srv/l.list\ndeb http://l/ ./\n\n@@\n";
        let (sources, links) = parse_query(text);
        assert_eq!(sources.len(), 2);
        assert_eq!(sources["/etc/apt/sources.list"][0].source, "deb http://x/ ./");
        assert_eq!(links["/etc/apt/sources.list.d/l.list"], "/srv/l.list");
    }
}
