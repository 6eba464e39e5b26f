//! `bramble lab`: Pi-like qemu guests to rehearse rollouts on. [`qemu`] boots one guest from
//! boot files and two ports, [`image`] turns an image file into those boot files, [`seed`]
//! gives each guest its identity, and [`fleet`] is `bramble lab up`, `status` and `down`.

pub mod fleet;
pub mod image;
pub mod qemu;
pub mod seed;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::error::{Error, Result};

/// The guest's CPU architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Arch {
    /// A Pi's: `qemu-system-aarch64 -M virt -cpu cortex-a72`.
    Arm64,
    /// A PC's: `qemu-system-x86_64 -M q35`, quicker under TCG on an x86 host.
    Amd64,
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::Arm64 => "arm64",
            Arch::Amd64 => "amd64",
        }
    }
}

/// `${BRAMBLE_CACHE:-~/.cache/bramble}/lab`, shared with `tests/lab/`.
pub fn lab_dir() -> PathBuf {
    let base = std::env::var_os("BRAMBLE_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
        PathBuf::from(home).join(".cache/bramble")
    });
    base.join("lab")
}

/// An I/O error on `path` during `step`.
pub fn io(step: &str, path: &Path, error: std::io::Error) -> Error {
    Error::lab(step, format!("{}: {error}", path.display()))
}

/// Runs a host tool with an argument vector (never a shell); stdout on success, and on
/// failure an error naming the step with the end of stderr.
pub async fn run_tool<S: AsRef<OsStr>>(step: &str, program: &str, args: &[S]) -> Result<String> {
    tracing::debug!(step, program, "host command");
    let output = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        // mtools otherwise refuses FAT geometries that no floppy ever had.
        .env("MTOOLS_SKIP_CHECK", "1")
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|error| Error::lab(step, format!("could not run {program}: {error}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(Error::lab(
            step,
            format!("{program} failed ({}):\n{}", output.status, tail.join("\n")),
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
