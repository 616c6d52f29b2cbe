//! The verdicts a study's report gives (SPEC 8): the error rates of the statistics on simulated
//! studies, and synthetic studies (results.csv-level rows) with planted effects where every claim
//! must come out on its right side, so that flipping a claim's side or margin, or a test's
//! direction, fails here.
use ncood::features::FeatureKind;
use ncood::report::claims::{self, Block, Judged, Verdict};
use ncood::report::regime::Regime;
use ncood::report::results::{Key, Row};
use ncood::report::stats::{Effect, METHODS, Method, null, simulate};
use ncood::study::plan::RunRef;
use ncood::study::spec::{InterventionSpec, Roles};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

/// On null data (no true effect; for Welch unequal spreads, for spreads unequal means) at most 6%
/// of 2,000 simulated studies get a verdict (supported or contradicted), at 5 and 15 seeds.
#[test]
fn null_data_get_few_verdicts() {
    for m in METHODS {
        for n in [5, 15] {
            let r = simulate(m, n, null(m), 2000, 7 + n as u64);
            let rate = r.supported + r.contradicted;
            assert!(rate <= 0.06, "{} at n = {n}: {rate}", m.name());
        }
    }
}

/// A planted location effect of 2 standard deviations at 6 seeds is found at least 80% of the
/// time, in the right direction, by the location methods; and every method's minimum number of
/// seeds is the smallest n at which its planted effect is found 80% of the time.
#[test]
fn planted_effects_are_found_and_minimum_seeds_follow() {
    for m in [Method::Welch, Method::SignFlip] {
        let r = simulate(m, 6, Effect::Shift(2.0), 2000, 11);
        assert!(r.supported >= 0.8, "{}: {}", m.name(), r.supported);
        assert_eq!(r.contradicted, 0.0, "{}", m.name());
        let down = simulate(m, 6, Effect::Shift(-2.0), 2000, 12);
        assert!(
            down.contradicted >= 0.8 && down.supported == 0.0,
            "{}",
            m.name()
        );
    }
    for m in METHODS {
        let n = m.min_seeds();
        let at = simulate(m, n, m.planted(), 2000, 1000 + n as u64).supported;
        let below = simulate(m, n - 1, m.planted(), 2000, 999 + n as u64).supported;
        assert!(
            at >= 0.8 && below < 0.8,
            "{}: power {below} at {} seeds, {at} at {n}",
            m.name(),
            n - 1
        );
    }
}

/// A synthetic study's rows: every claim's quantity planted on its claimed side (`good`) or on
/// the other side, with `seeds` seeds per group.
struct Synthetic {
    rows: Vec<Row>,
    runs: Vec<RunRef>,
}

const SETS: [&str; 2] = ["mnist", "noise"];
const SOFTMAX: [&str; 7] = [
    "msp",
    "max_logit",
    "neg_entropy",
    "energy",
    "msp_t",
    "neg_entropy_t",
    "energy_t",
];

