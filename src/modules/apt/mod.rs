//! `apt`: install, upgrade and remove Debian packages through apt-get and dpkg, without
//! python-apt: one query script reads dpkg's and apt's view of the named packages, the
//! planners in `plan` decide, and apt-get does the work (waiting for dpkg's lock).

mod plan;
mod version;

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::{Call, Failure, Outcome, fail, result};
use crate::connection::{quote, quote_all};
use plan::{ENVIRONMENT, NOTHING_TO_DO};
pub use plan::{Facts, Options};

const STATES: &[&str] = &["absent", "build-dep", "fixed", "latest", "present"];
const UPGRADES: &[&str] = &["dist", "full", "no", "safe", "yes"];

pub async fn run(call: &mut Call<'_>) -> Outcome {
    let args = &call.args;
    let state = args.choice(&["state"], STATES, Some("present"))?.unwrap_or_default();
    let upgrade = args.choice(&["upgrade"], UPGRADES, Some("no"))?.filter(|mode| mode != "no");
    let specs: Vec<String> = args.list(&["package", "name", "pkg"]);
    let deb = args.string(&["deb"]);
    check_presence(args)?;
    let options = options(call)?;

    let update_cache = args.maybe_flag(&["update_cache", "update-cache"])?.unwrap_or(false);
    let cache_valid_time = args.integer(&["cache_valid_time"], 0)?;
    let retries = args.integer(&["update_cache_retries"], 5)?.max(1);
    let max_delay = args.integer(&["update_cache_retry_max_delay"], 12)?;
    let policy_rc_d = args.value(&["policy_rc_d"]).map(|_| args.integer(&["policy_rc_d"], 0));
    let policy_rc_d = policy_rc_d.transpose()?;
    let force_apt_get = args.flag(&["force_apt_get"], false)?;
    let autoclean = args.flag(&["autoclean"], false)?;

    if args.flag(&["clean"], false)? {
        let cleaned = clean(call).await?;
        if specs.is_empty() && upgrade.is_none() && deb.is_none() {
            return Ok(cleaned);
        }
    }

    let apt = Apt { call, options, policy_rc_d };
    let specs = apt.expand_globs(specs).await?;
    let names: Vec<String> = specs.iter().map(|spec| plan::split_spec(spec).0.into()).collect();
    let mut facts = apt.query(&names).await?;

    // The cache is refreshed when asked and older than cache_valid_time.
    let mut cache_updated = false;
    if (update_cache || cache_valid_time > 0) && facts.cache_mtime + cache_valid_time < facts.now {
        if !apt.call.check_mode {
            let before = facts.cache_mtime;
            facts = apt.update_cache(&names, retries, max_delay).await?;
            cache_updated = facts.cache_mtime != before;
        } else {
            cache_updated = true;
        }
    }
    let cache_keys = [
        ("cache_updated", Value::Bool(cache_updated)),
        ("cache_update_time", Value::from(facts.cache_mtime)),
    ];
    if (update_cache || cache_valid_time > 0)
        && specs.is_empty()
        && upgrade.is_none()
        && deb.is_none()
    {
        let mut outcome = result([("changed", Value::Bool(cache_updated))]);
        outcome.extend(cache_keys.map(|(key, value)| (key.to_string(), value)));
        return Ok(outcome);
    }

    if let Some(mode) = upgrade {
        return apt.upgrade(&mode, &facts, force_apt_get).await;
    }
    if let Some(deb) = deb {
        if state != "present" {
            return Err(fail("deb only supports state=present"));
        }
        return apt.install_debs(&deb).await;
    }
    let all_installed = specs.iter().any(|spec| spec == "*");
    let specs: Vec<String> = specs.into_iter().filter(|spec| spec != "*").collect();
    if state == "latest" && all_installed {
        if !specs.is_empty() {
            return Err(fail(
                "unable to install additional packages when upgrading all installed packages",
            ));
        }
        return apt.upgrade("yes", &facts, force_apt_get).await;
    }
    if let Some(spec) = specs.iter().find(|spec| spec.matches('=').count() > 1) {
        return Err(fail(format!("invalid package spec: {spec}")));
    }
    if specs.is_empty() {
        if autoclean {
            return apt.cleanup("autoclean").await;
        }
        if apt.options.autoremove {
            return apt.cleanup("autoremove").await;
        }
    }

    if state == "absent" {
        return apt.remove(&specs, &facts).await;
    }
    let mut outcome = apt.install(&specs, &facts, &state).await?;
    outcome.extend(cache_keys.map(|(key, value)| (key.to_string(), value)));
    Ok(outcome)
}

