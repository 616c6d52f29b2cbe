//! Training (SPEC 3): one explicit loop, SGD with PyTorch semantics, multi-step schedule,
//! per-epoch log, atomic checkpoints and exact resumption.
//!
//! Exactness of resume: an epoch's batches depend only on (seed, epoch) (`data::loader`), and a
//! checkpoint holds every tensor that changes during training (raw weights, SN vectors, BatchNorm
//! statistics, momentum buffers) plus the step count. A run killed at any moment and resumed
//! restarts from the last complete checkpoint and replays the same computation: on the same
//! machine, device and thread count it ends with bit-identical weights.
pub mod config;
pub mod track;

use crate::checkpoint;
use crate::collapse;
use crate::data::loader::{EpochPlan, Normalizer, epoch_rng, train_batch};
use crate::data::{DataSource, Dataset, Normalization, Split};
use crate::error::{Error, Result};
use crate::features::FeatureSet;
use crate::model::ResNet;
pub use config::{Loss, RunConfig, parse_device};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Device, Kind, Tensor, nn};

/// One line of log.jsonl.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    /// 1-based epoch number.
    pub epoch: usize,
    pub lr: f64,
    /// Mean training loss over the epoch's batches (augmented, train mode): cross-entropy, or the
    /// NC loss under `optim.loss = "nc"`.
    pub train_loss: f64,
    pub train_acc: f64,
    /// Accuracy on the test split, eval mode.
    pub test_acc: f64,
    /// Wall-clock seconds of the epoch: training and the test pass.
    pub seconds: f64,
    /// Training throughput (images per second of the training part).
    pub images_per_s: f64,
    /// NC1-4, GDA AUROC and top-N false positives, on tracked epochs (`[track]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track: Option<track::Tracked>,
}

/// What the library reports while training; the binary turns it into progress bars.
pub enum Progress<'a> {
    EpochStart {
        epoch: usize,
        epochs: usize,
        steps: usize,
    },
    Step {
        step: usize,
        loss: f64,
        acc: f64,
        images_per_s: f64,
    },
    EpochEnd(&'a EpochLog),
}

/// The run's final record, summary.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    pub ncood_version: String,
    pub git_commit: String,
    pub device: String,
    pub threads: i32,
    pub epochs: usize,
    pub final_test_acc: f64,
    pub final_train_loss: f64,
    pub total_seconds: f64,
    pub mean_images_per_s: f64,
    pub train_size: usize,
    pub val_size: usize,
    pub test_size: usize,
    pub normalization: Normalization,
    pub milestones: Vec<usize>,
    pub checkpoint: PathBuf,
}

pub const CONFIG_FILE: &str = "config.toml";
pub const LOG_FILE: &str = "log.jsonl";
pub const SUMMARY_FILE: &str = "summary.json";
const LOCK_FILE: &str = "run.lock";
/// Steps between progress reports (each one reads the loss from the device).
const REPORT_EVERY: usize = 10;

/// Path of epoch `e`'s checkpoint: PyTorch-layout weights, or (`state`) everything resume needs.
pub fn checkpoint_path(dir: &Path, epoch: usize, state: bool) -> PathBuf {
    dir.join("checkpoints").join(format!(
        "epoch-{epoch:04}{}.safetensors",
        if state { ".state" } else { "" }
    ))
}

/// The latest epoch with a complete resume state in a run directory (0 if none).
pub fn latest_checkpoint(dir: &Path) -> Result<usize> {
    let ck = dir.join("checkpoints");
    let Ok(entries) = std::fs::read_dir(&ck) else {
        return Ok(0);
    };
    let mut best = 0;
    for e in entries {
        let name = e
            .map_err(|e| Error::io(&ck, e))?
            .file_name()
            .to_string_lossy()
            .into_owned();
        if let Some(n) = name
            .strip_prefix("epoch-")
            .and_then(|s| s.strip_suffix(".state.safetensors"))
        {
            best = best.max(n.parse().unwrap_or(0));
        }
    }
    Ok(best)
}

/// Applies the thread setting and resolves the device.
pub fn setup_device(cfg: &RunConfig) -> Result<Device> {
    if cfg.threads > 0 {
        tch::set_num_threads(cfg.threads as i32);
    }
    parse_device(&cfg.device)
}

/// A model with its variables, built deterministically from the config's seed on the CPU (so
/// that initial weights do not depend on the device), then moved to `device`.
pub struct Net {
    pub vs: nn::VarStore,
    pub model: ResNet,
}

