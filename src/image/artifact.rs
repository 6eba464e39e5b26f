//! The bake's outputs: `<name>.img.xz`, its `.sha256`, the raw image's `.img.sha256`, and a
//! `.bmap` (bmaptool's format 2.0 with sha256) listing the blocks that hold data. Each is
//! written under a temporary name and renamed, so a reader never sees half a file.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::host;
use super::mounts::io;
use crate::error::{Error, Result};

pub const BLOCK: u64 = 4096;

/// A run of mapped blocks, inclusive, with the sha256 of their bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    pub first: u64,
    pub last: u64,
    pub sha256: String,
}

/// What a bmap says about an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockMap {
    pub image_size: u64,
    pub ranges: Vec<Range>,
}

impl BlockMap {
    pub fn blocks(&self) -> u64 {
        self.image_size.div_ceil(BLOCK)
    }

    pub fn mapped(&self) -> u64 {
        self.ranges.iter().map(|r| r.last - r.first + 1).sum()
    }

    /// The bmap file's text, its own checksum included (computed over the text with the
    /// checksum written as zeros, as bmaptool checks it).
    pub fn to_xml(&self) -> String {
        let text = self.xml_with_checksum(&"0".repeat(64));
        let checksum = hex::encode(Sha256::digest(text.as_bytes()));
        self.xml_with_checksum(&checksum)
    }

    fn xml_with_checksum(&self, checksum: &str) -> String {
        let mut xml = format!(
            "<?xml version=\"1.0\" ?>\n\
             <!-- Written by bramble bake: the blocks of the image that hold data. -->\n\
             <bmap version=\"2.0\">\n\
             \x20   <ImageSize> {} </ImageSize>\n\
             \x20   <BlockSize> {BLOCK} </BlockSize>\n\
             \x20   <BlocksCount> {} </BlocksCount>\n\
             \x20   <MappedBlocksCount> {} </MappedBlocksCount>\n\
             \x20   <ChecksumType> sha256 </ChecksumType>\n\
             \x20   <BmapFileChecksum> {checksum} </BmapFileChecksum>\n\
             \x20   <BlockMap>\n",
            self.image_size,
            self.blocks(),
            self.mapped()
        );
        for range in &self.ranges {
            let span = if range.first == range.last {
                range.first.to_string()
            } else {
                format!("{}-{}", range.first, range.last)
            };
            xml += &format!("        <Range chksum=\"{}\">{span}</Range>\n", range.sha256);
        }
        xml + "    </BlockMap>\n</bmap>\n"
    }
}

/// Parses the ranges of a bmap file (for `burn`).
pub fn parse_bmap(text: &str) -> Result<BlockMap> {
    let invalid = |what: &str| Error::image("reading the bmap", what.to_string());
    let field = |name: &str| -> Result<u64> {
        let open = format!("<{name}>");
        let start = text.find(&open).ok_or_else(|| invalid(&format!("no {name}")))? + open.len();
        let end = text[start..].find('<').ok_or_else(|| invalid(&format!("bad {name}")))?;
        text[start..start + end].trim().parse().map_err(|_| invalid(&format!("bad {name}")))
    };
    if field("BlockSize")? != BLOCK {
        return Err(Error::NotSupported { what: "a bmap block size other than 4096".into() });
    }
    let image_size = field("ImageSize")?;
    let mut ranges = Vec::new();
    for piece in text.split("<Range").skip(1) {
        let sha256 = piece.split("chksum=\"").nth(1).and_then(|r| r.split('"').next());
        let span = piece.split('>').nth(1).and_then(|r| r.split('<').next()).unwrap_or("");
        let (first, last) = span.trim().split_once('-').unwrap_or((span.trim(), span.trim()));
        let (Ok(first), Ok(last)) = (first.parse(), last.parse()) else {
            return Err(invalid(&format!("bad range `{span}`")));
        };
        ranges.push(Range { first, last, sha256: sha256.unwrap_or("").to_string() });
    }
    Ok(BlockMap { image_size, ranges })
}

