//! The per-device files `bramble burn` writes to the boot partition, in the form trixie-based
//! Raspberry Pi OS reads at first boot: cloud-init NoCloud `meta-data` (a new instance-id
//! for every card, so cloud-init treats each as a new machine), `user-data` and
//! `network-config`.

use serde_json::{Value, json};

/// What one card gets.
#[derive(Clone, Debug, Default)]
pub struct DeviceIdentity {
    pub instance_id: String,
    pub hostname: Option<String>,
    pub user: Option<String>,
    pub authorized_keys: Vec<String>,
}

/// JSON is valid YAML, and serde_json quotes every string safely.
fn yaml_document(header: &str, value: &Value) -> String {
    let body = serde_json::to_string_pretty(value).unwrap_or_else(|_| "{}".into());
    format!("{header}{body}\n")
}

pub fn meta_data(identity: &DeviceIdentity) -> String {
    let mut value = json!({"instance-id": identity.instance_id});
    if let Some(hostname) = &identity.hostname {
        value["local-hostname"] = json!(hostname);
    }
    yaml_document("", &value)
}

pub fn user_data(identity: &DeviceIdentity) -> String {
    let mut value = json!({"ssh_pwauth": false});
    if let Some(hostname) = &identity.hostname {
        value["hostname"] = json!(hostname);
        value["manage_etc_hosts"] = json!(true);
    }
    match &identity.user {
        Some(user) => {
            value["users"] = json!([{
                "name": user,
                "groups": "sudo",
                "shell": "/bin/bash",
                "sudo": "ALL=(ALL) NOPASSWD:ALL",
                "lock_passwd": true,
                "ssh_authorized_keys": identity.authorized_keys,
            }]);
        }
        None if !identity.authorized_keys.is_empty() => {
            // No user named: the keys go to the image's default user.
            value["ssh_authorized_keys"] = json!(identity.authorized_keys);
        }
        None => {}
    }
    yaml_document("#cloud-config\n", &value)
}

/// DHCP on every wired interface, whatever the kernel names it.
pub fn network_config() -> String {
    let value = json!({
        "network": {
            "version": 2,
            "ethernets": {
                "wired": {"match": {"name": "e*"}, "dhcp4": true, "optional": true}
            }
        }
    });
    yaml_document("", &value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_with_key() {
        let identity = DeviceIdentity {
            instance_id: "bramble-pi03-1a2b".into(),
            hostname: Some("pi03".into()),
            user: Some("ops".into()),
            authorized_keys: vec!["ssh-ed25519 AAAA ops@laptop".into()],
        };
        let text = user_data(&identity);
        assert!(text.starts_with("#cloud-config\n{"));
        let value: Value =
            serde_json::from_str(text.trim_start_matches("#cloud-config\n")).unwrap();
        assert_eq!(value["hostname"], "pi03");
        assert_eq!(value["users"][0]["name"], "ops");
        assert_eq!(value["users"][0]["ssh_authorized_keys"][0], "ssh-ed25519 AAAA ops@laptop");
        let meta: Value = serde_json::from_str(&meta_data(&identity)).unwrap();
        assert_eq!(meta, json!({"instance-id": "bramble-pi03-1a2b", "local-hostname": "pi03"}));
    }
}
