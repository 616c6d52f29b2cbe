//! Reports: a study's results gathered from its run directories as tidy rows (`results`) and
//! aggregated over seeds (`aggregate`). Everything here reads only what runs wrote, so a report can
//! be made at any time, of a partial study too.
pub mod aggregate;
pub mod results;

pub use aggregate::{Summary, aggregate};
pub use results::{Row, collect};

use crate::error::Result;
use crate::study::{Plan, TaskState};
use std::path::{Path, PathBuf};

/// What `write` produced.
pub struct Written {
    pub dir: PathBuf,
    pub rows: usize,
    pub summaries: usize,
    /// Labels of the study's tasks that have not finished (the report covers what exists).
    pub missing: Vec<String>,
}

/// Writes `ROOT/report/`: results.csv and .json (tidy rows), aggregate.csv and .json (over seeds).
pub fn write(plan: &Plan, root: &Path) -> Result<Written> {
    let rows = collect(&plan.runs)?;
    let summaries = aggregate(&rows);
    let dir = root.join("report");
    std::fs::create_dir_all(&dir).map_err(|e| crate::Error::io(&dir, e))?;
    crate::atomic::write(&dir.join("results.csv"), results::to_csv(&rows).as_bytes())?;
    crate::atomic::write_json(&dir.join("results.json"), &rows)?;
    crate::atomic::write(
        &dir.join("aggregate.csv"),
        aggregate::to_csv(&summaries).as_bytes(),
    )?;
    crate::atomic::write_json(&dir.join("aggregate.json"), &summaries)?;
    Ok(Written {
        dir,
        rows: rows.len(),
        summaries: summaries.len(),
        missing: plan
            .tasks
            .iter()
            .filter(|t| plan.state(t) != TaskState::Finished)
            .map(|t| t.label.clone())
            .collect(),
    })
}