impl Net {
    pub fn new(cfg: &RunConfig, device: Device) -> Result<Net> {
        let info = crate::data::info(&cfg.data.name)?;
        // libtorch's RNG is process-global: seed and draw under a lock so that models built
        // concurrently in one process (threads, tests) still get their seed's weights.
        static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _guard = INIT.lock().unwrap_or_else(|e| e.into_inner());
        tch::manual_seed(cfg.seed as i64);
        let mut vs = nn::VarStore::new(Device::Cpu);
        let model = ResNet::new(
            &vs.root(),
            &cfg.model,
            info.channels as i64,
            info.side as i64,
            info.classes as i64,
        )?;
        vs.set_device(device);
        Ok(Net { vs, model })
    }

    /// Builds the model of a run directory and loads epoch `epoch`'s state (0 = latest).
    pub fn load(dir: &Path, epoch: usize, device: Device) -> Result<(RunConfig, Net, usize)> {
        let cfg = RunConfig::from_file(&dir.join(CONFIG_FILE), &[])?;
        let epoch = if epoch == 0 {
            latest_checkpoint(dir)?
        } else {
            epoch
        };
        if epoch == 0 {
            return Err(Error::RunDir {
                path: dir.into(),
                problem: "has no checkpoint yet".into(),
            });
        }
        let net = Net::new(&cfg, device)?;
        let path = checkpoint_path(dir, epoch, true);
        let (tensors, _) = checkpoint::read(&path)?;
        checkpoint::load_into(&net.vs, &tensors, "", &path)?;
        Ok((cfg, net, epoch))
    }
}

/// The data of a run: ID train, validation and test splits and the normaliser (ID training-file statistics).
pub struct RunData {
    pub train: Dataset,
    pub val: Dataset,
    pub test: Dataset,
    pub normalization: Normalization,
}

impl RunData {
    pub fn load(cfg: &RunConfig) -> Result<RunData> {
        let src = DataSource {
            root: cfg.data.root.clone(),
            verify: cfg.data.verify,
        };
        let full = src.read_file_split(&cfg.data.name, true)?;
        let normalization = Normalization::of(&full)?;
        let (train_idx, val_idx) =
            crate::data::split_indices(full.len(), cfg.data.val_fraction, cfg.seed);
        let (train, val) = (full.subset(&train_idx), full.subset(&val_idx));
        let test = src.load(&cfg.data.name, Split::Test, cfg.seed, cfg.data.val_fraction)?;
        Ok(RunData {
            train,
            val,
            test,
            normalization,
        })
    }
}

/// Holds a run directory's lock for as long as it lives (released by the OS if the process dies).
struct RunLock(#[allow(dead_code)] File);

fn lock(dir: &Path) -> Result<RunLock> {
    let path = dir.join(LOCK_FILE);
    let f = File::create(&path).map_err(|e| Error::io(&path, e))?;
    f.try_lock().map_err(|_| Error::RunDir {
        path: dir.into(),
        problem: "another ncood process is writing this run (run.lock is held)".into(),
    })?;
    Ok(RunLock(f))
}

fn read_log(dir: &Path) -> Result<Vec<EpochLog>> {
    let path = dir.join(LOG_FILE);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(vec![]);
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| Error::bad_file(&path, format!("line {}: {e}", i + 1)))
        })
        .collect()
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("plain data serialises");
    checkpoint::write_atomic(path, (text + "\n").as_bytes())
}

/// ncood version and the git commit it was built from.
pub fn version() -> (String, String) {
    (
        env!("CARGO_PKG_VERSION").to_string(),
        option_env!("NCOOD_GIT_COMMIT")
            .unwrap_or("unknown")
            .to_string(),
    )
}

/// How a training run starts.
pub enum Start {
    /// A new run in an empty or absent directory.
    New(Box<RunConfig>),
    /// Continue the run in the directory; `epochs` optionally raises the epoch count
    /// (over-training: the schedule's milestones stay as recorded).
    Resume { epochs: Option<usize> },
}

/// SGD with momentum, PyTorch semantics (`torch.optim.SGD(lr, momentum, weight_decay)`):
/// d = g + wd * p; buf = momentum * buf + d (buf starts at d); p -= lr * buf. Written here rather
/// than with tch's optimizer because exact resumption needs the momentum buffers as tensors.
pub struct Sgd {
    params: Vec<(String, Tensor)>,
    buffers: Vec<Tensor>,
    momentum: f64,
    weight_decay: f64,
}

