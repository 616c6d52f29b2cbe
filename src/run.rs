//! The run directory, the one owner of its layout: config.toml, log.jsonl, summary.json,
//! checkpoints/epoch-NNNN{,.state}.safetensors, eval/epoch-NNNN.{json,md} and run.lock.
//!
//! Reading needs only a `RunDir`; writing needs a `RunLock`, which holds run.lock for as long as it
//! lives (released by the OS if the process dies), so two processes never write one run. Every
//! file is written atomically (`atomic`); taking the lock removes temporary files a killed writer
//! left behind.
use crate::atomic;
use crate::checkpoint::{self, Metadata};
use crate::collapse::Collapse;
use crate::config::RunConfig;
use crate::data::Normalization;
use crate::error::{Error, Result};
use crate::model::Net;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

const CONFIG_FILE: &str = "config.toml";
const LOG_FILE: &str = "log.jsonl";
const SUMMARY_FILE: &str = "summary.json";
const LOCK_FILE: &str = "run.lock";
const CHECKPOINTS: &str = "checkpoints";
const EVAL: &str = "eval";
/// The ending of a checkpoint's resume state, beside its weights' `.safetensors`.
const STATE_SUFFIX: &str = ".state.safetensors";

/// Where a result came from: ncood's version and commit, and where it computed. Shared by the
/// config header, summary.json and evaluation results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    pub ncood_version: String,
    pub git_commit: String,
    pub device: String,
    pub threads: i32,
}

impl Provenance {
    /// This binary on `device` with libtorch's current thread count.
    pub fn current(device: tch::Device) -> Provenance {
        Provenance {
            ncood_version: env!("CARGO_PKG_VERSION").to_string(),
            git_commit: option_env!("NCOOD_GIT_COMMIT")
                .unwrap_or("unknown")
                .to_string(),
            device: format!("{device:?}"),
            threads: tch::get_num_threads(),
        }
    }
}

/// What one tracked epoch adds to its log line (`train::track`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tracked {
    /// NC1-4 on the tracked features (`nc.features` names them).
    pub nc: Collapse,
    /// NC1-4 on the raw (pre-normalisation) features too, when the tracked ones are the
    /// normalised ones: an L2 model's collapse compared like for like with a no-L2 model's (SPEC
    /// 8, C6). Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nc_raw: Option<Collapse>,
    /// GDA (fitted on the tracked training features) AUROC, test split vs `ood`.
    pub gda_auroc: f64,
    pub topn_false_positives: usize,
    pub ood: String,
    /// Training images the NC measures and the GDA fit used.
    pub subset: usize,
    /// Seconds the tracking added (it reuses the epoch's test-split pass).
    pub seconds: f64,
}

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
    pub track: Option<Tracked>,
}

/// The run's final record, summary.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    #[serde(flatten)]
    pub provenance: Provenance,
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
    /// The final weights, relative to the run directory (which may move).
    pub checkpoint: PathBuf,
}

/// Config fields that may differ between the processes of one run (they do not change what is
/// trained): the epoch count (over-training raises it), where it computes, where the data is.
pub const PER_PROCESS: &[&str] = &[
    "optim.epochs",
    "device",
    "threads",
    "data.root",
    "data.eval_batch_size",
];

/// A resume state: the checkpoint's tensors (model and optimiser) and step count.
pub struct State {
    pub tensors: std::collections::HashMap<String, tch::Tensor>,
    pub steps: i64,
}

