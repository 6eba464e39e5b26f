//! The apt planners, with no host in sight: the query script and how to read its answer,
//! which package specs need apt-get, and the apt-get command lines, built as Ansible's apt
//! module builds them so that stdout, `changed` and the end state match.

use std::collections::BTreeMap;

use super::version::{compare, glob_matches};
use crate::connection::quote;

/// apt-get's summary when a run would change nothing.
pub const NOTHING_TO_DO: &str = "\n0 upgraded, 0 newly installed, 0 to remove";

/// The environment every apt command runs with: no prompts, parseable English.
pub const ENVIRONMENT: &str = "export DEBIAN_FRONTEND=noninteractive DEBIAN_PRIORITY=critical \
     LANG=C.UTF-8 LC_ALL=C.UTF-8 LC_MESSAGES=C.UTF-8 LC_CTYPE=C.UTF-8 LANGUAGE=C.UTF-8; ";

/// What the host says about one package name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Status {
    /// apt knows at least one version of it (from a repository or dpkg's database).
    pub known: bool,
    /// dpkg's state is "installed".
    pub installed: bool,
    pub installed_version: Option<String>,
    /// dpkg still lists files of it (installed, or removed with its configuration kept).
    pub has_files: bool,
    /// apt's candidate under the current policy.
    pub candidate: Option<String>,
    /// Every version apt-cache policy lists.
    pub versions: Vec<String>,
    /// Packages that provide this name, each with whether it is installed.
    pub providers: Vec<(String, bool)>,
    /// apt-mark lists it as automatically installed.
    pub auto: bool,
}

/// The host's answer to `query_script`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Facts {
    /// The mtime of apt's lists, as Ansible's cache_update_time.
    pub cache_mtime: i64,
    pub now: i64,
    pub aptitude: bool,
    pub packages: BTreeMap<String, Status>,
}

/// A package spec split as Ansible splits it: `name`, `name=glob`, `name>=version`.
pub fn split_spec(spec: &str) -> (&str, Option<&str>, Option<&str>) {
    let equals = spec.find('=');
    match equals {
        Some(at) if at > 0 && spec.as_bytes()[at - 1] == b'>' => {
            (&spec[..at - 1], Some(">="), Some(&spec[at + 1..]))
        }
        Some(at) => (&spec[..at], Some("="), Some(&spec[at + 1..])),
        None => (spec, None, None),
    }
}

/// One script that prints the cache time, the clock, whether aptitude exists, and for every
/// name its dpkg status, apt's policy, its providers and whether it was installed as a
/// dependency.
pub fn query_script(names: &[String], default_release: Option<&str>) -> String {
    let release = default_release
        .map(|release| format!(" -o {}", quote(&format!("APT::Default-Release={release}"))))
        .unwrap_or_default();
    let quoted: Vec<String> = names.iter().map(|name| quote(name)).collect();
    let mut script = String::from(ENVIRONMENT);
    script.push_str(
        "printf 'mtime %s\\n' \"$(stat -c %Y /var/lib/apt/periodic/update-success-stamp \
         2>/dev/null || stat -c %Y /var/lib/apt/lists 2>/dev/null || echo 0)\"; \
         printf 'now %s\\n' \"$(date +%s)\"; \
         if command -v aptitude >/dev/null 2>&1; then echo aptitude; fi; ",
    );
    if names.is_empty() {
        return script;
    }
    script.push_str(&format!(
        "for name in {}; do printf '@@ %s\\n' \"$name\"; \
         dpkg-query -W -f='S ${{db:Status-Abbrev}}|${{Version}}\\n' -- \"$name\" 2>/dev/null; \
         for list in /var/lib/dpkg/info/\"$name\".list /var/lib/dpkg/info/\"$name\":*.list; do \
         [ -s \"$list\" ] && echo F && break; done; \
         apt-cache{release} policy \"$name\" 2>/dev/null | sed 's/^/P /'; \
         apt-cache showpkg \"$name\" 2>/dev/null | sed '1,/^Reverse Provides:/d' | \
         while read -r provider version; do [ -n \"$provider\" ] || continue; \
         printf 'V %s %s\\n' \"$provider\" \"$(dpkg-query -W -f='${{db:Status-Abbrev}}' \
         -- \"$provider\" 2>/dev/null)\"; done; done; \
         apt-mark showauto {} 2>/dev/null | sed 's/^/A /'; true",
        quoted.join(" "),
        quoted.join(" ")
    ));
    script
}

