//! Running the host's tools (sfdisk, losetup, mount, mkfs, debootstrap, xz) for the image
//! steps: argument vectors, never a shell, and a child killed if the bake is dropped.

use std::ffi::OsStr;
use std::process::Stdio;

use tokio::process::Command;

use crate::error::{Error, Result};

/// Runs `program` with `args`; on failure the error names the step and shows stderr's end.
pub async fn run<S: AsRef<OsStr>>(step: &str, program: &str, args: &[S]) -> Result<String> {
    tracing::debug!(step, program, "host command");
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        // mtools otherwise refuses FAT geometries that no floppy ever had.
        .env("MTOOLS_SKIP_CHECK", "1")
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|error| {
            let hint = if error.kind() == std::io::ErrorKind::NotFound {
                format!("\nhint: install it: apt-get install {}", package_of(program))
            } else {
                String::new()
            };
            Error::image(step, format!("could not run {program}: {error}{hint}"))
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(Error::image(
            step,
            format!("{program} failed ({}):\n{}", output.status, tail.join("\n")),
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs a pipeline through `sh -c`; `script` must be built with `connection::quote`.
pub async fn shell(step: &str, script: &str) -> Result<String> {
    run(step, "sh", &["-c", script]).await
}

/// The Debian package that ships a tool the image steps need.
pub fn package_of(program: &str) -> &'static str {
    match program {
        "sfdisk" => "fdisk",
        "mkfs.vfat" | "fsck.vfat" => "dosfstools",
        "mcopy" | "mdir" | "mtype" => "mtools",
        "mkfs.ext4" | "e2fsck" | "resize2fs" => "e2fsprogs",
        "debootstrap" => "debootstrap",
        "xz" => "xz-utils",
        "zstd" => "zstd",
        "qemu-aarch64-static" => "qemu-user-static binfmt-support",
        _ => "the package that provides it",
    }
}

/// The tools a bake needs, checked before anything is started.
pub fn require(programs: &[&str]) -> Result<()> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|program| !std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut packages: Vec<&str> = missing.iter().map(|program| package_of(program)).collect();
    packages.dedup();
    Err(Error::image(
        "checking the host's tools",
        format!("missing: {}\nhint: apt-get install {}", missing.join(", "), packages.join(" ")),
    ))
}

/// Sizes as the user reads them: `2.0 GiB`, `512 MiB`.
pub fn human_size(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let mib = bytes as f64 / MIB;
    if mib >= 1024.0 { format!("{:.1} GiB", mib / 1024.0) } else { format!("{mib:.0} MiB") }
}

/// Parses `2G`, `512M`, `2GiB`, `1500000000` (bytes) into bytes.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let shift = match unit.trim().trim_end_matches("iB").trim_end_matches('B') {
        "" => 0,
        "K" | "k" => 10,
        "M" | "m" => 20,
        "G" | "g" => 30,
        "T" | "t" => 40,
        _ => return None,
    };
    number.checked_mul(1 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("2G"), Some(2 << 30));
        assert_eq!(parse_size("512MiB"), Some(512 << 20));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("2 parsecs"), None);
        assert_eq!(human_size(3 << 29), "1.5 GiB");
        assert_eq!(human_size(8 << 20), "8 MiB");
    }
}
