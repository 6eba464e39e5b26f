//! Running commands on this machine, for `connection: local` and the implicit localhost.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::{Output, Unreachable};

#[derive(Debug, Default)]
pub struct LocalConnection;

impl LocalConnection {
    pub async fn exec(&self, command: &str, stdin: Option<&[u8]>) -> Result<Output, Unreachable> {
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(command)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| Unreachable(format!("could not start /bin/sh: {error}")))?;
        if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // A command that exits without reading its input is not an error here.
            let _ = pipe.write_all(data).await;
        }
        let output = child
            .wait_with_output()
            .await
            .map_err(|error| Unreachable(format!("local command failed: {error}")))?;
        Ok(Output {
            rc: output.status.code().unwrap_or(-1),
            stdout: output.stdout,
            stderr: output.stderr,
        })
    }
}
