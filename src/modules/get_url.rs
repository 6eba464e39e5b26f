//! `get_url`: download on the host with curl or wget, verify the checksum, then move into place.

use serde_json::Value;

use super::files::{self, FileKind, Mode};
use super::{Call, Failure, Outcome, fail, result};
use crate::connection::quote;

/// A `checksum:` argument split into algorithm and expected value (hex or a sums-file URL).
#[derive(Debug, PartialEq, Eq)]
pub struct Checksum {
    pub algorithm: String,
    pub value: String,
}

impl Checksum {
    pub fn parse(text: &str) -> Result<Checksum, Failure> {
        let (algorithm, value) = text.split_once(':').ok_or_else(|| {
            fail("The checksum parameter has to be in format <algorithm>:<checksum>")
        })?;
        let algorithm = algorithm.trim().to_ascii_lowercase();
        if !matches!(algorithm.as_str(), "sha1" | "sha256" | "sha512" | "md5" | "sha224" | "sha384")
        {
            return Err(fail(format!("unsupported checksum algorithm `{algorithm}`")));
        }
        Ok(Checksum { algorithm, value: value.trim().to_string() })
    }

    pub fn is_url(&self) -> bool {
        self.value.contains("://")
    }
}

/// Picks the line for `filename` out of a `sha256sums.txt`-style file.
pub fn checksum_from_sums(sums: &str, filename: &str) -> Option<String> {
    let entries: Vec<(&str, Option<&str>)> = sums
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let hex = parts.next()?;
            Some((
                hex,
                parts.next().map(|name| name.trim_start_matches('*').trim_start_matches("./")),
            ))
        })
        .collect();
    if let [(hex, None)] = entries.as_slice() {
        return Some(hex.to_string());
    }
    entries.iter().find(|(_, name)| *name == Some(filename)).map(|(hex, _)| hex.to_string())
}

/// The command that fetches `url` to `target` with whichever of curl or wget exists.
pub fn download_command(
    url: &str,
    target: &str,
    timeout: i64,
    headers: &[(String, String)],
) -> String {
    let curl_headers: String =
        headers.iter().map(|(k, v)| format!(" -H {}", quote(&format!("{k}: {v}")))).collect();
    let wget_headers: String =
        headers.iter().map(|(k, v)| format!(" --header={}", quote(&format!("{k}: {v}")))).collect();
    format!(
        "if command -v curl >/dev/null 2>&1; then curl -fsSL --max-time {timeout}{curl_headers} -o {t} {u}; \
         elif command -v wget >/dev/null 2>&1; then wget -q -T {timeout}{wget_headers} -O {t} {u}; \
         else echo 'neither curl nor wget is installed on the target' >&2; exit 127; fi",
        t = quote(target),
        u = quote(url)
    )
}

fn digest_tool(algorithm: &str) -> String {
    format!("{algorithm}sum")
}

async fn remote_digest(
    call: &Call<'_>,
    algorithm: &str,
    path: &str,
) -> Result<Option<String>, Failure> {
    let path_q = quote(path);
    let output = call
        .remote
        .run(&format!("[ -f {path_q} ] && {} -- {path_q}", digest_tool(algorithm)))
        .await?;
    Ok(output
        .stdout_text()
        .split_whitespace()
        .next()
        .map(str::to_string)
        .filter(|_| output.rc == 0))
}

