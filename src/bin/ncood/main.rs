//! The `ncood` binary: argument parsing (the clap declarations) and dispatch to the library, whose
//! results `show` prints, with the progress displays.
//!
//! Exit codes: 0 success (also when stdout is closed early, e.g. by `| head`), 1 an error (the
//! message names the file, field or value and the problem), 2 a usage error (bad flags).
#[macro_use]
mod show;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use ncood::collapse::Classifier;
use ncood::config::{Given, RunConfig};
use ncood::data::{OodSet, Split};
use ncood::device::{Compute, DeviceSpec};
use ncood::evaluate::LoadedRun;
use ncood::features::{FeatureKind, FeatureSet, read_labels, read_matrix};
use ncood::run::RunDir;
use ncood::study::{self, Executor, Plan, SlurmOverrides, local};
use ncood::train::{self, Group, Start};
use show::{StudyProgress, progress_printer};
use std::path::{Path, PathBuf};

/// Out-of-distribution detection and Neural Collapse on DDU ResNets.
///
/// Exit status: 0 success, 1 error, 2 usage error.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where a command computes (every computing command takes these): `device::Compute`.
#[derive(Args, Clone, Copy)]
struct ComputeArgs {
    /// auto | cpu | cuda | cuda:N (train: overrides the config's `device`).
    #[arg(long)]
    device: Option<DeviceSpec>,
    /// libtorch CPU threads, 0 = one per core (train: overrides the config's `threads`).
    #[arg(long)]
    threads: Option<usize>,
}

impl From<ComputeArgs> for Compute {
    fn from(a: ComputeArgs) -> Compute {
        Compute {
            device: a.device,
            threads: a.threads,
        }
    }
}

