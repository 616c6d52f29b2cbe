//! The run configuration: serde structs with defaults; an unknown key anywhere is an error that
//! names it. Loaded from TOML, overridden by `key=value` pairs, validated in full when parsed
//! (before any run directory exists). Nothing here depends on the machine: the device is resolved
//! when a command runs (`device`), so a run trained on a GPU can be evaluated on a CPU.
use crate::data::{DataConfig, DatasetKind, OodSet};
use crate::device::{Compute, DeviceSpec, MAX_THREADS};
use crate::error::{Error, Result};
use crate::features::FeatureKind;
use crate::model::{MemoryFormat, ModelConfig, Net};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Everything a training run depends on. A seed and this config determine the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// Seed of initialisation, train/val split, shuffling and augmentation. Default 0.
    pub seed: u64,
    /// auto (CUDA when present) | cpu | cuda | cuda:N. Default auto.
    pub device: DeviceSpec,
    /// libtorch CPU threads; 0 = libtorch's default (one per core). Default 0, at most 1024.
    pub threads: usize,
    /// Write a checkpoint every k epochs (>= 1); the last epoch always gets one. Default 1.
    pub checkpoint_every: usize,
    /// auto | channels_last | contiguous: the memory layout of images, activations and conv
    /// weights. Results agree up to float rounding; bit-exact resumption needs the same one.
    /// Default auto: channels_last from width 8 and on CUDA, contiguous below width 8 on a CPU
    /// (the faster one, measured by benches/train_step.rs).
    pub memory_format: MemoryFormat,
    /// On a CUDA device, capture each training step's kernels once as a CUDA graph and replay
    /// it (train::graph): the same computation with one launch per step. Default false until
    /// it is measured on a GPU; an error on the CPU.
    pub cuda_graphs: bool,
    /// Start from this resume-state checkpoint (`*.state.safetensors`) instead of a random
    /// initialisation (the intervention's starting point). A relative path is relative to the
    /// run directory: an intervention group records its source's checkpoint that way, so that
    /// its study can move and be continued through any spelling of its path. Default none.
    pub init_from: Option<PathBuf>,
    pub model: ModelConfig,
    pub data: DataConfig,
    pub optim: OptimConfig,
    pub track: TrackConfig,
}

/// The training objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    /// Mean cross-entropy (SPEC 3).
    CrossEntropy,
    /// The NC loss of SPEC 7, on class-balanced batches.
    Nc,
}

/// Neural Collapse and OoD tracking during training: NC1-4 on (a class-balanced subset of) the
/// training split, GDA AUROC and top-N false positives of the test split against an OoD set,
/// added to the epoch's log line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrackConfig {
    /// Track every k epochs; 0 = off. Default 0.
    pub every: usize,
    /// Explicit 1-based epochs to track (e.g. log-spaced); used instead of `every` when non-empty.
    pub epochs: Vec<usize>,
    /// Size of the class-balanced training subset (chosen once from the seed); 0 = the whole
    /// training split. Default 0.
    pub subset: usize,
    /// OoD set for GDA AUROC and top-N false positives (registered or generated). Default "mnist".
    pub ood: OodSet,
    /// Features the NC measures and GDA use: auto (the head's input: normalised under L2, raw
    /// otherwise), raw or normalized. Recorded with every result. Default auto.
    pub features: FeatureKind,
}

impl Default for TrackConfig {
    fn default() -> Self {
        TrackConfig {
            every: 0,
            epochs: vec![],
            subset: 0,
            ood: OodSet::Data(DatasetKind::Mnist),
            features: FeatureKind::HeadInput,
        }
    }
}

