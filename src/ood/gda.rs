//! Gaussian discriminant analysis on features (DDU; SPEC 4), with two other covariance models.
//!
//! Fit: per class c the mean mu_c and a covariance, in f64, from `stats::ClassStats` (centred
//! before the product), on the statistics' device. `Covariance` says which: each class's unbiased
//! covariance S_c (SPEC 4, DDU), one pooled covariance for all classes (LDA: the model of Lee et
//! al.'s Mahalanobis detector), or each class's Ledoit-Wolf shrunk covariance (classes with few
//! samples against D, where S_c is singular or nearly so). The jitter eps is the first value of
//! the ladder 0, 1e-308, 1e-307, ..., 1e-1 for which the Cholesky factorisation of every
//! covariance + eps I succeeds, tested directly. A ladder step that leaves every diagonal entry
//! bitwise unchanged (eps far below the diagonal's resolution) gives the same matrix and the same
//! failure, so it is skipped without refactorising.
//!
//! Score: logsumexp_c log N(f(x); mu_c, Sigma_c + eps I), no class prior; higher = more ID. The
//! Mahalanobis term is a batched triangular solve with the Cholesky factor and a sum of squares,
//! never an inverse or an N x N product (with one shared factor, the points and the means are
//! whitened once and compared in the whitened space). Test points are scored in chunks of `CHUNK`
//! rows, so the working memory is about 8 * C * D * CHUNK bytes (K * D^2 * 8 for the K factors)
//! whatever N is.
use crate::error::{Error, Result};
use crate::features::Labels;
use crate::stats::ClassStats;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// Rows scored at once (bounds memory: 8 * C * D * CHUNK bytes).
pub const CHUNK: i64 = 256;

/// The jitter ladder of SPEC 4: 0, then 1e-308, 1e-307, ..., 1e-1.
pub fn jitter_ladder() -> Vec<f64> {
    std::iter::once(0.0)
        .chain((1..=308).rev().map(|k| format!("1e-{k}").parse().unwrap()))
        .collect()
}

/// The covariance model of a GDA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Covariance {
    /// Each class its own unbiased covariance S_c = scatter_c / (n_c - 1) (SPEC 4, DDU).
    Full,
    /// One covariance shared by all classes: the pooled sum_c scatter_c / (N - C).
    Tied,
    /// Each class its Ledoit-Wolf (2004) estimate (1 - s_c) S'_c + s_c tr(S'_c) / D I, with
    /// S'_c = scatter_c / n_c and s_c in [0, 1] estimated from the class's own samples (as
    /// scikit-learn's `LedoitWolf`).
    Shrinkage,
}

impl Covariance {
    pub const ALL: [Covariance; 3] = [Covariance::Full, Covariance::Tied, Covariance::Shrinkage];
    pub fn name(self) -> &'static str {
        match self {
            Covariance::Full => "full",
            Covariance::Tied => "tied",
            Covariance::Shrinkage => "shrinkage",
        }
    }

    /// The K x D x D covariances of `stats` (K = C, or 1 when tied), before any jitter.
    fn estimate(self, stats: &ClassStats) -> Result<Tensor> {
        let counts = &stats.counts;
        let least = match self {
            Covariance::Full | Covariance::Shrinkage => 2,
            Covariance::Tied => 1,
        };
        if let Some(c) = counts.iter().position(|&k| k < least) {
            return Err(Error::invalid(
                "GDA fit",
                format!(
                    "class {c} has {} training sample(s); a {} covariance needs at least {least}",
                    counts[c],
                    self.name()
                ),
            ));
        }
        let dev = stats.scatter.device();
        let per_class = |v: Vec<f64>| Tensor::from_slice(&v).to_device(dev).view([-1, 1, 1]);
        Ok(match self {
            Covariance::Full => {
                &stats.scatter / per_class(counts.iter().map(|&n| n as f64 - 1.0).collect())
            }
            Covariance::Tied => {
                let (n, c) = (stats.total(), counts.len());
                if n <= c {
                    return Err(Error::invalid(
                        "GDA fit",
                        format!(
                            "{n} training samples for {c} classes; a tied covariance needs more samples than classes"
                        ),
                    ));
                }
                stats.scatter.sum_dim_intlist(0, true, Kind::Double) / (n - c) as f64
            }
            Covariance::Shrinkage => {
                // scikit-learn's ledoit_wolf_shrinkage, with sum_i ||y_i||^4 = sum_jk (Y^2)^T Y^2.
                let n = per_class(counts.iter().map(|&n| n as f64).collect()).view([-1]);
                let d = stats.means.size()[1] as f64;
                let s = &stats.scatter / n.view([-1, 1, 1]); // S'_c, the MLE
                let mu = s.diagonal(0, 1, 2).sum_dim_intlist(1, false, Kind::Double) / d;
                let frob = s
                    .square()
                    .sum_dim_intlist([1, 2].as_slice(), false, Kind::Double);
                let beta = (&stats.norm4 / &n - &frob) / (&n * d);
                let delta = (frob - mu.square() * d) / d;
                let beta = beta.minimum(&delta);
                let shrink = (&beta / &delta)
                    .where_scalarother(&beta.ne(0.0), 0.0)
                    .clamp(0.0, 1.0)
                    .view([-1, 1, 1]);
                let eye = Tensor::eye(d as i64, (Kind::Double, dev));
                s * (-&shrink + 1.0) + eye * mu.view([-1, 1, 1]) * shrink
            }
        })
    }
}

