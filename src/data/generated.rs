//! OoD sets: the test split of a registered data set, or one generated from the run's seed that
//! needs no files: uniform noise, Gaussian noise matched to the ID training statistics, and the
//! ID test images flipped vertically and inverted (near OoD).
use super::{DataSource, Dataset, DatasetInfo, DatasetKind, Normalization, Split};
use crate::error::{Error, Result};
use crate::rng::{Stream, rng};
use rand::Rng;

/// A generated OoD set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Generated {
    /// Uniform pixels in 0..=255.
    NoiseUniform,
    /// Per-channel Gaussian pixels with the ID training mean and std, rounded and clamped.
    NoiseGaussian,
    /// The ID test images flipped vertically and inverted (255 - x).
    FlipInvert,
}

impl Generated {
    pub const ALL: [Generated; 3] = [
        Generated::NoiseUniform,
        Generated::NoiseGaussian,
        Generated::FlipInvert,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Generated::NoiseUniform => "noise-uniform",
            Generated::NoiseGaussian => "noise-gaussian",
            Generated::FlipInvert => "flip-invert",
        }
    }

    /// As many images as `id_test`, shaped like them, from the seed's `Generated` stream.
    pub fn generate(self, id_test: &Dataset, norm: &Normalization, seed: u64) -> Dataset {
        let (n, b) = (id_test.len(), id_test.image_bytes());
        let (side, c) = (id_test.info.side, id_test.info.channels);
        let mut rng = rng(seed, Stream::Generated);
        let pixels = match self {
            Generated::NoiseUniform => (0..n * b).map(|_| rng.random::<u8>()).collect(),
            Generated::NoiseGaussian => {
                let plane = side * side;
                let mut out = Vec::with_capacity(n * b);
                for k in 0..n * b {
                    let ch = (k / plane) % c;
                    // Box-Muller: one standard normal from two uniforms in (0, 1].
                    let (u1, u2): (f64, f64) = (1.0 - rng.random::<f64>(), rng.random());
                    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                    out.push(
                        (255.0 * (norm.mean[ch] + norm.std[ch] * z))
                            .round()
                            .clamp(0.0, 255.0) as u8,
                    );
                }
                out
            }
            Generated::FlipInvert => {
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
        };
        Dataset {
            info: DatasetInfo {
                name: self.name(),
                classes: 0,
                has_train: false,
                ..id_test.info
            },
            pixels,
            labels: vec![-1; n],
        }
    }
}

/// An OoD set by name: a registered data set (its test split) or a generated one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OodSet {
    Data(DatasetKind),
    Generated(Generated),
}

impl OodSet {
    pub fn name(self) -> &'static str {
        match self {
            OodSet::Data(k) => k.name(),
            OodSet::Generated(g) => g.name(),
        }
    }

    /// The paper's OoD sets for `id` whose folder exists under `root`, then the generated ones.
    pub fn defaults(id: DatasetKind, root: &std::path::Path) -> Vec<OodSet> {
        id.paper_ood()
            .iter()
            .filter(|k| root.join(k.name()).exists())
            .map(|&k| OodSet::Data(k))
            .chain(Generated::ALL.map(OodSet::Generated))
            .collect()
    }

    /// The set's images: generated from `seed` like `id_test`, or read (then they must have the
    /// ID images' shape). An empty set is an error.
    pub fn load(
        self,
        src: &DataSource,
        id_test: &Dataset,
        norm: &Normalization,
        seed: u64,
    ) -> Result<Dataset> {
        let set = match self {
            OodSet::Generated(g) => g.generate(id_test, norm, seed),
            OodSet::Data(k) => {
                let set = src.load(k, Split::Test, seed, 0.0)?;
                if (set.info.channels, set.info.side) != (id_test.info.channels, id_test.info.side)
                {
                    return Err(Error::ShapeMismatch {
                        what: format!("OoD set {}", k.name()),
                        expected: format!(
                            "{}x{}x{} images like the ID set",
                            id_test.info.channels, id_test.info.side, id_test.info.side
                        ),
                        got: format!("{}x{}x{}", set.info.channels, set.info.side, set.info.side),
                    });
                }
                set
            }
        };
        if set.is_empty() {
            return Err(Error::invalid(
                format!("OoD set {}", self.name()),
                "has no images",
            ));
        }
        Ok(set)
    }
}

