//! Small files in the real data formats (gzip, MATLAB v5 for SVHN, CIFAR records, tar.gz), shared
//! by the integration tests and the fuzzer (examples/fuzz.rs includes this file).
#![allow(dead_code)]
use flate2::{Compression, write::GzEncoder, write::ZlibEncoder};
use std::io::Write;

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// `n` 28x28 images whose class (i % 10) is drawn as a bright bar at a class-dependent row,
/// plus deterministic noise: learnable, but not trivially.
pub fn digit_like(n: usize, salt: u64) -> (Vec<u8>, Vec<u8>) {
    let mut state = 0x2545_f491_4f6c_dd1d_u64 ^ salt;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut pixels = vec![0u8; n * 784];
    let mut labels = vec![0u8; n];
    for i in 0..n {
        let class = (i % 10) as u8;
        labels[i] = class;
        let img = &mut pixels[i * 784..(i + 1) * 784];
        for p in img.iter_mut() {
            *p = (next() % 60) as u8;
        }
        let row = 3 + 2 * class as usize;
        for c in 4..24 {
            img[row * 28 + c] = 200 + (next() % 55) as u8;
            img[(row + 1) * 28 + c] = 200 + (next() % 55) as u8;
        }
    }
    (pixels, labels)
}

/// One MATLAB v5 data element: tag (type, byte count), data, padding to 8 bytes.
pub fn mat_element(ty: u32, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&ty.to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    while out.len() % 8 != 0 {
        out.push(0);
    }
    out
}

/// A numeric miMATRIX element: array flags (class), dimensions, name, real part.
pub fn mat_matrix(name: &str, class: u32, dims: &[i32], data_type: u32, data: &[u8]) -> Vec<u8> {
    let mut body = mat_element(6, &[class.to_le_bytes(), 0u32.to_le_bytes()].concat());
    body.extend(mat_element(
        5,
        &dims
            .iter()
            .flat_map(|d| d.to_le_bytes())
            .collect::<Vec<u8>>(),
    ));
    body.extend(mat_element(1, name.as_bytes()));
    body.extend(mat_element(data_type, data));
    mat_element(14, &body)
}

/// An SVHN-format .mat file: X (32x32x3xN uint8, column-major) from N x 3 x 32 x 32 row-major
/// `images`, y (N x 1 double, labels 1..10). `compress` wraps each array in miCOMPRESSED, as the
/// published files do.
pub fn svhn_mat(images: &[u8], labels: &[f64], compress: bool) -> Vec<u8> {
    let n = labels.len();
    let mut x = vec![0u8; images.len()];
    for i in 0..n {
        for ch in 0..3 {
            for r in 0..32 {
                for c in 0..32 {
                    x[r + 32 * (c + 32 * (ch + 3 * i))] = images[((i * 3 + ch) * 32 + r) * 32 + c];
                }
            }
        }
    }
    let mut header = b"MATLAB 5.0 MAT-file, written by ncood tests".to_vec();
    header.resize(116, b' ');
    header.extend_from_slice(&[0u8; 8]);
    header.extend_from_slice(&0x0100u16.to_le_bytes());
    header.extend_from_slice(b"IM");
    let arrays = [
        mat_matrix("X", 9, &[32, 32, 3, n as i32], 2, &x),
        mat_matrix(
            "y",
            6,
            &[n as i32, 1],
            9,
            &labels
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<u8>>(),
        ),
    ];
    for a in arrays {
        if compress {
            let mut z = ZlibEncoder::new(Vec::new(), Compression::fast());
            z.write_all(&a).unwrap();
            let z = z.finish().unwrap();
            header.extend_from_slice(&15u32.to_le_bytes());
            header.extend_from_slice(&(z.len() as u32).to_le_bytes());
            header.extend_from_slice(&z);
        } else {
            header.extend(a);
        }
    }
    header
}

/// CIFAR binary records: label byte(s) then the 3072 image bytes.
pub fn cifar_records(images: &[u8], labels: &[u8], cifar100: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for (img, &l) in images.chunks_exact(3072).zip(labels) {
        if cifar100 {
            out.push(l / 5); // coarse label
        }
        out.push(l);
        out.extend_from_slice(img);
    }
    out
}

/// A .tar.gz archive holding `files` (path, bytes).
pub fn tar_gz(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    for (path, bytes) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, path, &bytes[..]).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}

/// Deterministic test images: pixel (i, ch, r, c) = (7i + 3ch + 5r + c) mod 256.
pub fn pattern_images(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * 3072);
    for i in 0..n {
        for ch in 0..3 {
            for r in 0..32 {
                for c in 0..32 {
                    out.push(((7 * i + 3 * ch + 5 * r + c) % 256) as u8);
                }
            }
        }
    }
    out
}
