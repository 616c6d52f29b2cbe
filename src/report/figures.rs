//! The paper's figures (SPEC 8) from a study's tidy rows: each figure function turns rows into a
//! `chart::Plot` (panels of series, per seed), which `chart` draws as NAME.svg and NAME.png; a
//! figure whose data do not exist yet (a partial study, a study without interventions) is left
//! out.
use super::chart::{Figure, Panel, PerSeed, Plot, Series, Style, render, series};
use super::results::{
    NC_MEASURES, Row, intervention_curve, run_names, start_epoch, tracked_ood, tracked_rho,
};
use super::stats::{Stats, spearman};
use crate::error::{Error, Result};
use crate::study::plan::RunRef;
use crate::study::spec::{InterventionSpec, StudySpec};
use crate::train::Group;
use std::collections::BTreeMap;
use std::path::Path;

/// Draws every figure the study's rows allow into `dir` as NAME.svg and NAME.png; figures whose
/// data are absent are left out.
pub fn draw(rows: &[Row], runs: &[RunRef], spec: &StudySpec, dir: &Path) -> Result<Vec<Figure>> {
    let mut plots = fig3(rows, spec)?;
    plots.extend(fig4(rows, spec));
    plots.extend(fig5(rows, runs, spec));
    plots.extend(fig7(rows, spec));
    plots.extend(auroc_strip(rows, runs, spec));
    plots.extend(nc1_auroc(rows, runs));
    if !plots.is_empty() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    plots.iter().map(|p| render(p, dir)).collect()
}

// ---------------------------------------------------------------------------------------------
// Rows to series.

/// The panel of a tracked NC measure of `NC_MEASURES` (`label` its short name): title, y axis
/// label, log scale.
fn nc_panel<'a>(metric: &str, label: &'a str) -> (&'a str, &'a str, bool) {
    match metric {
        "nc1" => ("NC1: within-class variability", "NC1 (log scale)", true),
        "nc2_equinorm_means" => ("NC2: equinorm of the means", "std / mean of norms", false),
        "nc2_equiangularity_means" => ("NC2: equiangularity of the means", "std of cosines", false),
        "nc3" => ("NC3: self-duality", "NC3", false),
        "nc4" => (
            "NC4: disagreement with nearest mean",
            "NC4 (fraction)",
            false,
        ),
        _ => (label, label, false),
    }
}

/// Per seed, the (epoch, value) points of `run`'s per-epoch log rows of `metric` (training and
/// tracking), in epoch order, as chart coordinates.
fn tracked(rows: &[Row], run: &str, metric: &str) -> PerSeed {
    as_chart(super::results::tracked(rows, run, metric))
}

/// Per seed, (epoch, value) points as chart coordinates.
fn as_chart(per_seed: BTreeMap<u64, Vec<(usize, f64)>>) -> PerSeed {
    let points = |v: Vec<(usize, f64)>| v.into_iter().map(|(e, v)| (e as f64, v)).collect();
    per_seed.into_iter().map(|(s, v)| (s, points(v))).collect()
}

/// "mean [min, max]" of values, for captions.
fn spread(v: &[f64]) -> String {
    Stats::of(v).map_or_else(String::new, |s| {
        format!("{:+.3} [{:+.3}, {:+.3}]", s.mean, s.min, s.max)
    })
}

const BAND: &str = "Lines: mean over seeds; bands: min to max over seeds.";