/// A trained run's checkpoint and where to compute with it.
#[derive(Args)]
struct RunArgs {
    run_dir: PathBuf,
    /// Checkpoint epoch (default: the latest).
    #[arg(long, default_value_t = 0)]
    epoch: usize,
    /// Data root to read data sets from instead of the one the run recorded.
    #[arg(long)]
    data_root: Option<PathBuf>,
    #[command(flatten)]
    compute: ComputeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model (or resume an interrupted run with --resume RUN_DIR).
    Train(TrainArgs),
    /// Write a trained run's logits (N x C, float32 .npy) on a data set, in data-set order.
    Predict {
        #[command(flatten)]
        data: DataArgs,
        /// Output .npy file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a run's raw and normalised features, logits and labels of a data set as .npy files
    /// PREFIX.{raw,normalized,logits,labels}.npy (eval mode, no augmentation, data-set order).
    Features {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long, value_name = "PREFIX")]
        out: PathBuf,
    },
    /// Score OoD inputs from .npy files (features from any model): GDA, and the softmax family
    /// when logits are given. Writes RESULT.json and prints a table. Computes in float64 on the CPU.
    Score {
        /// Training features, N x D (float32/float64).
        #[arg(long)]
        train_features: PathBuf,
        /// Training labels, N (integers 0..C-1).
        #[arg(long)]
        train_labels: PathBuf,
        /// ID test features.
        #[arg(long)]
        id_features: PathBuf,
        /// OoD features, one file per OoD set (comma-separated); a set is named by its file stem.
        #[arg(long, value_delimiter = ',', required = true)]
        ood_features: Vec<PathBuf>,
        /// ID test logits (enables msp, max_logit, neg_entropy, energy).
        #[arg(long, requires = "ood_logits")]
        id_logits: Option<PathBuf>,
        /// OoD logits, in the order of --ood-features.
        #[arg(long, value_delimiter = ',', requires = "id_logits")]
        ood_logits: Vec<PathBuf>,
        /// ID test labels (with --id-logits: accuracy and ECE).
        #[arg(long, requires = "id_logits")]
        id_labels: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        compute: ComputeArgs,
    },
    /// Neural Collapse (NC1-4) of features from .npy files and a classifier (weights W: C x D and
    /// bias, as .npy or from an ncood/PyTorch-layout checkpoint's fc.weight / fc.bias). Computes
    /// in float64 on the CPU.
    Collapse {
        /// Features entering the classifier, N x D (float32/float64).
        #[arg(long)]
        features: PathBuf,
        /// Labels, N (integers 0..C-1).
        #[arg(long)]
        labels: PathBuf,
        /// Classifier weights, C x D.
        #[arg(
            long,
            conflicts_with = "checkpoint",
            required_unless_present = "checkpoint"
        )]
        weights: Option<PathBuf>,
        /// Classifier bias, C.
        #[arg(long, requires = "weights")]
        bias: Option<PathBuf>,
        /// A safetensors checkpoint holding fc.weight and fc.bias.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Which features these are (auto = the head's input, raw, normalized); recorded.
        #[arg(long)]
        kind: Option<FeatureKind>,
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        compute: ComputeArgs,
    },
    /// Run the NC-loss intervention (docs/SPEC.md section 7) from a run's checkpoint: a control group
    /// (cross-entropy) and an intervention group (NC loss), each in its own run directory.
    Intervene {
        run_dir: PathBuf,
        #[arg(long)]
        from_epoch: usize,
        /// Epochs each group trains.
        #[arg(long, default_value_t = 20)]
        epochs: usize,
        /// Epochs after which the learning rate steps down x0.1.
        #[arg(long, default_value_t = 10)]
        drop_after: usize,
        /// Which groups to run (control,nc by default; separate processes can run one each).
        #[arg(long, value_delimiter = ',', default_value = "control,nc")]
        groups: Vec<Group>,
        #[command(flatten)]
        compute: ComputeArgs,
    },
    /// Studies: many seeds of several variants, derived runs and evaluations, as one resumable job.
    #[command(subcommand)]
    Study(StudyCommand),
    /// Gather a study's results from its run directories (also of a partial study) into
    /// DIR/report/: tidy rows (results.csv), statistics over seeds (aggregate.csv), the paper's
    /// tables, figures (SVG, PNG), the judged claims and report.html.
    Report { dir: PathBuf },
    /// Run a preset study and write its report: the paper's tables, figures and claims; prints
    /// the path of report.html.
    Reproduce {
        /// quick (about 5.5 minutes on a 2-core CPU with --jobs 2), cpu (about 2.6 hours), cpu-full
        /// (cpu extended in place: about 4.5 hours more) or paper (CIFAR, GPUs).
        #[arg(long, default_value = "quick")]
        preset: String,
        /// Study directory (default studies-out/PRESET).
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        run: StudyRunArgs,
    },
    /// Evaluate a trained run against OoD sets: features, every score, every metric, written to
    /// RUN_DIR/eval/epoch-NNNN.{json,md} and printed.
    Eval {
        #[command(flatten)]
        run: RunArgs,
        /// OoD sets: registered data sets (test split) and/or generated ones. Default: MNIST
        /// (fashion-mnist runs) or SVHN and CIFAR-100 (cifar10 runs, when present), plus
        /// noise-uniform, noise-gaussian, flip-invert.
        #[arg(long, value_delimiter = ',')]
        ood: Vec<OodSet>,
    },
}

#[derive(Args)]
struct TrainArgs {
    /// TOML run configuration; every field has a default (see README).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override a config field, e.g. --set model.l2=true --set optim.epochs=10 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Shorthand for --set seed=N.
    #[arg(long)]
    seed: Option<u64>,
    /// Shorthand for --set optim.epochs=N; with --resume, raises the epoch count (over-training).
    #[arg(long)]
    epochs: Option<usize>,
    /// Data root (shorthand for --set data.root=DIR; default $NCOOD_DATA, else the checkout's data/).
    #[arg(long)]
    data_root: Option<PathBuf>,
    #[command(flatten)]
    compute: ComputeArgs,
    /// Run directory (default runs/<data>-<arch>-w<width>-<l2|nol2>-s<seed>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Show the running loss and accuracy every N steps (0 = at each epoch's end). Each read
    /// waits for the device, so a GPU run is fastest with the default.
    #[arg(long, default_value_t = 0, value_name = "N")]
    report_every: usize,
    /// Continue the run in this directory from its last checkpoint.
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["config", "set", "seed", "out", "data_root"])]
    resume: Option<PathBuf>,
}

