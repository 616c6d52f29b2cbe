//! Reports: a study's results gathered from its run directories as tidy rows (`results`),
//! aggregated over seeds (`aggregate`), the paper's tables (`tables`) and figures (`figures`), its
//! claims judged (`claims`), and all of it on one page (`html`). Everything here reads only what
//! runs wrote, so a report can be made at any time, of a partial study too.
pub mod aggregate;
pub mod claims;
pub mod figures;
pub mod html;
pub mod results;
pub mod tables;

pub use aggregate::{Summary, aggregate};
pub use results::{Row, collect};

use crate::error::Result;
use crate::study::{Plan, StudySpec, TaskState};
use std::path::{Path, PathBuf};

/// What `write` produced.
pub struct Written {
    /// The report page.
    pub html: PathBuf,
    pub rows: usize,
    pub summaries: usize,
    pub claims: Vec<claims::Judged>,
    /// Labels of the study's tasks that have not finished (the report covers what exists).
    pub missing: Vec<String>,
}

/// What a roles block's models were trained at, for the claims' scale: per model its ID data
/// (and training subset), architecture, width, epochs, seeds and tracking subset.
fn scale(spec: &StudySpec, roles: &crate::study::spec::Roles) -> Result<String> {
    let mut parts = vec![];
    for name in roles.models() {
        let v = spec.variant(name).expect("validated roles");
        let c = spec.run_config(v, v.seeds[0])?;
        let subset = |n: usize| {
            if n == 0 {
                "all".to_string()
            } else {
                n.to_string()
            }
        };
        parts.push(format!(
            "{}: {} ({} training images) {} w={} {} epochs, {} seeds, NC on {} training images",
            v.name,
            c.data.name,
            subset(c.data.train_subset),
            c.model.arch.name(),
            c.model.width,
            c.optim.epochs,
            v.seeds.len(),
            subset(c.track.subset)
        ));
    }
    Ok(parts.join("; "))
}

/// What the tables and figures call a roles block: its label, else the architecture of its
/// first run.
pub fn label(spec: &StudySpec, roles: &crate::study::spec::Roles) -> Result<String> {
    if !roles.label.is_empty() {
        return Ok(roles.label.clone());
    }
    let Some((_, run)) = roles.named().into_iter().next() else {
        return Ok("study".into());
    };
    let v = spec
        .variant(run)
        .or_else(|| {
            let o = spec.overtrains.iter().find(|o| o.name == run)?;
            spec.variant(&o.source)
        })
        .expect("validated roles");
    Ok(spec
        .run_config(v, v.seeds[0])?
        .model
        .arch
        .name()
        .to_string())
}

/// A file-stem-safe lower-case form of a label ("ResNet 18" -> "resnet-18").
pub fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

/// Writes `ROOT/report/`: results.csv and .json (tidy rows), aggregate.csv and .json (over seeds),
/// the paper's tables (tableN-LABEL.{csv,json}, all in tables.md), figures (NAME.svg, NAME.png),
/// claims.json and .md (the claims the study's roles allow judging) and report.html (all of it).
pub fn write(spec: &StudySpec, plan: &Plan, root: &Path) -> Result<Written> {
    let rows = collect(&plan.runs)?;
    let summaries = aggregate(&rows);
    let (mut judged, mut tables, mut scales) = (vec![], vec![], vec![]);
    for roles in &spec.roles {
        let label = label(spec, roles)?;
        let scale = scale(spec, roles)?;
        scales.push(format!("{label}: {scale}"));
        tables.extend(tables::tables(&rows, &plan.runs, roles, &label));
        // Interventions belong to the block whose no-L2 long runs they start from.
        let interventions: Vec<_> = spec
            .interventions
            .iter()
            .filter(|i| roles.nol2_long.as_ref() == Some(&i.source))
            .cloned()
            .collect();
        judged.extend(claims::judge_study(
            &rows,
            &plan.runs,
            roles,
            &interventions,
            &scale,
            &label,
        ));
    }
    let dir = root.join("report");
    std::fs::create_dir_all(&dir).map_err(|e| crate::Error::io(&dir, e))?;
    crate::atomic::write(&dir.join("results.csv"), results::to_csv(&rows).as_bytes())?;
    crate::atomic::write_json(&dir.join("results.json"), &rows)?;
    crate::atomic::write(
        &dir.join("aggregate.csv"),
        aggregate::to_csv(&summaries).as_bytes(),
    )?;
    crate::atomic::write_json(&dir.join("aggregate.json"), &summaries)?;
    crate::atomic::write_json(&dir.join("claims.json"), &judged)?;
    let mut md = String::new();
    for t in &tables {
        crate::atomic::write(
            &dir.join(format!("{}.csv", t.name)),
            tables::csv(t).as_bytes(),
        )?;
        crate::atomic::write_json(&dir.join(format!("{}.json", t.name)), t)?;
        md += &tables::markdown(t);
        md.push('\n');
    }
    crate::atomic::write(&dir.join("tables.md"), md.as_bytes())?;
    let drawn = figures::draw(&rows, &plan.runs, spec, &dir)?;
    let missing: Vec<String> = plan
        .tasks
        .iter()
        .filter(|t| plan.state(t) != TaskState::Finished)
        .map(|t| t.label.clone())
        .collect();
    let title = format!(
        "ncood study {}",
        root.canonicalize()
            .unwrap_or_else(|_| root.to_path_buf())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    let page = html::render(&html::Page {
        title: &title,
        spec: &spec.to_toml(),
        scale: &scales.join(" | "),
        missing: &missing,
        tasks: &crate::study::TaskRecord::read_all(root, plan),
        tables: &tables,
        figures: &drawn,
        claims: &judged,
    });
    let html_path = dir.join("report.html");
    crate::atomic::write(&html_path, page.as_bytes())?;
    crate::atomic::write(&dir.join("claims.md"), claims::markdown(&judged).as_bytes())?;
    Ok(Written {
        html: html_path,
        rows: rows.len(),
        summaries: summaries.len(),
        claims: judged,
        missing,
    })
}
