//! The study file: a base run configuration, variants of it (overrides and seeds), runs derived
//! from a variant's checkpoints, and what to evaluate. Every field has a default, unknown keys are
//! errors naming them, and everything is validated (every run config resolved) before anything
//! runs.
use crate::config::RunConfig;
use crate::data::OodSet;
use crate::error::{Error, Result};
use crate::train::Group;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct StudySpec {
    /// Run configuration fields shared by every variant (as in a run config file).
    pub base: toml::Table,
    #[serde(rename = "variant")]
    pub variants: Vec<Variant>,
    /// Variants continued to more epochs in their own run directories.
    #[serde(rename = "overtrain")]
    pub overtrains: Vec<Overtrain>,
    /// SPEC 7 interventions from a variant's checkpoint.
    #[serde(rename = "intervention")]
    pub interventions: Vec<InterventionSpec>,
    pub eval: EvalSpec,
    /// Which runs play the paper's parts, for the tables and claims (SPEC 8): one `[[roles]]` per
    /// architecture (the paper's ResNet18 and ResNet50 blocks); unset parts are not judged.
    pub roles: Vec<Roles>,
    /// Settings of `--executor slurm` (flags override them).
    pub slurm: SlurmSpec,
}

/// The paper's design in run names (variants, over-trainings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Roles {
    /// What the tables call this block (e.g. "ResNet18"); default: the architecture of `l2_short`.
    pub label: String,
    /// Variant: L2 at the short schedule (paper: 60 epochs for ResNet18).
    pub l2_short: Option<String>,
    /// Variant: no L2 at the long schedule (DDU: 350 epochs).
    pub nol2_long: Option<String>,
    /// Variant: no L2 at the short schedule (the ablation, Table 2).
    pub nol2_short: Option<String>,
    /// Variant: L2 at the long schedule (Table 6).
    pub l2_long: Option<String>,
    /// Over-training of `l2_short` (paper: 60 -> 150 epochs; Figure 5, C10).
    pub l2_overtrain: Option<String>,
    /// Over-training of `nol2_long` (paper: 350 -> 500 epochs; Figure 5, C10).
    pub nol2_overtrain: Option<String>,
}

impl Roles {
    /// The trained models this block names (its variants, not the over-trainings), in the paper's
    /// order: L2 short, no-L2 long, no-L2 short, L2 long.
    pub fn models(&self) -> Vec<&String> {
        [
            &self.l2_short,
            &self.nol2_long,
            &self.nol2_short,
            &self.l2_long,
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// The variants and over-trainings this block names, with the field naming each.
    pub fn named(&self) -> Vec<(&'static str, &str)> {
        [
            ("l2_short", &self.l2_short),
            ("nol2_long", &self.nol2_long),
            ("nol2_short", &self.nol2_short),
            ("l2_long", &self.l2_long),
            ("l2_overtrain", &self.l2_overtrain),
            ("nol2_overtrain", &self.nol2_overtrain),
        ]
        .into_iter()
        .filter_map(|(f, n)| n.as_deref().map(|n| (f, n)))
        .collect()
    }
}

/// `#SBATCH` settings of the SLURM executor; empty fields are left to the cluster's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SlurmSpec {
    pub partition: String,
    /// Time limit per task, in SLURM's format (e.g. "04:00:00").
    pub time: String,
    /// Memory per task (e.g. "8G").
    pub mem: String,
    /// CPUs per task (0 = 1).
    pub cpus_per_task: usize,
    /// GPUs per task (`--gres=gpu:N`; 0 = none).
    pub gpus: usize,
    /// Further `#SBATCH` lines, without the prefix (e.g. "--account=abc").
    pub extra: Vec<String>,
}

/// Changes to a study's `[slurm]` settings for one submission (the command line's): each given
/// value replaces the study's; `extra` lines are added to its own.
#[derive(Debug, Clone, Default)]
pub struct SlurmOverrides {
    pub partition: Option<String>,
    pub time: Option<String>,
    pub mem: Option<String>,
    pub gpus: Option<usize>,
    pub extra: Vec<String>,
}

impl SlurmSpec {
    /// These settings with `o` applied.
    pub fn with_overrides(&self, o: &SlurmOverrides) -> SlurmSpec {
        let given = |o: &Option<String>, own: &String| o.as_ref().unwrap_or(own).clone();
        SlurmSpec {
            partition: given(&o.partition, &self.partition),
            time: given(&o.time, &self.time),
            mem: given(&o.mem, &self.mem),
            cpus_per_task: self.cpus_per_task,
            gpus: o.gpus.unwrap_or(self.gpus),
            extra: self.extra.iter().chain(&o.extra).cloned().collect(),
        }
    }

