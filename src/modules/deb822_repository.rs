//! `deb822_repository`: one repository as a deb822 stanza in
//! /etc/apt/sources.list.d/NAME.sources, with its signing key fetched into /etc/apt/keyrings
//! when `signed_by` is a URL. One query reads the file, the key files and (for a URL) the
//! downloaded key; only what differs is written.

use base64::Engine;
use serde_json::Value;

use super::files::{FileState, Mode, describe, parse_stat, write_atomic};
use super::{Call, Failure, Outcome, fail, result};
use crate::connection::quote;

const KEYRINGS_DIR: &str = "/etc/apt/keyrings";

/// The parameters that become fields, in the sorted order Ansible writes them.
const BOOLS: &[&str] = &[
    "allow_downgrade_to_insecure",
    "allow_insecure",
    "allow_weak",
    "by_hash",
    "check_date",
    "check_valid_until",
    "enabled",
    "pdiffs",
    "trusted",
];
const LISTS: &[&str] = &["architectures", "components", "languages", "suites", "targets", "uris"];
/// The module's parameters: the repository fields, then `mode` and `state`.
pub const PARAMS: &[&str] = &[
    "allow_downgrade_to_insecure",
    "allow_insecure",
    "allow_weak",
    "architectures",
    "by_hash",
    "check_date",
    "check_valid_until",
    "components",
    "date_max_future",
    "enabled",
    "inrelease_path",
    "languages",
    "name",
    "pdiffs",
    "signed_by",
    "suites",
    "targets",
    "trusted",
    "types",
    "uris",
    "mode",
    "state",
];
/// The parameters that become fields of the `.sources` file.
const FIELDS: &[&str] = PARAMS.split_at(PARAMS.len() - 2).0;

/// The file-name stem Ansible derives from `name`: lower case, runs of `_` and blanks as `-`,
/// anything else but letters, digits and `-` dropped.
pub fn slug(name: &str) -> String {
    let mut dashed = String::new();
    let mut in_run = false;
    for c in name.to_lowercase().chars() {
        if c == '_' || c.is_whitespace() {
            if !in_run {
                dashed.push('-');
            }
            in_run = true;
        } else {
            dashed.push(c);
            in_run = false;
        }
    }
    dashed.chars().filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-').collect()
}

pub fn sources_path(slug: &str) -> String {
    format!("/etc/apt/sources.list.d/{slug}.sources")
}

pub fn key_path(slug: &str, extension: &str) -> String {
    format!("{KEYRINGS_DIR}/{slug}.{extension}")
}

/// A parameter's field name as Ansible spells it (`by_hash` → `By-Hash`).
pub fn field_name(param: &str) -> String {
    match param {
        "name" => "X-Repolib-Name".into(),
        "uris" => "URIs".into(),
        _ => param
            .split('_')
            .map(|word| {
                let mut chars = word.chars();
                chars.next().map(|first| first.to_ascii_uppercase().to_string()).unwrap_or_default()
                    + chars.as_str()
            })
            .collect::<Vec<_>>()
            .join("-"),
    }
}

/// A value spanning lines goes on continuation lines, an empty one as `.`.
fn continuation(value: &str) -> String {
    let lines: Vec<&str> = value.trim().lines().collect();
    let body: Vec<String> = lines
        .iter()
        .map(|line| {
            let line = line.trim();
            format!("    {}", if line.is_empty() { "." } else { line })
        })
        .collect();
    format!("\n{}", body.join("\n"))
}

/// The stanza from its fields, as python-debian's Deb822 dumps it.
pub fn render(fields: &[(String, String)]) -> String {
    let mut text = String::new();
    for (param, value) in fields {
        let value = if value.contains('\n') { continuation(value) } else { value.clone() };
        let separator = if value.is_empty() || value.starts_with('\n') { ":" } else { ": " };
        text.push_str(&format!("{}{separator}{value}\n", field_name(param)));
    }
    text
}

