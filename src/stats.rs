//! Per-class statistics of features in f64: counts, means and centred scatter matrices
//! sum_i (h_i - mu_c)(h_i - mu_c)^T. The one accumulator both GDA (S_c = scatter_c / (n_c - 1))
//! and Neural Collapse (Sigma_W = sum_c scatter_c / N) read. Two higher moments about the mean,
//! sum_i ||h_i - mu_c||^2 (h_i - mu_c) and sum_i ||h_i - mu_c||^4 (O(D) per row), are kept
//! beside them because the Ledoit-Wolf shrinkage coefficient of GDA needs the fourth one, and
//! moving a fourth moment to a new mean needs the third: so every statistic streams and merges.
//!
//! Two passes over chunks of rows, converted to f64 chunk by chunk: class sums first, then the
//! moments about the class means (no cancellation from raw second moments). Working memory is
//! C x D x D plus one chunk, whatever N is. Everything is computed on the features' device (the
//! CPU or a CUDA device, both of which have f64).
//!
//! `StreamingStats` builds the same statistics batch by batch, for features that arrive from a
//! data loader and are never all in memory: each batch's per-class statistics (two passes over the
//! batch) are merged into the running ones by the pairwise update of Chan, Golub & LeVeque (1979),
//! which adds the scatter of the two means instead of subtracting raw second moments; two
//! accumulators (e.g. of two processes) merge the same way.
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

/// The moments of K groups of rows about their own means (K = C classes, or a subset of them).
pub struct Moments {
    /// K x D.
    pub means: Tensor,
    /// K x D x D: sum_i y_i y_i^T with y_i = h_i - mu.
    pub scatter: Tensor,
    /// K x D: sum_i ||y_i||^2 y_i.
    pub norm3: Tensor,
    /// K: sum_i ||y_i||^4.
    pub norm4: Tensor,
}

impl Moments {
    fn zeros(k: i64, d: i64, device: Device) -> Moments {
        let opts = (Kind::Double, device);
        Moments {
            means: Tensor::zeros([k, d], opts),
            scatter: Tensor::zeros([k, d, d], opts),
            norm3: Tensor::zeros([k, d], opts),
            norm4: Tensor::zeros([k], opts),
        }
    }

    fn to_device(&self, device: Device) -> Moments {
        Moments {
            means: self.means.to_device(device),
            scatter: self.scatter.to_device(device),
            norm3: self.norm3.to_device(device),
            norm4: self.norm4.to_device(device),
        }
    }

    fn copy(&self) -> Moments {
        Moments {
            means: self.means.copy(),
            scatter: self.scatter.copy(),
            norm3: self.norm3.copy(),
            norm4: self.norm4.copy(),
        }
    }

    fn index_select(&self, idx: &Tensor) -> Moments {
        Moments {
            means: self.means.index_select(0, idx),
            scatter: self.scatter.index_select(0, idx),
            norm3: self.norm3.index_select(0, idx),
            norm4: self.norm4.index_select(0, idx),
        }
    }

