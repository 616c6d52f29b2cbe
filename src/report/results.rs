//! Tidy results: one row per (run, seed, epoch, OoD set, score, feature kind, metric, value), from
//! every run's log (training metrics, tracked NC and AUROC) and evaluations (every score and
//! metric, ID accuracy and calibration). `results.csv` loads with one `pandas.read_csv` call.
use crate::error::{Error, Result};
use crate::evaluate::EvalResult;
use crate::ood::ScoreName;
use crate::run::RunDir;
use crate::study::plan::RunRef;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// What a value measures, across seeds. Empty strings where a part does not apply (e.g. `ood` of
/// a training loss).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Key {
    /// The run's name in the study (variant, over-training, or intervention group).
    pub run: String,
    pub epoch: usize,
    /// Where the value comes from: `log` (training, tracking) or `eval`.
    pub source: String,
    pub ood: String,
    pub score: String,
    /// raw / normalized for GDA and tracking, empty for logit-based scores.
    pub features: String,
    pub metric: String,
}

/// One measured value: a key, the seed, the value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    #[serde(flatten)]
    pub key: Key,
    pub seed: u64,
    pub value: f64,
}

/// The CSV header, in `Row`'s field order.
pub const CSV_HEADER: &str = "run,seed,epoch,source,ood,score,features,metric,value";

impl Row {
    /// One CSV line (names hold no commas or quotes: study names, set and score names are checked
    /// identifiers); the value in Rust's shortest round-trip form.
    pub fn csv(&self) -> String {
        let k = &self.key;
        format!(
            "{},{},{},{},{},{},{},{},{}",
            k.run, self.seed, k.epoch, k.source, k.ood, k.score, k.features, k.metric, self.value
        )
    }
}

/// The values a metric can take: outside them a value is not a result (a corrupt or edited
/// file), and is refused rather than averaged. Fractions may exceed 1 by rounding (average
/// precision, a sum of many terms, ends at 1 + 1e-15 for a perfect detector).
fn range(metric: &str) -> std::ops::RangeInclusive<f64> {
    const ROUNDING: f64 = 1e-9;
    match metric {
        "accuracy"
        | "ece"
        | "ece_temperature_scaled"
        | "train_acc"
        | "test_acc"
        | "auroc"
        | "aupr_in"
        | "aupr_out"
        | "fpr95_ood_positive"
        | "fpr95_id_positive"
        | "nc4" => 0.0..=1.0 + ROUNDING,
        _ => 0.0..=f64::MAX, // learning rate, loss, counts, NC1-3
    }
}

