//! SVHN cropped digits (train_32x32.mat, test_32x32.mat): MATLAB v5 files, read with `matfile`.
//!
//! `X` is a 32 x 32 x 3 x N uint8 array in MATLAB's column-major order (row index fastest), `y` an
//! N x 1 array of labels 1..10 where 10 stands for the digit 0 (ncood maps it to class 0).
use crate::error::{Error, Result};
use matfile::{MatFile, NumericData};
use std::path::Path;

/// Parses an SVHN .mat file's bytes into N x 3 x 32 x 32 images (row-major) and labels 0..9.
pub fn parse_svhn(bytes: &[u8], path: &Path) -> Result<(Vec<u8>, Vec<i64>)> {
    let bad = |p: String| Error::bad_file(path, p);
    let mat = MatFile::parse(bytes).map_err(|e| {
        bad(format!(
            "not a readable MATLAB v5 file ({e}; truncated or corrupt?)"
        ))
    })?;
    let x = mat
        .find_by_name("X")
        .ok_or_else(|| bad("no array named X (truncated or not an SVHN file)".into()))?;
    let y = mat
        .find_by_name("y")
        .ok_or_else(|| bad("no array named y (truncated or not an SVHN file)".into()))?;
    let size = x.size();
    if size.len() != 4 || size[0] != 32 || size[1] != 32 || size[2] != 3 {
        return Err(bad(format!(
            "X has shape {size:?}, expected [32, 32, 3, N]"
        )));
    }
    let n = size[3];
    let NumericData::UInt8 { real: xs, .. } = x.data() else {
        return Err(bad("X is not uint8".into()));
    };
    if xs.len() != 3072 * n {
        return Err(bad(format!(
            "X holds {} bytes, its shape needs {}",
            xs.len(),
            3072 * n
        )));
    }
    let raw_labels: Vec<f64> = match y.data() {
        NumericData::UInt8 { real, .. } => real.iter().map(|&v| v as f64).collect(),
        NumericData::Double { real, .. } => real.clone(),
        NumericData::Single { real, .. } => real.iter().map(|&v| v as f64).collect(),
        NumericData::Int32 { real, .. } => real.iter().map(|&v| v as f64).collect(),
        other => return Err(bad(format!("y has unsupported type {other:?}"))),
    };
    if raw_labels.len() != n {
        return Err(bad(format!(
            "y has {} labels for {n} images",
            raw_labels.len()
        )));
    }
    let mut labels = Vec::with_capacity(n);
    for (i, &v) in raw_labels.iter().enumerate() {
        if v.fract() != 0.0 || !(1.0..=10.0).contains(&v) {
            return Err(bad(format!(
                "label {i} is {v}, expected an integer in 1..=10"
            )));
        }
        labels.push(v as i64 % 10);
    }
    // Column-major (row r fastest, then column c, channel ch, image i) to N x C x H x W.
    let mut images = vec![0u8; xs.len()];
    for i in 0..n {
        for ch in 0..3 {
            for c in 0..32 {
                for r in 0..32 {
                    images[((i * 3 + ch) * 32 + r) * 32 + c] = xs[r + 32 * (c + 32 * (ch + 3 * i))];
                }
            }
        }
    }
    Ok((images, labels))
}
