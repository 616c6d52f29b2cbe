//! The NC-loss intervention of SPEC 7: two groups continue a run from one of its checkpoints,
//! one with cross-entropy (control), one with the NC loss, each in its own run directory.
use super::{Progress, Start, run};
use crate::config::Loss;
use crate::device::DeviceSpec;
use crate::error::{Error, Result};
use crate::run::RunDir;
use std::path::{Path, PathBuf};

/// A group of the SPEC 7 intervention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// Cross-entropy.
    Control,
    /// The NC loss on class-balanced batches.
    Nc,
}

impl Group {
    pub fn name(self) -> &'static str {
        match self {
            Group::Control => "control",
            Group::Nc => "nc",
        }
    }
}

impl std::str::FromStr for Group {
    type Err = Error;
    fn from_str(s: &str) -> Result<Group> {
        match s {
            "control" => Ok(Group::Control),
            "nc" => Ok(Group::Nc),
            _ => Err(Error::config(
                "group",
                format!("{s}: expected control or nc"),
            )),
        }
    }
}

/// What the intervention does; see `intervene`.
#[derive(Debug, Clone, PartialEq)]
pub struct Intervention {
    /// The source run's checkpoint epoch both groups start from.
    pub from_epoch: usize,
    /// Epochs each group trains.
    pub epochs: usize,
    /// Epochs after which the learning rate steps down x0.1.
    pub drop_after: usize,
    pub groups: Vec<Group>,
}

/// The intervention of SPEC 7 from a run's checkpoint at `from_epoch`: each group starts from that
/// state (fresh momentum buffers) with one tenth of the schedule's learning rate there, stepped
/// down x0.1 after `drop_after` epochs, for `epochs` epochs, tracking every epoch, in
/// RUN_DIR/intervene-eNNNN/{control,nc}. An existing group directory is resumed. Returns the
/// directories of `groups`, in order.
pub fn intervene(
    dir: &Path,
    plan: &Intervention,
    device: Option<DeviceSpec>,
    threads: Option<usize>,
    progress: &mut dyn FnMut(&str, Progress),
) -> Result<Vec<PathBuf>> {
    let Intervention {
        from_epoch,
        epochs,
        drop_after,
        ref groups,
    } = *plan;
    if from_epoch == 0 {
        return Err(Error::config("from_epoch", "must be >= 1"));
    }
    let source = RunDir::new(dir);
    let base = source.config()?;
    let state = source.checkpoint_path(source.checkpoint_epoch(from_epoch)?, true);
    let out = dir.join(format!("intervene-e{from_epoch:04}"));
    let mut dirs = vec![];
    for &group in groups {
        let (name, loss) = match group {
            Group::Control => (group.name(), Loss::CrossEntropy),
            Group::Nc => (group.name(), Loss::Nc),
        };
        let mut cfg = base.clone();
        cfg.device = device.unwrap_or(cfg.device);
        cfg.threads = threads.unwrap_or(cfg.threads);
        cfg.init_from = Some(state.clone());
        cfg.optim.lr = base.optim.lr_at(from_epoch) / 10.0;
        cfg.optim.milestones = Some(vec![drop_after]);
        cfg.optim.epochs = epochs;
        cfg.optim.loss = loss;
        (cfg.track.every, cfg.track.epochs) = (1, vec![]); // SPEC 7 tracks every epoch
        let d = out.join(name);
        let group_dir = RunDir::new(&d);
        let start = if group_dir.exists() {
            // An existing group is continued only if it is this intervention.
            let changed = group_dir.config()?.differences(
                &cfg,
                &["device", "threads", "data.root", "data.eval_batch_size"],
            );
            if !changed.is_empty() {
                return Err(Error::run_dir(
                    &d,
                    format!(
                        "holds this group from an intervention with other settings ({}); remove it to run this one",
                        changed.join(", ")
                    ),
                ));
            }
            Start::Resume {
                epochs: None,
                device,
                threads,
            }
        } else {
            Start::New(Box::new(cfg))
        };
        run(&d, start, &mut |p| progress(name, p))?;
        dirs.push(d);
    }
    Ok(dirs)
}
