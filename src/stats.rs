//! Per-class statistics of features in f64: counts, means and centred scatter matrices
//! sum_i (h_i - mu_c)(h_i - mu_c)^T. The one accumulator both GDA (S_c = scatter_c / (n_c - 1))
//! and Neural Collapse (Sigma_W = sum_c scatter_c / N) read.
//!
//! Two passes over chunks of rows, converted to f64 chunk by chunk: class sums first, then the
//! scatter about the class means (no cancellation from raw second moments). Working memory is
//! C x D x D plus one chunk, whatever N is.
//!
//! `StreamingStats` builds the same statistics batch by batch, for features that arrive from a
//! data loader and are never all in memory: each batch's per-class statistics (two passes over the
//! batch) are merged into the running ones by the pairwise update of Chan, Golub & LeVeque (1979),
//! which adds the scatter of the two means instead of subtracting raw second moments.
use crate::error::{Error, Result};
use crate::features::Labels;
use tch::{Device, Kind, Tensor};

/// Rows converted and multiplied at once.
pub const CHUNK: usize = 8192;

/// The most memory the C x D x D float64 matrices of GDA and NC may take (16 GiB): the peak holds
/// about five of them (scatter, covariances, shifted copy, Cholesky factors, eigen workspace).
/// Checked before allocating, so a file with an absurd feature dimension is an error rather than
/// an allocator failure.
pub const MAX_SCATTER_BYTES: u128 = 16 << 30;

pub struct ClassStats {
    pub counts: Vec<usize>,
    /// C x D.
    pub means: Tensor,
    /// C x D x D.
    pub scatter: Tensor,
}

impl ClassStats {
    /// Statistics of `features` (N x D, any float kind, any device) with `labels`; `what` names
    /// the caller in errors. Every class must have a sample.
    pub fn new(features: &Tensor, labels: &Labels, what: &str, chunk: usize) -> Result<ClassStats> {
        let classes = labels.classes();
        let (n, d) = match features.size()[..] {
            [n, d] if n as usize == labels.len() && d > 0 => (n as usize, d),
            _ => {
                return Err(Error::ShapeMismatch {
                    what: format!("{what} features"),
                    expected: format!("{} x D (one row per label)", labels.len()),
                    got: format!("{:?}", features.size()),
                });
            }
        };
        check_size(what, classes, d)?;
        let by_class = rows_by_class(labels);
        if let Some(c) = by_class.iter().position(|v| v.is_empty()) {
            return Err(Error::invalid(
                format!("{what} labels"),
                format!("class {c} has no samples"),
            ));
        }
        let (means, scatter): (Vec<Tensor>, Vec<Tensor>) = by_class
            .iter()
            .map(|idx| class_moments(features, idx, chunk))
            .unzip();
        debug_assert_eq!(by_class.iter().map(Vec::len).sum::<usize>(), n);
        Ok(ClassStats {
            counts: by_class.iter().map(Vec::len).collect(),
            means: Tensor::stack(&means, 0),
            scatter: Tensor::stack(&scatter, 0),
        })
    }

    pub fn total(&self) -> usize {
        self.counts.iter().sum()
    }
}

/// Refuses feature dimensions whose C x D x D float64 matrices would exceed `MAX_SCATTER_BYTES`.
fn check_size(what: &str, classes: usize, d: i64) -> Result<()> {
    let bytes = 5 * classes as u128 * d as u128 * d as u128 * 8;
    if bytes > MAX_SCATTER_BYTES {
        return Err(Error::invalid(
            format!("{what} features"),
            format!(
                "{classes} classes x {d} x {d} float64 matrices (five sets at the peak) need {:.1} GiB, more than the limit of {} GiB",
                bytes as f64 / (1u64 << 30) as f64,
                MAX_SCATTER_BYTES >> 30
            ),
        ));
    }
    Ok(())
}

/// Row indices of each class 0..C-1 (Labels guarantees 0 <= l < C).
fn rows_by_class(labels: &Labels) -> Vec<Vec<i64>> {
    let mut by_class: Vec<Vec<i64>> = vec![vec![]; labels.classes()];
    for (i, &l) in labels.values().iter().enumerate() {
        by_class[l as usize].push(i as i64);
    }
    by_class
}

/// Mean (D) and centred scatter (D x D) in f64 of the rows `idx` (non-empty) of `features`, in
/// chunks of `chunk` rows: the sum first, then the scatter about the mean.
fn class_moments(features: &Tensor, idx: &[i64], chunk: usize) -> (Tensor, Tensor) {
    let d = features.size()[1];
    let rows = |idx: &[i64]| {
        features
            .index_select(0, &Tensor::from_slice(idx).to_device(features.device()))
            .to_device(Device::Cpu)
            .to_kind(Kind::Double)
    };
    let chunk = chunk.max(1);
    let mut sum = Tensor::zeros([d], (Kind::Double, Device::Cpu));
    for part in idx.chunks(chunk) {
        sum += rows(part).sum_dim_intlist(0, false, Kind::Double);
    }
    let mu = sum / idx.len() as f64;
    let mut s = Tensor::zeros([d, d], (Kind::Double, Device::Cpu));
    for part in idx.chunks(chunk) {
        let centred = rows(part) - &mu;
        s += centred.tr().mm(&centred);
    }
    (mu, s)
}

/// The most classes a `StreamingStats` takes: its class count comes from the caller, not from
/// labels that bound it, so an absurd one is refused before the per-class vectors are allocated.
pub const MAX_STREAMING_CLASSES: usize = 1 << 20;

