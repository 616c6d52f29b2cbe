//! SVHN cropped digits (train_32x32.mat, test_32x32.mat): MATLAB v5 files, read by the small
//! reader below.
//!
//! `X` is a 32 x 32 x 3 x N uint8 array in MATLAB's column-major order (row index fastest), `y` an
//! N x 1 array of labels 1..10 where 10 stands for the digit 0 (ncood maps it to class 0).
//!
//! The reader covers what these files need: the 128-byte header of a little-endian v5 file
//! (big-endian "MI" files and v7.3/HDF5 files are rejected with an error saying so), data elements
//! with 8-byte tags or in the small format (up to 4 data bytes inside the tag), miCOMPRESSED
//! elements (a zlib stream holding one element) and miMATRIX arrays with a real part of any numeric
//! storage type. Arrays other than X and y are skipped unread; a complex X or y is rejected.
//!
//! It is hand-written rather than taken from the `matfile` crate, which printed to the user's
//! terminal while parsing corrupt files and whose parser could not be bounded. Here every length
//! and offset is checked against the bytes actually present before it is used, no allocation is
//! sized from an unchecked header field, decompression stops at the size the element declares,
//! nothing is printed, and every problem is an `Error::BadFile` naming the file and the byte.
use crate::error::{Error, Result};
use flate2::bufread::ZlibDecoder;
use std::borrow::Cow;
use std::io::Read;
use std::ops::Range;
use std::path::Path;

/// Length of the file header: descriptive text, subsystem data offset, version, endian indicator.
const HEADER_LEN: usize = 128;
/// Data element types used below (the numeric ones are listed in [`value_size`]).
const MI_INT8: u32 = 1;
const MI_UINT8: u32 = 2;
const MI_INT32: u32 = 5;
const MI_UINT32: u32 = 6;
const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;
const MI_UTF8: u32 = 16;
/// MATLAB array class of uint8 arrays (the low byte of the array flags).
const MX_UINT8_CLASS: u8 = 9;
/// Array flag bit of complex arrays.
const COMPLEX_FLAG: u32 = 0x0800;
/// Bytes of one SVHN image (32 x 32 pixels, 3 channels).
const IMAGE_LEN: usize = 32 * 32 * 3;

/// Parses an SVHN .mat file's bytes into N x 3 x 32 x 32 images (row-major) and labels 0..9.
pub fn parse_svhn(bytes: &[u8], path: &Path) -> Result<(Vec<u8>, Vec<i64>)> {
    let bad = |p: String| Error::bad_file(path, p);
    let (x, y) = find_x_y(bytes).map_err(bad)?;
    let x = x.ok_or_else(|| bad("no array named X (truncated or not an SVHN file)".into()))?;
    let y = y.ok_or_else(|| bad("no array named y (truncated or not an SVHN file)".into()))?;

    let dims = &x.array.dims;
    let n = match dims[..] {
        [32, 32, 3, n] => n,
        // MATLAB drops trailing singleton dimensions: one image is 32 x 32 x 3.
        [32, 32, 3] => 1,
        _ => {
            return Err(bad(format!(
                "X has shape {dims:?}, expected [32, 32, 3, N]"
            )));
        }
    };
    if x.array.class != MX_UINT8_CLASS {
        return Err(bad("X is not uint8".into()));
    }
    if x.array.complex {
        return Err(bad("X is complex, expected real uint8".into()));
    }
    let xs = x.real().map_err(bad)?;
    if x.data_type() != MI_UINT8 {
        return Err(bad(format!(
            "X is uint8 but its data is stored as element type {}",
            x.data_type()
        )));
    }
    let needed = IMAGE_LEN
        .checked_mul(n)
        .ok_or_else(|| bad(format!("X has shape {dims:?}, too large")))?;
    if xs.len() != needed {
        return Err(bad(format!(
            "X holds {} bytes, its shape needs {needed}",
            xs.len()
        )));
    }

    if !(6..=15).contains(&y.array.class) {
        return Err(bad(format!(
            "y is not a numeric array (MATLAB class {})",
            y.array.class
        )));
    }
    if y.array.complex {
        return Err(bad("y is complex, expected real labels".into()));
    }
    let raw_labels =
        numbers(y.data_type(), y.real().map_err(bad)?).map_err(|e| bad(format!("y: {e}")))?;
    let y_dims = &y.array.dims;
    if y_dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) != Some(raw_labels.len()) {
        return Err(bad(format!(
            "y has shape {y_dims:?} but holds {} values",
            raw_labels.len()
        )));
    }
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

    // Column-major (row r fastest, then column c, channel ch) to C x H x W, image by image.
    let mut images = vec![0u8; xs.len()];
    for (out, img) in images
        .chunks_exact_mut(IMAGE_LEN)
        .zip(xs.chunks_exact(IMAGE_LEN))
    {
        for ch in 0..3 {
            for c in 0..32 {
                for r in 0..32 {
                    out[(ch * 32 + r) * 32 + c] = img[r + 32 * (c + 32 * ch)];
                }
            }
        }
    }
    Ok((images, labels))
}