impl Sgd {
    pub fn new(vs: &nn::VarStore, momentum: f64, weight_decay: f64) -> Sgd {
        let mut params: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        // Zero buffers: momentum * 0 + d == d exactly, which is PyTorch's first step.
        let buffers = params.iter().map(|(_, p)| p.zeros_like()).collect();
        Sgd {
            params,
            buffers,
            momentum,
            weight_decay,
        }
    }

    fn step(&mut self, lr: f64) {
        tch::no_grad(|| {
            for ((_, p), buf) in self.params.iter_mut().zip(&mut self.buffers) {
                let g = p.grad();
                if !g.defined() {
                    continue; // no gradient this step (e.g. the head's bias under the NC loss)
                }
                let d = g + &*p * self.weight_decay;
                let _ = buf.g_mul_scalar_(self.momentum).g_add_(&d);
                let _ = p.g_sub_(&(&*buf * lr));
            }
        });
    }

    fn zero_grad(&mut self) {
        for (_, p) in self.params.iter_mut() {
            p.zero_grad();
        }
    }
}

/// One SGD step on a batch: the loss (mean cross-entropy, or the NC loss on the head's input
/// features and weights), backward, update. Returns the detached loss and logits, left on the
/// device (reading them is the caller's choice: it synchronises).
pub fn train_step(
    net: &Net,
    sgd: &mut Sgd,
    x: &Tensor,
    y: &Tensor,
    lr: f64,
    loss: Loss,
) -> (Tensor, Tensor) {
    let out = net.model.forward_t(x, true);
    let loss = match loss {
        Loss::CrossEntropy => out.logits.cross_entropy_for_logits(y),
        Loss::Nc => collapse::nc_loss(
            net.model.head_input(&out),
            y,
            &net.model.fc.ws,
            out.logits.size()[1],
        ),
    };
    sgd.zero_grad();
    loss.backward();
    sgd.step(lr);
    (loss.detach(), out.logits.detach())
}

