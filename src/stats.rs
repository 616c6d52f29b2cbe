//! Per-class statistics of features in f64: counts, means and centred scatter matrices
//! sum_i (h_i - mu_c)(h_i - mu_c)^T. The one accumulator both GDA (S_c = scatter_c / (n_c - 1))
//! and Neural Collapse (Sigma_W = sum_c scatter_c / N) read.
//!
//! Two passes over chunks of rows, converted to f64 chunk by chunk: class sums first, then the
//! scatter about the class means (no cancellation from raw second moments). Working memory is
//! C x D x D plus one chunk, whatever N is.
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
        let mut by_class: Vec<Vec<i64>> = vec![vec![]; classes];
        for (i, &l) in labels.values().iter().enumerate() {
            by_class[l as usize].push(i as i64); // Labels guarantees 0 <= l < classes
        }
        if let Some(c) = by_class.iter().position(|v| v.is_empty()) {
            return Err(Error::invalid(
                format!("{what} labels"),
                format!("class {c} has no samples"),
            ));
        }
        let chunk = chunk.max(1);
        let rows = |idx: &[i64]| {
            features
                .index_select(0, &Tensor::from_slice(idx).to_device(features.device()))
                .to_device(Device::Cpu)
                .to_kind(Kind::Double)
        };
        let mut means = Vec::with_capacity(classes);
        let mut scatter = Vec::with_capacity(classes);
        for idx in &by_class {
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
            means.push(mu);
            scatter.push(s);
        }
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
