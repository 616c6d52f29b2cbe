//! Studies: many seeded runs of several variants of one base configuration, plus the runs derived
//! from them (over-training, the SPEC 7 intervention) and their evaluations, as one idempotent
//! job. `spec` is the study file (TOML), `plan` turns it into a dependency graph of tasks whose
//! state is read from the run directories, `local` executes a plan with a pool of processes.
pub mod dir;
pub mod local;
pub mod plan;
pub mod slurm;
pub mod spec;

pub use dir::{STUDY_FILE, TaskRecord, check_free, check_record, load, lock, record};
pub use plan::{Plan, Task, TaskKind, TaskState};
pub use spec::{SlurmOverrides, SlurmSpec, StudySpec};

use crate::device::Compute;
use crate::error::{Error, Result};
use std::path::Path;

/// Where a study's tasks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Executor {
    /// A pool of child processes on this machine (`local::run_pool`).
    Local,
    /// SLURM job arrays (`slurm::submit`).
    Slurm,
}

impl std::str::FromStr for Executor {
    type Err = Error;
    fn from_str(s: &str) -> Result<Executor> {
        match s {
            "local" => Ok(Executor::Local),
            "slurm" => Ok(Executor::Slurm),
            _ => Err(Error::config(
                "executor",
                format!("{s}: expected local or slurm"),
            )),
        }
    }
}

/// What running the study `spec` in `root` needs, in order. First every check, before anything
/// is written: the `[slurm]` settings `slurm` (for the SLURM executor also what a submission
/// needs, with `compute`), the data (`check_data`), the study the directory holds
/// (`check_record`), and whether another process holds the directory or jobs it submitted are
/// queued. A `dry_run` ends there (None). A run then takes the directory, whose lock it returns
/// (hold it until the tasks are done or submitted), and records the study.
pub fn prepare(
    spec: &StudySpec,
    root: &Path,
    executor: Executor,
    slurm: &SlurmSpec,
    compute: Compute,
    dry_run: bool,
) -> Result<Option<crate::atomic::Lock>> {
    match executor {
        Executor::Slurm => self::slurm::check(root, slurm, compute)?,
        Executor::Local => slurm.check()?,
    }
    check_data(spec)?;
    check_record(spec, root)?;
    if dry_run {
        check_free(root)?;
        self::slurm::check_idle(root)?;
        return Ok(None);
    }
    let lock = lock(root)?;
    self::slurm::check_idle(root)?;
    record(spec, root)?;
    Ok(Some(lock))
}

/// The study files that ship inside the binary (the repo's `studies/NAME.toml`), by name.
pub const PRESETS: [(&str, &str); 4] = [
    ("quick", include_str!("../../studies/quick.toml")),
    ("cpu", include_str!("../../studies/cpu.toml")),
    ("cpu-full", include_str!("../../studies/cpu-full.toml")),
    ("paper", include_str!("../../studies/paper.toml")),
];

/// The preset `name`, parsed and validated.
pub fn preset(name: &str) -> Result<StudySpec> {
    let Some((_, text)) = PRESETS.iter().find(|(n, _)| *n == name) else {
        let names: Vec<&str> = PRESETS.iter().map(|p| p.0).collect();
        return Err(Error::invalid(
            format!("study {name}"),
            format!(
                "is neither a file nor a preset (the presets are {})",
                names.join(", ")
            ),
        ));
    };
    StudySpec::from_toml(text)
}

/// The study `arg` names: a study file when such a file exists, else a preset. Returns the
/// parsed, validated spec and where it came from (for messages).
pub fn resolve(arg: &str) -> Result<(StudySpec, String)> {
    let path = Path::new(arg);
    if !path.exists() {
        return Ok((preset(arg)?, format!("preset {arg}")));
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let spec = StudySpec::from_toml(&text).map_err(|e| Error::bad_file(path, e.to_string()))?;
    Ok((spec, path.display().to_string()))
}

/// Checks, before anything is planned or written, that the data files every run of `spec` reads
/// exist (the ID sets, the evaluated and the tracked OoD sets), naming each missing file and where
/// it goes; then that the class-balanced batches of every NC-loss intervention group fit the
/// training split it starts from (`check_nc_batches`).
pub fn check_data(spec: &StudySpec) -> Result<()> {
    let mut missing = vec![];
    let mut seen = vec![];
    for v in &spec.variants {
        let cfg = spec.run_config(v, v.seeds[0])?;
        let root = cfg
            .data
            .root
            .clone()
            .unwrap_or_else(crate::data::default_root);
        let sets = spec
            .eval
            .ood
            .iter()
            .chain([&cfg.track.ood])
            .filter_map(|o| match o {
                crate::data::OodSet::Data(k) if cfg.track.enabled() || o != &cfg.track.ood => {
                    Some(*k)
                }
                _ => None,
            });
        for kind in std::iter::once(cfg.data.name).chain(sets) {
            if !seen.contains(&(kind, root.clone())) {
                seen.push((kind, root.clone()));
                missing.extend(kind.missing_files(&root));
            }
        }
    }
    if !missing.is_empty() {
        return Err(Error::invalid(
            "study data",
            format!(
                "these files are missing (put them there, or point data.root / $NCOOD_DATA at a folder holding them):\n  {}",
                missing.join("\n  ")
            ),
        ));
    }
    check_nc_batches(spec)
}

/// An NC-loss group needs batch_size / C training images of every class (`train::check_batches`):
/// checked on each seed's training split (split and subset as the source run makes them) before
/// anything runs, rather than when the group starts, after its source has trained. Each training
/// file is read once.
fn check_nc_batches(spec: &StudySpec) -> Result<()> {
    use crate::data::{DataSource, Dataset, DatasetKind, train_val};
    use crate::train::{Group, check_batches, intervene::group_config};
    let mut files: Vec<((DatasetKind, std::path::PathBuf), Dataset)> = vec![];
    for i in &spec.interventions {
        let plan = spec.intervention(i)?;
        if !plan.groups.contains(&Group::Nc) {
            continue;
        }
        let src = spec.variant(&i.source).expect("a validated source");
        for seed in spec.intervention_seeds(i) {
            let cfg = group_config(&spec.run_config(src, seed)?, &plan, Group::Nc, None);
            let source = DataSource::from(&cfg.data);
            let key = (cfg.data.name, source.root.clone());
            let k = match files.iter().position(|f| f.0 == key) {
                Some(k) => k,
                None => {
                    files.push((key, source.read_file_split(cfg.data.name, true)?));
                    files.len() - 1
                }
            };
            let (train, _) = train_val(&files[k].1, &cfg.data, seed);
            check_batches(&cfg, &train).map_err(|e| match e {
                Error::InvalidConfig { field, reason } => Error::config(
                    format!(
                        "intervention from {} (nc group, seed {seed}): {field}",
                        i.source
                    ),
                    reason,
                ),
                e => e,
            })?;
        }
    }
    Ok(())
}