/// Figure 3, one per architecture block: the NC measures and the tracked GDA AUROC over the
/// epochs of the no-L2 long runs, with Spearman's rho of NC1 vs AUROC per seed (C8).
fn fig3(rows: &[Row], spec: &StudySpec) -> Result<Vec<Plot>> {
    let mut plots: Vec<Plot> = vec![];
    for roles in &spec.roles {
        let Some(run) = roles.nol2_long.as_deref() else {
            continue;
        };
        let label = super::label(spec, roles)?;
        let name = format!("fig3-{}", super::slug(&label));
        if plots.iter().any(|p| p.name == name) {
            continue;
        }
        let ood = tracked_ood(rows, run);
        let mut panels: Vec<Panel> = NC_MEASURES
            .iter()
            .map(|&(m, label)| {
                let (title, y, log) = nc_panel(m, label);
                let s = series(run, Style::Band, tracked(rows, run, m));
                Panel::new(title, "epoch", y, log, vec![s])
            })
            .collect();
        let y = format!("GDA AUROC vs {ood}");
        let auroc = tracked(rows, run, "auroc");
        panels.push(Panel::new(
            "GDA AUROC (tracked)",
            "epoch",
            &y,
            false,
            vec![series(run, Style::Band, auroc.clone())],
        ));
        let rhos: Vec<f64> = tracked_rho(rows, run, "nc1", "auroc")
            .into_values()
            .collect();
        let rho = if rhos.is_empty() {
            String::new()
        } else {
            format!(
                " Spearman's rho of NC1 vs AUROC across epochs, per seed (C8 expects < 0): {} \
                 (mean [min, max] over {} seeds).",
                spread(&rhos),
                rhos.len()
            )
        };
        let caption = format!(
            "Neural Collapse and OoD detection over the training of {run} (no L2, long schedule; \
             {label}). NC measured on the tracked training subset on the features entering the \
             head; NC1 = tr(Sigma_W Sigma_B^+) / C (divided by C), log scale. GDA AUROC: test \
             split vs {ood}. {BAND}{rho} Paper: Figure 3."
        );
        plots.extend(Plot::new(
            name,
            format!("NC and GDA AUROC over training: {run} ({label})"),
            caption,
            panels,
        ));
    }
    Ok(plots)
}

/// The intervention's groups as (run name, legend label).
fn groups(spec: &StudySpec, i: &InterventionSpec) -> Vec<(String, &'static str)> {
    spec.groups(i)
        .unwrap_or_default()
        .into_iter()
        .map(|g| {
            let run = crate::study::spec::intervention_run(&i.source, i.from_epoch, g.name());
            let label = match g {
                Group::Control => "control (cross-entropy)",
                Group::Nc => "NC loss",
            };
            (run, label)
        })
        .collect()
}

/// One series per intervention group: its `results::intervention_curve` of `metric` (epoch 0 =
/// the source run's tracked value at `from_epoch`); groups without rows are left out, so an
/// intervention that has not run yields nothing.
fn intervention(rows: &[Row], spec: &StudySpec, i: &InterventionSpec, metric: &str) -> Vec<Series> {
    groups(spec, i)
        .into_iter()
        .map(|(run, label)| {
            let curve = intervention_curve(rows, &i.source, i.from_epoch, &run, metric);
            series(label, Style::Band, as_chart(curve))
        })
        .collect()
}

/// "from SOURCE at epoch E", naming an intervention in titles.
fn from(i: &InterventionSpec) -> String {
    format!("from {} at epoch {}", i.source, i.from_epoch)
}

const INTERVENTION_X: &str = "epoch of the intervention";

/// Figure 4: tracked GDA AUROC over the intervention, control vs NC loss, with each group's mean
/// gain after 2 epochs (C9).
fn fig4(rows: &[Row], spec: &StudySpec) -> Option<Plot> {
    let mut gains = String::new();
    let panels = spec
        .interventions
        .iter()
        .map(|i| {
            let s = intervention(rows, spec, i, "auroc");
            for g in &s {
                // Per seed: the value after 2 epochs minus the source's at epoch 0.
                let d: Vec<f64> = g
                    .seeds
                    .values()
                    .filter_map(|p| {
                        let start = p.first().filter(|q| q.0 == 0.0)?.1;
                        Some(p.iter().find(|q| q.0 == 2.0)?.1 - start)
                    })
                    .collect();
                if !d.is_empty() {
                    gains += &format!(" {} {}: {};", from(i), g.label, spread(&d));
                }
            }
            let y = format!("GDA AUROC vs {}", tracked_ood(rows, &i.source));
            Panel::new(
                format!("GDA AUROC, {}", from(i)),
                INTERVENTION_X,
                &y,
                false,
                s,
            )
        })
        .collect();
    let gains = if gains.is_empty() {
        String::new()
    } else {
        format!(
            " Mean [min, max] AUROC gain after 2 epochs:{gains} (paper: NC +0.038, control +0.008)."
        )
    };
    Plot::new(
        "fig4".into(),
        "Intervention: GDA AUROC, control vs NC loss".into(),
        format!(
            "Tracked GDA AUROC per epoch of the SPEC 7 intervention (learning rate one tenth of \
             the schedule's): the control group continues with cross-entropy, the NC group trains \
             with the NC loss. Epoch 0 is the source run's tracked value at the intervention's \
             epoch. {BAND}{gains} Paper: Figure 4."
        ),
        panels,
    )
}

