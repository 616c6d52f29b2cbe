//! The paper's claims (SPEC 8) judged on a study's own runs: per OoD set, this study's numbers,
//! the paper's, the difference, a 95% percentile bootstrap interval over seeds (each group's seeds
//! resampled with replacement, 10,000 resamples, seeded) and a verdict: supported when the
//! interval lies on the claimed side of the margin, contradicted when it lies on the other side,
//! inconclusive when it straddles it or a group has fewer than 3 seeds.
use super::aggregate::spearman;
use super::results::{Row, final_epoch, start_epoch, tracked, tracked_ood, tracked_rho};
use super::tables::{
    NC_MEASURES, SOFTMAX_SCORES, collapse_points, final_accuracy, final_auroc, head, ood_sets,
    tracked_at,
};
use crate::rng;
use crate::study::plan::RunRef;
use crate::study::plan::intervention_run;
use crate::study::spec::{InterventionSpec, Roles};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Resamples of the bootstrap.
pub const RESAMPLES: usize = 10_000;
/// The fewest seeds per group for a verdict other than inconclusive.
pub const MIN_SEEDS: usize = 3;

/// The statistic of each group whose difference a claim is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stat {
    Mean,
    Min,
    /// Unbiased standard deviation.
    Std,
    /// One group's minimum against the other's maximum (C5's worst case vs best case).
    #[serde(rename = "min_vs_max")]
    MinVsMax,
    /// Spearman's rank correlation of paired values (C12).
    Rho,
}

impl Stat {
    pub fn of(self, x: &[f64]) -> f64 {
        let n = x.len() as f64;
        let mean = x.iter().sum::<f64>() / n;
        match self {
            Stat::Mean => mean,
            Stat::Min => x.iter().copied().fold(f64::INFINITY, f64::min),
            Stat::Std => (x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt(),
            // Not a statistic of one group: the claims that use them build their verdicts
            // directly.
            Stat::MinVsMax | Stat::Rho => f64::NAN,
        }
    }
}

/// Which side of the margin the claim puts stat(a) - stat(b) on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Above,
    Below,
    /// Within (-margin, margin): C12's weak correlation.
    Within,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Supported,
    Contradicted,
    Inconclusive,
}

/// The `q` quantile of sorted values, interpolated linearly (numpy's default).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// stat(a) - stat(b) and its 95% percentile bootstrap interval (`seed` seeds the resampling).
pub fn bootstrap_difference(a: &[f64], b: &[f64], stat: Stat, seed: u64) -> (f64, [f64; 2]) {
    let point = stat.of(a) - stat.of(b);
    let mut rng = rng::rng(seed, rng::Stream::Bootstrap);
    let mut draw = |x: &[f64]| -> Vec<f64> {
        (0..x.len())
            .map(|_| x[rng.random_range(0..x.len())])
            .collect()
    };
    let mut diffs: Vec<f64> = (0..RESAMPLES)
        .map(|_| stat.of(&draw(a)) - stat.of(&draw(b)))
        .collect();
    diffs.sort_by(f64::total_cmp);
    (point, [quantile(&diffs, 0.025), quantile(&diffs, 0.975)])
}

/// The verdict for an interval against a claim that the difference lies on `side` of `margin`.
pub fn verdict(interval: [f64; 2], side: Side, margin: f64, seeds: [usize; 2]) -> Verdict {
    if seeds.iter().any(|&n| n < MIN_SEEDS) {
        return Verdict::Inconclusive;
    }
    let [lo, hi] = interval;
    match side {
        Side::Above if lo > margin => Verdict::Supported,
        Side::Above if hi < margin => Verdict::Contradicted,
        Side::Below if hi < margin => Verdict::Supported,
        Side::Below if lo > margin => Verdict::Contradicted,
        Side::Within if lo > -margin && hi < margin => Verdict::Supported,
        Side::Within if lo >= margin || hi <= -margin => Verdict::Contradicted,
        _ => Verdict::Inconclusive,
    }
}

