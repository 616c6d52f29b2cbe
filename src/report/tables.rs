//! The paper's tables (SPEC 8) from a study's tidy rows, one set per `[[roles]]` block: Table 1
//! (L2 short vs no L2 long), 2 (the ablation at equal epochs), 3 (NC1-4), 4 (softmax scores
//! instead of GDA) and 6 (L2 over-trained to the long schedule). Every number is a statistic over
//! seeds of values in results.csv: accuracy and AUROC at each run's last evaluated epoch, NC at a
//! tracked epoch. L2 models get a second row with GDA on the raw features; the first row is the
//! head's input (as DDU: the feature the classifier reads), and each row names its features.
use super::aggregate::Stats;
use super::results::{Key, Row, final_epoch, final_values, values_at};
use crate::study::plan::RunRef;
use crate::study::spec::Roles;
use serde::Serialize;

/// A table cell: a label, a statistic over seeds, or nothing (no data).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Cell {
    Text(String),
    Stats(Stats),
    Missing,
}

impl Cell {
    fn stats(x: &[f64]) -> Cell {
        Stats::of(x).map_or(Cell::Missing, Cell::Stats)
    }

    /// Markdown / HTML text: `mean [min, max]` (NC values, which span decades, in scientific form).
    pub fn text(&self) -> String {
        match self {
            Cell::Text(t) => t.clone(),
            Cell::Missing => "-".into(),
            Cell::Stats(s) if s.max.abs() >= 10.0 || (s.max != 0.0 && s.max.abs() < 1e-3) => {
                format!("{:.3e} [{:.3e}, {:.3e}]", s.mean, s.min, s.max)
            }
            Cell::Stats(s) => format!("{:.4} [{:.4}, {:.4}]", s.mean, s.min, s.max),
        }
    }
}

/// One table: a name (file stem), title, caption (what it compares, features, conventions), a
/// header and rows of cells.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Table {
    pub name: String,
    pub title: String,
    pub caption: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

/// How NC1 is computed here, named wherever NC1 is shown (SPEC 8).
pub const NC1_CONVENTION: &str = "NC1 = tr(Sigma_W Sigma_B^+) / C (Papyan et al.; the authors' notebook code does not divide by C)";

/// The softmax family of scores (Table 4, C7).
pub const SOFTMAX_SCORES: [&str; 7] = [
    "msp",
    "max_logit",
    "neg_entropy",
    "energy",
    "msp_t",
    "neg_entropy_t",
    "energy_t",
];

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

/// The tables of one roles block, those whose runs have results.
pub fn tables(rows: &[Row], runs: &[RunRef], roles: &Roles, label: &str) -> Vec<Table> {
    let sets = ood_sets(rows);
    let slug = super::slug(label);
    let name = |n: &str| format!("{n}-{slug}");
    let mut out = vec![];
    let pair = |a: &Option<String>, b: &Option<String>| -> Vec<String> {
        [a, b].into_iter().flatten().cloned().collect()
    };
    let accuracy_auroc = |n: usize, title: &str, runs_of: Vec<String>| -> Option<Table> {
        let mut header: Vec<String> = ["model", "epochs", "GDA features", "accuracy"]
            .map(String::from)
            .into();
        header.extend(sets.iter().map(|s| format!("AUROC {s}")));
        let mut body = vec![];
        for run in &runs_of {
            let epoch = final_epoch(runs, run)?;
            let h = head(runs, run);
            let kinds: &[&str] = if h == "normalized" {
                &["normalized", "raw"]
            } else {
                &["raw"]
            };
            for &f in kinds {
                let mut row = vec![
                    Cell::Text(run.clone()),
                    Cell::Text(epoch.to_string()),
                    Cell::Text(if f == h {
                        format!("{f} (head input)")
                    } else {
                        f.to_string()
                    }),
                    Cell::stats(&final_accuracy(rows, runs, run)),
                ];
                row.extend(
                    sets.iter()
                        .map(|s| Cell::stats(&final_auroc(rows, runs, run, s, "gda", f))),
                );
                body.push(row);
            }
        }
        Some(Table {
            name: name(&format!("table{n}")),
            title: format!("Table {n} ({label}): {title}"),
            caption: "Test accuracy and GDA AUROC at each run's last epoch: mean [min, max] over seeds. L2 models have a second row with GDA on the raw (unnormalised) features.".into(),
            header,
            rows: body,
        })
    };
    out.extend(accuracy_auroc(
        1,
        "L2 at the short schedule vs no L2 at the long one",
        pair(&roles.l2_short, &roles.nol2_long),
    ));
    if roles.nol2_short.is_some() {
        out.extend(accuracy_auroc(
            2,
            "ablation: L2 vs no L2 at equal (short) epochs",
            pair(&roles.l2_short, &roles.nol2_short),
        ));
    }
    out.extend(collapse_table(rows, runs, roles, label, &name("table3")));
    out.extend(softmax_table(
        rows,
        runs,
        roles,
        label,
        &sets,
        &name("table4"),
    ));
    if roles.l2_long.is_some() {
        out.extend(accuracy_auroc(
            6,
            "L2 over-trained to the long schedule",
            pair(&roles.l2_short, &roles.l2_long),
        ));
    }
    out
}

