//! Running commands inside another root file system through chroot(8), for
//! `ansible_connection=chroot` and for `bramble bake`, which provisions a mounted image.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::{Output, Unreachable};

/// The PATH inside the chroot: the host's may name directories the image lacks.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug)]
pub struct ChrootConnection {
    root: PathBuf,
}

impl ChrootConnection {
    /// Checks that `root` holds a shell before any task is sent there.
    pub fn open(root: &Path) -> Result<ChrootConnection, Unreachable> {
        let shell = root.join("bin/sh");
        if std::fs::symlink_metadata(&shell).is_err() {
            return Err(Unreachable(format!(
                "{} is not a root file system: it has no /bin/sh",
                root.display()
            )));
        }
        Ok(ChrootConnection { root: root.to_path_buf() })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Runs `command` with `/bin/sh -c` inside the root, in the C.UTF-8 locale so that tools
    /// do not complain about locales the image has not generated.
    pub async fn exec(&self, command: &str, stdin: Option<&[u8]>) -> Result<Output, Unreachable> {
        let mut child = Command::new("chroot")
            .arg(&self.root)
            .args(["/bin/sh", "-c", command])
            .env("PATH", PATH)
            .env("LC_ALL", "C.UTF-8")
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|error| Unreachable(format!("could not run chroot: {error}")))?;
        if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // A command that exits without reading its input is not an error here.
            let _ = pipe.write_all(data).await;
        }
        let output = child
            .wait_with_output()
            .await
            .map_err(|error| Unreachable(format!("chroot command failed: {error}")))?;
        Ok(Output {
            rc: output.status.code().unwrap_or(-1),
            stdout: output.stdout,
            stderr: output.stderr,
        })
    }
}
