//! The OoD evaluation of a trained run or of feature files: every score, every metric, one
//! result (JSON) and its readable table (markdown).
use crate::data::loader::Normalizer;
use crate::data::{DataSource, Dataset, OodSet, RunData, Split};
use crate::error::{Error, Result};
use crate::features::{FeatureKind, FeatureSet, Labels, read_labels, read_matrix};
use crate::metrics::{self, Classification};
use crate::ood::{self, DetectionTable, ScoreName, Scored, gda::GdaInfo, softmax};
use crate::run::{Provenance, RunDir};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use tch::{Device, Kind, Tensor};

/// ID classification quality on the test set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdResult {
    pub n: usize,
    pub accuracy: f64,
    /// ECE (15 bins) of the softmax at T = 1.
    pub ece: f64,
    /// ECE after temperature scaling, when a temperature was fitted.
    pub ece_temperature_scaled: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalResult {
    #[serde(flatten)]
    pub provenance: Provenance,
    /// Run directory and checkpoint epoch (absent for `ncood score`).
    pub run: Option<String>,
    pub epoch: Option<usize>,
    /// The run's training arithmetic (`optim.precision`; absent for `ncood score`).
    #[serde(default)]
    pub precision: Option<crate::config::Precision>,
    /// Which features each GDA score was fitted on, and what the fit needed.
    pub gda: BTreeMap<ScoreName, GdaInfo>,
    /// The temperature of the `*_t` scores (fitted on validation NLL), if any.
    pub temperature: Option<f64>,
    pub id: Option<IdResult>,
    pub ood_sizes: BTreeMap<String, usize>,
    /// OoD set -> score -> metrics (auroc, aupr_in, aupr_out, fpr95_ood_positive,
    /// fpr95_id_positive, topn_false_positives).
    pub ood: DetectionTable,
}

/// Accuracy and ECE from logits (N x C) and labels (N, below C) at temperature `t`.
pub fn classify(logits: &Tensor, labels: &Labels, t: f64) -> Result<Classification> {
    let p = (logits.to_kind(Kind::Double) / t).softmax(1, Kind::Double);
    let (conf, pred) = p.max_dim(1, false);
    let correct: Vec<bool> =
        Vec::<bool>::try_from(pred.eq_tensor(&labels.tensor())).expect("bool vector");
    metrics::classification(&Vec::<f64>::try_from(conf).expect("f64 vector"), &correct)
}

fn result(
    scores: &[Scored],
    names: &[String],
    sizes: Vec<usize>,
    gda: BTreeMap<ScoreName, GdaInfo>,
    device: Device,
) -> Result<EvalResult> {
    Ok(EvalResult {
        provenance: Provenance::current(device),
        run: None,
        epoch: None,
        precision: None,
        gda,
        temperature: None,
        id: None,
        ood_sizes: names.iter().cloned().zip(sizes).collect(),
        ood: ood::detection_table(names, scores)?,
    })
}

/// Post-hoc scoring of feature files (`ncood score`): GDA on the given features, and the softmax
/// family when logits are given; ID accuracy and ECE when ID logits and labels are given.
pub struct FileInputs {
    pub train_features: Tensor,
    pub train_labels: Labels,
    pub id_features: Tensor,
    pub ood: Vec<(String, Tensor)>,
    pub id_logits: Option<Tensor>,
    pub ood_logits: Vec<Tensor>,
    /// Read with the class count of `id_logits`.
    pub id_labels: Option<Labels>,
}

/// The files `ncood score` reads; an OoD set is named by its file's stem.
pub struct FilePaths {
    pub train_features: PathBuf,
    pub train_labels: PathBuf,
    pub id_features: PathBuf,
    pub ood_features: Vec<PathBuf>,
    pub id_logits: Option<PathBuf>,
    pub ood_logits: Vec<PathBuf>,
    pub id_labels: Option<PathBuf>,
}

