//! `report.html`: one self-contained page (figures inlined as SVG, styles inline, no network) with
//! the study's settings, provenance, tables, figures and judged claims, readable on a laptop and a
//! phone. A small inline script measures every figure once the page has laid out and records the
//! result on `<body data-figures=...>` and the console, so a headless browser can check that each
//! one rendered.
use super::claims::{self, Judged, Verdict};
use super::figures::Figure;
use super::tables::{Cell, Table};
use crate::study::TaskRecord;

/// Everything the page shows.
pub struct Page<'a> {
    pub title: &'a str,
    /// The study file as recorded.
    pub spec: &'a str,
    pub scale: &'a str,
    /// Labels of unfinished tasks (a partial study).
    pub missing: &'a [String],
    pub tasks: &'a [TaskRecord],
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

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:0 12px;line-height:1.4;color:#222}
h1{font-size:1.5em}h2{border-bottom:1px solid #ccc;margin-top:2em}
.scroll{overflow-x:auto}table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
td,th{border:1px solid #ddd;padding:3px 6px;text-align:left;white-space:nowrap}th{background:#f4f4f4}
figure{margin:1.5em 0}figure svg{width:100%;height:auto;max-width:1000px;display:block}
figcaption{font-size:.9em;color:#444}
.supported{background:#d9f2d9}.contradicted{background:#f7d4d4}.inconclusive{background:#f2f2f2}
.warn{background:#fff4cc;padding:6px}pre{background:#f7f7f7;padding:8px;overflow-x:auto;font-size:.8em}";

/// Checks each inline figure's laid-out size and records it for a headless browser.
const SCRIPT: &str = "window.addEventListener('load',function(){var bad=[],n=0;
document.querySelectorAll('figure svg').forEach(function(s){n++;var r=s.getBoundingClientRect();
if(!(r.width>0&&r.height>0))bad.push(s.closest('figure').id);});
document.body.dataset.figures=bad.length?'empty:'+bad.join(','):'ok:'+n;
console.log('ncood figures '+document.body.dataset.figures);});";

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

fn table_html(t: &Table) -> String {
    let mut s = format!(
        "<h3 id=\"{}\">{}</h3><p>{}</p><div class=\"scroll\"><table><tr>",
        esc(&t.name),
        esc(&t.title),
        esc(&t.caption)
    );
    for h in &t.header {
        s += &format!("<th>{}</th>", esc(h));
    }
    s += "</tr>";
    for r in &t.rows {
        s += "<tr>";
        for c in r {
            let n = match c {
                Cell::Stats(x) => format!(" title=\"n = {}\"", x.n),
                _ => String::new(),
            };
            s += &format!("<td{n}>{}</td>", esc(&c.text()));
        }
        s += "</tr>";
    }
    s + "</table></div>"
}

fn claims_html(judged: &[Judged]) -> String {
    let mut s = String::from(
        "<div class=\"scroll\"><table><tr><th>claim</th><th>statement</th><th>supported</th><th>contradicted</th><th>inconclusive</th></tr>",
    );
    for (claim, statement, [yes, no, open]) in claims::summary(judged) {
        s += &format!(
            "<tr><td><b>{}</b></td><td style=\"white-space:normal\">{}</td><td class=\"supported\">{yes}</td><td class=\"contradicted\">{no}</td><td class=\"inconclusive\">{open}</td></tr>",
            esc(claim),
            esc(statement)
        );
    }
    s += "</table></div><p>Every comparison:</p><div class=\"scroll\"><table><tr><th>claim</th><th>OoD set</th><th>compared</th><th>this study</th><th>paper</th><th>difference [95% CI]</th><th>seeds</th><th>verdict</th><th>note</th></tr>";
    for j in judged {
        let class = claims::verdict_name(j.verdict);
        s += &format!(
            "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{} of {} vs {}</td><td>{:.4} vs {:.4}</td><td>{}</td><td>{:+.4} [{:+.4}, {:+.4}]</td><td>{} / {}</td><td>{class}</td><td>{}</td></tr>",
            esc(&j.claim),
            esc(if j.ood.is_empty() { "-" } else { &j.ood }),
            esc(&claims::stat_name(j.stat, &j.metric)),
            esc(&j.a),
            esc(if j.b.is_empty() { "-" } else { &j.b }),
            j.a_value,
            j.b_value,
            esc(&j.paper),
            j.difference,
            j.interval[0],
            j.interval[1],
            j.seeds[0],
            j.seeds[1],
            esc(&j.note)
        );
    }
    s + "</table></div>"
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
    let verdicts = |v: Verdict| p.claims.iter().filter(|j| j.verdict == v).count();
    let mut s = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{}</title><style>{STYLE}</style></head><body><h1>{}</h1>",
        esc(p.title),
        esc(p.title)
    );
    s += &format!(
        "<p>Scale: {}.</p><p>{} comparisons judged: {} supported, {} contradicted, {} inconclusive. Data: <a href=\"results.csv\">results.csv</a> (one tidy row per value), <a href=\"aggregate.csv\">aggregate.csv</a> (over seeds), <a href=\"claims.json\">claims.json</a>.</p>",
        esc(p.scale),
        p.claims.len(),
        verdicts(Verdict::Supported),
        verdicts(Verdict::Contradicted),
        verdicts(Verdict::Inconclusive)
    );
    if !p.missing.is_empty() {
        s += &format!(
            "<p class=\"warn\">Partial study: {} task(s) not finished ({}). What follows covers what exists.</p>",
            p.missing.len(),
            esc(&p.missing.join("; "))
        );
    }
    s += "<h2>Claims</h2>";
    s += &claims_html(p.claims);
    s += "<h2>Tables</h2>";
    for t in p.tables {
        s += &table_html(t);
    }
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
    s += "<h2>Provenance</h2>";
    s += &provenance_html(p.tasks);
    s += &format!("<h2>Settings</h2><pre>{}</pre>", esc(p.spec));
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
            scale: "s",
            missing: &["train a s0".into()],
            tasks: &[],
            tables: &[],
            figures: &[],
            claims: &[],
        });
        assert!(page.contains("Partial study: 1 task(s)") && page.contains("<pre>[base]</pre>"));
        assert!(!page.contains("http"), "no network references");
    }
}
