//! A study's plan: the tasks (training runs, over-training, interventions, evaluations) with
//! their dependencies, in an order in which every task comes after what it needs. The plan is a
//! pure function of the spec and the study directory, the same for every executor; a task's state
//! is read from its run directory, never from a separate record that could disagree.
use super::spec::{StudySpec, intervention_run};
use crate::config::RunConfig;
use crate::error::{Error, Result};
use crate::run::RunDir;
use crate::train::Intervention;
use std::path::{Path, PathBuf};

/// What a task does.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskKind {
    /// Train (or resume) a variant's run for one seed.
    Train { config: Box<RunConfig> },
    /// Continue a finished run of `from` epochs, copied from `source`, to `epochs` epochs.
    Overtrain {
        source: PathBuf,
        from: usize,
        epochs: usize,
    },
    /// The SPEC 7 intervention from the run in `source`.
    Intervene { source: PathBuf, plan: Intervention },
    /// `ncood eval` of the run in `dir` at `epoch`.
    Eval { epoch: usize },
}

/// One task: an id (its index in the plan), a label, its run directory and its dependencies.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: usize,
    /// e.g. `train l2-short s0`.
    pub label: String,
    /// The run directory it writes (for an intervention, the first group's).
    pub dir: PathBuf,
    pub kind: TaskKind,
    pub deps: Vec<usize>,
}

impl Task {
    /// Where a task's own output goes: a log beside its run.
    pub fn log_path(&self) -> PathBuf {
        match &self.kind {
            TaskKind::Eval { epoch } => self.dir.join("eval").join(format!("epoch-{epoch:04}.log")),
            TaskKind::Intervene { .. } => self.dir.with_file_name("intervene.log"),
            TaskKind::Train { .. } => self.dir.join("train.log"),
            // Beside the run: its folder appears only when the copied run is complete.
            TaskKind::Overtrain { .. } => self.dir.with_extension("log"),
        }
    }

    /// Roughly how much work the task is, in training epochs (an evaluation counts as one), for
    /// the progress display's estimate of the time left.
    pub fn cost(&self) -> f64 {
        match &self.kind {
            TaskKind::Train { config } => config.optim.epochs as f64,
            TaskKind::Overtrain { from, epochs, .. } => (epochs - from) as f64,
            TaskKind::Intervene { plan, .. } => (plan.epochs * plan.groups.len()) as f64,
            TaskKind::Eval { .. } => 1.0,
        }
    }
}

/// Where a task stands, read from disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    /// Nothing written yet.
    Absent,
    /// Started and not finished (resumable).
    Partial,
    Finished,
}

impl TaskState {
    pub fn name(self) -> &'static str {
        match self {
            TaskState::Absent => "absent",
            TaskState::Partial => "partial",
            TaskState::Finished => "finished",
        }
    }
}

/// One run of a study: what the report calls it (a variant, an over-training, or an intervention
/// group, `intervention_run`), its seed, its directory and epochs.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRef {
    pub name: String,
    pub seed: u64,
    pub dir: PathBuf,
    /// The features its head reads (raw, or normalized under L2): the headline GDA features.
    pub head: crate::features::FeatureKind,
    /// Its last epoch when finished: where its final results are read.
    pub epochs: usize,
    /// Its first own epoch: an over-training's log repeats its source's epochs before this one.
    pub first_epoch: usize,
}

/// The tasks of a study, in dependency order, and the runs they make.
#[derive(Debug, Clone)]
pub struct Plan {
    pub root: PathBuf,
    pub tasks: Vec<Task>,
    pub runs: Vec<RunRef>,
}

/// Where a variant's (or derived run's) seed lives.
pub fn run_dir(root: &Path, name: &str, seed: u64) -> PathBuf {
    root.join("runs").join(name).join(format!("s{seed}"))
}