/// The rows of one run directory (nothing when the run has not started): its log, and the
/// evaluation results the run layout names (`RunDir::evaluated_epochs`); every value in its
/// metric's range.
fn run_rows(r: &RunRef) -> Result<Vec<Row>> {
    let dir = RunDir::new(&r.dir);
    let mut rows = vec![];
    let mut row = |epoch: usize,
                   source: &str,
                   ood: &str,
                   score: &str,
                   features: &str,
                   metric: &str,
                   value: f64| {
        rows.push(Row {
            key: Key {
                run: r.name.clone(),
                epoch,
                source: source.into(),
                ood: ood.into(),
                score: score.into(),
                features: features.into(),
                metric: metric.into(),
            },
            seed: r.seed,
            value,
        })
    };
    // An over-training's log repeats its source's epochs: keep only its start (the source's last
    // epoch, where the curves of Figure 5 begin) and its own.
    for l in dir
        .log()?
        .into_iter()
        .filter(|l| l.epoch + 1 >= r.first_epoch)
    {
        for (m, v) in [
            ("lr", l.lr),
            ("train_loss", l.train_loss),
            ("train_acc", l.train_acc),
            ("test_acc", l.test_acc),
        ] {
            row(l.epoch, "log", "", "", "", m, v);
        }
        if let Some(t) = &l.track {
            let f = t.nc.features.map(|k| k.name()).unwrap_or("");
            for c in std::iter::once(&t.nc).chain(&t.nc_raw) {
                let kind = c.features.map(|k| k.name()).unwrap_or("");
                for (m, v) in c.measures() {
                    if let Some(v) = v {
                        row(l.epoch, "log", "", "", kind, m, v);
                    }
                }
            }
            row(l.epoch, "log", &t.ood, "gda", f, "auroc", t.gda_auroc);
            row(
                l.epoch,
                "log",
                &t.ood,
                "gda",
                f,
                "topn_false_positives",
                t.topn_false_positives as f64,
            );
        }
    }
    for epoch in dir.evaluated_epochs()? {
        let path = dir.eval_path(epoch, "json");
        let e: EvalResult = read_json(&path)?;
        if e.epoch != Some(epoch) {
            let held = e.epoch.map_or("no epoch".into(), |x| format!("epoch {x}"));
            return Err(Error::bad_file(
                &path,
                format!("holds the evaluation of {held}, not of epoch {epoch}"),
            ));
        }
        if let Some(id) = &e.id {
            row(epoch, "eval", "", "", "", "accuracy", id.accuracy);
            row(epoch, "eval", "", "", "", "ece", id.ece);
            if let Some(v) = id.ece_temperature_scaled {
                row(epoch, "eval", "", "", "", "ece_temperature_scaled", v);
            }
        }
        if let Some(t) = e.temperature {
            row(epoch, "eval", "", "", "", "temperature", t);
        }
        for (set, scores) in &e.ood {
            for (score, d) in scores {
                let (name, features) = match score {
                    ScoreName::GdaRaw => ("gda", "raw"),
                    ScoreName::GdaNormalized => ("gda", "normalized"),
                    ScoreName::FeatureNorm => ("feature_norm", "raw"),
                    s => (s.name(), ""),
                };
                for (m, v) in [
                    ("auroc", d.auroc),
                    ("aupr_in", d.aupr_in),
                    ("aupr_out", d.aupr_out),
                    ("fpr95_ood_positive", d.fpr95_ood_positive),
                    ("fpr95_id_positive", d.fpr95_id_positive),
                    ("topn_false_positives", d.topn_false_positives as f64),
                ] {
                    row(epoch, "eval", set, name, features, m, v);
                }
            }
        }
    }
    // Named by the file each row came from: the log, or its epoch's evaluation.
    if let Some(bad) = rows
        .iter()
        .find(|r| !range(&r.key.metric).contains(&r.value))
    {
        let k = &bad.key;
        let path = match k.source.as_str() {
            "log" => dir.log_path(),
            _ => dir.eval_path(k.epoch, "json"),
        };
        let what: Vec<&str> = [&k.ood, &k.score, &k.features, &k.metric]
            .into_iter()
            .filter(|s| !s.is_empty())
            .map(|s| s.as_str())
            .collect();
        return Err(Error::bad_file(
            path,
            format!(
                "{} at epoch {} is {}, outside {:?}",
                what.join(" "),
                k.epoch,
                bad.value,
                range(&k.metric)
            ),
        ));
    }
    Ok(rows)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::bad_file(path, e.to_string()))
}

/// Every row of every run, in run order.
pub fn collect(runs: &[RunRef]) -> Result<Vec<Row>> {
    let mut rows = vec![];
    for r in runs {
        rows.extend(run_rows(r)?);
    }
    Ok(rows)
}

/// `results.csv`: the header and one line per row.
pub fn to_csv(rows: &[Row]) -> String {
    let mut s = String::from(CSV_HEADER);
    s.push('\n');
    for r in rows {
        s += &r.csv();
        s.push('\n');
    }
    s
}

/// Each run group's name once, in plan order (the plan goes seed by seed, so names recur).
pub fn run_names(runs: &[RunRef]) -> Vec<&str> {
    let mut names: Vec<&str> = vec![];
    for r in runs {
        if !names.contains(&r.name.as_str()) {
            names.push(&r.name);
        }
    }
    names
}

/// The last epoch of `run` (its configured end), where its final results are read; None for a
/// run the study does not have.
pub fn final_epoch(runs: &[RunRef], run: &str) -> Option<usize> {
    runs.iter().find(|r| r.name == run).map(|r| r.epochs)
}

