//! Training (SPEC 3): one explicit loop, SGD with PyTorch semantics (`sgd`), multi-step schedule,
//! per-epoch log, atomic checkpoints and exact resumption, tracking (`track`) and the NC-loss
//! intervention (`intervene`).
//!
//! Exactness of resume: an epoch's batches depend only on (seed, epoch) (`data::loader`), and a
//! checkpoint holds every tensor that changes during training (raw weights, SN vectors, BatchNorm
//! statistics, momentum buffers) plus the step count. A run killed at any moment and resumed
//! restarts from the last complete checkpoint and replays the same computation: on the same
//! machine, device and thread count it ends with byte-identical files.
pub mod graph;
pub mod intervene;
pub mod sgd;
pub mod track;

use crate::checkpoint;
use crate::collapse;
use crate::config::{Loss, Precision, RunConfig};
use crate::data::RunData;
use crate::data::loader::{DeviceData, EpochPlan, Normalizer, train_batch};
use crate::device::Compute;
use crate::error::{Error, Result};
use crate::features::FeatureSet;
use crate::model::Net;
use crate::rng::{Stream, rng};
use crate::run::{EpochLog, Provenance, RunDir, RunLock, Summary};
pub use intervene::{Group, Intervention, intervene};
use sgd::Sgd;
use std::path::Path;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// What the library reports while training; the binary turns it into progress bars.
pub enum Progress<'a> {
    EpochStart {
        epoch: usize,
        epochs: usize,
        steps: usize,
    },
    /// After every step; reads nothing from the device (on a GPU, the step may still be queued).
    Step {
        step: usize,
        images_per_s: f64,
    },
    /// The epoch's mean loss and accuracy so far, read from the device every `report_every`
    /// steps and at the epoch's last step (each read waits for the device).
    Running {
        step: usize,
        loss: f64,
        acc: f64,
    },
    EpochEnd(&'a EpochLog),
}

/// How a training run starts.
pub enum Start {
    /// A new run in an empty or absent directory.
    New(Box<RunConfig>),
    /// Continue the run in the directory; `epochs` optionally raises the epoch count
    /// (over-training: the schedule's milestones stay as recorded). Fewer epochs than the run has
    /// done is an error. `compute` replaces the recorded device and threads for this process
    /// only (bit-exact resumption needs the same device and thread count).
    Resume {
        epochs: Option<usize>,
        compute: Compute,
    },
}

/// One SGD step on a batch: the loss (mean cross-entropy, or the NC loss on the head's input
/// features and weights), backward, update; the forward pass under bf16 autocast with
/// `Precision::Bf16`. Returns the detached loss and logits, left on the device (reading them is
/// the caller's choice: it synchronises).
pub fn train_step(
    net: &Net,
    sgd: &mut Sgd,
    x: &Tensor,
    y: &Tensor,
    lr: &Tensor,
    loss: Loss,
    precision: Precision,
) -> Result<(Tensor, Tensor)> {
    let out = {
        let _autocast = match precision {
            Precision::Fp32 => None,
            Precision::Bf16 => Some(crate::shim::Autocast::bf16(x.device())?),
        };
        net.model.forward_t(x, true)
    };
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
    Ok((loss.detach(), out.logits.detach()))
}

/// Everything a run holds while it trains.
struct Session {
    lock: RunLock,
    cfg: RunConfig,
    device: Device,
    data: RunData,
    norm: Normalizer,
    net: Net,
    sgd: Sgd,
    /// On a GPU: the training split on the device, augmented there.
    device_data: Option<DeviceData>,
    /// With `cuda_graphs`: the captured steps.
    graphs: Option<graph::GraphedSteps>,
    tracker: Option<track::Tracker>,
    steps: i64,
    log: Vec<EpochLog>,
}

/// Trains (or resumes) the run in `dir`, reporting progress; returns the summary it writes. The
/// running loss and accuracy are read from the device every `report_every` steps (0: only at
/// each epoch's end); a non-finite loss is found at the next read.
pub fn run(
    dir: &Path,
    start: Start,
    report_every: usize,
    progress: &mut dyn FnMut(Progress),
) -> Result<Summary> {
    let mut s = open(&RunDir::new(dir), start)?;
    for epoch in s.log.len()..s.cfg.optim.epochs {
        s.epoch(epoch, report_every, progress)?;
    }
    s.finish()
}

