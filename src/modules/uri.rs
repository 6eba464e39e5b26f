//! `uri`: an HTTP request made on the host with curl (or wget), with Ansible's result keys.

use serde_json::{Map, Value};

use super::{Call, Failure, Outcome, fail, result};
use crate::connection::quote;

const BODY_MARK: &str = "--bramble-body--";

/// The curl command: status line first, then headers, then the body after a marker.
pub fn curl_command(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    timeout: i64,
    insecure: bool,
    auth: Option<(&str, &str)>,
    has_body: bool,
) -> String {
    let mut command = format!("curl -sS -X {} --max-time {timeout}", quote(method));
    if insecure {
        command.push_str(" -k");
    }
    for (key, value) in headers {
        command.push_str(&format!(" -H {}", quote(&format!("{key}: {value}"))));
    }
    if let Some((user, password)) = auth {
        command.push_str(&format!(" -u {}", quote(&format!("{user}:{password}"))));
    }
    if has_body {
        command.push_str(" --data-binary @-");
    }
    format!(
        "t=$(mktemp -d); trap 'rm -rf \"$t\"' EXIT; {command} -D \"$t/h\" -o \"$t/b\" -w '%{{http_code}}' {} > \"$t/c\" || exit $?; \
         cat \"$t/c\"; echo; cat \"$t/h\"; echo {BODY_MARK}; cat \"$t/b\"",
        quote(url)
    )
}

/// Status code, lower-cased headers (`-` as `_`, as Ansible names them) and body.
pub fn parse_response(text: &str) -> (i64, Map<String, Value>, String) {
    let (head, body) = text.split_once(&format!("{BODY_MARK}\n")).unwrap_or((text, ""));
    let mut lines = head.lines();
    let status = lines.next().and_then(|line| line.trim().parse().ok()).unwrap_or(-1);
    let mut headers = Map::new();
    for line in lines {
        if let Some((key, value)) = line.split_once(':') {
            headers.insert(
                key.trim().to_ascii_lowercase().replace('-', "_"),
                Value::from(value.trim()),
            );
        }
    }
    (status, headers, body.to_string())
}

pub async fn run(call: &mut Call<'_>) -> Outcome {
    let args = &call.args;
    let url = args.required(&["url"])?;
    let method = args.string(&["method"]).unwrap_or_else(|| "GET".into()).to_ascii_uppercase();
    let timeout = args.integer(&["timeout"], 30)?;
    let return_content = args.flag(&["return_content"], false)?;
    let insecure = !args.flag(&["validate_certs"], true)?;
    let format = args
        .choice(&["body_format"], &["raw", "json", "form-urlencoded"], Some("raw"))?
        .unwrap_or_default();
    let expected: Vec<i64> = match args.value(&["status_code"]) {
        None => vec![200],
        Some(Value::Array(items)) => {
            items.iter().filter_map(|v| crate::playbook::display_string(v).parse().ok()).collect()
        }
        Some(other) => crate::playbook::display_string(other)
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect(),
    };
    let mut headers: Vec<(String, String)> = match args.value(&["headers"]) {
        Some(Value::Object(map)) => {
            map.iter().map(|(k, v)| (k.clone(), crate::playbook::display_string(v))).collect()
        }
        _ => Vec::new(),
    };
    let body = match (args.value(&["body"]), format.as_str()) {
        (None, _) => None,
        (Some(body), "json") => {
            headers.push(("Content-Type".into(), "application/json".into()));
            Some(match body {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            })
        }
        (Some(Value::Object(form)), "form-urlencoded") => {
            headers.push(("Content-Type".into(), "application/x-www-form-urlencoded".into()));
            Some(
                form.iter()
                    .map(|(k, v)| {
                        format!("{}={}", encode(k), encode(&crate::playbook::display_string(v)))
                    })
                    .collect::<Vec<_>>()
                    .join("&"),
            )
        }
        (Some(body), _) => Some(crate::playbook::display_string(body)),
    };
    let user = args.string(&["url_username", "user"]);
    let password = args.string(&["url_password", "password"]).unwrap_or_default();
    if call.check_mode {
        return Ok(result([
            ("changed", Value::Bool(false)),
            ("skipped", Value::Bool(true)),
            ("msg", Value::from("uri is not run in check mode")),
        ]));
    }

    let has_curl = call.remote.run("command -v curl").await?.rc == 0;
    if !has_curl {
        let has_wget = call.remote.run("command -v wget").await?.rc == 0;
        return Err(fail(if has_wget {
            "not supported yet: uri through wget; install curl on the target".to_string()
        } else {
            "uri needs curl on the target, and neither curl nor wget is installed".to_string()
        }));
    }
    let command = curl_command(
        &method,
        &url,
        &headers,
        timeout,
        insecure,
        user.as_deref().map(|u| (u, password.as_str())),
        body.is_some(),
    );
    let output = call.remote.run_with_input(&command, body.as_deref().map(str::as_bytes)).await?;
    if output.rc != 0 {
        let mut failure = result([
            ("changed", Value::Bool(false)),
            ("status", Value::from(-1)),
            ("url", Value::from(url.clone())),
        ]);
        failure.insert(
            "msg".into(),
            Value::from(format!(
                "Status code was -1 and not {expected:?}: Request failed: {}",
                output.stderr_text().trim()
            )),
        );
        return Err(Failure::Failed(failure));
    }
    let (status, response_headers, content) = parse_response(&output.stdout_text());
    let mut outcome = result([
        ("changed", Value::Bool(false)),
        ("status", Value::from(status)),
        ("url", Value::from(url)),
        ("redirected", Value::Bool(false)),
    ]);
    let is_json = response_headers
        .get("content_type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.contains("json"));
    outcome.insert("msg".into(), Value::from(format!("OK ({} bytes)", content.len())));
    for (key, value) in &response_headers {
        outcome.insert(key.clone(), value.clone());
    }
    if return_content {
        if is_json && let Ok(json) = serde_json::from_str::<Value>(&content) {
            outcome.insert("json".into(), json);
        }
        outcome.insert("content".into(), Value::from(content));
    }
    if !expected.contains(&status) {
        outcome.insert(
            "msg".into(),
            Value::from(format!(
                "Status code was {status} and not {expected:?}: HTTP Error {status}"
            )),
        );
        return Err(Failure::Failed(outcome));
    }
    Ok(outcome)
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".into(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_parts() {
        let text = format!(
            "200\nHTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n{BODY_MARK}\nnode_up 1\n"
        );
        let (status, headers, body) = parse_response(&text);
        assert_eq!(status, 200);
        assert_eq!(headers["content_type"], "text/plain");
        assert_eq!(body, "node_up 1\n");
    }
}
