//! Stable-toolchain fuzzer for ncood's file and config parsers (no nightly, no cargo-fuzz).
//!
//! Each target starts from small VALID inputs built with the library's own writers (IDX, CIFAR
//! batches and .tar.gz archives, SVHN MATLAB v5 files, .npy, TOML run configs with `key=value`
//! overrides, safetensors checkpoints of a tiny model) and feeds the parser mutated copies: bit
//! flips, interesting byte and 16/32/64-bit integer values (little- and big-endian), inserted,
//! deleted, duplicated ranges, truncation and extension, and for text also token-level edits
//! (swapped keys, unknown keys, huge, negative, NaN/inf numbers, strings where numbers belong).
//! Compressed formats are mutated at every layer (content, then tar/zlib/gzip container, then the
//! compressed bytes). The input of execution `i` depends only on (seed, target, i), so any
//! failure can be replayed on its own.
//!
//! Targets: idx, idx-gz, cifar, cifar-tar, svhn, npy (plus `features::read_matrix` /
//! `read_labels` / `read_vector` through a file for 1 in 8 executions), config, checkpoint
//! (`checkpoint::parse` then `load_into` a width-1 ResNet18). The slower targets run fewer
//! executions: idx-gz and cifar-tar N/4, checkpoint N/10.
//!
//! Each execution runs under `catch_unwind` (a quiet panic hook remembers the message) and is
//! checked for silently accepted garbage where that is cheap (e.g. an accepted .npy or IDX file
//! whose length differs from what its header declares, a CIFAR label out of range, a config that
//! does not survive its own `to_toml`). The parent process runs one child per target
//! (`fuzz --child TARGET --seed S --start I --execs N`) under an address-space limit and a
//! watchdog: a child killed by a signal (SIGSEGV, SIGABRT from an allocation failure or a C++
//! exception, ...) or silent for `--hang-timeout` seconds is re-run from its last reported
//! execution in careful mode, which names the exact execution; the run then continues after it.
//!
//! Output: failures as they are found (with the replay command), then one line per target
//! `target  executions  panics  signals  hangs  accepted-bad  seconds` and finally
//! `fuzz: N passed, M failed`; the exit status is 0 only when no target failed.
//!
//! Short pass (CI: about 15 s on two cores, most of it eight child start-ups):
//!     scripts/fuzz.sh --execs 20000 --time-limit 30
//! Long pass (1,000,000 executions per target, the script's default; about 5 minutes, config the
//! slowest at about 5,500 executions/s):
//!     scripts/fuzz.sh                    # or: scripts/fuzz.sh --targets npy,config --seed 7
//! Replay one failing input (printed with every failure), without catch_unwind so that the panic
//! shows with its backtrace, optionally writing the input to a file:
//!     RUST_BACKTRACE=1 target/release/examples/fuzz --replay npy --seed 1 --index 12345 \
//!         --dump /tmp/input.npy
//! Other options: `--hang-timeout SECONDS` (default 10), `--mem-limit-mb MB` (child address
//! space, default 4096, 0 = none), `--list`.
// Lists of "hot" byte ranges often hold a single range.
#![allow(clippy::single_range_in_vec_init)]
use flate2::{Compression, write::ZlibEncoder};
#[path = "../tests/common/formats.rs"]
mod formats;
use formats::{gzip, mat_matrix};
use ncood::data::cifar::{self, Variant};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::ops::Range;
use std::os::unix::process::ExitStatusExt;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

/// Targets and the divisor of `--execs` each runs (the slow ones run fewer executions).
const TARGETS: &[(&str, u64)] = &[
    ("idx", 1),
    ("idx-gz", 4),
    ("cifar", 1),
    ("cifar-tar", 4),
    ("svhn", 1),
    ("npy", 1),
    ("config", 1),
    ("checkpoint", 10),
    // Not run by default: checks the watchdog (panics, SIGABRT, hangs, accepted-bad on purpose).
    ("selftest", 1),
];

/// A child reports progress at least every WINDOW executions, so a crash lies within WINDOW
/// executions of the last report and a careful re-run of that window finds it.
const WINDOW: u64 = 2048;
const MAX_INPUT: usize = 1 << 20;
const SHOW_PER_TARGET: usize = 10;

// ------------------------------------------------------------------------------------------------
// Command line
// ------------------------------------------------------------------------------------------------

struct Args {
    targets: Vec<String>,
    execs: u64,
    seed: u64,
    time_limit: Option<f64>,
    hang_timeout: f64,
    mem_limit_mb: u64,
    child: Option<String>,
    start: u64,
    careful: bool,
    time_ms: Option<u64>,
    replay: Option<String>,
    index: u64,
    dump: Option<PathBuf>,
    list: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        targets: TARGETS
            .iter()
            .filter(|t| t.0 != "selftest")
            .map(|t| t.0.to_string())
            .collect(),
        execs: 1_000_000,
        seed: 1,
        time_limit: None,
        hang_timeout: 10.0,
        mem_limit_mb: 4096,
        child: None,
        start: 0,
        careful: false,
        time_ms: None,
        replay: None,
        index: 0,
        dump: None,
        list: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        fn num<T: std::str::FromStr>(flag: &str, v: String) -> Result<T, String> {
            v.parse().map_err(|_| format!("{flag}: not a number: {v}"))
        }
        match flag.as_str() {
            "--targets" => {
                a.targets = val(&flag)?
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            }
            "--execs" => a.execs = num(&flag, val(&flag)?)?,
            "--seed" => a.seed = num(&flag, val(&flag)?)?,
            "--time-limit" => a.time_limit = Some(num(&flag, val(&flag)?)?),
            "--hang-timeout" => a.hang_timeout = num(&flag, val(&flag)?)?,
            "--mem-limit-mb" => a.mem_limit_mb = num(&flag, val(&flag)?)?,
            "--child" => a.child = Some(val(&flag)?),
            "--start" => a.start = num(&flag, val(&flag)?)?,
            "--careful" => a.careful = true,
            "--time-ms" => a.time_ms = Some(num(&flag, val(&flag)?)?),
            "--replay" => a.replay = Some(val(&flag)?),
            "--index" => a.index = num(&flag, val(&flag)?)?,
            "--dump" => a.dump = Some(PathBuf::from(val(&flag)?)),
            "--list" => a.list = true,
            "-h" | "--help" => {
                return Err("usage: fuzz [--targets a,b,...] [--execs N] [--seed S] \
                     [--time-limit SECONDS] [--hang-timeout SECONDS] [--mem-limit-mb MB]\n       \
                     fuzz --replay TARGET --seed S --index I [--dump FILE]\n       fuzz --list"
                    .into());
            }
            other => return Err(format!("unknown argument {other} (try --help)")),
        }
    }
    for t in a
        .targets
        .iter()
        .chain(a.child.iter())
        .chain(a.replay.iter())
    {
        if !TARGETS.iter().any(|(n, _)| n == t) {
            return Err(format!(
                "unknown target {t}; targets: {}",
                TARGETS.iter().map(|t| t.0).collect::<Vec<_>>().join(", ")
            ));
        }
    }
    Ok(a)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if args.list {
        for (name, div) in TARGETS {
            println!("{name} (executions: --execs / {div})");
        }
    } else if let Some(t) = &args.child {
        child_main(t, &args);
    } else if let Some(t) = &args.replay {
        replay_main(t, &args);
    } else {
        std::process::exit(parent_main(&args));
    }
}

// ------------------------------------------------------------------------------------------------
// Deterministic randomness and mutations
// ------------------------------------------------------------------------------------------------

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The generator of execution `index` of `target`: inputs depend on nothing else.
fn exec_rng(seed: u64, target: &str, index: u64) -> ChaCha8Rng {
    let mut h = 0xcbf2_9ce4_8422_2325_u64;
    for b in target.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    ChaCha8Rng::seed_from_u64(splitmix(seed ^ splitmix(h ^ splitmix(index))))
}

type R = ChaCha8Rng;

fn pick<'a, T>(rng: &mut R, xs: &'a [T]) -> &'a T {
    &xs[rng.random_range(0..xs.len())]
}

/// How many mutations to stack: 1, sometimes more (at most 8).
fn stack_count(rng: &mut R) -> usize {
    let mut n = 1;
    while n < 8 && rng.random_bool(0.4) {
        n += 1;
    }
    n
}

const BYTES8: &[u8] = &[0, 1, 0x7f, 0x80, 0xff, 0xfe, 0x20, 0x0a, 0x10, 0x40, 0x64];
const INTS32: &[u32] = &[
    0,
    1,
    2,
    10,
    28,
    32,
    100,
    255,
    256,
    784,
    1000,
    3072,
    3073,
    0x7fff,
    0x8000,
    0xffff,
    0x1_0000,
    1_000_000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fffe,
    0xffff_ffff,
];
const INTS64: &[u64] = &[
    0,
    1,
    2,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    1 << 32,
    1 << 40,
    1 << 48,
    1 << 56,
    1 << 62,
    i64::MAX as u64,
    1 << 63,
    (1 << 63) + 1,
    u64::MAX - 7,
    u64::MAX,
];

/// A position in 0..len (len > 0), half the time inside one of the `hot` ranges (headers,
/// length fields, label bytes) when there are any.
fn position(rng: &mut R, len: usize, hot: &[Range<usize>]) -> usize {
    if !hot.is_empty() && rng.random_bool(0.5) {
        let r = pick(rng, hot);
        let a = r.start.min(len - 1);
        let b = r.end.min(len).max(a + 1);
        return rng.random_range(a..b);
    }
    rng.random_range(0..len)
}

fn span_len(rng: &mut R, max: usize) -> usize {
    let want = match rng.random_range(0..10) {
        0..=6 => rng.random_range(1..=16),
        7 | 8 => rng.random_range(1..=256),
        _ => rng.random_range(1..=max.max(1)),
    };
    want.clamp(1, max.max(1))
}

fn overwrite_int(rng: &mut R, d: &mut [u8], hot: &[Range<usize>], width: usize) {
    if d.len() < width {
        return;
    }
    let p = position(rng, d.len() - width + 1, hot);
    let v: u64 = match rng.random_range(0..10) {
        0 => rng.random(),
        1 => {
            // The current value, nudged.
            let mut cur = 0u64;
            for k in 0..width {
                cur |= (d[p + k] as u64) << (8 * k);
            }
            cur.wrapping_add(*pick(rng, &[1u64, u64::MAX, 2, u64::MAX - 1, 8]))
        }
        2..=5 => *pick(rng, INTS32) as u64,
        _ => *pick(rng, INTS64),
    };
    let bytes = v.to_le_bytes();
    let mut w = bytes[..width].to_vec();
    if rng.random_bool(0.5) {
        w.reverse();
    }
    d[p..p + width].copy_from_slice(&w);
}

