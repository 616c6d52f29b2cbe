//! The paper's claims (SPEC 8) judged on a study's own runs. `CLAIMS` holds them as data (id,
//! statement, the paper's value, the statistic, the claimed side and margin: the twelve on one
//! screen); one function per claim says only which runs and values it compares, and
//! `report::stats` decides. Each judged claim is one verdict per roles block and OoD set (per model
//! for C7), built from one or more tested parts:
//! - one part: its decision;
//! - "all of" k parts (C5, C7, C10's epochs): supported when every part is (an intersection-union
//!   test: level 2.5% with no correction), contradicted when one part is at 2.5% / k (Bonferroni);
//! - "at least m of" k parts (C6's "nearly all"): m parts supported, or k - m + 1 contradicted,
//!   each at 2.5% / k.
//!
//! Below a method's minimum seeds (`stats::Method::min_seeds`) a claim is "too few seeds (needs
//! N)"; C1-C4 out of the paper's regime (`regime`) are "out of the paper's regime"; C7 on the
//! paper's own exception (ResNet50 without L2 at the long schedule) is "the paper's exception".
use super::regime::Regime;
use super::results::{
    NC_MEASURES, Row, SOFTMAX_SCORES, final_accuracy, final_auroc, final_by_seed, final_epoch,
    head, intervention_curve, start_epoch, tracked, tracked_at, tracked_on, tracked_ood,
    tracked_rho,
};
use super::stats::{
    self, ALPHA, Decision, Side, Test, equivalence_seeds, mean, min_difference, rank_correlation,
    sign_flip, std_difference, welch,
};
use crate::study::plan::RunRef;
use crate::study::spec::{InterventionSpec, Roles, intervention_run};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A claim as the paper states it and as this project judges it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ClaimDef {
    pub id: &'static str,
    pub statement: &'static str,
    /// The paper's numbers.
    pub paper: &'static str,
    /// What is compared and how it is tested.
    pub statistic: &'static str,
    pub side: Side,
    pub margin: f64,
}

const fn def(
    id: &'static str,
    statement: &'static str,
    paper: &'static str,
    statistic: &'static str,
    side: Side,
    margin: f64,
) -> ClaimDef {
    ClaimDef {
        id,
        statement,
        paper,
        statistic,
        side,
        margin,
    }
}

/// The claims of SPEC 8, in the paper's order.
pub const CLAIMS: [ClaimDef; 20] = [
    def(
        "C1",
        "L2-short's mean GDA AUROC is competitive with no-L2-long's (at most 0.01 below)",
        "RN18 above; RN50 -0.01",
        "difference of means, Welch t",
        Side::Above,
        -0.01,
    ),
    def(
        "C1+",
        "L2-short's mean GDA AUROC exceeds no-L2-long's",
        "RN18 above",
        "difference of means, Welch t",
        Side::Above,
        0.0,
    ),
    def(
        "C2",
        "L2-short's test accuracy is within 0.01 of no-L2-long's",
        "RN18 -0.008; RN50 higher",
        "difference of means, Welch t",
        Side::Above,
        -0.01,
    ),
    def(
        "C3",
        "worst case: L2-short's minimum AUROC over seeds is above no-L2-long's",
        "+0.047 RN18, +0.024 RN50",
        "difference of minima, permutation test",
        Side::Above,
        0.0,
    ),
    def(
        "C4",
        "spread: the std of AUROC over seeds is smaller with L2-short",
        "smaller (RN18, RN50)",
        "difference of stds, permutation test",
        Side::Below,
        0.0,
    ),
    def(
        "C5",
        "ablation at equal (short) epochs: L2 >= no L2 in mean accuracy, min accuracy and mean AUROC",
        "L2 higher in all (Table 2)",
        "all parts: Welch t (means), permutation test (min)",
        Side::Above,
        0.0,
    ),
    def(
        "C5*",
        "across Table 2's configurations, the worst L2 configuration's min and mean AUROC exceed the best no-L2 configuration's",
        "L2's worst above no L2's best (Table 2)",
        "all L2 x no-L2 configuration pairs: permutation test (min), Welch t (mean)",
        Side::Above,
        0.0,
    ),
    def(
        "C6",
        "nearly all NC measures (at least 4 of NC1, NC2 equinorm, NC2 equiangularity, NC3, NC4) lower with L2-short than with no-L2-long (each on its head's input)",
        "all lower (Table 3)",
        "at least 4 of 5 Welch t at 2.5%/5",
        Side::Below,
        0.0,
    ),
    def(
        "C6 raw",
        "the same like for like: L2-short's raw features against no-L2-long's",
        "(not reported)",
        "at least 4 of 5 Welch t at 2.5%/5",
        Side::Below,
        0.0,
    ),
    def(
        "C6 =",
        "at equal epochs nearly all NC measures are lower with L2, about 10x (ratios reported)",
        "~10x lower (Table 3)",
        "at least 4 of 5 Welch t at 2.5%/5",
        Side::Below,
        0.0,
    ),
    def(
        "C7",
        "every softmax-family score's AUROC is below GDA's (the seven as one family per model and OoD set)",
        "all but RN50 no-L2 350 (Table 4)",
        "paired per seed (score - GDA), all 7 exact sign-flip",
        Side::Below,
        0.0,
    ),
    def(
        "C8",
        "NC tracks OoD: over the no-L2 long runs, Spearman rho(NC1, AUROC) across epochs is negative",
        "NC falls as AUROC rises (Figure 3)",
        "per-run rho, exact sign-flip",
        Side::Below,
        0.0,
    ),
    def(
        "C8 fall",
        "AUROC falls after its peak (last minus the value at the peak of the other runs' mean curve)",
        "a slight fall (Figure 3)",
        "per-run fall, exact sign-flip",
        Side::Below,
        0.0,
    ),
    def(
        "C9",
        "after 2 epochs of the intervention the NC-loss group gained more AUROC than the control",
        "+0.038 vs +0.008 (Figure 4)",
        "paired per seed, exact sign-flip",
        Side::Above,
        0.0,
    ),
    def(
        "C10",
        "the NC loss raises top-N false positives more than the control (highest change from the start)",
        "+500 within 20 epochs (Figure 5)",
        "paired per seed, exact sign-flip",
        Side::Above,
        0.0,
    ),
    def(
        "C10 L2",
        "over-training L2-short to 2.5x adds fewer top-N false positives than the NC loss's rise",
        "+54 over 90 epochs vs +500",
        "difference of means, Welch t",
        Side::Below,
        0.0,
    ),
    def(
        "C10 no-L2",
        "over-training no-L2-long to 1.43x: the seed-averaged top-N false positives stay within ~20 of the start at every epoch",
        "at most ~20 (Figure 5)",
        "every epoch, exact sign-flip against 20",
        Side::Below,
        20.0,
    ),
    def(
        "C11",
        "L2 over-trained to the long schedule: test accuracy above no-L2-long's",
        "slightly above (Table 6)",
        "difference of means, Welch t",
        Side::Above,
        0.0,
    ),
    def(
        "C11 AUROC",
        "L2 over-trained to the long schedule: mean AUROC below L2-short's",
        "clearly below (Table 6)",
        "difference of means, Welch t",
        Side::Below,
        0.0,
    ),
    def(
        "C12",
        "peak AUROC is not predicted by the amount of NC: across seeds, NC1 at each run's peak-AUROC epoch vs the peak AUROC",
        "weak correlation",
        "Spearman rho, permutation test",
        Side::Neither,
        0.0,
    ),
];