/// What a `signed_by` value is, which decides what is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignedBy {
    /// A keyring file present on the host: named as it is.
    Path(String),
    /// A key to download into /etc/apt/keyrings.
    Url(String),
    /// Key text or fingerprints, written into the stanza.
    Inline(String),
}

/// Whether `value` starts with a URL scheme, as Python's urlparse sees one.
fn has_scheme(value: &str) -> bool {
    let Some((scheme, _)) = value.split_once(':') else { return false };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
}

pub fn classify(value: &str, is_file: bool) -> SignedBy {
    if is_file {
        SignedBy::Path(value.into())
    } else if has_scheme(value) {
        SignedBy::Url(value.into())
    } else {
        SignedBy::Inline(value.into())
    }
}

pub fn is_armored(data: &[u8]) -> bool {
    let marker = b"-----BEGIN PGP PUBLIC KEY BLOCK-----";
    data.windows(marker.len()).any(|window| window == marker)
}

/// A file on the host as the query saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    pub mode: u32,
    pub content: Vec<u8>,
}

/// What the query learnt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub sources: Option<Found>,
    pub asc: Option<Found>,
    pub gpg: Option<Found>,
    /// The keyrings directory's `mode owner group`, when it exists.
    pub keyrings: Option<String>,
    pub signed_by_is_file: bool,
    /// The downloaded key, or why it could not be downloaded.
    pub fetched: Option<Result<Vec<u8>, String>>,
    /// The stanza file's owner, mode and size, which Ansible reports beside `dest`.
    pub dest: Option<FileState>,
}

/// Fetches `url` into "$t" with curl, wget or apt's own helper, which every apt host has;
/// the reason for a failure goes to "$e".
pub(super) fn fetch_command(url: &str) -> String {
    let url = quote(url);
    format!(
        "if command -v curl >/dev/null 2>&1; then curl -fsSL -o \"$t\" {url} 2>\"$e\"; \
         elif command -v wget >/dev/null 2>&1; then wget -q -O \"$t\" {url} 2>\"$e\"; \
         elif [ -x /usr/lib/apt/apt-helper ]; then \
         /usr/lib/apt/apt-helper download-file {url} \"$t\" >\"$e\" 2>&1; \
         else echo 'neither curl, wget nor apt-helper is installed on the target' >\"$e\"; false; fi"
    )
}

/// One script that prints every fact as `NAME MODE BASE64` or `NAME absent` lines.
pub fn query_command(slug: &str, signed_by: Option<&str>) -> String {
    let mut script = String::from(
        "report() { if [ -f \"$2\" ]; then printf '%s %s ' \"$1\" \"$(stat -c %a -- \"$2\")\"; \
         base64 -w0 < \"$2\"; echo; else echo \"$1 absent\"; fi; }; ",
    );
    script.push_str(&format!("report sources {}; ", quote(&sources_path(slug))));
    for extension in ["asc", "gpg"] {
        script.push_str(&format!("report {extension} {}; ", quote(&key_path(slug, extension))));
    }
    let dest = quote(&sources_path(slug));
    script.push_str(&format!(
        "if [ -e {dest} ]; then echo \"stat $(stat -c '%F|%a|%U|%G|%u|%g|%s|%Y' -- {dest})\"; fi; "
    ));
    script.push_str(&format!(
        "if [ -d {KEYRINGS_DIR} ]; then echo \"keyrings $(stat -c '%a %U %G' {KEYRINGS_DIR})\"; fi"
    ));
    let Some(signed_by) = signed_by else { return script };
    if signed_by.contains('\n') {
        return script;
    }
    script.push_str(&format!("; if [ -f {} ]; then echo signed_by_file; ", quote(signed_by)));
    if has_scheme(signed_by) {
        script.push_str(&format!(
            "else t=$(mktemp); e=$(mktemp); if {}; then printf 'fetched 0 '; base64 -w0 < \"$t\"; \
             else printf 'failed 0 '; base64 -w0 < \"$e\"; fi; echo; rm -f -- \"$t\" \"$e\"; ",
            fetch_command(signed_by)
        ));
    }
    script.push_str("fi");
    script
}

