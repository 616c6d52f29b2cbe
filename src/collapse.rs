//! Neural Collapse measures NC1-NC4 (Papyan, Han, Donoho 2020; SPEC 6), in f64, with two streaming
//! passes over (features, labels) batches: memory depends on D and C, not on N.
//!
//! Pass 1 accumulates per-class counts and sums (class means mu_c, global mean mu_G = mean of the
//! class means). Pass 2 accumulates the within-class scatter sum_i (h_i - mu_c)(h_i - mu_c)^T and
//! the NC4 disagreements. NC1 = tr(Sigma_W Sigma_B^+) / C with Sigma_B^+ the pseudo-inverse from the
//! rank-(C-1) structure of Sigma_B (see `nc1`); NC2 (equinorm, equiangularity, max-angle) for the centred
//! means M and the classifier rows W; NC3 = || W^T/||W||_F - M/||M||_F ||_F^2; NC4 = fraction of
//! samples whose classifier prediction differs from the nearest class mean.
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// NC2's parts, for the centred class means and for the classifier rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Nc2 {
    pub equinorm_means: f64,
    pub equinorm_weights: f64,
    pub equiangularity_means: f64,
    pub equiangularity_weights: f64,
    pub maxangle_means: f64,
    pub maxangle_weights: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Collapse {
    pub nc1: f64,
    pub nc2: Nc2,
    pub nc3: f64,
    pub nc4: f64,
    /// Samples measured.
    pub n: usize,
    /// Which features were measured ("raw" or "normalized"), as the caller says.
    pub features: String,
}

fn f64_of(t: &Tensor) -> f64 {
    f64::try_from(t).expect("scalar")
}

/// std_c ||v_c|| / mean_c ||v_c|| over the rows of `v` (C x D), unbiased std.
pub fn equinorm(v: &Tensor) -> Tensor {
    let norms = v.norm_scalaropt_dim(2, [1], false);
    norms.std(true) / norms.mean(Kind::Double)
}

/// Cosines between distinct rows of `v` (C x D): the C(C-1) off-diagonal entries.
fn off_diagonal_cosines(v: &Tensor) -> Tensor {
    let c = v.size()[0];
    let u = v / v.norm_scalaropt_dim(2, [1], true);
    let cos = u.mm(&u.tr());
    let mask = Tensor::eye(c, (Kind::Bool, v.device())).logical_not();
    cos.masked_select(&mask)
}

/// Unbiased std of the cosines between distinct rows.
pub fn equiangularity(v: &Tensor) -> Tensor {
    off_diagonal_cosines(v).std(true)
}

/// Mean over distinct rows of |cos + 1/(C-1)|.
pub fn maxangle(v: &Tensor) -> Tensor {
    let c = v.size()[0] as f64;
    (off_diagonal_cosines(v) + 1.0 / (c - 1.0))
        .abs()
        .mean(Kind::Double)
}

/// || W^T/||W||_F - M/||M||_F ||_F^2 with W C x D and M the centred means as rows (C x D).
pub fn nc3(w: &Tensor, m_rows: &Tensor) -> Tensor {
    (w / w.norm() - m_rows / m_rows.norm())
        .square()
        .sum(Kind::Double)
}

/// tr(Sigma_W Sigma_B^+) / C with Sigma_B = M^T M / C (M: centred means as rows, C x D).
///
/// The pseudo-inverse is taken through the C x C Gram matrix G = M M^T instead of an eigen- or
/// singular-value decomposition of the D x D Sigma_B: Sigma_B^+ = C M^T (G^+)^2 M, and since the
/// rows of M sum to zero, G's null space is spanned by the ones vector, so G^+ = (G + P)^-1 - P
/// with P = 11^T / C. This equals the rank-(C-1) Moore-Penrose pseudo-inverse whenever the centred
/// means span C-1 dimensions, and unlike an eigendecomposition its gradient stays finite when the
/// singular values coincide, which is exactly what collapse (a simplex ETF) produces.
/// NC1 = tr(M Sigma_W M^T (G^+)^2).
pub fn nc1(sigma_w: &Tensor, m_rows: &Tensor) -> Tensor {
    let c = m_rows.size()[0];
    let opts = (m_rows.kind(), m_rows.device());
    let p = Tensor::full([c, c], 1.0 / c as f64, opts);
    let g = m_rows.mm(&m_rows.tr());
    let g_pinv = Tensor::linalg_solve(&(g + &p), &Tensor::eye(c, opts), true) - &p;
    let k = m_rows.mm(sigma_w).mm(&m_rows.tr());
    k.mm(&g_pinv).mm(&g_pinv).trace()
}

