//! `setup`: facts gathered with one POSIX shell script, no Python on the host.

use serde_json::{Map, Value};

use super::{Call, Outcome, fail, result};

/// A shell function `is_chroot`: true when the root is not init's. Init's root is compared
/// with ours by device and inode; where reading `/proc/1/root` is denied (some sandboxes deny
/// it even to root), by the device and path of the mount each sees at `/`, which a chroot
/// either sees as another file system or, rooted inside one, not at all.
pub const IS_CHROOT: &str = r#"root_mount() { awk '$5 == "/" { found = $3 " " $4 } END { print found }' "$1"; }
is_chroot() {
  if roots=$(stat -c %d:%i /proc/1/root/ / 2>/dev/null); then
    [ "${roots%%"
"*}" != "${roots#*"
"}" ]
  else
    [ -r /proc/1/mountinfo ] && [ "$(root_mount /proc/1/mountinfo)" != "$(root_mount /proc/self/mountinfo)" ]
  fi
}
"#;

/// Prints `key=value` lines; os-release lines come prefixed with `os_`. Each process costs a
/// small host about a millisecond, so what the shell can read itself (files under /proc, the
/// user's /etc/passwd entry, os-release, the route's fields) is read with builtins; the rest
/// (uname, one stat, hostname, ip) is one process per tool.
const SCRIPT: &str = r#"
set -- $(uname -snrm)
echo "system=$1"; echo "nodename=$2"; echo "kernel=$3"; echo "machine=$4"
read -r version 2>/dev/null < /proc/sys/kernel/version || version=$(uname -v)
echo "kernel_version=$version"
echo "fqdn=$(hostname -f 2>/dev/null || uname -n)"
read -r pid1 2>/dev/null < /proc/1/comm; echo "pid1=$pid1"
[ -d /run/systemd/system ] && echo "systemd_booted=1"
is_chroot && echo "is_chroot=1"
uid=; gid=; cpus=
while read -r key real effective rest; do
  case $key in Uid:) uid=$effective;; Gid:) gid=$effective;; Cpus_allowed_list:) cpus=$real;; esac
done < /proc/self/status
[ -n "$uid" ] || uid=$(id -u)
[ -n "$gid" ] || gid=$(id -g)
echo "user_uid=$uid"; echo "user_gid=$gid"
name=
while IFS=: read -r entry_name password entry_uid rest; do
  [ "$entry_uid" = "$uid" ] && { name=$entry_name; break; }
done < /etc/passwd
[ -n "$name" ] || name=$(id -un 2>/dev/null) || name=$uid
echo "user_id=$name"
echo "user_home=$HOME"
while read -r key value rest; do
  case $key in MemTotal:) echo "memtotal_kb=$value";; MemFree:) echo "memfree_kb=$value";; esac
done < /proc/meminfo
processors=0
while read -r key rest; do
  [ "$key" = processor ] && processors=$((processors + 1))