/// Ansible's mutually_exclusive and required_one_of, over what the task gave.
fn check_presence(args: &super::Args) -> Result<(), Failure> {
    let given = |names: &[&str]| args.value(names).is_some();
    let exclusive = [given(&["deb"]), given(&["package", "name", "pkg"]), given(&["upgrade"])];
    if exclusive.iter().filter(|set| **set).count() > 1 {
        return Err(fail("parameters are mutually exclusive: deb|package|upgrade"));
    }
    let any = given(&["autoremove"])
        || exclusive.contains(&true)
        || given(&["update_cache", "update-cache"]);
    if !any {
        return Err(fail(
            "one of the following is required: autoremove, deb, package, update_cache, upgrade",
        ));
    }
    Ok(())
}

fn options(call: &Call<'_>) -> Result<Options, Failure> {
    let args = &call.args;
    Ok(Options {
        dpkg_options: args
            .string(&["dpkg_options"])
            .unwrap_or_else(|| "force-confdef,force-confold".into()),
        lock_timeout: args.integer(&["lock_timeout"], 60)?,
        force: args.flag(&["force"], false)?,
        autoremove: args.flag(&["autoremove"], false)?,
        fail_on_autoremove: args.flag(&["fail_on_autoremove"], false)?,
        only_upgrade: args.flag(&["only_upgrade"], false)?,
        fixed: args.string(&["state"]).as_deref() == Some("fixed"),
        purge: args.flag(&["purge"], false)?,
        allow_unauthenticated: args
            .flag(&["allow_unauthenticated", "allow-unauthenticated"], false)?,
        allow_downgrade: args.flag(
            &["allow_downgrade", "allow-downgrade", "allow_downgrades", "allow-downgrades"],
            false,
        )?,
        allow_change_held_packages: args.flag(&["allow_change_held_packages"], false)?,
        install_recommends: args.maybe_flag(&["install_recommends", "install-recommends"])?,
        default_release: args.string(&["default_release", "default-release"]),
        check_mode: call.check_mode,
    })
}

/// `clean: true`: apt-get clean, which always counts as a change.
async fn clean(call: &Call<'_>) -> Outcome {
    let output = call.remote.run(&format!("{ENVIRONMENT}apt-get clean")).await?;
    let stdout = output.stdout_text();
    let stderr = output.stderr_text();
    if output.rc != 0 || !stderr.is_empty() {
        let detail = if stderr.is_empty() { String::new() } else { format!(": {stderr}") };
        return Err(Failure::Failed(result([
            ("changed", Value::Bool(false)),
            ("msg", Value::from(format!("apt-get clean failed{detail}"))),
            ("stdout", Value::from(stdout)),
            ("rc", Value::from(output.rc)),
        ])));
    }
    let diff =
        if call.diff { json!({"prepared": plan::prepared_diff(&stdout)}) } else { json!({}) };
    Ok(result([
        ("changed", Value::Bool(true)),
        ("msg", Value::from(stdout.clone())),
        ("stdout", Value::from(stdout)),
        ("stderr", Value::from(stderr)),
        ("diff", diff),
    ]))
}

/// One apt call: the task's call, apt-get's options, and the policy-rc.d setting.
struct Apt<'c, 'a> {
    call: &'c Call<'a>,
    options: Options,
    policy_rc_d: Option<i64>,
}

/// What an apt-get run printed.
struct Ran {
    rc: i32,
    stdout: String,
    stderr: String,
    line: String,
}

impl Apt<'_, '_> {
    async fn query(&self, names: &[String]) -> Result<Facts, Failure> {
        let script = plan::query_script(names, self.options.default_release.as_deref());
        let output = self.call.remote.check(&script, "querying apt").await?;
        Ok(plan::parse_facts(&output.stdout_text()))
    }

    /// Names with `*?[]!` become the packages apt knows that match them, as in Ansible.
    async fn expand_globs(&self, specs: Vec<String>) -> Result<Vec<String>, Failure> {
        if !specs.iter().any(|spec| version::is_glob(plan::split_spec(spec).0)) {
            return Ok(specs);
        }
        let listing = self
            .call
            .remote
            .check(&format!("{ENVIRONMENT}apt-cache pkgnames"), "listing apt's packages")
            .await?
            .stdout_text();
        let mut known: Vec<&str> = listing.lines().map(str::trim).collect();
        known.sort_unstable();
        let mut expanded = Vec::new();
        for spec in specs {
            let name = plan::split_spec(&spec).0;
            if !version::is_glob(name) {
                expanded.push(spec);
                continue;
            }
            let multiarch = name.contains(':');
            let matches: Vec<String> = known
                .iter()
                .filter(|known| multiarch || !known.contains(':'))
                .filter(|known| version::glob_matches(name, known))
                .map(|known| known.to_string())
                .collect();
            if matches.is_empty() {
                return Err(fail(format!("No package(s) matching '{name}' available")));
            }
            expanded.extend(matches);
        }
        Ok(expanded)
    }