/// The claim `id` of `CLAIMS`.
pub fn claim(id: &str) -> &'static ClaimDef {
    CLAIMS
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("claim {id} is not in CLAIMS"))
}

/// A judged claim's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Supported,
    Contradicted,
    Inconclusive,
    /// C12: no relation found (an absent relation is never "supported").
    NotContradicted,
    /// Fewer seeds than its method needs (`needs` says how many).
    TooFewSeeds,
    /// C1-C4 when the regime check fails.
    OutOfRegime,
    /// C7 where the paper itself found the softmax family not below GDA.
    Exception,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Supported => "supported",
            Verdict::Contradicted => "contradicted",
            Verdict::Inconclusive => "inconclusive",
            Verdict::NotContradicted => "not contradicted",
            Verdict::TooFewSeeds => "too few seeds",
            Verdict::OutOfRegime => "out of the paper's regime",
            Verdict::Exception => "the paper's exception",
        }
    }
}

/// One tested comparison of a claim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Part {
    /// What is compared, e.g. "mean auroc of l2-short vs nol2-long".
    pub what: String,
    /// Each group's statistic (means, minima, stds; a paired test's mean and the margin).
    pub values: [f64; 2],
    pub test: Test,
    pub decision: Decision,
    /// The seeds its method needs, when it has fewer.
    pub needs: Option<usize>,
}

/// One verdict of a claim: a roles block, an OoD set ("" for claims without one) and, for C7, a
/// model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judged {
    pub block: String,
    pub claim: String,
    pub ood: String,
    /// What the verdict is about (the runs compared).
    pub subject: String,
    pub verdict: Verdict,
    /// With `TooFewSeeds`: the seeds per group its methods need.
    pub needs: Option<usize>,
    /// The effect in words: estimate with its 95% interval (or p-value), or the parts' tally.
    pub effect: String,
    /// Seeds per group (the smallest over its parts).
    pub seeds: [usize; 2],
    pub note: String,
    pub parts: Vec<Part>,
}

/// The rule that turns a claim's parts into its verdict.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// Every part on the claimed side.
    All,
    /// At least this many of the parts on the claimed side.
    AtLeast(usize),
}

/// A part from a test against `margin` on the claim's side; None without a test.
fn part(what: String, values: [f64; 2], test: Option<Test>, side: Side) -> Option<Part> {
    let test = test?;
    let min = test.method.min_seeds();
    let needs = (test.n[0].min(test.n[1]) < min).then_some(min);
    Some(Part {
        what,
        values,
        decision: test.decide(side),
        test,
        needs,
    })
}

