//! Tracking during training (the paper's Figure 3): at the configured epochs, NC1-4 on a fixed,
//! class-balanced subset of the training split, and the GDA AUROC and top-N false positives of the
//! test split against an OoD set, on the features `track.features` picks (by default the ones the
//! linear head reads).
use super::RunData;
use super::config::{FeatureChoice, RunConfig};
use crate::collapse::{self, Collapse};
use crate::data::loader::Normalizer;
use crate::data::{DataSource, Dataset, ood_set};
use crate::error::Result;
use crate::features::FeatureSet;
use crate::metrics;
use crate::model::ResNet;
use crate::ood::gda::Gda;
use crate::stats::ClassStats;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// What one tracked epoch adds to its log line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tracked {
    pub nc: Collapse,
    /// GDA (fitted on the tracked training features) AUROC, test split vs `ood`.
    pub gda_auroc: f64,
    pub topn_false_positives: usize,
    pub ood: String,
    /// Training images the NC measures and the GDA fit used.
    pub subset: usize,
    /// Seconds the tracking added (it reuses the epoch's test-split pass).
    pub seconds: f64,
}

/// The fixed data tracking runs on.
pub struct Tracker {
    subset: Dataset,
    ood: Dataset,
    ood_name: String,
    /// Read the normalised features (else the raw ones).
    normalized: bool,
}

/// A class-balanced subset of `size` images (size / C per class, each class's share chosen by a
/// seeded shuffle), in data-set order; the whole set when `size` is 0 or not smaller.
pub fn balanced_subset(data: &Dataset, size: usize, seed: u64) -> Dataset {
    if size == 0 || size >= data.len() {
        return data.clone();
    }
    let classes = data.info.classes;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x7ac0_0000_0000_0005);
    let mut picked = vec![];
    for c in 0..classes as i64 {
        let mut idx: Vec<usize> = (0..data.len()).filter(|&i| data.labels[i] == c).collect();
        idx.shuffle(&mut rng);
        picked.extend(idx.into_iter().take(size / classes));
    }
    picked.sort_unstable();
    data.subset(&picked)
}

impl Tracker {
    pub fn new(cfg: &RunConfig, data: &RunData) -> Result<Option<Tracker>> {
        if !cfg.track.enabled() {
            return Ok(None);
        }
        let src = DataSource {
            root: cfg.data.root.clone(),
            verify: cfg.data.verify,
        };
        Ok(Some(Tracker {
            subset: balanced_subset(&data.train, cfg.track.subset, cfg.seed),
            ood: ood_set(
                &src,
                &cfg.track.ood,
                &data.test,
                &data.normalization,
                cfg.seed,
            )?,
            ood_name: cfg.track.ood.clone(),
            normalized: match cfg.track.features {
                FeatureChoice::Auto => cfg.model.l2,
                FeatureChoice::Raw => false,
                FeatureChoice::Normalized => true,
            },
        }))
    }

    /// The measures at the model's current state; `test` holds this epoch's test-split features.
    pub fn measure(
        &self,
        model: &ResNet,
        test: &FeatureSet,
        norm: &Normalizer,
        batch: usize,
    ) -> Result<Tracked> {
        let t0 = Instant::now();
        let pick = |f: FeatureSet| if self.normalized { f.normalized } else { f.raw };
        let train = pick(FeatureSet::extract(model, &self.subset, norm, batch));
        let ood = pick(FeatureSet::extract(model, &self.ood, norm, batch));
        let id = if self.normalized {
            &test.normalized
        } else {
            &test.raw
        };
        let features = if self.normalized { "normalized" } else { "raw" };
        let classes = self.subset.info.classes;
        let (w, b) = tch::no_grad(|| {
            (
                model.fc.ws.detach().to_device(tch::Device::Cpu),
                model
                    .fc
                    .bs
                    .as_ref()
                    .map(|b| b.detach().to_device(tch::Device::Cpu)),
            )
        });
        let stats = ClassStats::new(
            &train,
            &self.subset.labels,
            classes,
            "NC",
            crate::stats::CHUNK,
        )?;
        let nc = collapse::from_stats(
            &stats,
            &train,
            &self.subset.labels,
            &w,
            b.as_ref(),
            features,
            crate::stats::CHUNK,
        )?;
        let gda = Gda::from_stats(&stats)?;
        let det = metrics::detection(&gda.score(id)?, &gda.score(&ood)?)?;
        Ok(Tracked {
            nc,
            gda_auroc: det.auroc,
            topn_false_positives: det.topn_false_positives,
            ood: self.ood_name.clone(),
            subset: self.subset.len(),
            seconds: t0.elapsed().as_secs_f64(),
        })
    }
}
