//! Reports: a study's results gathered from its run directories as tidy rows (`results`) and
//! aggregated over seeds (`aggregate`). Everything here reads only what runs wrote, so a report can
//! be made at any time, of a partial study too.
pub mod aggregate;
pub mod claims;
pub mod results;

pub use aggregate::{Summary, aggregate};
pub use results::{Row, collect};

use crate::error::Result;
use crate::study::{Plan, StudySpec, TaskState};
use std::path::{Path, PathBuf};

/// What `write` produced.
pub struct Written {
    pub dir: PathBuf,
    /// The report page.
    pub html: PathBuf,
    pub rows: usize,
    pub summaries: usize,
    pub claims: Vec<claims::Judged>,
    /// Labels of the study's tasks that have not finished (the report covers what exists).
    pub missing: Vec<String>,
}

/// What the study ran, for the claims' scale: ID data, architecture, width, and per variant its
/// epochs and seeds.
fn scale(spec: &StudySpec) -> Result<String> {
    let mut parts = vec![];
    for v in &spec.variants {
        let c = spec.run_config(v, v.seeds[0])?;
        parts.push(format!(
            "{}: {} {} w={} {} epochs, {} seeds",
            v.name,
            c.data.name,
            c.model.arch.name(),
            c.model.width,
            c.optim.epochs,
            v.seeds.len()
        ));
    }
    Ok(parts.join("; "))
}

/// Writes `ROOT/report/`: results.csv and .json (tidy rows), aggregate.csv and .json (over seeds),
/// claims.json and .md (the claims the study's roles allow judging).
pub fn write(spec: &StudySpec, plan: &Plan, root: &Path) -> Result<Written> {
    let rows = collect(&plan.runs)?;
    let summaries = aggregate(&rows);
    let mut judged = vec![];
    for roles in &spec.roles {
        judged.extend(claims::judge_study(&rows, &plan.runs, roles, &scale(spec)?));
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
    crate::atomic::write(&dir.join("claims.md"), claims::markdown(&judged).as_bytes())?;
    Ok(Written {
        html: dir.join("report.html"),
        dir,
        rows: rows.len(),
        summaries: summaries.len(),
        claims: judged,
        missing: plan
            .tasks
            .iter()
            .filter(|t| plan.state(t) != TaskState::Finished)
            .map(|t| t.label.clone())
            .collect(),
    })
}
