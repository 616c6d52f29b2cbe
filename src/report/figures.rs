//! The paper's figures (SPEC 8) drawn from a study's tidy rows with `plotters`: every figure is
//! written as NAME.svg (self-contained: report.html inlines it) and NAME.png, and a figure whose
//! data do not exist yet (a partial study, a study without interventions) is left out.
//!
//! Each figure function turns rows into a `Plot` (panels of series, per seed) and one renderer
//! draws it twice, on the SVG and on the bitmap backend, so both files show the same thing. Text
//! is laid out and rasterised with DejaVu Sans embedded in the binary (the `dejavu` crate, through
//! plotters' `ab_glyph` feature): the PNG has readable text on any machine, with no system font
//! or fontconfig.
use super::results::{Row, run_names, start_epoch, tracked_ood, tracked_rho};
use super::stats::{Stats, spearman};
use crate::error::{Error, Result};
use crate::study::plan::RunRef;
use crate::study::spec::{InterventionSpec, StudySpec};
use crate::train::Group;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::collections::BTreeMap;
use std::path::Path;

/// One drawn figure.
pub struct Figure {
    /// File stem, e.g. "fig3-resnet18".
    pub name: String,
    pub title: String,
    /// What it shows and how to read it (e.g. Spearman's rho).
    pub caption: String,
    /// The SVG text, for inlining in report.html.
    pub svg: String,
}

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
// What a figure holds.

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Style {
    /// Mean over seeds as a line, min-max over seeds as a band (curves over epochs).
    Band,
    /// Every point of every seed as a dot (scatter).
    Dots,
    /// One column of dots (one per seed) at category `x`, a thick tick at the worst (min) seed
    /// and a thin one at the mean (the strip plot of final AUROC).
    Strip,
}

/// Per seed, (x, y) points.
type PerSeed = BTreeMap<u64, Vec<(f64, f64)>>;

/// One named series: per seed its (x, y) points.
struct Series {
    label: String,
    style: Style,
    seeds: PerSeed,
}

/// One panel of a figure.
struct Panel {
    title: String,
    x: String,
    y: String,
    log_x: bool,
    log_y: bool,
    /// Names of the categorical x positions 0, 1, ... (strip plots); empty for numeric x.
    categories: Vec<String>,
    /// A vertical grey line (where over-training starts).
    marker: Option<f64>,
    series: Vec<Series>,
}

impl Panel {
    /// A panel over epochs (numeric x), keeping only the series that have points.
    fn new(title: impl Into<String>, x: &str, y: &str, log_y: bool, series: Vec<Series>) -> Panel {
        Panel {
            title: title.into(),
            x: x.into(),
            y: y.into(),
            log_x: false,
            log_y,
            categories: vec![],
            marker: None,
            series: series.into_iter().filter(|s| !s.seeds.is_empty()).collect(),
        }
    }
}

/// A figure before drawing: panels on a grid of `cols` columns, each `panel` pixels.
struct Plot {
    name: String,
    title: String,
    caption: String,
    panels: Vec<Panel>,
    cols: usize,
    panel: (u32, u32),
}

