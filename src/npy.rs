//! The .npy format (NumPy's own array files), read and written here with every length checked.
//!
//! Written by hand rather than through tch's `read_npy`: that one trusts the header and copies
//! shape-product x element-size bytes out of the file buffer, so a header that declares more data
//! than the file holds reads past the buffer (a heap over-read, SIGSEGV on large overshoots), and
//! a few bytes short or trailing bytes pass silently. No crate covers the dtypes we need without
//! pulling in ndarray. Here the header is parsed as the small Python dict literal it is, the shape
//! product is computed with overflow checks, and the data must be exactly that long.
//!
//! Supported: versions 1.0, 2.0 and 3.0; little- and big-endian f4, f8, i1/i2/i4/i8, u1/u2/u4/u8,
//! b1; C or Fortran order (Fortran arrays are returned in C order). Floats come back as f64,
//! integers and booleans as i64 (u8 values above i64::MAX are an error).
use std::fmt;

const MAGIC: &[u8] = b"\x93NUMPY";
/// Largest header we accept: NumPy itself refuses headers above 10,000 bytes by default.
const MAX_HEADER: usize = 1 << 16;

/// The element type of an array as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    F32,
    F64,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    Bool,
}

impl Elem {
    fn size(self) -> usize {
        match self {
            Elem::I8 | Elem::U8 | Elem::Bool => 1,
            Elem::I16 | Elem::U16 => 2,
            Elem::F32 | Elem::I32 | Elem::U32 => 4,
            Elem::F64 | Elem::I64 | Elem::U64 => 8,
        }
    }
    pub fn is_float(self) -> bool {
        matches!(self, Elem::F32 | Elem::F64)
    }
}

impl fmt::Display for Elem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Elem::F32 => "float32",
            Elem::F64 => "float64",
            Elem::I8 => "int8",
            Elem::I16 => "int16",
            Elem::I32 => "int32",
            Elem::I64 => "int64",
            Elem::U8 => "uint8",
            Elem::U16 => "uint16",
            Elem::U32 => "uint32",
            Elem::U64 => "uint64",
            Elem::Bool => "bool",
        };
        f.write_str(s)
    }
}

/// The values of an array, widened: floats to f64, integers and booleans to i64.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    Float(Vec<f64>),
    Int(Vec<i64>),
}

/// A parsed .npy array, in C (row-major) order.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    pub elem: Elem,
    pub shape: Vec<usize>,
    pub values: Values,
}

/// Parses a whole .npy file. The error says what is wrong, without the file name (callers add it).
pub fn parse(bytes: &[u8]) -> Result<Array, String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("not a .npy file (no \\x93NUMPY magic)".into());
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (len_bytes, header_len) = match major {
        1 => (2, u16::from_le_bytes([bytes[8], bytes[9]]) as usize),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err("truncated .npy header".into());
            }
            (
                4,
                u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize,
            )
        }
        _ => return Err(format!("unsupported .npy version {major}.{minor}")),
    };
    if header_len > MAX_HEADER {
        return Err(format!("header of {header_len} bytes is implausibly long"));
    }
    let start: usize = 8 + len_bytes;
    let data_start = start
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| {
            format!(
                "truncated: header declares {header_len} bytes, file has {}",
                bytes.len() - start
            )
        })?;
    let header = std::str::from_utf8(&bytes[start..data_start])
        .map_err(|_| "header is not text".to_string())?;
    let (descr, fortran, shape) = parse_header(header)?;
    let (elem, big_endian) = parse_descr(&descr)?;
    let numel = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("shape {shape:?} overflows"))?;
    let need = numel
        .checked_mul(elem.size())
        .ok_or_else(|| format!("shape {shape:?} overflows"))?;
    let data = &bytes[data_start..];
    if data.len() != need {
        return Err(format!(
            "shape {shape:?} of {elem} needs {need} data bytes, file has {} ({})",
            data.len(),
            if data.len() < need {
                "truncated"
            } else {
                "trailing bytes"
            }
        ));
    }
    let mut values = decode(data, elem, big_endian)?;
    if fortran && shape.len() > 1 {
        values = match values {
            Values::Float(v) => Values::Float(fortran_to_c(&v, &shape)),
            Values::Int(v) => Values::Int(fortran_to_c(&v, &shape)),
        };
    }
    Ok(Array {
        elem,
        shape,
        values,
    })
}

