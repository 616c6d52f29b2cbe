//! A small chart renderer with `plotters`, knowing nothing of studies: a `Plot` (panels of named
//! series, per seed: mean lines with min-max bands, dots, strips) drawn twice, on the SVG and on
//! the bitmap backend, as NAME.svg (self-contained: report.html inlines it) and NAME.png, so both
//! files show the same thing. Text is laid out and rasterised with DejaVu Sans embedded in the
//! binary (the `dejavu` crate, through plotters' `ab_glyph` feature): the PNG has readable text on
//! any machine, with no system font or fontconfig.
use crate::error::{Error, Result};
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

// ---------------------------------------------------------------------------------------------
// What a figure holds.

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Style {
    /// Mean over seeds as a line, min-max over seeds as a band (curves over epochs).
    Band,
    /// Every point of every seed as a dot (scatter).
    Dots,
    /// One column of dots (one per seed) at category `x`, a thick tick at the worst (min) seed
    /// and a thin one at the mean (the strip plot of final AUROC).
    Strip,
}

/// Per seed, (x, y) points.
pub(super) type PerSeed = BTreeMap<u64, Vec<(f64, f64)>>;

/// One named series: per seed its (x, y) points.
pub(super) struct Series {
    pub(super) label: String,
    pub(super) style: Style,
    pub(super) seeds: PerSeed,
}

/// One panel of a figure.
pub(super) struct Panel {
    pub(super) title: String,
    pub(super) x: String,
    pub(super) y: String,
    pub(super) log_x: bool,
    pub(super) log_y: bool,
    /// Names of the categorical x positions 0, 1, ... (strip plots); empty for numeric x.
    pub(super) categories: Vec<String>,
    /// A vertical grey line (where over-training starts).
    pub(super) marker: Option<f64>,
    pub(super) series: Vec<Series>,
}

impl Panel {
    /// A panel over epochs (numeric x), keeping only the series that have points.
    pub(super) fn new(
        title: impl Into<String>,
        x: &str,
        y: &str,
        log_y: bool,
        series: Vec<Series>,
    ) -> Panel {
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
pub(super) struct Plot {
    pub(super) name: String,
    pub(super) title: String,
    pub(super) caption: String,
    pub(super) panels: Vec<Panel>,
    pub(super) cols: usize,
    pub(super) panel: (u32, u32),
}

impl Plot {
    /// None when no panel has data: the figure is left out.
    pub(super) fn new(
        name: String,
        title: String,
        caption: String,
        panels: Vec<Panel>,
    ) -> Option<Plot> {
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

pub(super) fn series(label: impl Into<String>, style: Style, seeds: PerSeed) -> Series {
    Series {
        label: label.into(),
        style,
        seeds,
    }
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
pub(super) fn render(plot: &Plot, dir: &Path) -> Result<Figure> {
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

    #[test]
    fn helpers_by_hand() {
        // Band: per x the mean, min and max of the seeds that have it.
        let seeds: PerSeed = [(0, vec![(1.0, 1.0), (2.0, 4.0)]), (1, vec![(1.0, 3.0)])].into();
        assert_eq!(
            band(&seeds),
            vec![(1.0, 2.0, 1.0, 3.0), (2.0, 4.0, 4.0, 4.0)]
        );
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
