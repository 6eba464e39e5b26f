//! Planners for what is baked into every image: the identity (hostname, user and keys,
//! locale, timezone) and first-boot readiness. Each turns settings into a shell script run
//! inside the image through the chroot connection.

use crate::connection::quote;

#[derive(Clone, Debug, Default)]
pub struct Identity {
    pub hostname: Option<String>,
    pub user: Option<String>,
    pub authorized_keys: Vec<String>,
    pub locale: Option<String>,
    pub timezone: Option<String>,
}

/// The identity script; empty when there is nothing to set.
pub fn identity_script(identity: &Identity) -> String {
    let mut script = String::new();
    if let Some(hostname) = &identity.hostname {
        script += &hostname_commands(hostname);
    }
    if let Some(user) = &identity.user {
        script += &user_commands(user, &identity.authorized_keys);
    }
    if let Some(locale) = &identity.locale {
        script += &locale_commands(locale);
    }
    if let Some(timezone) = &identity.timezone {
        script += &timezone_commands(timezone);
    }
    if script.is_empty() { script } else { format!("set -e\n{script}") }
}

fn hostname_commands(hostname: &str) -> String {
    let name = quote(hostname);
    let line = quote(&format!("127.0.1.1\t{hostname}"));
    format!(
        "printf '%s\\n' {name} > /etc/hostname\n\
         sed -i '/^127\\.0\\.1\\.1[[:space:]]/d' /etc/hosts\n\
         printf '%s\\n' {line} >> /etc/hosts\n"
    )
}

/// A login user in sudo's group with passwordless sudo (as on Raspberry Pi OS), whose
/// password is unusable ('*', which unlike a '!' lock still lets SSH keys in).
fn user_commands(user: &str, keys: &[String]) -> String {
    let name = quote(user);
    let sudoers = quote(&format!("/etc/sudoers.d/010_{user}-nopasswd"));
    let rule = quote(&format!("{user} ALL=(ALL) NOPASSWD: ALL"));
    let mut script = format!(
        "id -u {name} >/dev/null 2>&1 || useradd --create-home --shell /bin/bash {name}\n\
         usermod --append --groups sudo {name}\n\
         usermod --password '*' {name}\n\
         printf '%s\\n' {rule} > {sudoers}\nchmod 0440 {sudoers}\n"
    );
    if !keys.is_empty() {
        let keys = quote(&(keys.join("\n") + "\n"));
        script += &format!(
            "home=$(getent passwd {name} | cut -d: -f6)\n\
             install -d -m 0700 -o {name} -g \"$(id -gn {name})\" \"$home/.ssh\"\n\
             printf '%s' {keys} > \"$home/.ssh/authorized_keys\"\n\
             chown {name}: \"$home/.ssh/authorized_keys\"\n\
             chmod 0600 \"$home/.ssh/authorized_keys\"\n"
        );
    }
    script
}

fn locale_commands(locale: &str) -> String {
    let name = quote(locale);
    let entry = quote(&format!("{locale} UTF-8"));
    format!(
        "grep -qx {entry} /etc/locale.gen || printf '%s\\n' {entry} >> /etc/locale.gen\n\
         locale-gen >/dev/null\n\
         update-locale LANG={name}\n"
    )
}

fn timezone_commands(timezone: &str) -> String {
    let zone = quote(&format!("/usr/share/zoneinfo/{timezone}"));
    let name = quote(timezone);
    format!(
        "[ -f {zone} ] || {{ echo \"unknown timezone: \"{name} >&2; exit 1; }}\n\
         ln -sf {zone} /etc/localtime\n\
         printf '%s\\n' {name} > /etc/timezone\n"
    )
}

/// What makes every burned card a new machine: no SSH host keys (made at first boot), an
/// `uninitialized` machine id (systemd makes one and runs first-boot units), no cloud-init
/// state, and empty apt caches, logs and temporary files.
pub const FIRST_BOOT_SCRIPT: &str = "set -e
rm -f /etc/ssh/ssh_host_*
printf 'uninitialized\\n' > /etc/machine-id
rm -f /var/lib/dbus/machine-id
rm -rf /var/lib/cloud/*
apt-get clean
rm -rf /var/lib/apt/lists/*
find /var/log -type f -exec truncate -s 0 {} +
rm -rf /tmp/* /tmp/.[!.]* /var/tmp/*
rm -f /root/.bash_history
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_to_do() {
        assert_eq!(identity_script(&Identity::default()), "");
    }

    #[test]
    fn user_and_keys_are_quoted() {
        let identity = Identity {
            user: Some("pi".into()),
            authorized_keys: vec!["ssh-ed25519 AAAA it's me".into()],
            ..Identity::default()
        };
        let script = identity_script(&identity);
        assert!(script.contains("useradd --create-home --shell /bin/bash pi\n"));
        assert!(script.contains("'ssh-ed25519 AAAA it'\"'\"'s me\n'"), "{script}");
        assert!(script.contains("/etc/sudoers.d/010_pi-nopasswd"));
    }

    #[test]
    fn hostname_and_timezone() {
        let identity = Identity {
            hostname: Some("pi-01".into()),
            timezone: Some("Europe/London".into()),
            ..Identity::default()
        };
        let script = identity_script(&identity);
        assert!(script.contains("printf '%s\\n' pi-01 > /etc/hostname"));
        assert!(script.contains("ln -sf /usr/share/zoneinfo/Europe/London /etc/localtime"));
    }
}