fn mutate_once(rng: &mut R, d: &mut Vec<u8>, hot: &[Range<usize>]) {
    let len = d.len();
    let op = if len == 0 {
        *pick(rng, &[6, 7])
    } else {
        rng.random_range(0..14)
    };
    match op {
        0 => {
            let p = position(rng, len, hot);
            d[p] ^= 1 << rng.random_range(0..8);
        }
        1 => {
            let p = position(rng, len, hot);
            d[p] = *pick(rng, BYTES8);
        }
        2 => {
            let p = position(rng, len, hot);
            d[p] = rng.random();
        }
        3 => {
            let p = position(rng, len, hot);
            let delta = rng.random_range(1..=35u8);
            d[p] = if rng.random_bool(0.5) {
                d[p].wrapping_add(delta)
            } else {
                d[p].wrapping_sub(delta)
            };
        }
        4 => overwrite_int(rng, d, hot, 4),
        5 => overwrite_int(rng, d, hot, 8),
        12 => overwrite_int(rng, d, hot, 2),
        6 => {
            // Insert bytes: random, a repeated interesting byte or a copy of a range.
            let p = if len == 0 {
                0
            } else {
                position(rng, len + 1, hot).min(len)
            };
            let n = span_len(rng, 4096);
            let ins: Vec<u8> = match rng.random_range(0..3) {
                0 => (0..n).map(|_| rng.random()).collect(),
                1 => vec![*pick(rng, BYTES8); n],
                _ if len > 0 => {
                    let a = rng.random_range(0..len);
                    d[a..(a + n).min(len)].to_vec()
                }
                _ => vec![0; n],
            };
            d.splice(p..p, ins);
        }
        7 => {
            let n = span_len(rng, 4096);
            match rng.random_range(0..3) {
                0 => d.extend(std::iter::repeat_n(0, n)),
                1 => d.extend((0..n).map(|_| rng.random::<u8>())),
                _ => d.extend(std::iter::repeat_n(*pick(rng, BYTES8), n)),
            }
        }
        8 => {
            let p = position(rng, len, hot);
            let n = span_len(rng, len - p);
            d.drain(p..p + n);
        }
        9 => {
            let a = rng.random_range(0..len);
            let n = span_len(rng, len - a);
            let chunk = d[a..a + n].to_vec();
            let p = position(rng, len, hot);
            d.splice(p..p, chunk);
        }
        10 => {
            let p = position(rng, len, hot);
            d.truncate(p);
        }
        11 => {
            let a = rng.random_range(0..len);
            let b = rng.random_range(0..len);
            let n = span_len(rng, len - a.max(b));
            d.copy_within(a..a + n, b);
        }
        _ => {
            // Small arithmetic on a 32-bit word, either byte order.
            if len >= 4 {
                let p = position(rng, len - 3, hot);
                let be = rng.random_bool(0.5);
                let w: [u8; 4] = d[p..p + 4].try_into().unwrap();
                let v = if be {
                    u32::from_be_bytes(w)
                } else {
                    u32::from_le_bytes(w)
                };
                let delta = rng.random_range(1..=16u32);
                let v = if rng.random_bool(0.5) {
                    v.wrapping_add(delta)
                } else {
                    v.wrapping_sub(delta)
                };
                let out = if be { v.to_be_bytes() } else { v.to_le_bytes() };
                d[p..p + 4].copy_from_slice(&out);
            }
        }
    }
    d.truncate(MAX_INPUT);
}

fn mutate_bytes(rng: &mut R, d: &mut Vec<u8>, hot: &[Range<usize>]) {
    for _ in 0..stack_count(rng) {
        mutate_once(rng, d, hot);
    }
}

const NUMBERS: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "10",
    "255",
    "256",
    "65535",
    "65536",
    "2147483647",
    "2147483648",
    "-2147483648",
    "4294967295",
    "4294967296",
    "1099511627776",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999999999",
    "1e308",
    "1e309",
    "-1e308",
    "1e-320",
    "0.0",
    "-0.0",
    "0.5",
    "nan",
    "inf",
    "-inf",
    "+nan",
    "1_000",
    "0x10",
    "0o7",
    "0b1",
    "00",
    "1.",
    ".5",
];

/// Token-level text mutations on raw bytes (insert tokens, replace numbers and quoted strings,
/// delete and duplicate spans), plus the odd byte-level one.
fn mutate_text_once(rng: &mut R, d: &mut Vec<u8>, tokens: &[&str]) {
    let len = d.len();
    match rng.random_range(0..8) {
        0 | 1 => {
            let p = if len == 0 {
                0
            } else {
                rng.random_range(0..=len)
            };
            let t = if rng.random_bool(0.3) {
                *pick(rng, NUMBERS)
            } else {
                *pick(rng, tokens)
            };
            d.splice(p..p, t.bytes());
        }
        2 | 3 => {
            // Replace a run of digits (with sign, point, exponent) by an interesting number.
            let runs = runs_of(d, |c| c.is_ascii_digit() || b"+-.eE_".contains(&c));
            if let Some(r) = runs.get(rng.random_range(0..runs.len().max(1))).cloned() {
                d.splice(r, pick(rng, NUMBERS).bytes());
            }
        }
        4 => {
            // Replace the contents of a quoted string.
            let quotes: Vec<usize> = (0..len)
                .filter(|&i| d[i] == b'\'' || d[i] == b'"')
                .collect();
            if quotes.len() >= 2 {
                let k = rng.random_range(0..quotes.len() - 1);
                let t = pick(rng, tokens).trim_matches(|c| c == '\'' || c == '"');
                d.splice(quotes[k] + 1..quotes[k + 1], t.bytes());
            }
        }
        5 if len > 0 => {
            let p = rng.random_range(0..len);
            let n = span_len(rng, (len - p).min(16));
            d.drain(p..p + n);
        }
        6 if len > 0 => {
            let p = rng.random_range(0..len);
            let n = span_len(rng, (len - p).min(32));
            let chunk = d[p..p + n].to_vec();
            let q = rng.random_range(0..=len);
            d.splice(q..q, chunk);
        }
        _ => mutate_once(rng, d, &[]),
    }
    d.truncate(MAX_INPUT);
}

fn runs_of(d: &[u8], f: impl Fn(u8) -> bool) -> Vec<Range<usize>> {
    let mut out = vec![];
    let mut i = 0;
    while i < d.len() {
        if d[i].is_ascii_digit() || (f(d[i]) && d.get(i + 1).is_some_and(|c| c.is_ascii_digit())) {
            let s = i;
            while i < d.len() && f(d[i]) {
                i += 1;
            }
            out.push(s..i);
        } else {
            i += 1;
        }
    }
    out
}

// ------------------------------------------------------------------------------------------------
// Valid seed inputs
// ------------------------------------------------------------------------------------------------

fn zlib(bytes: &[u8]) -> Vec<u8> {
    let mut e = ZlibEncoder::new(Vec::new(), Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Deterministic image bytes (compressible, like real images are somewhat).
fn pattern(n: usize, salt: usize) -> Vec<u8> {
    (0..n)
        .map(|k| ((k * 7 + salt * 13 + (k >> 5) * 3) % 256) as u8)
        .collect()
}

fn cifar_records(variant: Variant, labels: &[u8], salt: usize) -> Vec<u8> {
    let mut out = vec![];
    for (i, &l) in labels.iter().enumerate() {
        if variant == Variant::Cifar100 {
            out.push(l / 5);
        }
        out.push(l);
        out.extend(pattern(cifar::IMAGE_BYTES, salt + i));
    }
    out
}

fn label_hot(variant: Variant, n: usize) -> Vec<Range<usize>> {
    let rec = cifar::IMAGE_BYTES + if variant == Variant::Cifar10 { 1 } else { 2 };
    let mut hot: Vec<Range<usize>> = (0..n).map(|i| i * rec..i * rec + 2).collect();
    hot.push(n * rec - 4..n * rec);
    hot
}

/// A tar archive (uncompressed) of `members` and the ranges of its header blocks; None when the
/// tar crate refuses a member name.
fn build_tar(members: &[(String, Vec<u8>)]) -> Option<(Vec<u8>, Vec<Range<usize>>)> {
    let mut b = tar::Builder::new(Vec::new());
    let mut hot = vec![];
    for (path, bytes) in members {
        let off = b.get_ref().len();
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, path, &bytes[..]).ok()?;
        hot.push(off..off + 512);
        hot.push(off + 124..off + 136); // the size field
    }
    let tar = b.into_inner().ok()?;
    hot.push(tar.len().saturating_sub(1024)..tar.len());
    Some((tar, hot))
}

struct SvhnSeed {
    header: Vec<u8>,
    arrays: Vec<Vec<u8>>,
    compress: bool,
    file: Vec<u8>,
    hot: Vec<Range<usize>>,
}

fn svhn_assemble(
    header: &[u8],
    arrays: &[Vec<u8>],
    compress: bool,
) -> (Vec<u8>, Vec<Range<usize>>) {
    let mut out = header.to_vec();
    let mut hot = vec![116..128];
    for a in arrays {
        let off = out.len();
        hot.push(off..off + 8);
        if compress {
            let z = zlib(a);
            out.extend_from_slice(&15u32.to_le_bytes());
            out.extend_from_slice(&(z.len() as u32).to_le_bytes());
            out.extend_from_slice(&z);
            hot.push(off + 8..off + 12);
        } else {
            hot.push(off..off + 80);
            out.extend_from_slice(a);
        }
    }
    (out, hot)
}

/// An SVHN-format .mat file as tests/common's `svhn_mat` writes it, with labels stored as
/// double, single, uint8 or int32.
fn svhn_seed(n: usize, ytype: usize, compress: bool) -> SvhnSeed {
    let x = pattern(3072 * n, n + ytype);
    let labels: Vec<u32> = (0..n as u32)
        .map(|i| 1 + (i * 3 + ytype as u32) % 10)
        .collect();
    let (class, dt, ybytes): (u32, u32, Vec<u8>) = match ytype {
        0 => (
            6,
            9,
            labels
                .iter()
                .flat_map(|&v| (v as f64).to_le_bytes())
                .collect(),
        ),
        1 => (
            7,
            7,
            labels
                .iter()
                .flat_map(|&v| (v as f32).to_le_bytes())
                .collect(),
        ),
        2 => (9, 2, labels.iter().map(|&v| v as u8).collect()),
        _ => (
            12,
            5,
            labels
                .iter()
                .flat_map(|&v| (v as i32).to_le_bytes())
                .collect(),
        ),
    };
    let mut header = b"MATLAB 5.0 MAT-file, written by ncood fuzz".to_vec();
    header.resize(116, b' ');
    header.extend_from_slice(&[0u8; 8]);
    header.extend_from_slice(&0x0100u16.to_le_bytes());
    header.extend_from_slice(b"IM");
    let arrays = vec![
        mat_matrix("X", 9, &[32, 32, 3, n as i32], 2, &x),
        mat_matrix("y", class, &[n as i32, 1], dt, &ybytes),
    ];
    let (file, hot) = svhn_assemble(&header, &arrays, compress);
    SvhnSeed {
        header,
        arrays,
        compress,
        file,
        hot,
    }
}

/// A .npy file with a hand-written header (any dtype, order, version).
fn npy_raw(major: u8, descr: &str, fortran: bool, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape_text}, }}",
        if fortran { "True" } else { "False" }
    );
    let pre = if major == 1 { 10 } else { 12 };
    let total = pre + header.len() + 1;
    header.push_str(&" ".repeat(total.next_multiple_of(64) - total));
    header.push('\n');
    npy_assemble(major, header.as_bytes(), data, None)
}

