//! Gaussian discriminant analysis on features (DDU; SPEC 4).
//!
//! Fit: per class c the mean mu_c and the unbiased covariance S_c (divided by n_c - 1), in f64,
//! from `stats::ClassStats` (centred before the product). The jitter
//! eps is the first value of the ladder 0, 1e-308, 1e-307, ..., 1e-1 for which the Cholesky
//! factorisation of every S_c + eps I succeeds, tested directly. A ladder step that leaves every
//! diagonal entry bitwise unchanged (eps far below the diagonal's resolution) gives the same matrix
//! and the same failure, so it is skipped without refactorising.
//!
//! Score: logsumexp_c log N(f(x); mu_c, S_c + eps I), no class prior; higher = more ID. The
//! Mahalanobis term is a batched triangular solve with the Cholesky factor and a sum of squares,
//! never an inverse or an N x N product. Test points are scored in chunks of `CHUNK` rows, so the
//! working memory is about 8 * C * D * CHUNK bytes (C * D^2 * 8 for the factors) whatever N is.
use crate::error::{Error, Result};
use crate::features::Labels;
use crate::stats::ClassStats;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// Rows scored at once (bounds memory: 8 * C * D * CHUNK bytes).
pub const CHUNK: i64 = 256;

/// The jitter ladder of SPEC 4: 0, then 1e-308, 1e-307, ..., 1e-1.
pub fn jitter_ladder() -> Vec<f64> {
    std::iter::once(0.0)
        .chain((1..=308).rev().map(|k| format!("1e-{k}").parse().unwrap()))
        .collect()
}

/// What the fit needed and found, written into every result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GdaInfo {
    /// The jitter eps added to every covariance's diagonal.
    pub jitter: f64,
    /// Condition number (largest / smallest eigenvalue) of each S_c + eps I; null where the
    /// smallest computed eigenvalue is not positive.
    pub condition_numbers: Vec<Option<f64>>,
    pub class_counts: Vec<usize>,
    pub feature_dim: usize,
}

/// A fitted GDA: only a fitted model can score.
#[derive(Debug)]
pub struct Gda {
    means: Tensor,    // C x D
    factors: Tensor,  // C x D x D lower Cholesky factors of S_c + eps I
    log_norm: Tensor, // C: -0.5 (D log 2 pi + log det(S_c + eps I))
    pub info: GdaInfo,
}

impl Gda {
    /// Fits on training features (N x D, any float kind) and their labels.
    pub fn fit(features: &Tensor, labels: &Labels) -> Result<Gda> {
        Self::from_stats(&ClassStats::new(
            features,
            labels,
            "GDA",
            crate::stats::CHUNK,
        )?)
    }

    /// Fits from per-class statistics (shared with the NC measures).
    pub fn from_stats(stats: &ClassStats) -> Result<Gda> {
        let counts = stats.counts.clone();
        if let Some(c) = counts.iter().position(|&k| k < 2) {
            return Err(Error::invalid(
                "GDA fit",
                format!(
                    "class {c} has {} training sample(s); an unbiased covariance needs at least 2",
                    counts[c]
                ),
            ));
        }
        let d = stats.means.size()[1];
        let dof: Vec<f64> = counts.iter().map(|&n| n as f64 - 1.0).collect();
        let covs = &stats.scatter / Tensor::from_slice(&dof).view([-1, 1, 1]); // C x D x D
        let eye = Tensor::eye(d, (Kind::Double, Device::Cpu));
        let diag = covs.diagonal(0, 1, 2); // C x D
        let mut previous: Option<Tensor> = None;
        let mut failing = vec![];
        for eps in jitter_ladder() {
            let shifted_diag = &diag + eps;
            if previous.as_ref().is_some_and(|p| p.equal(&shifted_diag)) {
                continue;
            }
            previous = Some(shifted_diag);
            let m = &covs + &eye * eps;
            let (l, info) = m.linalg_cholesky_ex(false, false);
            let info = Vec::<i32>::try_from(info).expect("int info");
            failing = info
                .iter()
                .enumerate()
                .filter(|(_, i)| **i != 0)
                .map(|(c, _)| c)
                .collect();
            if failing.is_empty() {
                let log_det = l
                    .diagonal(0, 1, 2)
                    .log()
                    .sum_dim_intlist(1, false, Kind::Double)
                    * 2.0;
                let log_norm = (log_det + d as f64 * (2.0 * std::f64::consts::PI).ln()) * -0.5;
                let eig = m.linalg_eigvalsh("L");
                let (lo, hi) = (eig.select(1, 0), eig.select(1, d - 1));
                let condition_numbers = Vec::<f64>::try_from(&hi)
                    .unwrap()
                    .into_iter()
                    .zip(Vec::<f64>::try_from(&lo).unwrap())
                    .map(|(h, l)| (l > 0.0).then_some(h / l))
                    .collect();
                return Ok(Gda {
                    means: stats.means.shallow_clone(),
                    factors: l,
                    log_norm,
                    info: GdaInfo {
                        jitter: eps,
                        condition_numbers,
                        class_counts: counts,
                        feature_dim: d as usize,
                    },
                });
            }
        }
        Err(Error::NotPositiveDefinite {
            classes: failing,
            last_jitter: 0.1,
        })
    }

    /// Per-class log-densities, N x C (f64).
    pub fn log_densities(&self, features: &Tensor) -> Result<Tensor> {
        let x = features.to_device(Device::Cpu).to_kind(Kind::Double);
        let d = self.means.size()[1];
        if x.dim() != 2 || x.size()[1] != d {
            return Err(Error::ShapeMismatch {
                what: "GDA features to score".into(),
                expected: format!("N x {d}"),
                got: format!("{:?}", x.size()),
            });
        }
        let n = x.size()[0];
        let parts: Vec<Tensor> = (0..n)
            .step_by(CHUNK as usize)
            .map(|s| {
                let xb = x.narrow(0, s, CHUNK.min(n - s)); // B x D
                let diff = (xb.unsqueeze(0) - self.means.unsqueeze(1)).transpose(1, 2); // C x D x B
                let z = Tensor::linalg_solve_triangular(&self.factors, &diff, false, true, false); // C x D x B
                let maha = z.square().sum_dim_intlist(1, false, Kind::Double); // C x B
                (maha * -0.5 + self.log_norm.unsqueeze(1)).tr() // B x C
            })
            .collect();
        Ok(Tensor::cat(&parts, 0))
    }

    /// ID-confidence: logsumexp over classes of the log-densities, one per row.
    pub fn score(&self, features: &Tensor) -> Result<Vec<f64>> {
        let s = self.log_densities(features)?.logsumexp(1, false);
        Ok(Vec::<f64>::try_from(s).expect("f64 scores"))
    }
}
