//! Executing a plan on this machine. `run_task_in` does one task; it is what `ncood study task DIR
//! --id K` runs, under the local pool and under any other executor alike. `run_pool` keeps up to
//! N child processes (`ncood study task`) busy, each with its share of the CPU threads, starting a
//! task once everything it needs has finished; a failed task is reported and its dependents are
//! skipped while the rest carry on. Killing the pool at any moment loses nothing: finished tasks
//! are skipped and interrupted ones resumed by the next run.
use super::dir::{TaskRecord, load};
use super::plan::{Plan, Task, TaskKind, TaskState};
use crate::data::OodSet;
use crate::device::{Compute, DeviceSpec};
use crate::error::{Error, Result};
use crate::evaluate::eval_into;
use crate::run::RunDir;
use crate::train::{self, Progress, Start};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Runs task `id` of the study planned in `root` (what `ncood study task ROOT --id K` does, under
/// the local pool and SLURM alike) and writes its record (`TaskRecord`), which it returns.
/// `started` hears of the task once it is found; `progress` reports its training.
pub fn run_task_in(
    root: &Path,
    id: usize,
    compute: Compute,
    started: &mut dyn FnMut(&Task),
    progress: &mut dyn FnMut(&str, Progress),
) -> Result<TaskRecord> {
    let spec = load(root)?;
    let plan = Plan::new(&spec, root)?;
    let task = plan.tasks.get(id).ok_or_else(|| {
        Error::invalid(
            format!("study {}", root.display()),
            format!("has no task {id}"),
        )
    })?;
    started(task);
    // Executors start a task once its dependencies ended, not necessarily well (SLURM's
    // afterany): a task whose inputs are missing fails here, saying which.
    let unfinished: Vec<&str> = task
        .deps
        .iter()
        .map(|&d| &plan.tasks[d])
        .filter(|t| plan.state(t) != TaskState::Finished)
        .map(|t| t.label.as_str())
        .collect();
    if !unfinished.is_empty() {
        return Err(Error::invalid(
            format!("task {id} ({})", task.label),
            format!("needs what has not finished: {}", unfinished.join("; ")),
        ));
    }
    let t0 = Instant::now();
    run_task(task, &spec.eval.ood, compute, progress)?;
    // The device it ran on: the one given, else a training run's own config, else auto.
    let configured = match &task.kind {
        TaskKind::Train { config } => config.device,
        _ => DeviceSpec::Auto,
    };
    let device = compute.over(configured, 0).0.resolve()?;
    let record = TaskRecord::new(task, t0.elapsed().as_secs_f64(), device);
    record.write(root)?;
    Ok(record)
}

/// Runs one task to completion (resuming it if it was interrupted).
fn run_task(
    task: &Task,
    ood: &[OodSet],
    compute: Compute,
    progress: &mut dyn FnMut(&str, Progress),
) -> Result<()> {
    let resume = |epochs| Start::Resume { epochs, compute };
    match &task.kind {
        TaskKind::Train { config } => {
            let start = if RunDir::new(&task.dir).exists() {
                resume(None)
            } else {
                let mut cfg = (**config).clone();
                cfg.set_compute(compute);
                Start::New(Box::new(cfg))
            };
            train::run(&task.dir, start, 0, &mut |p| progress("", p))?;
        }
        TaskKind::Overtrain { source, epochs, .. } => {
            if !RunDir::new(&task.dir).exists() {
                copy_finished_run(source, &task.dir)?;
            }
            train::run(&task.dir, resume(Some(*epochs)), 0, &mut |p| {
                progress("", p)
            })?;
        }
        TaskKind::Intervene { source, plan } => {
            train::intervene(source, plan, compute, progress)?;
        }
        TaskKind::Eval { epoch } => {
            eval_into(&RunDir::new(&task.dir), *epoch, ood, compute.setup()?, None)?;
        }
    }
    Ok(())
}

/// Copies what resuming needs of a finished run (config, log, last checkpoint) into `dest`,
/// through a temporary folder renamed into place, so a kill leaves no half-copied run.
fn copy_finished_run(source: &Path, dest: &Path) -> Result<()> {
    let src = RunDir::new(source);
    let last = src.checkpoint_epoch(0)?;
    let tmp = dest.with_file_name(format!(
        ".{}.copy",
        dest.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    let staged = RunDir::new(&tmp);
    let files = [
        (src.config_path(), staged.config_path()),
        (src.log_path(), staged.log_path()),
        (
            src.checkpoint_path(last, false),
            staged.checkpoint_path(last, false),
        ),
        (
            src.checkpoint_path(last, true),
            staged.checkpoint_path(last, true),
        ),
    ];
    for (from, to) in files {
        let parent = to.parent().expect("a file in a folder");
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        std::fs::copy(&from, &to).map_err(|e| Error::io(&from, e))?;
    }
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    std::fs::rename(&tmp, dest).map_err(|e| Error::io(dest, e))
}

/// What the pool reports.
pub enum Event<'a> {
    Started(&'a Task),
    Finished {
        task: &'a Task,
        seconds: f64,
    },
    Failed {
        task: &'a Task,
        log: PathBuf,
    },
    /// Not run because a task it needs failed.
    Skipped(&'a Task),
}

/// Where a pool run stands, for a progress display: the pool's events folded into counts, the
/// running tasks, and the time left, estimated from the seconds per unit of work (`Task::cost`)
/// of the tasks finished so far.
#[derive(Debug, Clone)]
pub struct Tally {
    pub total: usize,
    /// Finished, before this run or in it.
    pub done: usize,
    pub failed: usize,
    /// Labels of the running tasks, in the order they started.
    pub running: Vec<String>,
    jobs: usize,
    /// The work of the tasks not yet finished, failed or skipped.
    left_cost: f64,
    /// Seconds and work of the tasks finished in this run.
    spent: (f64, f64),
}

impl Tally {
    /// Before a pool of `jobs` runs `plan`.
    pub fn new(plan: &Plan, jobs: usize) -> Tally {
        let open: Vec<&Task> = plan
            .tasks
            .iter()
            .filter(|t| plan.state(t) != TaskState::Finished)
            .collect();
        Tally {
            total: plan.tasks.len(),
            done: plan.tasks.len() - open.len(),
            failed: 0,
            running: vec![],
            jobs: jobs.max(1),
            left_cost: open.iter().map(|t| t.cost()).sum(),
            spent: (0.0, 0.0),
        }
    }

    pub fn note(&mut self, e: &Event) {
        match *e {
            Event::Started(t) => self.running.push(t.label.clone()),
            Event::Finished { task, seconds } => {
                self.running.retain(|l| l != &task.label);
                self.done += 1;
                self.left_cost -= task.cost();
                self.spent = (self.spent.0 + seconds, self.spent.1 + task.cost());
            }
            Event::Failed { task, .. } => {
                self.running.retain(|l| l != &task.label);
                self.failed += 1;
                self.left_cost -= task.cost();
            }
            Event::Skipped(t) => self.left_cost -= t.cost(),
        }
    }

    /// Seconds until the open tasks are done at this run's pace so far, `jobs` at a time; None
    /// before one has finished.
    pub fn seconds_left(&self) -> Option<f64> {
        (self.spent.1 > 0.0)
            .then(|| self.left_cost * self.spent.0 / self.spent.1 / self.jobs as f64)
    }
}

/// Counts at the end of a pool run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Outcome {
    /// Finished before this run began.
    pub already: usize,
    pub finished: usize,
    pub failed: usize,
    pub skipped: usize,
}

/// The CPU threads each of `jobs` tasks running at once gets: `given`, else the cores divided
/// among them (at least one each).
pub fn threads_per_task(jobs: usize, given: Option<usize>) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    given.unwrap_or((cores / jobs.max(1)).max(1))
}

/// Runs every unfinished task of `plan` with up to `jobs` child processes `exe study task ROOT
/// --id K` (each given `threads` CPU threads and `device`), reporting events.
pub fn run_pool(
    plan: &Plan,
    exe: &Path,
    jobs: usize,
    compute: Compute,
    on: &mut dyn FnMut(Event),
) -> Result<Outcome> {
    #[derive(Clone, Copy, PartialEq)]
    enum S {
        Waiting,
        Running,
        Done,
        Failed,
    }
    let mut state: Vec<S> = plan
        .tasks
        .iter()
        .map(|t| match plan.state(t) {
            TaskState::Finished => S::Done,
            _ => S::Waiting,
        })
        .collect();
    let mut out = Outcome {
        already: state.iter().filter(|&&s| s == S::Done).count(),
        ..Outcome::default()
    };
    let mut running: Vec<(usize, Child, Instant)> = vec![];
    loop {
        // Skip what can no longer run; start what can.
        for t in &plan.tasks {
            if state[t.id] == S::Waiting && t.deps.iter().any(|&d| state[d] == S::Failed) {
                state[t.id] = S::Failed;
                out.skipped += 1;
                on(Event::Skipped(t));
            }
        }
        for t in &plan.tasks {
            if running.len() >= jobs.max(1) {
                break;
            }
            if state[t.id] == S::Waiting && t.deps.iter().all(|&d| state[d] == S::Done) {
                let log = t.log_path();
                let parent = log.parent().expect("a file in a folder");
                std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
                // Appended: a retried task's log keeps what the failed attempt said.
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .map_err(|e| Error::io(&log, e))?;
                let err = file.try_clone().map_err(|e| Error::io(&log, e))?;
                let mut cmd = Command::new(exe);
                cmd.arg("study")
                    .arg("task")
                    .arg(&plan.root)
                    .args(["--id", &t.id.to_string()]);
                if let Some(d) = compute.device {
                    cmd.args(["--device", &d.to_string()]);
                }
                if let Some(n) = compute.threads {
                    cmd.args(["--threads", &n.to_string()]);
                }
                let child = cmd
                    .stdin(Stdio::null())
                    .stdout(file)
                    .stderr(err)
                    .spawn()
                    .map_err(|e| Error::io(exe, e))?;
                state[t.id] = S::Running;
                on(Event::Started(t));
                running.push((t.id, child, Instant::now()));
            }
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        let mut still = vec![];
        for (id, mut child, t0) in running {
            match child.try_wait().map_err(|e| Error::io(exe, e))? {
                None => still.push((id, child, t0)),
                Some(status) => {
                    let t = &plan.tasks[id];
                    if status.success() && plan.state(t) == TaskState::Finished {
                        state[id] = S::Done;
                        out.finished += 1;
                        on(Event::Finished {
                            task: t,
                            seconds: t0.elapsed().as_secs_f64(),
                        });
                    } else {
                        state[id] = S::Failed;
                        out.failed += 1;
                        on(Event::Failed {
                            task: t,
                            log: t.log_path(),
                        });
                    }
                }
            }
        }
        running = still;
    }
    Ok(out)
}