    /// apt-get update, retried with backoff as Ansible retries it, then the query again.
    async fn update_cache(
        &self,
        names: &[String],
        retries: i64,
        max_delay: i64,
    ) -> Result<Facts, Failure> {
        let script = plan::query_script(names, self.options.default_release.as_deref());
        let mut last_error = String::new();
        for attempt in 0..retries {
            let line = format!(
                "{ENVIRONMENT}apt-get update -q -o DPkg::Lock::Timeout={} >&2 && {script}",
                self.options.lock_timeout
            );
            let output = self.call.remote.run(&line).await?;
            let stderr = output.stderr_text();
            let warned = stderr.contains("Some index files failed to download");
            if output.rc == 0 && !warned {
                return Ok(plan::parse_facts(&output.stdout_text()));
            }
            last_error = failed_fetches(&stderr);
            let delay = (1_i64 << attempt.min(10)).min(max_delay.max(0));
            tokio::time::sleep(Duration::from_secs(delay as u64)).await;
        }
        let reason = if last_error.is_empty() { "unknown reason".into() } else { last_error };
        Err(fail(format!("Failed to update apt cache after {retries} retries: {reason}")))
    }

    /// Runs an apt-get command line (with the policy-rc.d wrapper when asked for).
    async fn apt_get(&self, words: &[String]) -> Result<Ran, Failure> {
        let line = quote_all(words);
        let command = match self.policy_rc_d {
            None => line.clone(),
            Some(code) => with_policy_rc_d(&line, code),
        };
        let output = self.call.remote.run(&format!("{ENVIRONMENT}{command}")).await?;
        Ok(Ran { rc: output.rc, stdout: output.stdout_text(), stderr: output.stderr_text(), line })
    }

    fn diff(&self, stdout: &str) -> Value {
        if self.call.diff { json!({"prepared": plan::prepared_diff(stdout)}) } else { json!({}) }
    }

    async fn install(&self, specs: &[String], facts: &Facts, state: &str) -> Outcome {
        let build_dep = state == "build-dep";
        let latest = state == "latest";
        let planned =
            plan::plan_install(specs, facts, latest, self.options.only_upgrade, build_dep)
                .map_err(fail)?;
        let mut outcome = result([("changed", Value::Bool(false))]);
        if !planned.items.is_empty() {
            let words = plan::install_command(&planned.items, &self.options, build_dep);
            let ran = self.apt_get(&words).await?;
            if ran.rc != 0 {
                return Err(command_failed(&format!("'{}' failed: {}", ran.line, ran.stderr), ran));
            }
            let changed = !build_dep || !ran.stdout.contains(NOTHING_TO_DO);
            outcome = self.changed_result(changed, ran);
        }
        if !build_dep && !self.call.check_mode && !planned.mark_manual.is_empty() {
            let mut words = vec!["apt-mark".to_string(), "manual".into()];
            words.extend(planned.mark_manual);
            let line = quote_all(&words);
            let output = self.call.remote.run(&format!("{ENVIRONMENT}{line}")).await?;
            if output.rc != 0 {
                let stderr = output.stderr_text();
                let message = format!("'{line}' failed: {stderr}");
                return Err(command_failed(
                    &message,
                    Ran { rc: output.rc, stdout: output.stdout_text(), stderr, line },
                ));
            }
        }
        Ok(outcome)
    }

    fn changed_result(&self, changed: bool, ran: Ran) -> Map<String, Value> {
        let diff = self.diff(&ran.stdout);
        let mut outcome = result([("changed", Value::Bool(changed))]);
        insert_output(&mut outcome, &ran.stdout, &ran.stderr);
        outcome.insert("diff".into(), diff);
        outcome
    }

    async fn remove(&self, specs: &[String], facts: &Facts) -> Outcome {
        let items = plan::plan_remove(specs, facts, self.options.purge);
        if items.is_empty() {
            return Ok(result([("changed", Value::Bool(false))]));
        }
        let ran = self.apt_get(&plan::remove_command(&items, &self.options)).await?;
        if ran.rc != 0 {
            let message = format!("'apt-get remove {}' failed: {}", quote_all(&items), ran.stderr);
            return Err(command_failed(&message, ran));
        }
        Ok(self.changed_result(true, ran))
    }