pub fn parse_query(text: &str) -> Facts {
    let mut facts = Facts::default();
    let decode = |data: &str| {
        base64::engine::general_purpose::STANDARD.decode(data.trim()).unwrap_or_default()
    };
    for line in text.lines() {
        let (name, rest) = line.split_once(' ').unwrap_or((line, ""));
        if name == "signed_by_file" {
            facts.signed_by_is_file = true;
            continue;
        }
        if name == "stat" {
            facts.dest = parse_stat(rest);
            continue;
        }
        if name == "keyrings" {
            facts.keyrings = Some(rest.to_string());
            continue;
        }
        let (mode, data) = rest.split_once(' ').unwrap_or((rest, ""));
        let found = (mode != "absent").then(|| Found {
            mode: u32::from_str_radix(mode, 8).unwrap_or(0),
            content: decode(data),
        });
        match name {
            "sources" => facts.sources = found,
            "asc" => facts.asc = found,
            "gpg" => facts.gpg = found,
            "fetched" => facts.fetched = Some(Ok(decode(data))),
            "failed" => {
                let reason = String::from_utf8_lossy(&decode(data)).trim().to_string();
                facts.fetched = Some(Err(reason));
            }
            _ => {}
        }
    }
    facts
}

/// The arguments, checked and typed, as `(param, text)` pairs in field order.
fn fields(call: &Call<'_>) -> Result<Vec<(String, String)>, Failure> {
    let mut fields = Vec::new();
    for param in FIELDS {
        let value = if BOOLS.contains(param) {
            call.args.maybe_flag(&[param])?.map(|flag| if flag { "yes" } else { "no" }.into())
        } else if LISTS.contains(param) {
            call.args.value(&[param]).map(|_| call.args.list(&[param]).join(" "))
        } else if *param == "types" {
            let types = call.args.list(&["types"]);
            let types =
                if call.args.value(&["types"]).is_none() { vec!["deb".into()] } else { types };
            let wrong: Vec<&String> =
                types.iter().filter(|kind| !["deb", "deb-src"].contains(&kind.as_str())).collect();
            if !wrong.is_empty() {
                return Err(fail(format!(
                    "value of types must be one or more of: deb, deb-src. Got no match for: {}",
                    wrong.iter().map(|kind| kind.as_str()).collect::<Vec<_>>().join(", ")
                )));
            }
            Some(types.join(" "))
        } else if *param == "date_max_future" {
            match call.args.value(&[param]) {
                None => None,
                Some(_) => Some(call.args.integer(&[param], 0)?.to_string()),
            }
        } else {
            call.args.string(&[param])
        };
        if let Some(value) = value {
            fields.push((param.to_string(), value));
        }
    }
    Ok(fields)
}

/// The mode as bits; a symbolic mode would need the file to compare with.
fn octal_mode(call: &Call<'_>) -> Result<u32, Failure> {
    let default = Value::from("0644");
    match Mode::parse(Some(call.args.value(&["mode"]).unwrap_or(&default)))? {
        Some(Mode::Octal(bits)) => Ok(bits),
        _ => Err(fail("not supported yet: deb822_repository with a symbolic mode")),
    }
}

