//! Data: readers for the real file formats (`idx`, `cifar`, `svhn`), the registry of data sets
//! (`registry`), digest checks (`verify`), OoD sets including generated ones (`generated`),
//! splits, normalisation and the batch loader (`loader`).
//!
//! Images are kept as u8, N x C x H x W row-major, exactly as read; conversion to float and
//! normalisation happen per batch on the compute device (see `loader`).
pub mod cifar;
pub mod generated;
pub mod idx;
pub mod loader;
pub mod registry;
pub mod svhn;
pub mod verify;

use crate::error::{Error, Result};
use crate::rng::{Stream, rng};
pub use generated::{Generated, OodSet};
use rand::seq::SliceRandom;
pub use registry::{DatasetInfo, DatasetKind};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The data section of a run configuration (`[data]`): which ID set, where data sets are read
/// from, how the training file is split and augmented.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// In-distribution data set: fashion-mnist | cifar10 | cifar100 | svhn. Default fashion-mnist.
    pub name: DatasetKind,
    /// Folder holding one sub-folder per data set. Default: $NCOOD_DATA, else the data/ folder of
    /// the ncood checkout (`data::default_root`). A new run records it as an absolute path.
    pub root: Option<PathBuf>,
    /// Check files against their published sha256 digests. Default true.
    pub verify: bool,
    /// Fraction of the training file held out as validation, split by the seed, in [0, 1).
    /// Default 0.1 (DDU).
    pub val_fraction: f64,
    /// Train on a class-balanced subset of this many images of the training split (size / C per
    /// class, chosen by the seed); 0 = the whole split. Default 0. The normalisation statistics
    /// stay those of the whole training file.
    pub train_subset: usize,
    /// Random crop (4-pixel zero padding) and, where the data set allows it, horizontal flip.
    /// Default true.
    pub augment: bool,
    /// Batch size of evaluation passes (no effect on results). Default 256: the fastest on CPUs at
    /// the CPU presets' widths (at width 4, 256 ran 1.2x as fast as 512 and 2x as fast as 1024:
    /// the activations stay in cache).
    pub eval_batch_size: usize,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            name: DatasetKind::FashionMnist,
            root: None,
            verify: true,
            val_fraction: 0.1,
            train_subset: 0,
            augment: true,
            eval_batch_size: 256,
        }
    }
}

/// The most bytes a compressed data file or member may expand to (1 GiB; the largest real one,
/// SVHN's training images, is 225 MB): beyond it the file is rejected, not decompressed.
pub const MAX_DECOMPRESSED: u64 = 1 << 30;

/// Which part of a data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// The training file minus the validation hold-out.
    Train,
    /// The seeded hold-out of the training file (SPEC 3).
    Val,
    /// The test file.
    Test,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }
}

impl std::str::FromStr for Split {
    type Err = Error;
    fn from_str(s: &str) -> Result<Split> {
        [Split::Train, Split::Val, Split::Test]
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| Error::config("split", format!("{s}: expected train, val or test")))
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
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

    /// A class-balanced subset of `size` images (size / C per class, each class's share chosen by
    /// a shuffle of `stream` for `seed`), in data-set order; the whole set when `size` is 0 or not
    /// smaller.
    pub fn balanced_subset(&self, size: usize, seed: u64, stream: crate::rng::Stream) -> Dataset {
        use rand::seq::SliceRandom;
        if size == 0 || size >= self.len() {
            return self.clone();
        }
        let classes = self.info.classes;
        let mut rng = crate::rng::rng(seed, stream);
        let mut picked = vec![];
        for c in 0..classes as i64 {
            let mut idx: Vec<usize> = (0..self.len()).filter(|&i| self.labels[i] == c).collect();
            idx.shuffle(&mut rng);
            picked.extend(idx.into_iter().take(size / classes));
        }
        picked.sort_unstable();
        self.subset(&picked)
    }
}

