//! IDX reader (the MNIST family's format), plain or gzip-compressed.
//!
//! Format: 2 zero bytes, a type byte (0x08 = u8, the only type image data sets use), the number of
//! dimensions, then each dimension as a big-endian u32, then the data. The file must hold exactly
//! the product of the dimensions: a short or over-long file is an error, never fewer samples.
use super::verify::{Digests, read_file};
use crate::error::{Error, Result};
use std::path::Path;

/// An IDX array of bytes with its dimensions.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Reads an IDX file of u8 (gzip detected by its magic bytes). Returns the array and the sha256
/// of the file as stored on disk and of its decompressed content.
pub fn read_idx(path: &Path) -> Result<(IdxArray, Digests)> {
    let (bytes, digests) = read_file(path)?;
    Ok((
        parse_idx(&bytes).map_err(|p| Error::bad_file(path, p))?,
        digests,
    ))
}

/// Parses IDX bytes; the error says what is wrong.
pub fn parse_idx(bytes: &[u8]) -> std::result::Result<IdxArray, String> {
    if bytes.len() < 4 {
        return Err(format!("truncated IDX header ({} bytes)", bytes.len()));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err("not an IDX file (magic bytes are not 0x0000)".into());
    }
    if bytes[2] != 0x08 {
        return Err(format!(
            "IDX element type 0x{:02x} is not u8 (0x08)",
            bytes[2]
        ));
    }
    let ndims = bytes[3] as usize;
    if ndims == 0 {
        return Err("IDX file declares 0 dimensions".into());
    }
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err(format!(
            "truncated IDX header: {ndims} dimensions need {header} bytes"
        ));
    }
    let dims: Vec<usize> = (0..ndims)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().unwrap()) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or("IDX dimensions overflow")?;
    let got = bytes.len() - header;
    if got != expected {
        return Err(format!(
            "IDX dimensions {dims:?} need {expected} data bytes, file has {got} ({})",
            if got < expected {
                "truncated"
            } else {
                "trailing bytes"
            }
        ));
    }
    Ok(IdxArray {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// Encodes an IDX u8 array (used by tests and by tools that write IDX).
pub fn encode_idx(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_errors() {
        let data: Vec<u8> = (0..24).collect();
        let enc = encode_idx(&[2, 3, 4], &data);
        let arr = parse_idx(&enc).unwrap();
        assert_eq!(arr.dims, vec![2, 3, 4]);
        assert_eq!(arr.data, data);
        assert!(
            parse_idx(&enc[..enc.len() - 1])
                .unwrap_err()
                .contains("truncated")
        );
        let mut long = enc.clone();
        long.push(0);
        assert!(parse_idx(&long).unwrap_err().contains("trailing"));
        assert!(parse_idx(&enc[..6]).unwrap_err().contains("header"));
        let mut bad = enc.clone();
        bad[2] = 0x0d;
        assert!(parse_idx(&bad).unwrap_err().contains("not u8"));
        assert!(parse_idx(&[1, 2, 3, 4, 5]).unwrap_err().contains("magic"));
        assert!(parse_idx(&[]).is_err());
    }
}
