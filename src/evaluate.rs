//! The OoD evaluation of a trained run or of feature files: every score, every metric, one
//! result (JSON) and its readable table (markdown).
use crate::data::loader::Normalizer;
use crate::data::{DataSource, ood_set};
use crate::error::{Error, Result};
use crate::features::FeatureSet;
use crate::metrics::{self, Classification};
use crate::ood::{self, DetectionTable, Scored, gda::GdaInfo, softmax};
use crate::train::{Net, RunData, version};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// ID classification quality on the test set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdResult {
    pub n: usize,
    pub accuracy: f64,
    /// ECE (15 bins) of the softmax at T = 1.
    pub ece: f64,
    /// ECE after temperature scaling, when a temperature was fitted.
    pub ece_temperature_scaled: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalResult {
    pub ncood_version: String,
    pub git_commit: String,
    /// Run directory and checkpoint epoch (absent for `ncood score`).
    pub run: Option<String>,
    pub epoch: Option<usize>,
    /// Which features each GDA score was fitted on, and what the fit needed.
    pub gda: BTreeMap<String, GdaInfo>,
    /// The temperature of the `*_t` scores (fitted on validation NLL), if any.
    pub temperature: Option<f64>,
    pub id: Option<IdResult>,
    pub ood_sizes: BTreeMap<String, usize>,
    /// OoD set -> score -> metrics (auroc, aupr_in, aupr_out, fpr95_ood_positive,
    /// fpr95_id_positive, topn_false_positives).
    pub ood: DetectionTable,
}

/// Accuracy and ECE from logits and labels at temperature `t`.
pub fn classify(logits: &Tensor, labels: &Tensor, t: f64) -> Result<Classification> {
    let p = (logits.to_kind(Kind::Double) / t).softmax(1, Kind::Double);
    let (conf, pred) = p.max_dim(1, false);
    let correct: Vec<bool> = Vec::<bool>::try_from(pred.eq_tensor(labels)).expect("bool vector");
    metrics::classification(&Vec::<f64>::try_from(conf).expect("f64 vector"), &correct)
}

fn result(
    scores: &[Scored],
    names: &[String],
    sizes: Vec<usize>,
    gda: BTreeMap<String, GdaInfo>,
) -> Result<EvalResult> {
    let (v, c) = version();
    Ok(EvalResult {
        ncood_version: v,
        git_commit: c,
        run: None,
        epoch: None,
        gda,
        temperature: None,
        id: None,
        ood_sizes: names.iter().cloned().zip(sizes).collect(),
        ood: ood::detection_table(names, scores)?,
    })
}

/// Post-hoc scoring of feature files (`ncood score`): GDA on the given features, and the softmax
/// family when logits are given; ID accuracy and ECE when ID logits and labels are given.
pub struct FileInputs {
    pub train_features: Tensor,
    pub train_labels: Vec<i64>,
    pub id_features: Tensor,
    pub ood: Vec<(String, Tensor)>,
    pub id_logits: Option<Tensor>,
    pub ood_logits: Vec<Tensor>,
    pub id_labels: Option<Tensor>,
}

pub fn score_files(inp: &FileInputs) -> Result<EvalResult> {
    let classes = inp.train_labels.iter().copied().max().unwrap_or(-1) + 1;
    let names: Vec<String> = inp.ood.iter().map(|(n, _)| n.clone()).collect();
    let oods: Vec<Tensor> = inp.ood.iter().map(|(_, t)| t.shallow_clone()).collect();
    let (g, info) = ood::gda_scores(
        "gda",
        &inp.train_features,
        &inp.train_labels,
        classes as usize,
        &inp.id_features,
        &oods,
    )?;
    let mut scores = vec![g];
    if let Some(id_logits) = &inp.id_logits {
        if inp.ood_logits.len() != oods.len() {
            return Err(Error::config(
                "--ood-logits",
                format!(
                    "{} files for {} OoD feature files",
                    inp.ood_logits.len(),
                    oods.len()
                ),
            ));
        }
        scores.extend(ood::softmax_scores(id_logits, &inp.ood_logits, 1.0, ""));
    }
    let mut r = result(
        &scores,
        &names,
        oods.iter().map(|o| o.size()[0] as usize).collect(),
        [("gda".to_string(), info)].into(),
    )?;
    if let (Some(l), Some(y)) = (&inp.id_logits, &inp.id_labels) {
        let c = classify(l, y, 1.0)?;
        r.id = Some(IdResult {
            n: y.size()[0] as usize,
            accuracy: c.accuracy,
            ece: c.ece,
            ece_temperature_scaled: None,
        });
    }
    Ok(r)
}