pub async fn run(call: &mut Call<'_>) -> Outcome {
    let name = call.args.required(&["name"])?;
    let state = call.args.choice(&["state"], &["absent", "present"], Some("present"))?;
    let mut fields = fields(call)?;
    let mode = octal_mode(call)?;
    let slug = slug(&name);
    let dest = sources_path(&slug);
    let signed_by = call.args.string(&["signed_by"]);

    let query = query_command(&slug, signed_by.as_deref());
    let output = call.remote.check(&query, "reading the repository's files").await?;
    let facts = parse_query(&output.stdout_text());

    if state.as_deref() == Some("absent") {
        return remove(call, &slug, &facts).await;
    }

    // The key: a URL's key is written beside the stanza, which then names that file.
    let mut changed = false;
    let mut key_filename = Value::Null;
    if let Some(signed_by) = signed_by {
        let (key_changed, named) = settle_key(call, &slug, &signed_by, &facts).await?;
        changed |= key_changed;
        if let Some((_, value)) = fields.iter_mut().find(|(param, _)| param == "signed_by")
            && let Some(path) = &named
        {
            value.clone_from(path);
        }
        key_filename = named.map(Value::from).unwrap_or(Value::Null);
    }

    let repo = render(&fields);
    let current = facts.sources.as_ref();
    let content_differs = current.map(|found| found.content.as_slice()) != Some(repo.as_bytes());
    let mode_differs = current.is_some_and(|found| found.mode != mode);
    changed |= content_differs || mode_differs;
    let mut written = facts.dest.clone();
    if !call.check_mode && (content_differs || mode_differs) {
        let new_mode = Mode::Octal(mode);
        written =
            write_atomic(call.remote, &dest, repo.as_bytes(), Some(&new_mode), None, None, None)
                .await?;
    }
    let mut outcome = result([
        ("changed", Value::Bool(changed)),
        ("dest", Value::from(dest)),
        ("key_filename", key_filename),
        ("repo", Value::from(repo)),
    ]);
    // Like every Ansible result naming a `dest` that exists.
    if let Some(state) = &written {
        describe(&mut outcome, state);
    }
    Ok(outcome)
}

/// Makes the key file right for `signed_by`; returns whether anything changed and the path
/// the stanza names, if it names a file.
async fn settle_key(
    call: &Call<'_>,
    slug: &str,
    signed_by: &str,
    facts: &Facts,
) -> Result<(bool, Option<String>), Failure> {
    let signed_by = classify(signed_by, facts.signed_by_is_file);
    let url = match signed_by {
        SignedBy::Path(path) => return Ok((false, Some(path))),
        SignedBy::Inline(_) => return Ok((false, None)),
        SignedBy::Url(url) => url,
    };
    let data = match &facts.fetched {
        Some(Ok(data)) => data.clone(),
        Some(Err(reason)) => return Err(fail(format!("Could not fetch signed_by key: {reason}"))),
        None => return Err(fail("Could not fetch signed_by key: the host did not answer")),
    };
    if data.is_empty() {
        return Ok((false, Some(url)));
    }
    let extension = if is_armored(&data) { "asc" } else { "gpg" };
    let path = key_path(slug, extension);
    let existing = if extension == "asc" { &facts.asc } else { &facts.gpg };
    let content_differs = existing.as_ref().map(|found| &found.content) != Some(&data);
    let mode_differs = existing.as_ref().is_some_and(|found| found.mode != 0o644);
    let keyrings_wrong = facts.keyrings.as_deref() != Some("755 root root");
    let changed = content_differs || mode_differs;
    if call.check_mode || !changed {
        return Ok((changed, Some(path)));
    }
    if content_differs && keyrings_wrong {
        let command = format!(
            "mkdir -p {KEYRINGS_DIR} && chown root:root {KEYRINGS_DIR} && chmod 0755 {KEYRINGS_DIR}"
        );
        call.remote.check(&command, "making /etc/apt/keyrings").await?;
    }
    write_atomic(call.remote, &path, &data, Some(&Mode::Octal(0o644)), None, None, None).await?;
    Ok((true, Some(path)))
}