impl TrackConfig {
    /// Whether 1-based `epoch` is tracked.
    pub fn due(&self, epoch: usize) -> bool {
        if self.epochs.is_empty() {
            self.every > 0 && epoch.is_multiple_of(self.every)
        } else {
            self.epochs.contains(&epoch)
        }
    }
    pub fn enabled(&self) -> bool {
        self.every > 0 || !self.epochs.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    /// Training epochs. Default 350 (DDU).
    pub epochs: usize,
    /// Mini-batch size. Default 128.
    pub batch_size: usize,
    /// Initial SGD learning rate. Default 0.1.
    pub lr: f64,
    /// SGD momentum (PyTorch semantics, dampening 0, no Nesterov). Default 0.9.
    pub momentum: f64,
    /// L2 weight decay on all parameters, added to the gradient. Default 5e-4.
    pub weight_decay: f64,
    /// Epochs (0-based counts of finished epochs) at which the lr is multiplied by `gamma`.
    /// Default: round(150/350 E) and round(250/350 E), DDU's proportions; the resolved list is
    /// written into the run's config.toml.
    pub milestones: Option<Vec<usize>>,
    /// Learning-rate factor at each milestone. Default 0.1.
    pub gamma: f64,
    /// cross_entropy | nc (SPEC 7; needs batch_size >= 2 x classes). Default cross_entropy.
    pub loss: Loss,
    /// fp32 | bf16: the arithmetic of training steps (evaluation is always fp32). Default fp32,
    /// the paper's.
    pub precision: Precision,
}

/// The arithmetic of a training step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// float32 throughout.
    #[default]
    Fp32,
    /// bfloat16 autocast for convolutions and matmuls (as `torch.autocast(dtype=torch.bfloat16)`)
    /// with float32 weights, SGD state, spectral-norm sigma, L2 normalisation and loss.
    Bf16,
}

impl Precision {
    /// The config's spelling.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        }
    }
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            seed: 0,
            device: DeviceSpec::Auto,
            threads: 0,
            checkpoint_every: 1,
            memory_format: MemoryFormat::default(),
            cuda_graphs: false,
            init_from: None,
            model: ModelConfig::default(),
            data: DataConfig::default(),
            optim: OptimConfig::default(),
            track: TrackConfig::default(),
        }
    }
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            epochs: 350,
            batch_size: 128,
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 5e-4,
            milestones: None,
            gamma: 0.1,
            loss: Loss::CrossEntropy,
            precision: Precision::Fp32,
        }
    }
}

impl OptimConfig {
    /// The milestones in force: the configured ones, or DDU's proportions of `epochs`
    /// (round(150/350 E), round(250/350 E)) without zeros and duplicates (SPEC 3: very short runs
    /// would otherwise drop the rate twice at once, or before the first epoch).
    pub fn resolved_milestones(&self) -> Vec<usize> {
        self.milestones.clone().unwrap_or_else(|| {
            let e = self.epochs as f64;
            let mut m: Vec<usize> = [150.0, 250.0]
                .iter()
                .map(|f| (e * f / 350.0).round() as usize)
                .filter(|&m| m > 0)
                .collect();
            m.dedup();
            m
        })
    }
    /// Learning rate of 0-based epoch `epoch` (PyTorch MultiStepLR stepped once per epoch).
    pub fn lr_at(&self, epoch: usize) -> f64 {
        let drops = self
            .resolved_milestones()
            .iter()
            .filter(|&&m| m <= epoch)
            .count();
        self.lr * self.gamma.powi(drops as i32)
    }
}

/// Typed values given beside a config (the command line's shorthands for `--set` pairs), each
/// replacing the configured one where given (`RunConfig::from_toml_given`).
#[derive(Debug, Clone, Default)]
pub struct Given {
    pub seed: Option<u64>,
    pub epochs: Option<usize>,
    pub data_root: Option<PathBuf>,
    pub compute: Compute,
}

impl RunConfig {
    /// Parses TOML text and applies `key=value` overrides (dotted keys, TOML values; a bare word
    /// is taken as a string), then validates the whole. Unknown keys are errors.
    pub fn from_toml(text: &str, overrides: &[String]) -> Result<RunConfig> {
        let cfg = RunConfig::parse(text, overrides)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// `from_toml` with the typed values `given` (a command line's shorthands) applied after the
    /// overrides, then validated; a relative `init_from`, given beside the config rather than
    /// recorded in a run directory, is made absolute (relative to the working directory).
    pub fn from_toml_given(text: &str, overrides: &[String], given: Given) -> Result<RunConfig> {
        let mut cfg = RunConfig::parse(text, overrides)?;
        cfg.seed = given.seed.unwrap_or(cfg.seed);
        cfg.optim.epochs = given.epochs.unwrap_or(cfg.optim.epochs);
        cfg.data.root = given.data_root.or(cfg.data.root);
        cfg.set_compute(given.compute);
        cfg.validate()?;
        if let Some(p) = &mut cfg.init_from {
            *p = std::path::absolute(&*p).map_err(|e| Error::config("init_from", e.to_string()))?;
        }
        Ok(cfg)
    }

    /// `from_toml` without the validation.
    fn parse(text: &str, overrides: &[String]) -> Result<RunConfig> {
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| Error::config("run config", e.to_string()))?;
        for o in overrides {
            let (key, value) = o
                .split_once('=')
                .ok_or_else(|| Error::config(o.clone(), "an override must look like key=value"))?;
            let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {value}"))
                .map(|mut t| t.remove("v").unwrap())
                .unwrap_or_else(|_| toml::Value::String(value.to_string()));
            let mut node = &mut table;
            let parts: Vec<&str> = key.trim().split('.').collect();
            for part in &parts[..parts.len() - 1] {
                node = node
                    .entry(part.to_string())
                    .or_insert_with(|| toml::Value::Table(Default::default()))
                    .as_table_mut()
                    .ok_or_else(|| Error::config(key, format!("{part} is not a section")))?;
            }
            node.insert(parts[parts.len() - 1].to_string(), value);
        }
        let cfg: RunConfig = table.try_into().map_err(|e: toml::de::Error| {
            // The key path ("in `model.width`") is in the Display text only, not in message().
            let text = e.to_string();
            let key = text
                .lines()
                .find_map(|l| l.strip_prefix("in `")?.strip_suffix('`'));
            Error::config(key.unwrap_or("run config"), e.message())
        })?;
        Ok(cfg)
    }