done < /proc/cpuinfo
echo "processors=$processors"
if [ -n "$cpus" ]; then
  count=0; IFS=,
  for range in $cpus; do
    case $range in *-*) count=$((count + ${range#*-} - ${range%-*} + 1));; *) count=$((count + 1));; esac
  done
  unset IFS
  echo "nproc=$count"
else
  echo "nproc=$(nproc 2>/dev/null)"
fi
for tool in apt-get dnf yum apk pacman zypper; do command -v $tool >/dev/null 2>&1 && { echo "pkg_tool=$tool"; break; }; done
route=$(ip -4 route show default 2>/dev/null) || route=
route=${route%%"
"*}
echo "default_route=$route"
case $route in *" dev "*)
  dev=${route#* dev }; set -- $(ip -4 -o addr show dev "${dev%% *}" 2>/dev/null)
  [ -n "$4" ] && echo "default_address=$4";;
esac
if [ -r /etc/os-release ]; then
  while IFS= read -r line || [ -n "$line" ]; do
    case ${line%%=*} in "$line"|*[!A-Z_]*) ;; *) echo "os_$line";; esac
  done < /etc/os-release
fi
[ -r /etc/debian_version ] && read -r debian < /etc/debian_version && echo "debian_version=$debian"
[ -r /proc/device-tree/model ] && echo "device_model=$(tr -d '\0' < /proc/device-tree/model)"
true
"#;

/// Turns the script's output into Ansible's fact names (without the `ansible_` prefix).
pub fn facts_from(text: &str) -> Map<String, Value> {
    let raw: Map<String, Value> = text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| {
            (key.to_string(), Value::from(value.trim().trim_matches('"').to_string()))
        })
        .collect();
    let get = |key: &str| raw.get(key).and_then(Value::as_str).unwrap_or("").to_string();
    let number = |key: &str| get(key).parse::<i64>().unwrap_or(0);
    let mut facts = Map::new();
    let machine = get("machine");
    facts.insert("architecture".into(), Value::from(architecture(&machine)));
    facts.insert("machine".into(), Value::from(machine));
    facts.insert("system".into(), Value::from(get("system")));
    facts.insert("kernel".into(), Value::from(get("kernel")));
    facts.insert("kernel_version".into(), Value::from(get("kernel_version")));
    let nodename = get("nodename");
    facts.insert(
        "hostname".into(),
        Value::from(nodename.split('.').next().unwrap_or("").to_string()),
    );
    facts.insert("nodename".into(), Value::from(nodename));
    facts.insert("fqdn".into(), Value::from(get("fqdn")));

    let id = get("os_ID");
    let like = get("os_ID_LIKE");
    facts.insert("distribution".into(), Value::from(distribution(&id, &get("os_NAME"))));
    let version = if id == "debian" && !get("debian_version").is_empty() {
        get("debian_version")
    } else {
        get("os_VERSION_ID")
    };
    facts.insert(
        "distribution_major_version".into(),
        Value::from(version.split('.').next().unwrap_or("").to_string()),
    );
    facts.insert("distribution_version".into(), Value::from(version));
    facts.insert("distribution_release".into(), Value::from(get("os_VERSION_CODENAME")));
    facts.insert("os_family".into(), Value::from(os_family(&id, &like)));
    let pkg_mgr = match get("pkg_tool").as_str() {
        "apt-get" => "apt",
        "" => "unknown",
        other => other,
    }
    .to_string();
    facts.insert("pkg_mgr".into(), Value::from(pkg_mgr));
    let service_mgr = if raw.contains_key("systemd_booted") || get("pid1") == "systemd" {
        "systemd".to_string()
    } else {
        service_manager(&get("pid1"))
    };
    facts.insert("service_mgr".into(), Value::from(service_mgr));
    facts.insert("is_chroot".into(), Value::Bool(raw.contains_key("is_chroot")));

    facts.insert("user_id".into(), Value::from(get("user_id")));
    facts.insert("user_uid".into(), Value::from(number("user_uid")));
    facts.insert("user_gid".into(), Value::from(number("user_gid")));
    facts.insert("user_dir".into(), Value::from(get("user_home")));
    facts.insert("memtotal_mb".into(), Value::from(number("memtotal_kb") / 1024));
    facts.insert("memfree_mb".into(), Value::from(number("memfree_kb") / 1024));
    facts.insert("processor_count".into(), Value::from(number("processors")));
    facts.insert("processor_vcpus".into(), Value::from(number("processors")));
    facts.insert("processor_nproc".into(), Value::from(number("nproc")));
    if !get("device_model").is_empty() {
        facts.insert("board_name".into(), Value::from(get("device_model")));
    }
    let route = get("default_route");
    let mut ipv4 = Map::new();
    let field_after =
        |word: &str| route.split_whitespace().skip_while(|w| *w != word).nth(1).map(str::to_string);
    if let Some(gateway) = field_after("via") {
        ipv4.insert("gateway".into(), Value::from(gateway));
    }
    if let Some(interface) = field_after("dev") {
        ipv4.insert("interface".into(), Value::from(interface));
    }
    if let Some((address, prefix)) = get("default_address").split_once('/') {
        ipv4.insert("address".into(), Value::from(address));
        ipv4.insert("prefix".into(), Value::from(prefix));
    }
    facts.insert("default_ipv4".into(), Value::Object(ipv4));
    facts
}

fn architecture(machine: &str) -> &str {
    match machine {
        "i686" | "i586" | "i486" => "i386",
        other => other,
    }
}

fn distribution(id: &str, name: &str) -> String {
    match id {
        "debian" | "raspbian" => "Debian".into(),
        "ubuntu" => "Ubuntu".into(),
        "fedora" => "Fedora".into(),
        "alpine" => "Alpine".into(),
        "arch" => "Archlinux".into(),
        "rhel" => "RedHat".into(),
        "centos" => "CentOS".into(),
        "" => "NA".into(),
        _ => name.split_whitespace().next().unwrap_or(id).to_string(),
    }
}

fn os_family(id: &str, like: &str) -> String {
    let family_of = |word: &str| match word {
        "debian" | "ubuntu" | "raspbian" | "linuxmint" | "pop" => Some("Debian"),
        "rhel" | "fedora" | "centos" | "rocky" | "almalinux" => Some("RedHat"),
        "alpine" => Some("Alpine"),
        "arch" | "manjaro" => Some("Archlinux"),
        "suse" | "opensuse" | "sles" => Some("Suse"),
        _ => None,
    };
    std::iter::once(id)
        .chain(like.split_whitespace())
        .find_map(family_of)
        .unwrap_or("Linux")
        .to_string()
}

fn service_manager(pid1: &str) -> String {
    match pid1 {
        "openrc-init" | "openrc" => "openrc".into(),
        "runit" | "runit-init" => "runit".into(),
        "" => "service".into(),
        _ => "sysvinit".into(),
    }
}

pub async fn run(call: &mut Call<'_>) -> Outcome {
    let subset = call.args.list(&["gather_subset"]);
    if subset.iter().any(|s| {
        !matches!(
            s.as_str(),
            "all"
                | "min"
                | "!all"
                | "!min"
                | "hardware"
                | "network"
                | "virtual"
                | "!hardware"
                | "!network"
                | "!virtual"
        )
    }) {
        return Err(fail(format!("not supported yet: gather_subset {subset:?}")));
    }
    let output = call.remote.run(&format!("{IS_CHROOT}{SCRIPT}")).await?;
    if output.rc != 0 {
        return Err(fail(format!("gathering facts failed: {}", output.stderr_text().trim())));
    }
    let facts = facts_from(&output.stdout_text());
    Ok(result([
        ("changed", Value::Bool(false)),
        ("ansible_facts", Value::Object(facts)),
        ("_bramble_gathered", Value::Bool(true)),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::files::tests::SHELLS;

    fn tool(program: &str, args: &[&str]) -> String {
        let output = std::process::Command::new(program).args(args).output().expect(program);
        String::from_utf8_lossy(&output.stdout).trim_end().to_string()
    }

    /// The script's builtin readings agree with the tools they stand in for, on this machine
    /// under dash and bash.
    #[test]
    fn builtin_readings_match_the_tools() {
        let script = format!("{IS_CHROOT}{SCRIPT}");
        for shell in SHELLS {
            let output = std::process::Command::new(shell).args(["-c", &script]).output();
            let output = output.expect("a shell");
            assert!(output.status.success(), "{shell}: {output:?}");
            let text = String::from_utf8_lossy(&output.stdout).into_owned();
            let line = |key: &str| {
                let prefix = format!("{key}=");
                text.lines().find_map(|l| l.strip_prefix(prefix.as_str())).map(str::to_string)
            };
            assert_eq!(line("user_uid").as_deref(), Some(tool("id", &["-u"]).as_str()), "{shell}");
            assert_eq!(line("user_gid").as_deref(), Some(tool("id", &["-g"]).as_str()), "{shell}");
            assert_eq!(line("user_id").as_deref(), Some(tool("id", &["-un"]).as_str()), "{shell}");
            assert_eq!(line("nproc").as_deref(), Some(tool("nproc", &[]).as_str()), "{shell}");
            let processors = tool("grep", &["-c", "^processor", "/proc/cpuinfo"]);
            assert_eq!(line("processors").as_deref(), Some(processors.as_str()), "{shell}");
            let os: Vec<&str> = text.lines().filter(|l| l.starts_with("os_")).collect();
            let expected = tool("sed", &["-n", r"s/^\([A-Z_]*\)=/os_\1=/p", "/etc/os-release"]);
            assert_eq!(os.join("\n"), expected, "{shell}");
            assert_eq!(line("is_chroot"), None, "{shell}: this machine is not a chroot");
        }
        // The CPUs this process may use, as nproc counts them (here pinned to one).
        let pinned = std::process::Command::new("taskset")
            .args(["-c", "0", "sh", "-c", &script])
            .output()
            .expect("taskset");
        assert!(String::from_utf8_lossy(&pinned.stdout).lines().any(|l| l == "nproc=1"));
    }

    #[test]
    fn pi_os_facts() {
        let text = "machine=aarch64\nsystem=Linux\nnodename=pi01\npid1=systemd\nos_ID=debian\nos_VERSION_ID=\"12\"\nos_VERSION_CODENAME=bookworm\ndebian_version=12.7\npkg_tool=apt-get\n";
        let facts = facts_from(text);
        assert_eq!(facts["architecture"], "aarch64");
        assert_eq!(facts["os_family"], "Debian");
        assert_eq!(facts["distribution"], "Debian");
        assert_eq!(facts["distribution_version"], "12.7");
        assert_eq!(facts["distribution_major_version"], "12");
        assert_eq!(facts["distribution_release"], "bookworm");
        assert_eq!(facts["service_mgr"], "systemd");
        assert_eq!(facts["pkg_mgr"], "apt");
        assert_eq!(facts["hostname"], "pi01");
    }
}