fn npy_assemble(major: u8, header: &[u8], data: &[u8], len_field: Option<u32>) -> Vec<u8> {
    let mut out = b"\x93NUMPY".to_vec();
    out.extend_from_slice(&[major, 0]);
    let hl = len_field.unwrap_or(header.len() as u32);
    if major == 1 {
        out.extend_from_slice(&(hl as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&hl.to_le_bytes());
    }
    out.extend_from_slice(header);
    out.extend_from_slice(data);
    out
}

/// A .npy file split into its parts, for structure-aware mutation.
struct NpySeed {
    major: u8,
    header: Vec<u8>,
    data: Vec<u8>,
    file: Vec<u8>,
}

fn npy_split(file: Vec<u8>) -> NpySeed {
    let major = file[6];
    let (pre, hl) = if major == 1 {
        (10, u16::from_le_bytes([file[8], file[9]]) as usize)
    } else {
        (
            12,
            u32::from_le_bytes(file[8..12].try_into().unwrap()) as usize,
        )
    };
    NpySeed {
        major,
        header: file[pre..pre + hl].to_vec(),
        data: file[pre + hl..].to_vec(),
        file,
    }
}

const NPY_TOKENS: &[&str] = &[
    "'descr'",
    "'shape'",
    "'fortran_order'",
    "True",
    "False",
    "(",
    ")",
    ",",
    ":",
    "{",
    "}",
    "L",
    " ",
    "\n",
    "'",
    "\"",
    "''",
    "'<f4'",
    "'>f8'",
    "'|b1'",
    "'<u8'",
    "'<i1'",
    "'<f2'",
    "'<c8'",
    "'O'",
    "'|u1'",
    "'>i2'",
    "'=i4'",
    "'<U3'",
    "\0",
    "\u{e9}",
    "(1,)",
    "()",
    "(0,)",
    "(4294967296, 4294967296)",
    "'extra': 1",
];

const DESCRS: &[(&str, usize)] = &[
    ("<f4", 4),
    (">f4", 4),
    ("<f8", 8),
    (">f8", 8),
    ("|i1", 1),
    ("<i2", 2),
    (">i2", 2),
    ("<i4", 4),
    ("<i8", 8),
    (">i8", 8),
    ("|u1", 1),
    ("<u2", 2),
    ("<u4", 4),
    ("<u8", 8),
    (">u8", 8),
    ("|b1", 1),
    ("=f4", 4),
];

const CONFIG_SEEDS: &[&str] = &[
    "",
    "[model]\nl2 = true\n",
    "seed = 7\ndevice = \"cpu\"\nthreads = 2\ncheckpoint_every = 5\n\n[model]\narch = \"resnet50\"\n\
     width = 4\nl2 = true\nsn_coeff = 1.5\nmod = false\n\n[data]\nname = \"cifar10\"\n\
     val_fraction = 0.2\naugment = false\neval_batch_size = 256\n\n[optim]\nepochs = 30\n\
     batch_size = 64\nlr = 0.05\nmilestones = [10, 20]\nloss = \"nc\"\n\n[track]\nevery = 3\n\
     epochs = [1, 2, 4, 8]\nsubset = 1000\nood = \"noise-uniform\"\nfeatures = \"raw\"\n",
    "init_from = \"runs/a/epoch-3.state.safetensors\"\n[data]\nroot = \"/data\"\nverify = false\n\
     name = \"svhn\"\n[optim]\nepochs = 3\ngamma = 1.0\nweight_decay = 0.0\nmomentum = 0.0\n\
     [track]\nood = \"cifar100\"\nfeatures = \"normalized\"\n",
    "device = \"cuda:1\"\n[model]\nspectral_norm = false\nsn_iterations = 3\nwidth = 2\n\
     [optim]\nloss = \"cross_entropy\"\nlr = 1e-3\nbatch_size = 2\n",
];

const OVERRIDES: &[&str] = &[
    "model.width=4",
    "optim.epochs=3",
    "track.ood=\"mnist\"",
    "data.name=\"cifar10\"",
    "device=\"cpu\"",
    "threads=2",
    "data.name=cifar100",
    "model.arch=resnet50",
    "optim.milestones=[1, 2]",
    "optim.lr=0.01",
    "track.epochs=[1,3]",
    "seed=42",
    "model.l2=true",
    "track.features=normalized",
    "device=cuda:1",
    "data.val_fraction=0.5",
    "track.every=2",
    "optim.loss=nc",
];

const KEYS: &[&str] = &[
    "seed",
    "device",
    "threads",
    "checkpoint_every",
    "init_from",
    "model.arch",
    "model.width",
    "model.spectral_norm",
    "model.sn_coeff",
    "model.sn_iterations",
    "model.mod",
    "model.l2",
    "data.name",
    "data.root",
    "data.verify",
    "data.val_fraction",
    "data.augment",
    "data.eval_batch_size",
    "optim.epochs",
    "optim.batch_size",
    "optim.lr",
    "optim.momentum",
    "optim.weight_decay",
    "optim.milestones",
    "optim.gamma",
    "optim.loss",
    "track.every",
    "track.epochs",
    "track.subset",
    "track.ood",
    "track.features",
];

const ODD_KEYS: &[&str] = &[
    "",
    ".",
    "..",
    "model.",
    ".width",
    "model..width",
    "model.width.x",
    "seed.x",
    " model.width ",
    "optim.milestones.0",
    "track.ood.x",
    "model.widht",
    "zzz",
    "model",
    "\"model\".width",
    "model.\"width\"",
    "a.b.c.d.e.f",
];

const VALUES: &[&str] = &[
    "0",
    "1",
    "-1",
    "3",
    "1024",
    "1025",
    "2147483648",
    "4294967296",
    "1099511627776",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551616",
    "1e308",
    "-1e308",
    "1e-320",
    "0.0",
    "-0.0",
    "0.999999",
    "1.0",
    "nan",
    "-nan",
    "inf",
    "-inf",
    "true",
    "false",
    "\"\"",
    "\"x\"",
    "\"3\"",
    "\"nan\"",
    "[]",
    "[1, 2]",
    "[-1]",
    "[2, 1]",
    "[0]",
    "[9223372036854775807]",
    "[\"a\"]",
    "[[1]]",
    "{}",
    "{ a = 1 }",
    "1979-05-27T07:32:00Z",
    "07:32:00",
    "\"cpu\"",
    "\"auto\"",
    "\"cuda\"",
    "\"cuda:0\"",
    "\"cuda:1023\"",
    "\"cuda:1024\"",
    "\"cuda:-1\"",
    "\"cuda:99999999999999999999\"",
    "\"cuda:\"",
    "\"resnet18\"",
    "\"resnet50\"",
    "\"resnet\"",
    "\"fashion-mnist\"",
    "\"mnist\"",
    "\"cifar10\"",
    "\"cifar100\"",
    "\"svhn\"",
    "\"imagenet\"",
    "\"noise-uniform\"",
    "\"noise-gaussian\"",
    "\"flip-invert\"",
    "\"nc\"",
    "\"cross_entropy\"",
    "\"auto\"",
    "\"head\"",
    "\"raw\"",
    "\"normalized\"",
    "cifar10",
    "resnet50",
    "nc",
    "'literal'",
    "\"\"\"multi\nline\"\"\"",
    "\"\\u0000\"",
    "\"\\uD800\"",
    "\"/\"",
    "\"..\"",
];

const SECTIONS: &[&str] = &[
    "[model]",
    "[data]",
    "[optim]",
    "[track]",
    "[zzz]",
    "[model.sub]",
    "[[model]]",
    "[optim.milestones]",
    "[]",
    "[model",
    "[ model ]",
    "[\"model\"]",
    "[track.ood]",
    "[seed]",
    "[[track.epochs]]",
];

const TOML_TOKENS: &[&str] = &[
    "=", "\"", "'", "[", "]", "{", "}", ",", ".", "\n", "#", "'''", "\"\"\"", "\\", "\t", "\r",
    "\0", "\u{feff}", "\u{e9}", " = ", "model", "width", "true", "nan", "inf",
];

struct CkptSeed {
    header: serde_json::Map<String, serde_json::Value>,
    data: Vec<u8>,
    file: Vec<u8>,
    header_len: usize,
}

fn ckpt_seed(tensors: &[(String, tch::Tensor)], meta: &ncood::checkpoint::Metadata) -> CkptSeed {
    let file = ncood::checkpoint::to_bytes(tensors, meta).expect("checkpoint serialises");
    let header_len = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value =
        serde_json::from_slice(&file[8..8 + header_len]).expect("header is JSON");
    CkptSeed {
        header: header.as_object().unwrap().clone(),
        data: file[8 + header_len..].to_vec(),
        file,
        header_len,
    }
}

// ------------------------------------------------------------------------------------------------
// Inputs, verdicts, targets
// ------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum How {
    Idx,
    IdxFile,
    Cifar(Variant),
    CifarTar(Variant, bool),
    Svhn,
    Npy,
    NpyMatrix,
    NpyVector,
    NpyLabels(Option<usize>),
    Checkpoint,
    SelfTest(u32),
}

enum Input {
    Bytes {
        how: How,
        data: Vec<u8>,
    },
    Config {
        text: String,
        overrides: Vec<String>,
    },
}

impl Input {
    fn preview(&self) -> String {
        match self {
            Input::Bytes { how, data } => {
                let head: String = data.iter().take(64).map(|b| format!("{b:02x}")).collect();
                format!(
                    "{how:?} len={} hex={head}{}",
                    data.len(),
                    if data.len() > 64 { "..." } else { "" }
                )
            }
            Input::Config { text, overrides } => {
                let t: String = text.chars().take(300).collect();
                format!(
                    "text={t:?}{} overrides={overrides:?}",
                    if text.chars().count() > 300 {
                        "..."
                    } else {
                        ""
                    }
                )
            }
        }
    }
}

enum Verdict {
    Accepted,
    Rejected,
    /// Accepted although the input is wrong (the reason says how).
    Bad(String),
}

fn bad(cond: bool, why: impl FnOnce() -> String) -> Result<(), String> {
    if cond { Err(why()) } else { Ok(()) }
}

struct Fuzzer {
    target: String,
    tmp: PathBuf,
    idx: Vec<(Vec<u8>, Vec<Range<usize>>)>,
    cifar: Vec<(Variant, Vec<u8>, Vec<Range<usize>>)>,
    /// (variant, train, members, tar, tar hot ranges, .tar.gz)
    tars: Vec<TarSeed>,
    svhn: Vec<SvhnSeed>,
    npy: Vec<NpySeed>,
    configs: Vec<String>,
    ckpt: Vec<CkptSeed>,
    net: Option<ncood::model::Net>,
}

struct TarSeed {
    variant: Variant,
    train: bool,
    members: Vec<(String, Vec<u8>)>,
    tar: Vec<u8>,
    hot: Vec<Range<usize>>,
    gz: Vec<u8>,
}

