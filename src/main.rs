//! The `ncood` binary: argument parsing, progress bars and exit codes over the library.
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use ncood::data::{DataSource, Split, loader::Normalizer};
use ncood::features::FeatureSet;
use ncood::train::{self, Net, Progress, RunConfig, Start};
use std::path::PathBuf;

/// Out-of-distribution detection and Neural Collapse on DDU ResNets.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model (or resume an interrupted run with --resume RUN_DIR).
    Train {
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
        /// auto | cpu | cuda | cuda:N (shorthand for --set device=...).
        #[arg(long)]
        device: Option<String>,
        /// libtorch CPU threads (shorthand for --set threads=N).
        #[arg(long)]
        threads: Option<usize>,
        /// Run directory (default runs/<data>-<arch>-w<width>-<l2|nol2>-s<seed>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Continue the run in this directory from its last checkpoint.
        #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["config", "set", "seed", "out", "device", "threads"])]
        resume: Option<PathBuf>,
    },
    /// Write a trained run's logits (N x C, float32 .npy) on a data set, in data-set order.
    Predict {
        run_dir: PathBuf,
        /// Data set name (fashion-mnist, mnist, cifar10, cifar100, svhn), or with the test split a
        /// generated OoD set (noise-uniform, noise-gaussian, flip-invert).
        #[arg(long)]
        data: String,
        #[arg(long, value_enum, default_value = "test")]
        split: Split,
        /// Output .npy file.
        #[arg(long)]
        out: PathBuf,
        /// Checkpoint epoch (default: the latest).
        #[arg(long, default_value_t = 0)]
        epoch: usize,
        /// auto | cpu | cuda | cuda:N.
        #[arg(long, default_value = "auto")]
        device: String,
    },
    /// Write a run's raw and normalised features, logits and labels of a data set as .npy files
    /// PREFIX.{raw,normalized,logits,labels}.npy (eval mode, no augmentation, data-set order).
    Features {
        run_dir: PathBuf,
        /// Data set name, or a generated OoD set (noise-uniform, noise-gaussian, flip-invert).
        #[arg(long)]
        data: String,
        #[arg(long, value_enum, default_value = "test")]
        split: Split,
        #[arg(long, value_name = "PREFIX")]
        out: PathBuf,
        #[arg(long, default_value_t = 0)]
        epoch: usize,
        #[arg(long, default_value = "auto")]
        device: String,
    },
    /// Score OoD inputs from .npy files (features from any model): GDA, and the softmax family
    /// when logits are given. Writes RESULT.json and prints a table.
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
        #[arg(long)]
        id_labels: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Neural Collapse (NC1-4) of features from .npy files and a classifier (weights W: C x D and
    /// bias, as .npy or from an ncood/PyTorch-layout checkpoint's fc.weight / fc.bias).
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
        /// Recorded in the result: which features these are (e.g. raw, normalized).
        #[arg(long, default_value = "file")]
        kind: String,
        #[arg(long)]
        out: PathBuf,
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
        /// Which groups to run (both by default; separate processes can run one each).
        #[arg(long, value_enum, value_delimiter = ',', default_values_t = [train::Group::Control, train::Group::Nc])]
        groups: Vec<train::Group>,
    },
    /// Evaluate a trained run against OoD sets: features, every score, every metric, written to
    /// RUN_DIR/eval/epoch-NNNN.{json,md} and printed.
    Eval {
        run_dir: PathBuf,
        /// OoD sets: registered data sets (test split) and/or generated ones. Default: MNIST
        /// (fashion-mnist runs) or SVHN and CIFAR-100 (cifar10 runs, when present), plus
        /// noise-uniform, noise-gaussian, flip-invert.
        #[arg(long, value_delimiter = ',')]
        ood: Vec<String>,
        #[arg(long, default_value_t = 0)]
        epoch: usize,
        #[arg(long, default_value = "auto")]
        device: String,
    },
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed})")
        .expect("valid template")
        .progress_chars("=> ")
}

/// A progress bar per epoch and a printed line at each epoch's end, prefixed by the prefix given
/// with each report.
fn progress_printer() -> impl FnMut(&str, Progress) {
    let mut bar = ProgressBar::hidden();
    move |prefix, p| match p {
        Progress::EpochStart {
            epoch,
            epochs,
            steps,
        } => {
            bar = ProgressBar::new(steps as u64)
                .with_style(bar_style())
                .with_prefix(format!("{prefix}{epoch}/{epochs}"));
        }
        Progress::Step {
            step,
            loss,
            acc,
            images_per_s,
        } => {
            bar.set_position(step as u64);
            bar.set_message(format!(
                "loss {loss:.4} acc {acc:.4} {images_per_s:.0} img/s"
            ));
        }
        Progress::EpochEnd(l) => {
            bar.finish_and_clear();
            print_epoch(prefix, l);
        }
    }
}