/// One judged comparison of a claim on one OoD set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judged {
    /// The `[[roles]]` block (architecture) it was judged on.
    pub block: String,
    pub claim: String,
    pub statement: String,
    pub ood: String,
    /// The groups compared (run names) and what was compared.
    pub a: String,
    pub b: String,
    pub metric: String,
    pub stat: Stat,
    pub a_value: f64,
    pub b_value: f64,
    pub difference: f64,
    pub interval: [f64; 2],
    pub side: Side,
    pub margin: f64,
    pub seeds: [usize; 2],
    pub verdict: Verdict,
    /// The paper's numbers for this claim.
    pub paper: String,
    /// What the study ran: data, architecture, width, epochs, seeds.
    pub scale: String,
    /// What else the claim reports (a ratio, a distribution, a best value).
    pub note: String,
}

/// A comparison to judge: groups `a` and `b` (run names) on `metric` rows selected by `select`.
pub struct Comparison<'a> {
    pub claim: &'a str,
    pub statement: &'a str,
    pub paper: &'a str,
    pub a: &'a str,
    pub b: &'a str,
    pub metric: &'a str,
    pub stat: Stat,
    pub side: Side,
    pub margin: f64,
}

/// Judges one comparison with values `a` and `b` (per seed); None when a group has no value.
pub fn judge(
    c: &Comparison,
    ood: &str,
    a: &[f64],
    b: &[f64],
    scale: &str,
    seed: u64,
) -> Option<Judged> {
    if a.is_empty() || b.is_empty() || (c.stat == Stat::Std && (a.len() < 2 || b.len() < 2)) {
        return None;
    }
    let (difference, interval) = bootstrap_difference(a, b, c.stat, seed);
    let seeds = [a.len(), b.len()];
    Some(Judged {
        block: String::new(),
        claim: c.claim.into(),
        statement: c.statement.into(),
        ood: ood.into(),
        a: c.a.into(),
        b: c.b.into(),
        metric: c.metric.into(),
        stat: c.stat,
        a_value: c.stat.of(a),
        b_value: c.stat.of(b),
        difference,
        interval,
        side: c.side,
        margin: c.margin,
        seeds,
        verdict: verdict(interval, c.side, c.margin, seeds),
        paper: c.paper.into(),
        scale: scale.into(),
        note: String::new(),
    })
}

/// Values per seed against zero: judging a paired difference (or a per-seed statistic such as a
/// rank correlation) with `judge` by comparing it with a group of zeros of the same size.
fn zeros(x: &[f64]) -> Vec<f64> {
    vec![0.0; x.len()]
}

/// Spearman's rho of paired per-seed values and its 95% percentile bootstrap interval (pairs
/// resampled; resamples with a constant side are skipped). None with fewer than `MIN_SEEDS` pairs.
pub fn bootstrap_spearman(x: &[f64], y: &[f64], seed: u64) -> Option<(f64, [f64; 2])> {
    let point = spearman(x, y)?;
    let mut rng = rng::rng(seed, rng::Stream::Bootstrap);
    let mut rhos = vec![];
    for _ in 0..RESAMPLES {
        let idx: Vec<usize> = (0..x.len()).map(|_| rng.random_range(0..x.len())).collect();
        let (a, b): (Vec<f64>, Vec<f64>) = idx.iter().map(|&i| (x[i], y[i])).unzip();
        rhos.extend(spearman(&a, &b));
    }
    if rhos.is_empty() {
        return None;
    }
    rhos.sort_by(f64::total_cmp);
    Some((point, [quantile(&rhos, 0.025), quantile(&rhos, 0.975)]))
}

/// A roles block's results and the judged comparisons so far.
struct Judge<'a> {
    rows: &'a [Row],
    runs: &'a [RunRef],
    roles: &'a Roles,
    sets: Vec<String>,
    scale: &'a str,
    block: &'a str,
    out: Vec<Judged>,
}

/// The claims C1-C12 of SPEC 8 that one `[[roles]]` block's runs allow judging. AUROC is GDA's on
/// the features each run's head reads, at each run's last epoch, per OoD set; NC and the curves
/// (C8-C10) are the tracked values (training subset; the tracked OoD set).
pub fn judge_study(
    rows: &[Row],
    runs: &[RunRef],
    roles: &Roles,
    interventions: &[InterventionSpec],
    scale: &str,
    block: &str,
) -> Vec<Judged> {
    let mut j = Judge {
        rows,
        runs,
        roles,
        sets: ood_sets(rows),
        scale,
        block,
        out: vec![],
    };
    j.headline();
    j.ablation();
    j.collapse();
    j.softmax();
    j.nc_tracks_ood();
    let nc_rise = j.intervention(interventions);
    j.overtraining(&nc_rise);
    j.l2_long();
    j.peak();
    j.out
}