/// Opens a run: everything is validated and loaded (config, data, device, tracking sets) before
/// the directory is created or its lock taken; then the lock, then the checks that need it.
fn open(dir: &RunDir, start: Start) -> Result<Session> {
    let (cfg, device, resume_epochs) = match start {
        Start::New(cfg) => {
            let mut cfg = *cfg;
            cfg.validate()?;
            cfg.resolve()?;
            let device = crate::device::setup(cfg.device, cfg.threads)?;
            (cfg, device, None)
        }
        Start::Resume { epochs, compute } => {
            let mut cfg = dir.config()?;
            if let Some(e) = epochs {
                cfg.optim.epochs = e;
                cfg.validate()?;
            }
            let (device, threads) = compute.over(cfg.device, cfg.threads);
            let device = crate::device::setup(device, threads)?;
            (cfg, device, Some(epochs))
        }
    };
    let data = RunData::load(&cfg.data, cfg.seed)?;
    let tracker = track::Tracker::new(&cfg, &data)?;
    check_batches(&cfg, &data.train)?;
    let net = cfg.net(device)?;
    // The starting point of a run that starts from a checkpoint, until it has one of its own
    // (which resume restores instead).
    if let Some(init) = &cfg.init_from
        && (resume_epochs.is_none() || dir.latest_checkpoint()? == 0)
    {
        let path = dir.resolve(init);
        let (tensors, _) = checkpoint::read(&path)?;
        checkpoint::load_into(net.vs.variables(), &tensors, &path)?;
    }
    let graphs = if cfg.cuda_graphs {
        Some(graph::GraphedSteps::new(device)?)
    } else {
        None
    };
    let lock = dir.lock()?;
    let mut s = Session {
        device_data: device
            .is_cuda()
            .then(|| DeviceData::new(&data.train, device)),
        graphs,
        norm: Normalizer::new(&data.normalization, device),
        sgd: Sgd::new(&net.vs, cfg.optim.momentum, cfg.optim.weight_decay),
        lock,
        cfg,
        device,
        data,
        net,
        tracker,
        steps: 0,
        log: vec![],
    };
    match resume_epochs {
        None => {
            if dir.holds_run_files() {
                return Err(Error::run_dir(
                    dir.path(),
                    "already holds a run (or files of one); resume it or choose another directory",
                ));
            }
            s.lock.write_config(&s.cfg)?;
        }
        Some(epochs) => s.restore(epochs)?,
    }
    Ok(s)
}

/// Every epoch must yield a batch: the NC loss's class-balanced batches need batch_size / C
/// images of every class of the training split `train` (checked when a run opens, before its
/// directory exists, and by a study before anything runs).
pub fn check_batches(cfg: &RunConfig, train: &crate::data::Dataset) -> Result<()> {
    if cfg.optim.loss != Loss::Nc {
        return Ok(()); // shuffled batches: RunData guarantees two training images
    }
    let classes = train.info.classes;
    let per = cfg.optim.batch_size / classes;
    let smallest = (0..classes as i64)
        .map(|c| train.labels.iter().filter(|&&l| l == c).count())
        .min()
        .unwrap_or(0);
    if smallest < per {
        return Err(Error::config(
            "optim.batch_size",
            format!(
                "class-balanced batches of {per} images per class need that many of every class; the training split's smallest class has {smallest}"
            ),
        ));
    }
    Ok(())
}

impl Session {
    /// Restores the latest complete checkpoint and the log up to it.
    fn restore(&mut self, epochs: Option<usize>) -> Result<()> {
        let dir = self.lock.dir.clone();
        let done = dir.latest_checkpoint()?;
        if let Some(e) = epochs
            && e < done
        {
            return Err(Error::config(
                "optim.epochs",
                format!("{e} is fewer than the {done} epochs this run has done"),
            ));
        }
        if done > 0 {
            let state = dir.load_state(&self.cfg, &self.net, done)?;
            self.sgd
                .load_state(&state.tensors, &dir.checkpoint_path(done, true))?;
            self.steps = state.steps;
        }
        // The log up to the checkpoint: lines 1..=done in order (later ones, from an epoch killed
        // before its checkpoint, are dropped from the file too).
        let log = dir.log()?;
        let written = log.len();
        self.log = log.into_iter().take(done).collect();
        if let Some((i, l)) = self.log.iter().enumerate().find(|(i, l)| l.epoch != i + 1) {
            return Err(Error::bad_file(
                dir.log_path(),
                format!("line {} is epoch {}, expected {}", i + 1, l.epoch, i + 1),
            ));
        }
        if self.log.len() != done {
            return Err(Error::bad_file(
                dir.log_path(),
                format!(
                    "has {} epoch lines, fewer than the {done} epochs checkpointed",
                    self.log.len()
                ),
            ));
        }
        if written > done {
            self.lock.write_log(&self.log)?;
        }
        // Only over-training changes the recorded config.
        if epochs.is_some() && dir.config()? != self.cfg {
            self.lock.write_config(&self.cfg)?;
        }
        Ok(())
    }