/// The data root used when neither the config nor `$NCOOD_DATA` names one: the `data/` folder of
/// the ncood checkout this binary was built from (where `scripts/setup.sh` puts the data sets), so
/// that ncood finds its data from any working directory.
pub fn default_root() -> PathBuf {
    match std::env::var_os("NCOOD_DATA") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("data"),
    }
}

/// Where data sets are read from and whether their digests are checked.
#[derive(Debug, Clone)]
pub struct DataSource {
    pub root: PathBuf,
    pub verify: bool,
}

impl From<&DataConfig> for DataSource {
    fn from(c: &DataConfig) -> DataSource {
        DataSource {
            root: c.root.clone().unwrap_or_else(default_root),
            verify: c.verify,
        }
    }
}

impl DataSource {
    /// Reads the whole training file (`train = true`) or test file of a data set.
    pub fn read_file_split(&self, kind: DatasetKind, train: bool) -> Result<Dataset> {
        let (pixels, labels) = kind.read(self, train)?;
        Ok(Dataset {
            info: kind.info(),
            pixels,
            labels,
        })
    }

    /// A split of a data set. Train and validation come from the training file, split by `seed`:
    /// a seeded permutation of its indices, the first `val_fraction` of it (rounded down) held out
    /// as validation; both parts are returned in data-set (ascending index) order.
    pub fn load(
        &self,
        kind: DatasetKind,
        split: Split,
        seed: u64,
        val_fraction: f64,
    ) -> Result<Dataset> {
        if split == Split::Test {
            return self.read_file_split(kind, false);
        }
        let full = self.read_file_split(kind, true)?;
        let (train, val) = split_indices(full.len(), val_fraction, seed);
        Ok(full.subset(if split == Split::Train { &train } else { &val }))
    }
}

/// The seeded train/validation split of `n` training indices (both sorted).
pub fn split_indices(n: usize, val_fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut perm: Vec<usize> = (0..n).collect();
    perm.shuffle(&mut rng(seed, Stream::Split));
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
            return Err(Error::invalid("normalisation", "the training set is empty"));
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
            return Err(Error::invalid(
                "normalisation",
                "a channel of the training set is constant (std 0)",
            ));
        }
        Ok(Normalization { mean, std })
    }
}

/// The training and validation splits of a run with `seed` from its ID set's training file
/// `full`: the seeded split, then the class-balanced training subset (`train_subset`).
pub fn train_val(full: &Dataset, cfg: &DataConfig, seed: u64) -> (Dataset, Dataset) {
    let (train_idx, val_idx) = split_indices(full.len(), cfg.val_fraction, seed);
    let train = full.subset(&train_idx);
    let train = train.balanced_subset(cfg.train_subset, seed, crate::rng::Stream::TrainSubset);
    (train, full.subset(&val_idx))
}

/// The data of a run: ID train, validation and test splits and the normaliser (ID training-file
/// statistics).
pub struct RunData {
    pub train: Dataset,
    pub val: Dataset,
    pub test: Dataset,
    pub normalization: Normalization,
}

impl RunData {
    /// Reads the ID set of `cfg` and splits it with `seed`. Empty training or test splits are
    /// errors here, before any training starts.
    pub fn load(cfg: &DataConfig, seed: u64) -> Result<RunData> {
        let src = DataSource::from(cfg);
        let full = src.read_file_split(cfg.name, true)?;
        let normalization = Normalization::of(&full)?;
        let (train, val) = train_val(&full, cfg, seed);
        let test = src.load(cfg.name, Split::Test, seed, cfg.val_fraction)?;
        // BatchNorm needs two training images; accuracy needs one test image.
        for (split, set, min) in [("training", &train, 2), ("test", &test, 1)] {
            if set.len() < min {
                return Err(Error::invalid(
                    format!("data set {}", cfg.name),
                    format!(
                        "its {split} split has {} image(s), fewer than {min}",
                        set.len()
                    ),
                ));
            }
        }
        Ok(RunData {
            train,
            val,
            test,
            normalization,
        })
    }
}