/// The verdict of parts under a rule (claims on `side`).
fn combine(parts: &[Part], rule: Rule, side: Side) -> (Verdict, Option<usize>) {
    if let Some(needs) = parts.iter().filter_map(|p| p.needs).max() {
        return (Verdict::TooFewSeeds, Some(needs));
    }
    if parts.is_empty() {
        return (Verdict::Inconclusive, None);
    }
    if let Side::Neither = side {
        return match parts[0].decision {
            Decision::Contradicted => (Verdict::Contradicted, None),
            _ => (Verdict::NotContradicted, None),
        };
    }
    let other = match side {
        Side::Above => Side::Below,
        _ => Side::Above,
    };
    let k = parts.len();
    let bonferroni = ALPHA / k as f64;
    let count = |s: Side, level: f64| parts.iter().filter(|p| p.test.p(s) <= level).count();
    let (supported, contradicted) = match rule {
        Rule::All => (count(side, ALPHA) == k, count(other, bonferroni) >= 1),
        Rule::AtLeast(m) => (
            count(side, bonferroni) >= m,
            count(other, bonferroni) > k - m,
        ),
    };
    let v = if contradicted {
        Verdict::Contradicted
    } else if supported {
        Verdict::Supported
    } else {
        Verdict::Inconclusive
    };
    (v, None)
}

/// A signed number as the report prints it: 4 decimals below 10 (AUROC, accuracy, NC), 1 above
/// (counts of false positives).
pub fn signed(x: f64) -> String {
    if x.abs() >= 10.0 {
        format!("{x:+.1}")
    } else {
        format!("{x:+.4}")
    }
}

/// "+0.0123 [+0.0034, +0.0212]" or "+0.0123 (p = 0.031)".
fn effect_of(p: &Part, side: Side) -> String {
    let t = &p.test;
    if t.estimate.is_nan() {
        return "-".into();
    }
    match t.interval {
        Some([lo, hi]) => format!("{} [{}, {}]", signed(t.estimate), signed(lo), signed(hi)),
        None => format!("{} (p = {:.3})", signed(t.estimate), t.p(side)),
    }
}

/// The claim's id as the headline names it: with the model for C7 (one verdict per model).
pub fn label(j: &Judged) -> String {
    if j.claim == "C7" {
        format!("C7 {}", j.subject)
    } else {
        j.claim.clone()
    }
}

/// A roles block's results and the judged claims so far.
struct Judge<'a> {
    rows: &'a [Row],
    runs: &'a [RunRef],
    roles: &'a Roles,
    sets: Vec<String>,
    block: &'a str,
    regime: Option<&'a Regime>,
    /// The paper's C7 exception applies to this block's no-L2 long runs (ResNet50).
    exception: bool,
    out: Vec<Judged>,
}

/// The inputs of one roles block's judgement.
pub struct Block<'a> {
    pub label: &'a str,
    pub roles: &'a Roles,
    /// Interventions from this block's no-L2 long runs.
    pub interventions: &'a [InterventionSpec],
    pub regime: Option<&'a Regime>,
    /// Its no-L2 long runs are ResNet50s (the paper's C7 exception).
    pub resnet50: bool,
}