/// The header of a miMATRIX array named X or y: what the checks above need, and where its real
/// part lies in the buffer it was read from.
struct Array {
    name: &'static str,
    class: u8,
    complex: bool,
    dims: Vec<usize>,
    /// Element type and byte range of the real part (None for non-numeric classes).
    real: Option<(u32, Range<usize>)>,
}

/// An array together with the buffer holding its data: the file, or a decompressed element.
struct Found<'a> {
    buf: Cow<'a, [u8]>,
    array: Array,
}

impl Found<'_> {
    /// The real part's bytes.
    fn real(&self) -> std::result::Result<&[u8], String> {
        match &self.array.real {
            // The range was checked against this buffer by `Buf::element`.
            Some((_, range)) => Ok(&self.buf[range.clone()]),
            None => Err(format!("{} has no numeric data", self.array.name)),
        }
    }

    /// The real part's element type (0 if there is none).
    fn data_type(&self) -> u32 {
        self.array.real.as_ref().map_or(0, |(ty, _)| *ty)
    }
}

/// Checks the header and reads the file's data elements, keeping the arrays named X and y.
fn find_x_y(bytes: &[u8]) -> std::result::Result<(Option<Found<'_>>, Option<Found<'_>>), String> {
    check_header(bytes)?;
    let file = Buf {
        bytes,
        inside: None,
    };
    let (mut x, mut y) = (None, None);
    let mut pos = HEADER_LEN;
    while pos < bytes.len() {
        let el = file.element(pos, bytes.len())?;
        let found = match el.ty {
            MI_MATRIX => file.matrix(el.data)?.map(|array| Found {
                buf: Cow::Borrowed(bytes),
                array,
            }),
            MI_COMPRESSED => {
                let (inner, inner_el) = inflate(&bytes[el.data], pos)?;
                let array = match inner_el.ty {
                    MI_MATRIX => Buf {
                        bytes: &inner,
                        inside: Some(pos),
                    }
                    .matrix(inner_el.data)?,
                    _ => None,
                };
                array.map(|array| Found {
                    buf: Cow::Owned(inner),
                    array,
                })
            }
            _ => None,
        };
        if let Some(f) = found {
            let slot = if f.array.name == "X" { &mut x } else { &mut y };
            if slot.is_some() {
                return Err(format!("two arrays named {}", f.array.name));
            }
            *slot = Some(f);
        }
        pos = el.next;
    }
    Ok((x, y))
}

/// Checks the 128-byte header: a little-endian ("IM") MATLAB v5 file (version 0x0100).
fn check_header(bytes: &[u8]) -> std::result::Result<(), String> {
    let Some(h) = bytes
        .get(..HEADER_LEN)
        .and_then(|h| <&[u8; HEADER_LEN]>::try_from(h).ok())
    else {
        return Err(format!(
            "truncated MATLAB header ({} of {HEADER_LEN} bytes)",
            bytes.len()
        ));
    };
    // Bytes 0..116 are free text and 116..124 the subsystem data offset: neither is needed here.
    match &h[126..128] {
        b"IM" => {}
        b"MI" => {
            return Err(
                "big-endian MATLAB file (endian indicator MI); only little-endian files are read"
                    .into(),
            );
        }
        _ => return Err("not a MATLAB v5 file (no endian indicator at byte 126)".into()),
    }
    match u16::from_le_bytes([h[124], h[125]]) {
        0x0100 => Ok(()),
        0x0200 => Err("MATLAB v7.3 (HDF5) file; only v5 files are read".into()),
        v => Err(format!("not a MATLAB v5 file (version 0x{v:04x})")),
    }
}

/// A data element's tag.
struct Tag {
    ty: u32,
    len: usize,
    /// The small format: type and length in the first 4 bytes, the data in the last 4.
    small: bool,
}

impl Tag {
    /// Decodes the 8 tag bytes (little-endian).
    fn parse(raw: [u8; 8]) -> std::result::Result<Tag, String> {
        let first = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
        let second = u32::from_le_bytes([raw[4], raw[5], raw[6], raw[7]]);
        let (ty, len, small) = if first >> 16 != 0 {
            (first & 0xffff, first >> 16, true)
        } else {
            (first, second, false)
        };
        if small && len > 4 {
            return Err(format!(
                "a small-format element declares {len} bytes (at most 4)"
            ));
        }
        let len = usize::try_from(len).map_err(|_| format!("an element declares {len} bytes"))?;
        Ok(Tag { ty, len, small })
    }
}

