//! The paper's tables (SPEC 8) from a study's tidy rows, one set per `[[roles]]` block: Table 1
//! (L2 short vs no L2 long, with the published anchors), 2 (the ablation at equal epochs), 3
//! (NC1-4), 4 (softmax scores instead of GDA) and 6 (L2 over-trained to the long schedule). Every
//! number is a statistic over seeds (n, mean, std, min, max) of values in results.csv: accuracy
//! and AUROC at each run's last evaluated epoch, NC at its last tracked epoch. L2 models get a
//! second row on the raw features; the first row is the head's input (as DDU: the feature the
//! classifier reads), and each row names its features.
use super::results::{
    NC_MEASURES, Row, SOFTMAX_SCORES, final_accuracy, final_auroc, final_epoch, head, ood_sets,
    tracked_on,
};
use super::stats::Stats;
use crate::data::DatasetKind;
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

    /// Markdown / HTML text: `mean ± std [min, max] (n)` (NC values, which span decades, in
    /// scientific form).
    pub fn text(&self) -> String {
        match self {
            Cell::Stats(s) => {
                let [mean, std, range] = Cell::parts(s);
                format!("{mean} ± {std} {range} (n={})", s.n)
            }
            Cell::Text(t) => t.clone(),
            Cell::Missing => "-".into(),
        }
    }

    /// A statistic's three printed parts: mean, std ("-" for one seed) and "[min, max]".
    pub fn parts(s: &Stats) -> [String; 3] {
        let sci = s.max.abs() >= 10.0 || (s.max != 0.0 && s.max.abs() < 1e-3);
        let f = |v: f64| {
            if sci {
                format!("{v:.3e}")
            } else {
                format!("{v:.4}")
            }
        };
        [
            f(s.mean),
            s.std.map_or("-".into(), f),
            format!("[{}, {}]", f(s.min), f(s.max)),
        ]
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

/// A published result to read a study's Table 1 against (SPEC 8).
struct Anchor {
    who: &'static str,
    accuracy: f64,
    /// AUROC per OoD set.
    auroc: &'static [(&'static str, f64)],
}

/// The published anchor on a study's ID data set, if there is one.
fn anchor(data: DatasetKind) -> Option<Anchor> {
    match data {
        DatasetKind::FashionMnist => Some(Anchor {
            who: "published: DUQ (van Amersfoort et al. 2020)",
            accuracy: 0.924,
            auroc: &[("mnist", 0.955)],
        }),
        _ => None,
    }
}

/// What the paper reports for Table 1 where this project has only its differences (SPEC 8).
const PAPER_TABLE1: &str = "Paper (CIFAR-10, w=64, 15 seeds): ResNet18+L2 at 60 epochs vs DDU's ResNet18 at 350: mean AUROC above, accuracy -0.008, min AUROC +0.047; ResNet50+L2 at 100 vs 350: mean AUROC -0.01, accuracy higher, min AUROC +0.024.";