/// Reads what `query_script` printed.
pub fn parse_facts(text: &str) -> Facts {
    let mut facts = Facts::default();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(value) = line.strip_prefix("mtime ") {
            facts.cache_mtime = value.trim().parse().unwrap_or(0);
        } else if let Some(value) = line.strip_prefix("now ") {
            facts.now = value.trim().parse().unwrap_or(0);
        } else if line == "aptitude" {
            facts.aptitude = true;
        } else if let Some(name) = line.strip_prefix("@@ ") {
            facts.packages.insert(name.to_string(), Status::default());
            current = Some(name.to_string());
        } else if let Some(name) = line.strip_prefix("A ") {
            if let Some(status) = facts.packages.get_mut(name.trim()) {
                status.auto = true;
            }
        } else if let Some(status) = current.as_ref().and_then(|name| facts.packages.get_mut(name))
        {
            read_status_line(status, line);
        }
    }
    facts
}

fn read_status_line(status: &mut Status, line: &str) {
    if let Some(rest) = line.strip_prefix("S ") {
        // Several architectures print several lines; the first is the one apt-get acts on.
        if status.installed_version.is_some() || status.has_files {
            return;
        }
        let (abbrev, version) = rest.split_once('|').unwrap_or((rest, ""));
        status.installed = abbrev.as_bytes().get(1) == Some(&b'i');
        if status.installed {
            status.installed_version = Some(version.trim().to_string());
        }
    } else if line == "F" {
        status.has_files = true;
    } else if let Some(rest) = line.strip_prefix("V ") {
        let (provider, abbrev) = rest.split_once(' ').unwrap_or((rest, ""));
        status.providers.push((provider.to_string(), abbrev.as_bytes().get(1) == Some(&b'i')));
    } else if let Some(policy) = line.strip_prefix("P ") {
        read_policy_line(status, policy);
    }
}

/// apt-cache policy: `  Candidate: 1.0-1`, and version-table lines `     1.0-1 500` (or
/// ` *** 1.0-1 500` for the installed one); source lines are indented further.
fn read_policy_line(status: &mut Status, line: &str) {
    if let Some(candidate) = line.trim_start().strip_prefix("Candidate:") {
        let candidate = candidate.trim();
        status.candidate = (candidate != "(none)").then(|| candidate.to_string());
        return;
    }
    let indent = line.len() - line.trim_start().len();
    let entry = line.strip_prefix(" *** ").or((indent == 5).then(|| line.trim_start()));
    if let Some(entry) = entry {
        let mut words = entry.split_whitespace();
        if let (Some(version), Some(priority), None) = (words.next(), words.next(), words.next())
            && priority.parse::<i64>().is_ok()
        {
            status.known = true;
            status.versions.push(version.to_string());
        }
    }
}

/// The options every apt-get call gets: dpkg's, and how long to wait for dpkg's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub dpkg_options: String,
    pub lock_timeout: i64,
    pub force: bool,
    pub autoremove: bool,
    pub fail_on_autoremove: bool,
    pub only_upgrade: bool,
    pub fixed: bool,
    pub purge: bool,
    pub allow_unauthenticated: bool,
    pub allow_downgrade: bool,
    pub allow_change_held_packages: bool,
    pub install_recommends: Option<bool>,
    pub default_release: Option<String>,
    pub check_mode: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            dpkg_options: "force-confdef,force-confold".into(),
            lock_timeout: 60,
            force: false,
            autoremove: false,
            fail_on_autoremove: false,
            only_upgrade: false,
            fixed: false,
            purge: false,
            allow_unauthenticated: false,
            allow_downgrade: false,
            allow_change_held_packages: false,
            install_recommends: None,
            default_release: None,
            check_mode: false,
        }
    }
}

impl Options {
    /// `-o Dpkg::Options::=--X` for each dpkg option, then the lock wait.
    fn dpkg_words(&self) -> Vec<String> {
        let mut words = Vec::new();
        for option in self.dpkg_options.split(',').filter(|option| !option.is_empty()) {
            words.push("-o".into());
            words.push(format!("Dpkg::Options::=--{option}"));
        }
        words.push("-o".into());
        words.push(format!("DPkg::Lock::Timeout={}", self.lock_timeout));
        words
    }

    fn flag(words: &mut Vec<String>, on: bool, word: &str) {
        if on {
            words.push(word.into());
        }
    }