/// Trains (or resumes) the run in `dir`, reporting progress; returns the summary it writes.
pub fn run(dir: &Path, start: Start, progress: &mut dyn FnMut(Progress)) -> Result<Summary> {
    let resuming = matches!(start, Start::Resume { .. });
    let mut cfg = match start {
        Start::New(cfg) => {
            let cfg = *cfg;
            cfg.validate()?;
            if dir.join(CONFIG_FILE).exists() {
                return Err(Error::RunDir {
                    path: dir.into(),
                    problem:
                        "already holds a run; use --resume to continue it or choose another --out"
                            .into(),
                });
            }
            cfg
        }
        Start::Resume { epochs } => {
            let mut cfg = RunConfig::from_file(&dir.join(CONFIG_FILE), &[])?;
            if let Some(e) = epochs {
                cfg.optim.epochs = e;
                cfg.validate()?;
            }
            cfg
        }
    };
    std::fs::create_dir_all(dir.join("checkpoints")).map_err(|e| Error::io(dir, e))?;
    let _lock = lock(dir)?;
    // Record the schedule actually used.
    cfg.optim.milestones = Some(cfg.optim.resolved_milestones());
    let (ver, commit) = version();
    let header = format!("# ncood {ver} (commit {commit}): resolved run configuration\n");
    checkpoint::write_atomic(&dir.join(CONFIG_FILE), (header + &cfg.to_toml()).as_bytes())?;

    let device = setup_device(&cfg)?;
    let data = RunData::load(&cfg)?;
    let norm = Normalizer::new(&data.normalization, device);
    let net = Net::new(&cfg, device)?;
    if let (Some(path), false) = (&cfg.init_from, resuming) {
        let (tensors, _) = checkpoint::read(path)?;
        checkpoint::load_into(&net.vs, &tensors, "", path)?;
    }
    let tracker = track::Tracker::new(&cfg, &data)?;
    let mut sgd = Sgd::new(&net.vs, cfg.optim.momentum, cfg.optim.weight_decay);
    let mut steps: i64 = 0;
    let mut log = vec![];
    let mut done = 0;
    if resuming {
        done = latest_checkpoint(dir)?;
        if done > 0 {
            let path = checkpoint_path(dir, done, true);
            let (tensors, meta) = checkpoint::read(&path)?;
            checkpoint::load_into(&net.vs, &tensors, "", &path)?;
            tch::no_grad(|| -> Result<()> {
                for ((name, _), buf) in sgd.params.iter().zip(&mut sgd.buffers) {
                    let t = tensors.get(&format!("momentum.{name}")).ok_or_else(|| {
                        Error::bad_file(&path, format!("missing tensor momentum.{name}"))
                    })?;
                    buf.copy_(t);
                }
                Ok(())
            })?;
            steps = meta.get("steps").and_then(|s| s.parse().ok()).unwrap_or(0);
        }
        log = read_log(dir)?;
        log.retain(|l| l.epoch <= done);
    }

    let info = data.train.info;
    for epoch in done..cfg.optim.epochs {
        let lr = cfg.optim.lr_at(epoch);
        let (flip, crop, rng) = (
            cfg.data.augment && info.hflip,
            cfg.data.augment,
            &mut epoch_rng(cfg.seed, epoch),
        );
        let plan = match cfg.optim.loss {
            Loss::CrossEntropy => {
                EpochPlan::new(data.train.len(), cfg.optim.batch_size, flip, crop, rng)
            }
            Loss::Nc => EpochPlan::balanced(
                &data.train.labels,
                info.classes,
                cfg.optim.batch_size,
                flip,
                crop,
                rng,
            ),
        };
        progress(Progress::EpochStart {
            epoch: epoch + 1,
            epochs: cfg.optim.epochs,
            steps: plan.batches.len(),
        });
        let t0 = Instant::now();
        let loss_sum = Tensor::zeros([], (Kind::Float, device));
        let correct = Tensor::zeros([], (Kind::Int64, device));
        let mut seen = 0usize;
        for (i, items) in plan.batches.iter().enumerate() {
            let (x, y) = train_batch(&data.train, items, &norm);
            let (loss, logits) = train_step(&net, &mut sgd, &x, &y, lr, cfg.optim.loss);
            steps += 1;
            seen += items.len();
            tch::no_grad(|| {
                let _ = loss_sum
                    .shallow_clone()
                    .g_add_(&(loss * items.len() as f64));
                let _ = correct
                    .shallow_clone()
                    .g_add_(&logits.argmax(1, false).eq_tensor(&y).sum(Kind::Int64));
            });
            if (i + 1) % REPORT_EVERY == 0 || i + 1 == plan.batches.len() {
                let mean = f64::try_from(&loss_sum)? / seen as f64;
                if !mean.is_finite() {
                    return Err(Error::NonFinite {
                        what: "training loss",
                        epoch: epoch + 1,
                        step: i + 1,
                    });
                }
                let acc = i64::try_from(&correct)? as f64 / seen as f64;
                progress(Progress::Step {
                    step: i + 1,
                    loss: mean,
                    acc,
                    images_per_s: seen as f64 / t0.elapsed().as_secs_f64(),
                });
            }
        }
        if let Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
        let train_seconds = t0.elapsed().as_secs_f64();
        let test = FeatureSet::extract(&net.model, &data.test, &norm, cfg.data.eval_batch_size);
        let test_correct = i64::try_from(
            test.logits
                .argmax(1, false)
                .eq_tensor(&Tensor::from_slice(&data.test.labels))
                .sum(Kind::Int64),
        )?;
        let entry = EpochLog {
            epoch: epoch + 1,
            lr,
            train_loss: f64::try_from(&loss_sum)? / seen as f64,
            train_acc: i64::try_from(&correct)? as f64 / seen as f64,
            test_acc: test_correct as f64 / data.test.len().max(1) as f64,
            seconds: t0.elapsed().as_secs_f64(),
            images_per_s: seen as f64 / train_seconds,
            track: match &tracker {
                Some(t) if cfg.track.due(epoch + 1) => {
                    Some(t.measure(&net.model, &test, &norm, cfg.data.eval_batch_size)?)
                }
                _ => None,
            },
        };
        log.push(entry.clone());
        // Order matters for resume: log, weights, then the state whose presence marks the
        // checkpoint complete. A kill in between makes resume redo this epoch.
        let lines: String = log
            .iter()
            .map(|l| serde_json::to_string(l).expect("plain data") + "\n")
            .collect();
        checkpoint::write_atomic(&dir.join(LOG_FILE), lines.as_bytes())?;
        if (epoch + 1) % cfg.checkpoint_every == 0 || epoch + 1 == cfg.optim.epochs {
            save_checkpoint(dir, &cfg, &net, &sgd, epoch + 1, steps)?;
        }
        progress(Progress::EpochEnd(&entry));
    }
    let last = log.last().cloned().ok_or_else(|| Error::RunDir {
        path: dir.into(),
        problem: "no epoch was trained".into(),
    })?;
    let summary = Summary {
        ncood_version: version().0,
        git_commit: version().1,
        device: format!("{device:?}"),
        threads: tch::get_num_threads(),
        epochs: cfg.optim.epochs,
        final_test_acc: last.test_acc,
        final_train_loss: last.train_loss,
        total_seconds: log.iter().map(|l| l.seconds).sum(),
        mean_images_per_s: log.iter().map(|l| l.images_per_s).sum::<f64>() / log.len() as f64,
        train_size: data.train.len(),
        val_size: data.val.len(),
        test_size: data.test.len(),
        normalization: data.normalization.clone(),
        milestones: cfg.optim.resolved_milestones(),
        checkpoint: checkpoint_path(dir, cfg.optim.epochs, false),
    };
    write_json(&dir.join(SUMMARY_FILE), &summary)?;
    Ok(summary)
}