/// The tables of one roles block, those whose runs have results; `data` is the study's ID set
/// (for the published anchors).
pub fn tables(
    rows: &[Row],
    runs: &[RunRef],
    roles: &Roles,
    label: &str,
    data: DatasetKind,
) -> Vec<Table> {
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
        let mut caption = "Test accuracy and GDA AUROC at each run's last epoch over seeds: mean ± std [min, max] (n seeds). L2 models have a second row with GDA on the raw (unnormalised) features.".to_string();
        if n == 1 {
            if let Some(a) = anchor(data) {
                let mut row = vec![
                    Cell::Text(a.who.into()),
                    Cell::Text("-".into()),
                    Cell::Text("-".into()),
                    Cell::Text(format!("{:.3}", a.accuracy)),
                ];
                row.extend(sets.iter().map(|s| {
                    a.auroc
                        .iter()
                        .find(|a| a.0 == s)
                        .map_or(Cell::Missing, |a| Cell::Text(format!("{:.3}", a.1)))
                }));
                body.push(row);
                caption += " The last row is a published anchor on the same data.";
            } else if data == DatasetKind::Cifar10 {
                caption = format!("{caption} {PAPER_TABLE1}");
            }
        }
        Some(Table {
            name: name(&format!("table{n}")),
            title: format!("Table {n} ({label}): {title}"),
            caption,
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
        let mut runs_of = pair(&roles.l2_short, &roles.l2_long);
        runs_of.extend(roles.nol2_long.clone());
        out.extend(accuracy_auroc(
            6,
            "L2 over-trained to the long schedule, against L2 short and no L2 long",
            runs_of,
        ));
    }
    out
}

/// Table 3: NC1-4 at each model's last epoch, L2 models on their head's (normalised) features
/// and on their raw ones, each row naming its schedule and epoch.
fn collapse_table(
    rows: &[Row],
    runs: &[RunRef],
    roles: &Roles,
    label: &str,
    name: &str,
) -> Option<Table> {
    let mut body = vec![];
    for (role, run) in roles.named() {
        if !["l2_short", "nol2_short", "nol2_long", "l2_long"].contains(&role) {
            continue;
        }
        let Some(epoch) = final_epoch(runs, run) else {
            continue;
        };
        let h = super::results::tracked_features(rows, run);
        let kinds: &[&str] = if h == "normalized" {
            &["normalized", "raw"]
        } else {
            &[h]
        };
        for &f in kinds {
            let cells: Vec<Cell> = NC_MEASURES
                .iter()
                .map(|(m, _)| Cell::stats(&tracked_on(rows, run, epoch, m, f)))
                .collect();
            if cells.iter().all(|c| *c == Cell::Missing) {
                continue;
            }
            let mut row = vec![
                Cell::Text(
                    role.replace('_', " ")
                        .replace("nol2", "no L2")
                        .replace("l2", "L2"),
                ),
                Cell::Text(run.to_string()),
                Cell::Text(epoch.to_string()),
                Cell::Text(if f == h && h == "normalized" {
                    format!("{f} (head input)")
                } else {
                    f.to_string()
                }),
            ];
            row.extend(cells);
            body.push(row);
        }
    }
    if body.is_empty() {
        return None;
    }
    let mut header: Vec<String> = ["schedule", "run", "epoch", "features"]
        .map(String::from)
        .into();
    header.extend(NC_MEASURES.iter().map(|m| m.1.to_string()));
    Some(Table {
        name: name.into(),
        title: format!(
            "Table 3 ({label}): Neural Collapse with and without L2 at the short and long schedules"
        ),
        caption: format!(
            "NC1-4 on the tracked class-balanced training subset at each run's last epoch, mean ± std [min, max] over seeds; lower is more collapsed. L2 models on the normalised features their head reads and, like for like with the no-L2 rows, on their raw features (NC4 there: the model's prediction against the nearest raw class mean). {NC1_CONVENTION}; NC2 of the class means; NC4 = the rate at which the classifier and the nearest class mean disagree."
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
        caption: "AUROC of the softmax family (maximum softmax probability, max logit, negative entropy, energy; _t at the temperature fitted on the validation split) at each run's last epoch, mean ± std [min, max] over seeds; GDA on the head's features for reference.".into(),
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

/// A table as CSV: text columns as they are, each statistic as five columns (n, mean, std, min,
/// max).
pub fn csv(t: &Table) -> String {
    let Some(first) = t.rows.first() else {
        return t.header.join(",") + "\n";
    };
    let mut header = vec![];
    for (h, c) in t.header.iter().zip(first) {
        match c {
            Cell::Text(_) => header.push(h.clone()),
            _ => header.extend(["n", "mean", "std", "min", "max"].map(|x| format!("{h} {x}"))),
        }
    }
    let mut s = header.join(",") + "\n";
    for r in &t.rows {
        let cells: Vec<String> = r
            .iter()
            .zip(first)
            .map(|(c, kind)| match (c, kind) {
                (Cell::Text(t), Cell::Text(_)) => t.clone(),
                // A published anchor's number in a statistics column: its mean.
                (Cell::Text(t), _) => format!(",{t},,,"),
                (Cell::Stats(x), _) => format!(
                    "{},{},{},{},{}",
                    x.n,
                    x.mean,
                    x.std.map_or(String::new(), |v| v.to_string()),
                    x.min,
                    x.max
                ),
                (Cell::Missing, _) => ",,,,".into(),
            })
            .collect();
        s += &(cells.join(",") + "\n");
    }
    s
}
