//! The NC-loss intervention of SPEC 7: two groups continue a run from one of its checkpoints,
//! one with cross-entropy (control), one with the NC loss, each in its own run directory.
use super::{Progress, Start, run};
use crate::config::{Loss, RunConfig};
use crate::device::Compute;
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

/// Where `group` of the intervention from `source`'s epoch `from_epoch` trains: two levels below
/// the source run (`SOURCE_FROM_GROUP` goes back up).
pub fn group_dir(source: &Path, from_epoch: usize, group: Group) -> PathBuf {
    source
        .join(format!("intervene-e{from_epoch:04}"))
        .join(group.name())
}

/// The source run's directory seen from a group's (`group_dir`).
const SOURCE_FROM_GROUP: &str = "../..";

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

/// The configuration of `group` of the intervention `plan` from a run configured as `base`, starting
/// from the resume state `init_from`: one tenth of the schedule's learning rate at the start
/// epoch, x0.1 after `drop_after` epochs, the group's loss, tracking every epoch (SPEC 7).
pub fn group_config(
    base: &RunConfig,
    plan: &Intervention,
    group: Group,
    init_from: Option<PathBuf>,
) -> RunConfig {
    let mut cfg = base.clone();
    cfg.init_from = init_from;
    cfg.optim.lr = base.optim.lr_at(plan.from_epoch) / 10.0;
    cfg.optim.milestones = Some(vec![plan.drop_after]);
    cfg.optim.epochs = plan.epochs;
    cfg.optim.loss = match group {
        Group::Control => Loss::CrossEntropy,
        Group::Nc => Loss::Nc,
    };
    (cfg.track.every, cfg.track.epochs) = (1, vec![]);
    cfg
}

/// The intervention of SPEC 7 from a run's checkpoint at `from_epoch`: each group starts from that
/// state (fresh momentum buffers) with one tenth of the schedule's learning rate there, stepped
/// down x0.1 after `drop_after` epochs, for `epochs` epochs, tracking every epoch, in
/// RUN_DIR/intervene-eNNNN/{control,nc}, computing where `compute` says. An existing group
/// directory is resumed. Returns the directories of `groups`, in order.
pub fn intervene(
    dir: &Path,
    plan: &Intervention,
    compute: Compute,
    progress: &mut dyn FnMut(&str, Progress),
) -> Result<Vec<PathBuf>> {
    let Intervention {
        from_epoch,
        ref groups,
        ..
    } = *plan;
    if from_epoch == 0 {
        return Err(Error::config("from_epoch", "must be >= 1"));
    }
    let source = RunDir::new(dir);
    let base = source.config()?;
    // Recorded relative to the group's directory, not as this process spells `dir`: the same
    // intervention reached through another path (a moved study, another working directory, the
    // absolute paths of SLURM jobs) has the same config and writes the same checkpoints.
    let epoch = source.checkpoint_epoch(from_epoch)?;
    let state = RunDir::new(SOURCE_FROM_GROUP).checkpoint_path(epoch, true);
    // Every group's configuration is checked before any group trains.
    let configs = groups
        .iter()
        .map(|&g| {
            let mut cfg = group_config(&base, plan, g, Some(state.clone()));
            cfg.set_compute(compute);
            cfg.validate().map(|()| cfg)
        })
        .collect::<Result<Vec<_>>>()?;

    let mut dirs = vec![];
    for (&group, cfg) in groups.iter().zip(configs) {
        let name = group.name();
        let d = group_dir(dir, from_epoch, group);
        let existing = RunDir::new(&d);
        let start = if existing.exists() {
            // An existing group is continued only if it is this intervention.
            let changed = existing.config()?.differences(
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
                compute,
            }
        } else {
            Start::New(Box::new(cfg))
        };
        run(&d, start, 0, &mut |p| progress(name, p))?;
        dirs.push(d);
    }
    Ok(dirs)
}