/// The epoch an over-training run starts from (its source's last); None for a run that starts
/// from scratch (or one the study does not have).
pub fn start_epoch(runs: &[RunRef], run: &str) -> Option<usize> {
    runs.iter()
        .find(|r| r.name == run && r.first_epoch > 1)
        .map(|r| r.first_epoch - 1)
}

/// The per-seed values (in seed order) of `run`'s rows from `source` at `epoch` that `pick`
/// selects.
pub fn values_at(
    rows: &[Row],
    run: &str,
    source: &str,
    epoch: usize,
    pick: &dyn Fn(&Key) -> bool,
) -> Vec<f64> {
    let mut v: Vec<(u64, f64)> = rows
        .iter()
        .filter(|r| {
            r.key.run == run && r.key.source == source && r.key.epoch == epoch && pick(&r.key)
        })
        .map(|r| (r.seed, r.value))
        .collect();
    v.sort_by_key(|p| p.0);
    v.into_iter().map(|p| p.1).collect()
}

/// The per-seed values of `run`'s final evaluation (at its last epoch) that `pick` selects; empty
/// until it has been evaluated there.
pub fn final_values(
    rows: &[Row],
    runs: &[RunRef],
    run: &str,
    pick: &dyn Fn(&Key) -> bool,
) -> Vec<f64> {
    final_epoch(runs, run)
        .map(|e| values_at(rows, run, "eval", e, pick))
        .unwrap_or_default()
}

/// The features `run` was tracked on (those of its tracked detection rows, AUROC and top-N false
/// positives, which name their OoD set; "" without tracking). An L2 run's log also holds NC on
/// the raw features, which `tracked` and `tracked_at` leave out.
pub fn tracked_features<'a>(rows: &'a [Row], run: &str) -> &'a str {
    rows.iter()
        .find(|r| r.key.source == "log" && r.key.run == run && !r.key.ood.is_empty())
        .map_or("", |r| r.key.features.as_str())
}

/// Per seed, `run`'s tracked (`log`) series of `metric` (on its tracked features): (epoch, value)
/// in epoch order.
pub fn tracked(rows: &[Row], run: &str, metric: &str) -> BTreeMap<u64, Vec<(usize, f64)>> {
    let kind = tracked_features(rows, run);
    let mut out: BTreeMap<u64, Vec<(usize, f64)>> = BTreeMap::new();
    for r in rows {
        let k = &r.key;
        if k.run == run
            && k.source == "log"
            && k.metric == metric
            && (k.features.is_empty() || k.features == kind)
        {
            out.entry(r.seed).or_default().push((k.epoch, r.value));
        }
    }
    for v in out.values_mut() {
        v.sort_by_key(|p| p.0);
    }
    out
}

/// Per seed, Spearman's rho between `run`'s tracked `x` and `y` across the epochs that have both
/// (seeds where it is undefined are left out).
pub fn tracked_rho(rows: &[Row], run: &str, x: &str, y: &str) -> BTreeMap<u64, f64> {
    let ys = tracked(rows, run, y);
    tracked(rows, run, x)
        .into_iter()
        .filter_map(|(s, xs)| {
            let ys = ys.get(&s)?;
            let (a, b): (Vec<f64>, Vec<f64>) = xs
                .iter()
                .filter_map(|(e, v)| Some((*v, ys.iter().find(|p| p.0 == *e)?.1)))
                .unzip();
            Some((s, super::stats::spearman(&a, &b)?))
        })
        .collect()
}

/// The OoD set `run` was tracked against ("" when it has no tracking rows).
pub fn tracked_ood(rows: &[Row], run: &str) -> String {
    rows.iter()
        .find(|r| r.key.source == "log" && r.key.run == run && r.key.metric == "auroc")
        .map(|r| r.key.ood.clone())
        .unwrap_or_default()
}

/// The softmax family of scores (Table 4, C7).
pub const SOFTMAX_SCORES: [&str; 7] = {
    let mut names = [""; 7];
    let (mut i, mut n) = (0, 0);
    while i < ScoreName::ALL.len() {
        if ScoreName::ALL[i].is_softmax() {
            names[n] = ScoreName::ALL[i].name();
            n += 1;
        }
        i += 1;
    }
    names
};