impl Judge<'_> {
    fn auroc(&self, run: &str, ood: &str) -> Vec<f64> {
        final_auroc(self.rows, self.runs, run, ood, "gda", head(self.runs, run))
    }

    fn accuracy(&self, run: &str) -> Vec<f64> {
        final_accuracy(self.rows, self.runs, run)
    }

    /// Judges `c` on values `a` and `b`, resampled with a seed fixed by what it compares.
    fn add(&mut self, c: Comparison, ood: &str, a: Vec<f64>, b: Vec<f64>, note: String) {
        let stat = format!("{:?}", c.stat);
        let seed = stream(&[self.block, c.claim, c.a, c.b, c.metric, &stat, ood]);
        let j = judge(&c, ood, &a, &b, self.scale, seed);
        self.out.extend(j.map(|j| Judged {
            block: self.block.into(),
            note,
            ..j
        }));
    }

    /// C1-C4: L2 at the short schedule against no L2 at the long one, per OoD set.
    fn headline(&mut self) {
        if let (Some(l2), Some(long)) = (&self.roles.l2_short, &self.roles.nol2_long) {
            // The same AUROC values per set, three statistics of them.
            let claims = [
                (
                    "C1",
                    "mean AUROC: L2 at the short schedule >= no L2 at the long one",
                    "RN18: above; RN50: -0.01",
                    Stat::Mean,
                    Side::Above,
                ),
                (
                    "C3",
                    "worst case: min AUROC over seeds, L2-short > no-L2-long",
                    "+0.047 RN18, +0.024 RN50",
                    Stat::Min,
                    Side::Above,
                ),
                (
                    "C4",
                    "spread: std of AUROC over seeds smaller with L2-short",
                    "smaller (RN18, RN50)",
                    Stat::Std,
                    Side::Below,
                ),
            ];
            for ood in &self.sets.clone() {
                let (a, b) = (self.auroc(l2, ood), self.auroc(long, ood));
                for (id, statement, paper, stat, side) in claims {
                    let c = claim(id, statement, paper, l2, long, "auroc", stat, side, 0.0);
                    self.add(c, ood, a.clone(), b.clone(), String::new());
                }
            }
            let c2 = "accuracy: L2-short at most 0.01 below no-L2-long";
            self.add(
                claim(
                    "C2",
                    c2,
                    "RN18 -0.008; RN50 higher",
                    l2,
                    long,
                    "accuracy",
                    Stat::Mean,
                    Side::Above,
                    -0.01,
                ),
                "",
                self.accuracy(l2),
                self.accuracy(long),
                String::new(),
            );
        }
    }

    /// C5: the ablation at equal epochs.
    fn ablation(&mut self) {
        if let (Some(l2), Some(short)) = (&self.roles.l2_short, &self.roles.nol2_short) {
            let c5 = "ablation at equal epochs: L2 >= no L2 in mean and min accuracy and AUROC";
            for stat in [Stat::Mean, Stat::Min] {
                let c = |metric| {
                    claim(
                        "C5",
                        c5,
                        "L2 higher in all (Table 2)",
                        l2,
                        short,
                        metric,
                        stat,
                        Side::Above,
                        0.0,
                    )
                };
                self.add(
                    c("accuracy"),
                    "",
                    self.accuracy(l2),
                    self.accuracy(short),
                    String::new(),
                );
                for ood in &self.sets.clone() {
                    self.add(
                        c("auroc"),
                        ood,
                        self.auroc(l2, ood),
                        self.auroc(short, ood),
                        String::new(),
                    );
                }
            }
            for ood in &self.sets.clone() {
                let (a, b) = (self.auroc(l2, ood), self.auroc(short, ood));
                if let (Some(&min), Some(&max)) = (
                    a.iter().min_by(|x, y| x.total_cmp(y)),
                    b.iter().max_by(|x, y| x.total_cmp(y)),
                ) {
                    // L2's worst seed against no-L2's best: a comparison of extremes, no interval.
                    let worst = "ablation: L2's worst (min) AUROC >= no L2's best (max)";
                    let v = if a.len().min(b.len()) < MIN_SEEDS {
                        Verdict::Inconclusive
                    } else if min >= max {
                        Verdict::Supported
                    } else {
                        Verdict::Contradicted
                    };
                    self.out.push(Judged {
                        block: self.block.into(),
                        claim: "C5".into(),
                        statement: worst.into(),
                        ood: ood.clone(),
                        a: l2.clone(),
                        b: short.clone(),
                        metric: "auroc".into(),
                        stat: Stat::MinVsMax,
                        a_value: min,
                        b_value: max,
                        difference: min - max,
                        interval: [min - max, min - max],
                        side: Side::Above,
                        margin: 0.0,
                        seeds: [a.len(), b.len()],
                        verdict: v,
                        paper: "L2's min above no L2's max (Table 2)".into(),
                        scale: self.scale.into(),
                        note: "min and max of the seeds themselves (no resampling)".into(),
                    });
                }
            }
        }
    }

    /// C6: each NC measure lower with L2 at the short schedule, at both no-L2 schedules.
    fn collapse(&mut self) {
        let points = collapse_points(self.rows, self.runs, self.roles);
        if let Some((l2, e_l2, _)) = points.first() {
            for (run, e, what) in &points[1..] {
                for (m, name) in NC_MEASURES {
                    let (a, b) = (
                        tracked_at(self.rows, l2, *e_l2, m),
                        tracked_at(self.rows, run, *e, m),
                    );
                    let (ma, mb) = (Stat::Mean.of(&a), Stat::Mean.of(&b));
                    let ratio = if ma > 0.0 {
                        format!("{:.3}x", mb / ma)
                    } else {
                        "- (L2 short is 0)".into()
                    };
                    let note = format!(
                        "{name}: {what} / L2 short = {ratio}; each on the features its head reads (L2: normalised)"
                    );
                    let c6 = "collapse: each of NC1-4 lower with L2-short than without L2 (short and long schedule); about 10x lower at equal epochs";
                    self.add(
                        claim(
                            "C6",
                            c6,
                            "all lower; ~10x at equal epochs (Table 3)",
                            &format!("{l2} e{e_l2}"),
                            &format!("{run} e{e}"),
                            m,
                            Stat::Mean,
                            Side::Below,
                            0.0,
                        ),
                        "",
                        a,
                        b,
                        note,
                    );
                }
            }
        }
    }

    /// C7: every softmax score's AUROC below GDA's, per model: the paired per-seed difference.
    fn softmax(&mut self) {
        for run in self.roles.models() {
            for ood in &self.sets.clone() {
                let gda = self.auroc(run, ood);
                for score in SOFTMAX_SCORES {
                    let s = final_auroc(self.rows, self.runs, run, ood, score, "");
                    if s.len() != gda.len() {
                        continue;
                    }
                    let d: Vec<f64> = s.iter().zip(&gda).map(|(s, g)| s - g).collect();
                    let c7 = "softmax: every softmax-family score's AUROC below GDA's (per seed, score - GDA)";
                    let note = format!("{score} - gda on {run}");
                    self.add(
                        claim(
                            "C7",
                            c7,
                            "below GDA for all but RN50 no-L2 350 (Table 4)",
                            run,
                            "0",
                            score,
                            Stat::Mean,
                            Side::Below,
                            0.0,
                        ),
                        ood,
                        d.clone(),
                        zeros(&d),
                        note,
                    );
                }
            }
        }
    }

    /// C8: over the no-L2 long runs' training, NC1 falls as AUROC rises (rho < 0 per run), and
    /// AUROC falls slightly after its peak.
    fn nc_tracks_ood(&mut self) {
        if let Some(long) = &self.roles.nol2_long {
            let rhos: Vec<f64> = tracked_rho(self.rows, long, "nc1", "auroc")
                .into_values()
                .collect();
            let falls: Vec<f64> = tracked(self.rows, long, "auroc")
                .values()
                .filter_map(|a| {
                    let peak = a.iter().map(|p| p.1).reduce(f64::max)?;
                    Some(peak - a.last()?.1)
                })
                .collect();
            if !rhos.is_empty() {
                let mut sorted = rhos.clone();
                sorted.sort_by(f64::total_cmp);
                let note = format!(
                    "rho per run: min {:.3}, median {:.3}, max {:.3}; AUROC fall after its peak: mean {:.4}",
                    sorted[0],
                    quantile(&sorted, 0.5),
                    sorted[sorted.len() - 1],
                    Stat::Mean.of(&falls)
                );
                let c8 = "NC tracks OoD: over training without L2 (long), Spearman rho(NC1, AUROC) across epochs < 0 per run";
                let ood = tracked_ood(self.rows, long);
                self.add(
                    claim(
                        "C8",
                        c8,
                        "NC falls as AUROC rises; slight fall after the peak (Figure 3)",
                        long,
                        "0",
                        "spearman(nc1, auroc)",
                        Stat::Mean,
                        Side::Below,
                        0.0,
                    ),
                    &ood,
                    rhos.clone(),
                    zeros(&rhos),
                    note,
                );
            }
        }
    }

    /// C9 and C10: the intervention (SPEC 7), on the tracked curves. Both groups of a seed start
    /// from the same checkpoint, so they are compared per seed (paired). Returns the NC group's
    /// highest change of top-N false positives per seed (C10's yardstick for over-training).
    fn intervention(&mut self, interventions: &[InterventionSpec]) -> Vec<f64> {
        let mut nc_rise = vec![];
        for i in interventions {
            let (g_nc, g_control) = (
                intervention_run(&i.source, i.from_epoch, "nc"),
                intervention_run(&i.source, i.from_epoch, "control"),
            );
            // Per seed, the change of `metric` from the intervention's start (the source's tracked
            // value at from_epoch) to each of its epochs.
            let changes = |g: &str, metric: &str| -> BTreeMap<u64, Vec<(usize, f64)>> {
                let start = tracked(self.rows, &i.source, metric);
                tracked(self.rows, g, metric)
                    .into_iter()
                    .filter_map(|(s, v)| {
                        let b = start.get(&s)?.iter().find(|p| p.0 == i.from_epoch)?.1;
                        Some((s, v.iter().map(|p| (p.0, p.1 - b)).collect()))
                    })
                    .collect()
            };
            // Per seed (paired), f(nc) - f(control).
            let paired = |metric: &str, f: &dyn Fn(&[Point]) -> Option<f64>| -> Vec<f64> {
                let (nc, control) = (changes(&g_nc, metric), changes(&g_control, metric));
                nc.iter()
                    .filter_map(|(s, v)| Some(f(v)? - f(control.get(s)?)?))
                    .collect()
            };
            let at = |e: usize| move |v: &[(usize, f64)]| v.iter().find(|p| p.0 == e).map(|p| p.1);
            let max = |v: &[(usize, f64)]| v.iter().map(|p| p.1).reduce(f64::max);
            let mean_at = |g: &str, e: usize| {
                let v: Vec<f64> = changes(g, "auroc")
                    .values()
                    .filter_map(|v| at(e)(v))
                    .collect();
                (!v.is_empty()).then(|| Stat::Mean.of(&v))
            };
            let best_control = (1..=i.epochs)
                .filter_map(|e| mean_at(&g_control, e))
                .fold(f64::NEG_INFINITY, f64::max);
            // SPEC 7: was the source on a plateau when the intervention began?
            let before = |metric: &str| {
                let d: Vec<f64> = tracked(self.rows, &i.source, metric)
                    .values()
                    .filter_map(|v| {
                        Some(at(i.from_epoch)(v)? - at(i.from_epoch.checked_sub(1)?)(v)?)
                    })
                    .collect();
                (!d.is_empty()).then(|| Stat::Mean.of(&d))
            };
            let fmt = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:+.4}"));
            let count = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:+.1}"));
            let note = format!(
                "mean gains after 2 epochs: NC {}, control {}; control's best mean gain within {} epochs: {best_control:+.4} (paper: +0.017 within 20); the source's change over the epoch before {}: AUROC {}, test accuracy {} (SPEC 7 asks for a plateau)",
                fmt(mean_at(&g_nc, 2)),
                fmt(mean_at(&g_control, 2)),
                i.epochs,
                i.from_epoch,
                fmt(before("auroc")),
                fmt(before("test_acc"))
            );
            let gain = paired("auroc", &at(2));
            let c9 = "intervention: AUROC gain after 2 epochs, NC-loss group > control (per seed, NC - control)";
            self.add(
                claim(
                    "C9",
                    c9,
                    "+0.038 vs +0.008 (Figure 4)",
                    &g_nc,
                    &g_control,
                    "auroc gain",
                    Stat::Mean,
                    Side::Above,
                    0.0,
                ),
                "",
                gain.clone(),
                zeros(&gain),
                note,
            );
            let fp = changes(&g_nc, "topn_false_positives");
            let mean_of = |pick: fn(f64, f64) -> f64| {
                let v: Vec<f64> = fp
                    .values()
                    .filter_map(|v| v.iter().map(|p| p.1).reduce(pick))
                    .collect();
                (!v.is_empty()).then(|| Stat::Mean.of(&v))
            };
            let note = format!(
                "NC group's change from the start: lowest {}, highest {} (means over seeds)",
                count(mean_of(f64::min)),
                count(mean_of(f64::max))
            );
            let more = paired("topn_false_positives", &max);
            let c10 = "false positives: the NC loss raises top-N false positives within the intervention more than the control does (per seed, highest change NC - control)";
            self.add(
                claim(
                    "C10",
                    c10,
                    "+500 on average within 20 epochs (Figure 5)",
                    &g_nc,
                    &g_control,
                    "topn_false_positives rise",
                    Stat::Mean,
                    Side::Above,
                    0.0,
                ),
                "",
                more.clone(),
                zeros(&more),
                note,
            );
            nc_rise.extend(fp.values().filter_map(|v| max(v)));
        }
        nc_rise
    }

    /// C10, over-training: the net change of top-N false positives from the source's last epoch
    /// to the over-training's.
    fn overtraining(&mut self, nc_rise: &[f64]) {
        let added = |over: &str| -> Vec<f64> {
            let (Some(start), Some(end)) =
                (start_epoch(self.runs, over), final_epoch(self.runs, over))
            else {
                return vec![];
            };
            tracked(self.rows, over, "topn_false_positives")
                .values()
                .filter_map(|v| {
                    let at = |e| v.iter().find(|p| p.0 == e).map(|p| p.1);
                    Some(at(end)? - at(start)?)
                })
                .collect()
        };
        if let Some(o) = &self.roles.l2_overtrain {
            let c = "false positives: over-training L2-short to 2.5x adds far fewer than the NC loss (net change vs the NC group's highest)";
            let a = added(o);
            self.add(
                claim(
                    "C10",
                    c,
                    "+54 over 90 epochs vs +500",
                    o,
                    "nc loss",
                    "topn_false_positives added",
                    Stat::Mean,
                    Side::Below,
                    0.0,
                ),
                "",
                a,
                nc_rise.to_vec(),
                String::new(),
            );
        }
        if let Some(o) = &self.roles.nol2_overtrain {
            let c =
                "false positives: over-training no-L2-long to 1.43x adds at most ~20 (net change)";
            let a = added(o);
            self.add(
                claim(
                    "C10",
                    c,
                    "at most ~20 (Figure 5)",
                    o,
                    "0",
                    "topn_false_positives added",
                    Stat::Mean,
                    Side::Below,
                    20.0,
                ),
                "",
                a.clone(),
                zeros(&a),
                String::new(),
            );
        }
    }

    /// C11: over-training L2 to the long schedule.
    fn l2_long(&mut self) {
        if let (Some(short), Some(long)) = (&self.roles.l2_short, &self.roles.l2_long) {
            let c11 = "over-training L2 to the long schedule: accuracy slightly up, AUROC clearly down vs L2-short";
            self.add(
                claim(
                    "C11",
                    c11,
                    "accuracy up, AUROC down (Table 6)",
                    long,
                    short,
                    "accuracy",
                    Stat::Mean,
                    Side::Above,
                    0.0,
                ),
                "",
                self.accuracy(long),
                self.accuracy(short),
                String::new(),
            );
            for ood in &self.sets.clone() {
                self.add(
                    claim(
                        "C11",
                        c11,
                        "accuracy up, AUROC down (Table 6)",
                        long,
                        short,
                        "auroc",
                        Stat::Mean,
                        Side::Below,
                        0.0,
                    ),
                    ood,
                    self.auroc(long, ood),
                    self.auroc(short, ood),
                    String::new(),
                );
            }
        }
    }

    /// C12: across seeds, NC1 at each run's peak-AUROC epoch vs the peak AUROC: weakly correlated.
    fn peak(&mut self) {
        if let Some(long) = &self.roles.nol2_long {
            let nc1 = tracked(self.rows, long, "nc1");
            let (mut x, mut y) = (vec![], vec![]);
            for (s, a) in tracked(self.rows, long, "auroc") {
                let Some(peak) = a
                    .iter()
                    .copied()
                    .reduce(|p, q| if q.1 > p.1 { q } else { p })
                else {
                    continue;
                };
                if let Some(n) = nc1.get(&s).and_then(|v| v.iter().find(|p| p.0 == peak.0)) {
                    x.push(n.1);
                    y.push(peak.1);
                }
            }
            let seed = stream(&[self.block, "C12", long]);
            if let Some((rho, interval)) = bootstrap_spearman(&x, &y, seed) {
                let n = [x.len(), x.len()];
                self.out.push(Judged {
                    block: self.block.into(),
                    claim: "C12".into(),
                    statement: format!("peak AUROC is not predicted by the amount of NC: across seeds, abs(Spearman rho(NC1 at the peak epoch, peak AUROC)) < {WEAK}"),
                    ood: String::new(),
                    a: long.clone(),
                    b: String::new(),
                    metric: "spearman(nc1 at peak, peak auroc)".into(),
                    stat: Stat::Rho,
                    a_value: rho,
                    b_value: 0.0,
                    difference: rho,
                    interval,
                    side: Side::Within,
                    margin: WEAK,
                    seeds: n,
                    verdict: verdict(interval, Side::Within, WEAK, n),
                    paper: "weak correlation".into(),
                    scale: self.scale.into(),
                    note: format!("abs(rho) < {WEAK} counts as weak: this project's threshold (SPEC 8 names none); with few seeds the interval is wide and the verdict inconclusive"),
                });
            }
        }
    }
}