/// The claims one `[[roles]]` block's runs allow judging. AUROC is GDA's on the features each
/// run's head reads, at each run's last epoch, per evaluated OoD set; NC and the curves are the
/// tracked values (training subset; the tracked OoD set).
pub fn judge_block(rows: &[Row], runs: &[RunRef], b: &Block) -> Vec<Judged> {
    let mut j = Judge {
        rows,
        runs,
        roles: b.roles,
        sets: super::results::ood_sets(rows),
        block: b.label,
        regime: b.regime,
        exception: b.resnet50,
        out: vec![],
    };
    j.headline();
    j.ablation();
    j.collapse();
    j.softmax();
    j.nc_tracks_ood();
    let nc_rise = j.intervention(b.interventions);
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

    /// A resampling seed fixed by what is compared: the same result whatever else a report holds.
    fn seed(&self, parts: &[&str]) -> u64 {
        use sha2::{Digest, Sha256};
        let mut all = vec![self.block];
        all.extend_from_slice(parts);
        let d = Sha256::digest(all.join("\u{1f}").as_bytes());
        u64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
    }

    /// Records claim `id`'s verdict on `ood` from `parts` under `rule`; nothing without parts.
    fn add(
        &mut self,
        id: &str,
        ood: &str,
        subject: String,
        parts: Vec<Part>,
        rule: Rule,
        note: String,
    ) {
        if parts.is_empty() {
            return;
        }
        let def = claim(id);
        let (mut verdict, needs) = combine(&parts, rule, def.side);
        let in_regime = ["C1", "C1+", "C2", "C3", "C4"].contains(&id);
        let mut note = note;
        if let (true, Some(r)) = (in_regime, self.regime)
            && r.ok == Some(false)
        {
            verdict = Verdict::OutOfRegime;
            note = format!("{} {note}", r.why).trim().to_string();
        }
        let effect = match (rule, parts.as_slice()) {
            (_, [p]) => effect_of(p, def.side),
            (Rule::All, _) => format!(
                "{} of {} parts {}",
                parts
                    .iter()
                    .filter(|p| p.decision == Decision::Supported)
                    .count(),
                parts.len(),
                side_word(def.side)
            ),
            (Rule::AtLeast(m), _) => format!(
                "{} of {} {} (needs {m})",
                parts
                    .iter()
                    .filter(|p| p.test.p(def.side) <= ALPHA / parts.len() as f64)
                    .count(),
                parts.len(),
                side_word(def.side)
            ),
        };
        let seeds = parts
            .iter()
            .map(|p| p.test.n)
            .min_by_key(|n| n[0].min(n[1]))
            .unwrap_or([0, 0]);
        self.out.push(Judged {
            block: self.block.into(),
            claim: id.into(),
            ood: ood.into(),
            subject,
            verdict,
            needs,
            effect,
            seeds,
            note,
            parts,
        });
    }

    /// One part comparing two groups' values with a two-sample method.
    fn two_sample(
        &self,
        id: &str,
        stat: &str,
        (a_name, a): (&str, &[f64]),
        (b_name, b): (&str, &[f64]),
        ood: &str,
    ) -> Option<Part> {
        let def = claim(id);
        let seed = self.seed(&[id, stat, a_name, b_name, ood]);
        let (sa, sb) = (stats::Stats::of(a)?, stats::Stats::of(b)?);
        let (method, test, values) = match stat.split_whitespace().next() {
            Some("min") => (
                stats::Method::MinPermutation,
                min_difference(a, b, seed),
                [sa.min, sb.min],
            ),
            Some("std") => (
                stats::Method::StdPermutation,
                std_difference(a, b, seed),
                [sa.std.unwrap_or(f64::NAN), sb.std.unwrap_or(f64::NAN)],
            ),
            _ => (
                stats::Method::Welch,
                welch(a, b, def.margin),
                [sa.mean, sb.mean],
            ),
        };
        // A group of one seed has no spread to test with: no evidence either way, and the part
        // says how many seeds it needs.
        let test = test.unwrap_or(Test {
            method,
            n: [a.len(), b.len()],
            estimate: values[0] - values[1],
            interval: None,
            p_above: 1.0,
            p_below: 1.0,
        });
        part(
            format!("{stat} of {a_name} vs {b_name}"),
            values,
            Some(test),
            def.side,
        )
    }

    /// One part testing paired per-seed differences (or per-run statistics) against the claim's
    /// margin.
    fn paired(&self, id: &str, what: String, d: &[f64], ood: &str) -> Option<Part> {
        let def = claim(id);
        let test = sign_flip(d, def.margin, self.seed(&[id, &what, ood]));
        part(what, [mean(d), def.margin], test, def.side)
    }

    /// C1-C4: L2 at the short schedule against no L2 at the long one, per OoD set.
    fn headline(&mut self) {
        let (Some(l2), Some(long)) = (self.roles.l2_short.clone(), self.roles.nol2_long.clone())
        else {
            return;
        };
        let subject = format!("{l2} vs {long}");
        for ood in self.sets.clone() {
            let (a, b) = (self.auroc(&l2, &ood), self.auroc(&long, &ood));
            for (id, stat) in [
                ("C1", "mean auroc"),
                ("C1+", "mean auroc"),
                ("C3", "min auroc"),
                ("C4", "std auroc"),
            ] {
                let p = self.two_sample(id, stat, (&l2, &a), (&long, &b), &ood);
                self.add(
                    id,
                    &ood,
                    subject.clone(),
                    p.into_iter().collect(),
                    Rule::All,
                    String::new(),
                );
            }
        }
        let (a, b) = (self.accuracy(&l2), self.accuracy(&long));
        let p = self.two_sample("C2", "mean accuracy", (&l2, &a), (&long, &b), "");
        self.add(
            "C2",
            "",
            subject,
            p.into_iter().collect(),
            Rule::All,
            String::new(),
        );
    }

    /// C5: Table 2's pair, L2 and no L2 at the short schedule.
    fn ablation(&mut self) {
        let r = self.roles;
        let pairs: Vec<(String, String)> = [(&r.l2_short, &r.nol2_short)]
            .into_iter()
            .filter_map(|(a, b)| Some((a.clone()?, b.clone()?)))
            .collect();
        if pairs.is_empty() {
            return;
        }
        let subject = pairs
            .iter()
            .map(|(a, b)| format!("{a} vs {b}"))
            .collect::<Vec<_>>()
            .join("; ");
        for ood in self.sets.clone() {
            let mut parts = vec![];
            for (l2, no) in &pairs {
                let (a, b) = (self.accuracy(l2), self.accuracy(no));
                parts.extend(self.two_sample("C5", "mean accuracy", (l2, &a), (no, &b), ""));
                parts.extend(self.two_sample("C5", "min accuracy", (l2, &a), (no, &b), ""));
                let (a, b) = (self.auroc(l2, &ood), self.auroc(no, &ood));
                parts.extend(self.two_sample("C5", "mean auroc", (l2, &a), (no, &b), &ood));
            }
            self.add("C5", &ood, subject.clone(), parts, Rule::All, String::new());
        }
    }

    /// C6: NC of L2-short against no-L2-long on each one's head input and raw against raw, and
    /// against no-L2-short (equal epochs) with the ratios.
    fn collapse(&mut self) {
        let Some(l2) = self.roles.l2_short.clone() else {
            return;
        };
        let end = |run: &str| final_epoch(self.runs, run);
        let Some(e_l2) = end(&l2) else { return };
        let others = [
            ("C6", self.roles.nol2_long.clone(), false),
            ("C6 raw", self.roles.nol2_long.clone(), true),
            ("C6 =", self.roles.nol2_short.clone(), false),
        ];
        for (id, other, raw) in others {
            let Some(other) = other else { continue };
            let Some(e) = end(&other) else { continue };
            let mut parts = vec![];
            let mut ratios = vec![];
            for (m, label) in NC_MEASURES {
                let a = if raw {
                    tracked_on(self.rows, &l2, e_l2, m, "raw")
                } else {
                    tracked_at(self.rows, &l2, e_l2, m)
                };
                let b = tracked_at(self.rows, &other, e, m);
                let a_name = format!("{l2} e{e_l2}{}", if raw { " raw" } else { "" });
                let b_name = format!("{other} e{e}");
                if let Some(p) =
                    self.two_sample(id, &format!("mean {m}"), (&a_name, &a), (&b_name, &b), "")
                {
                    if p.values[0] > 0.0 {
                        ratios.push(format!("{label} {:.1}x", p.values[1] / p.values[0]));
                    }
                    parts.push(p);
                }
            }
            let note = format!(
                "{other} / {l2} (means): {}; NC of L2 models on {}",
                ratios.join(", "),
                if raw {
                    "their raw features"
                } else {
                    "the normalised features their head reads"
                }
            );
            self.add(
                id,
                "",
                format!("{l2} vs {other}"),
                parts,
                Rule::AtLeast(4),
                note,
            );
        }
    }

    /// C7: per model and OoD set, every softmax score's AUROC below GDA's, paired per seed.
    fn softmax(&mut self) {
        let models: Vec<String> = self.roles.models().into_iter().cloned().collect();
        for run in models {
            let exception = self.exception && self.roles.nol2_long.as_ref() == Some(&run);
            for ood in self.sets.clone() {
                let h = head(self.runs, &run);
                let pick = |score: &'static str, f: &'static str| {
                    let ood = ood.clone();
                    move |k: &super::results::Key| {
                        k.metric == "auroc" && k.ood == ood && k.score == score && k.features == f
                    }
                };
                let gda = final_by_seed(self.rows, self.runs, &run, &pick("gda", h));
                let mut parts = vec![];
                for score in SOFTMAX_SCORES {
                    let s = final_by_seed(self.rows, self.runs, &run, &pick(score, ""));
                    let d: Vec<f64> = s
                        .iter()
                        .filter_map(|(seed, v)| Some(v - gda.get(seed)?))
                        .collect();
                    parts.extend(self.paired("C7", format!("{score} - gda on {run}"), &d, &ood));
                }
                let before = self.out.len();
                self.add("C7", &ood, run.clone(), parts, Rule::All, String::new());
                if exception && let Some(j) = self.out.get_mut(before) {
                    j.verdict = Verdict::Exception;
                    j.note =
                        "the paper found the softmax family not below GDA here (RN50 no-L2 350)"
                            .into();
                }
            }
        }
    }

    /// C8: over the no-L2 long runs, rho(NC1, AUROC) < 0 per run, and AUROC's fall after its
    /// peak. The peak epoch of each run is taken from the other runs' mean curve, so the fall is
    /// not the upward bias of a maximum over noisy epochs (a run's own peak minus its last value
    /// is never negative).
    fn nc_tracks_ood(&mut self) {
        let Some(long) = self.roles.nol2_long.clone() else {
            return;
        };
        let ood = tracked_ood(self.rows, &long);
        let rhos: Vec<f64> = tracked_rho(self.rows, &long, "nc1", "auroc")
            .into_values()
            .collect();
        let p = self.paired(
            "C8",
            format!("rho(nc1, auroc) per run of {long}"),
            &rhos,
            &ood,
        );
        self.add(
            "C8",
            &ood,
            long.clone(),
            p.into_iter().collect(),
            Rule::All,
            String::new(),
        );
        let curves = tracked(self.rows, &long, "auroc");
        let mut falls = vec![];
        let mut peaks = vec![];
        for (seed, own) in &curves {
            let mut others: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
            for (_, c) in curves.iter().filter(|(s, _)| *s != seed) {
                for &(e, v) in c {
                    others.entry(e).or_default().push(v);
                }
            }
            let peak = others
                .iter()
                .map(|(e, v)| (*e, mean(v)))
                .reduce(|p, q| if q.1 > p.1 { q } else { p });
            let (Some((e, _)), Some(last)) = (peak, own.last()) else {
                continue;
            };
            if let Some(at) = own.iter().find(|p| p.0 == e) {
                falls.push(last.1 - at.1);
                peaks.push(e);
            }
        }
        let p = self.paired(
            "C8 fall",
            format!("last - peak auroc per run of {long}"),
            &falls,
            &ood,
        );
        let note = format!("peak epochs (from the other runs): {peaks:?}");
        self.add(
            "C8 fall",
            &ood,
            long,
            p.into_iter().collect(),
            Rule::All,
            note,
        );
    }

    /// C9 and C10: the intervention (SPEC 7). Both groups of a seed start from the same
    /// checkpoint, so they are compared per seed. Returns the NC group's highest change of top-N
    /// false positives per seed (C10 L2's yardstick).
    fn intervention(&mut self, interventions: &[InterventionSpec]) -> Vec<f64> {
        let mut nc_rise = vec![];
        for i in interventions {
            let (g_nc, g_control) = (
                intervention_run(&i.source, i.from_epoch, "nc"),
                intervention_run(&i.source, i.from_epoch, "control"),
            );
            let curve =
                |g: &str, m: &str| intervention_curve(self.rows, &i.source, i.from_epoch, g, m);
            // Per seed, the change from epoch 0 at epoch `e` (or the highest change).
            let change_at =
                |c: &[(usize, f64)], e: usize| Some(c.iter().find(|p| p.0 == e)?.1 - c.first()?.1);
            let highest =
                |c: &[(usize, f64)]| Some(c.iter().map(|p| p.1).reduce(f64::max)? - c.first()?.1);
            let paired = |m: &str, f: &dyn Fn(&[Point]) -> Option<f64>| -> Vec<f64> {
                let (nc, control) = (curve(&g_nc, m), curve(&g_control, m));
                nc.iter()
                    .filter_map(|(s, v)| Some(f(v)? - f(control.get(s)?)?))
                    .collect()
            };
            let mean_change = |g: &str, e: usize| {
                let v: Vec<f64> = curve(g, "auroc")
                    .values()
                    .filter_map(|c| change_at(c, e))
                    .collect();
                (!v.is_empty()).then(|| mean(&v))
            };
            let best_control = (1..=i.epochs)
                .filter_map(|e| mean_change(&g_control, e))
                .reduce(f64::max);
            // SPEC 7: was the source on a plateau when the intervention began?
            let before = |m: &str| {
                let v: Vec<f64> = tracked(self.rows, &i.source, m)
                    .values()
                    .filter_map(|c| {
                        let at = |e: usize| c.iter().find(|p| p.0 == e).map(|p| p.1);
                        Some(at(i.from_epoch)? - at(i.from_epoch.checked_sub(1)?)?)
                    })
                    .collect();
                (!v.is_empty()).then(|| mean(&v))
            };
            let fmt = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:+.4}"));
            let note = format!(
                "mean gains after 2 epochs: NC {}, control {}; the control's best mean gain within {} epochs: {} (paper: +0.017 within 20); the source's change over the epoch before {}: AUROC {}, test accuracy {} (SPEC 7 asks for a plateau)",
                fmt(mean_change(&g_nc, 2)),
                fmt(mean_change(&g_control, 2)),
                i.epochs,
                fmt(best_control),
                i.from_epoch,
                fmt(before("auroc")),
                fmt(before("test_acc"))
            );
            let gain = paired("auroc", &|c| change_at(c, 2));
            let subject = format!("{g_nc} vs {g_control}");
            let p = self.paired(
                "C9",
                "auroc gain after 2 epochs, nc - control".into(),
                &gain,
                "",
            );
            self.add(
                "C9",
                "",
                subject.clone(),
                p.into_iter().collect(),
                Rule::All,
                note,
            );
            let fp = curve(&g_nc, "topn_false_positives");
            let extreme = |pick: fn(f64, f64) -> f64| {
                let v: Vec<f64> = fp
                    .values()
                    .filter_map(|c| Some(c.iter().map(|p| p.1).reduce(pick)? - c.first()?.1))
                    .collect();
                (!v.is_empty()).then(|| mean(&v))
            };
            let count = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:+.1}"));
            let note = format!(
                "the NC group's change from the start: lowest {}, highest {} (means over seeds)",
                count(extreme(f64::min)),
                count(extreme(f64::max))
            );
            let more = paired("topn_false_positives", &highest);
            let p = self.paired(
                "C10",
                "highest top-N false positives change, nc - control".into(),
                &more,
                "",
            );
            self.add("C10", "", subject, p.into_iter().collect(), Rule::All, note);
            nc_rise.extend(fp.values().filter_map(|c| highest(c)));
        }
        nc_rise
    }

    /// C10, over-training: L2's net change against the NC loss's rise, and no-L2's seed-averaged
    /// curve within 20 of its start at every epoch (an intersection-union test over epochs).
    fn overtraining(&mut self, nc_rise: &[f64]) {
        // Per seed, the change of top-N false positives from the source's last epoch.
        let changes = |over: &str| -> BTreeMap<usize, Vec<f64>> {
            let mut by_epoch: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
            let Some(start) = start_epoch(self.runs, over) else {
                return by_epoch;
            };
            for c in tracked(self.rows, over, "topn_false_positives").values() {
                let Some(b) = c.iter().find(|p| p.0 == start) else {
                    continue;
                };
                for &(e, v) in c.iter().filter(|p| p.0 > start) {
                    by_epoch.entry(e).or_default().push(v - b.1);
                }
            }
            by_epoch
        };
        if let Some(o) = self.roles.l2_overtrain.clone() {
            let end = final_epoch(self.runs, &o).unwrap_or(0);
            let added = changes(&o).remove(&end).unwrap_or_default();
            let p = self.two_sample(
                "C10 L2",
                "mean topn_false_positives added",
                (&o, &added),
                ("the NC loss's rise", nc_rise),
                "",
            );
            self.add(
                "C10 L2",
                "",
                format!("{o} vs the NC loss"),
                p.into_iter().collect(),
                Rule::All,
                String::new(),
            );
        }
        if let Some(o) = self.roles.nol2_overtrain.clone() {
            let by_epoch = changes(&o);
            let mut parts = vec![];
            let mut worst: Option<(usize, f64)> = None;
            for (e, d) in &by_epoch {
                let m = mean(d);
                if worst.is_none_or(|w| m > w.1) {
                    worst = Some((*e, m));
                }
                parts.extend(self.paired(
                    "C10 no-L2",
                    format!("topn_false_positives change at epoch {e}"),
                    d,
                    "",
                ));
            }
            let note = worst.map_or(String::new(), |(e, m)| {
                format!("the seed-averaged curve's maximum above its start: {m:+.1} at epoch {e}")
            });
            self.add("C10 no-L2", "", o, parts, Rule::All, note);
        }
    }

    /// C11: L2 over-trained to the long schedule.
    fn l2_long(&mut self) {
        let r = self.roles;
        let (Some(long), Some(short)) = (r.l2_long.clone(), r.l2_short.clone()) else {
            return;
        };
        if let Some(base) = r.nol2_long.clone() {
            let (a, b) = (self.accuracy(&long), self.accuracy(&base));
            let p = self.two_sample("C11", "mean accuracy", (&long, &a), (&base, &b), "");
            self.add(
                "C11",
                "",
                format!("{long} vs {base}"),
                p.into_iter().collect(),
                Rule::All,
                String::new(),
            );
        }
        for ood in self.sets.clone() {
            let (a, b) = (self.auroc(&long, &ood), self.auroc(&short, &ood));
            let p = self.two_sample("C11 AUROC", "mean auroc", (&long, &a), (&short, &b), &ood);
            self.add(
                "C11 AUROC",
                &ood,
                format!("{long} vs {short}"),
                p.into_iter().collect(),
                Rule::All,
                String::new(),
            );
        }
    }

    /// C12: across seeds, NC1 at each run's peak-AUROC epoch vs the peak AUROC.
    fn peak(&mut self) {
        let Some(long) = self.roles.nol2_long.clone() else {
            return;
        };
        let nc1 = tracked(self.rows, &long, "nc1");
        let (mut x, mut y) = (vec![], vec![]);
        for (s, a) in tracked(self.rows, &long, "auroc") {
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
        let test = rank_correlation(&x, &y, self.seed(&["C12", &long]));
        let p = part(
            format!("spearman(nc1 at peak, peak auroc) of {long}"),
            [test.as_ref().map_or(f64::NAN, |t| t.estimate), 0.0],
            test,
            Side::Neither,
        );
        let note = format!(
            "an equivalence test (|rho| < 0.5 shown at 2.5% per side with 80% power) needs about {} seeds",
            equivalence_seeds(0.5)
        );
        let ood = tracked_ood(self.rows, &long);
        self.add("C12", &ood, long, p.into_iter().collect(), Rule::All, note);
    }
}