/// The data extents of a sparse file, in blocks, from SEEK_DATA / SEEK_HOLE.
fn data_extents(file: &File, size: u64) -> Vec<(u64, u64)> {
    let fd = file.as_raw_fd();
    let mut extents = Vec::new();
    let mut offset: i64 = 0;
    while (offset as u64) < size {
        // SAFETY: lseek on a file descriptor this function borrows; no memory is touched.
        let data = unsafe { libc::lseek(fd, offset, libc::SEEK_DATA) };
        if data < 0 {
            break;
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        let hole = if hole < 0 { size as i64 } else { hole };
        let first = data as u64 / BLOCK;
        let last = (hole as u64).div_ceil(BLOCK) - 1;
        match extents.last_mut() {
            Some((_, previous)) if *previous + 1 >= first => *previous = last.max(*previous),
            _ => extents.push((first, last)),
        }
        offset = hole;
    }
    extents
}

/// Reads the image once: the bmap's ranges (each hashed) and the sha256 of the whole image,
/// holes included.
pub fn scan(image: &Path) -> Result<(BlockMap, String)> {
    let failed = |e: std::io::Error| io("reading the image", image, e);
    let mut file = File::open(image).map_err(failed)?;
    let size = file.metadata().map_err(failed)?.len();
    let extents = data_extents(&file, size);
    let mut whole = Sha256::new();
    let mut ranges = Vec::new();
    let mut position = 0u64;
    let zeros = vec![0u8; 1 << 20];
    let mut buffer = vec![0u8; 1 << 20];
    for (first, last) in extents {
        let start = first * BLOCK;
        let end = ((last + 1) * BLOCK).min(size);
        feed_zeros(&mut whole, &zeros, start - position);
        file.seek(SeekFrom::Start(start)).map_err(failed)?;
        let mut range = Sha256::new();
        let mut left = end - start;
        while left > 0 {
            let chunk = left.min(buffer.len() as u64) as usize;
            file.read_exact(&mut buffer[..chunk]).map_err(failed)?;
            range.update(&buffer[..chunk]);
            whole.update(&buffer[..chunk]);
            left -= chunk as u64;
        }
        ranges.push(Range { first, last, sha256: hex::encode(range.finalize()) });
        position = end;
    }
    feed_zeros(&mut whole, &zeros, size - position);
    Ok((BlockMap { image_size: size, ranges }, hex::encode(whole.finalize())))
}

fn feed_zeros(hasher: &mut Sha256, zeros: &[u8], mut count: u64) {
    while count > 0 {
        let chunk = count.min(zeros.len() as u64) as usize;
        hasher.update(&zeros[..chunk]);
        count -= chunk as u64;
    }
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let failed = |e: std::io::Error| io("hashing", path, e);
    let mut file = File::open(path).map_err(failed)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let count = file.read(&mut buffer).map_err(failed)?;
        if count == 0 {
            break;
        }
        hasher.update(&buffer[..count]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The files a bake leaves in the output folder.
#[derive(Debug)]
pub struct Outputs {
    pub image_xz: PathBuf,
    pub bmap: PathBuf,
    pub image_sha256: String,
    pub xz_sha256: String,
}

/// `.<name>.partial` beside `path`: renamed to `path` once complete.
fn partial(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.partial"))
}

fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let temporary = partial(path);
    let failed = |e: std::io::Error| io("writing", path, e);
    let mut file = File::create(&temporary).map_err(failed)?;
    file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(failed)?;
    std::fs::rename(&temporary, path).map_err(failed)
}

/// Writes all outputs for `image` into `folder` as `<name>.*`.
/// Makes sure the output folder exists and takes files, before a bake spends minutes on an
/// image it could not then write.
pub fn prepare_folder(folder: &Path) -> Result<()> {
    std::fs::create_dir_all(folder).map_err(|e| io("creating the output folder", folder, e))?;
    let probe = folder.join(format!(".bramble-probe-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| io("writing into the output folder", folder, e))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

pub async fn write(image: &Path, folder: &Path, name: &str, xz_level: u8) -> Result<Outputs> {
    std::fs::create_dir_all(folder).map_err(|e| io("creating the output folder", folder, e))?;
    let image_xz = folder.join(format!("{name}.img.xz"));
    let bmap_path = folder.join(format!("{name}.bmap"));

    let (bmap, image_sha256) = scan(image)?;
    let temporary = partial(&image_xz);
    let script = format!(
        "xz -T0 -{xz_level} -c {} > {}",
        crate::connection::quote(&image.to_string_lossy()),
        crate::connection::quote(&temporary.to_string_lossy())
    );
    host::shell("compressing the image", &script).await?;
    std::fs::rename(&temporary, &image_xz).map_err(|e| io("writing", &image_xz, e))?;
    let xz_sha256 = sha256_file(&image_xz)?;

    write_atomic(&bmap_path, &bmap.to_xml())?;
    write_atomic(
        &folder.join(format!("{name}.img.xz.sha256")),
        &format!("{xz_sha256}  {name}.img.xz\n"),
    )?;
    write_atomic(
        &folder.join(format!("{name}.img.sha256")),
        &format!("{image_sha256}  {name}.img\n"),
    )?;
    Ok(Outputs { image_xz, bmap: bmap_path, image_sha256, xz_sha256 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_file_map_and_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.img");
        let mut file = File::create(&path).unwrap();
        file.set_len(64 * BLOCK).unwrap();
        file.seek(SeekFrom::Start(10 * BLOCK)).unwrap();
        file.write_all(&vec![7u8; 3 * BLOCK as usize]).unwrap();
        file.sync_all().unwrap();
        let (bmap, whole) = scan(&path).unwrap();
        assert_eq!(bmap.image_size, 64 * BLOCK);
        assert_eq!(bmap.ranges.len(), 1);
        assert_eq!((bmap.ranges[0].first, bmap.ranges[0].last), (10, 12));
        assert_eq!(whole, sha256_file(&path).unwrap());
        let xml = bmap.to_xml();
        assert!(xml.contains("<MappedBlocksCount> 3 </MappedBlocksCount>"));
        assert_eq!(parse_bmap(&xml).unwrap(), bmap);
    }
}