impl std::str::FromStr for Covariance {
    type Err = Error;
    fn from_str(s: &str) -> Result<Covariance> {
        Covariance::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                Error::invalid(
                    "covariance",
                    format!("{s:?}; expected \"full\", \"tied\" or \"shrinkage\""),
                )
            })
    }
}

impl std::fmt::Display for Covariance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What the fit needed and found, written into every result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GdaInfo {
    /// The jitter eps added to every covariance's diagonal.
    pub jitter: f64,
    /// Condition number (largest / smallest eigenvalue) of each class's covariance + eps I; null
    /// where the smallest computed eigenvalue is not positive.
    pub condition_numbers: Vec<Option<f64>>,
    pub class_counts: Vec<usize>,
    pub feature_dim: usize,
}

/// A fitted GDA: only a fitted model can score.
#[derive(Debug)]
pub struct Gda {
    means: Tensor,    // C x D
    factors: Tensor,  // K x D x D lower Cholesky factors of the covariances + eps I (K = C or 1)
    log_norm: Tensor, // K: -0.5 (D log 2 pi + log det(Sigma_k + eps I))
    covariance: Covariance,
    pub info: GdaInfo,
}

/// -0.5 (D log 2 pi + log det(L L^T)) of each lower Cholesky factor L (K x D x D).
fn log_norm(factors: &Tensor) -> Tensor {
    let d = factors.size()[1] as f64;
    let log_det = factors
        .diagonal(0, 1, 2)
        .log()
        .sum_dim_intlist(1, false, Kind::Double)
        * 2.0;
    (log_det + d * (2.0 * std::f64::consts::PI).ln()) * -0.5
}

impl Gda {
    /// Fits on training features (N x D, any float kind) and their labels (SPEC 4's model).
    pub fn fit(features: &Tensor, labels: &Labels) -> Result<Gda> {
        Self::fit_with(features, labels, Covariance::Full)
    }

    /// Fits with the covariance model `covariance`.
    pub fn fit_with(features: &Tensor, labels: &Labels, covariance: Covariance) -> Result<Gda> {
        let stats = ClassStats::new(features, labels, "GDA", crate::stats::CHUNK)?;
        Self::from_stats_with(&stats, covariance)
    }

    /// Fits from per-class statistics (shared with the NC measures), SPEC 4's model.
    pub fn from_stats(stats: &ClassStats) -> Result<Gda> {
        Self::from_stats_with(stats, Covariance::Full)
    }