    /// The moments of `a` (`n_a` rows per group) and `b` (`n_b`) together: Chan et al.'s update
    /// mu = mu_a + delta n_b / n, S = S_a + S_b + delta delta^T n_a n_b / n (delta = mu_b - mu_a),
    /// and each side's higher moments moved to the common mean by the binomial expansion of
    /// ||y - s||^2 (s its shift, sum_i y_i = 0): T' = T - 2 S s - (tr S + n ||s||^2) s and
    /// Q' = Q - 4 s.T + 2 ||s||^2 tr S + 4 s^T S s + n ||s||^4. Groups empty on both sides stay 0.
    fn combine(a: &Moments, n_a: &[f64], b: &Moments, n_b: &[f64]) -> Moments {
        let dev = a.means.device();
        let vec = |v: Vec<f64>| Tensor::from_slice(&v).to_device(dev);
        let n: Vec<f64> = n_a.iter().zip(n_b).map(|(x, y)| x + y).collect();
        let share = |v: &[f64]| vec(v.iter().zip(&n).map(|(x, t)| x / t.max(1.0)).collect());
        let (w_a, w_b) = (share(n_b), share(n_a)); // mu = mu_a + w_a delta = mu_b - w_b delta
        let delta = &b.means - &a.means; // K x D
        let shift = |m: &Moments, s: &Tensor, count: &[f64]| {
            let sq = s.square().sum_dim_intlist(1, false, Kind::Double); // K
            let tr = m
                .scatter
                .diagonal(0, 1, 2)
                .sum_dim_intlist(1, false, Kind::Double); // K
            let ss = m.scatter.bmm(&s.unsqueeze(2)).squeeze_dim(2); // K x D
            let count = vec(count.to_vec());
            let norm3 = &m.norm3 - &ss * 2.0 - s * (&tr + &count * &sq).unsqueeze(1);
            let norm4 = &m.norm4 - (s * &m.norm3).sum_dim_intlist(1, false, Kind::Double) * 4.0
                + &sq * &tr * 2.0
                + (s * &ss).sum_dim_intlist(1, false, Kind::Double) * 4.0
                + count * sq.square();
            (norm3, norm4)
        };
        let (s_a, s_b) = (&delta * w_a.unsqueeze(1), &delta * -w_b.unsqueeze(1));
        let (t_a, q_a) = shift(a, &s_a, n_a);
        let (t_b, q_b) = shift(b, &s_b, n_b);
        let cross = vec(n_a
            .iter()
            .zip(n_b)
            .zip(&n)
            .map(|((x, y), t)| x * y / t.max(1.0))
            .collect());
        Moments {
            means: &a.means + s_a,
            scatter: &a.scatter
                + &b.scatter
                + delta.unsqueeze(2) * delta.unsqueeze(1) * cross.view([-1, 1, 1]),
            norm3: t_a + t_b,
            norm4: q_a + q_b,
        }
    }
}

pub struct ClassStats {
    pub counts: Vec<usize>,
    /// C x D.
    pub means: Tensor,
    /// C x D x D.
    pub scatter: Tensor,
    /// C x D and C: the third and fourth moments of `Moments`.
    pub norm3: Tensor,
    pub norm4: Tensor,
}