    async fn cleanup(&self, operation: &str) -> Outcome {
        let ran = self.apt_get(&plan::cleanup_command(operation, &self.options)).await?;
        if ran.rc != 0 {
            let message = format!("'apt-get {operation}' failed: {}", ran.stderr);
            return Err(command_failed(&message, ran));
        }
        let marker = if operation == "autoremove" {
            "The following packages will be REMOVED"
        } else {
            "Del "
        };
        let changed = ran.stdout.contains(marker);
        Ok(self.changed_result(changed, ran))
    }

    async fn upgrade(&self, mode: &str, facts: &Facts, force_apt_get: bool) -> Outcome {
        let words = plan::upgrade_command(mode, &self.options, facts.aptitude, force_apt_get)
            .map_err(fail)?;
        let ran = self.apt_get(&words).await?;
        let operation = if matches!(mode, "dist" | "full") { "dist-upgrade" } else { "upgrade" };
        if ran.rc != 0 {
            let message = format!("'apt-get {operation}' failed: {}", ran.stderr);
            return Err(command_failed(&message, ran));
        }
        let changed = !ran.stdout.contains(NOTHING_TO_DO);
        let mut outcome =
            result([("changed", Value::Bool(changed)), ("msg", Value::from(ran.stdout.clone()))]);
        insert_output(&mut outcome, &ran.stdout, &ran.stderr);
        if changed {
            outcome.insert("diff".into(), self.diff(&ran.stdout));
        }
        Ok(outcome)
    }

    /// `deb:` files (comma-separated; a URL is downloaded on the host first) whose version is
    /// not the installed one go through apt-get, which also brings their dependencies.
    async fn install_debs(&self, debs: &str) -> Outcome {
        let mut paths = Vec::new();
        let mut downloads = Vec::new();
        for deb in debs.split(',').map(str::trim).filter(|deb| !deb.is_empty()) {
            if deb.contains("://") {
                let path = self.download(deb).await?;
                downloads.push(path.clone());
                paths.push(path);
            } else {
                paths.push(deb.to_string());
            }
        }
        let outcome = self.install_deb_paths(&paths).await;
        if !downloads.is_empty() {
            let parents: Vec<String> = downloads
                .iter()
                .filter_map(|path| path.rsplit_once('/').map(|(dir, _)| dir.to_string()))
                .collect();
            self.call.remote.run(&format!("rm -rf {}", quote_all(&parents))).await?;
        }
        outcome
    }

    async fn install_deb_paths(&self, paths: &[String]) -> Outcome {
        let script: String = paths
            .iter()
            .map(|path| {
                let quoted = quote(path);
                format!(
                    "printf '@@ %s\\n' {quoted}; dpkg-deb -f {quoted} Package Version || exit 1; \
                     dpkg-query -W -f='I ${{db:Status-Abbrev}}|${{Version}}\\n' -- \
                     \"$(dpkg-deb -f {quoted} Package)\" 2>/dev/null; "
                )
            })
            .collect::<String>()
            + "true";
        let output = self.call.remote.check(&script, "reading the .deb files").await?;
        let pending = debs_to_install(&output.stdout_text());
        if pending.is_empty() {
            let mut outcome = result([("changed", Value::Bool(false)), ("diff", Value::from(""))]);
            insert_output(&mut outcome, "", "");
            return Ok(outcome);
        }
        let items: Vec<String> = pending
            .iter()
            .map(|path| if path.contains('/') { path.clone() } else { format!("./{path}") })
            .collect();
        let words = plan::install_command(&items, &self.options, false);
        let ran = self.apt_get(&words).await?;
        if ran.rc != 0 {
            return Err(command_failed(&format!("{} failed", ran.line), ran));
        }
        // Unlike the other paths, Ansible gives a .deb install's plan even without --diff.
        let prepared = plan::prepared_diff(&ran.stdout);
        let mut outcome = self.changed_result(true, ran);
        outcome.insert("diff".into(), json!({ "prepared": prepared }));
        Ok(outcome)
    }