/// The study's OoD sets that were evaluated.
pub fn ood_sets(rows: &[Row]) -> Vec<String> {
    let mut sets: Vec<String> = rows
        .iter()
        .filter(|r| r.key.source == "eval" && !r.key.ood.is_empty())
        .map(|r| r.key.ood.clone())
        .collect();
    sets.sort();
    sets.dedup();
    sets
}

/// The feature kind `run`'s head reads ("raw" or "normalized").
pub fn head(runs: &[RunRef], run: &str) -> &'static str {
    runs.iter()
        .find(|r| r.name == run)
        .map_or("raw", |r| r.head.name())
}

/// Per seed, `run`'s final AUROC of `score` (with `features` for GDA) on `ood`.
pub fn final_auroc(
    rows: &[Row],
    runs: &[RunRef],
    run: &str,
    ood: &str,
    score: &str,
    features: &str,
) -> Vec<f64> {
    final_values(rows, runs, run, &|k: &Key| {
        k.metric == "auroc" && k.ood == ood && k.score == score && k.features == features
    })
}

/// Per seed, `run`'s final ID test accuracy.
pub fn final_accuracy(rows: &[Row], runs: &[RunRef], run: &str) -> Vec<f64> {
    final_values(rows, runs, run, &|k: &Key| k.metric == "accuracy")
}

/// The NC measures of Table 3 and C6 ("nearly all" counts these five), with their labels.
pub const NC_MEASURES: [(&str, &str); 5] = [
    ("nc1", "NC1"),
    ("nc2_equinorm_means", "NC2 equinorm"),
    ("nc2_equiangularity_means", "NC2 equiangularity"),
    ("nc3", "NC3"),
    ("nc4", "NC4"),
];

/// Per seed, `run`'s tracked `metric` at `epoch`, on its tracked features.
pub fn tracked_at(rows: &[Row], run: &str, epoch: usize, metric: &str) -> Vec<f64> {
    tracked_on(rows, run, epoch, metric, tracked_features(rows, run))
}

/// Per seed, `run`'s tracked `metric` at `epoch` on `features` (raw, normalized): an L2 run's
/// NC on its raw features beside its head's.
pub fn tracked_on(rows: &[Row], run: &str, epoch: usize, metric: &str, features: &str) -> Vec<f64> {
    values_at(rows, run, "log", epoch, &|k: &Key| {
        k.metric == metric && (k.features.is_empty() || k.features == features)
    })
}

/// Per seed, an intervention group's tracked `metric` over its epochs, with epoch 0 = the source
/// run's value at `from_epoch` (where both groups start; seeds without it are left out). Figures
/// draw it; claims take changes from epoch 0.
pub fn intervention_curve(
    rows: &[Row],
    source: &str,
    from_epoch: usize,
    group_run: &str,
    metric: &str,
) -> BTreeMap<u64, Vec<(usize, f64)>> {
    let start = tracked(rows, source, metric);
    tracked(rows, group_run, metric)
        .into_iter()
        .filter_map(|(s, mut v)| {
            let b = start.get(&s)?.iter().find(|p| p.0 == from_epoch)?.1;
            v.insert(0, (0, b));
            Some((s, v))
        })
        .collect()
}

/// Per seed, `run`'s final values of `metric` keyed by seed (for pairing two groups by seed).
pub fn final_by_seed(
    rows: &[Row],
    runs: &[RunRef],
    run: &str,
    pick: &dyn Fn(&Key) -> bool,
) -> BTreeMap<u64, f64> {
    let Some(epoch) = final_epoch(runs, run) else {
        return BTreeMap::new();
    };
    rows.iter()
        .filter(|r| {
            r.key.run == run && r.key.source == "eval" && r.key.epoch == epoch && pick(&r.key)
        })
        .map(|r| (r.seed, r.value))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Table 3, C6 and Figure 3 name measures that exist: each is one of `Collapse::MEASURES`.
    #[test]
    fn reported_nc_measures_are_collapse_measures() {
        for (metric, _) in NC_MEASURES {
            let known = crate::collapse::Collapse::MEASURES;
            assert!(known.contains(&metric), "{metric}");
        }
    }
}