/// state=absent: the stanza and either key file go.
async fn remove(call: &Call<'_>, slug: &str, facts: &Facts) -> Outcome {
    let mut present = Vec::new();
    if facts.sources.is_some() {
        present.push(sources_path(slug));
    }
    for (extension, found) in [("asc", &facts.asc), ("gpg", &facts.gpg)] {
        if found.is_some() {
            present.push(key_path(slug, extension));
        }
    }
    if !call.check_mode && !present.is_empty() {
        let command = format!("rm -f -- {}", crate::connection::quote_all(&present));
        call.remote.check(&command, "removing the repository").await?;
    }
    let mut outcome = result([
        ("changed", Value::Bool(!present.is_empty())),
        ("dest", Value::from(sources_path(slug))),
        ("key_filename", Value::from(key_path(slug, "gpg"))),
        ("repo", Value::Null),
    ]);
    if let (true, Some(state)) = (call.check_mode, &facts.dest) {
        describe(&mut outcome, state);
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_file_stems_as_in_ansible() {
        assert_eq!(slug("Bramble Tests_x"), "bramble-tests-x");
        assert_eq!(slug("docker  _ce"), "docker-ce");
        assert_eq!(slug("Ünï.code!"), "ncode");
        assert_eq!(sources_path("x"), "/etc/apt/sources.list.d/x.sources");
    }

    #[test]
    fn field_names_are_title_cased() {
        assert_eq!(field_name("allow_downgrade_to_insecure"), "Allow-Downgrade-To-Insecure");
        assert_eq!(field_name("inrelease_path"), "Inrelease-Path");
        assert_eq!(field_name("name"), "X-Repolib-Name");
        assert_eq!(field_name("uris"), "URIs");
        assert_eq!(field_name("signed_by"), "Signed-By");
    }

    #[test]
    fn stanza_is_dumped_like_python_debian() {
        let fields = [
            ("by_hash", "no"),
            ("components", ""),
            ("name", "x"),
            (
                "signed_by",
                "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nabc\n-----END PGP PUBLIC KEY BLOCK-----\n",
            ),
            ("types", "deb deb-src"),
        ];
        let fields: Vec<(String, String)> =
            fields.iter().map(|(key, value)| (key.to_string(), value.to_string())).collect();
        assert_eq!(
            render(&fields),
            "By-Hash: no\nComponents:\nX-Repolib-Name: x\nSigned-By:\n    \
             -----BEGIN PGP PUBLIC KEY BLOCK-----\n    .\n    abc\n    \
             -----END PGP PUBLIC KEY BLOCK-----\nTypes: deb deb-src\n"
        );
    }

    #[test]
    fn signed_by_is_a_file_a_url_or_inline() {
        assert_eq!(classify("/k.gpg", true), SignedBy::Path("/k.gpg".into()));
        assert_eq!(classify("https://x/k.asc", false), SignedBy::Url("https://x/k.asc".into()));
        assert_eq!(classify("/missing.gpg", false), SignedBy::Inline("/missing.gpg".into()));
        let armored = "-----BEGIN PGP PUBLIC KEY BLOCK-----\nComment: a: b\n";
        assert_eq!(classify(armored, false), SignedBy::Inline(armored.into()));
        assert_eq!(classify("0123ABCD", false), SignedBy::Inline("0123ABCD".into()));
        assert!(is_armored(armored.as_bytes()));
        assert!(!is_armored(b"\x99\x01binary"));
    }

    #[test]
    fn query_fetches_only_urls_and_quotes_them() {
        let query = query_command("x", Some("http://h/k.asc;reboot"));
        assert!(query.contains("report sources /etc/apt/sources.list.d/x.sources"));
        assert!(query.contains("apt-helper download-file 'http://h/k.asc;reboot'"));
        assert!(!query_command("x", Some("/k.gpg")).contains("download-file"));
        assert!(!query_command("x", Some("-----BEGIN\nabc")).contains("signed_by_file"));
        assert!(!query_command("x", None).contains("signed_by_file"));
    }

    #[test]
    fn query_answer_is_read_back() {
        let text = "sources 600 WDogeQo=\nasc absent\ngpg 644 \nkeyrings 755 root root\n\
                    fetched 0 YWJj\n";
        let facts = parse_query(text);
        assert_eq!(facts.sources, Some(Found { mode: 0o600, content: b"X: y\n".to_vec() }));
        assert_eq!(facts.asc, None);
        assert_eq!(facts.gpg, Some(Found { mode: 0o644, content: Vec::new() }));
        assert_eq!(facts.keyrings.as_deref(), Some("755 root root"));
        assert_eq!(facts.fetched, Some(Ok(b"abc".to_vec())));
        let failed = parse_query("failed 0 NDA0IE5vdCBGb3VuZAo=\n");
        assert_eq!(failed.fetched, Some(Err("404 Not Found".into())));
    }
}