    /// Each value becomes one `#SBATCH` line of a script: a newline or other control character
    /// would start a line of its own (a command), and an extra line must be an sbatch option.
    pub fn check(&self) -> Result<()> {
        let fields = [
            ("partition", &self.partition),
            ("time", &self.time),
            ("mem", &self.mem),
        ];
        let extra = self.extra.iter().map(|e| ("extra", e));
        for (field, value) in fields.into_iter().chain(extra) {
            if value.chars().any(char::is_control) {
                return Err(Error::config(
                    format!("slurm.{field}"),
                    format!(
                        "{value:?} holds a control character (a line break would end the #SBATCH line)"
                    ),
                ));
            }
        }
        if let Some(e) = self.extra.iter().find(|e| !e.starts_with('-')) {
            return Err(Error::config(
                "slurm.extra",
                format!("{e:?} is not an sbatch option (e.g. \"--account=abc\")"),
            ));
        }
        Ok(())
    }
}

/// A variant: the base with `set` applied (dotted keys, TOML values), for each seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Variant {
    /// Letters, digits, '-' and '_'; names the variant's folder.
    pub name: String,
    pub seeds: Vec<u64>,
    pub set: BTreeMap<String, toml::Value>,
}

/// Continue every run of `source` to `epochs` epochs (its schedule as recorded).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Overtrain {
    pub name: String,
    pub source: String,
    pub epochs: usize,
}

/// The SPEC 7 intervention from the runs of `source` (the seeds given, default all).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InterventionSpec {
    pub source: String,
    pub seeds: Vec<u64>,
    pub from_epoch: usize,
    pub epochs: usize,
    pub drop_after: usize,
    pub groups: Vec<String>,
}

impl Default for InterventionSpec {
    fn default() -> Self {
        InterventionSpec {
            source: String::new(),
            seeds: vec![],
            from_epoch: 0,
            epochs: 20,
            drop_after: 10,
            groups: vec!["control".into(), "nc".into()],
        }
    }
}

/// Full evaluations (`ncood eval`): every run's last epoch, plus `epochs` where a run has them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct EvalSpec {
    /// OoD sets; empty = the paper's sets for the ID data plus the generated ones.
    pub ood: Vec<OodSet>,
    pub epochs: Vec<usize>,
}

fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::config(
            what,
            format!("'{name}': names are non-empty letters, digits, '-' and '_'"),
        ))
    }
}

impl StudySpec {
    /// Parses and validates a study file's text.
    pub fn from_toml(text: &str) -> Result<StudySpec> {
        let spec: StudySpec =
            toml::from_str(text).map_err(|e| Error::config("study", e.message().to_string()))?;
        spec.validate()?;
        Ok(spec)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a study serialises")
    }

    /// The run config of `variant` for `seed`, validated.
    pub fn run_config(&self, variant: &Variant, seed: u64) -> Result<RunConfig> {
        let base = toml::to_string(&self.base).expect("a table serialises");
        let mut overrides: Vec<String> = variant
            .set
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        overrides.push(format!("seed={seed}"));
        RunConfig::from_toml(&base, &overrides).map_err(|e| match e {
            Error::InvalidConfig { field, reason } => {
                Error::config(format!("variant {}: {field}", variant.name), reason)
            }
            e => e,
        })
    }

    pub fn variant(&self, name: &str) -> Option<&Variant> {
        self.variants.iter().find(|v| v.name == name)
    }

