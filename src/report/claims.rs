//! The paper's claims (SPEC 8) judged on a study's own runs: per OoD set, this study's numbers,
//! the paper's, the difference, a 95% percentile bootstrap interval over seeds (each group's seeds
//! resampled with replacement, 10,000 resamples, seeded) and a verdict: supported when the
//! interval lies on the claimed side of the margin, contradicted when it lies on the other side,
//! inconclusive when it straddles it or a group has fewer than 3 seeds.
use super::results::Row;
use crate::rng;
use rand::Rng;
use serde::{Deserialize, Serialize};

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
}

impl Stat {
    pub fn of(self, x: &[f64]) -> f64 {
        let n = x.len() as f64;
        let mean = x.iter().sum::<f64>() / n;
        match self {
            Stat::Mean => mean,
            Stat::Min => x.iter().copied().fold(f64::INFINITY, f64::min),
            Stat::Std => (x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt(),
        }
    }
}

/// Which side of the margin the claim puts stat(a) - stat(b) on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Above,
    Below,
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
        _ => Verdict::Inconclusive,
    }
}

/// One judged comparison of a claim on one OoD set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judged {
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

/// The per-seed values of `run`'s last evaluated epoch that `pick` selects.
pub fn final_values(rows: &[Row], run: &str, pick: &dyn Fn(&Row) -> bool) -> Vec<f64> {
    let last = rows
        .iter()
        .filter(|r| r.key.run == run && r.key.source == "eval")
        .map(|r| r.key.epoch)
        .max();
    let mut v: Vec<(u64, f64)> = rows
        .iter()
        .filter(|r| {
            r.key.run == run && r.key.source == "eval" && Some(r.key.epoch) == last && pick(r)
        })
        .map(|r| (r.seed, r.value))
        .collect();
    v.sort_by_key(|p| p.0);
    v.into_iter().map(|p| p.1).collect()
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
    })
}

/// The claims this report judges so far, from the study's roles (SPEC 8): C1 (mean AUROC of
/// L2-short at least no-L2-long's), C2 (accuracy within 0.01), C3 (worst-case AUROC higher), C4
/// (AUROC spread smaller) and C5 (ablation at equal epochs: mean and min accuracy and AUROC of L2
/// at least no-L2's). AUROC is GDA's on the features each run's head reads, at each run's last
/// evaluated epoch.
pub fn judge_study(
    rows: &[Row],
    runs: &[crate::study::plan::RunRef],
    roles: &crate::study::spec::Roles,
    scale: &str,
) -> Vec<Judged> {
    let head = |run: &str| {
        runs.iter()
            .find(|r| r.name == run)
            .map(|r| r.head.name())
            .unwrap_or("")
    };
    let auroc = |run: &str, ood: &str| {
        let f = head(run).to_string();
        let ood = ood.to_string();
        final_values(rows, run, &move |r: &Row| {
            let k = &r.key;
            k.metric == "auroc" && k.score == "gda" && k.features == f && k.ood == ood
        })
    };
    let accuracy = |run: &str| final_values(rows, run, &|r: &Row| r.key.metric == "accuracy");
    let mut sets: Vec<String> = rows
        .iter()
        .filter(|r| r.key.source == "eval" && !r.key.ood.is_empty())
        .map(|r| r.key.ood.clone())
        .collect();
    sets.sort();
    sets.dedup();
    let mut out = vec![];
    let mut seed = 0u64;
    let mut add = |c: Comparison, ood: &str, a: Vec<f64>, b: Vec<f64>| {
        seed += 1; // one resampling stream per comparison, fixed by its position
        out.extend(judge(&c, ood, &a, &b, scale, seed));
    };
    if let (Some(l2), Some(long)) = (&roles.l2_short, &roles.nol2_long) {
        for ood in &sets {
            let c = |claim, statement, paper, stat, side| Comparison {
                claim,
                statement,
                paper,
                a: l2,
                b: long,
                metric: "auroc",
                stat,
                side,
                margin: 0.0,
            };
            add(
                c(
                    "C1",
                    "mean AUROC: L2 at the short schedule >= no L2 at the long one",
                    "RN18: above; RN50: -0.01",
                    Stat::Mean,
                    Side::Above,
                ),
                ood,
                auroc(l2, ood),
                auroc(long, ood),
            );
            add(
                c(
                    "C3",
                    "worst case: min AUROC over seeds, L2-short > no-L2-long",
                    "+0.047 RN18, +0.024 RN50",
                    Stat::Min,
                    Side::Above,
                ),
                ood,
                auroc(l2, ood),
                auroc(long, ood),
            );
            add(
                c(
                    "C4",
                    "spread: std of AUROC over seeds smaller with L2-short",
                    "smaller (RN18, RN50)",
                    Stat::Std,
                    Side::Below,
                ),
                ood,
                auroc(l2, ood),
                auroc(long, ood),
            );
        }
        add(
            Comparison {
                claim: "C2",
                statement: "accuracy: L2-short within 0.01 of no-L2-long",
                paper: "RN18 -0.008; RN50 higher",
                a: l2,
                b: long,
                metric: "accuracy",
                stat: Stat::Mean,
                side: Side::Above,
                margin: -0.01,
            },
            "",
            accuracy(l2),
            accuracy(long),
        );
    }
    if let (Some(l2), Some(short)) = (&roles.l2_short, &roles.nol2_short) {
        let c = |metric, stat| Comparison {
            claim: "C5",
            statement: "ablation at equal epochs: L2 >= no L2 in mean and min accuracy and AUROC",
            paper: "L2 higher in all (Table 2)",
            a: l2,
            b: short,
            metric,
            stat,
            side: Side::Above,
            margin: 0.0,
        };
        for stat in [Stat::Mean, Stat::Min] {
            add(c("accuracy", stat), "", accuracy(l2), accuracy(short));
            for ood in &sets {
                add(c("auroc", stat), ood, auroc(l2, ood), auroc(short, ood));
            }
        }
    }
    out
}

/// The judged claims as a markdown table.
pub fn markdown(judged: &[Judged]) -> String {
    let mut s = String::from(
        "| claim | OoD set | compared | this study | paper | difference [95% CI] | verdict |\n|---|---|---|---|---|---|---|\n",
    );
    for j in judged {
        s += &format!(
            "| {} | {} | {:?} {} of {} vs {} | {:.4} vs {:.4} | {} | {:+.4} [{:+.4}, {:+.4}] | {:?} |\n",
            j.claim,
            if j.ood.is_empty() { "-" } else { &j.ood },
            j.stat,
            j.metric,
            j.a,
            j.b,
            j.a_value,
            j.b_value,
            j.paper,
            j.difference,
            j.interval[0],
            j.interval[1],
            j.verdict
        );
    }
    s
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
        // Seeded: the same interval again.
        assert_eq!(
            bootstrap_difference(&mixed, &up, Stat::Min, 7),
            bootstrap_difference(&mixed, &up, Stat::Min, 7)
        );
    }
}
