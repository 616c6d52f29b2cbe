//! Neural Collapse measures NC1-NC4 (Papyan, Han, Donoho 2020; SPEC 6), in f64, from the class
//! statistics of `stats` (two passes over chunks of rows: class means, then within-class scatter)
//! and one more chunked pass for NC4: working memory depends on C, D and the chunk, not on N.
//! mu_G is the mean of the class means. NC1 = tr(Sigma_W Sigma_B^+) / C with Sigma_B^+ the pseudo-inverse from the
//! rank-(C-1) structure of Sigma_B (see `nc1`); NC2 (equinorm, equiangularity, max-angle) for the centred
//! means M and the classifier rows W; NC3 = || W^T/||W||_F - M/||M||_F ||_F^2; NC4 = fraction of
//! samples whose classifier prediction differs from the nearest class mean.
use crate::error::{Error, Result};
use crate::features::{FeatureKind, Labels};
use crate::stats::ClassStats;
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
    /// Null when undefined (see `nc1_undefined`).
    pub nc1: Option<f64>,
    /// Why NC1 is undefined, when it is: the centred class means span fewer than C - 1 dimensions
    /// (always so when the feature dimension is below C - 1), so Sigma_B has no rank-(C-1)
    /// pseudo-inverse and the trace is meaningless (it came out as -2e14 before this check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nc1_undefined: Option<String>,
    pub nc2: Nc2,
    pub nc3: f64,
    pub nc4: f64,
    /// Samples measured.
    pub n: usize,
    /// Which features were measured, as the caller says (null for features from a file of
    /// unstated kind).
    pub features: Option<FeatureKind>,
}

impl Collapse {
    /// The measures' names (the report's metric names), in this order: NC1, NC2's parts for the
    /// means and for the weights, NC3, NC4.
    pub const MEASURES: [&'static str; 9] = [
        "nc1",
        "nc2_equinorm_means",
        "nc2_equinorm_weights",
        "nc2_equiangularity_means",
        "nc2_equiangularity_weights",
        "nc2_maxangle_means",
        "nc2_maxangle_weights",
        "nc3",
        "nc4",
    ];

    /// Every measure by its name (`MEASURES`' order); NC1 is None where undefined.
    pub fn measures(&self) -> [(&'static str, Option<f64>); 9] {
        let n = &self.nc2;
        let values = [
            self.nc1,
            Some(n.equinorm_means),
            Some(n.equinorm_weights),
            Some(n.equiangularity_means),
            Some(n.equiangularity_weights),
            Some(n.maxangle_means),
            Some(n.maxangle_weights),
            Some(self.nc3),
            Some(self.nc4),
        ];
        std::array::from_fn(|i| (Self::MEASURES[i], values[i]))
    }
}

/// A linear classifier in f64: weights W (C x D) and an optional bias b (C), checked when made:
/// float values, all finite, at least two classes, no all-zero row (its cosines are undefined).
pub struct Classifier {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Classifier {
    /// `what` names the source (a file, a checkpoint) in errors.
    pub fn new(weight: &Tensor, bias: Option<&Tensor>, what: &str) -> Result<Classifier> {
        let float = |t: &Tensor| {
            matches!(
                t.kind(),
                Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16
            )
        };
        let finite = |t: &Tensor| t.isfinite().all().int64_value(&[]) == 1;
        let bad = |p: String| Error::invalid(format!("{what} classifier"), p);
        if weight.dim() != 2 || !float(weight) {
            return Err(bad(format!(
                "weights must be a C x D float matrix, got {:?} of shape {:?}",
                weight.kind(),
                weight.size()
            )));
        }
        let w = weight.to_device(Device::Cpu).to_kind(Kind::Double);
        let c = w.size()[0];
        if c < 2 {
            return Err(bad(format!(
                "{c} class(es); Neural Collapse needs at least 2"
            )));
        }
        if !finite(&w) {
            return Err(bad("weights contain NaN or inf".into()));
        }
        let norms = Vec::<f64>::try_from(w.norm_scalaropt_dim(2, [1], false)).expect("f64 vector");
        if let Some(row) = norms.iter().position(|&n| n == 0.0) {
            return Err(bad(format!(
                "weight row {row} is zero: its angles are undefined"
            )));
        }
        let bias = match bias {
            None => None,
            Some(b) => {
                if b.size() != [c] || !float(b) {
                    return Err(Error::ShapeMismatch {
                        what: format!("{what} classifier bias"),
                        expected: format!("{c} floats (one per class)"),
                        got: format!("{:?} of shape {:?}", b.kind(), b.size()),
                    });
                }
                let b = b.to_device(Device::Cpu).to_kind(Kind::Double);
                if !finite(&b) {
                    return Err(bad("bias contains NaN or inf".into()));
                }
                Some(b)
            }
        };
        Ok(Classifier { weight: w, bias })
    }

