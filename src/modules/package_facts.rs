//! `package_facts`: the installed packages as `ansible_facts.packages`, read from dpkg's
//! database in one query (Ansible reads the same database through python-apt).

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::{Call, Outcome, fail, result};

/// One line per installed package (status, name, version, architecture, section), then
/// apt's package files with their origins, then apt's policy for every installed package,
/// which names the file each installed version came from.
const QUERY: &str = "export LC_ALL=C.UTF-8; \
     dpkg-query -W -f='${db:Status-Abbrev}\\t${binary:Package}\\t${Version}\\t\
     ${Architecture}\\t${Section}\\n' || exit 1; echo '@@ files'; apt-cache policy; \
     echo '@@ policy'; dpkg-query -W -f='${db:Status-Abbrev}${binary:Package}\\n' | \
     sed -n 's/^.i.//p' | xargs -r apt-cache policy";

/// The origin (`o=` of its Release file) of every package file apt-cache policy lists.
fn file_origins(text: &str) -> HashMap<String, String> {
    let mut origins = HashMap::new();
    let mut file: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(release) = trimmed.strip_prefix("release ") {
            let origin = release.split(',').find_map(|field| field.strip_prefix("o="));
            if let (Some(file), Some(origin)) = (file.take(), origin) {
                origins.insert(file, origin.to_string());
            }
        } else if let Some((priority, rest)) = trimmed.split_once(' ')
            && priority.parse::<i64>().is_ok()
        {
            file = Some(rest.to_string());
        }
    }
    origins
}

/// For each installed package, the origin of the first file its installed version is in.
fn installed_origins(policy: &str, origins: &HashMap<String, String>) -> HashMap<String, String> {
    let mut found = HashMap::new();
    let mut package: Option<String> = None;
    let mut installed_entry = false;
    for line in policy.lines() {
        if !line.starts_with(' ') {
            package = line.strip_suffix(':').map(str::to_string);
            installed_entry = false;
        } else if line.starts_with(" *** ") {
            installed_entry = true;
        } else if line.starts_with("     ") && !line.starts_with("        ") {
            installed_entry = false;
        } else if installed_entry && let Some(name) = package.take() {
            let file = line.trim().split_once(' ').map_or("", |(_, file)| file);
            found.insert(name, origins.get(file).cloned().unwrap_or_default());
        }
    }
    found
}

/// `{name: [{name, version, arch, category, origin, source}]}` from the query's answer.
pub fn parse(text: &str) -> Map<String, Value> {
    let (listing, rest) = text.split_once("@@ files\n").unwrap_or((text, ""));
    let (files, policy) = rest.split_once("@@ policy\n").unwrap_or((rest, ""));
    let origins = installed_origins(policy, &file_origins(files));
    let mut packages = Map::new();
    for line in listing.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let [abbrev, name, version, arch, section] = fields[..] else { continue };
        if abbrev.as_bytes().get(1) != Some(&b'i') {
            continue;
        }
        // dpkg names foreign-architecture packages `name:arch`, as apt's cache does.
        let entry = json!({
            "name": name,
            "version": version,
            "arch": arch,
            "category": section,
            "origin": origins.get(name).cloned().unwrap_or_default(),
            "source": "apt",
        });
        match packages.get_mut(name) {
            Some(Value::Array(list)) => list.push(entry),
            _ => {
                packages.insert(name.to_string(), Value::Array(vec![entry]));
            }
        }
    }
    packages
}

pub async fn run(call: &mut Call<'_>) -> Outcome {
    let managers = call.args.list(&["manager"]);
    let managers = if managers.is_empty() { vec!["auto".to_string()] } else { managers };
    call.args.choice(&["strategy"], &["first", "all"], Some("first"))?;
    if let Some(other) = managers.iter().find(|name| !matches!(name.as_str(), "auto" | "apt")) {
        return Err(fail(format!("not supported yet: package_facts with manager `{other}`")));
    }

    let output = call.remote.run(QUERY).await?;
    if output.rc != 0 {
        return Err(fail(format!(
            "Could not detect a supported package manager from the following list: {managers:?}, \
             or the required Python library is not installed. Check warnings for details."
        )));
    }
    let packages = parse(&output.stdout_text());
    Ok(result([
        ("changed", Value::Bool(false)),
        ("ansible_facts", json!({"packages": packages})),
        // Host facts, as Ansible keeps them, rather than registered variables.
        ("_bramble_gathered", Value::Bool(true)),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_packages_only() {
        let text = "ii \tbash\t5.2.37-2\tamd64\tshells\n\
                    rc \tgone\t1.0\tall\tmisc\n\
                    ii \tlibc6:i386\t2.41-1\ti386\tlibs\n\
                    @@ files\nPackage files:\n 100 /var/lib/dpkg/status\n     release a=now\n \
                    500 http://127.0.0.1:8000 ./ Packages\n     release o=tests,a=tests,c=\n\
                    @@ policy\nbash:\n  Installed: 5.2.37-2\n  Candidate: 5.2.37-2\n  \
                    Version table:\n *** 5.2.37-2 500\n        500 http://127.0.0.1:8000 ./ Packages\n\
                    \x20       100 /var/lib/dpkg/status\nlibc6:i386:\n  Installed: 2.41-1\n  \
                    Version table:\n *** 2.41-1 100\n        100 /var/lib/dpkg/status\n";
        let packages = parse(text);
        assert_eq!(packages["bash"][0]["origin"], "tests");
        assert_eq!(packages["libc6:i386"][0]["origin"], "");
        assert_eq!(packages.len(), 2);
        assert_eq!(packages["bash"][0]["version"], "5.2.37-2");
        assert_eq!(packages["bash"][0]["category"], "shells");
        assert_eq!(packages["libc6:i386"][0]["arch"], "i386");
    }
}