    fn release_words(&self, words: &mut Vec<String>) {
        if let Some(release) = &self.default_release {
            words.push("-t".into());
            words.push(release.clone());
        }
    }

    fn recommends_words(&self, words: &mut Vec<String>) {
        match self.install_recommends {
            Some(true) => words.extend(["-o".into(), "APT::Install-Recommends=yes".into()]),
            Some(false) => words.extend(["-o".into(), "APT::Install-Recommends=no".into()]),
            None => {}
        }
    }
}

/// What one `install` of specs needs.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct InstallPlan {
    /// The arguments for apt-get install (`name=version` or `name`).
    pub items: Vec<String>,
    /// Names whose mark apt-mark must turn to manual afterwards.
    pub mark_manual: Vec<String>,
}

/// Which of `specs` apt-get must install, as Ansible decides it: a missing package, one whose
/// installed version does not satisfy the spec, or (for `latest`) one with a newer candidate.
pub fn plan_install(
    specs: &[String],
    facts: &Facts,
    latest: bool,
    only_upgrade: bool,
    build_dep: bool,
) -> Result<InstallPlan, String> {
    let mut plan = InstallPlan::default();
    for spec in specs {
        if build_dep {
            plan.items.push(spec.clone());
            continue;
        }
        let (name, comparison, version) = split_spec(spec);
        let status = facts.packages.get(name).cloned().unwrap_or_default();
        if status.auto {
            plan.mark_manual.push(name.to_string());
        }
        let (installed, satisfied, installable) =
            install_status(name, comparison, version, &status)?;
        if !installed && only_upgrade {
            continue;
        }
        if !satisfied && installable.is_none() {
            return Err(format!("no available installation candidate for {spec}"));
        }
        match installable {
            Some(found) if (!installed && !only_upgrade) || latest || !satisfied => {
                plan.items.push(match (found, version) {
                    (Installable::Version(found), _) => format!("{name}={found}"),
                    (Installable::Any, Some(version)) => format!("{name}={version}"),
                    (Installable::Any, None) => name.to_string(),
                });
            }
            Some(_) if satisfied && comparison == Some("=") => {
                plan.items.push(format!("{name}={}", version.unwrap_or_default()));
            }
            _ => {}
        }
    }
    Ok(plan)
}

/// What apt-get could install for a name.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Installable {
    Version(String),
    /// A virtual package: apt-get picks the provider.
    Any,
}

/// (installed at all, installed version satisfies the spec, what could be installed).
fn install_status(
    name: &str,
    comparison: Option<&str>,
    version: Option<&str>,
    status: &Status,
) -> Result<(bool, bool, Option<Installable>), String> {
    if !status.known {
        if status.providers.is_empty() {
            return Err(format!("No package matching '{name}' is available"));
        }
        // A virtual package that one installed package provides is already there.
        if let [(_, true)] = status.providers.as_slice() {
            return Ok((true, true, None));
        }
        return Ok((false, false, Some(Installable::Any)));
    }
    let best = best_match(comparison, version, status);
    let Some(installed_version) = status.installed_version.as_deref().filter(|_| status.installed)
    else {
        return Ok((false, false, best.map(Installable::Version)));
    };
    let differs = |best: &String| best != installed_version;
    let (satisfied, installable) = match (comparison, version) {
        (Some("="), Some(pattern)) => (
            glob_matches(pattern, installed_version),
            best.filter(|best| differs(best) && glob_matches(pattern, best)),
        ),
        (Some(">="), Some(minimum)) => (
            compare(installed_version, minimum).is_ge(),
            best.filter(|best| differs(best) && compare(best, minimum).is_ge()),
        ),
        _ => (true, best.filter(differs)),
    };
    Ok((true, satisfied, installable.map(Installable::Version)))
}

/// apt's candidate, or for `name=glob` the highest version matching the glob (a pin on it
/// outranks every other, as installing a given version does on apt-get's command line).
fn best_match(comparison: Option<&str>, version: Option<&str>, status: &Status) -> Option<String> {
    match (comparison, version) {
        (Some("="), Some(pattern)) => status
            .versions
            .iter()
            .filter(|candidate| glob_matches(pattern, candidate))
            .max_by(|left, right| compare(left, right))
            .cloned(),
        _ => status.candidate.clone(),
    }
}