/// (epoch, value) of a tracked curve.
type Point = (usize, f64);

fn side_word(side: Side) -> &'static str {
    match side {
        Side::Above => "above",
        Side::Below => "below",
        Side::Neither => "related",
    }
}

/// C5*: across every roles block's Table 2 configurations (L2 and no L2 at the short schedule),
/// the worst L2 configuration's min and mean AUROC above the best no-L2 configuration's: every
/// L2 x no-L2 configuration pair must be (an intersection-union test), per OoD set.
pub fn configurations(rows: &[Row], runs: &[RunRef], blocks: &[Block]) -> Vec<Judged> {
    let l2: Vec<&String> = blocks
        .iter()
        .filter_map(|b| b.roles.l2_short.as_ref())
        .collect();
    let no: Vec<&String> = blocks
        .iter()
        .filter_map(|b| b.roles.nol2_short.as_ref())
        .collect();
    let Some(first) = blocks.first() else {
        return vec![];
    };
    if l2.is_empty() || no.is_empty() {
        return vec![];
    }
    let mut j = Judge {
        rows,
        runs,
        roles: first.roles,
        sets: super::results::ood_sets(rows),
        block: "all",
        regime: None,
        exception: false,
        out: vec![],
    };
    for ood in j.sets.clone() {
        let mut parts = vec![];
        for a in &l2 {
            for b in &no {
                let (x, y) = (j.auroc(a, &ood), j.auroc(b, &ood));
                parts.extend(j.two_sample("C5*", "min auroc", (a, &x), (b, &y), &ood));
                parts.extend(j.two_sample("C5*", "mean auroc", (a, &x), (b, &y), &ood));
            }
        }
        let subject = format!("L2 {:?} vs no L2 {:?}", l2, no);
        j.add("C5*", &ood, subject, parts, Rule::All, String::new());
    }
    j.out
}