fn train_cmd(cfg: Option<RunConfig>, dir: PathBuf, epochs: Option<usize>) -> Result<()> {
    let start = match cfg {
        Some(cfg) => Start::New(Box::new(cfg)),
        None => Start::Resume { epochs },
    };
    let mut show = progress_printer();
    let summary = train::run(&dir, start, &mut |p| show("", p))
        .with_context(|| format!("training run {}", dir.display()))?;
    println!(
        "done: {} epochs, test accuracy {:.4}, {:.0} img/s on {} ({} threads)",
        summary.epochs,
        summary.final_test_acc,
        summary.mean_images_per_s,
        summary.device,
        summary.threads
    );
    println!("results: {}", dir.display());
    Ok(())
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Train {
            config,
            set,
            seed,
            epochs,
            device,
            threads,
            out,
            resume,
        } => {
            if let Some(dir) = resume {
                return train_cmd(None, dir, epochs);
            }
            let text = match &config {
                Some(p) => std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?,
                None => String::new(),
            };
            let mut overrides = set;
            let short = [
                seed.map(|s| format!("seed={s}")),
                epochs.map(|e| format!("optim.epochs={e}")),
                device.map(|d| format!("device=\"{d}\"")),
                threads.map(|t| format!("threads={t}")),
            ];
            overrides.extend(short.into_iter().flatten());
            let cfg = RunConfig::from_toml(&text, &overrides).with_context(|| match &config {
                Some(p) => format!("configuration {}", p.display()),
                None => "configuration".into(),
            })?;
            let dir = out.unwrap_or_else(|| {
                PathBuf::from("runs").join(format!(
                    "{}-{}-w{}-{}-s{}",
                    cfg.data.name,
                    format!("{:?}", cfg.model.arch).to_lowercase(),
                    cfg.model.width,
                    if cfg.model.l2 { "l2" } else { "nol2" },
                    cfg.seed
                ))
            });
            train_cmd(Some(cfg), dir, None)
        }
        Command::Predict {
            run_dir,
            data,
            split,
            out,
            epoch,
            device,
        } => {
            let (f, epoch) = features_of(&run_dir, &data, split, epoch, &device)?;
            ncood::checkpoint::write_npy(&out, &f.logits)?;
            let s = f.logits.size();
            println!(
                "wrote {data} logits ({} x {}) of epoch {epoch} to {}",
                s[0],
                s[1],
                out.display()
            );
            Ok(())
        }
        Command::Features {
            run_dir,
            data,
            split,
            out,
            epoch,
            device,
        } => {
            let (f, epoch) = features_of(&run_dir, &data, split, epoch, &device)?;
            let n = f.labels.size()[0];
            f.write(&out)?;
            let paths = FeatureSet::paths(&out).map(|p| p.display().to_string());
            println!(
                "wrote features of {data} ({n} samples, epoch {epoch}): {}",
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
        } => {
            use ncood::features::{read_labels, read_matrix};
            let stem = |p: &PathBuf| {
                p.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            };
            let inputs = ncood::evaluate::FileInputs {
                train_features: read_matrix(&train_features)?,
                train_labels: read_labels(&train_labels)?,
                id_features: read_matrix(&id_features)?,
                ood: ood_features
                    .iter()
                    .map(|p| Ok((stem(p), read_matrix(p)?)))
                    .collect::<ncood::Result<_>>()?,
                id_logits: id_logits.as_deref().map(read_matrix).transpose()?,
                ood_logits: ood_logits
                    .iter()
                    .map(|p| read_matrix(p))
                    .collect::<ncood::Result<_>>()?,
                id_labels: id_labels
                    .as_deref()
                    .map(|p| read_labels(p).map(|v| tch::Tensor::from_slice(&v)))
                    .transpose()?,
            };
            let r = ncood::evaluate::score_files(&inputs)?;
            write_result(&r, &out)?;
            print!("{}", ncood::evaluate::markdown(&r));
            println!("results: {}", out.display());
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
        } => {
            use ncood::features::{read_labels, read_matrix};
            let h = read_matrix(&features)?;
            let y = read_labels(&labels)?;
            let (w, b) = match (weights, checkpoint) {
                (Some(w), _) => (
                    read_matrix(&w)?,
                    bias.as_deref().map(read_bias).transpose()?,
                ),
                (None, Some(c)) => {
                    let (t, _) = ncood::checkpoint::read(&c)?;
                    let w = t
                        .get("fc.weight")
                        .with_context(|| format!("{} has no fc.weight", c.display()))?;
                    (
                        w.shallow_clone(),
                        t.get("fc.bias").map(|b| b.shallow_clone()),
                    )
                }
                (None, None) => unreachable!("clap requires one"),
            };
            let classes = w.size()[0] as usize;
            let r = ncood::collapse::measure(&h, &y, classes, &w, b.as_ref(), &kind, 4096)?;
            let text = serde_json::to_string_pretty(&r)? + "\n";
            ncood::checkpoint::write_atomic(&out, text.as_bytes())?;
            println!(
                "NC1 {:.4e}  NC2 equinorm {:.4} / {:.4}  equiangularity {:.4} / {:.4}  max-angle {:.4} / {:.4} (means / weights)  NC3 {:.4}  NC4 {:.4}",
                r.nc1,
                r.nc2.equinorm_means,
                r.nc2.equinorm_weights,
                r.nc2.equiangularity_means,
                r.nc2.equiangularity_weights,
                r.nc2.maxangle_means,
                r.nc2.maxangle_weights,
                r.nc3,
                r.nc4
            );
            println!("results: {}", out.display());
            Ok(())
        }
        Command::Intervene {
            run_dir,
            from_epoch,
            epochs,
            drop_after,
            groups,
        } => {
            let mut show = progress_printer();
            let dirs = train::intervene(
                &run_dir,
                from_epoch,
                epochs,
                drop_after,
                &groups,
                &mut |group, p| show(&format!("{group} "), p),
            )?;
            let dirs: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            println!("results: {}", dirs.join(" and "));
            Ok(())
        }
        Command::Eval {
            run_dir,
            ood,
            epoch,
            device,
        } => {
            let dev = train::parse_device(&device)?;
            let cfg = RunConfig::from_file(&run_dir.join(train::CONFIG_FILE), &[])?;
            let ood = if ood.is_empty() {
                default_ood(&cfg)
            } else {
                ood
            };
            let r = ncood::evaluate::eval_run(&run_dir, epoch, &ood, dev)?;
            let dir = run_dir.join("eval");
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let base = dir.join(format!("epoch-{:04}", r.epoch.unwrap_or(0)));
            write_result(&r, &base.with_extension("json"))?;
            let md = ncood::evaluate::markdown(&r);
            ncood::checkpoint::write_atomic(&base.with_extension("md"), md.as_bytes())?;
            print!("{md}");
            println!("results: {}.{{json,md}}", base.display());
            Ok(())
        }
    }
}

