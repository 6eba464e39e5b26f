//! A guest's identity, given as `bramble burn` gives a card its own: cloud-init NoCloud
//! `meta-data`, `user-data` and `network-config` on the boot partition. The files go into a
//! copy of the baked partition with mtools; the blocks that changed are then written into
//! the guest's copy-on-write overlay with `qemu-io`, so the shared disk is never touched and
//! nothing is mounted.

use std::io::Read;
use std::path::Path;

use serde_json::{Value, json};

use super::{io, run_tool};
use crate::error::{Error, Result};
use crate::image::cloud_init::{self, DeviceIdentity};

/// Blocks are compared and written in this size (qcow2's default cluster size).
pub const CHUNK: usize = 64 << 10;

/// Who one guest is.
#[derive(Clone, Debug)]
pub struct GuestIdentity {
    pub hostname: String,
    pub user: String,
    pub authorized_key: String,
    /// The guest's SSH host key (OpenSSH private and public text), known before it boots.
    pub host_key: (String, String),
    pub instance_id: String,
}

/// The three seed files, burn's own plus the host key, so known_hosts can be written before
/// the first boot, and no other key types, which TCG is slow to generate.
pub fn seed_files(identity: &GuestIdentity) -> Vec<(&'static str, String)> {
    let device = DeviceIdentity {
        instance_id: identity.instance_id.clone(),
        hostname: Some(identity.hostname.clone()),
        user: Some(identity.user.clone()),
        authorized_keys: vec![identity.authorized_key.clone()],
    };
    let burned = cloud_init::user_data(&device);
    let body = burned.trim_start_matches("#cloud-config\n");
    let mut user_data: Value = serde_json::from_str(body).unwrap_or_else(|_| json!({}));
    user_data["ssh_keys"] = json!({
        "ed25519_private": identity.host_key.0,
        "ed25519_public": identity.host_key.1.trim(),
    });
    user_data["ssh_genkeytypes"] = json!([]);
    let user_data = serde_json::to_string_pretty(&user_data).unwrap_or_else(|_| "{}".into());
    vec![
        ("meta-data", cloud_init::meta_data(&device)),
        ("user-data", format!("#cloud-config\n{user_data}\n")),
        ("network-config", cloud_init::network_config()),
    ]
}

/// The `(offset, length)` of every `CHUNK` in which `before` and `after` differ.
pub fn changed_chunks(
    mut before: impl Read,
    mut after: impl Read,
) -> std::io::Result<Vec<(u64, usize)>> {
    let mut changed = Vec::new();
    let (mut left, mut right) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    let mut offset = 0u64;
    loop {
        let read_left = read_full(&mut before, &mut left)?;
        let read_right = read_full(&mut after, &mut right)?;
        let length = read_left.max(read_right);
        if length == 0 {
            return Ok(changed);
        }
        if left[..read_left] != right[..read_right] {
            changed.push((offset, read_right));
        }
        offset += length as u64;
    }
}

fn read_full(source: &mut impl Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match source.read(&mut buffer[filled..])? {
            0 => break,
            read => filled += read,
        }
    }
    Ok(filled)
}

/// Writes `files` to the boot partition of `overlay`, which starts `offset` bytes into the
/// disk and held `bootfs` (a copy of it) as baked. `work` is an empty scratch folder.
pub async fn write(
    overlay: &Path,
    bootfs: &Path,
    offset: u64,
    files: &[(&str, String)],
    work: &Path,
) -> Result<()> {
    let step = "writing the cloud-init seed";
    let copy = work.join("bootfs.img");
    run_tool(step, "cp", &["--sparse=always".as_ref(), bootfs.as_os_str(), copy.as_os_str()])
        .await?;
    for (name, text) in files {
        let file = work.join(name);
        std::fs::write(&file, text).map_err(|e| io(step, &file, e))?;
        let target = format!("::/{name}");
        let arguments =
            ["-i".as_ref(), copy.as_os_str(), "-o".as_ref(), file.as_os_str(), target.as_ref()];
        run_tool(step, "mcopy", &arguments).await?;
    }

    let open = |path: &Path| std::fs::File::open(path).map_err(|e| io(step, path, e));
    let chunks = changed_chunks(std::io::BufReader::new(open(bootfs)?), open(&copy)?)
        .map_err(|e| io(step, &copy, e))?;
    let mut arguments = vec!["-f".to_string(), "qcow2".to_string()];
    let mut contents = open(&copy)?;
    for (index, (start, length)) in chunks.iter().enumerate() {
        let chunk = work.join(format!("chunk-{index}"));
        let mut bytes = vec![0u8; *length];
        std::io::Seek::seek(&mut contents, std::io::SeekFrom::Start(*start))
            .and_then(|_| contents.read_exact(&mut bytes))
            .map_err(|e| io(step, &copy, e))?;
        std::fs::write(&chunk, &bytes).map_err(|e| io(step, &chunk, e))?;
        let chunk = chunk.to_string_lossy().into_owned();
        // qemu-io splits its commands at spaces and has no quoting.
        if chunk.contains(char::is_whitespace) {
            return Err(Error::lab(step, format!("the scratch path {chunk} has a space in it")));
        }
        arguments.push("-c".into());
        arguments.push(format!("write -q -s {chunk} {} {length}", offset + start));
    }
    arguments.push(overlay.to_string_lossy().into_owned());
    run_tool(step, "qemu-io", &arguments).await.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_chunks_that_differ_are_listed() {
        let before = vec![0u8; CHUNK * 3 + 100];
        let mut after = before.clone();
        after[CHUNK + 1] = 1;
        after[CHUNK * 3 + 99] = 2;
        let chunks = changed_chunks(&before[..], &after[..]).unwrap();
        assert_eq!(chunks, [(CHUNK as u64, CHUNK), ((CHUNK * 3) as u64, 100)]);
        assert!(changed_chunks(&before[..], &before[..]).unwrap().is_empty());
    }

    #[test]
    fn the_seed_is_burns_with_a_known_host_key() {
        let identity = GuestIdentity {
            hostname: "lab2".into(),
            user: "pi".into(),
            authorized_key: "ssh-ed25519 AAAAC3 fleet".into(),
            host_key: (
                "-----BEGIN OPENSSH PRIVATE KEY-----\n".into(),
                "ssh-ed25519 AAAAhost\n".into(),
            ),
            instance_id: "bramble-lab2-1".into(),
        };
        let files = seed_files(&identity);
        let names: Vec<&str> = files.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, ["meta-data", "user-data", "network-config"]);
        let user_data = &files[1].1;
        assert!(user_data.starts_with("#cloud-config\n"));
        let value: Value = serde_json::from_str(&user_data["#cloud-config\n".len()..]).unwrap();
        assert_eq!(value["hostname"], "lab2");
        assert_eq!(value["users"][0]["name"], "pi");
        assert_eq!(value["users"][0]["ssh_authorized_keys"][0], "ssh-ed25519 AAAAC3 fleet");
        assert_eq!(value["ssh_keys"]["ed25519_public"], "ssh-ed25519 AAAAhost");
        assert_eq!(value["ssh_genkeytypes"], json!([]));
        let meta: Value = serde_json::from_str(&files[0].1).unwrap();
        assert_eq!(meta["local-hostname"], "lab2");
    }
}