/// The judged claims of `block` on `primary` (or without an OoD set): the report's headline, one
/// line per claim (per model for C7), in `CLAIMS` order.
pub fn headline<'a>(judged: &'a [Judged], primary: &str) -> Vec<&'a Judged> {
    let mut out: Vec<&Judged> = judged
        .iter()
        .filter(|j| {
            j.ood.is_empty()
                || j.ood == primary
                || j.claim == "C8"
                || j.claim == "C8 fall"
                || j.claim == "C12"
        })
        .collect();
    let order = |j: &Judged| {
        CLAIMS
            .iter()
            .position(|c| c.id == j.claim)
            .unwrap_or(usize::MAX)
    };
    out.sort_by_key(|j| order(j));
    out
}

/// How the other OoD sets came out for `j`'s claim (same block and subject): "2 supported, 1
/// inconclusive"; empty when there are none.
pub fn other_sets(judged: &[Judged], j: &Judged) -> String {
    let mut tally: BTreeMap<&str, usize> = BTreeMap::new();
    for o in judged.iter().filter(|o| {
        o.block == j.block && o.claim == j.claim && o.subject == j.subject && o.ood != j.ood
    }) {
        *tally.entry(o.verdict.name()).or_default() += 1;
    }
    tally
        .iter()
        .map(|(v, n)| format!("{n} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A verdict with what it needs: "too few seeds (needs 10)".
pub fn verdict_text(j: &Judged) -> String {
    match (j.verdict, j.needs) {
        (Verdict::TooFewSeeds, Some(n)) => format!("too few seeds (needs {n})"),
        (v, _) => v.name().to_string(),
    }
}

/// The claims as Markdown: per block the headline (one line per claim on the primary OoD set),
/// then every judged verdict with its parts.
pub fn markdown(judged: &[Judged], primary: &str) -> String {
    let mut s = format!(
        "Verdicts on the primary OoD set ({primary}); other sets in the last column. Each part is two one-sided tests at 2.5%; see SPEC 8.\n\n| block | claim | verdict | effect [95% CI] | seeds | paper | other OoD sets |\n|---|---|---|---|---|---|---|\n"
    );
    for j in headline(judged, primary) {
        s += &format!(
            "| {} | {} | {} | {} | {} / {} | {} | {} |\n",
            j.block,
            label(j),
            verdict_text(j),
            j.effect,
            j.seeds[0],
            j.seeds[1],
            claim(&j.claim).paper,
            other_sets(judged, j)
        );
    }
    s += "\n| claim | statement | statistic |\n|---|---|---|\n";
    for c in &CLAIMS {
        s += &format!("| {} | {} | {} |\n", c.id, c.statement, c.statistic);
    }
    s += "\n## Every verdict and its parts\n";
    for j in judged {
        s += &format!(
            "\n**{} {}** ({}{}): {} - {}. {}\n\n| part | values | estimate | 95% CI | p (claimed side) | method | seeds | decision |\n|---|---|---|---|---|---|---|---|\n",
            j.block,
            j.claim,
            j.subject,
            if j.ood.is_empty() {
                String::new()
            } else {
                format!(", {}", j.ood)
            },
            verdict_text(j),
            j.effect,
            j.note
        );
        let side = claim(&j.claim).side;
        for p in &j.parts {
            let t = &p.test;
            s += &format!(
                "| {} | {:.4} vs {:.4} | {:+.4} | {} | {:.4} | {} | {} / {} | {} |\n",
                p.what,
                p.values[0],
                p.values[1],
                t.estimate,
                t.interval
                    .map_or("-".into(), |[a, b]| format!("[{a:+.4}, {b:+.4}]")),
                t.p(side),
                t.method.name(),
                t.n[0],
                t.n[1],
                match p.needs {
                    Some(n) => format!("too few seeds (needs {n})"),
                    None => format!("{:?}", p.decision).to_lowercase(),
                }
            );
        }
    }
    s
}

/// The headline as short aligned lines for a terminal: claim, verdict, effect, seeds.
pub fn terminal(judged: &[Judged], primary: &str) -> String {
    let mut s = format!("verdicts on {primary} (every part: report/claims.md):\n");
    for j in headline(judged, primary) {
        s += &format!(
            "  {:<22} {:<26} {:<34} n {}/{}\n",
            label(j),
            verdict_text(j),
            j.effect,
            j.seeds[0],
            j.seeds[1]
        );
    }
    s
}
