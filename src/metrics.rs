//! Detection and classification metrics with pinned conventions (SPEC 5, matching sklearn).
//!
//! Inputs are ID-confidence scores (higher = more in-distribution) of ID and OoD samples; this is
//! the one place where they become OoD-ness (the negation), with OoD as the positive class.
//! Everything is O(n log n) by sorting; ties are handled as stated per metric.
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// The detection metrics of one score on one OoD set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// Area under the ROC curve, OoD positive, ties counted as half (sklearn roc_auc_score).
    pub auroc: f64,
    /// Average precision with ID positive and ID-confidence as the score.
    pub aupr_in: f64,
    /// Average precision with OoD positive and OoD-ness as the score (step-wise, sklearn).
    pub aupr_out: f64,
    /// Fraction of ID samples whose OoD-ness is >= the largest threshold that detects >= 95% of
    /// the OoD samples (OoD positive; OpenOOD's convention).
    pub fpr95_ood_positive: f64,
    /// Fraction of OoD samples accepted (ID-confidence >= threshold) at the largest threshold that
    /// accepts >= 95% of the ID samples (ID positive).
    pub fpr95_id_positive: f64,
    /// OoD samples among the N highest ID-confidence scores, N = number of ID samples, ties broken
    /// against the OoD samples.
    pub topn_false_positives: usize,
}

fn check(name: &str, v: &[f64]) -> Result<()> {
    if v.is_empty() {
        return Err(Error::invalid(name, "no samples"));
    }
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(Error::NonFinite {
            what: format!("{name}: score {}", v[i]),
            location: format!("sample {i}"),
        });
    }
    Ok(())
}

/// All detection metrics from ID-confidence scores of ID and OoD samples.
pub fn detection(id_conf: &[f64], ood_conf: &[f64]) -> Result<Detection> {
    check("ID scores", id_conf)?;
    check("OoD scores", ood_conf)?;
    let id_ood: Vec<f64> = id_conf.iter().map(|c| -c).collect();
    let ood_ood: Vec<f64> = ood_conf.iter().map(|c| -c).collect();
    Ok(Detection {
        auroc: auroc(&ood_ood, &id_ood),
        aupr_in: average_precision(id_conf, ood_conf),
        aupr_out: average_precision(&ood_ood, &id_ood),
        fpr95_ood_positive: fpr_at_tpr95(&ood_ood, &id_ood),
        fpr95_id_positive: fpr_at_tpr95(id_conf, ood_conf),
        topn_false_positives: topn_false_positives(id_conf, ood_conf),
    })
}

/// Runs of equal scores, in ascending (or descending) score order, as (positives, negatives) counts.
fn tied_runs(pos: &[f64], neg: &[f64], descending: bool) -> Vec<(usize, usize)> {
    let mut all: Vec<(f64, bool)> = pos
        .iter()
        .map(|&s| (s, true))
        .chain(neg.iter().map(|&s| (s, false)))
        .collect();
    all.sort_by(|a, b| {
        if descending {
            b.0.total_cmp(&a.0)
        } else {
            a.0.total_cmp(&b.0)
        }
    });
    let mut runs: Vec<(usize, usize)> = vec![];
    for (k, &(s, is_pos)) in all.iter().enumerate() {
        if k == 0 || s != all[k - 1].0 {
            runs.push((0, 0));
        }
        let last = runs.last_mut().expect("a run was pushed");
        if is_pos { last.0 += 1 } else { last.1 += 1 }
    }
    runs
}

/// P(pos > neg) + P(pos == neg) / 2 by the rank-sum formula with mid-ranks for ties.
pub fn auroc(pos: &[f64], neg: &[f64]) -> f64 {
    let (mut rank_sum, mut below) = (0.0, 0usize);
    for (p, n) in tied_runs(pos, neg, false) {
        let mid_rank = below as f64 + (p + n + 1) as f64 / 2.0; // ranks below+1 ..= below+p+n
        rank_sum += mid_rank * p as f64;
        below += p + n;
    }
    let (p, n) = (pos.len() as f64, neg.len() as f64);
    (rank_sum - p * (p + 1.0) / 2.0) / (p * n)
}

/// Step-wise average precision, positives scored `pos`: sum over distinct thresholds (descending,
/// tied scores as one step) of (recall gain) x precision, as sklearn's average_precision_score.
pub fn average_precision(pos: &[f64], neg: &[f64]) -> f64 {
    let (mut tp, mut fp, mut ap) = (0usize, 0usize, 0.0);
    for (p, n) in tied_runs(pos, neg, true) {
        (tp, fp) = (tp + p, fp + n);
        ap += p as f64 / pos.len() as f64 * tp as f64 / (tp + fp) as f64;
    }
    ap
}

/// Fraction of negatives scoring >= t, t the k-th largest positive score, k = ceil(0.95 n_pos):
/// the largest threshold with TPR >= 95%.
pub fn fpr_at_tpr95(pos: &[f64], neg: &[f64]) -> f64 {
    let mut p = pos.to_vec();
    p.sort_by(|a, b| b.total_cmp(a));
    let k = (95 * p.len()).div_ceil(100); // exact integer ceil(0.95 n)
    let t = p[k.max(1) - 1];
    neg.iter().filter(|&&s| s >= t).count() as f64 / neg.len() as f64
}

/// OoD samples among the N = n_id highest ID-confidence scores, OoD first among equal scores.
pub fn topn_false_positives(id_conf: &[f64], ood_conf: &[f64]) -> usize {
    let mut all: Vec<(f64, bool)> = id_conf
        .iter()
        .map(|&s| (s, false))
        .chain(ood_conf.iter().map(|&s| (s, true)))
        .collect();
    // Descending score; among ties the OoD (true) sorts first.
    all.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)));
    all[..id_conf.len()].iter().filter(|t| t.1).count()
}

/// Classification accuracy and expected calibration error (15 equal-width confidence bins
/// (k/15, (k+1)/15], |accuracy - mean confidence| weighted by the bin's share of samples).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    pub accuracy: f64,
    pub ece: f64,
}

/// From each sample's predicted-class probability and whether the prediction was right.
pub fn classification(confidence: &[f64], correct: &[bool]) -> Result<Classification> {
    check("confidences", confidence)?;
    if confidence.len() != correct.len() {
        return Err(Error::ShapeMismatch {
            what: "correctness flags".into(),
            expected: confidence.len().to_string(),
            got: correct.len().to_string(),
        });
    }
    const BINS: usize = 15;
    let (mut count, mut hits, mut conf_sum) = ([0usize; BINS], [0usize; BINS], [0f64; BINS]);
    for (&c, &ok) in confidence.iter().zip(correct) {
        let b = ((c * BINS as f64).ceil() as usize).clamp(1, BINS) - 1;
        count[b] += 1;
        hits[b] += ok as usize;
        conf_sum[b] += c;
    }
    let n = confidence.len() as f64;
    let ece = (0..BINS)
        .filter(|&b| count[b] > 0)
        .map(|b| (hits[b] as f64 - conf_sum[b]).abs() / n)
        .sum();
    Ok(Classification {
        accuracy: correct.iter().filter(|&&c| c).count() as f64 / n,
        ece,
    })
}