    /// Trains 0-based epoch `epoch`, logs it and checkpoints when due.
    fn epoch(
        &mut self,
        epoch: usize,
        report_every: usize,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<()> {
        let (cfg, data, device) = (&self.cfg, &self.data, self.device);
        let info = data.train.info;
        let lr = cfg.optim.lr_at(epoch);
        let (flip, crop, rng) = (
            cfg.data.augment && info.hflip,
            cfg.data.augment,
            &mut rng(cfg.seed, Stream::Epoch(epoch)),
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
        if plan.batches.is_empty() {
            return Err(Error::invalid(
                format!("data set {}", info.name),
                "its training split yields no complete batch",
            ));
        }
        progress(Progress::EpochStart {
            epoch: epoch + 1,
            epochs: cfg.optim.epochs,
            steps: plan.batches.len(),
        });
        let fault_step = crate::atomic::fault_point("step");
        let t0 = Instant::now();
        let loss_sum = Tensor::zeros([], (Kind::Float, device));
        let correct = Tensor::zeros([], (Kind::Int64, device));
        let mut seen = 0usize;
        let lr_tensor = Tensor::from(lr).to_device(device);
        for (i, items) in plan.batches.iter().enumerate() {
            let (x, y) = match &self.device_data {
                Some(d) => d.batch(items, &self.norm),
                None => train_batch(&data.train, items, &self.norm),
            };
            let (net, sgd, o) = (&self.net, &mut self.sgd, &cfg.optim);
            let (loss, logits) = match &mut self.graphs {
                Some(g) => g.step(net, sgd, &x, &y, &lr_tensor, o.loss, o.precision)?,
                None => train_step(net, sgd, &x, &y, &lr_tensor, o.loss, o.precision)?,
            };
            self.steps += 1;
            if fault_step == Some(self.steps as usize) {
                std::process::abort(); // test-only fault injection (see `atomic`)
            }
            seen += items.len();
            tch::no_grad(|| {
                let _ = loss_sum
                    .shallow_clone()
                    .g_add_(&(loss * items.len() as f64));
                let _ = correct
                    .shallow_clone()
                    .g_add_(&logits.argmax(1, false).eq_tensor(&y).sum(Kind::Int64));
            });
            if (report_every > 0 && (i + 1) % report_every == 0) || i + 1 == plan.batches.len() {
                let mean = f64::try_from(&loss_sum)? / seen as f64;
                if !mean.is_finite() {
                    return Err(Error::NonFinite {
                        what: "training loss".into(),
                        location: format!("epoch {}, step {}", epoch + 1, i + 1),
                    });
                }
                progress(Progress::Running {
                    step: i + 1,
                    loss: mean,
                    acc: i64::try_from(&correct)? as f64 / seen as f64,
                });
            }
            progress(Progress::Step {
                step: i + 1,
                images_per_s: seen as f64 / t0.elapsed().as_secs_f64(),
            });
        }
        if let Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
        let train_seconds = t0.elapsed().as_secs_f64();
        let test = FeatureSet::extract(
            &self.net.model,
            &data.test,
            &self.norm,
            cfg.data.eval_batch_size,
        )?;
        let test_correct = i64::try_from(
            test.logits
                .argmax(1, false)
                .eq_tensor(&Tensor::from_slice(&data.test.labels))
                .sum(Kind::Int64),
        )?;
        let track = match &self.tracker {
            Some(t) if cfg.track.due(epoch + 1) => {
                Some(t.measure(&self.net.model, &test, &self.norm, cfg.data.eval_batch_size)?)
            }
            _ => None,
        };
        let entry = EpochLog {
            epoch: epoch + 1,
            lr,
            train_loss: f64::try_from(&loss_sum)? / seen as f64,
            train_acc: i64::try_from(&correct)? as f64 / seen as f64,
            test_acc: test_correct as f64 / data.test.len() as f64,
            seconds: t0.elapsed().as_secs_f64(),
            images_per_s: seen as f64 / train_seconds,
            track,
        };
        self.log.push(entry);
        // Order matters for resume: log, weights, then the state whose presence marks the
        // checkpoint complete. A kill in between makes resume redo this epoch.
        self.lock.write_log(&self.log)?;
        if cfg.checkpointed(epoch + 1) {
            self.lock
                .save_checkpoint(cfg, &self.net, self.sgd.state(), epoch + 1, self.steps)?;
        }
        progress(Progress::EpochEnd(self.log.last().expect("just pushed")));
        Ok(())
    }

    /// Writes summary.json.
    fn finish(self) -> Result<Summary> {
        let (cfg, log) = (&self.cfg, &self.log);
        let last = log
            .last()
            .ok_or_else(|| Error::run_dir(self.lock.dir.path(), "no epoch was trained"))?;
        let summary = Summary {
            provenance: Provenance::current(self.device),
            epochs: cfg.optim.epochs,
            final_test_acc: last.test_acc,
            final_train_loss: last.train_loss,
            total_seconds: log.iter().map(|l| l.seconds).sum(),
            mean_images_per_s: log.iter().map(|l| l.images_per_s).sum::<f64>() / log.len() as f64,
            train_size: self.data.train.len(),
            val_size: self.data.val.len(),
            test_size: self.data.test.len(),
            normalization: self.data.normalization.clone(),
            milestones: cfg.optim.resolved_milestones(),
            checkpoint: RunDir::new("").checkpoint_path(cfg.optim.epochs, false),
        };
        self.lock.write_summary(&summary)?;
        Ok(summary)
    }
}