fn save_checkpoint(
    dir: &Path,
    cfg: &RunConfig,
    net: &Net,
    sgd: &Sgd,
    epoch: usize,
    steps: i64,
) -> Result<()> {
    let meta: HashMap<String, String> = [
        ("epoch".to_string(), epoch.to_string()),
        ("steps".to_string(), steps.to_string()),
        ("config".to_string(), cfg.to_toml()),
        ("ncood_version".to_string(), version().0),
    ]
    .into();
    checkpoint::write(
        &checkpoint_path(dir, epoch, false),
        &net.model.pytorch_state(&net.vs, steps),
        &meta,
    )?;
    let mut state: Vec<(String, Tensor)> = net.vs.variables().into_iter().collect();
    state.extend(
        sgd.params
            .iter()
            .zip(&sgd.buffers)
            .map(|((n, _), b)| (format!("momentum.{n}"), b.shallow_clone())),
    );
    state.sort_by(|a, b| a.0.cmp(&b.0));
    checkpoint::write(&checkpoint_path(dir, epoch, true), &state, &meta)
}

/// A group of the SPEC 7 intervention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Group {
    /// Cross-entropy.
    Control,
    /// The NC loss on class-balanced batches.
    Nc,
}

/// The intervention of SPEC 7 from a run's checkpoint at `from_epoch`: each group starts from that
/// state (fresh momentum buffers) with one tenth of the schedule's learning rate there, stepped
/// down x0.1 after `drop_after` epochs, for `epochs` epochs, tracking every epoch, in
/// RUN_DIR/intervene-eNNNN/{control,nc}. An existing group directory is resumed. Returns the
/// directories of `groups`, in order.
pub fn intervene(
    dir: &Path,
    from_epoch: usize,
    epochs: usize,
    drop_after: usize,
    groups: &[Group],
    progress: &mut dyn FnMut(&str, Progress),
) -> Result<Vec<PathBuf>> {
    let base = RunConfig::from_file(&dir.join(CONFIG_FILE), &[])?;
    let state = checkpoint_path(dir, from_epoch, true);
    if !state.exists() {
        return Err(Error::RunDir {
            path: dir.into(),
            problem: format!(
                "has no checkpoint of epoch {from_epoch} ({})",
                state.display()
            ),
        });
    }
    let out = dir.join(format!("intervene-e{from_epoch:04}"));
    let mut dirs = vec![];
    for &group in groups {
        let (name, loss) = match group {
            Group::Control => ("control", Loss::CrossEntropy),
            Group::Nc => ("nc", Loss::Nc),
        };
        let mut cfg = base.clone();
        cfg.init_from = Some(state.clone());
        cfg.optim.lr = base.optim.lr_at(from_epoch) / 10.0;
        cfg.optim.milestones = Some(vec![drop_after]);
        cfg.optim.epochs = epochs;
        cfg.optim.loss = loss;
        (cfg.track.every, cfg.track.epochs) = (1, vec![]); // SPEC 7 tracks every epoch
        let d = out.join(name);
        let start = if d.join(CONFIG_FILE).exists() {
            Start::Resume { epochs: None }
        } else {
            Start::New(Box::new(cfg))
        };
        run(&d, start, &mut |p| progress(name, p))?;
        dirs.push(d);
    }
    Ok(dirs)
}
