//! The per-device files `bramble burn` writes for bookworm-based Raspberry Pi OS, which
//! has no cloud-init: `firstrun.sh` on the boot partition, run once at first boot through
//! `systemd.run=` on the kernel command line (the script then removes itself and those
//! arguments), and `userconf.txt`, which the image's own first-boot service reads to name
//! the login user.

use super::cloud_init::DeviceIdentity;
use crate::connection::quote;

pub const SCRIPT_NAME: &str = "firstrun.sh";
const SCRIPT_PATH: &str = "/boot/firmware/firstrun.sh";

/// What `cmdline.txt` gets appended so that systemd runs the script once, then reboots.
pub const CMDLINE_ARGUMENTS: &str = " systemd.run=/boot/firmware/firstrun.sh \
    systemd.run_success_action=reboot systemd.unit=kernel-command-line.target";

/// `cmdline.txt` with the first-run arguments, once, on its single line.
pub fn cmdline(current: &str) -> String {
    let line = current.lines().next().unwrap_or("").trim_end();
    let line = line.split(" systemd.run=").next().unwrap_or(line);
    format!("{line}{CMDLINE_ARGUMENTS}\n")
}

/// `userconf.txt`: `user:password-hash`; `*` is a hash nothing matches, so the user logs in
/// with its SSH keys only.
pub fn userconf(user: &str) -> String {
    format!("{user}:*\n")
}

/// The script applying the identity; every value goes through the quoting helper.
pub fn script(identity: &DeviceIdentity) -> String {
    let mut script = String::from(
        "#!/bin/sh\n# Written by bramble burn: this card's identity, applied at its first boot.\n\
         set -e\n",
    );
    if let Some(hostname) = &identity.hostname {
        script += &hostname_commands(hostname);
    }
    let user = identity.user.clone().unwrap_or_else(|| "pi".to_string());
    if identity.user.is_some() || !identity.authorized_keys.is_empty() {
        script += &user_commands(&user, &identity.authorized_keys);
    }
    script += &format!(
        "rm -f {script}\nsed -i 's| systemd\\.run=.*||' /boot/firmware/cmdline.txt\nexit 0\n",
        script = quote(SCRIPT_PATH)
    );
    script
}

fn hostname_commands(hostname: &str) -> String {
    let name = quote(hostname);
    format!(
        "printf '%s\\n' {name} > /etc/hostname\n\
         sed -i '/^127\\.0\\.1\\.1[[:space:]]/d' /etc/hosts\n\
         printf '127.0.1.1\\t%s\\n' {name} >> /etc/hosts\n"
    )
}

/// The user exists, or is the image's first user (uid 1000) renamed, or is made; its keys
/// are authorized and SSH is enabled.
fn user_commands(user: &str, keys: &[String]) -> String {
    let name = quote(user);
    let home = quote(&format!("/home/{user}"));
    let mut script = format!(
        "if ! id -u {name} >/dev/null 2>&1; then\n\
         \x20   first=$(getent passwd 1000 | cut -d: -f1)\n\
         \x20   if [ -n \"$first\" ]; then\n\
         \x20       usermod --login {name} --move-home --home {home} \"$first\"\n\
         \x20       groupmod --new-name {name} \"$first\" 2>/dev/null || true\n\
         \x20   else\n\
         \x20       useradd --create-home --shell /bin/bash --groups sudo {name}\n\
         \x20   fi\n\
         fi\n"
    );
    if !keys.is_empty() {
        let keys = quote(&(keys.join("\n") + "\n"));
        script += &format!(
            "home=$(getent passwd {name} | cut -d: -f6)\n\
             install -d -m 0700 -o {name} -g \"$(id -gn {name})\" \"$home/.ssh\"\n\
             printf '%s' {keys} > \"$home/.ssh/authorized_keys\"\n\
             chown {name}: \"$home/.ssh/authorized_keys\"\n\
             chmod 0600 \"$home/.ssh/authorized_keys\"\n\
             systemctl enable ssh\n"
        );
    }
    script
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> DeviceIdentity {
        DeviceIdentity {
            instance_id: "i".into(),
            hostname: Some("pi03".into()),
            user: Some("ops".into()),
            authorized_keys: vec!["ssh-ed25519 AAAA it's me".into()],
        }
    }

    #[test]
    fn cmdline_gets_the_arguments_once() {
        let base = "console=serial0,115200 root=PARTUUID=1234abcd-02 rootwait\n";
        let once = cmdline(base);
        assert_eq!(
            once,
            "console=serial0,115200 root=PARTUUID=1234abcd-02 rootwait systemd.run=/boot/firmware/\
             firstrun.sh systemd.run_success_action=reboot systemd.unit=kernel-command-line.target\n"
        );
        assert_eq!(cmdline(&once), once);
    }

    #[test]
    fn the_script_sets_the_identity_and_removes_itself() {
        let script = script(&identity());
        assert!(script.starts_with("#!/bin/sh\n"));
        assert!(script.contains("printf '%s\\n' pi03 > /etc/hostname\n"), "{script}");
        assert!(script.contains("usermod --login ops --move-home --home /home/ops \"$first\""));
        assert!(script.contains("'ssh-ed25519 AAAA it'\"'\"'s me\n'"), "{script}");
        assert!(script.contains("systemctl enable ssh\n"));
        assert!(script.ends_with(
            "rm -f /boot/firmware/firstrun.sh\nsed -i 's| systemd\\.run=.*||' \
             /boot/firmware/cmdline.txt\nexit 0\n"
        ));
        assert_eq!(userconf("ops"), "ops:*\n");
    }

    #[test]
    fn nothing_but_the_cleanup_without_an_identity() {
        let bare = DeviceIdentity { instance_id: "i".into(), ..DeviceIdentity::default() };
        let script = script(&bare);
        assert!(!script.contains("/etc/hostname") && !script.contains("usermod"), "{script}");
    }
}