impl FileInputs {
    /// Reads and checks every file (see `features::read_matrix` and `read_labels`); two OoD
    /// files with the same stem are an error (their results would share a name).
    pub fn read(p: &FilePaths) -> Result<FileInputs> {
        let mut ood = vec![];
        for path in &p.ood_features {
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            if ood.iter().any(|(n, _)| n == &name) {
                return Err(Error::invalid(
                    "OoD feature files",
                    format!("two files are named {name}: results are keyed by the file name"),
                ));
            }
            ood.push((name, read_matrix(path)?));
        }
        let id_logits = p.id_logits.as_deref().map(read_matrix).transpose()?;
        let classes = id_logits.as_ref().map(|l| l.size()[1] as usize);
        Ok(FileInputs {
            train_features: read_matrix(&p.train_features)?,
            train_labels: read_labels(&p.train_labels, classes)?,
            id_features: read_matrix(&p.id_features)?,
            ood,
            ood_logits: p
                .ood_logits
                .iter()
                .map(|p| read_matrix(p))
                .collect::<Result<_>>()?,
            id_labels: p
                .id_labels
                .as_deref()
                .map(|p| read_labels(p, classes))
                .transpose()?,
            id_logits,
        })
    }
}

/// Checks that `rows` of one array match another's, naming both.
fn same_rows(what: &str, t: &Tensor, rows: i64, of: &str) -> Result<()> {
    if t.size()[0] != rows {
        return Err(Error::ShapeMismatch {
            what: what.into(),
            expected: format!("{rows} rows, one per row of {of}"),
            got: format!("{:?}", t.size()),
        });
    }
    Ok(())
}

impl FileInputs {
    /// Every shape agreement the scores rely on, checked before anything is computed.
    fn check(&self) -> Result<()> {
        let d = self.train_features.size()[1];
        for (name, t) in std::iter::once(("ID", &self.id_features))
            .chain(self.ood.iter().map(|(n, t)| (n.as_str(), t)))
        {
            if t.size()[1] != d {
                return Err(Error::ShapeMismatch {
                    what: format!("{name} features"),
                    expected: format!("N x {d} like the training features"),
                    got: format!("{:?}", t.size()),
                });
            }
        }
        let Some(id_logits) = &self.id_logits else {
            return Ok(());
        };
        if self.ood_logits.len() != self.ood.len() {
            return Err(Error::invalid(
                "OoD logits",
                format!(
                    "{} files for {} OoD feature files (one each, in the same order)",
                    self.ood_logits.len(),
                    self.ood.len()
                ),
            ));
        }
        let n_id = self.id_features.size()[0];
        same_rows("ID logits", id_logits, n_id, "the ID features")?;
        let c = id_logits.size()[1];
        if c < 2 || c as usize != self.train_labels.classes() {
            return Err(Error::ShapeMismatch {
                what: "ID logits".into(),
                expected: format!(
                    "one column per class of the training labels ({})",
                    self.train_labels.classes()
                ),
                got: format!("{:?}", id_logits.size()),
            });
        }
        for ((name, f), l) in self.ood.iter().zip(&self.ood_logits) {
            same_rows(
                &format!("{name} logits"),
                l,
                f.size()[0],
                &format!("{name} features"),
            )?;
            if l.size()[1] != c {
                return Err(Error::ShapeMismatch {
                    what: format!("{name} logits"),
                    expected: format!("N x {c} like the ID logits"),
                    got: format!("{:?}", l.size()),
                });
            }
        }
        if let Some(y) = &self.id_labels
            && y.len() as i64 != id_logits.size()[0]
        {
            return Err(Error::ShapeMismatch {
                what: "ID labels".into(),
                expected: format!("{n_id} labels, one per row of the ID logits"),
                got: y.len().to_string(),
            });
        }
        Ok(())
    }
}

pub fn score_files(inp: &FileInputs) -> Result<EvalResult> {
    inp.check()?;
    let names: Vec<String> = inp.ood.iter().map(|(n, _)| n.clone()).collect();
    let oods: Vec<Tensor> = inp.ood.iter().map(|(_, t)| t.shallow_clone()).collect();
    let (g, info) = ood::gda_scores(
        ScoreName::Gda,
        &inp.train_features,
        &inp.train_labels,
        &inp.id_features,
        &oods,
    )?;
    let mut scores = vec![g];
    if let Some(id_logits) = &inp.id_logits {
        scores.extend(ood::softmax_scores(id_logits, &inp.ood_logits, None));
    }
    let mut r = result(
        &scores,
        &names,
        oods.iter().map(|o| o.size()[0] as usize).collect(),
        [(ScoreName::Gda, info)].into(),
        Device::Cpu,
    )?;
    if let (Some(l), Some(y)) = (&inp.id_logits, &inp.id_labels) {
        let c = classify(l, y, 1.0)?;
        r.id = Some(IdResult {
            n: y.len(),
            accuracy: c.accuracy,
            ece: c.ece,
            ece_temperature_scaled: None,
        });
    }
    Ok(r)
}