/// NC measures as tracked (the head's input features), in table order.
pub const NC_MEASURES: [(&str, &str); 5] = [
    ("nc1", "NC1"),
    ("nc2_equinorm_means", "NC2 equinorm"),
    ("nc2_equiangularity_means", "NC2 equiangularity"),
    ("nc3", "NC3"),
    ("nc4", "NC4"),
];

/// Per seed, `run`'s tracked `metric` at `epoch`.
pub fn tracked_at(rows: &[Row], run: &str, epoch: usize, metric: &str) -> Vec<f64> {
    let kind = super::results::tracked_features(rows, run);
    values_at(rows, run, "log", epoch, &|k: &Key| {
        k.metric == metric && (k.features.is_empty() || k.features == kind)
    })
}

/// The (run, epoch) pairs Table 3 and C6 compare: L2 at the short schedule, no L2 at the short
/// schedule (the ablation run, else the long run at the short run's epoch) and no L2 at the long
/// one, each at its last evaluated epoch (a finished run) where it was tracked.
pub fn collapse_points(
    rows: &[Row],
    runs: &[RunRef],
    roles: &Roles,
) -> Vec<(String, usize, &'static str)> {
    let tracked_end = |run: &String| {
        final_epoch(runs, run).filter(|&e| !tracked_at(rows, run, e, "nc1").is_empty())
    };
    let mut out = vec![];
    let Some((l2, short)) = roles
        .l2_short
        .as_ref()
        .and_then(|r| Some((r, tracked_end(r)?)))
    else {
        return out;
    };
    out.push((l2.clone(), short, "L2 short"));
    let ablation = roles
        .nol2_short
        .as_ref()
        .and_then(|r| Some((r.clone(), tracked_end(r)?)));
    let long_at_short = roles
        .nol2_long
        .as_ref()
        .filter(|r| !tracked_at(rows, r, short, "nc1").is_empty())
        .map(|r| (r.clone(), short));
    if let Some((run, e)) = ablation.or(long_at_short) {
        out.push((run, e, "no L2 short"));
    }
    if let Some((run, e)) = roles
        .nol2_long
        .as_ref()
        .and_then(|r| Some((r.clone(), tracked_end(r)?)))
    {
        out.push((run, e, "no L2 long"));
    }
    out
}