/// Per-class statistics accumulated batch by batch (see the module doc); `finish` gives the
/// `ClassStats` that GDA and the NC measures read, equal up to rounding to one pass over all rows.
pub struct StreamingStats {
    classes: usize,
    counts: Vec<usize>,
    /// C x D and C x D x D once the first batch has fixed D.
    moments: Option<(Tensor, Tensor)>,
}

impl StreamingStats {
    /// An empty accumulator for labels 0..classes-1 (1 to `MAX_STREAMING_CLASSES`).
    pub fn new(classes: usize) -> Result<StreamingStats> {
        if !(1..=MAX_STREAMING_CLASSES).contains(&classes) {
            return Err(Error::invalid(
                "class statistics",
                format!("{classes} classes; expected 1 to {MAX_STREAMING_CLASSES}"),
            ));
        }
        Ok(StreamingStats {
            classes,
            counts: vec![0; classes],
            moments: None,
        })
    }

    pub fn classes(&self) -> usize {
        self.classes
    }

    pub fn counts(&self) -> &[usize] {
        &self.counts
    }

    /// Adds a batch (B x D, any float kind, any device) with labels below `classes()`; `what`
    /// names the batch in errors. A batch need not hold every class.
    pub fn update(&mut self, features: &Tensor, labels: &Labels, what: &str) -> Result<()> {
        let dim = self.moments.as_ref().map(|(m, _)| m.size()[1]);
        let d = match features.size()[..] {
            [n, d] if n as usize == labels.len() && d > 0 && dim.is_none_or(|e| e == d) => d,
            _ => {
                return Err(Error::ShapeMismatch {
                    what: format!("{what} features"),
                    expected: match dim {
                        Some(e) => format!(
                            "{} x {e} (one row per label, D of the earlier batches)",
                            labels.len()
                        ),
                        None => format!("{} x D (one row per label)", labels.len()),
                    },
                    got: format!("{:?}", features.size()),
                });
            }
        };
        if self.moments.is_none() {
            check_size(what, self.classes, d)?;
        }
        let (c, opts) = (self.classes as i64, (Kind::Double, Device::Cpu));
        let (means, scatter) = self
            .moments
            .get_or_insert_with(|| (Tensor::zeros([c, d], opts), Tensor::zeros([c, d, d], opts)));
        for (c, idx) in rows_by_class(labels).iter().enumerate() {
            if idx.is_empty() {
                continue;
            }
            let (mu_b, s_b) = class_moments(features, idx, CHUNK);
            let (n_a, n_b) = (self.counts[c] as f64, idx.len() as f64);
            let n = n_a + n_b;
            let (mut mu, mut s) = (means.get(c as i64), scatter.get(c as i64));
            let delta = mu_b - &mu;
            // Chan et al.: S = S_a + S_b + delta delta^T n_a n_b / n; mu = mu_a + delta n_b / n.
            s += s_b + delta.outer(&delta) * (n_a * n_b / n);
            mu += delta * (n_b / n);
            self.counts[c] += idx.len();
        }
        Ok(())
    }

    /// The statistics so far; every class must have a sample.
    pub fn finish(&self, what: &str) -> Result<ClassStats> {
        if let Some(c) = self.counts.iter().position(|&k| k == 0) {
            return Err(Error::invalid(
                format!("{what} labels"),
                format!("class {c} has no samples"),
            ));
        }
        let (means, scatter) = self
            .moments
            .as_ref()
            .expect("a class has samples: D is fixed");
        Ok(ClassStats {
            counts: self.counts.clone(),
            means: means.copy(),
            scatter: scatter.copy(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_batches_equal_one_pass() {
        let x = Tensor::arange(200, (Kind::Double, Device::Cpu))
            .view([50, 4])
            .sin()
            * 3.0
            + 1.0;
        let y: Vec<i64> = (0..50).map(|i| (i * 7 % 3) as i64).collect();
        let all = ClassStats::new(&x, &Labels::new(y.clone(), None, "y").unwrap(), "t", 8).unwrap();
        let mut s = StreamingStats::new(3).unwrap();
        // Uneven batches (one of a single row), most without every class.
        for (a, b) in [(0, 1), (1, 11), (11, 12), (12, 50)] {
            let labels = Labels::new(y[a..b].to_vec(), Some(3), "y").unwrap();
            s.update(&x.narrow(0, a as i64, (b - a) as i64), &labels, "batch")
                .unwrap();
        }
        let got = s.finish("t").unwrap();
        assert_eq!(got.counts, all.counts);
        assert!(got.means.allclose(&all.means, 1e-12, 1e-12, false));
        assert!(got.scatter.allclose(&all.scatter, 1e-12, 1e-10, false));
    }

    #[test]
    fn streaming_refuses_a_missing_class_and_a_changed_dimension() {
        let mut s = StreamingStats::new(2).unwrap();
        let x = Tensor::ones([2, 3], (Kind::Float, Device::Cpu));
        s.update(&x, &Labels::new(vec![0, 0], Some(2), "y").unwrap(), "b")
            .unwrap();
        let e = s.finish("S").err().unwrap().to_string();
        assert_eq!(e, "S labels: class 1 has no samples");
        let wide = Tensor::ones([1, 4], (Kind::Float, Device::Cpu));
        let e = s
            .update(&wide, &Labels::new(vec![1], Some(2), "y").unwrap(), "b")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("b features: expected 1 x 3"), "{e}");
    }
}