impl Plot {
    /// None when no panel has data: the figure is left out.
    fn new(name: String, title: String, caption: String, panels: Vec<Panel>) -> Option<Plot> {
        let panels: Vec<Panel> = panels
            .into_iter()
            .filter(|p| !p.series.is_empty())
            .collect();
        (!panels.is_empty()).then(|| Plot {
            name,
            title,
            caption,
            cols: panels.len().min(3),
            // A figure of one panel gets room for its legend and a title of its own width.
            panel: if panels.len() == 1 {
                (640, 440)
            } else {
                (420, 300)
            },
            panels,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Rows to series.

/// The tracked NC measures the paper plots: metric, panel title, y axis label, log scale.
const NC: [(&str, &str, &str, bool); 5] = [
    (
        "nc1",
        "NC1: within-class variability",
        "NC1 (log scale)",
        true,
    ),
    (
        "nc2_equinorm_means",
        "NC2: equinorm of the means",
        "std / mean of norms",
        false,
    ),
    (
        "nc2_equiangularity_means",
        "NC2: equiangularity of the means",
        "std of cosines",
        false,
    ),
    ("nc3", "NC3: self-duality", "NC3", false),
    (
        "nc4",
        "NC4: disagreement with nearest mean",
        "NC4 (fraction)",
        false,
    ),
];

/// Per seed, the (epoch, value) points of `run`'s per-epoch log rows of `metric` (training and
/// tracking), in epoch order, as chart coordinates.
fn tracked(rows: &[Row], run: &str, metric: &str) -> PerSeed {
    let t = super::results::tracked(rows, run, metric).into_iter();
    t.map(|(s, v)| (s, v.into_iter().map(|(e, v)| (e as f64, v)).collect()))
        .collect()
}

fn series(label: impl Into<String>, style: Style, seeds: PerSeed) -> Series {
    Series {
        label: label.into(),
        style,
        seeds,
    }
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
        let mut panels: Vec<Panel> = NC
            .iter()
            .map(|&(m, title, y, log)| {
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
            let run = crate::study::plan::intervention_run(&i.source, i.from_epoch, g.name());
            let label = match g {
                Group::Control => "control (cross-entropy)",
                Group::Nc => "NC loss",
            };
            (run, label)
        })
        .collect()
}

/// One series per intervention group of `metric` over the intervention's epochs, with epoch 0 =
/// the source run's tracked value at `from_epoch` (the same seeds); groups without rows are left
/// out, so an intervention that has not run yields nothing.
fn intervention(rows: &[Row], spec: &StudySpec, i: &InterventionSpec, metric: &str) -> Vec<Series> {
    let start: BTreeMap<u64, f64> = tracked(rows, &i.source, metric)
        .into_iter()
        .filter_map(|(s, v)| Some((s, v.iter().find(|p| p.0 == i.from_epoch as f64)?.1)))
        .collect();
    groups(spec, i)
        .into_iter()
        .map(|(run, label)| {
            let mut seeds = tracked(rows, &run, metric);
            for (seed, points) in seeds.iter_mut() {
                if let Some(&v) = start.get(seed) {
                    points.insert(0, (0.0, v));
                }
            }
            series(label, Style::Band, seeds)
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
            NC.iter().map(move |&(m, title, y, log)| {
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

// ---------------------------------------------------------------------------------------------
// Drawing.

type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;

/// Legend text size, pixels.
const LEGEND: f64 = 13.0;

/// Tableau 10: distinct, colour-blind-friendlier than plotters' defaults.
const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// DejaVu Sans at `size` pixels, registered once as plotters' "sans-serif" (ab_glyph has no
/// system font lookup; the SVG names the family and the browser picks its own sans-serif).
fn font(size: f64) -> FontDesc<'static> {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let ok = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        )
        .is_ok();
        assert!(ok, "the embedded DejaVu Sans parses");
    });
    FontDesc::new(FontFamily::SansSerif, size, FontStyle::Normal)
}

/// Draws `plot` as NAME.svg and NAME.png in `dir`.
fn render(plot: &Plot, dir: &Path) -> Result<Figure> {
    let rows = plot.panels.len().div_ceil(plot.cols);
    let legend = legend_entries(plot);
    let width = plot.panel.0 * plot.cols as u32;
    let legend_lines = layout_legend(&legend, width).1;
    let size = (width, 34 + 22 * legend_lines + plot.panel.1 * rows as u32);
    let failed = |e: Box<dyn std::error::Error>| {
        Error::invalid(format!("figure {}", plot.name), e.to_string())
    };
    let mut svg = String::new();
    paint(
        SVGBackend::with_string(&mut svg, size).into_drawing_area(),
        plot,
        &legend,
    )
    .map_err(failed)?;
    let mut rgb = vec![0u8; size.0 as usize * size.1 as usize * 3];
    paint(
        BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area(),
        plot,
        &legend,
    )
    .map_err(failed)?;
    let mut png = vec![];
    let mut encoder = png::Encoder::new(&mut png, size.0, size.1);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder
        .write_header()
        .and_then(|mut w| w.write_image_data(&rgb))
        .map_err(|e| failed(Box::new(e)))?;
    crate::atomic::write(&dir.join(format!("{}.svg", plot.name)), svg.as_bytes())?;
    crate::atomic::write(&dir.join(format!("{}.png", plot.name)), &png)?;
    Ok(Figure {
        name: plot.name.clone(),
        title: plot.title.clone(),
        caption: plot.caption.clone(),
        svg,
    })
}

/// The figure's legend: every series label once, in order of appearance, with its colour and
/// style; the colour of a label is the same in every panel of the figure.
fn legend_entries(plot: &Plot) -> Vec<(String, RGBColor, Style)> {
    let mut out: Vec<(String, RGBColor, Style)> = vec![];
    for s in plot.panels.iter().flat_map(|p| &p.series) {
        if !out.iter().any(|e| e.0 == s.label) {
            out.push((s.label.clone(), COLORS[out.len() % COLORS.len()], s.style));
        }
    }
    out
}

/// Legend entries flowed into lines of `width` pixels: each entry's (x, line), and the lines.
fn layout_legend(entries: &[(String, RGBColor, Style)], width: u32) -> (Vec<(i32, i32)>, u32) {
    let (mut x, mut line, mut at) = (12, 0, vec![]);
    for (label, ..) in entries {
        let text = font(LEGEND)
            .box_size(label)
            .map_or(8 * label.len() as u32, |b| b.0);
        let w = 54 + text as i32;
        if x > 12 && x + w > width as i32 {
            (x, line) = (12, line + 1);
        }
        at.push((x, line));
        x += w;
    }
    (at, line as u32 + 1)
}

/// The whole figure: title, the shared legend, the panels on a grid.
fn paint<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    plot: &Plot,
    legend: &[(String, RGBColor, Style)],
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let body = root.titled(&plot.title, font(18.0))?;
    let (at, lines) = layout_legend(legend, root.dim_in_pixel().0);
    let (top, body) = body.split_vertically(22 * lines + 4);
    for ((label, color, style), &(x, line)) in legend.iter().zip(&at) {
        let y = 22 * line + 11;
        if *style == Style::Band {
            top.draw(&Rectangle::new(
                [(x, y - 6), (x + 24, y + 6)],
                color.mix(0.2).filled(),
            ))?;
            top.draw(&PathElement::new(
                [(x, y), (x + 24, y)],
                color.stroke_width(2),
            ))?;
        } else {
            top.draw(&Circle::new((x + 12, y), 4, color.filled()))?;
        }
        let style = TextStyle::from(font(LEGEND)).pos(Pos::new(HPos::Left, VPos::Center));
        top.draw(&Text::new(label.clone(), (x + 30, y), style))?;
    }
    let color = |label: &str| legend.iter().find(|e| e.0 == label).map_or(BLACK, |e| e.1);
    let cells = body.split_evenly((plot.panels.len().div_ceil(plot.cols), plot.cols));
    for (area, panel) in cells.iter().zip(&plot.panels) {
        draw_panel(area, panel, &color)?;
    }
    root.present()?;
    Ok(())
}

/// A tick label: integers without a decimal point, other values to at most 6 decimals without
/// trailing zeros (plotters' default writes epochs as "2.0").
fn number(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.6}").trim_end_matches('0').to_string()
    }
}

/// `10^v` to 2 significant digits, the tick label of a log axis (the axis holds log10 of the
/// values, so that every panel is the same linear chart type).
fn pow10(v: f64) -> String {
    let x = 10f64.powf(v);
    if (1e-3..1e5).contains(&x) {
        let digits = (1 - x.log10().floor() as i32).max(0) as usize;
        number(format!("{x:.digits$}").parse().unwrap_or(x))
    } else {
        format!("{x:.1e}")
    }
}

/// The data range of `v` with a 5% margin (5% of the value around a single one; 0..1 for none,
/// so that a panel whose points cannot be drawn still shows its axes).
fn range(v: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = v.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
        (a.min(x), b.max(x))
    });
    let pad = match (lo.is_finite(), hi > lo, lo == 0.0) {
        (false, ..) => return 0.0..1.0,
        (true, true, _) => (hi - lo) * 0.05,
        (true, false, true) => 0.5,
        (true, false, false) => lo.abs() * 0.05,
    };
    lo - pad..hi + pad
}

/// Per distinct x (in order): (x, mean, min, max) over the seeds that have it.
fn band(seeds: &PerSeed) -> Vec<(f64, f64, f64, f64)> {
    let mut all: Vec<(f64, f64)> = seeds.values().flatten().copied().collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    all.chunk_by(|a, b| a.0 == b.0)
        .map(|c| {
            let y = c.iter().map(|p| p.1);
            let mean = y.clone().sum::<f64>() / c.len() as f64;
            let min = y.clone().fold(f64::INFINITY, f64::min);
            (c[0].0, mean, min, y.fold(f64::NEG_INFINITY, f64::max))
        })
        .collect()
}

/// One panel: axes with labels, then each series in its style and colour.
fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    p: &Panel,
    color: &dyn Fn(&str) -> RGBColor,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    // Log axes hold log10 of the values; points that cannot be drawn (<= 0 on a log axis, NaN)
    // are dropped.
    let t = |(x, y): (f64, f64)| {
        let x = if p.log_x { x.log10() } else { x };
        let y = if p.log_y { y.log10() } else { y };
        (x.is_finite() && y.is_finite()).then_some((x, y))
    };
    let data: Vec<(&Series, PerSeed)> = p
        .series
        .iter()
        .map(|s| {
            let seeds = s
                .seeds
                .iter()
                .map(|(k, v)| (*k, v.iter().filter_map(|&q| t(q)).collect()));
            (s, seeds.collect())
        })
        .collect();
    let points = || data.iter().flat_map(|d| d.1.values().flatten());
    let x = if p.categories.is_empty() {
        range(points().map(|q| q.0).chain(p.marker))
    } else {
        -0.5..p.categories.len() as f64 - 0.5
    };
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, font(14.0))
        .margin(8)
        .x_label_area_size(if p.x.is_empty() { 24 } else { 40 })
        .y_label_area_size(62)
        .build_cartesian_2d(x, range(points().map(|q| q.1)))?;
    let category = |v: &f64| {
        let i = v.round();
        let name = p
            .categories
            .get(i as usize)
            .filter(|_| (v - i).abs() < 1e-6 && i >= 0.0);
        name.cloned().unwrap_or_default()
    };
    let log = |v: &f64| pow10(*v);
    let linear = |v: &f64| number(*v);
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(&p.x)
        .y_desc(&p.y)
        .label_style(font(11.0))
        .axis_desc_style(font(12.0))
        .bold_line_style(RGBColor(225, 225, 225))
        .max_light_lines(0)
        .x_label_formatter(if p.log_x { &log } else { &linear })
        .y_label_formatter(if p.log_y { &log } else { &linear });
    // Epochs are whole: at most one tick per epoch, no fractional labels.
    let whole = |v: &f64| {
        if (v - v.round()).abs() < 1e-9 {
            number(*v)
        } else {
            String::new()
        }
    };
    if p.x.contains("epoch") && !p.log_x && p.categories.is_empty() {
        let span = points().map(|q| q.0).fold(0.0, f64::max)
            - points().map(|q| q.0).fold(f64::INFINITY, f64::min);
        mesh.x_label_formatter(&whole)
            .x_labels((span as usize + 1).clamp(2, 12));
    }
    if !p.categories.is_empty() {
        // One tick per category (plotters picks unit steps for n labels over n units).
        mesh.x_label_formatter(&category)
            .x_labels(p.categories.len())
            .disable_x_mesh();
    }
    mesh.draw()?;
    for (s, seeds) in &data {
        let c = color(&s.label);
        match s.style {
            Style::Band => {
                let b = band(seeds);
                let outline = b
                    .iter()
                    .map(|q| (q.0, q.3))
                    .chain(b.iter().rev().map(|q| (q.0, q.2)));
                chart.draw_series([Polygon::new(
                    outline.collect::<Vec<_>>(),
                    c.mix(0.2).filled(),
                )])?;
                chart.draw_series(LineSeries::new(
                    b.iter().map(|q| (q.0, q.1)),
                    c.stroke_width(2),
                ))?;
                if b.len() <= 30 {
                    chart.draw_series(b.iter().map(|q| Circle::new((q.0, q.1), 2, c.filled())))?;
                }
            }
            Style::Dots => {
                let dots = seeds.values().flatten();
                chart.draw_series(dots.map(|&q| Circle::new(q, 3, c.mix(0.7).filled())))?;
            }
            Style::Strip => {
                // Seeds side by side around the category's x, so equal values stay visible.
                let n = seeds.len() as f64;
                let step = (0.5 / n).min(0.08);
                let dots = seeds.values().flatten().enumerate();
                let jitter =
                    |i: usize, q: (f64, f64)| (q.0 + (i as f64 - (n - 1.0) / 2.0) * step, q.1);
                chart.draw_series(dots.map(|(i, &q)| Circle::new(jitter(i, q), 4, c.filled())))?;
                let b = band(seeds);
                for &(x, mean, min, _) in &b {
                    let tick = |y: f64| vec![(x - 0.3, y), (x + 0.3, y)];
                    chart.draw_series([PathElement::new(tick(min), c.stroke_width(3))])?;
                    chart.draw_series([PathElement::new(
                        tick(mean),
                        RGBColor(150, 150, 150).stroke_width(1),
                    )])?;
                }
            }
        }
    }
    if let Some(m) = p.marker {
        let y = chart.y_range();
        let line = vec![(m, y.start), (m, y.end)];
        chart.draw_series([PathElement::new(
            line,
            RGBColor(120, 120, 120).stroke_width(1),
        )])?;
    }
    Ok(())
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
        // Band: per x the mean, min and max of the seeds that have it.
        let seeds: PerSeed = [(0, vec![(1.0, 1.0), (2.0, 4.0)]), (1, vec![(1.0, 3.0)])].into();
        assert_eq!(
            band(&seeds),
            vec![(1.0, 2.0, 1.0, 3.0), (2.0, 4.0, 4.0, 4.0)]
        );
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
        assert_eq!(range([1.0, 3.0, 2.0].into_iter()), 0.9..3.1);
        assert_eq!(range([2.0].into_iter()), 1.9..2.1);
        assert_eq!(range([0.0].into_iter()), -0.5..0.5);
        assert_eq!(range(std::iter::empty()), 0.0..1.0);
        let ticks = [pow10(-2.0), pow10(0.5), pow10(0.2), pow10(-0.6), pow10(6.0)];
        assert_eq!(ticks, ["0.01", "3.2", "1.6", "0.25", "1.0e6"]);
        let ticks = [number(2.0), number(0.15000000000000002), number(-3.0)];
        assert_eq!(ticks, ["2", "0.15", "-3"]);
    }

    #[test]
    fn bitmap_text_is_rasterised() {
        // The embedded font draws glyphs: a label leaves dark pixels in an otherwise white image.
        let mut rgb = vec![255u8; 200 * 40 * 3];
        {
            let area = BitMapBackend::with_buffer(&mut rgb, (200, 40)).into_drawing_area();
            area.draw(&Text::new("NC1 epoch", (5, 5), font(20.0)))
                .unwrap();
            area.present().unwrap();
        }
        assert!(rgb.iter().filter(|&&v| v < 100).count() > 100);
    }
}