fn collapse_table(
    rows: &[Row],
    runs: &[RunRef],
    roles: &Roles,
    label: &str,
    name: &str,
) -> Option<Table> {
    let points = collapse_points(rows, runs, roles);
    if points.is_empty() {
        return None;
    }
    let mut header: Vec<String> = ["model", "run", "epoch", "features"]
        .map(String::from)
        .into();
    header.extend(NC_MEASURES.iter().map(|m| m.1.to_string()));
    let body = points
        .iter()
        .map(|(run, epoch, what)| {
            // The features tracking measured (track.features; by default the head's input).
            let features = rows
                .iter()
                .find(|r| {
                    r.key.run == *run
                        && r.key.source == "log"
                        && r.key.epoch == *epoch
                        && r.key.metric == "nc1"
                })
                .map_or(String::new(), |r| r.key.features.clone());
            let mut row = vec![
                Cell::Text(what.to_string()),
                Cell::Text(run.clone()),
                Cell::Text(epoch.to_string()),
                Cell::Text(features),
            ];
            row.extend(
                NC_MEASURES
                    .iter()
                    .map(|(m, _)| Cell::stats(&tracked_at(rows, run, *epoch, m))),
            );
            row
        })
        .collect();
    Some(Table {
        name: name.into(),
        title: format!(
            "Table 3 ({label}): Neural Collapse with L2 at the short schedule vs without L2 at the short and long ones"
        ),
        caption: format!(
            "NC1-4 on the tracked class-balanced training subset, on the features each row names (by default those the head reads: normalised under L2, so L2 and no-L2 rows measure different feature spaces), mean [min, max] over seeds; lower is more collapsed. {NC1_CONVENTION}; NC2 of the class means; NC4 = the rate at which the classifier and the nearest class mean disagree."
        ),
        header,
        rows: body,
    })
}

fn softmax_table(
    rows: &[Row],
    runs: &[RunRef],
    roles: &Roles,
    label: &str,
    sets: &[String],
    name: &str,
) -> Option<Table> {
    let models: Vec<&String> = roles
        .models()
        .into_iter()
        .filter(|r| final_epoch(runs, r).is_some())
        .collect();
    if models.is_empty() {
        return None;
    }
    let mut header: Vec<String> = ["model", "epochs", "score"].map(String::from).into();
    header.extend(sets.iter().map(|s| format!("AUROC {s}")));
    let mut body = vec![];
    for run in models {
        let epoch = final_epoch(runs, run).expect("filtered").to_string();
        let h = head(runs, run);
        let scores = std::iter::once(("gda", h)).chain(SOFTMAX_SCORES.iter().map(|s| (*s, "")));
        for (score, f) in scores {
            let mut row = vec![
                Cell::Text(run.clone()),
                Cell::Text(epoch.clone()),
                Cell::Text(if score == "gda" {
                    format!("gda ({h}; reference)")
                } else {
                    score.into()
                }),
            ];
            row.extend(
                sets.iter()
                    .map(|s| Cell::stats(&final_auroc(rows, runs, run, s, score, f))),
            );
            body.push(row);
        }
    }
    Some(Table {
        name: name.into(),
        title: format!("Table 4 ({label}): softmax scores instead of GDA"),
        caption: "AUROC of the softmax family (maximum softmax probability, max logit, negative entropy, energy; _t at the temperature fitted on the validation split) at each run's last epoch, mean [min, max] over seeds; GDA on the head's features for reference.".into(),
        header,
        rows: body,
    })
}

/// A table as Markdown: title, caption, the grid.
pub fn markdown(t: &Table) -> String {
    let mut s = format!("### {}\n\n{}\n\n", t.title, t.caption);
    s += &format!("| {} |\n", t.header.join(" | "));
    s += &format!("|{}\n", "---|".repeat(t.header.len()));
    for r in &t.rows {
        let cells: Vec<String> = r.iter().map(Cell::text).collect();
        s += &format!("| {} |\n", cells.join(" | "));
    }
    s
}

/// A table as CSV: text columns as they are, each statistic as four columns (n, mean, min, max).
pub fn csv(t: &Table) -> String {
    let Some(first) = t.rows.first() else {
        return t.header.join(",") + "\n";
    };
    let mut header = vec![];
    for (h, c) in t.header.iter().zip(first) {
        match c {
            Cell::Text(_) => header.push(h.clone()),
            _ => header.extend(["n", "mean", "min", "max"].map(|x| format!("{h} {x}"))),
        }
    }
    let mut s = header.join(",") + "\n";
    for r in &t.rows {
        let cells: Vec<String> = r
            .iter()
            .map(|c| match c {
                Cell::Text(t) => t.clone(),
                Cell::Stats(x) => format!("{},{},{},{}", x.n, x.mean, x.min, x.max),
                Cell::Missing => ",,,".into(),
            })
            .collect();
        s += &(cells.join(",") + "\n");
    }
    s
}
