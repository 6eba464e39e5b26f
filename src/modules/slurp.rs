//! `slurp`: a file's bytes from the host, base64-encoded, in one command.

use base64::Engine;
use serde_json::Value;

use super::{Call, Outcome, fail, result};
use crate::connection::quote;

/// One script: why the file cannot be read, or `ok` and its bytes.
pub fn command(path: &str) -> String {
    let path = quote(path);
    format!(
        "if [ -d {path} ]; then echo directory; elif [ ! -e {path} ]; then echo missing; \
         elif [ ! -r {path} ]; then echo unreadable; else echo ok; cat -- {path}; fi"
    )
}

/// The bytes after the status line, or Ansible's message for why there are none.
pub fn parse(stdout: &[u8], path: &str) -> Result<Vec<u8>, String> {
    let (status, rest) = match stdout.iter().position(|b| *b == b'\n') {
        Some(index) => (&stdout[..index], &stdout[index + 1..]),
        None => (stdout, &[][..]),
    };
    match status {
        b"ok" => Ok(rest.to_vec()),
        b"missing" => Err(format!("File not found: {path}")),
        b"unreadable" => Err(format!("File is not readable: {path}")),
        b"directory" => Err(format!("Source is a directory and must be a file: {path}")),
        _ => Err(format!("Unable to slurp file: {path}")),
    }
}

/// Reads a whole remote file; the error is Ansible's slurp message.
pub async fn read(call: &Call<'_>, path: &str) -> Result<Result<Vec<u8>, String>, super::Failure> {
    let output = call.remote.run(&command(path)).await?;
    if output.rc != 0 {
        return Ok(Err(format!("Unable to slurp file: {path}: {}", output.stderr_text().trim())));
    }
    Ok(parse(&output.stdout, path))
}

pub async fn run(call: &mut Call<'_>) -> Outcome {
    let source = call.args.required(&["src", "path"])?;
    let bytes = read(call, &source).await?.map_err(fail)?;
    Ok(result([
        ("changed", Value::Bool(false)),
        ("content", Value::from(base64::engine::general_purpose::STANDARD.encode(bytes))),
        ("source", Value::from(source)),
        ("encoding", Value::from("base64")),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_ansible_messages() {
        assert_eq!(parse(b"ok\nab\n", "/f").unwrap(), b"ab\n");
        assert_eq!(parse(b"missing\n", "/f").unwrap_err(), "File not found: /f");
        assert!(parse(b"directory\n", "/d").unwrap_err().starts_with("Source is a directory"));
        assert!(command("/a b").contains("cat -- '/a b'"));
    }
}