/// A run's checkpoint loaded for evaluation: its config (data root replaced when asked), model,
/// epoch, ID data and normaliser; `eval`, `predict` and `features` start here.
pub struct LoadedRun {
    pub dir: RunDir,
    pub cfg: crate::config::RunConfig,
    pub net: crate::model::Net,
    pub epoch: usize,
    pub data: RunData,
    pub norm: Normalizer,
    pub src: DataSource,
}

impl LoadedRun {
    /// Epoch `epoch` (0 = the latest) of the run in `dir` on `device`; `data_root` replaces the
    /// recorded data root.
    pub fn load(
        dir: &RunDir,
        epoch: usize,
        device: Device,
        data_root: Option<&std::path::Path>,
    ) -> Result<LoadedRun> {
        let (mut cfg, net, epoch) = dir.load_net(epoch, device)?;
        if let Some(root) = data_root {
            cfg.data.root = Some(root.to_path_buf());
        }
        let data = RunData::load(&cfg.data, cfg.seed)?;
        Ok(LoadedRun {
            dir: dir.clone(),
            norm: Normalizer::new(&data.normalization, device),
            src: DataSource::from(&cfg.data),
            cfg,
            net,
            epoch,
            data,
        })
    }

    /// One eval pass over `d`.
    pub fn features(&self, d: &Dataset) -> Result<FeatureSet> {
        FeatureSet::extract(
            &self.net.model,
            d,
            &self.norm,
            self.cfg.data.eval_batch_size,
        )
    }

    /// The features of a data set's split, or for the test split also of a generated OoD set.
    pub fn features_of(&self, set: OodSet, split: Split) -> Result<FeatureSet> {
        let cfg = &self.cfg;
        let d = match (set, split) {
            (set, Split::Test) => set.load(
                &self.src,
                &self.data.test,
                &self.data.normalization,
                cfg.seed,
            )?,
            (OodSet::Data(kind), split) => {
                self.src
                    .load(kind, split, cfg.seed, cfg.data.val_fraction)?
            }
            (OodSet::Generated(g), split) => {
                return Err(Error::invalid(
                    format!("OoD set {}", g.name()),
                    format!("is generated: it has only a test split, not {split}"),
                ));
            }
        };
        if d.is_empty() {
            return Err(Error::invalid(
                format!("data set {set}"),
                format!("its {split} split has no images"),
            ));
        }
        self.features(&d)
    }
}