/// How to run a study: the executor and its settings.
#[derive(Args)]
struct StudyRunArgs {
    /// Tasks run at once (child processes of the local executor); the CPU threads are divided
    /// among them.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// local: a pool of child processes on this machine (--jobs), returning when the study is
    /// done; slurm: SLURM job arrays (sbatch), printing the job ids and returning at once.
    #[arg(long, default_value = "local", value_name = "local|slurm")]
    executor: Executor,
    /// Print the plan (tasks, states, dependencies), then make every check a run makes (exit
    /// status 1 if one fails), and write or run nothing.
    #[arg(long)]
    dry_run: bool,
    /// SLURM partition (overrides the study's [slurm] partition).
    #[arg(long)]
    partition: Option<String>,
    /// SLURM time limit per task, e.g. 04:00:00 (overrides [slurm] time).
    #[arg(long)]
    time: Option<String>,
    /// SLURM memory per task, e.g. 8G (overrides [slurm] mem).
    #[arg(long)]
    mem: Option<String>,
    /// GPUs per SLURM task (overrides [slurm] gpus).
    #[arg(long)]
    gpus: Option<usize>,
    /// An extra #SBATCH line, e.g. --sbatch=--account=abc (repeatable; added to [slurm] extra).
    #[arg(long = "sbatch", value_name = "OPTION")]
    sbatch: Vec<String>,
    #[command(flatten)]
    compute: ComputeArgs,
}

#[derive(Subcommand)]
enum StudyCommand {
    /// Plan a study's tasks into DIR and run the unfinished ones (a local pool of processes or
    /// SLURM), then write its report; run it again to continue after a failure or interruption
    /// (finished tasks are skipped, interrupted ones resumed).
    Run {
        /// A study file (TOML: [base], [[variant]], [[overtrain]], [[intervention]], [eval],
        /// [[roles]], [slurm]) or a preset's name: quick, cpu, paper.
        spec: String,
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        run: StudyRunArgs,
    },
    /// Run one task of a planned study (what the executors call).
    Task {
        dir: PathBuf,
        #[arg(long)]
        id: usize,
        #[command(flatten)]
        compute: ComputeArgs,
    },
    /// Show each task of a study and its state, read from the run directories, and the SLURM
    /// jobs it submitted (squeue/sacct) when there are any.
    Status { dir: PathBuf },
}

/// The data set a run's features are extracted from.
#[derive(Args)]
struct DataArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Data set name (fashion-mnist, mnist, cifar10, cifar100, svhn), or with the test split a
    /// generated OoD set (noise-uniform, noise-gaussian, flip-invert).
    #[arg(long)]
    data: OodSet,
    /// train | val | test.
    #[arg(long, default_value = "test")]
    split: Split,
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    // A panic is a bug (every input is meant to be checked before use): report it as an error
    // with exit status 1 instead of a backtrace.
    std::panic::set_hook(Box::new(|_| {}));
    match std::panic::catch_unwind(|| dispatch(cli.command)) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
        Err(panic) => {
            eprintln!(
                "error: internal error (a bug in ncood, please report it): {}",
                ncood::error::panic_message(&*panic)
            );
            std::process::exit(1);
        }
    }
}

