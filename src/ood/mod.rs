//! Out-of-distribution scores behind one convention: every score is an ID-confidence per sample
//! (higher = more in-distribution, as in DDU); `metrics` turns them into OoD-ness. GDA is fitted on
//! training features (`gda`); the rest are plain functions of logits (`softmax`) or features.
pub mod gda;
pub mod softmax;

use crate::error::{Error, Result};
use crate::features::Labels;
use crate::metrics::{self, Detection};
use std::collections::BTreeMap;
use tch::{Kind, Tensor};

/// The scores ncood computes, named as results spell them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ScoreName {
    /// GDA on features from files (`ncood score`).
    Gda,
    /// GDA on a run's raw features f.
    GdaRaw,
    /// GDA on a run's L2-normalised features f / ||f||.
    GdaNormalized,
    Msp,
    MaxLogit,
    NegEntropy,
    Energy,
    /// The softmax family at the validation-fitted temperature.
    MspT,
    NegEntropyT,
    EnergyT,
    /// ||f||_2 of the raw feature.
    FeatureNorm,
}

impl ScoreName {
    pub const ALL: [ScoreName; 11] = [
        ScoreName::Gda,
        ScoreName::GdaRaw,
        ScoreName::GdaNormalized,
        ScoreName::Msp,
        ScoreName::MaxLogit,
        ScoreName::NegEntropy,
        ScoreName::Energy,
        ScoreName::MspT,
        ScoreName::NegEntropyT,
        ScoreName::EnergyT,
        ScoreName::FeatureNorm,
    ];
    /// Whether this is one of the softmax family: functions of the logits, at temperature 1 and
    /// at the fitted one.
    pub const fn is_softmax(self) -> bool {
        use ScoreName::*;
        matches!(
            self,
            Msp | MaxLogit | NegEntropy | Energy | MspT | NegEntropyT | EnergyT
        )
    }

    pub const fn name(self) -> &'static str {
        match self {
            ScoreName::Gda => "gda",
            ScoreName::GdaRaw => "gda_raw",
            ScoreName::GdaNormalized => "gda_normalized",
            ScoreName::Msp => "msp",
            ScoreName::MaxLogit => "max_logit",
            ScoreName::NegEntropy => "neg_entropy",
            ScoreName::Energy => "energy",
            ScoreName::MspT => "msp_t",
            ScoreName::NegEntropyT => "neg_entropy_t",
            ScoreName::EnergyT => "energy_t",
            ScoreName::FeatureNorm => "feature_norm",
        }
    }
}

impl std::str::FromStr for ScoreName {
    type Err = Error;
    fn from_str(s: &str) -> Result<ScoreName> {
        ScoreName::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| Error::config("score", format!("unknown score {s}")))
    }
}

impl std::fmt::Display for ScoreName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

crate::serde_by_name!(ScoreName);

/// Feature norm ||f||_2 of the raw (pre-normalisation) feature (the follow-up paper's score).
pub fn feature_norm(raw: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(raw.to_kind(Kind::Double).norm_scalaropt_dim(2, [1], false))
        .expect("f64 vector")
}

/// One score's ID-confidences on the ID test set and on each OoD set (same order as the names).
pub struct Scored {
    pub name: ScoreName,
    pub id: Vec<f64>,
    pub ood: Vec<Vec<f64>>,
}

/// OoD set -> score -> detection metrics.
pub type DetectionTable = BTreeMap<String, BTreeMap<ScoreName, Detection>>;

pub fn detection_table(ood_names: &[String], scores: &[Scored]) -> Result<DetectionTable> {
    let mut table = DetectionTable::new();
    for (k, name) in ood_names.iter().enumerate() {
        let row = table.entry(name.clone()).or_default();
        for s in scores {
            row.insert(s.name, metrics::detection(&s.id, &s.ood[k])?);
        }
    }
    Ok(table)
}

/// The softmax family on ID and OoD logits: at T = 1 with max logit (`temperature` None), or the
/// `_t` variants at the fitted temperature.
pub fn softmax_scores(
    id_logits: &Tensor,
    ood_logits: &[Tensor],
    temperature: Option<f64>,
) -> Vec<Scored> {
    let t = temperature.unwrap_or(1.0);
    type ScoreFn<'a> = &'a dyn Fn(&Tensor) -> Vec<f64>;
    let msp = |l: &Tensor| softmax::msp(l, t);
    let neg_entropy = |l: &Tensor| softmax::neg_entropy(l, t);
    let energy = |l: &Tensor| softmax::energy(l, t);
    let fns: Vec<(ScoreName, ScoreFn)> = match temperature {
        None => vec![
            (ScoreName::Msp, &msp),
            (ScoreName::NegEntropy, &neg_entropy),
            (ScoreName::Energy, &energy),
            (ScoreName::MaxLogit, &softmax::max_logit),
        ],
        Some(_) => vec![
            (ScoreName::MspT, &msp),
            (ScoreName::NegEntropyT, &neg_entropy),
            (ScoreName::EnergyT, &energy),
        ],
    };
    fns.into_iter()
        .map(|(name, f)| Scored {
            name,
            id: f(id_logits),
            ood: ood_logits.iter().map(f).collect(),
        })
        .collect()
}

/// GDA fitted on training features, scored on ID and OoD features.
pub fn gda_scores(
    name: ScoreName,
    train: &Tensor,
    labels: &Labels,
    id: &Tensor,
    ood: &[Tensor],
) -> Result<(Scored, gda::GdaInfo)> {
    let g = gda::Gda::fit(train, labels)?;
    let scored = Scored {
        name,
        id: g.score(id)?,
        ood: ood.iter().map(|o| g.score(o)).collect::<Result<_>>()?,
    };
    Ok((scored, g.info))
}
