//! `community.general.modprobe`: load or unload a kernel module, and keep it (with its
//! parameters) loaded at boot through /etc/modules-load.d and /etc/modprobe.d.

use regex::Regex;
use serde_json::{Map, Value};

use super::{Call, Failure, Outcome, fail, result};
use crate::connection::{quote, quote_all, split_words};

const MODULES_LOAD: &str = "/etc/modules-load.d";
const PARAMETERS: &str = "/etc/modprobe.d";

/// What the host showed: whether the module is loaded (or built in), and the files of both
/// configuration folders with their text.
#[derive(Debug, Default, PartialEq)]
pub struct Facts {
    pub loaded: bool,
    pub modules_files: Vec<(String, String)>,
    pub parameter_files: Vec<(String, String)>,
}

/// One shell script: /proc/modules and modules.builtin, then every regular file of the two
/// folders as `path NUL text NUL`, the parts split by RS characters.
pub fn query_command(name: &str) -> String {
    let loaded = name.replace('-', "_");
    let dump = |folder: &str| {
        format!(
            "for f in {0}/* {0}/.[!.]*; do [ -f \"$f\" ] || continue; printf '%s\\0' \"$f\"; \
             cat -- \"$f\"; printf '\\0'; done",
            quote(folder)
        )
    };
    format!(
        "if grep -q -- {prefix} /proc/modules || \
         grep -q -- {builtin} \"/lib/modules/$(uname -r)/modules.builtin\" 2>/dev/null; \
         then echo loaded; fi; printf '\\036'; {}; printf '\\036'; {}",
        dump(MODULES_LOAD),
        dump(PARAMETERS),
        prefix = quote(&format!("^{} ", regex::escape(&loaded))),
        builtin = quote(&format!("/{}\\.ko$", regex::escape(name))),
    )
}

fn parse_files(text: &str) -> Vec<(String, String)> {
    let parts: Vec<&str> = text.split('\0').collect();
    parts
        .chunks(2)
        .filter(|pair| pair.len() == 2)
        .map(|pair| (pair[0].into(), pair[1].into()))
        .collect()
}

pub fn parse_facts(text: &str) -> Facts {
    let parts: Vec<&str> = text.split('\u{1e}').collect();
    let part = |index: usize| parts.get(index).copied().unwrap_or("");
    Facts {
        loaded: part(0).trim() == "loaded",
        modules_files: parse_files(part(1)),
        parameter_files: parse_files(part(2)),
    }
}

/// The line patterns community.general matches: the module's name alone (a comment may
/// follow), and `options NAME key=value`, one parameter a line.
struct Patterns {
    module: Regex,
    option: Regex,
}

impl Patterns {
    fn new(name: &str) -> Patterns {
        let name = regex::escape(name);
        let build = |pattern: String| Regex::new(&pattern).expect("a valid pattern");
        Patterns {
            module: build(format!(r"^ *{name} *(?:[#;].*)?\n?$")),
            option: build(format!(r"^options {name} (\w+=\S+) *(?:[#;].*)?\n?$")),
        }
    }
}

/// The configuration files to write and their new text.
#[derive(Debug, Default, PartialEq)]
pub struct Persistence {
    pub writes: Vec<(String, String)>,
}

impl Facts {
    fn loaded_persistently(&self, patterns: &Patterns) -> bool {
        let lines = self.modules_files.iter().flat_map(|(_, text)| text.split_inclusive('\n'));
        lines.into_iter().any(|line| patterns.module.is_match(line))
    }

    fn permanent_params(&self, patterns: &Patterns) -> std::collections::BTreeSet<String> {
        let lines = self.parameter_files.iter().flat_map(|(_, text)| text.split_inclusive('\n'));
        lines
            .filter_map(|line| patterns.option.captures(line).map(|found| found[1].to_string()))
            .collect()
    }
}

/// Each file where a line matches, with those lines commented out.
fn comment_out(files: &[(String, String)], pattern: &Regex) -> Vec<(String, String)> {
    files
        .iter()
        .filter_map(|(path, text)| {
            let mut changed = false;
            let edited: String = text
                .split_inclusive('\n')
                .map(|line| {
                    if pattern.is_match(line) {
                        changed = true;
                        format!("#{line}")
                    } else {
                        line.to_string()
                    }
                })
                .collect();
            changed.then(|| (path.clone(), edited))
        })
        .collect()
}