impl Synthetic {
    fn new(seeds: u64, good: bool) -> Synthetic {
        let mut s = Synthetic {
            rows: vec![],
            runs: vec![],
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(if good { 1 } else { 2 });
        let mut noise = move |sd: f64| Normal::new(0.0, sd).unwrap().sample(&mut rng);
        // +1 where the claims hold, -1 where they are reversed.
        let g = if good { 1.0 } else { -1.0 };
        let runs: [(&str, usize, usize, FeatureKind); 8] = [
            ("l2s", 8, 1, FeatureKind::Normalized),
            ("nl", 30, 1, FeatureKind::Raw),
            ("ns", 8, 1, FeatureKind::Raw),
            ("ll", 30, 1, FeatureKind::Normalized),
            ("lo", 20, 9, FeatureKind::Normalized),
            ("no", 43, 31, FeatureKind::Raw),
            ("nl-intervene-e10-nc", 10, 1, FeatureKind::Raw),
            ("nl-intervene-e10-control", 10, 1, FeatureKind::Raw),
        ];
        for seed in 0..seeds {
            for &(name, epochs, first_epoch, head) in &runs {
                s.runs.push(RunRef {
                    name: name.into(),
                    seed,
                    dir: format!("/nonexistent/{name}/s{seed}").into(),
                    head,
                    epochs,
                    first_epoch,
                });
            }
            // Final evaluations. On mnist (the primary set) L2-short is tight and 0.02 above a
            // spread baseline (C1, C1+, C3, C4 hold), or spread and 0.05 below a tight one. On the
            // noise set both are tight and L2-short 0.005 below: competitive (C1) but not above
            // (C1+), whichever way the rest goes. C2, C5, C11: accuracies.
            let mnist = if good {
                [("l2s", 0.96 + noise(0.001)), ("nl", 0.94 + noise(0.02))]
            } else {
                [("l2s", 0.90 + noise(0.02)), ("nl", 0.95 + noise(0.001))]
            };
            let close = [("l2s", 0.945 + noise(0.0005)), ("nl", 0.95 + noise(0.0005))];
            let others = [
                ("ns", 0.95 - 0.03 * g + noise(0.003)),
                ("ll", 0.95 - 0.03 * g + noise(0.003)),
            ];
            let accuracy = [
                ("l2s", 0.93 + 0.01 * g - 0.015 * (1.0 - g) + noise(0.002)),
                ("nl", 0.93 + noise(0.002)),
                ("ns", 0.93 - 0.02 * g + noise(0.002)),
                ("ll", 0.94 - 0.02 * (1.0 - g) + noise(0.002)),
            ];
            for (run, acc) in accuracy {
                let (epochs, head) = match run {
                    "l2s" => (8, "normalized"),
                    "ns" => (8, "raw"),
                    "ll" => (30, "normalized"),
                    _ => (30, "raw"),
                };
                s.eval(run, seed, epochs, "", "", "", "accuracy", acc);
                for set in SETS {
                    let pick = |v: &[(&str, f64)]| v.iter().find(|p| p.0 == run).map(|p| p.1);
                    let a = match set {
                        "mnist" => pick(&mnist),
                        _ => pick(&close),
                    }
                    .or(pick(&others))
                    .unwrap();
                    s.eval(run, seed, epochs, set, "gda", head, "auroc", a);
                    if head == "normalized" {
                        s.eval(run, seed, epochs, set, "gda", "raw", "auroc", a - 0.01);
                    }
                    // C7: the softmax family 0.05 below GDA (above when reversed).
                    for (k, score) in SOFTMAX.iter().enumerate() {
                        let v = a - 0.05 * g + 0.001 * k as f64 + noise(0.002);
                        s.eval(run, seed, epochs, set, score, "", "auroc", v);
                    }
                }
            }
            // Tracked AUROC at the short runs' ends (their tracked features are their heads').
            s.log(&"l2s", seed, 8, "mnist", "gda", "normalized", "auroc", 0.95);
            s.log(&"ns", seed, 8, "mnist", "gda", "raw", "auroc", 0.95);
            // C6: NC at each model's last epoch, L2 10x lower (higher when reversed).
            let nc = [
                ("nc1", 0.5),
                ("nc2_equinorm_means", 0.2),
                ("nc2_equiangularity_means", 0.1),
                ("nc3", 0.3),
                ("nc4", 0.05),
            ];
            for (m, v) in nc {
                let l2 = if good { v / 10.0 } else { v * 10.0 };
                s.log(
                    &"l2s",
                    seed,
                    8,
                    "",
                    "",
                    "normalized",
                    m,
                    l2 * (1.0 + noise(0.05)),
                );
                s.log(&"l2s", seed, 8, "", "", "raw", m, l2 * (1.0 + noise(0.05)));
                s.log(&"ns", seed, 8, "", "", "raw", m, v * (1.0 + noise(0.05)));
                // (The long run's NC1 is its tracked curve's, below.)
                if m != "nc1" {
                    s.log(&"nl", seed, 30, "", "", "raw", m, v * (1.0 + noise(0.05)));
                }
            }
            // C8: over the long runs NC1 falls as AUROC rises (rises when reversed), and AUROC
            // peaks at epoch 20 and falls by 0.01 to epoch 30 (climbs to the end when reversed).
            // C12: the peak AUROC is unrelated to NC1 there (NC1 follows it when reversed).
            let level = noise(0.01);
            for e in 1..=30usize {
                let t = e as f64;
                let a = if good {
                    0.9 + 0.004 * t.min(20.0) - 0.001 * (t - 20.0).max(0.0)
                } else {
                    0.9 + 0.002 * t
                } + level
                    + noise(0.0005);
                let nc1 = if good {
                    20.0 / t * (1.0 + noise(0.02)) + if e == 20 { noise(0.5) } else { 0.0 }
                } else {
                    0.1 * t + 10.0 * level
                };
                s.log(&"nl", seed, e, "", "", "raw", "nc1", nc1);
                s.log(&"nl", seed, e, "mnist", "gda", "raw", "auroc", a);
                s.log(
                    &"nl",
                    seed,
                    e,
                    "mnist",
                    "gda",
                    "raw",
                    "topn_false_positives",
                    100.0,
                );
            }
            // C9, C10: the intervention from epoch 10: the NC loss gains 0.03 AUROC after 2
            // epochs (the control 0.005) and its false positives rise by 300 (the control's by
            // 10); the other way round when reversed.
            let start = 100.0;
            for e in 1..=10usize {
                let (nc_gain, control_gain) = if good { (0.03, 0.005) } else { (0.005, 0.03) };
                let (nc_fp, control_fp) = if good { (300.0, 10.0) } else { (10.0, 300.0) };
                let ramp = (e as f64 / 2.0).min(1.0);
                for (run, gain, fp) in [
                    ("nl-intervene-e10-nc", nc_gain, nc_fp),
                    ("nl-intervene-e10-control", control_gain, control_fp),
                ] {
                    s.log(
                        &run,
                        seed,
                        e,
                        "mnist",
                        "gda",
                        "raw",
                        "auroc",
                        0.94 + level + gain * ramp + noise(0.001),
                    );
                    s.log(
                        &run,
                        seed,
                        e,
                        "mnist",
                        "gda",
                        "raw",
                        "topn_false_positives",
                        start + fp * ramp + noise(3.0),
                    );
                }
            }
            // C10 over-training: L2 8 -> 20 adds about 5 (400 when reversed) against the NC
            // loss's rise; no-L2 30 -> 43 stays within about 2 of its start (rises by 100).
            s.log(
                &"lo",
                seed,
                8,
                "mnist",
                "gda",
                "normalized",
                "topn_false_positives",
                50.0,
            );
            s.log(
                &"lo",
                seed,
                20,
                "mnist",
                "gda",
                "normalized",
                "topn_false_positives",
                50.0 + if good { 5.0 } else { 400.0 } + noise(2.0),
            );
            for e in 31..=43usize {
                let up = if good { 2.0 } else { 100.0 };
                s.log(
                    &"no",
                    seed,
                    e,
                    "mnist",
                    "gda",
                    "raw",
                    "topn_false_positives",
                    100.0 + up + noise(3.0),
                );
            }
            s.log(
                &"no",
                seed,
                30,
                "mnist",
                "gda",
                "raw",
                "topn_false_positives",
                100.0,
            );
        }
        s
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        run: &str,
        seed: u64,
        epoch: usize,
        source: &str,
        ood: &str,
        score: &str,
        features: &str,
        metric: &str,
        value: f64,
    ) {
        self.rows.push(Row {
            key: Key {
                run: run.into(),
                epoch,
                source: source.into(),
                ood: ood.into(),
                score: score.into(),
                features: features.into(),
                metric: metric.into(),
            },
            seed,
            value,
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn eval(
        &mut self,
        run: &str,
        seed: u64,
        epoch: usize,
        ood: &str,
        score: &str,
        features: &str,
        metric: &str,
        value: f64,
    ) {
        self.push(
            run, seed, epoch, "eval", ood, score, features, metric, value,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn log(
        &mut self,
        run: &&str,
        seed: u64,
        epoch: usize,
        ood: &str,
        score: &str,
        features: &str,
        metric: &str,
        value: f64,
    ) {
        self.push(run, seed, epoch, "log", ood, score, features, metric, value);
    }

    /// Every claim judged, in the paper's regime unless `regime_ok` is false.
    fn judge(&self, regime_ok: bool) -> Vec<Judged> {
        let roles = Roles {
            label: "ResNet18".into(),
            l2_short: Some("l2s".into()),
            nol2_long: Some("nl".into()),
            nol2_short: Some("ns".into()),
            l2_long: Some("ll".into()),
            l2_overtrain: Some("lo".into()),
            nol2_overtrain: Some("no".into()),
        };
        let interventions = [InterventionSpec {
            source: "nl".into(),
            from_epoch: 10,
            epochs: 10,
            drop_after: 5,
            ..InterventionSpec::default()
        }];
        let regime = Regime {
            long: "nl".into(),
            short: "l2s".into(),
            last_third_change: Some(if regime_ok { 0.001 } else { 0.02 }),
            gap: Some(0.005),
            ok: Some(regime_ok),
            why: "synthetic".into(),
        };
        let block = Block {
            label: "ResNet18",
            roles: &roles,
            interventions: &interventions,
            regime: Some(&regime),
            resnet50: false,
        };
        let mut judged = claims::judge_block(&self.rows, &self.runs, &block);
        judged.extend(claims::configurations(&self.rows, &self.runs, &[block]));
        judged
    }
}

/// The verdict of `id` on the primary set (or without one).
fn verdict(judged: &[Judged], id: &str) -> Verdict {
    claims::headline(judged, "mnist")
        .into_iter()
        .find(|j| j.claim == id)
        .unwrap_or_else(|| panic!("{id} was not judged"))
        .verdict
}

#[test]
fn every_claim_comes_out_on_its_planted_side() {
    use Verdict::*;
    let good = Synthetic::new(12, true).judge(true);
    let bad = Synthetic::new(12, false).judge(true);
    // (claim, verdict where it holds, verdict where it is reversed), on the primary set. A fall
    // after the peak cannot be contradicted by a curve that rises to its end (the other runs peak
    // there too): inconclusive.
    let expected = [
        ("C1", Supported, Contradicted),
        ("C1+", Supported, Contradicted),
        ("C2", Supported, Contradicted),
        ("C3", Supported, Contradicted),
        ("C4", Supported, Contradicted),
        ("C5", Supported, Contradicted),
        ("C5*", Supported, Contradicted),
        ("C6", Supported, Contradicted),
        ("C6 raw", Supported, Contradicted),
        ("C6 =", Supported, Contradicted),
        ("C7", Supported, Contradicted),
        ("C8", Supported, Contradicted),
        ("C8 fall", Supported, Inconclusive),
        ("C9", Supported, Contradicted),
        ("C10", Supported, Contradicted),
        ("C10 L2", Supported, Contradicted),
        ("C10 no-L2", Supported, Contradicted),
        ("C11", Supported, Contradicted),
        ("C11 AUROC", Supported, Contradicted),
        ("C12", NotContradicted, Contradicted),
    ];
    assert_eq!(
        expected.len(),
        claims::CLAIMS.len(),
        "every claim is tested"
    );
    for (id, holds, reversed) in expected {
        let (g, b) = (verdict(&good, id), verdict(&bad, id));
        let show = |j: &[Judged]| {
            j.iter()
                .filter(|x| x.claim == id)
                .map(|x| format!("{} {}: {:?} {}", x.ood, x.subject, x.verdict, x.effect))
                .collect::<Vec<_>>()
        };
        assert_eq!(g, holds, "{id} where it holds: {:?}", show(&good));
        assert_eq!(b, reversed, "{id} reversed: {:?}", show(&bad));
    }
    // On the noise set L2-short is 0.005 below: competitive (C1), not above (C1+), in both.
    for judged in [&good, &bad] {
        let on_noise = |id: &str| {
            judged
                .iter()
                .find(|j| j.claim == id && j.ood == "noise")
                .unwrap()
                .verdict
        };
        assert_eq!((on_noise("C1"), on_noise("C1+")), (Supported, Contradicted));
    }
    // C7 is one verdict per model and OoD set (4 models x 2 sets), each of 7 parts.
    let c7: Vec<&Judged> = good.iter().filter(|j| j.claim == "C7").collect();
    assert_eq!(c7.len(), 4 * 2);
    assert!(
        c7.iter()
            .all(|j| j.parts.len() == 7 && j.verdict == Supported)
    );
    // Out of the paper's regime: C1-C4 say so (with the check's reason), the rest is judged.
    let out = Synthetic::new(12, true).judge(false);
    for id in ["C1", "C1+", "C2", "C3", "C4"] {
        assert_eq!(verdict(&out, id), OutOfRegime, "{id}");
    }
    assert_eq!(verdict(&out, "C5"), Supported);
}

#[test]
fn six_seeds_decide_means_but_not_extremes_spreads_or_relations() {
    let judged = Synthetic::new(6, true).judge(true);
    for id in ["C1", "C2", "C6", "C7", "C8", "C9", "C11"] {
        assert_eq!(verdict(&judged, id), Verdict::Supported, "{id}");
    }
    for (id, needs) in [("C3", 10), ("C4", 11), ("C5", 10), ("C12", 11)] {
        let j = claims::headline(&judged, "mnist")
            .into_iter()
            .find(|j| j.claim == id)
            .unwrap();
        assert_eq!(
            (j.verdict, j.needs),
            (Verdict::TooFewSeeds, Some(needs)),
            "{id}"
        );
        assert_eq!(
            claims::verdict_text(j),
            format!("too few seeds (needs {needs})")
        );
    }
}