/// The specs `state: absent` must remove: installed ones satisfying the spec, and with
/// `purge` also removed ones whose configuration is still there.
pub fn plan_remove(specs: &[String], facts: &Facts, purge: bool) -> Vec<String> {
    specs
        .iter()
        .filter(|spec| {
            let (name, comparison, version) = split_spec(spec);
            let Some(status) = facts.packages.get(name).filter(|status| status.known) else {
                return false;
            };
            let satisfied = match (status.installed_version.as_deref(), comparison, version) {
                (Some(installed), Some("="), Some(pattern)) => glob_matches(pattern, installed),
                (Some(installed), Some(">="), Some(minimum)) => compare(installed, minimum).is_ge(),
                (Some(_), _, _) => status.installed,
                (None, _, _) => false,
            };
            satisfied || (status.has_files && purge)
        })
        .cloned()
        .collect()
}

/// `apt-get install` (or `build-dep`) of planned items.
pub fn install_command(items: &[String], options: &Options, build_dep: bool) -> Vec<String> {
    let mut words = vec!["apt-get".to_string(), "-y".into()];
    words.extend(options.dpkg_words());
    Options::flag(&mut words, options.only_upgrade, "--only-upgrade");
    Options::flag(&mut words, options.fixed, "--fix-broken");
    Options::flag(&mut words, options.force, "--force-yes");
    Options::flag(&mut words, options.autoremove && !build_dep, "--auto-remove");
    Options::flag(&mut words, options.fail_on_autoremove, "--no-remove");
    Options::flag(&mut words, options.check_mode, "--simulate");
    words.push(if build_dep { "build-dep" } else { "install" }.into());
    words.extend(items.iter().cloned());
    options.release_words(&mut words);
    options.recommends_words(&mut words);
    Options::flag(&mut words, options.allow_unauthenticated, "--allow-unauthenticated");
    Options::flag(&mut words, options.allow_downgrade, "--allow-downgrades");
    Options::flag(&mut words, options.allow_change_held_packages, "--allow-change-held-packages");
    words
}

/// `apt-get remove` of planned items.
pub fn remove_command(items: &[String], options: &Options) -> Vec<String> {
    let mut words = vec!["apt-get".to_string(), "-q".into(), "-y".into()];
    words.extend(options.dpkg_words());
    Options::flag(&mut words, options.purge, "--purge");
    Options::flag(&mut words, options.force, "--force-yes");
    Options::flag(&mut words, options.autoremove, "--auto-remove");
    Options::flag(&mut words, options.check_mode, "--simulate");
    Options::flag(&mut words, options.allow_change_held_packages, "--allow-change-held-packages");
    words.push("remove".into());
    words.extend(items.iter().cloned());
    words
}

/// `apt-get autoremove` or `autoclean` when no package is named.
pub fn cleanup_command(operation: &str, options: &Options) -> Vec<String> {
    let mut words = vec!["apt-get".to_string(), "-y".into()];
    words.extend(options.dpkg_words());
    Options::flag(&mut words, options.purge, "--purge");
    Options::flag(&mut words, options.force, "--force-yes");
    words.push(operation.into());
    Options::flag(&mut words, options.check_mode, "--simulate");
    words
}

/// The whole-system upgrade for `upgrade: dist|full|yes|safe`. Without aptitude on the host
/// Ansible falls back to apt-get, which is the only way supported here.
pub fn upgrade_command(
    mode: &str,
    options: &Options,
    aptitude: bool,
    force_apt_get: bool,
) -> Result<Vec<String>, String> {
    if aptitude && !force_apt_get && mode != "dist" {
        return Err(format!(
            "not supported yet: upgrade={mode} through aptitude (aptitude is installed); \
             set force_apt_get: true to upgrade with apt-get"
        ));
    }
    let mut words = vec!["apt-get".to_string(), "-y".into()];
    words.extend(options.dpkg_words());
    Options::flag(&mut words, options.force, "--force-yes");
    Options::flag(&mut words, options.fail_on_autoremove, "--no-remove");
    Options::flag(&mut words, options.allow_unauthenticated, "--allow-unauthenticated");
    Options::flag(&mut words, options.allow_downgrade, "--allow-downgrades");
    Options::flag(&mut words, options.check_mode, "--simulate");
    match mode {
        "dist" | "full" => words.push("dist-upgrade".into()),
        _ => words.extend(["upgrade".into(), "--with-new-pkgs".into()]),
    }
    Options::flag(&mut words, options.autoremove, "--auto-remove");
    options.release_words(&mut words);
    Ok(words)
}