/// One data element in a buffer: its type, its data's byte range, and where the next one starts.
struct Element {
    ty: u32,
    data: Range<usize>,
    next: usize,
}

/// A buffer of data elements: the file itself, or the decompressed content of the miCOMPRESSED
/// element at file byte `inside` (named in messages, whose offsets are then within that content).
struct Buf<'a> {
    bytes: &'a [u8],
    inside: Option<usize>,
}

impl Buf<'_> {
    /// Names byte `pos` of this buffer in messages.
    fn place(&self, pos: usize) -> String {
        match self.inside {
            None => format!("byte {pos}"),
            Some(at) => format!("byte {pos} of the compressed element at byte {at} (decompressed)"),
        }
    }

    /// Reads the element whose tag starts at `pos`; it must end, with its padding to 8 bytes
    /// (none after miCOMPRESSED), by `end`. The returned ranges lie within the buffer.
    fn element(&self, pos: usize, end: usize) -> std::result::Result<Element, String> {
        let end = end.min(self.bytes.len());
        let remain = end.saturating_sub(pos);
        let raw = pos
            .checked_add(8)
            .filter(|&e| e <= end)
            .and_then(|e| self.bytes.get(pos..e))
            .and_then(|t| <[u8; 8]>::try_from(t).ok())
            .ok_or_else(|| {
                format!(
                    "truncated element tag at {} ({remain} bytes remain)",
                    self.place(pos)
                )
            })?;
        let tag = Tag::parse(raw).map_err(|e| format!("element at {}: {e}", self.place(pos)))?;
        if tag.small {
            // pos + 8 <= end, and tag.len <= 4.
            let start = pos + 4;
            return Ok(Element {
                ty: tag.ty,
                data: start..start + tag.len,
                next: pos + 8,
            });
        }
        let start = pos + 8;
        let avail = end - start;
        let padded = if tag.ty == MI_COMPRESSED {
            Some(tag.len)
        } else {
            tag.len.checked_next_multiple_of(8)
        };
        match padded {
            Some(p) if p <= avail => Ok(Element {
                ty: tag.ty,
                data: start..start + tag.len,
                next: start + p,
            }),
            Some(p) if p != tag.len => Err(format!(
                "element at {} declares {} bytes ({p} with padding), {avail} remain",
                self.place(pos),
                tag.len
            )),
            _ => Err(format!(
                "element at {} declares {} bytes, {avail} remain",
                self.place(pos),
                tag.len
            )),
        }
    }

    /// Reads the header of the miMATRIX array whose sub-elements fill `body`: array flags,
    /// dimensions, name and (for numeric classes) the real part. None unless it is named X or y.
    fn matrix(&self, body: Range<usize>) -> std::result::Result<Option<Array>, String> {
        if body.is_empty() {
            return Ok(None); // an empty placeholder array
        }
        let at = self.place(body.start);
        let flags = self.element(body.start, body.end)?;
        let flags_word = (flags.ty == MI_UINT32 && flags.data.len() == 8)
            .then(|| self.u32_at(flags.data.start))
            .flatten()
            .ok_or_else(|| format!("array at {at}: its flags are not 8 bytes of type miUINT32"))?;
        let dims_el = self.element(flags.next, body.end)?;
        let dims_bytes = &self.bytes[dims_el.data.clone()];
        if dims_el.ty != MI_INT32 || dims_bytes.is_empty() || !dims_bytes.len().is_multiple_of(4) {
            return Err(format!(
                "array at {at}: its dimensions are not miINT32 values"
            ));
        }
        let dims = dims_bytes
            .chunks_exact(4)
            .map(|d| {
                let d = i32::from_le_bytes([d[0], d[1], d[2], d[3]]);
                usize::try_from(d).map_err(|_| format!("array at {at}: dimension {d} is negative"))
            })
            .collect::<std::result::Result<Vec<usize>, String>>()?;
        let name_el = self.element(dims_el.next, body.end)?;
        if ![MI_INT8, MI_UINT8, MI_UTF8].contains(&name_el.ty) {
            return Err(format!(
                "array at {at}: its name has element type {}, not text",
                name_el.ty
            ));
        }
        let name = match &self.bytes[name_el.data] {
            b"X" => "X",
            b"y" => "y",
            _ => return Ok(None),
        };
        let class = (flags_word & 0xff) as u8;
        let real = if (6..=15).contains(&class) {
            if name_el.next >= body.end {
                return Err(format!("{name} (array at {at}) has no data element"));
            }
            let real = self.element(name_el.next, body.end)?;
            if value_size(real.ty).is_none() {
                return Err(format!(
                    "{name} (array at {at}) has data of element type {}, not a numeric type",
                    real.ty
                ));
            }
            Some((real.ty, real.data))
        } else {
            None
        };
        Ok(Some(Array {
            name,
            class,
            complex: flags_word & COMPLEX_FLAG != 0,
            dims,
            real,
        }))
    }

    /// The little-endian u32 at `pos`, if the buffer holds it.
    fn u32_at(&self, pos: usize) -> Option<u32> {
        let b = self.bytes.get(pos..pos.checked_add(4)?)?;
        <[u8; 4]>::try_from(b).ok().map(u32::from_le_bytes)
    }
}

