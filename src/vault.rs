//! Ansible Vault: decrypting `$ANSIBLE_VAULT;1.1;AES256` and `1.2;AES256;<id>` envelopes
//! (whole files and inline `!vault` values) with the secrets given for this run.
//!
//! The envelope's body is hex of `hex(salt) \n hex(hmac) \n hex(ciphertext)`. PBKDF2-HMAC-
//! SHA256 (10000 rounds) turns password and salt into 80 bytes: the AES-256 key, the HMAC key
//! and the CTR starting counter. The HMAC-SHA256 of the ciphertext is checked before the
//! AES-256-CTR decryption, whose result carries PKCS#7 padding.

use std::sync::OnceLock;

use aes::cipher::{KeyIvInit, StreamCipher};
use hmac::{KeyInit, Mac};

type Aes256Ctr = ctr::Ctr128BE<aes::Aes256>;
type HmacSha256 = hmac::Hmac<sha2::Sha256>;

const HEADER: &str = "$ANSIBLE_VAULT;";
const ROUNDS: u32 = 10_000;

/// One vault password and the id it was given under (`default` when none).
#[derive(Clone, Debug)]
pub struct Secret {
    pub id: String,
    pub password: Vec<u8>,
}

static SECRETS: OnceLock<Vec<Secret>> = OnceLock::new();

/// Sets this run's vault secrets; only the first call counts.
pub fn set_secrets(secrets: Vec<Secret>) {
    let _ = SECRETS.set(secrets);
}

fn secrets() -> &'static [Secret] {
    SECRETS.get().map(Vec::as_slice).unwrap_or_default()
}

/// Whether text is a vault envelope.
pub fn is_encrypted(text: &[u8]) -> bool {
    text.starts_with(HEADER.as_bytes())
}

/// Decrypts an envelope with this run's secrets. Errors read as ansible-core's; `what`
/// names the file (or file:line) where the message needs it.
pub fn decrypt(envelope: &[u8], what: &str) -> Result<Vec<u8>, String> {
    decrypt_with(envelope, secrets(), what)
}

/// Decrypts an envelope, trying the secret whose id the envelope names first, then the rest.
pub fn decrypt_with(envelope: &[u8], secrets: &[Secret], what: &str) -> Result<Vec<u8>, String> {
    let text = std::str::from_utf8(envelope)
        .map_err(|_| format!("{what}: a vault envelope must be ASCII text"))?;
    let (header, body) = text.trim_start().split_once('\n').unwrap_or((text, ""));
    let fields: Vec<&str> = header.trim().split(';').collect();
    let id = match fields.as_slice() {
        ["$ANSIBLE_VAULT", "1.1", "AES256"] => None,
        ["$ANSIBLE_VAULT", "1.2", "AES256", id] => Some(*id),
        _ => {
            return Err(format!(
                "not supported yet: the vault format `{}` in {what} (only 1.1 and 1.2 with AES256)",
                header.trim()
            ));
        }
    };
    if secrets.is_empty() {
        return Err("Attempting to decrypt but no vault secrets found.".into());
    }
    let (salt, tag, ciphertext) = parse_body(body).ok_or_else(|| {
        format!("{what}: the vault data is malformed (expected hex salt, hmac and ciphertext)")
    })?;
    let mut ordered: Vec<&Secret> = secrets.iter().filter(|s| Some(s.id.as_str()) == id).collect();
    ordered.extend(secrets.iter().filter(|s| Some(s.id.as_str()) != id));
    for secret in ordered {
        if let Some(plain) = open(&secret.password, &salt, &tag, &ciphertext) {
            return Ok(plain);
        }
    }
    Err("Decryption failed (no vault secrets were found that could decrypt).".into())
}

/// The three hex fields inside the hex-encoded body.
fn parse_body(body: &str) -> Option<(Vec<u8>, Vec<u8>, Vec<u8>)> {
    let joined: String = body.split_whitespace().collect();
    let inner = String::from_utf8(hex::decode(joined).ok()?).ok()?;
    let mut parts = inner.split('\n');
    let salt = hex::decode(parts.next()?.trim()).ok()?;
    let tag = hex::decode(parts.next()?.trim()).ok()?;
    let ciphertext = hex::decode(parts.next()?.trim()).ok()?;
    Some((salt, tag, ciphertext))
}

/// Checks the HMAC and decrypts, or `None` when this password is not the right one.
fn open(password: &[u8], salt: &[u8], tag: &[u8], ciphertext: &[u8]) -> Option<Vec<u8>> {
    let mut material = [0u8; 80];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt, ROUNDS, &mut material);
    let (cipher_key, rest) = material.split_at(32);
    let (hmac_key, iv) = rest.split_at(32);

    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(hmac_key).ok()?;
    mac.update(ciphertext);
    mac.verify_slice(tag).ok()?;

    let mut plain = ciphertext.to_vec();
    let mut cipher = Aes256Ctr::new_from_slices(cipher_key, iv).ok()?;
    cipher.apply_keystream(&mut plain);
    let padding = usize::from(*plain.last()?);
    if padding == 0 || padding > 16 || padding > plain.len() {
        return None;
    }
    plain.truncate(plain.len() - padding);
    Some(plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Encrypts `plain` with ansible-vault itself (the oracle), under `id` when given.
    fn ansible_vault(plain: &str, password: &str, id: Option<&str>) -> Vec<u8> {
        let directory = tempfile::tempdir().unwrap();
        let password_file = directory.path().join("password");
        std::fs::write(&password_file, format!("{password}\n")).unwrap();
        let input = directory.path().join("plain");
        std::fs::write(&input, plain).unwrap();
        let source = match id {
            Some(id) => format!("{id}@{}", password_file.display()),
            None => password_file.display().to_string(),
        };
        let output = Command::new("ansible-vault")
            .args(["encrypt", "--vault-id", &source, "--output", "-"])
            .arg(&input)
            .output()
            .expect("ansible-vault (ansible-core) must be installed for this test");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        output.stdout
    }

    fn secret(id: &str, password: &str) -> Secret {
        Secret { id: id.into(), password: password.as_bytes().to_vec() }
    }

    #[test]
    fn decrypts_what_ansible_vault_made() {
        let envelope = ansible_vault("hello: world\n", "secret", None);
        assert!(is_encrypted(&envelope));
        let plain = decrypt_with(&envelope, &[secret("default", "secret")], "t").unwrap();
        assert_eq!(plain, b"hello: world\n");
    }

    #[test]
    fn vault_ids_pick_their_secret_first() {
        let envelope = ansible_vault("x", "second", Some("prod"));
        assert!(envelope.starts_with(b"$ANSIBLE_VAULT;1.2;AES256;prod"));
        let secrets = [secret("dev", "first"), secret("prod", "second")];
        assert_eq!(decrypt_with(&envelope, &secrets, "t").unwrap(), b"x");
    }

    #[test]
    fn wrong_password_is_refused() {
        let envelope = ansible_vault("x", "secret", None);
        let error = decrypt_with(&envelope, &[secret("default", "nope")], "t").unwrap_err();
        assert!(error.starts_with("Decryption failed"), "{error}");
        let error = decrypt_with(&envelope, &[], "t").unwrap_err();
        assert!(error.contains("no vault secrets found"), "{error}");
    }
}