impl Plan {
    /// Plans `spec` into the study directory `root`.
    pub fn new(spec: &StudySpec, root: &Path) -> Result<Plan> {
        let mut tasks: Vec<Task> = vec![];
        let mut runs: Vec<RunRef> = vec![];
        let mut run = |name: String, seed: u64, dir: &Path, l2: bool, epochs: [usize; 2]| {
            runs.push(RunRef {
                name,
                seed,
                dir: dir.to_path_buf(),
                head: crate::features::FeatureKind::HeadInput.resolve(l2),
                first_epoch: epochs[0],
                epochs: epochs[1],
            })
        };
        // Evaluations of one run take its lock: each waits for the previous one of that run.
        let mut last_eval: std::collections::HashMap<PathBuf, usize> = Default::default();
        let mut push = |label: String, dir: PathBuf, kind: TaskKind, mut deps: Vec<usize>| {
            let id = tasks.len();
            if matches!(kind, TaskKind::Eval { .. }) {
                deps.extend(last_eval.insert(dir.clone(), id));
            }
            tasks.push(Task {
                id,
                label,
                dir,
                kind,
                deps,
            });
            id
        };
        // Seed by seed: a pool that is stopped part way has compared every variant, and run the
        // derived runs, on the same first seeds.
        let mut seeds: Vec<u64> = spec.variants.iter().flat_map(|v| v.seeds.clone()).collect();
        seeds.sort_unstable();
        seeds.dedup();
        for seed in seeds {
            // Training runs, then their evaluations.
            let mut train_of = std::collections::BTreeMap::new();
            for v in spec.variants.iter().filter(|v| v.seeds.contains(&seed)) {
                let cfg = spec.run_config(v, seed)?;
                let dir = run_dir(root, &v.name, seed);
                let (epochs, l2) = (cfg.optim.epochs, cfg.model.l2);
                run(v.name.clone(), seed, &dir, l2, [1, epochs]);
                let t = push(
                    format!("train {} s{seed}", v.name),
                    dir.clone(),
                    TaskKind::Train {
                        config: Box::new(cfg),
                    },
                    vec![],
                );
                train_of.insert(v.name.clone(), (t, dir.clone(), epochs, l2));
                for epoch in eval_epochs(&spec.eval.epochs, epochs) {
                    push(
                        format!("eval {} s{seed} e{epoch}", v.name),
                        dir.clone(),
                        TaskKind::Eval { epoch },
                        vec![t],
                    );
                }
            }
            for o in &spec.overtrains {
                let Some((src, src_dir, from, l2)) = train_of.get(&o.source) else {
                    continue;
                };
                let dir = run_dir(root, &o.name, seed);
                run(o.name.clone(), seed, &dir, *l2, [from + 1, o.epochs]);
                let t = push(
                    format!("overtrain {} s{seed}", o.name),
                    dir.clone(),
                    TaskKind::Overtrain {
                        source: src_dir.clone(),
                        from: *from,
                        epochs: o.epochs,
                    },
                    vec![*src],
                );
                // The copied run holds checkpoints from its source's last epoch on.
                let extra: Vec<usize> = spec
                    .eval
                    .epochs
                    .iter()
                    .copied()
                    .filter(|e| e > from)
                    .collect();
                for epoch in eval_epochs(&extra, o.epochs) {
                    push(
                        format!("eval {} s{seed} e{epoch}", o.name),
                        dir.clone(),
                        TaskKind::Eval { epoch },
                        vec![t],
                    );
                }
            }
            for i in &spec.interventions {
                let Some((src, src_dir, _, l2)) = train_of.get(&i.source) else {
                    continue;
                };
                if !spec.intervention_seeds(i).contains(&seed) {
                    continue;
                }
                let plan = spec.intervention(i)?;
                let groups = plan.groups.clone();
                let t = push(
                    format!("intervene {} s{seed} e{}", i.source, i.from_epoch),
                    crate::train::intervene::group_dir(src_dir, i.from_epoch, groups[0]),
                    TaskKind::Intervene {
                        source: src_dir.clone(),
                        plan: plan.clone(),
                    },
                    vec![*src],
                );
                for &g in &groups {
                    let dir = crate::train::intervene::group_dir(src_dir, i.from_epoch, g);
                    let name = intervention_run(&i.source, i.from_epoch, g.name());
                    run(name, seed, &dir, *l2, [1, i.epochs]);
                    push(
                        format!("eval {} s{seed} e{} {}", i.source, i.from_epoch, g.name()),
                        dir,
                        TaskKind::Eval { epoch: i.epochs },
                        vec![t],
                    );
                }
            }
        }
        check_runs(&runs)?;
        Ok(Plan {
            root: root.to_path_buf(),
            tasks,
            runs,
        })
    }

    /// A task's state, from its run directory.
    pub fn state(&self, task: &Task) -> TaskState {
        let run = RunDir::new(&task.dir);
        let finished_run = |dir: &Path, epochs: usize| {
            let r = RunDir::new(dir);
            r.summary_path().exists() && r.latest_checkpoint().unwrap_or(0) >= epochs
        };
        let finished = match &task.kind {
            TaskKind::Train { config } => finished_run(&task.dir, config.optim.epochs),
            TaskKind::Overtrain { epochs, .. } => finished_run(&task.dir, *epochs),
            TaskKind::Intervene { source, plan } => plan.groups.iter().all(|&g| {
                finished_run(
                    &crate::train::intervene::group_dir(source, plan.from_epoch, g),
                    plan.epochs,
                )
            }),
            TaskKind::Eval { epoch } => run.eval_path(*epoch, "json").exists(),
        };
        if finished {
            TaskState::Finished
        } else if run.holds_run_files() && !matches!(task.kind, TaskKind::Eval { .. }) {
            TaskState::Partial
        } else {
            TaskState::Absent
        }
    }

    /// The plan as text: one line per task with its state and dependencies (`--dry-run`).
    pub fn describe(&self) -> String {
        let mut s = String::new();
        for t in &self.tasks {
            let deps: Vec<String> = t.deps.iter().map(|d| d.to_string()).collect();
            s += &format!(
                "{:>4}  {:<9} {:<40} after [{}]  {}\n",
                t.id,
                self.state(t).name(),
                t.label,
                deps.join(", "),
                t.dir.strip_prefix(&self.root).unwrap_or(&t.dir).display()
            );
        }
        s
    }
}

/// No two runs of a plan share a name and seed (the report would count one run twice, or merge
/// two) or a directory (two tasks would write one run), whatever spec the plan came from.
fn check_runs(runs: &[RunRef]) -> Result<()> {
    let mut by_key = std::collections::HashMap::new();
    let mut by_dir = std::collections::HashMap::new();
    for r in runs {
        if let Some(o) = by_key.insert((&r.name, r.seed), r) {
            return Err(Error::config(
                "study",
                format!(
                    "two runs are named {} with seed {} ({} and {}): the report would count them as one",
                    r.name,
                    r.seed,
                    o.dir.display(),
                    r.dir.display()
                ),
            ));
        }
        if let Some(o) = by_dir.insert(&r.dir, r) {
            return Err(Error::config(
                "study",
                format!(
                    "runs {} s{} and {} s{} would both be written in {}",
                    o.name,
                    o.seed,
                    r.name,
                    r.seed,
                    r.dir.display()
                ),
            ));
        }
    }
    Ok(())
}

/// The epochs a run of `epochs` epochs is evaluated at: each of `extra` it has, and its last.
fn eval_epochs(extra: &[usize], epochs: usize) -> Vec<usize> {
    let mut v: Vec<usize> = extra
        .iter()
        .copied()
        .filter(|&e| e >= 1 && e <= epochs)
        .chain([epochs])
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}