/// The writes `persistent:` needs (`present`, `absent` or `disabled`); none when the files
/// already say what is asked.
pub fn plan_persistence(name: &str, params: &str, persistent: &str, facts: &Facts) -> Persistence {
    let patterns = Patterns::new(name);
    let persistently = facts.loaded_persistently(&patterns);
    let current = facts.permanent_params(&patterns);
    let wanted: std::collections::BTreeSet<String> =
        params.split_whitespace().map(str::to_string).collect();
    let mut writes = Vec::new();
    match persistent {
        "present" => {
            if !persistently {
                writes.push((format!("{MODULES_LOAD}/{name}.conf"), format!("{name}\n")));
            }
            if wanted != current {
                writes.extend(comment_out(&facts.parameter_files, &patterns.option));
                let lines: Vec<String> =
                    params.split_whitespace().map(|p| format!("options {name} {p}")).collect();
                let options_file = format!("{PARAMETERS}/{name}.conf");
                writes.retain(|(path, _)| *path != options_file);
                writes.push((options_file, lines.join("\n") + "\n"));
            }
        }
        "absent" => {
            if persistently {
                writes.extend(comment_out(&facts.modules_files, &patterns.module));
            }
            if !current.is_empty() {
                writes.extend(comment_out(&facts.parameter_files, &patterns.option));
            }
        }
        _ => {}
    }
    Persistence { writes }
}

/// `modprobe [-n] NAME PARAMS…` or `modprobe -r NAME [-n]`; sbin is on the path for users
/// whose PATH lacks it, as Ansible's binary lookup adds it.
pub fn modprobe_command(name: &str, params: &[String], load: bool, dry_run: bool) -> String {
    let mut words = vec!["modprobe".to_string()];
    if load {
        if dry_run {
            words.push("-n".into());
        }
        words.push(name.to_string());
        words.extend(params.iter().cloned());
    } else {
        words.extend(["-r".to_string(), name.to_string()]);
        if dry_run {
            words.push("-n".into());
        }
    }
    format!("PATH=\"$PATH:/sbin:/usr/sbin:/usr/local/sbin\"; {}", quote_all(&words))
}

fn failed(outcome: &Map<String, Value>, output: &crate::connection::Output) -> Failure {
    let mut failure = outcome.clone();
    failure.insert("msg".into(), Value::from(output.stderr_text()));
    failure.insert("rc".into(), Value::from(output.rc));
    failure.insert("stdout".into(), Value::from(output.stdout_text()));
    failure.insert("stderr".into(), Value::from(output.stderr_text()));
    Failure::Failed(failure)
}

