//! PLACEHOLDER (being written by a helper this session): the SLURM executor.
use super::local::Compute;
use super::plan::Plan;
use super::spec::SlurmSpec;
use crate::error::{Error, Result};
use std::path::Path;

/// A submitted SLURM job: its id and what it runs.
pub struct Job {
    pub id: String,
    pub what: String,
}

pub fn submit(_plan: &Plan, _exe: &Path, _s: &SlurmSpec, _c: Compute) -> Result<Vec<Job>> {
    Err(Error::invalid("slurm", "not written yet"))
}

pub fn status(_root: &Path) -> Option<String> {
    None
}