impl Fuzzer {
    fn new(target: &str, tmp: PathBuf) -> Result<Fuzzer, String> {
        let mut f = Fuzzer {
            target: target.to_string(),
            tmp,
            idx: vec![],
            cifar: vec![],
            tars: vec![],
            svhn: vec![],
            npy: vec![],
            configs: vec![],
            ckpt: vec![],
            net: None,
        };
        match target {
            "idx" | "idx-gz" => {
                use ncood::data::idx::encode_idx;
                let shapes: &[&[usize]] = &[
                    &[1, 28, 28],
                    &[2, 28, 28],
                    &[10],
                    &[2, 3, 4],
                    &[0],
                    &[3, 1, 1, 1, 2],
                    &[0, 28, 28],
                ];
                for (k, s) in shapes.iter().enumerate() {
                    let n: usize = s.iter().product();
                    let data: Vec<u8> = if s.len() == 1 {
                        (0..n).map(|i| (i % 10) as u8).collect()
                    } else {
                        pattern(n, k)
                    };
                    let enc = encode_idx(s, &data);
                    ncood::data::idx::parse_idx(&enc).map_err(|e| format!("idx seed: {e}"))?;
                    f.idx.push((enc, vec![0..4 + 4 * s.len()]));
                }
            }
            "cifar" => {
                for (v, labels) in [
                    (Variant::Cifar10, &[3u8][..]),
                    (Variant::Cifar10, &[0, 9]),
                    (Variant::Cifar10, &[1, 2, 7]),
                    (Variant::Cifar100, &[42]),
                    (Variant::Cifar100, &[0, 99]),
                ] {
                    let recs = cifar_records(v, labels, labels.len());
                    f.cifar.push((v, recs, label_hot(v, labels.len())));
                }
            }
            "cifar-tar" => {
                for (variant, train) in [
                    (Variant::Cifar10, false),
                    (Variant::Cifar10, true),
                    (Variant::Cifar100, false),
                    (Variant::Cifar100, true),
                ] {
                    let (folder, names) = variant.members(train);
                    let classes = if variant == Variant::Cifar10 { 10 } else { 100 };
                    let members: Vec<(String, Vec<u8>)> = names
                        .iter()
                        .enumerate()
                        .map(|(i, m)| {
                            let labels = [(i * 3 % classes) as u8];
                            (format!("{folder}/{m}"), cifar_records(variant, &labels, i))
                        })
                        .collect();
                    let (tar, hot) = build_tar(&members).ok_or("tar seed")?;
                    let gz = gzip(&tar);
                    f.tars.push(TarSeed {
                        variant,
                        train,
                        members,
                        tar,
                        hot,
                        gz,
                    });
                }
            }
            "svhn" => {
                for (n, ytype, compress) in [
                    (1, 0, false),
                    (2, 0, true),
                    (1, 1, true),
                    (2, 2, false),
                    (1, 3, true),
                    (2, 3, false),
                ] {
                    let s = svhn_seed(n, ytype, compress);
                    ncood::data::svhn::parse_svhn(&s.file, Path::new("seed.mat"))
                        .map_err(|e| format!("svhn seed: {e}"))?;
                    f.svhn.push(s);
                }
            }
            "npy" => {
                use ncood::npy::encode;
                let mut files = vec![
                    encode(&[6], &[1.0f32, -2.5, 3.0, 0.0, 1e-3, 7.0]),
                    encode(&[2, 3], &[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]),
                    encode(&[3, 2], &[0.5f64, -1.0, 2.0, 1e10, -3.25, 0.0]),
                    encode(&[5], &[1.0f64, 2.0, 3.0, 4.0, 5.0]),
                    encode(&[4], &[0i64, 1, 2, 1]),
                    encode(&[2, 2], &[5i64, -3, 0, 9]),
                ];
                let data8: Vec<u8> = (1..=48).collect();
                files.push(npy_raw(1, ">f4", false, &[2, 2], &data8[..16]));
                files.push(npy_raw(
                    1,
                    "<i4",
                    false,
                    &[3],
                    &[0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0],
                ));
                files.push(npy_raw(1, "|u1", false, &[4], &[0, 1, 2, 3]));
                files.push(npy_raw(1, "|b1", false, &[3], &[1, 0, 1]));
                files.push(npy_raw(1, ">i2", true, &[2, 3], &data8[..12]));
                files.push(npy_raw(2, "<f8", true, &[2, 3], &[0; 48]));
                files.push(npy_raw(
                    3,
                    "<u8",
                    false,
                    &[2],
                    &[1, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0],
                ));
                files.push(npy_raw(1, "<f4", false, &[0, 3], &[]));
                for file in files {
                    ncood::npy::parse(&file).map_err(|e| format!("npy seed: {e}"))?;
                    f.npy.push(npy_split(file));
                }
            }
            "config" => {
                use ncood::config::RunConfig;
                f.configs = CONFIG_SEEDS.iter().map(|s| s.to_string()).collect();
                f.configs.push(RunConfig::default().to_toml());
                for c in &f.configs {
                    RunConfig::from_toml(c, &[]).map_err(|e| format!("config seed {c:?}: {e}"))?;
                }
                for o in OVERRIDES {
                    RunConfig::from_toml("", &[o.to_string()])
                        .map_err(|e| format!("override seed {o}: {e}"))?;
                }
            }
            "checkpoint" => {
                use tch::{Kind, Tensor};
                let cfg = ncood::config::RunConfig::from_toml(
                    "",
                    &["model.width=1".into(), "device=\"cpu\"".into()],
                )
                .map_err(|e| e.to_string())?;
                let net = cfg.net(tch::Device::Cpu).map_err(|e| e.to_string())?;
                let mut named: Vec<(String, Tensor)> = net.vs.variables().into_iter().collect();
                named.sort_by(|a, b| a.0.cmp(&b.0));
                let mut meta = ncood::checkpoint::Metadata::new();
                meta.insert("epoch".into(), "3".into());
                meta.insert("config".into(), cfg.to_toml());
                f.ckpt.push(ckpt_seed(&named, &meta));
                let small = vec![
                    (
                        "a".to_string(),
                        Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]).view([2, 3]),
                    ),
                    ("b".to_string(), Tensor::from_slice(&[1.0f64, -2.0])),
                    ("c".to_string(), Tensor::from_slice(&[7i64, 8, 9])),
                    (
                        "d".to_string(),
                        Tensor::from_slice(&[1u8, 2, 3, 4]).view([2, 2]),
                    ),
                    (
                        "e".to_string(),
                        Tensor::from_slice(&[0.5f32, 1.5]).to_kind(Kind::BFloat16),
                    ),
                    (
                        "f".to_string(),
                        Tensor::from_slice(&[0.25f32]).to_kind(Kind::Half).view([]),
                    ),
                    (
                        "g".to_string(),
                        Tensor::zeros([0, 3], (Kind::Float, tch::Device::Cpu)),
                    ),
                    ("h".to_string(), Tensor::from_slice(&[1i32, -1])),
                ];
                let mut meta = ncood::checkpoint::Metadata::new();
                meta.insert("k".into(), "v".into());
                f.ckpt.push(ckpt_seed(&small, &meta));
                for s in &f.ckpt {
                    ncood::checkpoint::parse(&s.file)
                        .map_err(|e| format!("checkpoint seed: {e}"))?;
                }
                let (tensors, _) = ncood::checkpoint::parse(&f.ckpt[0].file)?;
                ncood::checkpoint::load_into(net.vs.variables(), &tensors, Path::new("seed"))
                    .map_err(|e| format!("checkpoint seed does not load: {e}"))?;
                f.net = Some(net);
            }
            "selftest" => {}
            other => return Err(format!("unknown target {other}")),
        }
        Ok(f)
    }

    fn tmpfile(&self, name: &str) -> PathBuf {
        self.tmp.join(name)
    }

    // --------------------------------------------------------------------------------------------
    // Generation
    // --------------------------------------------------------------------------------------------

    fn generate(&self, rng: &mut R) -> Input {
        match self.target.as_str() {
            "idx" => {
                let (seed, hot) = pick(rng, &self.idx);
                let mut d = seed.clone();
                mutate_bytes(rng, &mut d, hot);
                Input::Bytes {
                    how: How::Idx,
                    data: d,
                }
            }
            "idx-gz" => {
                let (seed, hot) = pick(rng, &self.idx);
                let data = match rng.random_range(0..10) {
                    // IDX content mutated, then compressed: a valid gzip stream.
                    0..=4 => {
                        let mut d = seed.clone();
                        mutate_bytes(rng, &mut d, hot);
                        gzip(&d)
                    }
                    // The gzip stream itself mutated (header, deflate data, CRC, size).
                    5..=8 => {
                        let mut z = gzip(seed);
                        let n = z.len();
                        mutate_bytes(rng, &mut z, &[0..10, n.saturating_sub(8)..n]);
                        z
                    }
                    // A plain file through the same reader.
                    _ => {
                        let mut d = seed.clone();
                        mutate_bytes(rng, &mut d, hot);
                        d
                    }
                };
                Input::Bytes {
                    how: How::IdxFile,
                    data,
                }
            }
            "cifar" => {
                let (v, seed, hot) = pick(rng, &self.cifar);
                let mut d = seed.clone();
                mutate_bytes(rng, &mut d, hot);
                let v = if rng.random_bool(0.15) { other(*v) } else { *v };
                Input::Bytes {
                    how: How::Cifar(v),
                    data: d,
                }
            }
            "cifar-tar" => self.gen_cifar_tar(rng),
            "svhn" => {
                let s = pick(rng, &self.svhn);
                let data = if s.compress && rng.random_bool(0.5) {
                    // Mutate the arrays, then compress them: the parser sees a valid zlib layer.
                    let mut arrays = s.arrays.clone();
                    for _ in 0..stack_count(rng) {
                        let k = rng.random_range(0..arrays.len());
                        mutate_once(rng, &mut arrays[k], &[0..80]);
                    }
                    let (mut file, hot) = svhn_assemble(&s.header, &arrays, true);
                    if rng.random_bool(0.1) {
                        let hot: Vec<Range<usize>> =
                            hot.into_iter().filter(|r| r.len() == 4).collect();
                        overwrite_int(rng, &mut file, &hot, 4);
                    }
                    file
                } else {
                    let mut d = s.file.clone();
                    mutate_bytes(rng, &mut d, &s.hot);
                    d
                };
                Input::Bytes {
                    how: How::Svhn,
                    data,
                }
            }
            "npy" => self.gen_npy(rng),
            "config" => self.gen_config(rng),
            "checkpoint" => self.gen_checkpoint(rng),
            "selftest" => Input::Bytes {
                how: How::SelfTest(rng.random_range(0..4000)),
                data: vec![],
            },
            _ => unreachable!(),
        }
    }

    fn gen_cifar_tar(&self, rng: &mut R) -> Input {
        let s = pick(rng, &self.tars);
        let data = match rng.random_range(0..10) {
            // Member level: contents, names, missing, duplicated, extra members.
            0..=3 => {
                let mut members = s.members.clone();
                for _ in 0..stack_count(rng) {
                    let k = rng.random_range(0..members.len());
                    match rng.random_range(0..8) {
                        0..=3 => {
                            let v = s.variant;
                            let n = members[k].1.len() / (cifar::IMAGE_BYTES + 1);
                            let hot = label_hot(v, n.max(1));
                            mutate_once(rng, &mut members[k].1, &hot);
                        }
                        4 => {
                            members.remove(k);
                            if members.is_empty() {
                                members.push(s.members[0].clone());
                            }
                        }
                        5 => {
                            let m = members[k].clone();
                            members.insert(rng.random_range(0..=members.len()), m);
                        }
                        6 => {
                            let names = [
                                "cifar-10-batches-bin/test_batch.bin",
                                "cifar-100-binary/test.bin",
                                "cifar-100-binary/train.bin",
                                "cifar-10-batches-bin/data_batch_1.bin",
                                "cifar-10-batches-bin/data_batch_6.bin",
                                "cifar-10-batches-bin/",
                                "./cifar-10-batches-bin/test_batch.bin",
                                "test_batch.bin",
                                "cifar-10-batches-bin//test_batch.bin",
                                "x/../cifar-10-batches-bin/test_batch.bin",
                            ];
                            members[k].0 = pick(rng, &names).to_string();
                        }
                        _ => {
                            let a = rng.random_range(0..members.len());
                            members.swap(k, a);
                        }
                    }
                }
                match build_tar(&members) {
                    Some((tar, _)) => gzip(&tar),
                    None => s.gz.clone(),
                }
            }
            // Tar level: header blocks (size, checksum, type, names), padding, end blocks.
            4..=7 => {
                let mut t = s.tar.clone();
                mutate_bytes(rng, &mut t, &s.hot);
                gzip(&t)
            }
            // Compressed bytes.
            _ => {
                let mut z = s.gz.clone();
                let n = z.len();
                mutate_bytes(rng, &mut z, &[0..10, n.saturating_sub(8)..n]);
                z
            }
        };
        let (variant, train) = if rng.random_bool(0.1) {
            (
                *pick(rng, &[Variant::Cifar10, Variant::Cifar100]),
                rng.random_bool(0.5),
            )
        } else {
            (s.variant, s.train)
        };
        Input::Bytes {
            how: How::CifarTar(variant, train),
            data,
        }
    }

    fn gen_npy(&self, rng: &mut R) -> Input {
        let s = pick(rng, &self.npy);
        let data = match rng.random_range(0..20) {
            // Header text, token level; the length field fixed most of the time.
            0..=6 => {
                let mut h = s.header.clone();
                for _ in 0..stack_count(rng) {
                    mutate_text_once(rng, &mut h, NPY_TOKENS);
                }
                let len_field = if rng.random_bool(0.8) {
                    None
                } else {
                    Some(*pick(rng, INTS32))
                };
                let major = if rng.random_bool(0.1) {
                    *pick(rng, &[1, 2, 3, 0, 4, 255])
                } else {
                    s.major
                };
                npy_assemble(major, &h, &s.data, len_field)
            }
            // A valid file of another dtype, shape or order (exercises the decoders), then
            // perhaps one byte short or long (which must be rejected).
            7..=10 => {
                let (descr, size) = *pick(rng, DESCRS);
                let ndim = rng.random_range(0..4);
                let shape: Vec<usize> = (0..ndim)
                    .map(|_| *pick(rng, &[0usize, 1, 1, 2, 3, 4, 5, 7]))
                    .collect();
                let n: usize = shape.iter().product();
                let mut data: Vec<u8> = (0..n * size).map(|_| rng.random()).collect();
                if descr == "|b1" {
                    data.iter_mut().for_each(|b| *b &= 1);
                }
                if descr.ends_with("f4") || descr.ends_with("f8") {
                    // Mostly finite floats, so that the file readers accept some.
                    if rng.random_bool(0.7) {
                        for chunk in data.chunks_mut(size) {
                            let v = rng.random_range(-4.0..4.0f64);
                            let b: Vec<u8> = if size == 4 {
                                (v as f32).to_le_bytes().to_vec()
                            } else {
                                v.to_le_bytes().to_vec()
                            };
                            chunk.copy_from_slice(&b);
                            if descr.starts_with('>') {
                                chunk.reverse();
                            }
                        }
                    }
                }
                if descr.ends_with("i8") && rng.random_bool(0.7) {
                    for (i, chunk) in data.chunks_mut(8).enumerate() {
                        let mut b = ((i % 3) as i64).to_le_bytes();
                        if descr.starts_with('>') {
                            b.reverse();
                        }
                        chunk.copy_from_slice(&b);
                    }
                }
                let mut f = npy_raw(
                    *pick(rng, &[1, 1, 2, 3]),
                    descr,
                    rng.random_bool(0.3),
                    &shape,
                    &data,
                );
                if rng.random_bool(0.3) {
                    if rng.random_bool(0.5) || f.is_empty() {
                        f.push(rng.random());
                    } else {
                        f.pop();
                    }
                }
                f
            }
            // Whole-file binary mutation.
            _ => {
                let mut d = s.file.clone();
                let pre = if s.major == 1 { 10 } else { 12 };
                mutate_bytes(rng, &mut d, &[0..pre, pre..pre + s.header.len()]);
                d
            }
        };
        let how = match rng.random_range(0..32) {
            0 | 1 => How::NpyMatrix,
            2 => How::NpyVector,
            3 => How::NpyLabels(None),
            4 => How::NpyLabels(Some(*pick(rng, &[1, 3, 10]))),
            _ => How::Npy,
        };
        Input::Bytes { how, data }
    }

    fn gen_config(&self, rng: &mut R) -> Input {
        let text = pick(rng, &self.configs).clone();
        let mut overrides: Vec<String> = (0..rng.random_range(0..4))
            .map(|_| pick(rng, OVERRIDES).to_string())
            .collect();
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        for _ in 0..stack_count(rng) {
            match rng.random_range(0..20) {
                0..=10 => mutate_config_lines(rng, &mut lines),
                11..=16 => mutate_overrides(rng, &mut overrides),
                17 => {
                    // Deep nesting (recursion in the TOML parser).
                    let n = *pick(rng, &[64usize, 1000, 10_000, 100_000]);
                    let (open, close) = if rng.random_bool(0.5) {
                        ("[", "]")
                    } else {
                        ("{a=", "}")
                    };
                    let v = format!("{}1{}", open.repeat(n), close.repeat(n));
                    if rng.random_bool(0.5) || overrides.is_empty() {
                        lines.insert(0, format!("x = {v}"));
                    } else {
                        overrides.push(format!("model.width={v}"));
                    }
                }
                _ => {
                    let mut b = lines.join("\n").into_bytes();
                    mutate_text_once(rng, &mut b, TOML_TOKENS);
                    lines = String::from_utf8_lossy(&b)
                        .lines()
                        .map(String::from)
                        .collect();
                }
            }
        }
        let mut text = lines.join("\n");
        if rng.random_bool(0.8) {
            text.push('\n');
        }
        Input::Config { text, overrides }
    }

    fn gen_checkpoint(&self, rng: &mut R) -> Input {
        // The model's checkpoint most of the time (it reaches load_into).
        let s = if rng.random_bool(0.7) {
            &self.ckpt[0]
        } else {
            pick(rng, &self.ckpt)
        };
        let data = match rng.random_range(0..10) {
            // JSON structure: dtypes, shapes, offsets, names, metadata.
            0..=4 => {
                let mut h = s.header.clone();
                let mut data = s.data.clone();
                for _ in 0..stack_count(rng) {
                    mutate_ckpt_header(rng, &mut h, &mut data);
                }
                let mut json = serde_json::to_string(&h).unwrap();
                if rng.random_bool(0.8) {
                    json.push_str(&" ".repeat(json.len().next_multiple_of(8) - json.len()));
                }
                let len = if rng.random_bool(0.9) {
                    json.len() as u64
                } else {
                    *pick(rng, INTS64)
                };
                let mut out = len.to_le_bytes().to_vec();
                out.extend_from_slice(json.as_bytes());
                out.extend_from_slice(&data);
                out
            }
            // Header text, with the length field kept right.
            5 | 6 => {
                let mut h = s.file[8..8 + s.header_len].to_vec();
                for _ in 0..stack_count(rng) {
                    mutate_text_once(
                        rng,
                        &mut h,
                        &[
                            "\"",
                            ",",
                            ":",
                            "[",
                            "]",
                            "{",
                            "}",
                            "-1",
                            "1e999",
                            "\"F32\"",
                            "\"shape\"",
                            "\"data_offsets\"",
                            "\"dtype\"",
                            "null",
                        ],
                    );
                }
                let mut out = (h.len() as u64).to_le_bytes().to_vec();
                out.extend_from_slice(&h);
                out.extend_from_slice(&s.data);
                out
            }
            // Whole file, bytes.
            _ => {
                let mut d = s.file.clone();
                mutate_bytes(rng, &mut d, &[0..8, 8..8 + s.header_len.min(512)]);
                d
            }
        };
        Input::Bytes {
            how: How::Checkpoint,
            data,
        }
    }

    // --------------------------------------------------------------------------------------------
    // Execution and the checks of what was accepted
    // --------------------------------------------------------------------------------------------

    fn execute(&mut self, input: &Input) -> Verdict {
        let r = match input {
            Input::Bytes { how, data } => self.exec_bytes(*how, data),
            Input::Config { text, overrides } => exec_config(text, overrides),
        };
        match r {
            Ok(true) => Verdict::Accepted,
            Ok(false) => Verdict::Rejected,
            Err(why) => Verdict::Bad(why),
        }
    }

    /// Ok(accepted?) or Err(why an accepted input is wrong).
    fn exec_bytes(&mut self, how: How, data: &[u8]) -> Result<bool, String> {
        match how {
            How::SelfTest(v) => match v {
                0 => panic!("selftest panic"),
                1 => std::process::abort(),
                2 => loop {
                    std::thread::sleep(Duration::from_secs(1));
                },
                3 => Err("selftest accepted-bad".into()),
                _ => Ok(v % 2 == 0),
            },
            How::Idx => match ncood::data::idx::parse_idx(data) {
                Ok(a) => check_idx(data, &a.dims, &a.data).map(|_| true),
                Err(_) => Ok(false),
            },
            How::IdxFile => {
                let path = self.tmpfile("input-idx");
                std::fs::write(&path, data).map_err(|e| format!("harness: {e}"))?;
                match ncood::data::idx::read_idx(&path) {
                    Ok((a, digests)) => {
                        let content = if data.starts_with(&[0x1f, 0x8b]) {
                            let mut out = vec![];
                            flate2::read::GzDecoder::new(data)
                                .read_to_end(&mut out)
                                .map_err(|e| {
                                    format!("accepted a gzip stream flate2 rejects: {e}")
                                })?;
                            out
                        } else {
                            data.to_vec()
                        };
                        check_idx(&content, &a.dims, &a.data)?;
                        bad(digests.file != sha256_hex(data), || {
                            "file digest is wrong".into()
                        })?;
                        bad(digests.content != sha256_hex(&content), || {
                            "content digest is wrong".into()
                        })?;
                        Ok(true)
                    }
                    Err(_) => Ok(false),
                }
            }
            How::Cifar(v) => {
                let (mut images, mut labels) = (vec![7u8], vec![-1i64]);
                match cifar::parse_records(data, v, Path::new("fuzz.bin"), &mut images, &mut labels)
                {
                    Ok(()) => {
                        let lb = if v == Variant::Cifar10 { 1 } else { 2 };
                        let rec = lb + cifar::IMAGE_BYTES;
                        bad(data.is_empty() || !data.len().is_multiple_of(rec), || {
                            format!(
                                "accepted {} bytes, not whole {rec}-byte records",
                                data.len()
                            )
                        })?;
                        let n = data.len() / rec;
                        bad(
                            labels.len() != n + 1 || images.len() != 1 + n * cifar::IMAGE_BYTES,
                            || {
                                format!(
                                    "{n} records gave {} labels, {} image bytes",
                                    labels.len() - 1,
                                    images.len() - 1
                                )
                            },
                        )?;
                        bad(labels[0] != -1 || images[0] != 7, || {
                            "earlier output overwritten".into()
                        })?;
                        let classes = if v == Variant::Cifar10 { 10 } else { 100 };
                        for i in 0..n {
                            let r = &data[i * rec..(i + 1) * rec];
                            bad(
                                labels[i + 1] != r[lb - 1] as i64 || labels[i + 1] >= classes,
                                || {
                                    format!(
                                        "record {i}: label {} (byte {})",
                                        labels[i + 1],
                                        r[lb - 1]
                                    )
                                },
                            )?;
                            bad(
                                images
                                    [1 + i * cifar::IMAGE_BYTES..1 + (i + 1) * cifar::IMAGE_BYTES]
                                    != r[lb..],
                                || format!("record {i}: image bytes differ"),
                            )?;
                        }
                        Ok(true)
                    }
                    Err(_) => Ok(false),
                }
            }
            How::CifarTar(v, train) => {
                let path = self.tmpfile("input.tar.gz");
                std::fs::write(&path, data).map_err(|e| format!("harness: {e}"))?;
                match cifar::read_archive(&path, v, train) {
                    Ok((images, labels)) => {
                        let classes = if v == Variant::Cifar10 { 10 } else { 100 };
                        let members = v.members(train).1.len();
                        bad(labels.len() < members, || {
                            format!("{} labels from {members} members", labels.len())
                        })?;
                        bad(images.len() != labels.len() * cifar::IMAGE_BYTES, || {
                            format!("{} image bytes for {} labels", images.len(), labels.len())
                        })?;
                        bad(labels.iter().any(|&l| !(0..classes).contains(&l)), || {
                            "label out of range".into()
                        })?;
                        Ok(true)
                    }
                    Err(_) => Ok(false),
                }
            }
            How::Svhn => match ncood::data::svhn::parse_svhn(data, Path::new("fuzz.mat")) {
                Ok((images, labels)) => {
                    bad(images.len() != labels.len() * 3072, || {
                        format!("{} image bytes for {} labels", images.len(), labels.len())
                    })?;
                    bad(labels.iter().any(|&l| !(0..10).contains(&l)), || {
                        format!("labels out of 0..10: {:?}", &labels[..labels.len().min(8)])
                    })?;
                    Ok(true)
                }
                Err(_) => Ok(false),
            },
            How::Npy => match ncood::npy::parse(data) {
                Ok(a) => check_npy(data, &a).map(|_| true),
                Err(_) => Ok(false),
            },
            How::NpyMatrix | How::NpyVector | How::NpyLabels(_) => {
                let path = self.tmpfile("input.npy");
                std::fs::write(&path, data).map_err(|e| format!("harness: {e}"))?;
                let parsed = ncood::npy::parse(data);
                let floats = |t: &tch::Tensor| -> Result<Vec<f64>, String> {
                    Vec::<f64>::try_from(t.to_kind(tch::Kind::Double).flatten(0, -1))
                        .map_err(|e| format!("harness: {e}"))
                };
                match how {
                    How::NpyMatrix => match ncood::features::read_matrix(&path) {
                        Ok(t) => {
                            let a = parsed.map_err(|e| {
                                format!("read_matrix accepted what parse rejects: {e}")
                            })?;
                            check_npy(data, &a)?;
                            let ncood::npy::Values::Float(v) = &a.values else {
                                return Err(format!("read_matrix accepted {} values", a.elem));
                            };
                            let size: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
                            bad(
                                a.shape.len() != 2 || size != a.shape || a.shape.contains(&0),
                                || format!("shape {:?} read as {size:?}", a.shape),
                            )?;
                            let got = floats(&t)?;
                            bad(got != *v, || "matrix values differ from the file's".into())?;
                            bad(got.iter().any(|x| !x.is_finite()), || {
                                "non-finite value accepted".into()
                            })?;
                            Ok(true)
                        }
                        Err(_) => Ok(false),
                    },
                    How::NpyVector => match ncood::features::read_vector(&path) {
                        Ok(t) => {
                            let a = parsed.map_err(|e| {
                                format!("read_vector accepted what parse rejects: {e}")
                            })?;
                            check_npy(data, &a)?;
                            let ncood::npy::Values::Float(v) = &a.values else {
                                return Err(format!("read_vector accepted {} values", a.elem));
                            };
                            bad(a.shape.len() != 1 || a.shape[0] == 0, || {
                                format!("shape {:?}", a.shape)
                            })?;
                            let got = floats(&t)?;
                            bad(got != *v || got.iter().any(|x| !x.is_finite()), || {
                                "vector values differ or are not finite".into()
                            })?;
                            Ok(true)
                        }
                        Err(_) => Ok(false),
                    },
                    How::NpyLabels(classes) => match ncood::features::read_labels(&path, classes) {
                        Ok(l) => {
                            let a = parsed.map_err(|e| {
                                format!("read_labels accepted what parse rejects: {e}")
                            })?;
                            check_npy(data, &a)?;
                            let ncood::npy::Values::Int(v) = &a.values else {
                                return Err(format!("read_labels accepted {} values", a.elem));
                            };
                            bad(
                                a.shape.len() != 1 || l.values() != &v[..] || v.is_empty(),
                                || format!("shape {:?}, {} labels", a.shape, l.len()),
                            )?;
                            let c = l.classes();
                            bad(classes.is_some_and(|k| k != c), || {
                                format!("classes {c} not {classes:?}")
                            })?;
                            bad(v.iter().any(|&x| x < 0 || x as u64 >= c as u64), || {
                                format!("a label outside 0..{c}")
                            })?;
                            bad(classes.is_none() && c > v.len(), || {
                                format!("{c} classes from {} labels", v.len())
                            })?;
                            Ok(true)
                        }
                        Err(_) => Ok(false),
                    },
                    _ => unreachable!(),
                }
            }
            How::Checkpoint => match ncood::checkpoint::parse(data) {
                Ok((tensors, _meta)) => {
                    let hl = u64::from_le_bytes(data[..8].try_into().unwrap());
                    let room = (data.len() as u64).saturating_sub(8).saturating_sub(hl);
                    let total: u64 = tensors
                        .values()
                        .map(|t| t.numel() as u64 * t.kind().elt_size_in_bytes() as u64)
                        .sum();
                    bad(total > room, || {
                        format!("tensors of {total} bytes from {room} bytes of data")
                    })?;
                    let net = self.net.as_ref().unwrap();
                    let path = Path::new("fuzz.safetensors");
                    Ok(ncood::checkpoint::load_into(net.vs.variables(), &tensors, path).is_ok())
                }
                Err(_) => Ok(false),
            },
        }
    }
}