    pub fn from_file(path: &Path, overrides: &[String]) -> Result<RunConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_toml(&text, overrides).map_err(|e| match e {
            Error::InvalidConfig { field, reason } => {
                Error::config(format!("{}: {field}", path.display()), reason)
            }
            e => e,
        })
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a RunConfig always serialises")
    }

    pub fn validate(&self) -> Result<()> {
        let info = self.data.name.info();
        self.model.validate(info.channels, info.classes)?;
        let o = &self.optim;
        let checks: [(&str, bool, &str); 10] = [
            ("optim.epochs", o.epochs >= 1, "must be >= 1"),
            (
                "optim.batch_size",
                o.batch_size >= 2,
                "must be >= 2 (BatchNorm)",
            ),
            (
                "optim.lr",
                o.lr > 0.0 && o.lr.is_finite(),
                "must be a positive number",
            ),
            (
                "optim.momentum",
                (0.0..1.0).contains(&o.momentum),
                "must be in [0, 1)",
            ),
            (
                "optim.weight_decay",
                o.weight_decay >= 0.0 && o.weight_decay.is_finite(),
                "must be >= 0",
            ),
            (
                "optim.gamma",
                o.gamma > 0.0 && o.gamma <= 1.0,
                "must be in (0, 1]",
            ),
            (
                "data.val_fraction",
                (0.0..1.0).contains(&self.data.val_fraction),
                "must be in [0, 1)",
            ),
            (
                "checkpoint_every",
                self.checkpoint_every >= 1,
                "must be >= 1",
            ),
            (
                "threads",
                self.threads <= MAX_THREADS,
                "must be at most 1024",
            ),
            (
                "data.eval_batch_size",
                (1..=1 << 20).contains(&self.data.eval_batch_size),
                "must be in 1..=1048576",
            ),
        ];
        for (field, ok, reason) in checks {
            if !ok {
                return Err(Error::config(field, reason));
            }
        }
        let classes = info.classes;
        if o.loss == Loss::Nc && o.batch_size < 2 * classes {
            return Err(Error::config(
                "optim.batch_size",
                format!("the NC loss needs >= 2 samples of each of {classes} classes per batch"),
            ));
        }
        if o.batch_size > 1 << 20 {
            return Err(Error::config("optim.batch_size", "must be at most 1048576"));
        }
        if o.epochs > 1_000_000 {
            return Err(Error::config("optim.epochs", "must be at most 1000000"));
        }
        if o.loss == Loss::Nc && (self.model.feature_dim() as usize) < classes - 1 {
            return Err(Error::config(
                "model.width",
                format!(
                    "the NC loss needs a feature dimension of at least C - 1 = {}, the model has {}",
                    classes - 1,
                    self.model.feature_dim()
                ),
            ));
        }
        Ok(())
    }

    /// The dotted keys whose values differ between `self` and `other`, except `ignore` (keys or
    /// sections, e.g. "device" or "track").
    pub fn differences(&self, other: &RunConfig, ignore: &[&str]) -> Vec<String> {
        fn flatten(prefix: &str, t: &toml::Table, out: &mut Vec<(String, toml::Value)>) {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match v {
                    toml::Value::Table(t) => flatten(&key, t, out),
                    v => out.push((key, v.clone())),
                }
            }
        }
        let flat = |c: &RunConfig| {
            let mut out = vec![];
            flatten(
                "",
                &toml::Table::try_from(c).expect("a RunConfig serialises"),
                &mut out,
            );
            out.into_iter()
                .collect::<std::collections::BTreeMap<String, toml::Value>>()
        };
        let (a, b) = (flat(self), flat(other));
        let skip = |k: &str| {
            ignore
                .iter()
                .any(|i| k == *i || k.starts_with(&format!("{i}.")))
        };
        let mut keys: Vec<String> = a
            .keys()
            .chain(b.keys())
            .filter(|k| !skip(k) && a.get(*k) != b.get(*k))
            .cloned()
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// Whether a run of this config writes a checkpoint at 1-based `epoch`: every
    /// `checkpoint_every` epochs, and always at its last.
    pub fn checkpointed(&self, epoch: usize) -> bool {
        epoch.is_multiple_of(self.checkpoint_every) || epoch == self.optim.epochs
    }

    /// Computes where `compute` says: its given device and threads replace the configured ones
    /// (`Compute::over`).
    pub fn set_compute(&mut self, compute: Compute) {
        (self.device, self.threads) = compute.over(self.device, self.threads);
    }

    /// The network this config trains: its model for its ID set's images and classes, in its
    /// memory format, the weights drawn with its seed, on `device`.
    pub fn net(&self, device: tch::Device) -> Result<Net> {
        let info = self.data.name.info();
        Net::new(&self.model, self.memory_format, &info, self.seed, device)
    }

    /// The directory name a run gets when none is given: DATA-ARCH-wWIDTH-(l2|nol2)-sSEED.
    pub fn run_name(&self) -> String {
        format!(
            "{}-{}-w{}-{}-s{}",
            self.data.name,
            self.model.arch.name(),
            self.model.width,
            if self.model.l2 { "l2" } else { "nol2" },
            self.seed
        )
    }

    /// Fixes what a new run records: the milestones actually used and the data root as an
    /// absolute path (so the run can be evaluated from any working directory).
    pub fn resolve(&mut self) -> Result<()> {
        self.optim.milestones = Some(self.optim.resolved_milestones());
        let root = self
            .data
            .root
            .clone()
            .unwrap_or_else(crate::data::default_root);
        self.data.root = Some(std::path::absolute(&root).map_err(|e| Error::io(&root, e))?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_overrides_and_unknown_keys() {
        let c = RunConfig::from_toml("", &[]).unwrap();
        assert_eq!(c, RunConfig::default());
        let c = RunConfig::from_toml(
            "[model]\nl2 = true\n",
            &["optim.epochs=10".into(), "data.name=cifar10".into()],
        )
        .unwrap();
        assert!(c.model.l2);
        assert_eq!(c.optim.epochs, 10);
        assert_eq!(c.data.name, DatasetKind::Cifar10);
        assert_eq!(c.optim.resolved_milestones(), vec![4, 7]);
        let e = RunConfig::from_toml("[model]\nwidht = 3\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("widht"), "{e}");
        let e = RunConfig::from_toml("", &["optim.lrr=1".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("lrr"), "{e}");
        let e = RunConfig::from_toml("", &["data.name=imagenet".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("imagenet"), "{e}");
        let e = RunConfig::from_toml("", &["optim.epochs=0".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("optim.epochs"), "{e}");
        let t = RunConfig::from_toml("[track]\nfeatures = \"raw\"\nevery = 2\n", &[]).unwrap();
        assert_eq!(t.track.features, FeatureKind::Raw);
        assert!(t.track.due(4) && !t.track.due(3));
        let back = RunConfig::from_toml(&c.to_toml(), &[]).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn multistep_schedule_matches_pytorch() {
        let o = OptimConfig {
            epochs: 350,
            ..Default::default()
        };
        assert_eq!(o.resolved_milestones(), vec![150, 250]);
        assert_eq!(o.lr_at(149), 0.1);
        // Very short runs: zeros and duplicates are dropped.
        for (epochs, want) in [(1, vec![1]), (2, vec![1]), (3, vec![1, 2]), (4, vec![2, 3])] {
            let o = OptimConfig {
                epochs,
                ..Default::default()
            };
            assert_eq!(o.resolved_milestones(), want, "{epochs} epochs");
        }
        assert!((o.lr_at(150) - 0.01).abs() < 1e-15);
        assert!((o.lr_at(250) - 0.001).abs() < 1e-15);
    }
}
