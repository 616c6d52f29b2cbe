//! How a study's run groups were trained (SGD steps, milestones, final train and test accuracy,
//! train loss, fitted temperature, precision) and the regime check of SPEC 8: the paper compares a
//! *complete* short schedule with a long one *far past convergence*, so C1-C4 are judged only when
//! the long no-L2 baseline has converged (its mean test accuracy moved by less than `PLATEAU` over
//! its last third of epochs) and L2-short is within `GAP` of its accuracy. A short run that has not
//! finished learning says nothing about the paper's claims, whatever its verdicts would be.
use super::results::{Key, Row, final_epoch, final_values, values_at};
use super::stats::{Stats, mean};
use crate::run::{RunDir, Summary};
use crate::study::plan::RunRef;
use crate::study::spec::Roles;
use serde::Serialize;

/// The long baseline counts as converged below this change of mean test accuracy over its last
/// third of epochs.
pub const PLATEAU: f64 = 0.005;
/// L2-short counts as a complete schedule within this of the baseline's mean test accuracy.
pub const GAP: f64 = 0.015;

/// How one run group was trained, over its seeds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Training {
    pub run: String,
    pub seeds: usize,
    pub epochs: usize,
    /// The milestones actually used (as recorded by the run).
    pub milestones: Vec<usize>,
    /// SGD steps in all: epochs x batches per epoch (the last, partial batch included).
    pub steps: usize,
    pub train_size: usize,
    pub precision: String,
    /// At the last epoch: running accuracy and loss of the training epoch (augmented, train
    /// mode), test accuracy, and the temperature fitted on the validation split.
    pub train_acc: Option<Stats>,
    pub train_loss: Option<Stats>,
    pub test_acc: Option<Stats>,
    pub temperature: Option<Stats>,
}

/// How `run` was trained; None until one of its seeds has finished (summary.json).
pub fn training(rows: &[Row], runs: &[RunRef], run: &str) -> Option<Training> {
    let refs: Vec<&RunRef> = runs.iter().filter(|r| r.name == run).collect();
    let epochs = final_epoch(runs, run)?;
    let (summary, cfg) = refs.iter().find_map(|r| {
        let dir = RunDir::new(&r.dir);
        let text = std::fs::read_to_string(dir.summary_path()).ok()?;
        let s: Summary = serde_json::from_str(&text).ok()?;
        Some((s, dir.config().ok()?))
    })?;
    let batch = cfg.optim.batch_size.max(1);
    let log = |metric: &str| {
        Stats::of(&values_at(rows, run, "log", epochs, &|k: &Key| {
            k.metric == metric
        }))
    };
    let eval = |metric: &str| {
        Stats::of(&final_values(rows, runs, run, &|k: &Key| {
            k.metric == metric
        }))
    };
    Some(Training {
        run: run.to_string(),
        seeds: refs.len(),
        epochs,
        milestones: summary.milestones.clone(),
        steps: epochs * summary.train_size.div_ceil(batch),
        train_size: summary.train_size,
        precision: cfg.optim.precision.name().to_string(),
        train_acc: log("train_acc"),
        train_loss: log("train_loss"),
        test_acc: eval("accuracy"),
        temperature: eval("temperature"),
    })
}

/// The regime check of one roles block.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Regime {
    /// The long no-L2 baseline and L2 at the short schedule.
    pub long: String,
    pub short: String,
    /// The long run's mean test accuracy at its last epoch minus at the start of its last third.
    pub last_third_change: Option<f64>,
    /// Mean test accuracy of the long run minus L2-short's.
    pub gap: Option<f64>,
    /// Whether C1-C4 are in the paper's regime; None until both numbers exist.
    pub ok: Option<bool>,
    /// The check in words, with its numbers.
    pub why: String,
}