fn other(v: Variant) -> Variant {
    match v {
        Variant::Cifar10 => Variant::Cifar100,
        Variant::Cifar100 => Variant::Cifar10,
    }
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// An accepted IDX array must be exactly what the bytes say.
fn check_idx(bytes: &[u8], dims: &[usize], data: &[u8]) -> Result<(), String> {
    bad(bytes.len() < 4 || bytes[..3] != [0, 0, 8], || {
        "accepted a wrong magic or type".into()
    })?;
    let nd = bytes[3] as usize;
    let header = 4 + 4 * nd;
    bad(dims.len() != nd || bytes.len() < header, || {
        format!("{} dims from a header declaring {nd}", dims.len())
    })?;
    for (i, &d) in dims.iter().enumerate() {
        let want = u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().unwrap()) as usize;
        bad(d != want, || {
            format!("dim {i} is {d}, the header says {want}")
        })?;
    }
    let numel = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    bad(numel != Some(bytes.len() - header), || {
        format!(
            "dims {dims:?} accepted with {} data bytes (file shorter or longer than its header)",
            bytes.len() - header
        )
    })?;
    bad(data != &bytes[header..], || {
        "data differ from the file's".into()
    })
}

fn elem_size(e: ncood::npy::Elem) -> usize {
    use ncood::npy::Elem::*;
    match e {
        I8 | U8 | Bool => 1,
        I16 | U16 => 2,
        F32 | I32 | U32 => 4,
        F64 | I64 | U64 => 8,
    }
}