/// The whole evaluation of a run's checkpoint (`ncood eval`): features of the train, validation
/// and test splits and of every OoD set, GDA on raw and on normalised features, the softmax family
/// at T = 1 and at the validation-fitted T, feature norm, all metrics, ID accuracy and ECE.
pub fn eval_run(
    dir: &Path,
    epoch: usize,
    ood_names: &[String],
    device: Device,
) -> Result<EvalResult> {
    let (cfg, net, epoch) = Net::load(dir, epoch, device)?;
    let data = RunData::load(&cfg)?;
    let norm = Normalizer::new(&data.normalization, device);
    let src = DataSource {
        root: cfg.data.root.clone(),
        verify: cfg.data.verify,
    };
    let batch = cfg.data.eval_batch_size;
    let feats = |d: &crate::data::Dataset| FeatureSet::extract(&net.model, d, &norm, batch);
    let train = feats(&data.train);
    let test = feats(&data.test);
    let oods: Vec<FeatureSet> = ood_names
        .iter()
        .map(|n| ood_set(&src, n, &data.test, &data.normalization, cfg.seed).map(|d| feats(&d)))
        .collect::<Result<_>>()?;
    let labels = Vec::<i64>::try_from(&train.labels).expect("i64 labels");
    let classes = data.train.info.classes;
    let mut scores = vec![];
    let mut gda = BTreeMap::new();
    for (name, pick) in [("gda_raw", 0), ("gda_normalized", 1)] {
        let f = |s: &FeatureSet| {
            if pick == 0 {
                s.raw.shallow_clone()
            } else {
                s.normalized.shallow_clone()
            }
        };
        let (s, info) = ood::gda_scores(
            name,
            &f(&train),
            &labels,
            classes,
            &f(&test),
            &oods.iter().map(f).collect::<Vec<_>>(),
        )?;
        scores.push(s);
        gda.insert(name.to_string(), info);
    }
    let ood_logits: Vec<Tensor> = oods.iter().map(|o| o.logits.shallow_clone()).collect();
    scores.extend(ood::softmax_scores(&test.logits, &ood_logits, 1.0, ""));
    let temperature = if data.val.is_empty() {
        None
    } else {
        let v = feats(&data.val);
        Some(softmax::fit_temperature(&v.logits, &v.labels))
    };
    if let Some(t) = temperature {
        scores.extend(ood::softmax_scores(&test.logits, &ood_logits, t, "_t"));
    }
    scores.push(Scored {
        name: "feature_norm".into(),
        id: ood::feature_norm(&test.raw),
        ood: oods.iter().map(|o| ood::feature_norm(&o.raw)).collect(),
    });
    let mut r = result(
        &scores,
        ood_names,
        oods.iter().map(|o| o.labels.size()[0] as usize).collect(),
        gda,
    )?;
    let c = classify(&test.logits, &test.labels, 1.0)?;
    let ece_t = temperature
        .map(|t| classify(&test.logits, &test.labels, t).map(|c| c.ece))
        .transpose()?;
    r.id = Some(IdResult {
        n: data.test.len(),
        accuracy: c.accuracy,
        ece: c.ece,
        ece_temperature_scaled: ece_t,
    });
    r.run = Some(dir.display().to_string());
    r.epoch = Some(epoch);
    r.temperature = temperature;
    Ok(r)
}

/// The result as a markdown table: one row per OoD set and score.
pub fn markdown(r: &EvalResult) -> String {
    let mut s = String::new();
    if let (Some(run), Some(e)) = (&r.run, r.epoch) {
        s += &format!("# OoD evaluation of {run}, epoch {e}\n\n");
    }
    if let Some(id) = &r.id {
        s += &format!(
            "ID test: {} samples, accuracy {:.4}, ECE {:.4}",
            id.n, id.accuracy, id.ece
        );
        if let (Some(e), Some(t)) = (id.ece_temperature_scaled, r.temperature) {
            s += &format!(", ECE {e:.4} at T = {t:.1}");
        }
        s += "\n\n";
    }
    for (name, g) in &r.gda {
        let finite: Vec<f64> = g.condition_numbers.iter().flatten().copied().collect();
        let worst = finite.iter().copied().fold(0.0, f64::max);
        s += &format!(
            "{name}: jitter {:e}, D = {}, worst class condition number {worst:.3e}\n",
            g.jitter, g.feature_dim
        );
    }
    s += "\n| OoD set | score | AUROC | AUPR-In | AUPR-Out | FPR@95 (OoD+) | FPR@95 (ID+) | top-N FP |\n";
    s += "|---|---|---|---|---|---|---|---|\n";
    for (set, row) in &r.ood {
        for (score, m) in row {
            s += &format!(
                "| {set} | {score} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {} |\n",
                m.auroc,
                m.aupr_in,
                m.aupr_out,
                m.fpr95_ood_positive,
                m.fpr95_id_positive,
                m.topn_false_positives
            );
        }
    }
    s
}
