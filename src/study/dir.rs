//! A study directory's own files: the study it holds (study.toml), its lock, and the record of
//! each finished task. The executors (`local`, `slurm`) and `prepare` build on these.
use super::plan::{Plan, Task};
use super::spec::StudySpec;
use crate::error::{Error, Result};
use std::path::Path;

/// The study file kept in a study directory: what `study task` and `study status` plan from.
pub const STUDY_FILE: &str = "study.toml";

/// Whether `spec` may be recorded as the study of `root`: a new directory takes any study; an
/// existing one only one that extends its recorded study (added variants or seeds).
pub fn check_record(spec: &StudySpec, root: &Path) -> Result<()> {
    if !root.join(STUDY_FILE).exists() {
        return Ok(());
    }
    spec.extends(&load(root)?).map_err(|why| {
        Error::run_dir(
            root,
            format!(
                "holds another study ({why}); only added variants or seeds may change it: use another directory"
            ),
        )
    })
}

/// Records `spec` as the study of `root` (see `check_record`).
pub fn record(spec: &StudySpec, root: &Path) -> Result<()> {
    check_record(spec, root)?;
    std::fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
    crate::atomic::write(&root.join(STUDY_FILE), spec.to_toml().as_bytes())
}

/// The lock file of a study directory.
const LOCK_FILE: &str = "study.lock";

/// Takes the study directory `root` (creating it) for this process, which runs or submits its
/// tasks: a second `study run` on it meanwhile is refused, naming the holder, instead of running
/// the same tasks and failing the other's for their run locks. Held until dropped.
pub fn lock(root: &Path) -> Result<crate::atomic::Lock> {
    std::fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
    crate::atomic::lock(&root.join(LOCK_FILE))?.map_err(|holder| busy(root, &holder))
}

/// The refusal of `lock`, found without creating or writing anything (`--dry-run`).
pub fn check_free(root: &Path) -> Result<()> {
    match crate::atomic::holder(&root.join(LOCK_FILE))? {
        Some(holder) => Err(busy(root, &holder)),
        None => Ok(()),
    }
}

fn busy(root: &Path, holder: &str) -> Error {
    Error::invalid(
        format!("study {}", root.display()),
        format!(
            "another ncood process is running or submitting it (study.lock is held by {holder}); wait for it to end or stop it"
        ),
    )
}

/// The study recorded in `root`.
pub fn load(root: &Path) -> Result<StudySpec> {
    let path = root.join(STUDY_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    StudySpec::from_toml(&text).map_err(|e| Error::bad_file(&path, e.to_string()))
}

/// What `study task` records of a finished task, whichever executor ran it: the report's wall
/// time per task and provenance (ncood version and commit, machine, device).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TaskRecord {
    pub id: usize,
    pub label: String,
    pub seconds: f64,
    pub host: String,
    pub cpu: String,
    #[serde(flatten)]
    pub provenance: crate::run::Provenance,
}

impl TaskRecord {
    /// A record of `task` run for `seconds` on this machine with `device`.
    pub fn new(task: &Task, seconds: f64, device: tch::Device) -> TaskRecord {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            })
            .unwrap_or_default();
        TaskRecord {
            id: task.id,
            label: task.label.clone(),
            seconds,
            host: crate::atomic::hostname(),
            cpu,
            provenance: crate::run::Provenance::current(device),
        }
    }

    /// Where the record of the task labelled `label` goes: named by the label, which stays with
    /// its task when a study is extended (task ids shift then, so a record named by id was
    /// overwritten by the new task that took the id). Labels are made of validated run names,
    /// digits and spaces.
    fn path(root: &Path, label: &str) -> std::path::PathBuf {
        root.join("tasks")
            .join(format!("{}.json", label.replace(' ', "_")))
    }

    /// Writes the record into the study directory (atomically).
    pub fn write(&self, root: &Path) -> Result<()> {
        let path = TaskRecord::path(root, &self.label);
        let dir = path.parent().expect("a file in a folder");
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        crate::atomic::write_json(&path, self)
    }

    /// The records of the study's tasks that have one, in task order, found by label: a record
    /// counts for its own task only, whatever its id was when it was written. A record named by
    /// label wins over an id-named one of the same task.
    pub fn read_all(root: &Path, plan: &Plan) -> Vec<TaskRecord> {
        let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(root.join("tasks"))
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|x| x == "json"));
        // Id-named files first, so that label-named ones replace them.
        let by_id = |p: &std::path::PathBuf| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("task-"))
        };
        files.sort_by_key(|p| (!by_id(p), p.clone()));
        let mut by_label = std::collections::HashMap::new();
        for path in files {
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            if let Ok(r) = serde_json::from_str::<TaskRecord>(&text) {
                by_label.insert(r.label.clone(), r);
            }
        }
        plan.tasks
            .iter()
            .filter_map(|t| by_label.remove(&t.label))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::TaskKind;
    use std::path::PathBuf;

    fn task(id: usize, label: &str) -> Task {
        Task {
            id,
            label: label.into(),
            dir: PathBuf::from("runs/x/s0"),
            kind: TaskKind::Eval { epoch: 1 },
            deps: vec![],
        }
    }

    /// An extended study renumbers its tasks: the task that takes an old id writes its record
    /// beside the old task's, not over it; a record named by id (studies made before) counts for
    /// the task it names, whatever its id now, and for no other.
    #[test]
    fn records_survive_an_extension_that_shifts_ids() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        let old = task(1, "eval a s0 e1");
        TaskRecord::new(&old, 3.0, tch::Device::Cpu)
            .write(root)
            .unwrap();
        let new = task(1, "train b s0");
        TaskRecord::new(&new, 5.0, tch::Device::Cpu)
            .write(root)
            .unwrap();
        // Made before records were named by label, when the task had id 5.
        let legacy = task(5, "eval c s0 e1");
        let rec = TaskRecord::new(&legacy, 7.0, tch::Device::Cpu);
        crate::atomic::write_json(&root.join("tasks/task-00005.json"), &rec).unwrap();
        let plan = Plan {
            root: root.to_path_buf(),
            tasks: vec![task(0, "eval a s0 e1"), new, task(2, "eval c s0 e1")],
            runs: vec![],
        };
        let got: Vec<(String, f64)> = TaskRecord::read_all(root, &plan)
            .into_iter()
            .map(|r| (r.label, r.seconds))
            .collect();
        let want = [
            ("eval a s0 e1", 3.0),
            ("train b s0", 5.0),
            ("eval c s0 e1", 7.0),
        ];
        assert_eq!(got, want.map(|(l, s)| (l.to_string(), s)));
        // No record is another task's: a plan whose task 2 is something else has none.
        let other = Plan {
            tasks: vec![task(2, "train d s0")],
            ..plan
        };
        assert!(TaskRecord::read_all(root, &other).is_empty());
    }
}