/// A run directory, for reading.
#[derive(Debug, Clone)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    pub fn new(path: impl Into<PathBuf>) -> RunDir {
        RunDir { path: path.into() }
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn config_path(&self) -> PathBuf {
        self.path.join(CONFIG_FILE)
    }
    pub fn log_path(&self) -> PathBuf {
        self.path.join(LOG_FILE)
    }
    pub fn summary_path(&self) -> PathBuf {
        self.path.join(SUMMARY_FILE)
    }
    /// A path a run records relative to its directory (absolute ones as they are), with `..`
    /// taken lexically: the directory may not exist yet (a new run reads its `init_from` first).
    pub fn resolve(&self, recorded: &Path) -> PathBuf {
        let mut out = self.path.clone();
        for c in recorded.components() {
            match c {
                std::path::Component::ParentDir if out.file_name().is_some() => {
                    out.pop();
                }
                std::path::Component::CurDir => {}
                c => out.push(c),
            }
        }
        out
    }

    /// Whether the directory holds a run (its config).
    pub fn exists(&self) -> bool {
        self.config_path().exists()
    }

    /// Whether the directory holds any file of a run (config, log, summary or a checkpoint): a
    /// new run must not start there, or stale checkpoints would win on resume.
    pub fn holds_run_files(&self) -> bool {
        let any_checkpoint = std::fs::read_dir(self.path.join(CHECKPOINTS))
            .map(|mut d| {
                d.any(|e| e.is_ok_and(|e| !e.file_name().to_string_lossy().starts_with('.')))
            })
            .unwrap_or(false);
        self.exists() || self.log_path().exists() || self.summary_path().exists() || any_checkpoint
    }

    /// Epoch `e`'s checkpoint: PyTorch-layout weights, or (`state`) everything resume needs.
    pub fn checkpoint_path(&self, epoch: usize, state: bool) -> PathBuf {
        self.path.join(CHECKPOINTS).join(format!(
            "epoch-{epoch:04}{}",
            if state { STATE_SUFFIX } else { ".safetensors" }
        ))
    }

    /// Epoch `e`'s evaluation result, `ext` json or md.
    pub fn eval_path(&self, epoch: usize, ext: &str) -> PathBuf {
        self.path.join(EVAL).join(format!("epoch-{epoch:04}.{ext}"))
    }

    /// The epochs with an evaluation result (`eval/epoch-NNNN.json`), in order; other files in
    /// eval/ (logs, tables, a copied note) are not results.
    pub fn evaluated_epochs(&self) -> Result<Vec<usize>> {
        let dir = self.path.join(EVAL);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(vec![]);
        };
        let mut epochs = vec![];
        for e in entries {
            let name = e.map_err(|e| Error::io(&dir, e))?.file_name();
            let epoch = name.to_str().and_then(|n| {
                n.strip_prefix("epoch-")?
                    .strip_suffix(".json")?
                    .parse()
                    .ok()
            });
            // Exactly the name `eval_path` gives (not epoch-1.json or epoch-+001.json).
            if let Some(e) = epoch
                && self.eval_path(e, "json").file_name() == Some(name.as_os_str())
            {
                epochs.push(e);
            }
        }
        epochs.sort_unstable();
        Ok(epochs)
    }

    /// The latest epoch with a complete resume state (0 if none).
    pub fn latest_checkpoint(&self) -> Result<usize> {
        let ck = self.path.join(CHECKPOINTS);
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

    /// The run's configuration; a missing config says that this is not a run directory.
    pub fn config(&self) -> Result<RunConfig> {
        if !self.exists() {
            return Err(Error::run_dir(
                &self.path,
                "holds no run (no config.toml): not a run directory, or training never started",
            ));
        }
        RunConfig::from_file(&self.config_path(), &[])
    }

    pub fn log(&self) -> Result<Vec<EpochLog>> {
        let path = self.log_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(Error::io(&path, e)),
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

    /// Resolves `epoch` (0 = the latest checkpoint) to a checkpointed epoch.
    pub fn checkpoint_epoch(&self, epoch: usize) -> Result<usize> {
        let e = if epoch == 0 {
            self.latest_checkpoint()?
        } else {
            epoch
        };
        if e == 0 {
            return Err(Error::run_dir(&self.path, "has no checkpoint yet"));
        }
        if !self.checkpoint_path(e, true).exists() {
            return Err(Error::run_dir(
                &self.path,
                format!("has no checkpoint of epoch {e}"),
            ));
        }
        Ok(e)
    }

    /// The run's model at `epoch` (0 = latest) on `device`: config, network, epoch.
    pub fn load_net(&self, epoch: usize, device: tch::Device) -> Result<(RunConfig, Net, usize)> {
        let cfg = self.config()?;
        let epoch = self.checkpoint_epoch(epoch)?;
        let net = cfg.net(device)?;
        self.load_state(&cfg, &net, epoch)?;
        Ok((cfg, net, epoch))
    }

    /// Loads epoch `epoch`'s resume state into `net` after checking that it was trained with
    /// `cfg` (up to what may change between processes: epochs, device, threads, data root and
    /// evaluation batch size); returns its tensors (for the optimiser) and the step count.
    pub fn load_state(&self, cfg: &RunConfig, net: &Net, epoch: usize) -> Result<State> {
        let path = self.checkpoint_path(epoch, true);
        let (tensors, meta) = checkpoint::read(&path)?;
        let recorded = recorded_config(&path, &meta)?;
        let changed = cfg.differences(&recorded, PER_PROCESS);
        if !changed.is_empty() {
            return Err(Error::run_dir(
                &self.path,
                format!(
                    "config.toml differs from the configuration {} was trained with, in {}",
                    path.display(),
                    changed.join(", ")
                ),
            ));
        }
        checkpoint::load_into(net.vs.variables(), &tensors, &path)?;
        let steps = meta
            .get("steps")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::bad_file(&path, "metadata has no valid step count"))?;
        Ok(State { tensors, steps })
    }

    /// Takes the lock of a run that exists (one with a config).
    pub fn lock_existing(&self) -> Result<RunLock> {
        self.config()?;
        self.lock()
    }

    /// Takes the run's lock (creating the directory), then removes stale temporary files.
    pub fn lock(&self) -> Result<RunLock> {
        for d in [self.path.clone(), self.path.join(CHECKPOINTS)] {
            std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
        }
        let lock = atomic::lock(&self.path.join(LOCK_FILE))?.map_err(|holder| {
            Error::run_dir(
                &self.path,
                format!("another ncood process is writing this run (run.lock is held by {holder})"),
            )
        })?;
        for d in [
            &self.path,
            &self.path.join(CHECKPOINTS),
            &self.path.join(EVAL),
        ] {
            atomic::remove_stale_temps(d)?;
        }
        Ok(RunLock {
            dir: self.clone(),
            _lock: lock,
        })
    }
}