    /// The head of a safetensors checkpoint (`fc.weight`, `fc.bias`: ncood's or PyTorch's layout).
    pub fn from_checkpoint(path: &std::path::Path) -> Result<Classifier> {
        let (t, _) = crate::checkpoint::read(path)?;
        let w = t
            .get("fc.weight")
            .ok_or_else(|| Error::bad_file(path, "has no tensor fc.weight"))?;
        Classifier::new(w, t.get("fc.bias"), &path.display().to_string())
    }

    /// Weights and optional bias from .npy files.
    pub fn from_files(
        weight: &std::path::Path,
        bias: Option<&std::path::Path>,
    ) -> Result<Classifier> {
        let w = crate::features::read_matrix(weight)?;
        let b = bias.map(crate::features::read_vector).transpose()?;
        Classifier::new(&w, b.as_ref(), &weight.display().to_string())
    }

    pub fn classes(&self) -> usize {
        self.weight.size()[0] as usize
    }
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

/// Rank of the centred means (C x D), from the eigenvalues of their C x C Gram matrix: an
/// eigenvalue counts when it exceeds 100 C eps times the largest (eigenvalues of G are accurate to
/// about eps ||G||, so smaller ones are rounding noise: they made NC1 come out as -2e14).
fn rank(m_rows: &Tensor) -> usize {
    let g = m_rows.mm(&m_rows.tr());
    let ev = Vec::<f64>::try_from(g.linalg_eigvalsh("L")).expect("f64 vector");
    let max = ev.iter().copied().fold(0.0, f64::max);
    let tol = max * 100.0 * ev.len() as f64 * f64::EPSILON;
    ev.iter().filter(|&&v| v > tol).count()
}

/// NC1-NC4 of features h (N x D), from their class statistics (`stats`, shared with GDA) and one
/// more pass over h in chunks for NC4, with the classifier (which must be C x D).
pub fn from_stats(
    stats: &ClassStats,
    h: &Tensor,
    classifier: &Classifier,
    features: Option<FeatureKind>,
    chunk: usize,
) -> Result<Collapse> {
    check_classifier(stats, classifier)?;
    let n = stats.total();
    let mut disagree = 0;
    for s in (0..n).step_by(chunk.max(1)) {
        let e = (s + chunk.max(1)).min(n);
        disagree += nc4_disagreements(stats, &h.narrow(0, s as i64, (e - s) as i64), classifier);
    }
    from_disagreements(stats, classifier, disagree, features)
}

/// Checks that the classifier is C x D for statistics of C classes in D dimensions.
pub fn check_classifier(stats: &ClassStats, classifier: &Classifier) -> Result<()> {
    let (c, d) = (stats.means.size()[0], stats.means.size()[1]);
    let w = &classifier.weight;
    if w.size() != [c, d] {
        return Err(Error::ShapeMismatch {
            what: "NC classifier weights".into(),
            expected: format!("{c} x {d} (classes x feature dimension)"),
            got: format!("{:?}", w.size()),
        });
    }
    Ok(())
}

/// NC4's count on a chunk of features (B x D; the caller checks D, and the classifier with
/// `check_classifier`): rows whose classifier prediction differs from the nearest class mean.
pub fn nc4_disagreements(stats: &ClassStats, h: &Tensor, classifier: &Classifier) -> usize {
    disagreements(stats, h, &predictions(h, classifier))
}

/// The classifier's predicted class of each row of `h` (B x D).
pub fn predictions(h: &Tensor, classifier: &Classifier) -> Tensor {
    let hb = h.to_device(Device::Cpu).to_kind(Kind::Double);
    let mut logits = hb.mm(&classifier.weight.tr());
    if let Some(b) = &classifier.bias {
        logits += b;
    }
    logits.argmax(1, false)
}

/// How many rows of `h` have a nearest class mean (of `stats`) other than `predicted` (B
/// classes). Apart from `nc4_disagreements`, NC4 of an L2 model's raw features uses it: the model
/// predicts from the normalised features, the nearest mean is the raw one's.
pub fn disagreements(stats: &ClassStats, h: &Tensor, predicted: &Tensor) -> usize {
    let means = &stats.means.to_device(Device::Cpu);
    let hb = h.to_device(Device::Cpu).to_kind(Kind::Double);
    // argmin_c ||h - mu_c||^2 = argmin_c (||mu_c||^2 - 2 h.mu_c): ||h||^2 does not change it.
    let mean_sq = means
        .square()
        .sum_dim_intlist(1, false, Kind::Double)
        .unsqueeze(0); // 1 x C
    let nearest = (mean_sq - hb.mm(&means.tr()) * 2.0).argmin(1, false);
    i64::try_from(predicted.ne_tensor(&nearest).sum(Kind::Int64)).expect("count") as usize
}

/// NC1-NC4 from the class statistics and NC4's count of disagreements over all their samples
/// (from `nc4_disagreements`, for callers that pass over the features themselves, batch by batch).
pub fn from_disagreements(
    stats: &ClassStats,
    classifier: &Classifier,
    disagreements: usize,
    features: Option<FeatureKind>,
) -> Result<Collapse> {
    check_classifier(stats, classifier)?;
    let n = stats.total();
    // The measures are small C x C and C x D computations: on the CPU, wherever the statistics are.
    let means = &stats.means.to_device(Device::Cpu);
    let (c, d) = (means.size()[0], means.size()[1]);
    let w = &classifier.weight;
    let m_rows = means - means.mean_dim(0, true, Kind::Double); // C x D
    let r = rank(&m_rows);
    let nc1_undefined = (r + 1 < c as usize).then(|| {
        format!(
            "the centred class means span {r} dimension(s), fewer than C - 1 = {} (feature dimension {d}), so Sigma_B has no rank-(C-1) pseudo-inverse",
            c - 1
        )
    });
    let sigma_w = stats
        .scatter
        .sum_dim_intlist(0, false, Kind::Double)
        .to_device(Device::Cpu)
        / n as f64; // D x D
    Ok(Collapse {
        nc1: nc1_undefined
            .is_none()
            .then(|| f64_of(&nc1(&sigma_w, &m_rows))),
        nc1_undefined,
        nc2: Nc2 {
            equinorm_means: f64_of(&equinorm(&m_rows)),
            equinorm_weights: f64_of(&equinorm(w)),
            equiangularity_means: f64_of(&equiangularity(&m_rows)),
            equiangularity_weights: f64_of(&equiangularity(w)),
            maxangle_means: f64_of(&maxangle(&m_rows)),
            maxangle_weights: f64_of(&maxangle(w)),
        },
        nc3: f64_of(&nc3(w, &m_rows)),
        nc4: disagreements as f64 / n as f64,
        n,
        features,
    })
}

/// NC1-NC4 of features (N x D) in chunks of `chunk` rows: class statistics (two passes), then the
/// NC4 pass.
pub fn measure(
    h: &Tensor,
    labels: &Labels,
    classifier: &Classifier,
    features: Option<FeatureKind>,
    chunk: usize,
) -> Result<Collapse> {
    let stats = ClassStats::new(h, labels, "NC", chunk)?;
    from_stats(&stats, h, classifier, features, chunk)
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

/// `nc_loss` with its preconditions checked, for callers outside ncood's training loop (which
/// guarantees them): features h (B x D) and weights W (C x D, C >= 2, on h's device), dense,
/// float and finite; one label per row, in 0..C-1, with every class present in the batch (a
/// class mean is undefined otherwise).
pub fn nc_loss_checked(h: &Tensor, labels: &Tensor, w: &Tensor) -> Result<Tensor> {
    crate::features::check_finite(h, "nc_loss features")?;
    crate::features::check_finite(w, "nc_loss weight")?;
    let (b, d) = match h.size()[..] {
        [b, d] if b > 0 && d > 0 => (b, d),
        _ => {
            return Err(Error::ShapeMismatch {
                what: "nc_loss features".into(),
                expected: "a non-empty B x D matrix".into(),
                got: format!("{:?}", h.size()),
            });
        }
    };
    let c = match w.size()[..] {
        [c, wd] if wd == d && c >= 2 && w.device() == h.device() => c,
        _ => {
            return Err(Error::ShapeMismatch {
                what: "nc_loss weight".into(),
                expected: format!("C x {d} with C >= 2, on {:?}", h.device()),
                got: format!("{:?} on {:?}", w.size(), w.device()),
            });
        }
    };
    let y = Labels::from_tensor(labels, Some(c as usize), "nc_loss labels")?;
    if y.len() != b as usize {
        return Err(Error::ShapeMismatch {
            what: "nc_loss labels".into(),
            expected: format!("{b} (one per feature row)"),
            got: y.len().to_string(),
        });
    }
    let mut present = vec![false; c as usize];
    y.values().iter().for_each(|&l| present[l as usize] = true);
    if let Some(k) = present.iter().position(|p| !p) {
        return Err(Error::invalid(
            "nc_loss labels",
            format!("class {k} has no sample in the batch: its mean is undefined"),
        ));
    }
    Ok(nc_loss(h, &y.tensor().to_device(h.device()), w, c))
}