/// Reorders column-major values of `shape` into row-major order.
fn fortran_to_c<T: Copy>(v: &[T], shape: &[usize]) -> Vec<T> {
    let mut out = Vec::with_capacity(v.len());
    let mut idx = vec![0usize; shape.len()];
    for _ in 0..v.len() {
        // Offset of the row-major multi-index `idx` in column-major storage.
        let (mut off, mut stride) = (0, 1);
        for (i, &d) in idx.iter().zip(shape) {
            off += i * stride;
            stride *= d;
        }
        out.push(v[off]);
        for k in (0..shape.len()).rev() {
            idx[k] += 1;
            if idx[k] < shape[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    out
}

fn decode(data: &[u8], elem: Elem, big: bool) -> Result<Values, String> {
    fn words<const N: usize>(data: &[u8], big: bool) -> impl Iterator<Item = [u8; N]> + '_ {
        data.chunks_exact(N).map(move |c| {
            let mut w: [u8; N] = c.try_into().unwrap();
            if big {
                w.reverse();
            }
            w
        })
    }
    Ok(match elem {
        Elem::F32 => Values::Float(
            words::<4>(data, big)
                .map(|w| f32::from_le_bytes(w) as f64)
                .collect(),
        ),
        Elem::F64 => Values::Float(words::<8>(data, big).map(f64::from_le_bytes).collect()),
        Elem::I8 => Values::Int(data.iter().map(|&b| b as i8 as i64).collect()),
        Elem::U8 => Values::Int(data.iter().map(|&b| b as i64).collect()),
        Elem::Bool => Values::Int(
            data.iter()
                .enumerate()
                .map(|(i, &b)| match b {
                    0 | 1 => Ok(b as i64),
                    _ => Err(format!("element {i} is the byte {b}, not a bool")),
                })
                .collect::<Result<_, _>>()?,
        ),
        Elem::I16 => Values::Int(
            words::<2>(data, big)
                .map(|w| i16::from_le_bytes(w) as i64)
                .collect(),
        ),
        Elem::U16 => Values::Int(
            words::<2>(data, big)
                .map(|w| u16::from_le_bytes(w) as i64)
                .collect(),
        ),
        Elem::I32 => Values::Int(
            words::<4>(data, big)
                .map(|w| i32::from_le_bytes(w) as i64)
                .collect(),
        ),
        Elem::U32 => Values::Int(
            words::<4>(data, big)
                .map(|w| u32::from_le_bytes(w) as i64)
                .collect(),
        ),
        Elem::I64 => Values::Int(words::<8>(data, big).map(i64::from_le_bytes).collect()),
        Elem::U64 => Values::Int(
            words::<8>(data, big)
                .enumerate()
                .map(|(i, w)| {
                    i64::try_from(u64::from_le_bytes(w))
                        .map_err(|_| format!("element {i} does not fit in int64"))
                })
                .collect::<Result<_, _>>()?,
        ),
    })
}

fn parse_descr(d: &str) -> Result<(Elem, bool), String> {
    let bad = || format!("unsupported dtype '{d}' (float32/64, integers or bool)");
    let mut chars = d.chars();
    let order = chars.next().ok_or_else(bad)?;
    let big = match order {
        '<' | '|' | '=' => false,
        '>' => true,
        _ => return Err(bad()),
    };
    let elem = match chars.as_str() {
        "f4" => Elem::F32,
        "f8" => Elem::F64,
        "i1" => Elem::I8,
        "i2" => Elem::I16,
        "i4" => Elem::I32,
        "i8" => Elem::I64,
        "u1" => Elem::U8,
        "u2" => Elem::U16,
        "u4" => Elem::U32,
        "u8" => Elem::U64,
        "b1" => Elem::Bool,
        _ => return Err(bad()),
    };
    Ok((elem, big))
}

/// The header dict: `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`, keys in any
/// order, each exactly once, nothing else.
fn parse_header(h: &str) -> Result<(String, bool, Vec<usize>), String> {
    let bad = |what: &str| format!("malformed header ({what}): {}", h.trim_end());
    let mut p = Parser {
        s: h.as_bytes(),
        i: 0,
    };
    p.ws();
    if !p.eat(b'{') {
        return Err(bad("no opening brace"));
    }
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        p.ws();
        if p.eat(b'}') {
            break;
        }
        let key = p.string().ok_or_else(|| bad("expected a quoted key"))?;
        p.ws();
        if !p.eat(b':') {
            return Err(bad("expected ':'"));
        }
        p.ws();
        let dup = match key.as_str() {
            "descr" => descr
                .replace(p.string().ok_or_else(|| bad("descr is not a string"))?)
                .is_some(),
            "fortran_order" => fortran
                .replace(
                    p.boolean()
                        .ok_or_else(|| bad("fortran_order is not a bool"))?,
                )
                .is_some(),
            "shape" => shape
                .replace(
                    p.tuple()
                        .ok_or_else(|| bad("shape is not a tuple of integers"))?,
                )
                .is_some(),
            other => return Err(bad(&format!("unknown key '{other}'"))),
        };
        if dup {
            return Err(bad(&format!("key '{key}' given twice")));
        }
        p.ws();
        if !p.eat(b',') {
            p.ws();
            if !p.eat(b'}') {
                return Err(bad("expected ',' or '}'"));
            }
            break;
        }
    }
    p.ws();
    if p.i != p.s.len() {
        return Err(bad("text after the dict"));
    }
    Ok((
        descr.ok_or_else(|| bad("no descr"))?,
        fortran.ok_or_else(|| bad("no fortran_order"))?,
        shape.ok_or_else(|| bad("no shape"))?,
    ))
}

/// A cursor over the header's bytes (ASCII by the format's definition).
struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        let ok = self.s.get(self.i) == Some(&c);
        self.i += ok as usize;
        ok
    }
    fn string(&mut self) -> Option<String> {
        let q = *self.s.get(self.i)?;
        if q != b'\'' && q != b'"' {
            return None;
        }
        let end = self.s[self.i + 1..].iter().position(|&c| c == q)? + self.i + 1;
        let out = std::str::from_utf8(&self.s[self.i + 1..end])
            .ok()?
            .to_string();
        self.i = end + 1;
        Some(out)
    }
    fn boolean(&mut self) -> Option<bool> {
        for (word, v) in [(&b"True"[..], true), (&b"False"[..], false)] {
            if self.s[self.i..].starts_with(word) {
                self.i += word.len();
                return Some(v);
            }
        }
        None
    }
    fn tuple(&mut self) -> Option<Vec<usize>> {
        if !self.eat(b'(') {
            return None;
        }
        let mut out = vec![];
        loop {
            self.ws();
            if self.eat(b')') {
                return Some(out);
            }
            let start = self.i;
            while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
                self.i += 1;
            }
            // Python 2 wrote long integers with an L suffix.
            let digits = std::str::from_utf8(&self.s[start..self.i]).ok()?;
            out.push(digits.parse().ok()?);
            self.eat(b'L');
            self.ws();
            if !self.eat(b',') {
                self.ws();
                return self.eat(b')').then_some(out);
            }
        }
    }
}

