//! Studies: many seeded runs of several variants of one base configuration, plus the runs derived
//! from them (over-training, the SPEC 7 intervention) and their evaluations, as one idempotent
//! job. `spec` is the study file (TOML), `plan` turns it into a dependency graph of tasks whose
//! state is read from the run directories, `local` executes a plan with a pool of processes.
pub mod local;
pub mod plan;
pub mod spec;

pub use plan::{Plan, Task, TaskKind, TaskState};
pub use spec::StudySpec;

use crate::error::{Error, Result};
use std::path::Path;

/// The study file kept in a study directory: what `study task` and `study status` plan from.
pub const STUDY_FILE: &str = "study.toml";

/// Records `spec` as the study of `root`: a new directory takes it; an existing one only if `spec`
/// extends its recorded study (added variants or seeds).
pub fn record(spec: &StudySpec, root: &Path) -> Result<()> {
    let path = root.join(STUDY_FILE);
    if path.exists() {
        let old = load(root)?;
        if let Err(why) = spec.extends(&old) {
            return Err(Error::run_dir(
                root,
                format!(
                    "holds another study ({why}); only added variants or seeds may change it: use another directory"
                ),
            ));
        }
    }
    std::fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
    crate::atomic::write(&path, spec.to_toml().as_bytes())
}

/// The study recorded in `root`.
pub fn load(root: &Path) -> Result<StudySpec> {
    let path = root.join(STUDY_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    StudySpec::from_toml(&text).map_err(|e| Error::bad_file(&path, e.to_string()))
}