/// One eval pass of a run's checkpoint (`epoch`, 0 = latest) over a data set: a registered set's
/// split, or for the test split also a generated OoD set.
fn features_of(
    run_dir: &std::path::Path,
    data: &str,
    split: Split,
    epoch: usize,
    device: &str,
) -> Result<(FeatureSet, usize)> {
    let dev = train::parse_device(device)?;
    let (cfg, net, epoch) = Net::load(run_dir, epoch, dev)?;
    let id = train::RunData::load(&cfg)?;
    let src = DataSource {
        root: cfg.data.root.clone(),
        verify: cfg.data.verify,
    };
    let set = if split == Split::Test {
        ncood::data::ood_set(&src, data, &id.test, &id.normalization, cfg.seed)?
    } else {
        src.load(data, split, cfg.seed, cfg.data.val_fraction)?
    };
    let norm = Normalizer::new(&id.normalization, dev);
    Ok((
        FeatureSet::extract(&net.model, &set, &norm, cfg.data.eval_batch_size),
        epoch,
    ))
}

/// A 1-D float .npy (the classifier bias).
fn read_bias(p: &std::path::Path) -> Result<tch::Tensor> {
    let t = tch::Tensor::read_npy(p).with_context(|| format!("reading {}", p.display()))?;
    anyhow::ensure!(
        t.dim() == 1,
        "{}: expected a 1-D bias, got shape {:?}",
        p.display(),
        t.size()
    );
    Ok(t.to_kind(tch::Kind::Double))
}

/// One epoch's log line on the terminal, with its tracking when present.
fn print_epoch(prefix: &str, l: &train::EpochLog) {
    println!(
        "{prefix}epoch {:>3}  lr {:.4}  loss {:.4}  train acc {:.4}  test acc {:.4}  {:.1} s  {:.0} img/s",
        l.epoch, l.lr, l.train_loss, l.train_acc, l.test_acc, l.seconds, l.images_per_s
    );
    if let Some(t) = &l.track {
        println!(
            "{prefix}  NC1 {:.4e}  NC2 equinorm {:.4} max-angle {:.4}  NC3 {:.4}  NC4 {:.4}  GDA AUROC vs {} {:.4}  top-N FP {}  ({:.1} s)",
            t.nc.nc1,
            t.nc.nc2.equinorm_means,
            t.nc.nc2.maxangle_means,
            t.nc.nc3,
            t.nc.nc4,
            t.ood,
            t.gda_auroc,
            t.topn_false_positives,
            t.seconds
        );
    }
}

fn write_result(r: &ncood::evaluate::EvalResult, path: &std::path::Path) -> Result<()> {
    let text = serde_json::to_string_pretty(r)? + "\n";
    Ok(ncood::checkpoint::write_atomic(path, text.as_bytes())?)
}

/// The paper's OoD sets for the run's ID set (those whose folder exists under the data root), plus
/// the generated ones.
fn default_ood(cfg: &RunConfig) -> Vec<String> {
    let real: &[&str] = match cfg.data.name.as_str() {
        "fashion-mnist" => &["mnist"],
        "cifar10" => &["svhn", "cifar100"],
        _ => &[],
    };
    let mut out: Vec<String> = real
        .iter()
        .filter(|n| cfg.data.root.join(n).exists())
        .map(|s| s.to_string())
        .collect();
    out.extend(ncood::data::GENERATED.iter().map(|s| s.to_string()));
    out
}