pub async fn run(call: &mut Call<'_>) -> Outcome {
    let url = call.args.required(&["url"])?;
    let mut dest = call.args.required(&["dest"])?;
    let force = call.args.flag(&["force"], false)?;
    let timeout = call.args.integer(&["timeout"], 10)?;
    let mode = Mode::parse(call.args.value(&["mode"]))?;
    let owner = call.args.string(&["owner"]);
    let group = call.args.string(&["group"]);
    let headers: Vec<(String, String)> = match call.args.value(&["headers"]) {
        Some(Value::Object(map)) => {
            map.iter().map(|(k, v)| (k.clone(), crate::playbook::display_string(v))).collect()
        }
        Some(_) => return Err(fail("headers must be a mapping")),
        None => Vec::new(),
    };
    let filename = url
        .split(['?', '#'])
        .next()
        .unwrap_or(&url)
        .rsplit('/')
        .next()
        .unwrap_or("index.html")
        .to_string();

    // Validate: resolve the expected checksum before touching anything.
    let checksum = match call.args.string(&["checksum"]).filter(|c| !c.is_empty()) {
        None => None,
        Some(text) => {
            Some(resolve_checksum(call, Checksum::parse(&text)?, &filename, timeout).await?)
        }
    };
    let algorithm = checksum.as_ref().map(|(algorithm, _)| algorithm.as_str()).unwrap_or("sha1");

    // Query, in one round trip: is the right file already there?
    let mut probe = files::probe(call.remote, &dest, algorithm).await?;
    if probe.state.as_ref().is_some_and(|state| state.kind == FileKind::Directory) {
        dest = format!("{}/{filename}", dest.trim_end_matches('/'));
        probe = files::probe(call.remote, &dest, algorithm).await?;
    }
    if let Some(state) = &probe.state {
        let satisfied = match &checksum {
            Some((_, expected)) => probe.checksum.as_deref() == Some(expected.as_str()),
            None => !force,
        };
        if satisfied {
            let (changed, after) = files::settle_attributes(
                call.remote,
                &dest,
                state,
                mode.as_ref(),
                owner.as_deref(),
                group.as_deref(),
                call.check_mode,
            )
            .await?;
            let mut outcome = result([
                ("changed", Value::Bool(changed)),
                ("dest", Value::from(dest.clone())),
                ("url", Value::from(url)),
                ("msg", Value::from("file already exists")),
            ]);
            files::describe(&mut outcome, &after);
            return Ok(outcome);
        }
    }
    if call.check_mode {
        return Ok(result([
            ("changed", Value::Bool(true)),
            ("dest", Value::from(dest)),
            ("url", Value::from(url)),
            ("msg", Value::from("would download")),
        ]));
    }

    // Modify: download next to the destination, verify, then rename into place.
    let directory = dest
        .rsplit_once('/')
        .map(|(d, _)| if d.is_empty() { "/" } else { d })
        .unwrap_or(".")
        .to_string();
    let temp = call
        .remote
        .check(
            &format!("mktemp {}/.bramble-download-XXXXXXXX", quote(&directory)),
            "creating a temporary file",
        )
        .await?;
    let temp = temp.stdout_text().trim().to_string();
    let fetched = call.remote.run(&download_command(&url, &temp, timeout, &headers)).await?;
    if fetched.rc != 0 {
        call.remote.run(&format!("rm -f -- {}", quote(&temp))).await?;
        let mut outcome = result([
            ("changed", Value::Bool(false)),
            ("dest", Value::from(dest)),
            ("url", Value::from(url.clone())),
        ]);
        outcome.insert(
            "msg".into(),
            Value::from(format!("Request failed: {}", fetched.stderr_text().trim())),
        );
        outcome.insert("status_code".into(), Value::from(-1));
        return Err(Failure::Failed(outcome));
    }
    if let Some((algorithm, expected)) = &checksum {
        let actual = remote_digest(call, algorithm, &temp).await?.unwrap_or_default();
        if &actual != expected {
            call.remote.run(&format!("rm -f -- {}", quote(&temp))).await?;
            return Err(fail(format!(
                "The checksum for {dest} did not match {expected}; it was {actual}."
            )));
        }
    }
    let checksum_src = files::sha1(call.remote, &temp).await?.unwrap_or_default();
    let checksum_dest = files::sha1(call.remote, &dest).await?;
    let changed = checksum_dest.as_deref() != Some(checksum_src.as_str());
    if changed {
        let finish = files::atomic_write_command(
            &dest,
            files::Fill::TakeRemoteFile(&temp),
            mode.as_ref(),
            owner.as_deref(),
            group.as_deref(),
            None,
        );
        call.remote.check(&finish, &format!("moving the download to {dest}")).await?;
    } else {
        call.remote.run(&format!("rm -f -- {}", quote(&temp))).await?;
        files::apply_attributes(
            call.remote,
            &dest,
            mode.as_ref(),
            owner.as_deref(),
            group.as_deref(),
            false,
        )
        .await?;
    }
    let mut outcome = result([
        ("changed", Value::Bool(changed)),
        ("dest", Value::from(dest.clone())),
        ("url", Value::from(url)),
        ("checksum_src", Value::from(checksum_src.clone())),
        ("checksum_dest", Value::from(checksum_src)),
        ("status_code", Value::from(200)),
        ("msg", Value::from("OK")),
    ]);
    if let Some(state) = files::lstat(call.remote, &dest).await? {
        files::describe(&mut outcome, &state);
    }
    Ok(outcome)
}

/// `sha256:<hex>` as is; `sha256:<url>` fetches the sums file on the host and picks our line.
async fn resolve_checksum(
    call: &Call<'_>,
    checksum: Checksum,
    filename: &str,
    timeout: i64,
) -> Result<(String, String), Failure> {
    if !checksum.is_url() {
        return Ok((checksum.algorithm, checksum.value.to_ascii_lowercase()));
    }
    let command = download_command(&checksum.value, "-", timeout, &[]);
    let output = call.remote.run(&command).await?;
    if output.rc != 0 {
        return Err(fail(format!(
            "Unable to download the checksum file {}: {}",
            checksum.value,
            output.stderr_text().trim()
        )));
    }
    let hex = checksum_from_sums(&output.stdout_text(), filename).ok_or_else(|| {
        fail(format!("Unable to find a checksum for file '{filename}' in '{}'", checksum.value))
    })?;
    Ok((checksum.algorithm, hex.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_file_lines() {
        let sums = "aaa  node_exporter-1.5.0.linux-arm64.tar.gz\nbbb *node_exporter-1.5.0.linux-amd64.tar.gz\n";
        assert_eq!(
            checksum_from_sums(sums, "node_exporter-1.5.0.linux-amd64.tar.gz").as_deref(),
            Some("bbb")
        );
        assert_eq!(checksum_from_sums(sums, "other.tar.gz"), None);
        assert_eq!(checksum_from_sums("ccc\n", "anything").as_deref(), Some("ccc"));
    }

    #[test]
    fn checksum_forms() {
        assert_eq!(
            Checksum::parse("sha256:ABC").ok(),
            Some(Checksum { algorithm: "sha256".into(), value: "ABC".into() })
        );
        assert!(Checksum::parse("sha256:http://x/sums").is_ok_and(|c| c.is_url()));
        assert!(Checksum::parse("nocolon").is_err());
    }

    #[test]
    fn download_quotes_the_url() {
        let command = download_command("http://h/a b", "/tmp/t", 10, &[]);
        assert!(command.contains("'http://h/a b'"), "{command}");
    }
}