/// An accepted .npy file must be exactly as long as its header declares.
fn check_npy(bytes: &[u8], a: &ncood::npy::Array) -> Result<(), String> {
    bad(bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY", || {
        "accepted without the magic".into()
    })?;
    let (pre, hl) = match bytes[6] {
        1 => (10, u16::from_le_bytes([bytes[8], bytes[9]]) as usize),
        2 | 3 if bytes.len() >= 12 => (
            12,
            u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize,
        ),
        v => return Err(format!("accepted version {v}")),
    };
    let numel = a.shape.iter().try_fold(1usize, |x, &d| x.checked_mul(d));
    let n_values = match &a.values {
        ncood::npy::Values::Float(v) => v.len(),
        ncood::npy::Values::Int(v) => v.len(),
    };
    bad(numel != Some(n_values), || {
        format!("shape {:?} with {n_values} values", a.shape)
    })?;
    let want = pre + hl + n_values * elem_size(a.elem);
    bad(bytes.len() != want, || {
        format!(
            "file of {} bytes accepted, its header declares {want} (shape {:?} {})",
            bytes.len(),
            a.shape,
            a.elem
        )
    })?;
    if a.elem.is_float() != matches!(a.values, ncood::npy::Values::Float(_)) {
        return Err("values of the wrong kind".into());
    }
    Ok(())
}

fn exec_config(text: &str, overrides: &[String]) -> Result<bool, String> {
    use ncood::config::RunConfig;
    let Ok(cfg) = RunConfig::from_toml(text, overrides) else {
        return Ok(false);
    };
    cfg.validate()
        .map_err(|e| format!("accepted a config that does not validate: {e}"))?;
    let back = RunConfig::from_toml(&cfg.to_toml(), &[])
        .map_err(|e| format!("accepted config does not parse back from to_toml: {e}"))?;
    bad(back != cfg, || {
        "accepted config changes through to_toml".into()
    })?;
    // The largest conv (8w x 8w x 3 x 3) alone must fit the parameter limit.
    let w = cfg.model.width as u128;
    let big = (8 * w).checked_mul(8 * w).and_then(|x| x.checked_mul(9));
    bad(big.is_none_or(|b| b > ncood::model::MAX_PARAMETERS), || {
        format!("width {} accepted", cfg.model.width)
    })?;
    let _ = cfg.run_name();
    let ms = cfg.optim.resolved_milestones();
    let lr = cfg.optim.lr_at(cfg.optim.epochs);
    bad(!(lr.is_finite() && lr >= 0.0), || {
        format!("lr_at gives {lr}")
    })?;
    bad(ms.len() > 1_000_000_000, || "absurd milestones".into())?;
    Ok(true)
}

