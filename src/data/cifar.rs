//! CIFAR-10 / CIFAR-100 binary format ("binary version" from the CIFAR authors' page).
//!
//! Each record is the label byte(s) then 3072 image bytes: 1024 red, 1024 green, 1024 blue, each a
//! 32x32 row-major plane, which is already the C x H x W layout ncood uses. CIFAR-10 records carry
//! one label byte; CIFAR-100 records carry the coarse label then the fine label (ncood uses the
//! fine one, 100 classes). Files are read from the published .tar.gz archive (whose sha256 is
//! checked) or from the extracted folder the archive contains.
use crate::error::{Error, Result};
use std::path::Path;

pub const IMAGE_BYTES: usize = 3 * 32 * 32;

/// Which CIFAR variant a file belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Cifar10,
    Cifar100,
}

impl Variant {
    fn label_bytes(self) -> usize {
        match self {
            Variant::Cifar10 => 1,
            Variant::Cifar100 => 2,
        }
    }
    fn classes(self) -> u8 {
        match self {
            Variant::Cifar10 => 10,
            Variant::Cifar100 => 100,
        }
    }
    /// Folder inside the archive and the member files of each split.
    pub fn members(self, train: bool) -> (&'static str, &'static [&'static str]) {
        match (self, train) {
            (Variant::Cifar10, true) => (
                "cifar-10-batches-bin",
                &[
                    "data_batch_1.bin",
                    "data_batch_2.bin",
                    "data_batch_3.bin",
                    "data_batch_4.bin",
                    "data_batch_5.bin",
                ],
            ),
            (Variant::Cifar10, false) => ("cifar-10-batches-bin", &["test_batch.bin"]),
            (Variant::Cifar100, true) => ("cifar-100-binary", &["train.bin"]),
            (Variant::Cifar100, false) => ("cifar-100-binary", &["test.bin"]),
        }
    }
}

/// Parses the records of one batch file, appending images and labels. `path` names the file (or
/// the archive member) in errors.
pub fn parse_records(
    bytes: &[u8],
    variant: Variant,
    path: &Path,
    images: &mut Vec<u8>,
    labels: &mut Vec<i64>,
) -> Result<()> {
    let record = variant.label_bytes() + IMAGE_BYTES;
    if bytes.is_empty() || !bytes.len().is_multiple_of(record) {
        return Err(Error::bad_file(
            path,
            format!(
                "{} bytes is not a whole, non-zero number of {record}-byte records (truncated or not a {variant:?} batch)",
                bytes.len()
            ),
        ));
    }
    for (i, rec) in bytes.chunks_exact(record).enumerate() {
        let label = rec[variant.label_bytes() - 1];
        if label >= variant.classes() {
            return Err(Error::bad_file(
                path,
                format!(
                    "record {i}: label {label} out of range 0..{}",
                    variant.classes()
                ),
            ));
        }
        labels.push(label as i64);
        images.extend_from_slice(&rec[variant.label_bytes()..]);
    }
    Ok(())
}

/// Reads the member files of a split from a .tar.gz archive, in the order `members` lists them.
pub fn read_archive(archive: &Path, variant: Variant, train: bool) -> Result<(Vec<u8>, Vec<i64>)> {
    let (folder, members) = variant.members(train);
    let file = std::fs::File::open(archive).map_err(|e| Error::io(archive, e))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut found: Vec<Option<Vec<u8>>> = vec![None; members.len()];
    let corrupt = |e: std::io::Error| Error::bad_file(archive, format!("corrupt archive: {e}"));
    for entry in tar.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let name = entry
            .path()
            .map_err(corrupt)?
            .to_string_lossy()
            .into_owned();
        if let Some(i) = members.iter().position(|m| name == format!("{folder}/{m}")) {
            let buf = super::verify::read_capped(&mut entry, super::MAX_DECOMPRESSED)
                .map_err(|p| Error::bad_file(archive, format!("member {name}: {p}")))?;
            found[i] = Some(buf);
        }
    }
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    for (member, bytes) in members.iter().zip(found) {
        let bytes = bytes.ok_or_else(|| {
            Error::bad_file(archive, format!("archive has no member {folder}/{member}"))
        })?;
        parse_records(
            &bytes,
            variant,
            &archive.join(folder).join(member),
            &mut images,
            &mut labels,
        )?;
    }
    Ok((images, labels))
}

/// Reads the member files of a split from an extracted folder.
pub fn read_folder(dir: &Path, variant: Variant, train: bool) -> Result<(Vec<u8>, Vec<i64>)> {
    let (_, members) = variant.members(train);
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    for member in members {
        let path = dir.join(member);
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        parse_records(&bytes, variant, &path, &mut images, &mut labels)?;
    }
    Ok((images, labels))
}