/// Figure 5: top-N false positives under the intervention (control vs NC) and while over-training
/// (L2 short and no-L2 long continued), C10.
fn fig5(rows: &[Row], runs: &[RunRef], spec: &StudySpec) -> Option<Plot> {
    const TOPN: &str = "top-N false positives";
    let mut panels: Vec<Panel> = spec
        .interventions
        .iter()
        .map(|i| {
            let s = intervention(rows, spec, i, "topn_false_positives");
            Panel::new(
                format!("Intervention {}", from(i)),
                INTERVENTION_X,
                TOPN,
                false,
                s,
            )
        })
        .collect();
    for roles in &spec.roles {
        let block = if roles.label.is_empty() {
            String::new()
        } else {
            format!(" ({})", roles.label)
        };
        for (run, what) in [
            (&roles.l2_overtrain, "L2 short"),
            (&roles.nol2_overtrain, "no-L2 long"),
        ] {
            let Some(run) = run.as_deref() else { continue };
            let s = series(run, Style::Band, tracked(rows, run, "topn_false_positives"));
            let mut p = Panel::new(
                format!("Over-training {what}{block}"),
                "epoch",
                TOPN,
                false,
                vec![s],
            );
            p.marker = start_epoch(runs, run).map(|e| e as f64);
            panels.push(p);
        }
    }
    Plot::new(
        "fig5".into(),
        "Top-N false positives: intervention and over-training".into(),
        format!(
            "Top-N false positives of the tracked GDA (OoD samples among the N most ID-confident \
             test samples, N = the number of ID test samples; lower is better) per epoch: under \
             the intervention (epoch 0 = the source run at the intervention's epoch) and while \
             over-training (the grey line marks the end of the source's schedule; the epochs \
             before it are the source run's). {BAND} Paper: Figure 5 (NC loss: +500 within 20 \
             epochs; L2 over-trained 60 -> 150: +54)."
        ),
        panels,
    )
}

/// Figure 7: NC1-4 under the intervention, control vs NC loss.
fn fig7(rows: &[Row], spec: &StudySpec) -> Option<Plot> {
    let panels = spec
        .interventions
        .iter()
        .flat_map(|i| {
            NC_MEASURES.iter().map(move |&(m, label)| {
                let (title, y, log) = nc_panel(m, label);
                let s = intervention(rows, spec, i, m);
                let t = if spec.interventions.len() > 1 {
                    format!("{title}, {}", from(i))
                } else {
                    title.to_string()
                };
                Panel::new(t, INTERVENTION_X, y, log, s)
            })
        })
        .collect();
    let which = spec
        .interventions
        .iter()
        .map(from)
        .collect::<Vec<_>>()
        .join("; ");
    Plot::new(
        "fig7".into(),
        "Intervention: Neural Collapse, control vs NC loss".into(),
        format!(
            "NC measures per epoch of the intervention ({which}), on the tracked training subset; \
             epoch 0 is the source run at the intervention's epoch. NC1 = tr(Sigma_W Sigma_B^+) \
             / C (divided by C), log scale. {BAND} Paper: Figure 7."
        ),
        panels,
    )
}

/// Final GDA AUROC (each run's head features, its last evaluated epoch) of every seed of every
/// variant and over-training, one panel per OoD set: a strip plot, so the worst seed (C3) and the
/// spread (C4) are seen, not only the mean.
fn auroc_strip(rows: &[Row], runs: &[RunRef], spec: &StudySpec) -> Option<Plot> {
    let names: Vec<&str> = spec
        .variants
        .iter()
        .map(|v| v.name.as_str())
        .chain(spec.overtrains.iter().map(|o| o.name.as_str()))
        .collect();
    let head = |run: &str| super::results::head(runs, run);
    let sets = super::results::ood_sets(rows);
    let mut widest = 0;
    let mut used: Vec<String> = vec![];
    let panels: Vec<Panel> = sets
        .iter()
        .map(|set| {
            let mut p = Panel::new(set, "", "GDA AUROC (head features)", false, vec![]);
            for run in &names {
                let v = super::results::final_auroc(rows, runs, run, set, "gda", head(run));
                if v.is_empty() {
                    continue;
                }
                let x = p.categories.len() as f64;
                let seeds = v
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| (i as u64, vec![(x, v)]));
                p.series.push(series(*run, Style::Strip, seeds.collect()));
                p.categories.push(run.to_string());
                let used_name = format!("{run}: {}", head(run));
                if !used.contains(&used_name) {
                    used.push(used_name);
                }
            }
            widest = widest.max(p.categories.len());
            p
        })
        .collect();
    let mut plot = Plot::new(
        "auroc-strip".into(),
        "Final GDA AUROC per seed".into(),
        format!(
            "GDA AUROC at each run's last evaluated epoch, one dot per seed, per OoD set, on the \
             features each run's head reads ({}). Thick tick: the worst seed (min, C3); thin grey \
             tick: the mean. Paper: Table 1 reports mean, min and max over 15 seeds.",
            used.join(", ")
        ),
        panels,
    )?;
    plot.panel.0 = plot.panel.0.max(130 * widest as u32 + 90);
    Some(plot)
}