fn mutate_config_lines(rng: &mut R, lines: &mut Vec<String>) {
    let kv: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].contains('=') && !lines[i].trim_start().starts_with('['))
        .collect();
    let leaf = |rng: &mut R| -> String {
        let k = pick(rng, KEYS);
        k.rsplit('.').next().unwrap().to_string()
    };
    match rng.random_range(0..11) {
        0 | 1 if !kv.is_empty() => {
            let i = *pick(rng, &kv);
            let key = lines[i].split('=').next().unwrap().to_string();
            let v = if rng.random_bool(0.2) {
                format!("{}", rng.random::<i64>() >> rng.random_range(0..64))
            } else {
                pick(rng, VALUES).to_string()
            };
            lines[i] = format!("{key}= {v}");
        }
        2 if kv.len() >= 2 => {
            let (a, b) = (*pick(rng, &kv), *pick(rng, &kv));
            let (ka, va) = lines[a].split_once('=').unwrap();
            let (kb, vb) = lines[b].split_once('=').unwrap();
            let (na, nb) = (format!("{ka}={vb}"), format!("{kb}={va}"));
            lines[a] = na;
            lines[b] = nb;
        }
        3 if !kv.is_empty() => {
            let i = *pick(rng, &kv);
            let v = lines[i].split_once('=').unwrap().1.to_string();
            let k = if rng.random_bool(0.7) {
                leaf(rng)
            } else {
                pick(rng, ODD_KEYS).to_string()
            };
            lines[i] = format!("{k} ={v}");
        }
        4 | 5 => {
            let p = rng.random_range(0..=lines.len());
            let l = if rng.random_bool(0.3) {
                pick(rng, SECTIONS).to_string()
            } else {
                let k = if rng.random_bool(0.8) {
                    leaf(rng)
                } else {
                    pick(rng, ODD_KEYS).to_string()
                };
                format!("{k} = {}", pick(rng, VALUES))
            };
            lines.insert(p, l);
        }
        6 if !lines.is_empty() => {
            lines.remove(rng.random_range(0..lines.len()));
        }
        7 if !lines.is_empty() => {
            let i = rng.random_range(0..lines.len());
            let l = lines[i].clone();
            lines.insert(rng.random_range(0..=lines.len()), l);
        }
        8 if lines.len() >= 2 => {
            let (a, b) = (
                rng.random_range(0..lines.len()),
                rng.random_range(0..lines.len()),
            );
            lines.swap(a, b);
        }
        9 if !kv.is_empty() => {
            // A string where a number is, or the reverse.
            let i = *pick(rng, &kv);
            let (k, v) = lines[i].split_once('=').unwrap();
            let v = v.trim();
            let nv = if v.starts_with('"') {
                v.trim_matches('"').to_string()
            } else {
                format!("\"{v}\"")
            };
            lines[i] = format!("{k}= {nv}");
        }
        _ if !kv.is_empty() => {
            // Negate or blow up a number.
            let i = *pick(rng, &kv);
            let (k, v) = lines[i].split_once('=').unwrap();
            let v = v.trim();
            let nv = match rng.random_range(0..3) {
                0 => format!("-{v}"),
                1 => format!("{v}000000000000"),
                _ => format!("{v}e300"),
            };
            lines[i] = format!("{k}= {nv}");
        }
        _ => lines.push(format!("{} = {}", pick(rng, ODD_KEYS), pick(rng, VALUES))),
    }
}

fn mutate_overrides(rng: &mut R, ov: &mut Vec<String>) {
    match rng.random_range(0..8) {
        0 => ov.push(pick(rng, OVERRIDES).to_string()),
        1 => ov.push(format!("{}={}", pick(rng, KEYS), pick(rng, VALUES))),
        2 if !ov.is_empty() => {
            let i = rng.random_range(0..ov.len());
            let k = ov[i].split('=').next().unwrap().to_string();
            ov[i] = format!("{k}={}", pick(rng, VALUES));
        }
        3 if !ov.is_empty() => {
            let i = rng.random_range(0..ov.len());
            let v = ov[i]
                .split_once('=')
                .map(|x| x.1.to_string())
                .unwrap_or_default();
            let k = if rng.random_bool(0.5) {
                pick(rng, KEYS)
            } else {
                pick(rng, ODD_KEYS)
            };
            ov[i] = format!("{k}={v}");
        }
        4 if !ov.is_empty() => {
            let i = rng.random_range(0..ov.len());
            ov[i] = if rng.random_bool(0.5) {
                ov[i].replacen('=', "", 1)
            } else {
                ov[i].replacen('=', "==", 1)
            };
        }
        5 if !ov.is_empty() => {
            ov.remove(rng.random_range(0..ov.len()));
        }
        6 if !ov.is_empty() => {
            let i = rng.random_range(0..ov.len());
            let mut b = ov[i].clone().into_bytes();
            mutate_text_once(rng, &mut b, TOML_TOKENS);
            ov[i] = String::from_utf8_lossy(&b).into_owned();
        }
        _ => ov.push(format!(
            "{}={}",
            pick(rng, KEYS),
            rng.random::<i64>() >> rng.random_range(0..64)
        )),
    }
}