/// Decompresses the miCOMPRESSED element at file byte `at` (zlib stream `z`) into the one
/// element it holds, tag included, and returns it with that element's ranges. Decompression
/// stops at the size the inner tag declares (at most `MAX_DECOMPRESSED`), plus a few bytes to reach the
/// stream's end, so that its checksum is verified and a cut-off stream is caught.
fn inflate(z: &[u8], at: usize) -> std::result::Result<(Vec<u8>, Element), String> {
    let ctx = |what: String| format!("compressed element at byte {at}: {what}");
    let mut d = ZlibDecoder::new(z);
    let mut raw = [0u8; 8];
    d.read_exact(&mut raw)
        .map_err(|e| ctx(format!("cannot read the tag of the element it holds ({e})")))?;
    let tag = Tag::parse(raw).map_err(|e| ctx(format!("the element it holds: {e}")))?;
    if tag.len as u64 > super::MAX_DECOMPRESSED {
        return Err(ctx(format!(
            "the element it holds declares {} bytes, more than the {} bytes any data set needs",
            tag.len,
            super::MAX_DECOMPRESSED
        )));
    }
    let mut out = raw.to_vec();
    let data = if tag.small {
        4..4 + tag.len
    } else {
        // Reserve for a typical ratio only (bounded by the bytes present); more grows as it comes.
        out.reserve(tag.len.min(z.len().saturating_mul(8)));
        (&mut d)
            .take(tag.len as u64)
            .read_to_end(&mut out)
            .map_err(|e| ctx(format!("corrupt or truncated zlib data ({e})")))?;
        let got = out.len() - 8;
        if got != tag.len {
            return Err(ctx(format!(
                "its zlib stream holds {got} of the {} bytes its element declares (truncated or corrupt)",
                tag.len
            )));
        }
        8..out.len()
    };
    let mut rest = Vec::new();
    (&mut d)
        .take(8)
        .read_to_end(&mut rest)
        .map_err(|e| ctx(format!("corrupt or truncated zlib data ({e})")))?;
    if rest.len() == 8 {
        return Err(ctx(format!(
            "its zlib stream holds more than the {} bytes its element declares",
            tag.len
        )));
    }
    let next = out.len();
    Ok((
        out,
        Element {
            ty: tag.ty,
            data,
            next,
        },
    ))
}

/// Bytes per value of a numeric element type (miINT8 .. miUINT64), None for other types.
fn value_size(ty: u32) -> Option<usize> {
    match ty {
        1 | 2 => Some(1),
        3 | 4 => Some(2),
        5..=7 => Some(4),
        9 | 12 | 13 => Some(8),
        _ => None,
    }
}

/// Decodes little-endian values of numeric element type `ty` as f64 (exact for every label 1..10;
/// 64-bit integers too large for f64 round, and are out of range anyway).
fn numbers(ty: u32, data: &[u8]) -> std::result::Result<Vec<f64>, String> {
    fn each<const N: usize>(data: &[u8], f: impl Fn([u8; N]) -> f64) -> Vec<f64> {
        data.chunks_exact(N)
            .filter_map(|c| <[u8; N]>::try_from(c).ok())
            .map(f)
            .collect()
    }
    let size = value_size(ty).ok_or_else(|| format!("element type {ty} is not numeric"))?;
    if !data.len().is_multiple_of(size) {
        return Err(format!(
            "its data is {} bytes, not a whole number of {size}-byte values",
            data.len()
        ));
    }
    Ok(match ty {
        1 => each(data, |b| i8::from_le_bytes(b).into()),
        2 => each(data, |b| u8::from_le_bytes(b).into()),
        3 => each(data, |b| i16::from_le_bytes(b).into()),
        4 => each(data, |b| u16::from_le_bytes(b).into()),
        5 => each(data, |b| i32::from_le_bytes(b).into()),
        6 => each(data, |b| u32::from_le_bytes(b).into()),
        7 => each(data, |b| f32::from_le_bytes(b).into()),
        9 => each(data, f64::from_le_bytes),
        12 => each(data, |b| i64::from_le_bytes(b) as f64),
        _ => each(data, |b| u64::from_le_bytes(b) as f64),
    })
}