/// Streaming NC measurement: feed every batch to `first`, then every batch again to `second`.
pub struct Accumulator {
    classes: usize,
    counts: Vec<i64>,
    sums: Tensor,            // C x D
    scatter: Option<Tensor>, // D x D, pass 2
    disagree: i64,
    seen_second: i64,
    means: Option<Tensor>,
}

impl Accumulator {
    pub fn new(classes: usize, dim: i64) -> Accumulator {
        Accumulator {
            classes,
            counts: vec![0; classes],
            sums: Tensor::zeros([classes as i64, dim], (Kind::Double, Device::Cpu)),
            scatter: None,
            disagree: 0,
            seen_second: 0,
            means: None,
        }
    }

    fn check(&self, h: &Tensor, labels: &[i64]) -> Result<Tensor> {
        let h = h.to_device(Device::Cpu).to_kind(Kind::Double);
        if h.dim() != 2 || h.size()[1] != self.sums.size()[1] || h.size()[0] != labels.len() as i64
        {
            return Err(Error::ShapeMismatch {
                what: "NC features".into(),
                expected: format!("{} x {}", labels.len(), self.sums.size()[1]),
                got: format!("{:?}", h.size()),
            });
        }
        if let Some(&l) = labels
            .iter()
            .find(|&&l| l < 0 || l as usize >= self.classes)
        {
            return Err(Error::config(
                "NC labels",
                format!("label {l} outside 0..{}", self.classes),
            ));
        }
        Ok(h)
    }

    /// Pass 1: class counts and sums.
    pub fn first(&mut self, h: &Tensor, labels: &[i64]) -> Result<()> {
        let h = self.check(h, labels)?;
        let _ = self.sums.index_add_(0, &Tensor::from_slice(labels), &h);
        for &l in labels {
            self.counts[l as usize] += 1;
        }
        Ok(())
    }

    fn class_means(&mut self) -> Result<Tensor> {
        if let Some(m) = &self.means {
            return Ok(m.shallow_clone());
        }
        if let Some(c) = self.counts.iter().position(|&n| n == 0) {
            return Err(Error::config("NC", format!("class {c} has no samples")));
        }
        let counts = Tensor::from_slice(&self.counts)
            .to_kind(Kind::Double)
            .unsqueeze(1);
        let m = &self.sums / counts;
        self.means = Some(m.shallow_clone());
        Ok(m)
    }

    /// Pass 2: within-class scatter, and NC4 with the classifier (W: C x D, b: C).
    pub fn second(
        &mut self,
        h: &Tensor,
        labels: &[i64],
        w: &Tensor,
        b: Option<&Tensor>,
    ) -> Result<()> {
        let h = self.check(h, labels)?;
        let means = self.class_means()?;
        let centred = &h - means.index_select(0, &Tensor::from_slice(labels));
        let s = centred.tr().mm(&centred);
        self.scatter = Some(match self.scatter.take() {
            Some(acc) => acc + s,
            None => s,
        });
        let w = w.to_device(Device::Cpu).to_kind(Kind::Double);
        let mut logits = h.mm(&w.tr());
        if let Some(b) = b {
            logits += b.to_device(Device::Cpu).to_kind(Kind::Double);
        }
        let pred = logits.argmax(1, false);
        // ||h - mu_c||^2 = ||h||^2 - 2 h.mu_c + ||mu_c||^2; the first term does not change the argmin.
        let dist = means
            .square()
            .sum_dim_intlist(1, false, Kind::Double)
            .unsqueeze(0)
            - h.mm(&means.tr()) * 2.0;
        let nearest = dist.argmin(1, false);
        self.disagree += i64::try_from(pred.ne_tensor(&nearest).sum(Kind::Int64)).expect("count");
        self.seen_second += labels.len() as i64;
        Ok(())
    }