fn dispatch(command: Command) -> Result<()> {
    match command {
        Command::Train(a) => train_cmd(a),
        Command::Predict { data, out } => {
            let (f, epoch) = features_of(&data)?;
            ncood::features::write_f32(&out, &f.logits)?;
            let s = f.logits.size();
            say!(
                "wrote {} logits ({} x {}) of epoch {epoch} to {}",
                data.data,
                s[0],
                s[1],
                out.display()
            );
            Ok(())
        }
        Command::Features { data, out } => {
            let (f, epoch) = features_of(&data)?;
            f.write(&out)?;
            let paths = FeatureSet::paths(&out).map(|p| p.display().to_string());
            say!(
                "wrote features of {} ({} samples, epoch {epoch}): {}",
                data.data,
                f.labels.len(),
                paths.join(", ")
            );
            Ok(())
        }
        Command::Score {
            train_features,
            train_labels,
            id_features,
            ood_features,
            id_logits,
            ood_logits,
            id_labels,
            out,
            compute,
        } => {
            Compute::from(compute).setup()?;
            let inputs = ncood::evaluate::FileInputs::read(&ncood::evaluate::FilePaths {
                train_features,
                train_labels,
                id_features,
                ood_features,
                id_logits,
                ood_logits,
                id_labels,
            })?;
            let r = ncood::evaluate::score_files(&inputs)?;
            ncood::atomic::write_json(&out, &r)?;
            say!("{}", ncood::evaluate::markdown(&r));
            say!("results: {}", out.display());
            Ok(())
        }
        Command::Collapse {
            features,
            labels,
            weights,
            bias,
            checkpoint,
            kind,
            out,
            compute,
        } => {
            Compute::from(compute).setup()?;
            let h = read_matrix(&features)?;
            let head = match (weights, checkpoint) {
                (Some(w), _) => Classifier::from_files(&w, bias.as_deref())?,
                (None, Some(c)) => Classifier::from_checkpoint(&c)?,
                (None, None) => anyhow::bail!("give --weights or --checkpoint"),
            };
            let y = read_labels(&labels, Some(head.classes()))?;
            let r = ncood::collapse::measure(&h, &y, &head, kind, ncood::stats::CHUNK)?;
            ncood::atomic::write_json(&out, &r)?;
            show::collapse(&r);
            say!("results: {}", out.display());
            Ok(())
        }
        Command::Intervene {
            run_dir,
            from_epoch,
            epochs,
            drop_after,
            groups,
            compute,
        } => {
            let mut show = progress_printer();
            let plan = train::Intervention {
                from_epoch,
                epochs,
                drop_after,
                groups,
            };
            let dirs = train::intervene(&run_dir, &plan, compute.into(), &mut |group, p| {
                show(&format!("{group} "), p)
            })?;
            let dirs: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            say!("results: {}", dirs.join(" and "));
            Ok(())
        }
        Command::Study(c) => study_cmd(c),
        Command::Report { dir } => report_cmd(&dir),
        Command::Reproduce { preset, out, run } => {
            let spec = study::preset(&preset)?;
            let out = out.unwrap_or_else(|| PathBuf::from("studies-out").join(&preset));
            run_study(&spec, &format!("preset {preset}"), &out, &run)
        }
        Command::Eval { run, ood } => {
            let device = Compute::from(run.compute).setup()?;
            let dir = RunDir::new(&run.run_dir);
            let data_root = run.data_root.as_deref();
            let (r, md) = ncood::evaluate::eval_into(&dir, run.epoch, &ood, device, data_root)?;
            say!("{md}");
            let epoch = r.epoch.expect("a run's evaluation names its epoch");
            say!("results: {}", dir.eval_path(epoch, "{json,md}").display());
            Ok(())
        }
    }
}

fn study_cmd(c: StudyCommand) -> Result<()> {
    match c {
        StudyCommand::Run { spec, out, run } => {
            let (s, origin) = study::resolve(&spec)?;
            run_study(&s, &origin, &out, &run)
        }
        StudyCommand::Task { dir, id, compute } => {
            let mut show = progress_printer();
            local::run_task_in(
                &dir,
                id,
                compute.into(),
                &mut |task| say!("task {id}: {}", task.label),
                &mut |group, p| match group {
                    "" => show("", p),
                    g => show(&format!("{g} "), p),
                },
            )?;
            Ok(())
        }
        StudyCommand::Status { dir } => {
            let plan = Plan::new(&study::load(&dir)?, &dir)?;
            say!("{}", plan.describe());
            if let Some(queue) = study::slurm::status(&dir) {
                say!("{queue}");
            }
            Ok(())
        }
    }
}

