//! The `ncood` binary: argument parsing, progress bars and exit codes over the library.
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use ncood::data::{DataSource, Split, loader::Normalizer};
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
        /// Data set name (fashion-mnist, mnist, cifar10, cifar100, svhn).
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
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed})")
        .expect("valid template")
        .progress_chars("=> ")
}

fn train_cmd(cfg: Option<RunConfig>, dir: PathBuf, epochs: Option<usize>) -> Result<()> {
    let start = match cfg {
        Some(cfg) => Start::New(cfg),
        None => Start::Resume { epochs },
    };
    let mut bar = ProgressBar::hidden();
    let summary = train::run(&dir, start, &mut |p| match p {
        Progress::EpochStart { epoch, epochs, steps } => {
            bar = ProgressBar::new(steps as u64).with_style(bar_style()).with_prefix(format!("{epoch}/{epochs}"));
        }
        Progress::Step { step, loss, acc, images_per_s } => {
            bar.set_position(step as u64);
            bar.set_message(format!("loss {loss:.4} acc {acc:.4} {images_per_s:.0} img/s"));
        }
        Progress::EpochEnd(l) => {
            bar.finish_and_clear();
            println!(
                "epoch {:>3}  lr {:.4}  loss {:.4}  train acc {:.4}  test acc {:.4}  {:.1} s  {:.0} img/s",
                l.epoch, l.lr, l.train_loss, l.train_acc, l.test_acc, l.seconds, l.images_per_s
            );
        }
    })
    .with_context(|| format!("training run {}", dir.display()))?;
    println!(
        "done: {} epochs, test accuracy {:.4}, {:.0} img/s on {} ({} threads)",
        summary.epochs, summary.final_test_acc, summary.mean_images_per_s, summary.device, summary.threads
    );
    println!("results: {}", dir.display());
    Ok(())
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Train { config, set, seed, epochs, device, threads, out, resume } => {
            if let Some(dir) = resume {
                return train_cmd(None, dir, epochs);
            }
            let text = match &config {
                Some(p) => std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
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
        Command::Predict { run_dir, data, split, out, epoch, device } => {
            let dev = train::parse_device(&device)?;
            let (cfg, net, epoch) = Net::load(&run_dir, epoch, dev)?;
            let id = train::RunData::load(&cfg)?;
            let src = DataSource { root: cfg.data.root.clone(), verify: cfg.data.verify };
            let set = src.load(&data, split, cfg.seed, cfg.data.val_fraction)?;
            let norm = Normalizer::new(&id.normalization, dev);
            let logits = net.logits(&set, &norm, cfg.data.eval_batch_size);
            ncood::checkpoint::write_npy(&out, &logits)?;
            println!("wrote {} logits ({} x {}) of epoch {epoch} to {}", data, set.len(), logits.size()[1], out.display());
            Ok(())
        }
    }
}
