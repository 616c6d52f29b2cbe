//! `report.html`: one self-contained page (figures inlined as SVG, styles inline, no network) that
//! reads like a results section: the verdict per claim first (with its effect, interval, seeds
//! and the regime check), then Table 1 with the published anchors, how each run group was
//! trained, the figures and the other tables; the parts of every verdict, the per-task times and
//! the study file sit in collapsed sections. It fits a 1280 px window without horizontal scrolling
//! and stays readable at 400 px. A small inline script measures every figure once the page has
//! laid out, and every element against the page's width, and records both on `<body
//! data-figures=... data-overflow=...>` and the console, so a headless browser can check them.
use super::chart::Figure;
use super::claims::{self, Judged, Verdict};
use super::regime::{Regime, Training};
use super::tables::{Cell, Table};
use crate::study::TaskRecord;

/// Everything the page shows.
pub struct Page<'a> {
    pub title: &'a str,
    /// The study file as recorded.
    pub spec: &'a str,
    /// Per roles block, its label and scale.
    pub scales: &'a [(String, String)],
    pub regimes: &'a [Regime],
    /// The OoD set the headline verdicts are read on.
    pub primary: &'a str,
    /// Labels of unfinished tasks (a partial study).
    pub missing: &'a [String],
    pub tasks: &'a [TaskRecord],
    pub training: &'a [Training],
    pub tables: &'a [Table],
    pub figures: &'a [Figure],
    pub claims: &'a [Judged],
}