    /// NC1-NC4 from both passes and the classifier weights (C x D).
    pub fn finish(mut self, w: &Tensor, features: &str) -> Result<Collapse> {
        let n: i64 = self.counts.iter().sum();
        if self.seen_second != n {
            return Err(Error::config(
                "NC",
                format!("pass 2 saw {} samples, pass 1 saw {n}", self.seen_second),
            ));
        }
        let means = self.class_means()?;
        let m_rows = &means - means.mean_dim(0, true, Kind::Double); // C x D
        let sigma_w = self.scatter.take().expect("pass 2 ran") / n as f64;
        let w = w.to_device(Device::Cpu).to_kind(Kind::Double);
        Ok(Collapse {
            nc1: f64_of(&nc1(&sigma_w, &m_rows)),
            nc2: Nc2 {
                equinorm_means: f64_of(&equinorm(&m_rows)),
                equinorm_weights: f64_of(&equinorm(&w)),
                equiangularity_means: f64_of(&equiangularity(&m_rows)),
                equiangularity_weights: f64_of(&equiangularity(&w)),
                maxangle_means: f64_of(&maxangle(&m_rows)),
                maxangle_weights: f64_of(&maxangle(&w)),
            },
            nc3: f64_of(&nc3(&w, &m_rows)),
            nc4: self.disagree as f64 / n as f64,
            n: n as usize,
            features: features.to_string(),
        })
    }
}

/// NC1-NC4 of in-memory features (N x D) in chunks of `chunk` rows.
pub fn measure(
    h: &Tensor,
    labels: &[i64],
    classes: usize,
    w: &Tensor,
    b: Option<&Tensor>,
    features: &str,
    chunk: usize,
) -> Result<Collapse> {
    let n = labels.len();
    let mut acc = Accumulator::new(classes, h.size().get(1).copied().unwrap_or(0));
    let chunks: Vec<(usize, usize)> = (0..n)
        .step_by(chunk.max(1))
        .map(|s| (s, (s + chunk).min(n)))
        .collect();
    for &(s, e) in &chunks {
        acc.first(&h.narrow(0, s as i64, (e - s) as i64), &labels[s..e])?;
    }
    for &(s, e) in &chunks {
        acc.second(&h.narrow(0, s as i64, (e - s) as i64), &labels[s..e], w, b)?;
    }
    acc.finish(w, features)
}

/// The NC loss of SPEC 7 on a mini-batch's head-input features h (B x D, every class present
/// with >= 2 samples) and classifier weights W (C x D): NC1_batch + equinorm(M) + equinorm(W) +
/// maxangle(M) + maxangle(W) + NC3, differentiable in h and W; computed in f64, returned in h's kind.
pub fn nc_loss(h: &Tensor, labels: &Tensor, w: &Tensor, classes: i64) -> Tensor {
    let kind = h.kind();
    let (h, w) = (&h.to_kind(Kind::Double), &w.to_kind(Kind::Double));
    let onehot = labels.one_hot(classes).to_kind(Kind::Double); // B x C
    let counts = onehot.sum_dim_intlist(0, false, Kind::Double); // C
    let means = onehot.tr().mm(h) / counts.unsqueeze(1); // C x D
    let m_rows = &means - means.mean_dim(0, true, Kind::Double);
    let centred = h - onehot.mm(&means);
    let sigma_w = centred.tr().mm(&centred) / h.size()[0] as f64;
    let loss = nc1(&sigma_w, &m_rows)
        + equinorm(&m_rows)
        + equinorm(w)
        + maxangle(&m_rows)
        + maxangle(w)
        + nc3(w, &m_rows);
    loss.to_kind(kind)
}