/// The whole evaluation of a run's checkpoint (`ncood eval`): features of the train, validation
/// and test splits and of every OoD set, GDA on raw and on normalised features, the softmax family
/// at T = 1 and at the validation-fitted T, feature norm, all metrics, ID accuracy and ECE.
/// `data_root` replaces the run's recorded data root when given.
/// `ood_sets` empty = the defaults for the run's ID set (`OodSet::defaults`).
pub fn eval_run(run: &LoadedRun, ood_sets: &[OodSet], device: Device) -> Result<EvalResult> {
    let (cfg, data) = (&run.cfg, &run.data);
    let ood_sets = match ood_sets {
        [] => OodSet::defaults(cfg.data.name, &run.src.root),
        sets => sets.to_vec(),
    };
    let feats = |d: &Dataset| run.features(d);
    let train = feats(&data.train)?;
    let test = feats(&data.test)?;
    let oods: Vec<FeatureSet> = ood_sets
        .iter()
        .map(|o| feats(&o.load(&run.src, &data.test, &data.normalization, cfg.seed)?))
        .collect::<Result<_>>()?;
    let classes = Some(data.train.info.classes);
    let labels = Labels::new(train.labels.clone(), classes, "training split")?;
    let mut scores = vec![];
    let mut gda = BTreeMap::new();
    for (name, kind) in [
        (ScoreName::GdaRaw, FeatureKind::Raw),
        (ScoreName::GdaNormalized, FeatureKind::Normalized),
    ] {
        let (s, info) = ood::gda_scores(
            name,
            train.get(kind),
            &labels,
            test.get(kind),
            &oods
                .iter()
                .map(|o| o.get(kind).shallow_clone())
                .collect::<Vec<_>>(),
        )?;
        scores.push(s);
        gda.insert(name, info);
    }
    let ood_logits: Vec<Tensor> = oods.iter().map(|o| o.logits.shallow_clone()).collect();
    scores.extend(ood::softmax_scores(&test.logits, &ood_logits, None));
    let temperature = if data.val.is_empty() {
        None
    } else {
        let v = feats(&data.val)?;
        let y = Labels::new(v.labels.clone(), classes, "validation split")?;
        Some(softmax::fit_temperature(&v.logits, &y.tensor()))
    };
    if temperature.is_some() {
        scores.extend(ood::softmax_scores(&test.logits, &ood_logits, temperature));
    }
    scores.push(Scored {
        name: ScoreName::FeatureNorm,
        id: ood::feature_norm(&test.raw),
        ood: oods.iter().map(|o| ood::feature_norm(&o.raw)).collect(),
    });
    let names: Vec<String> = ood_sets.iter().map(|o| o.to_string()).collect();
    let mut r = result(
        &scores,
        &names,
        oods.iter().map(|o| o.labels.len()).collect(),
        gda,
        device,
    )?;
    let test_labels = Labels::new(test.labels.clone(), classes, "test split")?;
    let c = classify(&test.logits, &test_labels, 1.0)?;
    let ece_t = temperature
        .map(|t| classify(&test.logits, &test_labels, t).map(|c| c.ece))
        .transpose()?;
    r.id = Some(IdResult {
        n: data.test.len(),
        accuracy: c.accuracy,
        ece: c.ece,
        ece_temperature_scaled: ece_t,
    });
    r.run = Some(run.dir.path().display().to_string());
    r.epoch = Some(run.epoch);
    r.precision = Some(run.cfg.optim.precision);
    r.temperature = temperature;
    Ok(r)
}

/// Evaluates epoch `epoch` (0 = the latest) of the run in `dir` (`eval_run`; `data_root` as in
/// `LoadedRun::load`) and writes the result and its table to RUN_DIR/eval/epoch-NNNN.{json,md}
/// under the run's lock, taken before the work, which a held lock would waste: `ncood eval` and a
/// study's evaluation tasks alike. Returns the result (its `epoch` is the one evaluated) and its
/// table.
pub fn eval_into(
    dir: &RunDir,
    epoch: usize,
    ood_sets: &[OodSet],
    device: Device,
    data_root: Option<&std::path::Path>,
) -> Result<(EvalResult, String)> {
    let lock = dir.lock_existing()?;
    let run = LoadedRun::load(dir, epoch, device, data_root)?;
    let r = eval_run(&run, ood_sets, device)?;
    let md = markdown(&r);
    lock.write_eval(run.epoch, &r, &md)?;
    Ok((r, md))
}

/// The result as a markdown table: one row per OoD set and score.
pub fn markdown(r: &EvalResult) -> String {
    let mut s = String::new();
    if let (Some(run), Some(e)) = (&r.run, r.epoch) {
        s += &format!("# OoD evaluation of {run}, epoch {e}\n\n");
    }
    if let Some(id) = &r.id {
        s += &format!(
            "ID test: {} samples, accuracy {:.4}, ECE {:.4}",
            id.n, id.accuracy, id.ece
        );
        if let (Some(e), Some(t)) = (id.ece_temperature_scaled, r.temperature) {
            s += &format!(", ECE {e:.4} at T = {t:.1}");
        }
        s += "\n\n";
    }
    for (name, g) in &r.gda {
        let finite: Vec<f64> = g.condition_numbers.iter().flatten().copied().collect();
        let worst = finite.iter().copied().fold(0.0, f64::max);
        s += &format!(
            "{name}: jitter {:e}, D = {}, worst class condition number {worst:.3e}\n",
            g.jitter, g.feature_dim
        );
    }
    s += "\n| OoD set | score | AUROC | AUPR-In | AUPR-Out | FPR@95 (OoD+) | FPR@95 (ID+) | top-N FP |\n";
    s += "|---|---|---|---|---|---|---|---|\n";
    for (set, row) in &r.ood {
        for (score, m) in row {
            s += &format!(
                "| {set} | {score} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {} |\n",
                m.auroc,
                m.aupr_in,
                m.aupr_out,
                m.fpr95_ood_positive,
                m.fpr95_id_positive,
                m.topn_false_positives
            );
        }
    }
    s
}