pub async fn run(call: &mut Call<'_>) -> Outcome {
    let name = call.args.required(&["name"])?;
    let state = call.args.choice(&["state"], &["absent", "present"], Some("present"))?;
    let state = state.unwrap_or_else(|| "present".into());
    let params = call.args.string(&["params"]).unwrap_or_default();
    let persistent = call
        .args
        .choice(&["persistent"], &["disabled", "present", "absent"], Some("disabled"))?
        .unwrap_or_else(|| "disabled".into());
    let words = split_words(&params).map_err(|error| fail(format!("params: {error}")))?;
    let mut outcome = result([
        ("changed", Value::Bool(false)),
        ("name", Value::from(name.clone())),
        ("params", Value::from(params.clone())),
        ("state", Value::from(state.clone())),
    ]);

    // Query: loaded or not, and the two configuration folders, in one command.
    let output = call.remote.check(&query_command(&name), "reading the kernel modules").await?;
    let facts = parse_facts(&output.stdout_text());

    // Load or unload; check mode asks modprobe for a dry run, as community.general does.
    let mut changed = false;
    let wanted_loaded = state == "present";
    if wanted_loaded != facts.loaded {
        let command = modprobe_command(&name, &words, wanted_loaded, call.check_mode);
        let output = call.remote.run(&command).await?;
        if output.rc != 0 {
            return Err(failed(&outcome, &output));
        }
        changed = !wanted_loaded || call.check_mode || {
            let again = call.remote.run(&query_command(&name)).await?;
            parse_facts(&again.stdout_text()).loaded
        };
        if wanted_loaded && !changed {
            let mut first = vec!["--first-time".to_string()];
            first.extend(words.iter().cloned());
            let probe = call.remote.run(&modprobe_command(&name, &first, true, true)).await?;
            if probe.rc != 0 {
                let warning = Value::from(probe.stderr_text());
                outcome.insert("warnings".into(), Value::Array(vec![warning]));
            }
        }
    }

    // Persistence: rewrite or create the configuration files that need it.
    let plan = plan_persistence(&name, &params, &persistent, &facts);
    changed |= !plan.writes.is_empty();
    if !call.check_mode {
        for (path, text) in &plan.writes {
            super::files::write_atomic(call.remote, path, text.as_bytes(), None, None, None, None)
                .await?;
        }
    }
    outcome.insert("changed".into(), Value::Bool(changed));
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(modules: &[(&str, &str)], parameters: &[(&str, &str)]) -> Facts {
        let own = |files: &[(&str, &str)]| {
            files.iter().map(|(path, text)| (path.to_string(), text.to_string())).collect()
        };
        Facts { loaded: false, modules_files: own(modules), parameter_files: own(parameters) }
    }

    #[test]
    fn the_query_output_splits_into_loaded_state_and_files() {
        let text = "loaded\n\u{1e}/etc/modules-load.d/a.conf\0a\n\0\u{1e}/etc/modprobe.d/b.conf\0options b x=1\n\0";
        let parsed = parse_facts(text);
        assert!(parsed.loaded);
        assert_eq!(parsed.modules_files, [("/etc/modules-load.d/a.conf".into(), "a\n".into())]);
        assert_eq!(parsed.parameter_files[0].1, "options b x=1\n");
        assert!(!parse_facts("\u{1e}\u{1e}").loaded);
    }

    #[test]
    fn present_writes_the_load_file_and_the_options_once() {
        let nothing = facts(&[], &[("/etc/modprobe.d/dummy.conf", "options dummy numdummies=1\n")]);
        let plan = plan_persistence("dummy", "numdummies=2", "present", &nothing);
        assert_eq!(
            plan.writes,
            [
                ("/etc/modules-load.d/dummy.conf".to_string(), "dummy\n".to_string()),
                ("/etc/modprobe.d/dummy.conf".to_string(), "options dummy numdummies=2\n".into()),
            ]
        );
        let done = facts(
            &[("/etc/modules-load.d/x.conf", "# c\n dummy # why\n")],
            &[("/etc/modprobe.d/other.conf", "options dummy numdummies=2\n")],
        );
        assert_eq!(plan_persistence("dummy", "numdummies=2", "present", &done).writes, []);
    }

    #[test]
    fn absent_comments_out_the_module_and_its_options() {
        let done = facts(
            &[("/etc/modules-load.d/dummy.conf", "dummy\nloop\n")],
            &[("/etc/modprobe.d/o.conf", "options dummy numdummies=2\noptions loop max_loop=8\n")],
        );
        let plan = plan_persistence("dummy", "", "absent", &done);
        assert_eq!(
            plan.writes,
            [
                ("/etc/modules-load.d/dummy.conf".to_string(), "#dummy\nloop\n".to_string()),
                (
                    "/etc/modprobe.d/o.conf".to_string(),
                    "#options dummy numdummies=2\noptions loop max_loop=8\n".to_string()
                ),
            ]
        );
        assert_eq!(plan_persistence("dummy", "", "disabled", &done).writes, []);
    }

    #[test]
    fn commands_quote_the_name_and_params() {
        let params = vec!["numdummies=2".to_string()];
        assert!(
            modprobe_command("dummy", &params, true, true)
                .ends_with("modprobe -n dummy numdummies=2")
        );
        assert!(modprobe_command("dummy", &[], false, false).ends_with("modprobe -r dummy"));
        assert!(query_command("br-netfilter").contains("'^br_netfilter '"));
    }
}