/// A run directory held for writing.
pub struct RunLock {
    pub dir: RunDir,
    _lock: atomic::Lock,
}

impl RunLock {
    /// config.toml: the resolved config under a header naming the ncood version and commit.
    pub fn write_config(&self, cfg: &RunConfig) -> Result<()> {
        let p = Provenance::current(tch::Device::Cpu);
        let header = format!(
            "# ncood {} (commit {}): resolved run configuration\n",
            p.ncood_version, p.git_commit
        );
        atomic::write(
            &self.dir.config_path(),
            (header + &cfg.to_toml()).as_bytes(),
        )
    }

    pub fn write_log(&self, log: &[EpochLog]) -> Result<()> {
        let lines: String = log
            .iter()
            .map(|l| serde_json::to_string(l).expect("plain data") + "\n")
            .collect();
        atomic::write(&self.dir.log_path(), lines.as_bytes())
    }

    pub fn write_summary(&self, s: &Summary) -> Result<()> {
        atomic::write_json(&self.dir.summary_path(), s)
    }

    /// Writes epoch `epoch`'s checkpoint: the PyTorch-layout weights, then the resume state
    /// (model variables and `extra`, e.g. the optimiser's buffers), whose presence marks the
    /// checkpoint complete.
    pub fn save_checkpoint(
        &self,
        cfg: &RunConfig,
        net: &Net,
        extra: Vec<(String, tch::Tensor)>,
        epoch: usize,
        steps: i64,
    ) -> Result<()> {
        let meta: Metadata = [
            ("epoch".to_string(), epoch.to_string()),
            ("steps".to_string(), steps.to_string()),
            ("config".to_string(), cfg.to_toml()),
            (
                "ncood_version".to_string(),
                env!("CARGO_PKG_VERSION").to_string(),
            ),
        ]
        .into();
        checkpoint::write(
            &self.dir.checkpoint_path(epoch, false),
            &net.model.pytorch_state(&net.vs, steps),
            &meta,
        )?;
        let mut state: Vec<(String, tch::Tensor)> = net.vs.variables().into_iter().collect();
        state.extend(extra);
        checkpoint::write(&self.dir.checkpoint_path(epoch, true), &state, &meta)
    }

    /// Writes an evaluation result (`eval/epoch-NNNN.json`) and its table (`.md`).
    pub fn write_eval(&self, epoch: usize, result: &impl Serialize, md: &str) -> Result<()> {
        let dir = self.dir.path.join(EVAL);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        atomic::write_json(&self.dir.eval_path(epoch, "json"), result)?;
        atomic::write(&self.dir.eval_path(epoch, "md"), md.as_bytes())
    }
}

/// The run configuration a checkpoint was trained with, from its metadata (`path` names it in
/// errors).
pub fn recorded_config(path: &Path, meta: &Metadata) -> Result<RunConfig> {
    let text = meta
        .get("config")
        .ok_or_else(|| Error::bad_file(path, "metadata has no config: not an ncood checkpoint"))?;
    RunConfig::from_toml(text, &[])
        .map_err(|e| Error::bad_file(path, format!("its recorded config: {e}")))
}

/// A weights checkpoint (`epoch-NNNN.safetensors`, PyTorch's layout): its tensors (CPU) and the
/// run configuration it was trained with. A resume state (`.state.safetensors`: ncood's own
/// variable names and the optimiser's buffers) is refused by name, since its tensors fit no
/// PyTorch model.
pub fn read_weights(
    path: &Path,
) -> Result<(std::collections::HashMap<String, tch::Tensor>, RunConfig)> {
    if path.to_string_lossy().ends_with(STATE_SUFFIX) {
        return Err(Error::bad_file(
            path,
            format!(
                "a resume state, not the weights: load the epoch-NNNN.safetensors beside it, without {STATE_SUFFIX:?}"
            ),
        ));
    }
    let (tensors, meta) = checkpoint::read(path)?;
    Ok((tensors, recorded_config(path, &meta)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_paths_resolve_against_the_run_directory() {
        let group = RunDir::new("out/runs/a/s0/intervene-e0001/nc");
        let state = RunDir::new("../..").checkpoint_path(1, true);
        assert_eq!(
            group.resolve(&state),
            Path::new("out/runs/a/s0/checkpoints/epoch-0001.state.safetensors")
        );
        assert_eq!(group.resolve(Path::new("/x/y")), Path::new("/x/y"));
        assert_eq!(
            RunDir::new("nc").resolve(Path::new("../../c")),
            Path::new("../c")
        );
    }
}