/// NC1 vs tracked GDA AUROC, one point per (run, seed, tracked epoch), coloured by run, with
/// Spearman's rho overall and per run in the legend and caption (C8).
fn nc1_auroc(rows: &[Row], runs: &[RunRef]) -> Option<Plot> {
    let (mut all_x, mut all_y) = (vec![], vec![]);
    let mut per_run = vec![];
    let mut list: Vec<Series> = vec![];
    for run in run_names(runs) {
        let first = start_epoch(runs, run).map_or(0.0, |e| e as f64 + 0.5);
        let nc1 = tracked(rows, run, "nc1");
        let mut seeds = BTreeMap::new();
        let (mut xs, mut ys) = (vec![], vec![]);
        for (seed, a) in tracked(rows, run, "auroc") {
            let Some(n) = nc1.get(&seed) else { continue };
            let points: Vec<(f64, f64)> = a
                .iter()
                .filter(|p| p.0 > first)
                .filter_map(|&(e, v)| Some((n.iter().find(|p| p.0 == e)?.1, v)))
                .filter(|p| p.0 > 0.0)
                .collect();
            xs.extend(points.iter().map(|p| p.0));
            ys.extend(points.iter().map(|p| p.1));
            if !points.is_empty() {
                seeds.insert(seed, points);
            }
        }
        let rho = spearman(&xs, &ys);
        let label = match rho {
            Some(r) => {
                per_run.push(format!("{run} {r:+.2} (n={})", xs.len()));
                format!("{run} (rho {r:+.2})")
            }
            None => run.to_string(),
        };
        all_x.extend(xs);
        all_y.extend(ys);
        list.push(series(label, Style::Dots, seeds));
    }
    let overall = spearman(&all_x, &all_y).map_or(String::new(), |r| {
        format!(" Spearman's rho over all {} points: {r:+.3}.", all_x.len())
    });
    let per_run = if per_run.is_empty() {
        String::new()
    } else {
        format!(" Per run: {}.", per_run.join("; "))
    };
    let mut p = Panel::new(
        "NC1 vs GDA AUROC",
        "NC1 (log scale)",
        "GDA AUROC (tracked)",
        false,
        list,
    );
    p.log_x = true;
    Plot::new(
        "nc1-auroc".into(),
        "Neural Collapse (NC1) vs OoD detection (GDA AUROC)".into(),
        format!(
            "One dot per tracked epoch of every run and seed (over-training runs from their own \
             epochs on): NC1 = tr(Sigma_W Sigma_B^+) / C, log scale, against the tracked GDA \
             AUROC. More collapse (lower NC1) going with higher AUROC gives a negative rho.\
             {overall}{per_run}"
        ),
        vec![p],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::FeatureKind;
    use crate::report::results::Key;
    use crate::study::spec::{Overtrain, Roles, Variant};

    /// A row of `run`, `seed`, `epoch` with key [source, ood, score, features, metric].
    fn row(run: &str, seed: u64, epoch: usize, key: [&str; 5], value: f64) -> Row {
        let [source, ood, score, features, metric] = key.map(String::from);
        let run = run.into();
        Row {
            key: Key {
                run,
                epoch,
                source,
                ood,
                score,
                features,
                metric,
            },
            seed,
            value,
        }
    }

    /// Tracking rows of `run` for `epochs`, NC falling and AUROC rising with the epoch.
    fn track(rows: &mut Vec<Row>, run: &str, epochs: std::ops::RangeInclusive<usize>, f: &str) {
        for seed in 0..3u64 {
            for e in epochs.clone() {
                // Each run its own pace (the NC group fastest), so the figures' lines differ.
                let speed = if run.ends_with("-nc") {
                    2.0
                } else {
                    1.0 + run.len() as f64 / 20.0
                };
                let t = speed * e as f64 + seed as f64 * 0.3;
                let nc = |m| ["log", "", "", f, m];
                let gda = |m| ["log", "mnist", "gda", f, m];
                for (key, v) in [
                    (nc("nc1"), 10.0 * (-0.3 * t).exp()),
                    (nc("nc2_equinorm_means"), 0.5 / (1.0 + t)),
                    (nc("nc2_equiangularity_means"), 0.3 / (1.0 + t)),
                    (nc("nc3"), 1.0 / (1.0 + t)),
                    (nc("nc4"), 0.2 / (1.0 + t)),
                    (gda("auroc"), 0.99 - 0.3 / (1.0 + t)),
                    (gda("topn_false_positives"), 1000.0 / (1.0 + t)),
                ] {
                    rows.push(row(run, seed, e, key, v));
                }
            }
        }
    }

    fn eval(rows: &mut Vec<Row>, run: &str, epoch: usize, f: &str) {
        for seed in 0..3u64 {
            rows.push(row(run, seed, epoch, ["eval", "", "", "", "accuracy"], 0.9));
            for (set, base) in [("mnist", 0.9), ("noise-uniform", 0.8)] {
                for feat in ["raw", "normalized"] {
                    let v = base + 0.01 * seed as f64 + if feat == f { 0.05 } else { 0.0 };
                    let key = ["eval", set, "gda", feat, "auroc"];
                    rows.push(row(run, seed, epoch, key, v));
                }
            }
        }
    }

    fn spec() -> StudySpec {
        let variant = |name: &str, l2: bool, epochs: i64| Variant {
            name: name.into(),
            seeds: vec![0, 1, 2],
            set: [
                ("model.l2".to_string(), toml::Value::Boolean(l2)),
                ("optim.epochs".to_string(), toml::Value::Integer(epochs)),
            ]
            .into(),
        };
        StudySpec {
            variants: vec![
                variant("l2-short", true, 4),
                variant("nol2-long", false, 12),
            ],
            overtrains: vec![Overtrain {
                name: "l2-over".into(),
                source: "l2-short".into(),
                epochs: 10,
            }],
            interventions: vec![InterventionSpec {
                source: "nol2-long".into(),
                from_epoch: 5,
                epochs: 6,
                ..Default::default()
            }],
            roles: vec![Roles {
                l2_short: Some("l2-short".into()),
                nol2_long: Some("nol2-long".into()),
                l2_overtrain: Some("l2-over".into()),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn runs(spec: &StudySpec) -> Vec<RunRef> {
        let mut out = vec![];
        let mut add = |name: &str, l2: bool, epochs: [usize; 2]| {
            for seed in 0..3 {
                let head = if l2 {
                    FeatureKind::Normalized
                } else {
                    FeatureKind::Raw
                };
                out.push(RunRef {
                    name: name.into(),
                    seed,
                    dir: "/nonexistent".into(),
                    head,
                    first_epoch: epochs[0],
                    epochs: epochs[1],
                });
            }
        };
        add("l2-short", true, [1, 4]);
        add("nol2-long", false, [1, 12]);
        add("l2-over", true, [5, 10]);
        for g in groups(spec, &spec.interventions[0]) {
            add(&g.0, false, [1, 6]);
        }
        out
    }

    /// Every kind of row a finished study has.
    fn full_rows() -> Vec<Row> {
        let mut rows = vec![];
        track(&mut rows, "l2-short", 1..=4, "normalized");
        track(&mut rows, "nol2-long", 1..=12, "raw");
        track(&mut rows, "l2-over", 1..=10, "normalized");
        track(&mut rows, "nol2-long-intervene-e5-control", 1..=6, "raw");
        track(&mut rows, "nol2-long-intervene-e5-nc", 1..=6, "raw");
        eval(&mut rows, "l2-short", 4, "normalized");
        eval(&mut rows, "nol2-long", 12, "raw");
        eval(&mut rows, "l2-over", 10, "normalized");
        rows
    }

    fn names(f: &[Figure]) -> Vec<&str> {
        f.iter().map(|f| f.name.as_str()).collect()
    }

    #[test]
    fn every_figure_is_drawn_when_its_data_exist() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec();
        // NCOOD_FIGURES_OUT=DIR keeps the synthetic figures there, to look at.
        let out = std::env::var_os("NCOOD_FIGURES_OUT").map(std::path::PathBuf::from);
        let out = out.as_deref().unwrap_or(dir.path());
        let figs = draw(&full_rows(), &runs(&spec), &spec, out).unwrap();
        assert_eq!(
            names(&figs),
            [
                "fig3-resnet18",
                "fig4",
                "fig5",
                "fig7",
                "auroc-strip",
                "nc1-auroc"
            ]
        );
        for f in &figs {
            assert!(
                f.svg.starts_with("<svg") && f.svg.len() > 1000,
                "{}",
                f.name
            );
            assert!(!f.svg.contains("href"), "{}: self-contained", f.name);
            assert_eq!(
                std::fs::read_to_string(out.join(format!("{}.svg", f.name))).unwrap(),
                f.svg
            );
            let png = std::fs::read(out.join(format!("{}.png", f.name))).unwrap();
            assert!(
                png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 5000,
                "{}",
                f.name
            );
            assert!(f.svg.contains(&f.title) && !f.caption.is_empty());
        }
        let svg = |n: &str| &figs.iter().find(|f| f.name == n).unwrap().svg;
        for label in [
            "epoch",
            "NC1 (log scale)",
            "NC3: self-duality",
            "GDA AUROC vs mnist",
            "nol2-long",
        ] {
            assert!(svg("fig3-resnet18").contains(label), "{label}");
        }
        for label in [
            "epoch of the intervention",
            "NC loss",
            "control (cross-entropy)",
        ] {
            assert!(svg("fig4").contains(label), "{label}");
            assert!(svg("fig7").contains(label), "{label}");
        }
        for label in ["top-N false positives", "Over-training L2 short", "epoch"] {
            assert!(svg("fig5").contains(label), "{label}");
        }
        for label in [
            "GDA AUROC (head features)",
            "l2-short",
            "l2-over",
            "noise-uniform",
        ] {
            assert!(svg("auroc-strip").contains(label), "{label}");
        }
        assert!(svg("nc1-auroc").contains("NC1 (log scale)"));
        // NC1 falls as AUROC rises in every synthetic run: rho -1 overall and per run.
        let c = &figs[5].caption;
        assert!(c.contains("rho over all") && c.contains(": -1.000"), "{c}");
        assert!(
            figs[0].caption.contains("-1.000 [-1.000, -1.000]"),
            "{}",
            figs[0].caption
        );
        // The NC group gains after 2 epochs (the same synthetic curves as control here).
        assert!(
            figs[1].caption.contains("gain after 2 epochs"),
            "{}",
            figs[1].caption
        );
    }

    #[test]
    fn figures_without_data_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec();
        let runs = runs(&spec);
        assert!(draw(&[], &runs, &spec, dir.path()).unwrap().is_empty());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        // Only evaluations: the strip plot alone.
        let mut rows = vec![];
        eval(&mut rows, "l2-short", 4, "normalized");
        assert_eq!(
            names(&draw(&rows, &runs, &spec, dir.path()).unwrap()),
            ["auroc-strip"]
        );
        // The no-L2 runs tracked, no intervention or over-training yet: fig3 and the scatter.
        let mut rows = vec![];
        track(&mut rows, "nol2-long", 1..=12, "raw");
        let figs = draw(&rows, &runs, &spec, dir.path()).unwrap();
        assert_eq!(names(&figs), ["fig3-resnet18", "nc1-auroc"]);
        assert!(dir.path().join("fig3-resnet18.png").exists());
        // No roles and no interventions: no fig3-5/7 even with every row.
        let bare = StudySpec {
            roles: vec![],
            interventions: vec![],
            ..spec.clone()
        };
        let figs = draw(&full_rows(), &runs, &bare, dir.path()).unwrap();
        assert_eq!(names(&figs), ["auroc-strip", "nc1-auroc"]);
    }

    #[test]
    fn helpers_by_hand() {
        // The intervention starts from the source's tracked value at from_epoch.
        let spec = spec();
        let rows = full_rows();
        let s = intervention(&rows, &spec, &spec.interventions[0], "auroc");
        assert_eq!(s.len(), 2);
        let src = tracked(&rows, "nol2-long", "auroc")[&1][4];
        assert_eq!(src.0, 5.0);
        assert_eq!(s[1].seeds[&1][0], (0.0, src.1));
        assert_eq!(s[1].seeds[&1].len(), 7);
        // An over-training's own epochs start after its source's last one.
        let runs = runs(&spec);
        assert_eq!(start_epoch(&runs, "l2-over"), Some(4));
        assert_eq!(start_epoch(&runs, "l2-short"), None);
        assert_eq!(crate::report::slug("ResNet 18"), "resnet-18");
    }
}