/// A comparison, its fields in order (the claims above read as a table).
#[allow(clippy::too_many_arguments)]
fn claim<'a>(
    claim: &'a str,
    statement: &'a str,
    paper: &'a str,
    a: &'a str,
    b: &'a str,
    metric: &'a str,
    stat: Stat,
    side: Side,
    margin: f64,
) -> Comparison<'a> {
    Comparison {
        claim,
        statement,
        paper,
        a,
        b,
        metric,
        stat,
        side,
        margin,
    }
}

/// (epoch, value) of a tracked curve.
type Point = (usize, f64);

/// The seed of a comparison's resampling, from what it compares: the same interval whatever
/// other comparisons a report holds.
fn stream(parts: &[&str]) -> u64 {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(parts.join("\u{1f}").as_bytes());
    u64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
}

/// Below this |rho| a correlation counts as weak (C12).
pub const WEAK: f64 = 0.5;

/// The judged claims as Markdown: each claim's statement, then one table row per comparison,
/// then the scale they were judged at.
pub fn markdown(judged: &[Judged]) -> String {
    let mut s = String::from(
        "| claim | statement | supported | contradicted | inconclusive |\n|---|---|---|---|---|\n",
    );
    for (claim, statement, [yes, no, open]) in summary(judged) {
        s += &format!("| {claim} | {statement} | {yes} | {no} | {open} |\n");
    }
    s += "\n| claim | OoD set | compared | this study | paper | difference [95% CI] | verdict | note |\n|---|---|---|---|---|---|---|---|\n";
    for j in judged {
        s += &format!(
            "| {} | {} | {} of {} vs {} | {:.4} vs {:.4} | {} | {:+.4} [{:+.4}, {:+.4}] | {} | {} |\n",
            j.claim,
            if j.ood.is_empty() { "-" } else { &j.ood },
            stat_name(j.stat, &j.metric),
            j.a,
            if j.b.is_empty() { "-" } else { &j.b },
            j.a_value,
            j.b_value,
            j.paper,
            j.difference,
            j.interval[0],
            j.interval[1],
            verdict_name(j.verdict),
            j.note
        );
    }
    if let Some(j) = judged.first() {
        s += &format!("\nJudged at this study's scale: {}.\n", j.scale);
    }
    s
}