    /// Fits from per-class statistics with the covariance model `covariance`.
    pub fn from_stats_with(stats: &ClassStats, covariance: Covariance) -> Result<Gda> {
        let covs = covariance.estimate(stats)?; // K x D x D
        let (k, d) = (covs.size()[0], covs.size()[1]);
        let c = stats.counts.len();
        let eye = Tensor::eye(d, (Kind::Double, covs.device()));
        let diag = covs.diagonal(0, 1, 2); // K x D
        let ladder = jitter_ladder();
        let mut previous: Option<Tensor> = None;
        let mut failing = vec![];
        for &eps in &ladder {
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
                let eig = m.linalg_eigvalsh("L");
                let (lo, hi) = (eig.select(1, 0), eig.select(1, d - 1));
                let per_matrix: Vec<Option<f64>> = Vec::<f64>::try_from(&hi)
                    .unwrap()
                    .into_iter()
                    .zip(Vec::<f64>::try_from(&lo).unwrap())
                    .map(|(h, l)| (l > 0.0).then_some(h / l))
                    .collect();
                return Ok(Gda {
                    means: stats.means.shallow_clone(),
                    log_norm: log_norm(&l),
                    factors: l,
                    covariance,
                    info: GdaInfo {
                        jitter: eps,
                        condition_numbers: (0..c).map(|c| per_matrix[c % k as usize]).collect(),
                        class_counts: stats.counts.clone(),
                        feature_dim: d as usize,
                    },
                });
            }
        }
        Err(Error::NotPositiveDefinite {
            // A shared covariance fails for every class.
            classes: if k == 1 { (0..c).collect() } else { failing },
            last_jitter: *ladder.last().expect("a non-empty ladder"),
        })
    }

    /// A fitted GDA from saved parts (`means`, `factors`, `covariance()`, `info` of a fitted
    /// one), checked as a fit would leave them: C x D float64 means, K x D x D lower-triangular
    /// float64 factors with a positive diagonal (K = 1 when tied, else C), all finite, on one
    /// device, and `info` of C classes in D dimensions. `what` names the source in errors.
    pub fn from_parts(
        means: Tensor,
        factors: Tensor,
        covariance: Covariance,
        info: GdaInfo,
        what: &str,
    ) -> Result<Gda> {
        crate::features::check_finite(&means, &format!("{what} means"))?;
        crate::features::check_finite(&factors, &format!("{what} factors"))?;
        let (c, d) = match means.size()[..] {
            [c, d] if c > 0 && d > 0 && means.kind() == Kind::Double => (c, d),
            _ => {
                return Err(Error::ShapeMismatch {
                    what: format!("{what} means"),
                    expected: "C x D float64".into(),
                    got: format!("{:?} of shape {:?}", means.kind(), means.size()),
                });
            }
        };
        let k = if covariance == Covariance::Tied { 1 } else { c };
        if factors.size() != [k, d, d] || factors.kind() != Kind::Double {
            return Err(Error::ShapeMismatch {
                what: format!("{what} factors"),
                expected: format!("{k} x {d} x {d} float64 ({covariance} covariance)"),
                got: format!("{:?} of shape {:?}", factors.kind(), factors.size()),
            });
        }
        let factors = factors.to_device(means.device());
        let upper = factors.triu(1).abs().sum(Kind::Double).double_value(&[]);
        let min_diag = factors.diagonal(0, 1, 2).min().double_value(&[]);
        if upper != 0.0 || min_diag <= 0.0 {
            return Err(Error::invalid(
                format!("{what} factors"),
                "not lower Cholesky factors (entries above the diagonal, or a diagonal entry <= 0)",
            ));
        }
        let sizes = (
            info.class_counts.len(),
            info.condition_numbers.len(),
            info.feature_dim,
        );
        if sizes != (c as usize, c as usize, d as usize) {
            return Err(Error::ShapeMismatch {
                what: format!("{what} class counts, condition numbers and feature dimension"),
                expected: format!("{c}, {c} and {d} (the means' C x D)"),
                got: format!("{}, {} and {}", sizes.0, sizes.1, sizes.2),
            });
        }
        Ok(Gda {
            log_norm: log_norm(&factors),
            means,
            factors,
            covariance,
            info,
        })
    }

    /// The class means, C x D (float64, on the device the GDA was fitted on).
    pub fn means(&self) -> &Tensor {
        &self.means
    }

    /// The lower Cholesky factors L of the covariances + eps I, K x D x D (K = 1 when tied).
    pub fn factors(&self) -> &Tensor {
        &self.factors
    }

    pub fn covariance(&self) -> Covariance {
        self.covariance
    }

    /// Per-class log-densities, N x C (f64, on the GDA's device).
    pub fn log_densities(&self, features: &Tensor) -> Result<Tensor> {
        let d = self.means.size()[1];
        if features.dim() != 2 || features.size()[1] != d {
            return Err(Error::ShapeMismatch {
                what: "GDA features to score".into(),
                expected: format!("N x {d}"),
                got: format!("{:?}", features.size()),
            });
        }
        let x = features
            .to_device(self.means.device())
            .to_kind(Kind::Double);
        let n = x.size()[0];
        // With one shared factor L: the means whitened once (D x C), each chunk once.
        let shared = (self.factors.size()[0] == 1).then(|| {
            let l = self.factors.get(0);
            let white_means =
                Tensor::linalg_solve_triangular(&l, &self.means.tr(), false, true, false);
            (l, white_means)
        });
        let parts: Vec<Tensor> = (0..n)
            .step_by(CHUNK as usize)
            .map(|s| {
                let xb = x.narrow(0, s, CHUNK.min(n - s)); // B x D
                let z = match &shared {
                    Some((l, white_means)) => {
                        let zx = Tensor::linalg_solve_triangular(l, &xb.tr(), false, true, false); // D x B
                        zx.unsqueeze(0) - white_means.tr().unsqueeze(2) // C x D x B
                    }
                    None => {
                        let diff = (xb.unsqueeze(0) - self.means.unsqueeze(1)).transpose(1, 2); // C x D x B
                        Tensor::linalg_solve_triangular(&self.factors, &diff, false, true, false)
                    }
                };
                let maha = z.square().sum_dim_intlist(1, false, Kind::Double); // C x B
                (maha * -0.5 + self.log_norm.unsqueeze(1)).tr() // B x C
            })
            .collect();
        Ok(Tensor::cat(&parts, 0))
    }

    /// ID-confidence: logsumexp over classes of the log-densities, one per row (f64, on the
    /// GDA's device).
    pub fn scores(&self, features: &Tensor) -> Result<Tensor> {
        Ok(self.log_densities(features)?.logsumexp(1, false))
    }

    /// `scores` as numbers.
    pub fn score(&self, features: &Tensor) -> Result<Vec<f64>> {
        Ok(Vec::<f64>::try_from(self.scores(features)?).expect("f64 scores"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn fitted(covariance: Covariance) -> Gda {
        let x = Tensor::arange(60, (Kind::Double, Device::Cpu))
            .view([20, 3])
            .sin();
        let y: Vec<i64> = (0..20).map(|i| i % 2).collect();
        Gda::fit_with(&x, &Labels::new(y, None, "y").unwrap(), covariance).unwrap()
    }

    #[test]
    fn parts_round_trip_and_bad_parts_are_refused() {
        for cov in Covariance::ALL {
            let g = fitted(cov);
            assert_eq!(cov.name().parse::<Covariance>().unwrap(), cov);
            let k = if cov == Covariance::Tied { 1 } else { 2 };
            assert_eq!(g.factors().size(), [k, 3, 3]);
            let x = Tensor::arange(9, (Kind::Double, Device::Cpu)).view([3, 3]);
            let back = Gda::from_parts(
                g.means().copy(),
                g.factors().copy(),
                cov,
                g.info.clone(),
                "saved",
            )
            .unwrap();
            // To rounding: MKL may round differently with the memory's alignment.
            let (a, b) = (back.scores(&x).unwrap(), g.scores(&x).unwrap());
            assert!(a.allclose(&b, 1e-13, 0.0, false), "{a} vs {b}");
        }
        let g = fitted(Covariance::Full);
        let part = |f: Tensor, cov| {
            Gda::from_parts(g.means().copy(), f, cov, g.info.clone(), "saved")
                .unwrap_err()
                .to_string()
        };
        let upper = part(g.factors().transpose(1, 2), Covariance::Full);
        assert!(upper.contains("not lower Cholesky factors"), "{upper}");
        let tied = part(g.factors().copy(), Covariance::Tied);
        assert!(
            tied.contains("expected 1 x 3 x 3 float64 (tied covariance)"),
            "{tied}"
        );
        let e = "diag".parse::<Covariance>().unwrap_err().to_string();
        assert_eq!(
            e,
            "covariance: \"diag\"; expected \"full\", \"tied\" or \"shrinkage\""
        );
    }
}