/// An element type ncood writes.
pub trait Element: Copy {
    const DESCR: &'static str;
    fn put(self, out: &mut Vec<u8>);
}

impl Element for f32 {
    const DESCR: &'static str = "<f4";
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}
impl Element for f64 {
    const DESCR: &'static str = "<f8";
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}
impl Element for i64 {
    const DESCR: &'static str = "<i8";
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

/// Encodes a C-order array as a version 1.0 .npy file, byte for byte as `numpy.save` does
/// (header padded with spaces to a multiple of 64 bytes, ending in a newline).
pub fn encode<T: Element>(shape: &[usize], values: &[T]) -> Vec<u8> {
    assert_eq!(
        shape.iter().product::<usize>(),
        values.len(),
        "npy::encode: shape and data disagree"
    );
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape_text}, }}",
        T::DESCR
    );
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat(total.next_multiple_of(64) - total));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + values.len() * 8);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for &v in values {
        v.put(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_header(header: &str, data: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn roundtrip_and_numpy_layout() {
        let bytes = encode(&[2, 3], &[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]);
        // numpy.save(f, np.arange(1, 7, dtype=np.float32).reshape(2, 3)) writes exactly this header.
        assert_eq!(
            &bytes[..69],
            &b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"[..]
        );
        assert_eq!(bytes.len(), 128 + 24);
        assert_eq!(bytes[127], b'\n');
        let a = parse(&bytes).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.elem, Elem::F32);
        assert_eq!(a.values, Values::Float(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
        let l = parse(&encode(&[3], &[7i64, -1, 0])).unwrap();
        assert_eq!(l.shape, vec![3]);
        assert_eq!(l.values, Values::Int(vec![7, -1, 0]));
        let e = parse(&encode::<f64>(&[0, 4], &[])).unwrap();
        assert_eq!(e.shape, vec![0, 4]);
    }

    #[test]
    fn lengths_are_exact() {
        let good = encode(&[2, 2], &[1.0f64, 2.0, 3.0, 4.0]);
        let short = &good[..good.len() - 3];
        assert!(parse(short).unwrap_err().contains("truncated"));
        let mut long = good.clone();
        long.push(0);
        assert!(parse(&long).unwrap_err().contains("trailing"));
        // A header that declares far more data than the file holds.
        let huge = with_header(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (100000000, 1000), }\n",
            &[0; 16],
        );
        assert!(parse(&huge).unwrap_err().contains("truncated"));
        let overflow = with_header(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999, 99999999999999), }\n",
            &[],
        );
        assert!(parse(&overflow).unwrap_err().contains("overflows"));
        // A zero-sized dimension with an enormous other one is exactly zero bytes: parses, and it
        // is the caller's job to reject empty arrays.
        let zero = with_header(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999, 0), }\n",
            &[],
        );
        assert_eq!(parse(&zero).unwrap().shape, vec![99999999999999, 0]);
        assert!(parse(&good[..9]).is_err());
        assert!(parse(b"").is_err());
    }

    #[test]
    fn dtypes_order_and_header_forms() {
        // Big-endian int32 [1, 2] and uint8 / bool.
        let be = with_header(
            "{'shape': (2,), 'fortran_order': False, 'descr': '>i4'}\n",
            &[0, 0, 0, 1, 0, 0, 0, 2],
        );
        assert_eq!(parse(&be).unwrap().values, Values::Int(vec![1, 2]));
        let u8s = with_header(
            "{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }",
            &[0, 200, 9],
        );
        assert_eq!(parse(&u8s).unwrap().values, Values::Int(vec![0, 200, 9]));
        let b = with_header(
            "{'descr': '|b1', 'fortran_order': False, 'shape': (2,), }",
            &[1, 2],
        );
        assert!(parse(&b).unwrap_err().contains("not a bool"));
        // Fortran order: column-major [[1, 2, 3], [4, 5, 6]] is stored 1, 4, 2, 5, 3, 6.
        let f: Vec<u8> = [1i64, 4, 2, 5, 3, 6]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let fo = with_header(
            "{'descr': '<i8', 'fortran_order': True, 'shape': (2, 3), }",
            &f,
        );
        assert_eq!(
            parse(&fo).unwrap().values,
            Values::Int(vec![1, 2, 3, 4, 5, 6])
        );
        let u64max = with_header(
            "{'descr': '<u8', 'fortran_order': False, 'shape': (1,), }",
            &u64::MAX.to_le_bytes(),
        );
        assert!(parse(&u64max).unwrap_err().contains("int64"));
        for h in [
            "{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}",
            "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}",
            "{'descr': '<f4', 'fortran_order': False}",
            "{'descr': '<f4', 'fortran_order': 0, 'shape': (1,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}",
            "['descr']",
        ] {
            assert!(parse(&with_header(h, &[0; 4])).is_err(), "{h}");
        }
        // Scalars (shape ()) hold one element.
        let s = with_header(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (), }",
            &2.5f64.to_le_bytes(),
        );
        assert_eq!(parse(&s).unwrap().values, Values::Float(vec![2.5]));
    }
}
