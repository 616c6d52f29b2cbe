//! Reading data files with their sha256 digests, and checking them against the published ones.
use super::MAX_DECOMPRESSED;
use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

/// sha256 (hex) of a file as stored and of its decompressed content (equal for plain files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    pub file: String,
    pub content: String,
}

fn hex(d: impl AsRef<[u8]>) -> String {
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads a whole file, gunzipping it when it starts with the gzip magic bytes; the decompressed
/// size is capped at `MAX_DECOMPRESSED` (a gzip bomb is an error, not an exhausted memory).
pub fn read_file(path: &Path) -> Result<(Vec<u8>, Digests)> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let file = hex(Sha256::digest(&raw));
    if raw.starts_with(&[0x1f, 0x8b]) {
        let out = read_capped(flate2::read::GzDecoder::new(&raw[..]), MAX_DECOMPRESSED)
            .map_err(|p| Error::bad_file(path, format!("gzip stream: {p}")))?;
        let content = hex(Sha256::digest(&out));
        Ok((out, Digests { file, content }))
    } else {
        Ok((
            raw,
            Digests {
                content: file.clone(),
                file,
            },
        ))
    }
}

/// Everything `r` yields, at most `cap` bytes (`MAX_DECOMPRESSED` for data files); the error says
/// what went wrong.
pub fn read_capped(r: impl Read, cap: u64) -> std::result::Result<Vec<u8>, String> {
    let mut out = Vec::new();
    r.take(cap + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("corrupt: {e}"))?;
    if out.len() as u64 > cap {
        return Err(format!(
            "decompresses to more than {cap} bytes, more than any data set needs"
        ));
    }
    Ok(out)
}

/// sha256 (hex) of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|e| Error::io(path, e))?;
    Ok(hex(h.finalize()))
}

/// A data file by name in its set's folder, with its known sha256 digests: `published` of the file
/// as its authors distribute it, `content` of its decompressed bytes for files that are also found
/// recompressed (Debian's dataset-fashion-mnist re-gzips the upstream files: same content, other
/// bytes). An empty digest is not known. The files of every set are listed in
/// `DatasetKind::stored`.
#[derive(Debug, Clone, Copy)]
pub struct Known {
    pub file: &'static str,
    pub published: &'static str,
    pub content: &'static str,
}

/// Checks the digests of the file at `path` against the known ones `k`.
pub fn verify(path: &Path, k: &Known, got: &Digests) -> Result<()> {
    let ok = (!k.published.is_empty() && got.file == k.published)
        || (!k.content.is_empty() && got.content == k.content);
    if ok {
        return Ok(());
    }
    let expected = [("published", k.published), ("content", k.content)]
        .iter()
        .filter(|(_, d)| !d.is_empty())
        .map(|(w, d)| format!("{w} {d}"))
        .collect::<Vec<_>>()
        .join(" or ");
    Err(Error::Digest {
        path: path.to_path_buf(),
        expected,
        got: got.file.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn decompression_stops_at_the_cap() {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&[0u8; 5000]).unwrap();
        let gz = e.finish().unwrap();
        let dec = || flate2::read::GzDecoder::new(&gz[..]);
        assert_eq!(read_capped(dec(), 5000).unwrap().len(), 5000);
        assert!(
            read_capped(dec(), 4999)
                .unwrap_err()
                .contains("more than 4999 bytes")
        );
        assert!(read_capped(flate2::read::GzDecoder::new(&gz[..20]), 5000).is_err());
    }
}