fn mutate_ckpt_header(
    rng: &mut R,
    h: &mut serde_json::Map<String, serde_json::Value>,
    data: &mut Vec<u8>,
) {
    use serde_json::{Value, json};
    let names: Vec<String> = h.keys().filter(|k| *k != "__metadata__").cloned().collect();
    if names.is_empty() {
        h.insert(
            "x".into(),
            json!({"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}),
        );
        return;
    }
    let name = pick(rng, &names).clone();
    let big = |rng: &mut R| -> Value {
        match rng.random_range(0..4) {
            0 => json!(*pick(rng, INTS64)),
            1 => json!(*pick(rng, INTS32)),
            2 => json!(*pick(rng, &[-1i64, -8, i64::MIN])),
            _ => json!(rng.random_range(0..64u64)),
        }
    };
    match rng.random_range(0..12) {
        0 | 1 => {
            let dt = *pick(
                rng,
                &[
                    "F32", "F64", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL", "U16",
                    "U32", "U64", "F8_E4M3", "F8_E5M2", "C64", "X", "",
                ],
            );
            h[&name]["dtype"] = json!(dt);
        }
        2 | 3 => {
            if let Some(Value::Array(shape)) = h[&name].get_mut("shape") {
                match rng.random_range(0..4) {
                    0 => shape.push(big(rng)),
                    1 => {
                        shape.pop();
                    }
                    _ if !shape.is_empty() => {
                        let i = rng.random_range(0..shape.len());
                        shape[i] = big(rng);
                    }
                    _ => shape.push(json!(0)),
                }
            }
        }
        4 | 5 => {
            if let Some(Value::Array(off)) = h[&name].get_mut("data_offsets") {
                if rng.random_bool(0.2) {
                    off.reverse();
                } else if !off.is_empty() {
                    let i = rng.random_range(0..off.len());
                    off[i] = if rng.random_bool(0.5) {
                        big(rng)
                    } else {
                        let v = off[i].as_u64().unwrap_or(0);
                        json!(v.wrapping_add(*pick(rng, &[1u64, u64::MAX, 4, 8])))
                    };
                }
            }
        }
        6 => {
            h.remove(&name);
        }
        7 => {
            let v = h[&name].clone();
            let other = pick(rng, &names).clone();
            let new = if rng.random_bool(0.5) {
                other
            } else {
                format!("{name}.x")
            };
            h.insert(new, v);
        }
        8 => {
            let v = h.remove(&name).unwrap();
            h.insert(format!("{name}_"), v);
        }
        9 => {
            let m = match rng.random_range(0..4) {
                0 => json!({"k": 1}),
                1 => json!(["a"]),
                2 => Value::Null,
                _ => json!({"k": {"x": "y"}}),
            };
            h.insert("__metadata__".into(), m);
        }
        10 => {
            let f = *pick(rng, &["dtype", "shape", "data_offsets"]);
            if let Some(o) = h[&name].as_object_mut() {
                if rng.random_bool(0.5) {
                    o.remove(f);
                } else {
                    o.insert(
                        f.into(),
                        pick(rng, &[json!(null), json!("x"), json!(1), json!([[1]])]).clone(),
                    );
                }
            }
        }
        _ => {
            let n = rng.random_range(0..=8);
            if rng.random_bool(0.5) {
                data.truncate(data.len().saturating_sub(n));
            } else {
                data.extend(std::iter::repeat_n(0, n));
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Child: the loop
// ------------------------------------------------------------------------------------------------

static LAST_PANIC: Mutex<Option<(String, String)>> = Mutex::new(None);

/// A panic hook that prints nothing and remembers where and why.
fn install_quiet_hook() {
    panic::set_hook(Box::new(|info| {
        let p = info.payload();
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "<non-string panic payload>".into());
        let loc = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_default();
        *LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()) = Some((loc, msg));
    }));
}

fn one_line(s: &str) -> String {
    let s: String = s.chars().take(400).collect();
    s.replace('\n', "\\n")
}

fn child_tmp(pid: u32) -> PathBuf {
    std::env::temp_dir().join(format!("ncood-fuzz-{pid}"))
}

fn child_main(target: &str, args: &Args) -> ! {
    install_quiet_hook();
    tch::set_num_threads(1);
    let tmp = child_tmp(std::process::id());
    let _ = std::fs::create_dir_all(&tmp);
    let mut fz = match Fuzzer::new(target, tmp.clone()) {
        Ok(f) => f,
        Err(e) => {
            println!("E setup failed: {}", one_line(&e));
            let _ = std::fs::remove_dir_all(&tmp);
            std::process::exit(3);
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let _ = writeln!(out, "S ready");
    let _ = out.flush();
    let deadline = args
        .time_ms
        .map(|ms| Instant::now() + Duration::from_millis(ms));
    let (mut panics, mut bads, mut accepted) = (0u64, 0u64, 0u64);
    let mut seen: HashSet<String> = HashSet::new();
    let (mut last_p, mut last_t) = (args.start, Instant::now());
    let end = args.start.saturating_add(args.execs);
    let mut i = args.start;
    while i < end {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        if args.careful {
            let _ = writeln!(out, "R {i} {panics} {bads}");
            let _ = out.flush();
        }
        let mut rng = exec_rng(args.seed, target, i);
        let input = fz.generate(&mut rng);
        match panic::catch_unwind(AssertUnwindSafe(|| fz.execute(&input))) {
            Ok(Verdict::Accepted) => accepted += 1,
            Ok(Verdict::Rejected) => {}
            Ok(Verdict::Bad(why)) => {
                bads += 1;
                if seen.insert(format!("bad:{}", why.split(':').next().unwrap_or("")))
                    && seen.len() <= 20
                {
                    let _ = writeln!(
                        out,
                        "F accepted-bad {i} {} :: {}",
                        one_line(&why),
                        input.preview()
                    );
                }
            }
            Err(payload) => {
                panics += 1;
                let (loc, msg) = LAST_PANIC
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take()
                    .unwrap_or_else(|| {
                        let m = payload
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default();
                        (String::new(), m)
                    });
                if seen.insert(format!("panic:{loc}")) && seen.len() <= 20 {
                    let _ = writeln!(
                        out,
                        "F panic {i} at {loc}: {} :: {}",
                        one_line(&msg),
                        input.preview()
                    );
                }
            }
        }
        i += 1;
        if !args.careful && (i - last_p >= WINDOW || last_t.elapsed() >= Duration::from_millis(200))
        {
            let _ = writeln!(out, "P {i} {panics} {bads}");
            let _ = out.flush();
            last_p = i;
            last_t = Instant::now();
        }
    }
    let _ = writeln!(out, "D {i} {panics} {bads} {accepted}");
    let _ = out.flush();
    let _ = std::fs::remove_dir_all(&tmp);
    std::process::exit(0);
}

fn replay_main(target: &str, args: &Args) {
    tch::set_num_threads(1);
    let tmp = child_tmp(std::process::id());
    std::fs::create_dir_all(&tmp).unwrap();
    let mut fz = Fuzzer::new(target, tmp.clone()).unwrap_or_else(|e| panic!("setup: {e}"));
    let mut rng = exec_rng(args.seed, target, args.index);
    let input = fz.generate(&mut rng);
    println!("target {target}, seed {}, exec {}", args.seed, args.index);
    match &input {
        Input::Bytes { how, data } => {
            println!("{how:?}, {} bytes:", data.len());
            for (k, row) in data.chunks(32).enumerate().take(64) {
                let hex: String = row.iter().map(|b| format!("{b:02x} ")).collect();
                let txt: String = row
                    .iter()
                    .map(|&b| {
                        if (0x20..0x7f).contains(&b) {
                            b as char
                        } else {
                            '.'
                        }
                    })
                    .collect();
                println!("{:08x}  {hex:<96} {txt}", k * 32);
            }
            if data.len() > 64 * 32 {
                println!("... ({} bytes more)", data.len() - 64 * 32);
            }
            if let Some(p) = &args.dump {
                std::fs::write(p, data).unwrap();
                println!("written to {}", p.display());
            }
        }
        Input::Config { text, overrides } => {
            println!("config text:\n{text}\noverrides: {overrides:?}");
            if let Some(p) = &args.dump {
                std::fs::write(p, text).unwrap();
                println!("text written to {}", p.display());
            }
        }
    }
    let verdict = fz.execute(&input);
    let _ = std::fs::remove_dir_all(&tmp);
    match verdict {
        Verdict::Accepted => println!("accepted"),
        Verdict::Rejected => println!("rejected (an error, as it should be for bad input)"),
        Verdict::Bad(why) => {
            println!("ACCEPTED BAD INPUT: {why}");
            std::process::exit(1);
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Parent: one child per target, with a watchdog
// ------------------------------------------------------------------------------------------------

#[derive(Default)]
struct Stats {
    execs: u64,
    panics: u64,
    signals: u64,
    hangs: u64,
    bad: u64,
    secs: f64,
}

enum Died {
    Signal(String),
    Hang,
}

fn signal_name(s: i32) -> &'static str {
    match s {
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        15 => "SIGTERM",
        _ => "signal",
    }
}

fn parent_main(args: &Args) -> i32 {
    let exe = std::env::current_exe().expect("own path");
    println!(
        "fuzz: seed {}, {} executions per target (divided for slow targets), targets {}",
        args.seed,
        args.execs,
        args.targets.join(",")
    );
    let mut rows = vec![];
    for t in &args.targets {
        let div = TARGETS.iter().find(|x| x.0 == t).unwrap().1;
        let total = args.execs.div_ceil(div).max(1);
        let s = run_target(&exe, t, total, args);
        rows.push((t.clone(), s));
    }
    println!(
        "{:<12} {:>10} {:>7} {:>8} {:>6} {:>13} {:>8}",
        "target", "executions", "panics", "signals", "hangs", "accepted-bad", "seconds"
    );
    let (mut passed, mut failed) = (0, 0);
    for (t, s) in &rows {
        println!(
            "{:<12} {:>10} {:>7} {:>8} {:>6} {:>13} {:>8.1}",
            t, s.execs, s.panics, s.signals, s.hangs, s.bad, s.secs
        );
        if s.panics + s.signals + s.hangs + s.bad == 0 {
            passed += 1;
        } else {
            failed += 1;
        }
    }
    println!("fuzz: {passed} passed, {failed} failed");
    if failed == 0 { 0 } else { 1 }
}

fn run_target(exe: &Path, target: &str, total: u64, args: &Args) -> Stats {
    let t0 = Instant::now();
    let deadline = args.time_limit.map(|s| t0 + Duration::from_secs_f64(s));
    let hang = Duration::from_secs_f64(args.hang_timeout);
    let mut st = Stats::default();
    let mut shown: HashSet<u64> = HashSet::new();
    let mut accepted = 0u64;
    let mut next = 0u64;
    let mut careful_until = 0u64;
    // A crash or hang seen in a normal run, not yet pinned to an execution: (what, from index).
    let mut pending: Option<(Died, u64)> = None;
    let replay = |i: u64| format!("fuzz --replay {target} --seed {} --index {i}", args.seed);
    let report = |st: &mut Stats, d: &Died, what: String| {
        match d {
            Died::Signal(_) => st.signals += 1,
            Died::Hang => st.hangs += 1,
        }
        println!("{target}: {what}");
    };
    while next < total {
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            break;
        }
        let careful = next < careful_until;
        let count = if careful {
            careful_until - next
        } else {
            total - next
        };
        let mut cmd = if args.mem_limit_mb > 0 && Path::new("/bin/sh").exists() {
            let mut c = Command::new("/bin/sh");
            c.arg("-c")
                .arg("ulimit -v \"$1\" 2>/dev/null; shift; exec \"$@\"")
                .arg("sh")
                .arg((args.mem_limit_mb * 1024).to_string())
                .arg(exe);
            c
        } else {
            Command::new(exe)
        };
        cmd.args(["--child", target])
            .args(["--seed", &args.seed.to_string()])
            .args(["--start", &next.to_string()])
            .args(["--execs", &count.to_string()]);
        if careful {
            cmd.arg("--careful");
        }
        if let Some(d) = deadline {
            let ms = d.saturating_duration_since(now).as_millis() as u64;
            cmd.args(["--time-ms", &ms.max(1).to_string()]);
        }
        let mut child = match cmd.stdout(Stdio::piped()).stdin(Stdio::null()).spawn() {
            Ok(c) => c,
            Err(e) => {
                println!("{target}: cannot start the child: {e}");
                st.signals += 1;
                break;
            }
        };
        let pid = child.id();
        let (tx, rx) = mpsc::channel::<String>();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // What the child reported: (next index, panics, bad) for [next, index).
        let mut done: Option<(u64, u64, u64)> = None;
        let mut running: Option<(u64, u64, u64)> = None;
        let mut ready = false;
        let mut finished = false;
        let mut hung = false;
        let mut last = Instant::now();
        let setup = Duration::from_secs(120).max(hang);
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    last = Instant::now();
                    let mut w = line.splitn(4, ' ');
                    let tag = w.next().unwrap_or("");
                    let nums = |w: &mut std::str::SplitN<char>| -> Option<(u64, u64, u64)> {
                        Some((
                            w.next()?.parse().ok()?,
                            w.next()?.parse().ok()?,
                            w.next()?.split(' ').next()?.parse().ok()?,
                        ))
                    };
                    match tag {
                        "S" => ready = true,
                        "P" => done = nums(&mut w),
                        "D" => {
                            done = nums(&mut w);
                            finished = true;
                            accepted += line
                                .rsplit(' ')
                                .next()
                                .and_then(|a| a.parse::<u64>().ok())
                                .unwrap_or(0);
                        }
                        "R" => running = nums(&mut w),
                        "F" => {
                            let rest: Vec<&str> = line.splitn(4, ' ').collect();
                            let i: u64 = rest.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
                            if shown.len() < SHOW_PER_TARGET && shown.insert(i) {
                                println!(
                                    "{target}: {} at exec {i} (replay: {}): {}",
                                    rest[1],
                                    replay(i),
                                    rest.get(3).unwrap_or(&"")
                                );
                            }
                        }
                        "E" => println!("{target}: {line}"),
                        _ => eprintln!("{target} child: {line}"),
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let limit = if ready { hang } else { setup };
                    if last.elapsed() > limit {
                        hung = true;
                        let _ = child.kill();
                        break;
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        let status = child.wait().expect("wait for the child");
        let _ = reader.join();
        let _ = std::fs::remove_dir_all(child_tmp(pid));
        let died = if hung {
            Some(Died::Hang)
        } else if let Some(sig) = status.signal() {
            Some(Died::Signal(format!("{} ({sig})", signal_name(sig))))
        } else if !status.success() || !finished {
            Some(Died::Signal(format!("abnormal exit ({status})")))
        } else {
            None
        };
        let start = next;
        match died {
            None => {
                let (n, p, b) = done.unwrap_or((start, 0, 0));
                st.execs += n - start;
                st.panics += p;
                st.bad += b;
                if n == start && n < total && deadline.is_none_or(|d| Instant::now() < d) {
                    println!("{target}: child made no progress; giving up");
                    st.signals += 1;
                    break;
                }
                next = n;
                if careful
                    && next >= careful_until
                    && let Some((d, from)) = pending.take()
                {
                    let what = match &d {
                        Died::Signal(s) => format!("child died by {s}"),
                        Died::Hang => "child hung".into(),
                    };
                    report(
                        &mut st,
                        &d,
                        format!(
                            "{what} in executions {from}..{careful_until}, not reproduced by a careful re-run"
                        ),
                    );
                }
            }
            Some(d) => {
                if !ready {
                    println!("{target}: child died during setup ({status}); giving up");
                    st.signals += 1;
                    break;
                }
                if careful && let Some((i, p, b)) = running {
                    st.execs += i - start + 1;
                    st.panics += p;
                    st.bad += b;
                    let what = match &d {
                        Died::Signal(s) => s.clone(),
                        Died::Hang => format!("hang (no progress for {:.0} s)", hang.as_secs_f64()),
                    };
                    report(
                        &mut st,
                        &d,
                        format!("{what} at exec {i} (replay: {})", replay(i)),
                    );
                    pending = None;
                    next = i + 1;
                } else {
                    let (n, p, b) = done.unwrap_or((start, 0, 0));
                    st.execs += n - start;
                    st.panics += p;
                    st.bad += b;
                    if careful {
                        // Died before its first execution: count it and move on.
                        report(&mut st, &d, format!("child died before exec {start}"));
                        next = start + 1;
                    } else {
                        next = n;
                        careful_until = (n + WINDOW).min(total);
                        pending = Some((d, n));
                    }
                }
            }
        }
    }
    if let Some((d, from)) = pending {
        report(
            &mut st,
            &d,
            format!(
                "child died in executions from {from} (time ran out before the careful re-run)"
            ),
        );
    }
    st.secs = t0.elapsed().as_secs_f64();
    println!(
        "{target}: {} executions in {:.1} s, {accepted} inputs accepted (of those that finished normally)",
        st.execs, st.secs
    );
    st
}