/// Ansible's `diff.prepared`: apt-get's plan, from after "Reading state information..." to
/// the "N upgraded" summary line.
pub fn prepared_diff(output: &str) -> String {
    let lines: Vec<&str> = output.lines().collect();
    let start = lines
        .iter()
        .position(|line| *line == "Reading state information...")
        .map_or(0, |index| index + 1);
    let end =
        lines.iter().position(|line| upgraded_summary(line)).map_or(lines.len(), |index| index + 1);
    lines.get(start..end.max(start)).unwrap_or_default().join("\n")
}

/// "3 upgraded, …" or "3 packages upgraded, …" at the start of a line.
fn upgraded_summary(line: &str) -> bool {
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && {
        let rest = &line[digits..];
        rest.starts_with(" upgraded") || rest.starts_with(" packages upgraded")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(installed: Option<&str>, candidate: Option<&str>, versions: &[&str]) -> Status {
        Status {
            known: !versions.is_empty() || installed.is_some(),
            installed: installed.is_some(),
            installed_version: installed.map(str::to_string),
            has_files: installed.is_some(),
            candidate: candidate.map(str::to_string),
            versions: versions.iter().map(|v| v.to_string()).collect(),
            providers: Vec::new(),
            auto: false,
        }
    }

    fn facts(entries: &[(&str, Status)]) -> Facts {
        Facts {
            packages: entries.iter().map(|(n, s)| (n.to_string(), s.clone())).collect(),
            ..Facts::default()
        }
    }

    fn specs(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn splits_specs_like_ansible() {
        assert_eq!(split_spec("foo"), ("foo", None, None));
        assert_eq!(split_spec("foo=1.0*"), ("foo", Some("="), Some("1.0*")));
        assert_eq!(split_spec("foo>=2"), ("foo", Some(">="), Some("2")));
    }

    #[test]
    fn reads_the_query_answer() {
        let text = "mtime 1700000000\nnow 1700000100\n@@ hello\nS ii |1.0-1\nF\n\
                    P hello:\nP   Installed: 1.0-1\nP   Candidate: 2.0-1\nP   Version table:\n\
                    P      2.0-1 500\nP         500 http://127.0.0.1:8000 ./ Packages\n\
                    P  *** 1.0-1 100\nP         100 /var/lib/dpkg/status\n\
                    @@ mail-transport-agent\nV exim4-daemon-light ii \n\
                    @@ gone\nS rc |1.0-1\nF\nA hello\n";
        let facts = parse_facts(text);
        assert_eq!((facts.cache_mtime, facts.now, facts.aptitude), (1700000000, 1700000100, false));
        let hello = &facts.packages["hello"];
        assert!(hello.known && hello.installed && hello.auto && hello.has_files);
        assert_eq!(hello.installed_version.as_deref(), Some("1.0-1"));
        assert_eq!(hello.candidate.as_deref(), Some("2.0-1"));
        assert_eq!(hello.versions, ["2.0-1", "1.0-1"]);
        let virtual_package = &facts.packages["mail-transport-agent"];
        assert!(!virtual_package.known);
        assert_eq!(virtual_package.providers, [("exim4-daemon-light".to_string(), true)]);
        let gone = &facts.packages["gone"];
        assert!(!gone.installed && gone.has_files && gone.installed_version.is_none());
    }

    #[test]
    fn present_installs_only_what_is_missing() {
        let facts = facts(&[
            ("old", status(Some("1.0-1"), Some("2.0-1"), &["2.0-1", "1.0-1"])),
            ("new", status(None, Some("2.0-1"), &["2.0-1", "1.0-1"])),
        ]);
        let plan = plan_install(&specs(&["old", "new"]), &facts, false, false, false).unwrap();
        assert_eq!(plan.items, ["new=2.0-1"]);
        let latest = plan_install(&specs(&["old", "new"]), &facts, true, false, false).unwrap();
        assert_eq!(latest.items, ["old=2.0-1", "new=2.0-1"]);
        let only = plan_install(&specs(&["old", "new"]), &facts, true, true, false).unwrap();
        assert_eq!(only.items, ["old=2.0-1"]);
    }

    #[test]
    fn versions_and_globs_pick_the_best_match() {
        let facts = facts(&[("hello", status(Some("2.0-1"), Some("2.0-1"), &["2.0-1", "1.0-1"]))]);
        let plan = plan_install(&specs(&["hello=1.0*"]), &facts, false, false, false).unwrap();
        assert_eq!(plan.items, ["hello=1.0-1"]);
        let plan = plan_install(&specs(&["hello=2.*"]), &facts, false, false, false).unwrap();
        assert!(plan.items.is_empty());
        let plan = plan_install(&specs(&["hello>=1.5"]), &facts, false, false, false).unwrap();
        assert!(plan.items.is_empty());
        let error = plan_install(&specs(&["hello=3*"]), &facts, false, false, false).unwrap_err();
        assert_eq!(error, "no available installation candidate for hello=3*");
    }

    #[test]
    fn unknown_and_virtual_names() {
        let mut virtual_one = Status::default();
        virtual_one.providers.push(("mta".into(), true));
        let mut virtual_two = Status::default();
        virtual_two.providers.extend([("a".into(), false), ("b".into(), false)]);
        let facts = facts(&[("one", virtual_one), ("two", virtual_two)]);
        let plan = plan_install(&specs(&["one", "two"]), &facts, false, false, false).unwrap();
        assert_eq!(plan.items, ["two"]);
        let error = plan_install(&specs(&["nope"]), &facts, false, false, false).unwrap_err();
        assert_eq!(error, "No package matching 'nope' is available");
    }

    #[test]
    fn auto_installed_names_are_marked_manual() {
        let mut hello = status(Some("1.0-1"), Some("1.0-1"), &["1.0-1"]);
        hello.auto = true;
        let plan =
            plan_install(&specs(&["hello"]), &facts(&[("hello", hello)]), false, false, false)
                .unwrap();
        assert!(plan.items.is_empty());
        assert_eq!(plan.mark_manual, ["hello"]);
    }

    #[test]
    fn absent_removes_installed_and_purges_leftovers() {
        let mut leftover = status(None, Some("1.0-1"), &["1.0-1"]);
        leftover.has_files = true;
        let facts = facts(&[
            ("hello", status(Some("1.0-1"), Some("1.0-1"), &["1.0-1"])),
            ("leftover", leftover),
            ("missing", status(None, Some("1.0-1"), &["1.0-1"])),
        ]);
        let all = specs(&["hello", "leftover", "missing", "unknown"]);
        assert_eq!(plan_remove(&all, &facts, false), ["hello"]);
        assert_eq!(plan_remove(&all, &facts, true), ["hello", "leftover"]);
        assert!(plan_remove(&specs(&["hello=2*"]), &facts, false).is_empty());
    }

    #[test]
    fn commands_carry_ansibles_options() {
        let options = Options {
            install_recommends: Some(false),
            default_release: Some("trixie".into()),
            check_mode: true,
            allow_downgrade: true,
            ..Options::default()
        };
        assert_eq!(
            install_command(&specs(&["hello=1.0-1"]), &options, false).join(" "),
            "apt-get -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
             -o DPkg::Lock::Timeout=60 --simulate install hello=1.0-1 -t trixie \
             -o APT::Install-Recommends=no --allow-downgrades"
        );
        let purge = Options { purge: true, autoremove: true, ..Options::default() };
        assert_eq!(
            remove_command(&specs(&["hello"]), &purge).join(" "),
            "apt-get -q -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
             -o DPkg::Lock::Timeout=60 --purge --auto-remove remove hello"
        );
        let upgrade = upgrade_command("yes", &Options::default(), false, false).unwrap();
        assert_eq!(upgrade[upgrade.len() - 2..], ["upgrade", "--with-new-pkgs"]);
        let dist = upgrade_command("full", &Options::default(), false, false).unwrap();
        assert_eq!(dist.last().unwrap(), "dist-upgrade");
        let error = upgrade_command("safe", &Options::default(), true, false).unwrap_err();
        assert!(error.starts_with("not supported yet: upgrade=safe through aptitude"));
        assert_eq!(
            cleanup_command("autoremove", &Options::default()).last().unwrap(),
            "autoremove"
        );
    }

    #[test]
    fn prepared_diff_is_the_plan() {
        let output = "Reading package lists...\nBuilding dependency tree...\n\
                      Reading state information...\nThe following NEW packages will be installed:\n  \
                      hello\n0 upgraded, 1 newly installed, 0 to remove and 0 not upgraded.\n\
                      Inst hello (1.0-1 local [all])\n";
        assert_eq!(
            prepared_diff(output),
            "The following NEW packages will be installed:\n  hello\n\
             0 upgraded, 1 newly installed, 0 to remove and 0 not upgraded."
        );
    }
}
