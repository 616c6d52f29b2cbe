//! Out-of-distribution scores behind one convention: every score is an ID-confidence per sample
//! (higher = more in-distribution, as in DDU); `metrics` turns them into OoD-ness. GDA is fitted on
//! training features (`gda`); the rest are plain functions of logits (`softmax`) or features.
pub mod gda;
pub mod softmax;

use crate::error::Result;
use crate::metrics::{self, Detection};
use std::collections::BTreeMap;
use tch::{Kind, Tensor};

/// Feature norm ||f||_2 of the raw (pre-normalisation) feature (the follow-up paper's score).
pub fn feature_norm(raw: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(raw.to_kind(Kind::Double).norm_scalaropt_dim(2, [1], false))
        .expect("f64 vector")
}

/// One score's ID-confidences on the ID test set and on each OoD set (same order as the names).
pub struct Scored {
    pub name: String,
    pub id: Vec<f64>,
    pub ood: Vec<Vec<f64>>,
}

/// OoD set -> score -> detection metrics.
pub type DetectionTable = BTreeMap<String, BTreeMap<String, Detection>>;

pub fn detection_table(ood_names: &[String], scores: &[Scored]) -> Result<DetectionTable> {
    let mut table = DetectionTable::new();
    for (k, name) in ood_names.iter().enumerate() {
        let row = table.entry(name.clone()).or_default();
        for s in scores {
            row.insert(s.name.clone(), metrics::detection(&s.id, &s.ood[k])?);
        }
    }
    Ok(table)
}

/// The softmax family on ID and OoD logits at temperature `t` (max logit only once, at t = 1);
/// `suffix` distinguishes temperature-scaled variants in the names.
pub fn softmax_scores(
    id_logits: &Tensor,
    ood_logits: &[Tensor],
    t: f64,
    suffix: &str,
) -> Vec<Scored> {
    let mut out = vec![];
    type ScoreFn<'a> = &'a dyn Fn(&Tensor) -> Vec<f64>;
    let fns: [(&str, ScoreFn); 3] = [
        ("msp", &|l| softmax::msp(l, t)),
        ("neg_entropy", &|l| softmax::neg_entropy(l, t)),
        ("energy", &|l| softmax::energy(l, t)),
    ];
    for (name, f) in fns {
        out.push(Scored {
            name: format!("{name}{suffix}"),
            id: f(id_logits),
            ood: ood_logits.iter().map(f).collect(),
        });
    }
    if suffix.is_empty() {
        out.push(Scored {
            name: "max_logit".into(),
            id: softmax::max_logit(id_logits),
            ood: ood_logits.iter().map(softmax::max_logit).collect(),
        });
    }
    out
}

/// GDA fitted on training features, scored on ID and OoD features.
pub fn gda_scores(
    name: &str,
    train: &Tensor,
    labels: &[i64],
    classes: usize,
    id: &Tensor,
    ood: &[Tensor],
) -> Result<(Scored, gda::GdaInfo)> {
    let g = gda::Gda::fit(train, labels, classes)?;
    let scored = Scored {
        name: name.into(),
        id: g.score(id)?,
        ood: ood.iter().map(|o| g.score(o)).collect::<Result<_>>()?,
    };
    Ok((scored, g.info))
}