/// The regime check of a block with L2-short and no-L2-long runs (None otherwise).
pub fn check(rows: &[Row], runs: &[RunRef], roles: &Roles) -> Option<Regime> {
    let (short, long) = (roles.l2_short.as_ref()?, roles.nol2_long.as_ref()?);
    let end = final_epoch(runs, long)?;
    let from = end - end / 3;
    let test_acc = |epoch| {
        let v = values_at(rows, long, "log", epoch, &|k: &Key| k.metric == "test_acc");
        (!v.is_empty()).then(|| mean(&v))
    };
    let last_third_change = test_acc(end).zip(test_acc(from)).map(|(b, a)| b - a);
    let accuracy = |run: &str| {
        let v = final_values(rows, runs, run, &|k: &Key| k.metric == "accuracy");
        (!v.is_empty()).then(|| mean(&v))
    };
    let gap = accuracy(long).zip(accuracy(short)).map(|(l, s)| l - s);
    let mut why = vec![];
    if let Some(c) = last_third_change {
        why.push(format!(
            "{long}'s mean test accuracy moved by {c:+.4} over its last third (epochs {from}-{end}; converged means below {PLATEAU} in size)"
        ));
    }
    if let Some(g) = gap {
        why.push(format!(
            "{short} is {:.4} {} it in mean test accuracy (complete means at most {GAP} below)",
            g.abs(),
            if g >= 0.0 { "below" } else { "above" }
        ));
    }
    let ok = last_third_change
        .zip(gap)
        .map(|(c, g)| c.abs() < PLATEAU && g <= GAP);
    let verdict = match ok {
        Some(true) => "in the paper's regime: ",
        Some(false) => "OUT of the paper's regime (C1-C4 not judged): ",
        None if why.is_empty() => {
            "regime not known yet (the long baseline or L2-short has not finished)"
        }
        None => "regime not known yet: ",
    };
    Some(Regime {
        long: long.clone(),
        short: short.clone(),
        last_third_change,
        gap,
        ok,
        why: format!("{verdict}{}", why.join("; ")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::FeatureKind;

    fn row(run: &str, seed: u64, epoch: usize, source: &str, metric: &str, value: f64) -> Row {
        Row {
            key: Key {
                run: run.into(),
                epoch,
                source: source.into(),
                ood: String::new(),
                score: String::new(),
                features: String::new(),
                metric: metric.into(),
            },
            seed,
            value,
        }
    }

    fn runs() -> Vec<RunRef> {
        let r = |name: &str, seed, epochs| RunRef {
            name: name.into(),
            seed,
            dir: format!("/nonexistent/{name}/s{seed}").into(),
            head: FeatureKind::Raw,
            epochs,
            first_epoch: 1,
        };
        vec![
            r("l2", 0, 6),
            r("l2", 1, 6),
            r("long", 0, 30),
            r("long", 1, 30),
        ]
    }

    /// Long run's test accuracy at epochs 20 and 30, final accuracies of both.
    fn rows(at20: f64, at30: f64, long: f64, short: f64) -> Vec<Row> {
        let mut v = vec![];
        for s in 0..2 {
            v.push(row("long", s, 20, "log", "test_acc", at20));
            v.push(row("long", s, 30, "log", "test_acc", at30));
            v.push(row("long", s, 30, "eval", "accuracy", long));
            v.push(row("l2", s, 6, "eval", "accuracy", short));
        }
        v
    }

    #[test]
    fn converged_and_complete_is_in_regime() {
        let roles = Roles {
            l2_short: Some("l2".into()),
            nol2_long: Some("long".into()),
            ..Roles::default()
        };
        let r = check(&rows(0.930, 0.933, 0.933, 0.925), &runs(), &roles).unwrap();
        assert!((r.last_third_change.unwrap() - 0.003).abs() < 1e-12);
        assert!((r.gap.unwrap() - 0.008).abs() < 1e-12);
        assert_eq!(r.ok, Some(true), "{}", r.why);
        // Still learning over the last third (+0.02): out, whatever the gap.
        let r = check(&rows(0.913, 0.933, 0.933, 0.930), &runs(), &roles).unwrap();
        assert_eq!(r.ok, Some(false));
        assert!(r.why.starts_with("OUT"), "{}", r.why);
        // An incomplete short schedule (0.075 below, as the old cpu preset's 2 epochs): out.
        let r = check(&rows(0.930, 0.931, 0.923, 0.848), &runs(), &roles).unwrap();
        assert_eq!(r.ok, Some(false));
        // L2-short better than the baseline is fine.
        let r = check(&rows(0.930, 0.931, 0.923, 0.950), &runs(), &roles).unwrap();
        assert_eq!(r.ok, Some(true));
        // No data yet: unknown.
        assert_eq!(check(&[], &runs(), &roles).unwrap().ok, None);
        assert!(check(&[], &runs(), &Roles::default()).is_none());
    }
}
