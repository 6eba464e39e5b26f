//! `apt_key`: keys in apt's keyrings through apt-key, as ansible-core does. Debian 13 and
//! later ship no apt-key; there the module fails as ansible-core's does, naming the missing
//! command (deb822_repository's `signed_by` is the replacement).

use base64::Engine;
use serde_json::Value;

use super::{Call, Failure, Outcome, fail, result};
use crate::connection::quote_all;

/// The three forms of a key id: the last 8 hex digits (for `apt-key del`), the last 16 (as
/// `--list-public-keys` prints them) and the whole id (for `--recv`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyId {
    pub short: String,
    pub fingerprint: String,
    pub full: String,
}

pub fn parse_key_id(key_id: &str) -> Option<KeyId> {
    let upper = key_id.to_uppercase();
    let full = upper.strip_prefix("0X").unwrap_or(&upper).to_string();
    if full.is_empty() || !full.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    if full.len() != 8 && full.len() != 16 && full.len() <= 16 {
        return None;
    }
    let tail = |count: usize| full[full.len().saturating_sub(count)..].to_string();
    Some(KeyId { short: tail(8), fingerprint: tail(16), full })
}

/// Key ids in apt-key's or gpg's `--with-colons` listing, expired ones left out.
pub fn parse_keys(output: &str, short: bool) -> Vec<String> {
    let mut found = Vec::new();
    for line in output.lines() {
        if !(line.starts_with("pub") || line.starts_with("sub")) || line.contains("expired") {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let listed = words.get(1).and_then(|code| code.split_once('/')).map(|(_, id)| id);
        let code = listed.or_else(|| line.split(':').nth(4));
        if let Some(code) = code {
            found.push(code.to_string());
        }
    }
    if short {
        found = found.iter().map(|id| id[id.len().saturating_sub(8)..].to_string()).collect();
    }
    found
}

/// `apt-key [--keyring K] WORDS…`, quoted.
pub fn apt_key_command(apt_key: &str, keyring: Option<&str>, words: &[&str]) -> String {
    let mut argv = vec![apt_key];
    if let Some(keyring) = keyring {
        argv.extend(["--keyring", keyring]);
    }
    argv.extend(words);
    quote_all(&argv)
}

/// Where apt-key and gpg are, and the directories searched, in one round trip.
const LOOKUP: &str = "p=$PATH; for d in /sbin /usr/sbin /usr/local/sbin; do \
     case \":$p:\" in *\":$d:\"*) ;; *) [ -e \"$d\" ] && p=\"$p:$d\";; esac; done; \
     echo \"$p\"; PATH=$p command -v apt-key || echo; PATH=$p command -v gpg || echo";

/// The tools, or ansible-core's message naming the one that is missing.
pub fn tools(lookup: &str) -> Result<(String, String), Failure> {
    let mut lines = lookup.lines();
    let search = lines.next().unwrap_or("").to_string();
    let apt_key = lines.next().unwrap_or("").trim().to_string();
    let gpg = lines.next().unwrap_or("").trim().to_string();
    for (name, path) in [("apt-key", &apt_key), ("gpg", &gpg)] {
        if path.is_empty() {
            return Err(fail(format!(
                "Failed to find required executable \"{name}\" in paths: {search}"
            )));
        }
    }
    Ok((apt_key, gpg))
}

pub async fn run(call: &mut Call<'_>) -> Outcome {
    let key_id = call.args.string(&["id"]);
    let url = call.args.string(&["url"]);
    let data = call.args.string(&["data"]);
    let file = call.args.string(&["file"]);
    let keyring = call.args.string(&["keyring"]);
    let keyserver = call.args.string(&["keyserver"]);
    let state = call.args.choice(&["state"], &["absent", "present"], Some("present"))?;
    let sources = [&data, &file, &keyserver, &url];
    if sources.iter().filter(|source| source.is_some()).count() > 1 {
        return Err(fail("parameters are mutually exclusive: data|file|keyserver|url"));
    }

    let lookup = call.remote.check(LOOKUP, "looking for apt-key").await?;
    let (apt_key, gpg) = tools(&lookup.stdout_text())?;
    let mut data = data.map(String::into_bytes);

    // The id: given, or read from the key itself.
    let mut key_id = key_id;
    if key_id.is_none() {
        if keyserver.is_some() {
            return Err(fail("Missing key_id, required with keyserver."));
        }
        if let Some(url) = &url {
            data = Some(download(call, url).await?);
        }
        if let Some(file) = &file {
            key_id = id_from(call, &gpg, file, None).await?;
        } else if let Some(data) = &data {
            key_id = id_from(call, &gpg, "-", Some(data)).await?;
        }
    }
    let mut outcome = result([("changed", Value::Bool(false))]);
    outcome.insert("id".into(), key_id.clone().map(Value::from).unwrap_or(Value::Null));
    let Some(id) = key_id.as_deref().and_then(parse_key_id) else {
        let mut failure = outcome.clone();
        failure.insert("msg".into(), Value::from("Invalid key_id"));
        return Err(Failure::Failed(failure));
    };
    outcome.insert("short_id".into(), Value::from(id.short.clone()));
    outcome.insert("fp".into(), Value::from(id.fingerprint.clone()));
    outcome.insert("key_id".into(), Value::from(id.full.clone()));
    let short = id.full.len() == 8;
    let wanted = if short { &id.short } else { &id.fingerprint };

    let keyring = keyring.as_deref();
    let before = list(call, &apt_key, keyring, short).await?;
    outcome.insert("before".into(), Value::from(before.clone()));
    let present = state.as_deref() != Some("absent");
    let changed = if present { !before.contains(wanted) } else { before.contains(&id.fingerprint) };
    outcome.insert("changed".into(), Value::Bool(changed));
    if !changed || call.check_mode {
        return Ok(outcome);
    }

    // Modify, then check the keyring shows the change.
    if present {
        if let Some(file) = &file {
            let command = apt_key_command(&apt_key, keyring, &["add", file]);
            run_checked(call, &command, None, &format!("Unable to add a key from file {file}"))
                .await?;
        } else if let Some(keyserver) = &keyserver {
            receive(call, &apt_key, keyring, keyserver, &id.full).await?;
        } else {
            let data = match (data, &url) {
                (Some(data), _) => data,
                (None, Some(url)) => download(call, url).await?,
                (None, None) => {
                    return Err(fail("No key to add: give data, file, keyserver or url"));
                }
            };
            let command = apt_key_command(&apt_key, keyring, &["add", "-"]);
            run_checked(call, &command, Some(&data), "Unable to add a key from binary data")
                .await?;
        }
    } else {
        let command = apt_key_command(&apt_key, keyring, &["del", &id.short]);
        let message = format!("Unable to remove a key with id {}", id.short);
        run_checked(call, &command, None, &message).await?;
    }
    let after = list(call, &apt_key, keyring, short).await?;
    outcome.insert("after".into(), Value::from(after.clone()));
    let wrong = if present { !after.contains(wanted) } else { after.contains(&id.fingerprint) };
    if wrong {
        let what = if present { "failed to add the key" } else { "the key was not removed" };
        let mut failure = outcome;
        failure.insert(
            "msg".into(),
            Value::from(format!(
                "apt-key did not return an error, but {what} (check that the id is correct and *not* a subkey)"
            )),
        );
        return Err(Failure::Failed(failure));
    }
    Ok(outcome)
}

async fn list(
    call: &Call<'_>,
    apt_key: &str,
    keyring: Option<&str>,
    short: bool,
) -> Result<Vec<String>, Failure> {
    let words = ["adv", "--list-public-keys", "--keyid-format=long"];
    let command = apt_key_command(apt_key, keyring, &words);
    let output = call.remote.run(&command).await?;
    if output.rc != 0 {
        let mut failure = failed_command(&command, &output);
        failure.insert("msg".into(), Value::from("Unable to list public keys"));
        return Err(Failure::Failed(failure));
    }
    Ok(parse_keys(&output.stdout_text(), short))
}

fn failed_command(
    command: &str,
    output: &crate::connection::Output,
) -> serde_json::Map<String, Value> {
    result([
        ("changed", Value::Bool(false)),
        ("cmd", Value::from(command)),
        ("rc", Value::from(output.rc)),
        ("stdout", Value::from(output.stdout_text())),
        ("stderr", Value::from(output.stderr_text())),
    ])
}

async fn run_checked(
    call: &Call<'_>,
    command: &str,
    input: Option<&[u8]>,
    message: &str,
) -> Result<(), Failure> {
    let output = call.remote.run_with_input(command, input).await?;
    if output.rc == 0 {
        return Ok(());
    }
    let mut failure = failed_command(command, &output);
    failure.insert("msg".into(), Value::from(message));
    Err(Failure::Failed(failure))
}

/// The first key id gpg finds in a file (or in `data`, when the file is `-`).
async fn id_from(
    call: &Call<'_>,
    gpg: &str,
    file: &str,
    data: Option<&[u8]>,
) -> Result<Option<String>, Failure> {
    let command = format!("LC_ALL=C {}", quote_all(&[gpg, "--with-colons", file]));
    let output = call.remote.run_with_input(&command, data).await?;
    if output.rc != 0 {
        let what = if data.is_some() { "inline data" } else { file };
        let mut failure = result([
            ("changed", Value::Bool(false)),
            ("stdout", Value::from(output.stdout_text())),
            ("stderr", Value::from(output.stderr_text())),
        ]);
        failure.insert("msg".into(), Value::from(format!("Unable to extract key from '{what}'")));
        return Err(Failure::Failed(failure));
    }
    Ok(parse_keys(&output.stdout_text(), false).into_iter().next())
}

/// The key at `url`, downloaded by the host.
async fn download(call: &Call<'_>, url: &str) -> Result<Vec<u8>, Failure> {
    let command = format!(
        "t=$(mktemp); e=$(mktemp); if {}; then base64 -w0 < \"$t\"; rc=0; else cat \"$e\" >&2; \
         rc=1; fi; rm -f -- \"$t\" \"$e\"; exit $rc",
        super::deb822_repository::fetch_command(url)
    );
    let output = call.remote.run(&command).await?;
    if output.rc != 0 {
        return Err(fail(format!(
            "Failed to download key at {url}: {}",
            output.stderr_text().trim()
        )));
    }
    base64::engine::general_purpose::STANDARD
        .decode(output.stdout_text().trim())
        .map_err(|_| fail(format!("Error getting key id from url: {url}")))
}

/// `apt-key adv --recv` from a keyserver, tried five times as ansible-core does.
async fn receive(
    call: &Call<'_>,
    apt_key: &str,
    keyring: Option<&str>,
    keyserver: &str,
    key_id: &str,
) -> Result<(), Failure> {
    let words = ["adv", "--no-tty", "--keyserver", keyserver, "--recv", key_id];
    let command = format!("LC_ALL=C {}", apt_key_command(apt_key, keyring, &words));
    let mut last = None;
    for _ in 0..5 {
        let output = call.remote.run(&command).await?;
        if output.rc == 0 {
            return Ok(());
        }
        last = Some(output);
    }
    let output = last.unwrap_or_default();
    if output.rc == 2 && output.stdout_text().contains("not found on keyserver") {
        return Err(fail(format!("Key {key_id} not found on keyserver {keyserver}")));
    }
    let mut failure = failed_command(&command, &output);
    failure.insert(
        "msg".into(),
        Value::from(format!("Error fetching key {key_id} from keyserver: {keyserver}")),
    );
    Err(Failure::Failed(failure))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_split_as_ansible_splits_them() {
        let id = parse_key_id("0x7638D0442B90D010").unwrap();
        assert_eq!(id.short, "2B90D010");
        assert_eq!(id.fingerprint, "7638D0442B90D010");
        let long =
            parse_key_id("76D9D314842A3800A14000E713318953 93D19CD7".replace(' ', "").as_str())
                .unwrap();
        assert_eq!(long.fingerprint, "1331895393D19CD7");
        assert_eq!(long.full.len(), 40);
        assert_eq!(parse_key_id("2b90d010").unwrap().short, "2B90D010");
        assert_eq!(parse_key_id("12345"), None);
        assert_eq!(parse_key_id("0123456789"), None);
        assert_eq!(parse_key_id("not hex!"), None);
    }

    #[test]
    fn listings_of_apt_key_and_gpg_are_read() {
        let apt_key = "/etc/apt/trusted.gpg\n--------------------\n\
                       pub   rsa4096/7638D0442B90D010 2014-11-21 [SC] [expires: 2030-11-19]\n\
                       pub   rsa4096/AAAAAAAABBBBBBBB 2010-01-01 [SC] [expired: 2020-01-01]\n\
                       uid                 [ unknown] Debian Archive\n";
        assert_eq!(parse_keys(apt_key, false), ["7638D0442B90D010"]);
        assert_eq!(parse_keys(apt_key, true), ["2B90D010"]);
        let colons = "pub:-:255:22:133189539 3D19CD7:1764869877:::-:::scSC::::::23::0:\n\
                      fpr:::::::::76D9D314842A3800A14000E71331895393D19CD7:\n";
        assert_eq!(parse_keys(&colons.replace(' ', ""), false), ["1331895393D19CD7"]);
    }

    #[test]
    fn a_host_without_apt_key_fails_as_ansible_does() {
        let failure = tools("/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin\n\n/usr/bin/gpg\n");
        let Err(Failure::Failed(failure)) = failure else { panic!("apt-key is required") };
        assert_eq!(
            failure["msg"],
            "Failed to find required executable \"apt-key\" in paths: \
             /usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
        );
        let found = tools("/usr/bin\n/usr/bin/apt-key\n/usr/bin/gpg\n").ok();
        assert_eq!(found, Some(("/usr/bin/apt-key".into(), "/usr/bin/gpg".into())));
    }

    #[test]
    fn commands_are_quoted() {
        assert_eq!(
            apt_key_command("/usr/bin/apt-key", Some("/k ring.gpg"), &["del", "2B90D010"]),
            "/usr/bin/apt-key --keyring '/k ring.gpg' del 2B90D010"
        );
    }
}