/// Escapes text for HTML content and attribute values (the five characters that matter; no crate
/// needed for that).
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:0 12px;line-height:1.4;color:#222}
h1{font-size:1.4em}h2{border-bottom:1px solid #ccc;margin-top:1.6em}h3{font-size:1.05em}
.scroll{overflow-x:auto;max-width:100%}table{border-collapse:collapse;font-size:.82em;margin:.5em 0}
td,th{border:1px solid #ddd;padding:2px 5px;text-align:left;vertical-align:top}th{background:#f4f4f4}
td.num{white-space:nowrap}td.wrap{min-width:12em}
figure{margin:1.2em 0}figure svg{width:100%;height:auto;max-width:1000px;display:block}
figcaption{font-size:.9em;color:#444}
.supported,.not_contradicted{background:#d9f2d9}.contradicted{background:#f7d4d4}
.inconclusive,.too_few_seeds,.exception{background:#f2f2f2}.out_of_regime{background:#fff4cc}
.warn{background:#fff4cc;padding:6px}.ok{background:#e8f4e8;padding:6px}
pre{background:#f7f7f7;padding:8px;overflow-x:auto;font-size:.8em;white-space:pre-wrap}
details{margin:.6em 0}summary{cursor:pointer;font-weight:600}";

/// Checks each inline figure's laid-out size, every element's right edge against the page's
/// width (`data-overflow`: elements wider than the page outside a horizontally scrolling box) and
/// which tables need their box to scroll (`data-scroll`), and records them for a headless browser.
const SCRIPT: &str = "window.addEventListener('load',function(){var bad=[],n=0;
document.querySelectorAll('figure svg').forEach(function(s){n++;var r=s.getBoundingClientRect();
if(!(r.width>0&&r.height>0))bad.push(s.closest('figure').id);});
document.body.dataset.figures=bad.length?'empty:'+bad.join(','):'ok:'+n;
var w=document.documentElement.clientWidth,wide=[],scroll=[];
document.querySelectorAll('body *').forEach(function(e){if(e.closest('details:not([open])'))return;
var r=e.getBoundingClientRect();if(r.width>0&&r.right>w+1&&!e.closest('.scroll'))wide.push(e.tagName+(e.id?'#'+e.id:''));});
document.querySelectorAll('.scroll').forEach(function(e){if(e.scrollWidth>e.clientWidth+1)scroll.push(e.previousElementSibling?e.previousElementSibling.textContent.slice(0,40):'table');});
document.body.dataset.overflow=wide.length?'wide:'+wide.slice(0,5).join(','):'ok';
document.body.dataset.scroll=scroll.length?'scrolls:'+scroll.length:'none';
console.log('ncood figures '+document.body.dataset.figures+' overflow '+document.body.dataset.overflow+' scroll '+document.body.dataset.scroll);});";

/// A plotters SVG scales with the page only with a viewBox: add one from its width and height.
fn scalable(svg: &str) -> String {
    if svg.contains("viewBox") {
        return svg.to_string();
    }
    let attr = |name: &str| -> Option<String> {
        let i = svg.find(&format!(" {name}=\""))? + name.len() + 3;
        let j = svg[i..].find('"')? + i;
        Some(svg[i..j].to_string())
    };
    match (attr("width"), attr("height")) {
        (Some(w), Some(h)) => svg.replacen("<svg ", &format!("<svg viewBox=\"0 0 {w} {h}\" "), 1),
        _ => svg.to_string(),
    }
}

/// A cell: a statistic as "mean ± std" over "[min, max]", with n where it differs from the
/// row's.
fn cell_html(c: &Cell, row_n: usize) -> String {
    match c {
        Cell::Stats(x) => {
            let [mean, std, range] = Cell::parts(x);
            let n = if x.n == row_n {
                String::new()
            } else {
                format!(" (n={})", x.n)
            };
            format!("<td class=\"num\">{mean} ± {std}<br>{range}{n}</td>")
        }
        c => format!("<td>{}</td>", esc(&c.text())),
    }
}

fn table_html(t: &Table) -> String {
    let mut s = format!(
        "<h3 id=\"{}\">{}</h3><p>{}</p><div class=\"scroll\"><table><tr>",
        esc(&t.name),
        esc(&t.title),
        esc(&t.caption)
    );
    let has_stats = t.rows.iter().flatten().any(|c| matches!(c, Cell::Stats(_)));
    for h in &t.header {
        s += &format!("<th>{}</th>", esc(h));
    }
    if has_stats {
        s += "<th>n</th>";
    }
    s += "</tr>";
    for r in &t.rows {
        let n = r
            .iter()
            .filter_map(|c| match c {
                Cell::Stats(x) => Some(x.n),
                _ => None,
            })
            .max();
        s += "<tr>";
        for c in r {
            s += &cell_html(c, n.unwrap_or(0));
        }
        if has_stats {
            s += &format!("<td>{}</td>", n.map_or("-".into(), |n| n.to_string()));
        }
        s += "</tr>";
    }
    s + "</table></div>"
}

/// The headline: one line per claim on the primary OoD set.
fn verdicts_html(judged: &[Judged], primary: &str) -> String {
    let mut s = format!(
        "<p>One line per claim of SPEC 8 (per model for C7), read on {}; each is two one-sided tests at 2.5% (false verdicts at most 5% on null data, measured), with the seeds its method needs. The parts of every verdict, and the other OoD sets, are under <a href=\"#details\">Every verdict</a> and in <a href=\"claims.md\">claims.md</a> / <a href=\"claims.json\">claims.json</a>.</p><div class=\"scroll\"><table><tr><th>claim</th><th>statement</th><th>verdict</th><th>effect [95% CI]</th><th>seeds</th><th>paper</th><th>other OoD sets</th></tr>",
        esc(primary)
    );
    for j in claims::headline(judged, primary) {
        let def = claims::claim(&j.claim);
        let class = format!("{:?}", j.verdict).to_lowercase();
        let class = match j.verdict {
            Verdict::NotContradicted => "not_contradicted".to_string(),
            Verdict::TooFewSeeds => "too_few_seeds".to_string(),
            Verdict::OutOfRegime => "out_of_regime".to_string(),
            _ => class,
        };
        let block = if j.block == "all" {
            String::new()
        } else {
            format!(" ({})", j.block)
        };
        let subject = if j.claim == "C7" {
            format!(" [{}]", j.subject)
        } else {
            String::new()
        };
        s += &format!(
            "<tr class=\"{class}\"><td><b>{}</b>{}</td><td class=\"wrap\">{}{}</td><td>{}</td><td class=\"num\">{}</td><td>{} / {}</td><td class=\"wrap\">{}</td><td>{}</td></tr>",
            esc(&j.claim),
            esc(&block),
            esc(def.statement),
            esc(&subject),
            esc(&claims::verdict_text(j)),
            esc(&j.effect),
            j.seeds[0],
            j.seeds[1],
            esc(def.paper),
            esc(&claims::other_sets(judged, j))
        );
    }
    s + "</table></div>"
}

/// Every verdict with its parts, collapsed.
fn details_html(judged: &[Judged]) -> String {
    let mut s = String::from(
        "<h2 id=\"details\">Every verdict</h2><details><summary>The parts of every verdict, per OoD set</summary>",
    );
    for j in judged {
        let side = claims::claim(&j.claim).side;
        s += &format!(
            "<h3>{} {} ({}{}): {}</h3><p>{} {}</p><div class=\"scroll\"><table><tr><th>part</th><th>values</th><th>estimate [95% CI]</th><th>p (claimed side)</th><th>method</th><th>seeds</th><th>decision</th></tr>",
            esc(&j.block),
            esc(&j.claim),
            esc(&j.subject),
            esc(&if j.ood.is_empty() {
                String::new()
            } else {
                format!(", {}", j.ood)
            }),
            esc(&claims::verdict_text(j)),
            esc(&j.effect),
            esc(&j.note)
        );
        for p in &j.parts {
            let t = &p.test;
            s += &format!(
                "<tr><td class=\"wrap\">{}</td><td class=\"num\">{:.4} vs {:.4}</td><td class=\"num\">{:+.4} {}</td><td>{:.4}</td><td>{}</td><td>{} / {}</td><td>{}</td></tr>",
                esc(&p.what),
                p.values[0],
                p.values[1],
                t.estimate,
                t.interval
                    .map_or(String::new(), |[a, b]| format!("[{a:+.4}, {b:+.4}]")),
                t.p(side),
                t.method.name(),
                t.n[0],
                t.n[1],
                p.needs
                    .map_or(format!("{:?}", p.decision).to_lowercase(), |n| format!(
                        "too few seeds (needs {n})"
                    ))
            );
        }
        s += "</table></div>";
    }
    s + "</details>"
}

/// How each run group was trained.
fn training_html(training: &[Training]) -> String {
    let mut s = String::from(
        "<div class=\"scroll\"><table><tr><th>run</th><th>seeds</th><th>epochs</th><th>milestones</th><th>SGD steps</th><th>precision</th><th>train accuracy</th><th>train loss</th><th>test accuracy</th><th>temperature</th></tr>",
    );
    for t in training {
        let stat = |x: &Option<super::stats::Stats>| match x {
            Some(x) => cell_html(&Cell::Stats(x.clone()), t.seeds),
            None => "<td>-</td>".into(),
        };
        s += &format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:?}</td><td>{}</td><td>{}</td>{}{}{}{}</tr>",
            esc(&t.run),
            t.seeds,
            t.epochs,
            t.milestones,
            t.steps,
            esc(&t.precision),
            stat(&t.train_acc),
            stat(&t.train_loss),
            stat(&t.test_acc),
            stat(&t.temperature)
        );
    }
    s + "</table></div><p>Train accuracy and loss: the last epoch's running values (augmented batches, train mode). SGD steps: epochs x batches per epoch (the last, partial batch included).</p>"
}

fn provenance_html(tasks: &[TaskRecord]) -> String {
    if tasks.is_empty() {
        return "<p>No task records (tasks run before ncood recorded them).</p>".into();
    }
    let mut distinct: Vec<String> = tasks
        .iter()
        .map(|t| {
            format!(
                "ncood {} (commit {}) on {} ({}), device {}, {} threads",
                t.provenance.ncood_version,
                t.provenance.git_commit,
                t.host,
                t.cpu,
                t.provenance.device,
                t.provenance.threads
            )
        })
        .collect();
    distinct.sort();
    distinct.dedup();
    let total: f64 = tasks.iter().map(|t| t.seconds).sum();
    let mut s = String::from("<ul>");
    for d in &distinct {
        s += &format!("<li>{}</li>", esc(d));
    }
    s += &format!(
        "</ul><p>{} tasks, {:.0} s of task wall time in all.</p><details><summary>Wall time per task</summary><div class=\"scroll\"><table><tr><th>task</th><th>seconds</th><th>host</th><th>device</th></tr>",
        tasks.len(),
        total
    );
    for t in tasks {
        s += &format!(
            "<tr><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td></tr>",
            esc(&t.label),
            t.seconds,
            esc(&t.host),
            esc(&t.provenance.device)
        );
    }
    s + "</table></div></details>"
}

/// The page's HTML.
pub fn render(p: &Page) -> String {
    let mut s = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{}</title><style>{STYLE}</style></head><body><h1>{}</h1>",
        esc(p.title),
        esc(p.title)
    );
    for (label, scale) in p.scales {
        s += &format!("<p><b>{}</b>: {}.</p>", esc(label), esc(scale));
    }
    for r in p.regimes {
        let class = if r.ok == Some(true) { "ok" } else { "warn" };
        s += &format!("<p class=\"{class}\">Regime check: {}.</p>", esc(&r.why));
    }
    if !p.missing.is_empty() {
        s += &format!(
            "<details class=\"warn\"><summary>Partial study: {} task(s) not finished; what follows covers what exists.</summary>{}</details>",
            p.missing.len(),
            esc(&p.missing.join("; "))
        );
    }
    s += "<h2>Verdicts</h2>";
    s += &verdicts_html(p.claims, p.primary);
    let (first, rest): (Vec<&Table>, Vec<&Table>) =
        p.tables.iter().partition(|t| t.name.starts_with("table1-"));
    for t in first {
        s += &table_html(t);
    }
    s += "<h2>How each run group was trained</h2>";
    s += &training_html(p.training);
    s += "<h2>Figures</h2>";
    for f in p.figures {
        s += &format!(
            "<figure id=\"{}\">{}<figcaption><b>{}</b> {} (<a href=\"{}.svg\">SVG</a>, <a href=\"{}.png\">PNG</a>)</figcaption></figure>",
            esc(&f.name),
            scalable(&f.svg),
            esc(&f.title),
            esc(&f.caption),
            esc(&f.name),
            esc(&f.name)
        );
    }
    s += "<h2>Tables</h2>";
    for t in rest {
        s += &table_html(t);
    }
    s += &details_html(p.claims);
    s += "<h2>Provenance</h2>";
    s += &provenance_html(p.tasks);
    s += &format!(
        "<h2>Settings</h2><p>Data: <a href=\"results.csv\">results.csv</a> (one tidy row per value), <a href=\"aggregate.csv\">aggregate.csv</a> (over seeds).</p><details><summary>The study file</summary><pre>{}</pre></details>",
        esc(p.spec)
    );
    s += &format!("<script>{SCRIPT}</script></body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_scales() {
        assert_eq!(esc("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
        assert_eq!(
            scalable("<svg width=\"640\" height=\"480\" xmlns=\"x\"></svg>"),
            "<svg viewBox=\"0 0 640 480\" width=\"640\" height=\"480\" xmlns=\"x\"></svg>"
        );
        let page = render(&Page {
            title: "t",
            spec: "[base]",
            scales: &[("ResNet18".into(), "s".into())],
            regimes: &[],
            primary: "mnist",
            missing: &["train a s0".into()],
            tasks: &[],
            training: &[],
            tables: &[],
            figures: &[],
            claims: &[],
        });
        assert!(page.contains("Partial study: 1 task(s)") && page.contains("<pre>[base]</pre>"));
        assert!(!page.contains("http"), "no network references");
    }
}