impl ClassStats {
    /// Statistics of `features` (N x D, any float kind, on the CPU or a CUDA device; the
    /// statistics stay there) with `labels`; `what` names the caller in errors. Every class must
    /// have a sample.
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
        debug_assert_eq!(by_class.iter().map(Vec::len).sum::<usize>(), n);
        let m = moments_by_class(features, &by_class, chunk);
        Ok(ClassStats {
            counts: by_class.iter().map(Vec::len).collect(),
            means: m.means,
            scatter: m.scatter,
            norm3: m.norm3,
            norm4: m.norm4,
        })
    }

    pub fn total(&self) -> usize {
        self.counts.iter().sum()
    }

    /// The statistics on `device`.
    pub fn to_device(&self, device: Device) -> ClassStats {
        ClassStats {
            counts: self.counts.clone(),
            means: self.means.to_device(device),
            scatter: self.scatter.to_device(device),
            norm3: self.norm3.to_device(device),
            norm4: self.norm4.to_device(device),
        }
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

/// The moments (f64, on the features' device) of the groups of rows `groups` (each non-empty)
/// of `features`, in chunks of `chunk` rows: the sums first, then the moments about the means.
fn moments_by_class(features: &Tensor, groups: &[Vec<i64>], chunk: usize) -> Moments {
    let (d, dev) = (features.size()[1], features.device());
    let rows = |idx: &[i64]| {
        features
            .index_select(0, &Tensor::from_slice(idx).to_device(dev))
            .to_kind(Kind::Double)
    };
    let chunk = chunk.max(1);
    let m = Moments::zeros(groups.len() as i64, d, dev);
    for (k, idx) in groups.iter().enumerate() {
        let k = k as i64;
        let mut sum = Tensor::zeros([d], (Kind::Double, dev));
        for part in idx.chunks(chunk) {
            sum += rows(part).sum_dim_intlist(0, false, Kind::Double);
        }
        let mu = sum / idx.len() as f64;
        for part in idx.chunks(chunk) {
            let y = rows(part) - &mu; // B x D
            let sq = y.square().sum_dim_intlist(1, true, Kind::Double); // B x 1
            let mut s = m.scatter.get(k);
            s += y.tr().mm(&y);
            let mut t = m.norm3.get(k);
            t += (&y * &sq).sum_dim_intlist(0, false, Kind::Double);
            let mut q = m.norm4.get(k);
            q += sq.square().sum(Kind::Double);
        }
        let mut row = m.means.get(k);
        row.copy_(&mu);
    }
    m
}

/// The most classes a `StreamingStats` takes: its class count comes from the caller, not from
/// labels that bound it, so an absurd one is refused before the per-class vectors are allocated.
pub const MAX_STREAMING_CLASSES: usize = 1 << 20;

/// Per-class statistics accumulated batch by batch (see the module doc); `finish` gives the
/// `ClassStats` that GDA and the NC measures read, equal up to rounding to one pass over all rows.
pub struct StreamingStats {
    classes: usize,
    counts: Vec<usize>,
    /// C-leading, once the first batch has fixed D (and the device: that of the first batch).
    moments: Option<Moments>,
}

fn check_classes(classes: usize) -> Result<()> {
    if !(1..=MAX_STREAMING_CLASSES).contains(&classes) {
        return Err(Error::invalid(
            "class statistics",
            format!("{classes} classes; expected 1 to {MAX_STREAMING_CLASSES}"),
        ));
    }
    Ok(())
}

impl StreamingStats {
    /// An empty accumulator for labels 0..classes-1 (1 to `MAX_STREAMING_CLASSES`).
    pub fn new(classes: usize) -> Result<StreamingStats> {
        check_classes(classes)?;
        Ok(StreamingStats {
            classes,
            counts: vec![0; classes],
            moments: None,
        })
    }

    /// An accumulator holding saved statistics: `counts` per class and, once a batch has been
    /// added, its moments (C-leading, float64, finite, zero for classes without samples);
    /// `what` names the source in errors.
    pub fn from_parts(
        counts: Vec<usize>,
        moments: Option<Moments>,
        what: &str,
    ) -> Result<StreamingStats> {
        check_classes(counts.len())?;
        let c = counts.len() as i64;
        // One device for all (a hand-made state may mix them): the means'.
        let moments = moments.map(|m| m.to_device(m.means.device()));
        if let Some(m) = &moments {
            let d = m.means.size().get(1).copied().unwrap_or(0);
            let shapes = [
                ("means", &m.means, vec![c, d]),
                ("scatter", &m.scatter, vec![c, d, d]),
                ("norm3", &m.norm3, vec![c, d]),
                ("norm4", &m.norm4, vec![c]),
            ];
            for (name, t, want) in shapes {
                if t.size() != want || t.kind() != Kind::Double || d == 0 {
                    return Err(Error::ShapeMismatch {
                        what: format!("{what} {name}"),
                        expected: format!("float64 of shape {want:?} (C = {c} classes, D > 0)"),
                        got: format!("{:?} of shape {:?}", t.kind(), t.size()),
                    });
                }
                crate::features::check_finite(t, &format!("{what} {name}"))?;
            }
            check_size(what, counts.len(), d)?;
            let empty: Vec<i64> = (0..c).filter(|&k| counts[k as usize] == 0).collect();
            let idx = Tensor::from_slice(&empty).to_device(m.means.device());
            let junk = m.index_select(&idx);
            let nonzero = [&junk.means, &junk.scatter, &junk.norm3, &junk.norm4]
                .iter()
                .any(|t| t.abs().sum(Kind::Double).double_value(&[]) != 0.0);
            if nonzero {
                return Err(Error::invalid(
                    what,
                    format!("classes {empty:?} have no samples but nonzero moments"),
                ));
            }
        } else if let Some(k) = counts.iter().position(|&n| n > 0) {
            return Err(Error::invalid(
                what,
                format!("class {k} has {} samples but no moments", counts[k]),
            ));
        }
        Ok(StreamingStats {
            classes: counts.len(),
            counts,
            moments,
        })
    }

    pub fn classes(&self) -> usize {
        self.classes
    }

    pub fn counts(&self) -> &[usize] {
        &self.counts
    }

    /// An independent copy (to merge an accumulator into itself, or to keep a snapshot).
    pub fn copy(&self) -> StreamingStats {
        StreamingStats {
            classes: self.classes,
            counts: self.counts.clone(),
            moments: self.moments.as_ref().map(Moments::copy),
        }
    }

    /// The moments so far (C-leading), None before the first batch.
    pub fn moments(&self) -> Option<&Moments> {
        self.moments.as_ref()
    }

    /// Room for labels up to `classes - 1` (new classes start empty), for a caller that learns
    /// the class count from the batches themselves.
    pub fn grow(&mut self, classes: usize) -> Result<()> {
        check_classes(classes)?;
        if classes <= self.classes {
            return Ok(());
        }
        let extra = (classes - self.classes) as i64;
        if let Some(m) = &mut self.moments {
            let d = m.means.size()[1];
            check_size("class statistics", classes, d)?;
            let z = Moments::zeros(extra, d, m.means.device());
            *m = Moments {
                means: Tensor::cat(&[&m.means, &z.means], 0),
                scatter: Tensor::cat(&[&m.scatter, &z.scatter], 0),
                norm3: Tensor::cat(&[&m.norm3, &z.norm3], 0),
                norm4: Tensor::cat(&[&m.norm4, &z.norm4], 0),
            };
        }
        self.counts.resize(classes, 0);
        self.classes = classes;
        Ok(())
    }

    /// Checks a batch's feature width against the accumulator's D (fixed by the first batch).
    fn check_width(&self, what: &str, rows: usize, d: i64) -> Result<()> {
        let dim = self.moments.as_ref().map(|m| m.means.size()[1]);
        if d > 0 && dim.is_none_or(|e| e == d) {
            return Ok(());
        }
        Err(Error::ShapeMismatch {
            what: format!("{what} features"),
            expected: match dim {
                Some(e) => format!("{rows} x {e} (one row per label, D of the earlier batches)"),
                None => format!("{rows} x D (one row per label)"),
            },
            got: format!("{rows} x {d}"),
        })
    }

    /// Adds a batch (B x D, any float kind, on the CPU or a CUDA device) with labels below
    /// `classes()`; `what` names the batch in errors. A batch need not hold every class. The
    /// statistics live on the device of the first batch; later ones are moved there.
    pub fn update(&mut self, features: &Tensor, labels: &Labels, what: &str) -> Result<()> {
        let d = match features.size()[..] {
            [n, d] if n as usize == labels.len() => d,
            _ => {
                return Err(Error::ShapeMismatch {
                    what: format!("{what} features"),
                    expected: format!("{} x D (one row per label)", labels.len()),
                    got: format!("{:?}", features.size()),
                });
            }
        };
        self.check_width(what, labels.len(), d)?;
        if self.moments.is_none() {
            check_size(what, self.classes, d)?;
        }
        let by_class = rows_by_class(labels);
        let present: Vec<usize> = (0..by_class.len())
            .filter(|&c| !by_class[c].is_empty())
            .collect();
        let groups: Vec<Vec<i64>> = present.iter().map(|&c| by_class[c].clone()).collect();
        let b_counts: Vec<f64> = groups.iter().map(|g| g.len() as f64).collect();
        let batch = moments_by_class(features, &groups, CHUNK);
        let (c, dev) = (self.classes as i64, features.device());
        let all = self
            .moments
            .get_or_insert_with(|| Moments::zeros(c, d, dev));
        let idx = Tensor::from_slice(&present.iter().map(|&k| k as i64).collect::<Vec<_>>())
            .to_device(all.means.device());
        let a_counts: Vec<f64> = present.iter().map(|&k| self.counts[k] as f64).collect();
        let merged = Moments::combine(
            &all.index_select(&idx),
            &a_counts,
            &batch.to_device(all.means.device()),
            &b_counts,
        );
        all.means = all.means.index_copy(0, &idx, &merged.means);
        all.scatter = all.scatter.index_copy(0, &idx, &merged.scatter);
        all.norm3 = all.norm3.index_copy(0, &idx, &merged.norm3);
        all.norm4 = all.norm4.index_copy(0, &idx, &merged.norm4);
        for (k, g) in present.iter().zip(&groups) {
            self.counts[*k] += g.len();
        }
        Ok(())
    }

    /// Adds every sample of `other` (same classes; same D once both have samples), as if its
    /// batches had been added here: how statistics of several processes become one.
    pub fn merge(&mut self, other: &StreamingStats, what: &str) -> Result<()> {
        if other.classes != self.classes {
            return Err(Error::ShapeMismatch {
                what: what.into(),
                expected: format!("statistics of {} classes", self.classes),
                got: format!("{} classes", other.classes),
            });
        }
        let Some(b) = &other.moments else {
            return Ok(());
        };
        self.check_width(what, other.counts.iter().sum(), b.means.size()[1])?;
        let a_counts: Vec<f64> = self.counts.iter().map(|&n| n as f64).collect();
        let b_counts: Vec<f64> = other.counts.iter().map(|&n| n as f64).collect();
        self.moments = Some(match &self.moments {
            None => b.copy(),
            Some(a) => Moments::combine(a, &a_counts, &b.to_device(a.means.device()), &b_counts),
        });
        for (n, m) in self.counts.iter_mut().zip(&other.counts) {
            *n += m;
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
        let m = self
            .moments
            .as_ref()
            .expect("a class has samples: D is fixed");
        Ok(ClassStats {
            counts: self.counts.clone(),
            means: m.means.copy(),
            scatter: m.scatter.copy(),
            norm3: m.norm3.copy(),
            norm4: m.norm4.copy(),
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
        assert!(got.norm3.allclose(&all.norm3, 1e-12, 1e-9, false));
        assert!(got.norm4.allclose(&all.norm4, 1e-12, 1e-9, false));
        // The higher moments against their definition, class by class.
        for c in 0..3 {
            let rows: Vec<i64> = (0..50).filter(|&i| y[i as usize] == c).collect();
            let xc = x.index_select(0, &Tensor::from_slice(&rows));
            let yc = &xc - xc.mean_dim(0, true, Kind::Double);
            let sq = yc.square().sum_dim_intlist(1, true, Kind::Double);
            let t3 = (&yc * &sq).sum_dim_intlist(0, false, Kind::Double);
            let q4 = sq.square().sum(Kind::Double);
            assert!(all.norm3.get(c).allclose(&t3, 1e-12, 1e-9, false));
            assert!(all.norm4.get(c).allclose(&q4, 1e-12, 1e-9, false));
        }
    }

    #[test]
    fn merged_accumulators_equal_one_pass_and_grow_keeps_them() {
        let x = Tensor::arange(120, (Kind::Double, Device::Cpu))
            .view([40, 3])
            .cos()
            * 2.0;
        let y: Vec<i64> = (0..40).map(|i| (i * 5 % 4) as i64).collect();
        let lab = |a: usize, b: usize| Labels::new(y[a..b].to_vec(), Some(4), "y").unwrap();
        let mut one = StreamingStats::new(4).unwrap();
        one.update(&x, &lab(0, 40), "all").unwrap();
        // Two shards (the second without class 0 in its first batch), and an empty third.
        let (mut a, mut b) = (
            StreamingStats::new(4).unwrap(),
            StreamingStats::new(4).unwrap(),
        );
        a.update(&x.narrow(0, 0, 13), &lab(0, 13), "a").unwrap();
        b.update(&x.narrow(0, 13, 2), &lab(13, 15), "b").unwrap();
        b.update(&x.narrow(0, 15, 25), &lab(15, 40), "b").unwrap();
        a.merge(&b, "b").unwrap();
        a.merge(&StreamingStats::new(4).unwrap(), "empty").unwrap();
        let (got, want) = (a.finish("a").unwrap(), one.finish("one").unwrap());
        assert_eq!(got.counts, want.counts);
        for (g, w) in [
            (&got.means, &want.means),
            (&got.scatter, &want.scatter),
            (&got.norm3, &want.norm3),
            (&got.norm4, &want.norm4),
        ] {
            assert!(g.allclose(w, 1e-12, 1e-9, false), "{g} vs {w}");
        }
        let e = a
            .merge(&StreamingStats::new(3).unwrap(), "other")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "other: expected statistics of 4 classes, got 3 classes"
        );
        a.grow(6).unwrap();
        assert_eq!(a.counts(), &[10, 10, 10, 10, 0, 0]);
        assert_eq!(a.moments().unwrap().scatter.size(), [6, 3, 3]);
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