    /// Downloads a .deb with apt's own HTTP client, which every Debian host has.
    async fn download(&self, url: &str) -> Result<String, Failure> {
        let file = url.rsplit('/').next().filter(|name| !name.is_empty()).unwrap_or("package.deb");
        let script = format!(
            "dir=$(mktemp -d) && /usr/lib/apt/apt-helper download-file {} \"$dir\"/{} >&2 && \
             printf '%s\\n' \"$dir\"/{}",
            quote(url),
            quote(file),
            quote(file)
        );
        let output = self.call.remote.run(&script).await?;
        if output.rc != 0 {
            return Err(fail(format!(
                "Failure downloading {url}, {}",
                output.stderr_text().trim()
            )));
        }
        Ok(output.stdout_text().trim().to_string())
    }
}

/// The .deb paths whose Version differs from the installed one, from the deb query.
fn debs_to_install(text: &str) -> Vec<String> {
    let mut pending = Vec::new();
    let mut current: Option<(String, String, Option<String>)> = None;
    let mut finish = |entry: Option<(String, String, Option<String>)>| {
        if let Some((path, version, installed)) = entry
            && installed.is_none_or(|installed| {
                version::compare(&installed, &version) != std::cmp::Ordering::Equal
            })
        {
            pending.push(path);
        }
    };
    for line in text.lines() {
        if let Some(path) = line.strip_prefix("@@ ") {
            finish(current.take());
            current = Some((path.to_string(), String::new(), None));
        } else if let Some(entry) = current.as_mut() {
            if let Some(version) = line.strip_prefix("Version: ") {
                entry.1 = version.trim().to_string();
            } else if let Some(rest) = line.strip_prefix("I ") {
                let (abbrev, version) = rest.split_once('|').unwrap_or((rest, ""));
                if abbrev.as_bytes().get(1) == Some(&b'i') {
                    entry.2 = Some(version.trim().to_string());
                }
            }
        }
    }
    finish(current.take());
    pending
}

/// `stdout`, `stderr` and their `_lines`, as Ansible adds them to any module result.
fn insert_output(outcome: &mut Map<String, Value>, stdout: &str, stderr: &str) {
    let lines = |text: &str| Value::from(text.lines().map(Value::from).collect::<Vec<_>>());
    outcome.insert("stdout".into(), Value::from(stdout));
    outcome.insert("stderr".into(), Value::from(stderr));
    outcome.insert("stdout_lines".into(), lines(stdout));
    outcome.insert("stderr_lines".into(), lines(stderr));
}

fn command_failed(message: &str, ran: Ran) -> Failure {
    let mut outcome = result([("changed", Value::Bool(false)), ("msg", Value::from(message))]);
    insert_output(&mut outcome, &ran.stdout, &ran.stderr);
    outcome.insert("rc".into(), Value::from(ran.rc));
    Failure::Failed(outcome)
}

/// The `Err:` lines of a failed apt-get update, for the final message.
fn failed_fetches(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("E:") || line.starts_with("W:") || line.starts_with("Err"))
        .collect();
    lines.join("\n")
}

/// Runs `line` with a /usr/sbin/policy-rc.d that exits `code` (so no service starts), then
/// puts back whatever was there before.
fn with_policy_rc_d(line: &str, code: i64) -> String {
    format!(
        "policy=/usr/sbin/policy-rc.d; saved=; \
         if [ -e $policy ]; then saved=$(mktemp) && mv $policy \"$saved\" || exit 1; fi; \
         printf '#!/bin/sh\\nexit %d\\n' {code} > $policy && chmod 0755 $policy || exit 1; \
         {line}; rc=$?; rm -f $policy; \
         if [ -n \"$saved\" ]; then mv \"$saved\" $policy; fi; exit $rc"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debs_already_at_their_version_are_skipped() {
        let text = "@@ /tmp/a.deb\nPackage: a\nVersion: 1.0-1\nI ii |1.0-1\n\
                    @@ /tmp/b.deb\nPackage: b\nVersion: 2.0-1\nI ii |1.0-1\n\
                    @@ c.deb\nPackage: c\nVersion: 1.0\n";
        assert_eq!(debs_to_install(text), ["/tmp/b.deb", "c.deb"]);
    }

    #[test]
    fn policy_rc_d_is_restored() {
        let line = with_policy_rc_d("apt-get install x", 101);
        assert!(line.contains("exit %d\\n' 101 > $policy"));
        assert!(line.ends_with("mv \"$saved\" $policy; fi; exit $rc"));
    }

    #[test]
    fn fetch_errors_keep_apts_lines() {
        let stderr = "Hit:1 http://x\nErr:2 http://y\n  Connection refused\nW: Some index files";
        assert_eq!(failed_fetches(stderr), "Err:2 http://y\nW: Some index files");
    }
}