/// Per (claim, statement), in order of appearance, how many comparisons were supported,
/// contradicted and inconclusive: the report's first answer to "does the claim hold here?".
pub fn summary(judged: &[Judged]) -> Vec<(&str, &str, [usize; 3])> {
    let mut out: Vec<(&str, &str, [usize; 3])> = vec![];
    for j in judged {
        let k = match out
            .iter()
            .position(|o| o.0 == j.claim && o.1 == j.statement)
        {
            Some(k) => k,
            None => {
                out.push((&j.claim, &j.statement, [0; 3]));
                out.len() - 1
            }
        };
        out[k].2[j.verdict as usize] += 1;
    }
    out
}

/// "mean auroc", "min accuracy", ...
pub fn stat_name(stat: Stat, metric: &str) -> String {
    let s = match stat {
        Stat::Mean => "mean",
        Stat::Min => "min",
        Stat::Std => "std",
        Stat::MinVsMax => "min vs max",
        Stat::Rho => "",
    };
    format!("{s} {metric}").trim().to_string()
}

pub fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Supported => "supported",
        Verdict::Contradicted => "contradicted",
        Verdict::Inconclusive => "inconclusive",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_and_quantiles_by_hand() {
        let x = [0.90, 0.94, 0.95];
        assert!((Stat::Mean.of(&x) - 0.93).abs() < 1e-15);
        assert_eq!(Stat::Min.of(&x), 0.90);
        assert!((Stat::Std.of(&x) - 7e-4f64.sqrt()).abs() < 1e-15);
        // numpy.quantile([1, 2, 3, 4], 0.5) = 2.5; 0.25 -> 1.75.
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.5), 2.5);
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.25), 1.75);
    }

    #[test]
    fn verdicts_on_synthetic_results() {
        let up = [0.95, 0.96, 0.97, 0.96];
        let down = [0.80, 0.82, 0.81, 0.83];
        let mixed = [0.90, 0.97, 0.80, 0.95];
        // Supported: every resample keeps the difference above 0.
        let (d, i) = bootstrap_difference(&up, &down, Stat::Mean, 1);
        assert!((d - 0.145).abs() < 1e-12 && i[0] > 0.0, "{d} {i:?}");
        assert_eq!(verdict(i, Side::Above, 0.0, [4, 4]), Verdict::Supported);
        // Contradicted: the claim says above, the data say below.
        let (_, i) = bootstrap_difference(&down, &up, Stat::Mean, 1);
        assert_eq!(verdict(i, Side::Above, 0.0, [4, 4]), Verdict::Contradicted);
        // Inconclusive: the interval straddles zero.
        let (_, i) = bootstrap_difference(&mixed, &[0.90, 0.91, 0.89, 0.92], Stat::Mean, 1);
        assert!(i[0] < 0.0 && i[1] > 0.0, "{i:?}");
        assert_eq!(verdict(i, Side::Above, 0.0, [4, 4]), Verdict::Inconclusive);
        // Too few seeds: inconclusive whatever the interval.
        let (_, i) = bootstrap_difference(&up[..2], &down[..2], Stat::Mean, 1);
        assert_eq!(verdict(i, Side::Above, 0.0, [2, 2]), Verdict::Inconclusive);
        // A margin: within 0.01 below is fine ("above -0.01").
        assert_eq!(
            verdict([-0.005, 0.002], Side::Above, -0.01, [3, 3]),
            Verdict::Supported
        );
        assert_eq!(
            verdict([-0.05, -0.02], Side::Above, -0.01, [3, 3]),
            Verdict::Contradicted
        );
        assert_eq!(
            verdict([-0.02, -0.01], Side::Below, 0.0, [3, 3]),
            Verdict::Supported
        );
        // Within a margin (C12's weak correlation): both ends inside, or one side wholly out.
        assert_eq!(
            verdict([-0.3, 0.4], Side::Within, 0.5, [5, 5]),
            Verdict::Supported
        );
        assert_eq!(
            verdict([0.6, 0.9], Side::Within, 0.5, [5, 5]),
            Verdict::Contradicted
        );
        assert_eq!(
            verdict([-0.2, 0.8], Side::Within, 0.5, [5, 5]),
            Verdict::Inconclusive
        );
        // A monotone relation keeps rho = 1 in every resample that has two distinct values.
        let x: Vec<f64> = (0..8).map(f64::from).collect();
        let y: Vec<f64> = x.iter().map(|v| v * v).collect();
        assert_eq!(bootstrap_spearman(&x, &y, 3), Some((1.0, [1.0, 1.0])));
        assert_eq!(bootstrap_spearman(&x[..2], &y[..2], 3), None);
        // Seeded: the same interval again.
        assert_eq!(
            bootstrap_difference(&mixed, &up, Stat::Min, 7),
            bootstrap_difference(&mixed, &up, Stat::Min, 7)
        );
    }
}