impl std::str::FromStr for OodSet {
    type Err = Error;
    fn from_str(s: &str) -> Result<OodSet> {
        if let Some(g) = Generated::ALL.into_iter().find(|g| g.name() == s) {
            return Ok(OodSet::Generated(g));
        }
        s.parse()
            .map(OodSet::Data)
            .map_err(|_| Error::UnknownDataset {
                name: s.into(),
                known: DatasetKind::ALL
                    .map(|k| k.name())
                    .into_iter()
                    .chain(Generated::ALL.map(|g| g.name()))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

impl std::fmt::Display for OodSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

crate::serde_by_name!(OodSet);

#[cfg(test)]
mod tests {
    use super::*;

    fn id_set(n: usize, channels: usize, side: usize) -> Dataset {
        let info = DatasetInfo {
            name: "id",
            channels,
            side,
            classes: 2,
            hflip: false,
            has_train: true,
        };
        let b = channels * side * side;
        Dataset {
            info,
            pixels: (0..n * b).map(|k| (k * 37 % 251) as u8).collect(),
            labels: (0..n as i64).map(|i| i % 2).collect(),
        }
    }

    #[test]
    fn flip_invert_mirrors_rows_and_inverts() {
        let (n, c, side) = (3, 2, 5);
        let id = id_set(n, c, side);
        let norm = Normalization {
            mean: vec![0.5; c],
            std: vec![0.2; c],
        };
        let g = Generated::FlipInvert.generate(&id, &norm, 0);
        assert_eq!((g.len(), g.image_bytes()), (n, c * side * side));
        assert!(g.labels.iter().all(|&l| l == -1));
        for i in 0..n {
            for ch in 0..c {
                for r in 0..side {
                    for x in 0..side {
                        let at = |img: &Dataset, row: usize| {
                            img.pixels[((i * c + ch) * side + row) * side + x]
                        };
                        assert_eq!(at(&g, r), 255 - at(&id, side - 1 - r), "{i} {ch} {r} {x}");
                    }
                }
            }
        }
    }

    #[test]
    fn gaussian_noise_matches_the_id_statistics_per_channel() {
        let (n, c, side) = (400, 2, 16);
        let id = id_set(n, c, side);
        let norm = Normalization {
            mean: vec![0.3, 0.6],
            std: vec![0.05, 0.1],
        };
        let g = Generated::NoiseGaussian.generate(&id, &norm, 7);
        let plane = side * side;
        for ch in 0..c {
            let v: Vec<f64> = (0..n)
                .flat_map(|i| {
                    let s = (i * c + ch) * plane;
                    g.pixels[s..s + plane].iter().map(|&p| p as f64 / 255.0)
                })
                .collect();
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
            // 102,400 draws: the sample mean is within 1e-3 of the target (SE 3e-4), the std
            // within 2% (rounding to 1/255 adds variance 1/(12 255^2), negligible here).
            assert!(
                (mean - norm.mean[ch]).abs() < 1e-3,
                "channel {ch}: mean {mean}"
            );
            assert!(
                (std / norm.std[ch] - 1.0).abs() < 0.02,
                "channel {ch}: std {std}"
            );
        }
        // Same seed, same images; another seed, others.
        assert_eq!(
            g.pixels,
            Generated::NoiseGaussian.generate(&id, &norm, 7).pixels
        );
        assert_ne!(
            g.pixels,
            Generated::NoiseGaussian.generate(&id, &norm, 8).pixels
        );
    }

    #[test]
    fn uniform_noise_covers_the_byte_range_and_names_parse() {
        let id = id_set(100, 1, 28);
        let norm = Normalization {
            mean: vec![0.5],
            std: vec![0.2],
        };
        let g = Generated::NoiseUniform.generate(&id, &norm, 1);
        let mean = g.pixels.iter().map(|&p| p as f64).sum::<f64>() / g.pixels.len() as f64;
        assert!((mean - 127.5).abs() < 1.0, "{mean}");
        assert_eq!(g.pixels.iter().max(), Some(&255));
        assert_eq!(g.pixels.iter().min(), Some(&0));
        for name in [
            "noise-uniform",
            "noise-gaussian",
            "flip-invert",
            "mnist",
            "svhn",
        ] {
            assert_eq!(name.parse::<OodSet>().unwrap().to_string(), name);
        }
        assert!("noise".parse::<OodSet>().is_err());
    }
}