    /// Everything the plan relies on: names unique and well formed (the intervention groups'
    /// derived names included), every variant's config valid for every seed, seeds given only
    /// as `seeds`, sources that exist, epochs that fit and are checkpointed where they are
    /// evaluated or intervened from.
    pub fn validate(&self) -> Result<()> {
        self.slurm.check()?;
        if self.variants.is_empty() {
            return Err(Error::config(
                "variant",
                "a study needs at least one variant",
            ));
        }
        // A seed set as a setting would be overridden by each run's seed from `seeds`.
        if self.base.contains_key("seed") {
            return Err(Error::config(
                "base.seed",
                "a study's seeds are each variant's `seeds` list, not a setting",
            ));
        }
        // Each run's name and who gives it: every name must be one run's (the report keys
        // results by name and seed).
        let mut names: Vec<(String, String)> = vec![];
        for v in &self.variants {
            check_name("variant.name", &v.name)?;
            names.push((v.name.clone(), format!("variant {}", v.name)));
            if let Some(seed) = v.set.get("seed") {
                return Err(Error::config(
                    format!("variant {}: set.seed", v.name),
                    format!(
                        "a variant's seeds are its `seeds` list (seeds = [{seed}]), not a setting"
                    ),
                ));
            }
            if v.seeds.is_empty() {
                return Err(Error::config(
                    format!("variant {}: seeds", v.name),
                    "no seeds",
                ));
            }
            let mut seeds = v.seeds.clone();
            seeds.sort_unstable();
            seeds.dedup();
            if seeds.len() != v.seeds.len() {
                return Err(Error::config(
                    format!("variant {}: seeds", v.name),
                    "a seed is listed twice",
                ));
            }
            for &s in &v.seeds {
                self.run_config(v, s)?;
            }
        }
        for o in &self.overtrains {
            check_name("overtrain.name", &o.name)?;
            names.push((o.name.clone(), format!("over-training {}", o.name)));
            let src = self.source(&o.source, "overtrain.source")?;
            let e = self.run_config(src, src.seeds[0])?.optim.epochs;
            if o.epochs <= e {
                return Err(Error::config(
                    format!("overtrain {}: epochs", o.name),
                    format!(
                        "{} is not more than the {e} epochs of {}",
                        o.epochs, o.source
                    ),
                ));
            }
        }
        for (k, i) in self.interventions.iter().enumerate() {
            let same = |o: &InterventionSpec| o.source == i.source && o.from_epoch == i.from_epoch;
            if self.interventions[..k].iter().any(same) {
                return Err(Error::config(
                    "intervention",
                    format!(
                        "the intervention from {} at epoch {} is given twice (both would train in its intervene-e{:04} folders)",
                        i.source, i.from_epoch, i.from_epoch
                    ),
                ));
            }
            for g in self.groups(i)? {
                names.push((
                    intervention_run(&i.source, i.from_epoch, g.name()),
                    format!(
                        "{} group of the intervention from {} at epoch {}",
                        g.name(),
                        i.source,
                        i.from_epoch
                    ),
                ));
            }
        }
        names.sort();
        if let Some(w) = names.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(Error::config(
                "study",
                format!(
                    "the name {} is used twice: by the {} and by the {}",
                    w[0].0, w[0].1, w[1].1
                ),
            ));
        }
        self.check_eval_epochs()?;
        let mut labels = vec![];
        for r in &self.roles {
            // Labels name report files: the same letters as run names (and spaces), each once.
            let label = r.label.replace(' ', "_");
            if !r.label.is_empty() {
                check_name("roles.label", &label)?;
            }
            if labels.contains(&label) {
                return Err(Error::config(
                    "roles.label",
                    format!(
                        "'{}' labels two blocks (leave none empty when there are several)",
                        r.label
                    ),
                ));
            }
            labels.push(label);
            for (field, name) in r.named() {
                let field = format!("roles.{field}");
                if field.ends_with("overtrain") {
                    if !self.overtrains.iter().any(|o| o.name == name) {
                        return Err(Error::config(
                            field,
                            format!("{name} is not an over-training of this study"),
                        ));
                    }
                } else {
                    self.source(name, &field)?;
                }
            }
            self.check_roles(r)?;
        }
        for i in &self.interventions {
            let src = self.source(&i.source, "intervention.source")?;
            if let Some(s) = i.seeds.iter().find(|s| !src.seeds.contains(s)) {
                return Err(Error::config(
                    "intervention.seeds",
                    format!("seed {s} is not a seed of {}", i.source),
                ));
            }
            let e = self.run_config(src, src.seeds[0])?.optim.epochs;
            if i.from_epoch == 0 || i.from_epoch > e {
                return Err(Error::config(
                    "intervention.from_epoch",
                    format!("{} is not an epoch of {} (1..={e})", i.from_epoch, i.source),
                ));
            }
            let c = self.run_config(src, src.seeds[0])?;
            if !c.checkpointed(i.from_epoch) {
                return Err(Error::config(
                    "intervention.from_epoch",
                    format!(
                        "{} has no checkpoint at epoch {} (checkpoint_every = {})",
                        i.source, i.from_epoch, c.checkpoint_every
                    ),
                ));
            }
            if !c.track.due(i.from_epoch) {
                return Err(Error::config(
                    "intervention.from_epoch",
                    format!(
                        "{} is not tracked at epoch {}: the intervention's curves start from that value (track.every / track.epochs)",
                        i.source, i.from_epoch
                    ),
                ));
            }
            let plan = self.intervention(i)?;
            for seed in self.intervention_seeds(i) {
                let base = self.run_config(src, seed)?;
                for &g in &plan.groups {
                    crate::train::intervene::group_config(&base, &plan, g, None)
                        .validate()
                        .map_err(|e| match e {
                            Error::InvalidConfig { field, reason } => Error::config(
                                format!(
                                    "intervention from {} ({} group): {field}",
                                    i.source,
                                    g.name()
                                ),
                                reason,
                            ),
                            e => e,
                        })?;
                }
            }
        }
        Ok(())
    }

    /// Every `[eval] epochs` entry is an epoch (1-based), and every run that has it (variants,
    /// and over-trainings past their source's end) writes a checkpoint there: else its
    /// evaluation could never run, and the run's later evaluations, which wait for it, neither.
    fn check_eval_epochs(&self) -> Result<()> {
        if self.eval.epochs.contains(&0) {
            return Err(Error::config("eval.epochs", "epochs count from 1"));
        }
        let mut runs = vec![];
        for v in &self.variants {
            runs.push((&v.name, self.run_config(v, v.seeds[0])?, 0));
        }
        for o in &self.overtrains {
            let src = self.variant(&o.source).expect("checked");
            let mut c = self.run_config(src, src.seeds[0])?;
            // The copied run holds checkpoints from its source's last epoch on.
            let from = c.optim.epochs;
            c.optim.epochs = o.epochs;
            runs.push((&o.name, c, from));
        }
        for (name, c, from) in runs {
            let e = self.eval.epochs.iter().copied();
            if let Some(e) = e
                .filter(|&e| e > from && e <= c.optim.epochs)
                .find(|&e| !c.checkpointed(e))
            {
                return Err(Error::config(
                    "eval.epochs",
                    format!(
                        "{name} has no checkpoint at epoch {e} to evaluate (checkpoint_every = {}; its last epoch, {}, always has one)",
                        c.checkpoint_every, c.optim.epochs
                    ),
                ));
            }
        }
        Ok(())
    }

    /// A block's parts fit the paper's design: L2 where the role says so and not elsewhere, the
    /// short schedule shorter than the long one, over-trainings of the block's own short L2 and
    /// long no-L2 models.
    fn check_roles(&self, r: &Roles) -> Result<()> {
        let cfg = |name: &str| -> Result<RunConfig> {
            let v = self.variant(name).expect("checked");
            self.run_config(v, v.seeds[0])
        };
        let variants = [
            ("l2_short", &r.l2_short, true),
            ("nol2_long", &r.nol2_long, false),
            ("nol2_short", &r.nol2_short, false),
            ("l2_long", &r.l2_long, true),
        ];
        for (field, name, l2) in variants {
            if let Some(n) = name
                && cfg(n)?.model.l2 != l2
            {
                return Err(Error::config(
                    format!("roles.{field}"),
                    format!("{n} has model.l2 = {}", !l2),
                ));
            }
        }
        if let (Some(short), Some(long)) = (&r.l2_short, &r.nol2_long) {
            let (s, l) = (cfg(short)?.optim.epochs, cfg(long)?.optim.epochs);
            if s >= l {
                return Err(Error::config(
                    "roles",
                    format!(
                        "the short schedule ({short}: {s} epochs) is not shorter than the long one ({long}: {l})"
                    ),
                ));
            }
        }
        for (field, over, source, role) in [
            ("l2_overtrain", &r.l2_overtrain, &r.l2_short, "l2_short"),
            (
                "nol2_overtrain",
                &r.nol2_overtrain,
                &r.nol2_long,
                "nol2_long",
            ),
        ] {
            if let Some(o) = over {
                let o = self
                    .overtrains
                    .iter()
                    .find(|x| &x.name == o)
                    .expect("checked");
                if Some(&o.source) != source.as_ref() {
                    return Err(Error::config(
                        format!("roles.{field}"),
                        format!(
                            "{} over-trains {}, not this block's {role}",
                            o.name, o.source
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn source(&self, name: &str, field: &str) -> Result<&Variant> {
        self.variant(name)
            .ok_or_else(|| Error::config(field, format!("{name} is not a variant of this study")))
    }

    /// The groups of an intervention, each once.
    pub fn groups(&self, i: &InterventionSpec) -> Result<Vec<Group>> {
        if i.groups.is_empty() {
            return Err(Error::config("intervention.groups", "no groups"));
        }
        let groups: Vec<Group> = i.groups.iter().map(|g| g.parse()).collect::<Result<_>>()?;
        for (k, g) in groups.iter().enumerate() {
            if groups[..k].contains(g) {
                return Err(Error::config(
                    "intervention.groups",
                    format!("{} is listed twice (a group is one run per seed)", g.name()),
                ));
            }
        }
        Ok(groups)
    }

    /// What the intervention `i` does, as `train::intervene` takes it.
    pub fn intervention(&self, i: &InterventionSpec) -> Result<crate::train::Intervention> {
        Ok(crate::train::Intervention {
            from_epoch: i.from_epoch,
            epochs: i.epochs,
            drop_after: i.drop_after,
            groups: self.groups(i)?,
        })
    }

    /// The seeds an intervention runs on (all of its source's when none are given).
    pub fn intervention_seeds(&self, i: &InterventionSpec) -> Vec<u64> {
        if i.seeds.is_empty() {
            self.variant(&i.source)
                .map(|v| v.seeds.clone())
                .unwrap_or_default()
        } else {
            i.seeds.clone()
        }
    }

    /// Whether `self` may replace `old` for an existing study directory: the same study, except
    /// for added variants and added seeds.
    pub fn extends(&self, old: &StudySpec) -> std::result::Result<(), String> {
        if self.base != old.base {
            return Err("the base configuration changed".into());
        }
        for o in &old.variants {
            let Some(n) = self.variant(&o.name) else {
                return Err(format!("variant {} was removed", o.name));
            };
            if n.set != o.set {
                return Err(format!("variant {} changed its settings", o.name));
            }
            if let Some(s) = o.seeds.iter().find(|s| !n.seeds.contains(s)) {
                return Err(format!("variant {} lost seed {s}", o.name));
            }
        }
        let kept = |what: &str, ok: bool| {
            if ok {
                Ok(())
            } else {
                Err(format!("the {what} changed"))
            }
        };
        kept(
            "over-training",
            old.overtrains.iter().all(|o| self.overtrains.contains(o)),
        )?;
        kept(
            "interventions",
            old.interventions.iter().all(|o| {
                self.interventions.iter().any(|n| {
                    n.source == o.source
                        && n.from_epoch == o.from_epoch
                        && n.epochs == o.epochs
                        && n.drop_after == o.drop_after
                        && n.groups == o.groups
                })
            }),
        )?;
        kept("evaluation", self.eval == old.eval)
    }
}

/// The report's name of an intervention group's runs.
pub fn intervention_run(source: &str, from_epoch: usize, group: &str) -> String {
    format!("{source}-intervene-e{from_epoch}-{group}")
}