/// Plans `spec` into `out` and runs it with the chosen executor; with the local one, writes the
/// report at the end.
fn run_study(spec: &study::StudySpec, origin: &str, out: &Path, a: &StudyRunArgs) -> Result<()> {
    anyhow::ensure!(
        a.jobs >= 1,
        "--jobs {}: at least one task must run at a time",
        a.jobs
    );
    let plan = Plan::new(spec, out)?;
    if a.dry_run {
        say!("{}", plan.describe());
    }
    let settings = spec.slurm.with_overrides(&SlurmOverrides {
        partition: a.partition.clone(),
        time: a.time.clone(),
        mem: a.mem.clone(),
        gpus: a.gpus,
        extra: a.sbatch.clone(),
    });
    let compute = Compute::from(a.compute);
    // Held until the pool and the report are done (or the jobs submitted).
    let Some(_lock) = study::prepare(spec, out, a.executor, &settings, compute, a.dry_run)? else {
        return Ok(());
    };
    let exe = std::env::current_exe().context("locating the ncood binary")?;
    if a.executor == Executor::Slurm {
        let jobs = study::slurm::submit(&plan, &exe, &settings, compute)?;
        show::submitted(out, origin, &jobs);
        return Ok(());
    }
    let threads = local::threads_per_task(a.jobs, compute.threads);
    let total = plan.tasks.len();
    say!(
        "study {} ({origin}): {total} tasks, {} jobs x {threads} threads",
        out.display(),
        a.jobs
    );
    let mut progress = StudyProgress::new(local::Tally::new(&plan, a.jobs));
    let outcome = local::run_pool(
        &plan,
        &exe,
        a.jobs,
        Compute {
            threads: Some(threads),
            ..compute
        },
        &mut |e| progress.event(e),
    )?;
    drop(progress);
    show::outcome(out, total, &outcome);
    report_cmd(out)?;
    anyhow::ensure!(
        outcome.failed + outcome.skipped == 0,
        "{} task(s) failed; their logs say why; run again to retry",
        outcome.failed
    );
    Ok(())
}

/// Writes the report of the study in `dir` and says what it holds.
fn report_cmd(dir: &Path) -> Result<()> {
    let spec = study::load(dir)?;
    let plan = study::Plan::new(&spec, dir)?;
    let w = ncood::report::write(&spec, &plan, dir)?;
    show::report(&w, &plan);
    say!("report: {}", w.html.display());
    Ok(())
}

fn train_cmd(a: TrainArgs) -> Result<()> {
    let TrainArgs {
        config,
        set,
        seed,
        epochs,
        data_root,
        compute,
        out,
        report_every,
        resume,
    } = a;
    let compute = Compute::from(compute);
    let (dir, start) = match resume {
        Some(dir) => (dir, Start::Resume { epochs, compute }),
        None => {
            let text = match &config {
                Some(p) => std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?,
                None => String::new(),
            };
            let given = Given {
                seed,
                epochs,
                data_root,
                compute,
            };
            let cfg = RunConfig::from_toml_given(&text, &set, given);
            let cfg = match &config {
                Some(p) => cfg.with_context(|| p.display().to_string())?,
                None => cfg?,
            };
            let dir = out.unwrap_or_else(|| PathBuf::from("runs").join(cfg.run_name()));
            (dir, Start::New(Box::new(cfg)))
        }
    };
    let mut show = progress_printer();
    let summary = train::run(&dir, start, report_every, &mut |p| show("", p))
        .with_context(|| format!("training run {}", dir.display()))?;
    say!(
        "done: {} epochs, test accuracy {:.4}, {:.0} img/s on {} ({} threads)",
        summary.epochs,
        summary.final_test_acc,
        summary.mean_images_per_s,
        summary.provenance.device,
        summary.provenance.threads
    );
    say!("results: {}", dir.display());
    Ok(())
}

/// One eval pass of a run's checkpoint over a data set's split.
fn features_of(a: &DataArgs) -> Result<(FeatureSet, usize)> {
    let device = Compute::from(a.run.compute).setup()?;
    let run = LoadedRun::load(
        &RunDir::new(&a.run.run_dir),
        a.run.epoch,
        device,
        a.run.data_root.as_deref(),
    )?;
    Ok((run.features_of(a.data, a.split)?, run.epoch))
}
