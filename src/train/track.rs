//! Tracking during training (the paper's Figure 3): at the configured epochs, NC1-4 on a fixed,
//! class-balanced subset of the training split, and the GDA AUROC and top-N false positives of the
//! test split against an OoD set, on the features `track.features` picks (by default the ones the
//! linear head reads).
use crate::collapse;
use crate::config::RunConfig;
use crate::data::loader::Normalizer;
use crate::data::{DataSource, Dataset, OodSet, RunData};
use crate::error::{Error, Result};
use crate::features::{FeatureKind, FeatureSet, Labels};
use crate::metrics;
use crate::model::ResNet;
use crate::ood::gda::Gda;
use crate::rng::Stream;
use crate::run::Tracked;
use crate::stats::ClassStats;
use std::time::Instant;

/// The fixed data tracking runs on.
pub struct Tracker {
    subset: Dataset,
    labels: Labels,
    ood: Dataset,
    ood_name: OodSet,
    /// Raw or Normalized.
    features: FeatureKind,
}

impl Tracker {
    pub fn new(cfg: &RunConfig, data: &RunData) -> Result<Option<Tracker>> {
        if !cfg.track.enabled() {
            return Ok(None);
        }
        let subset = data
            .train
            .balanced_subset(cfg.track.subset, cfg.seed, Stream::TrackSubset);
        // GDA needs two samples of every class (an unbiased covariance): check before training.
        let classes = subset.info.classes;
        let smallest = (0..classes as i64)
            .map(|c| subset.labels.iter().filter(|&&l| l == c).count())
            .min()
            .unwrap_or(0);
        if smallest < 2 {
            return Err(Error::config(
                "track.subset",
                format!(
                    "the tracked subset has {smallest} image(s) of some class; GDA needs at least 2 of each of {classes}"
                ),
            ));
        }
        Ok(Some(Tracker {
            labels: Labels::new(
                subset.labels.clone(),
                Some(subset.info.classes),
                "tracking subset",
            )?,
            subset,
            ood: cfg.track.ood.load(
                &DataSource::from(&cfg.data),
                &data.test,
                &data.normalization,
                cfg.seed,
            )?,
            ood_name: cfg.track.ood,
            features: cfg.track.features.resolve(cfg.model.l2),
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
        let kind = self.features;
        let train = FeatureSet::extract(model, &self.subset, norm, batch)?;
        let ood = FeatureSet::extract(model, &self.ood, norm, batch)?;
        let train_all = train;
        let (train, ood, id) = (train_all.get(kind), ood.get(kind), test.get(kind));
        let head = tch::no_grad(|| {
            let b = model.fc.bs.as_ref().map(|b| b.detach());
            collapse::Classifier::new(&model.fc.ws.detach(), b.as_ref(), "the model's")
        })?;
        let stats = ClassStats::new(train, &self.labels, "NC", crate::stats::CHUNK)?;
        let nc = collapse::from_stats(&stats, train, &head, Some(kind), crate::stats::CHUNK)?;
        let gda = Gda::from_stats(&stats)?;
        let det = metrics::detection(&gda.score(id)?, &gda.score(ood)?)?;
        // An L2 model's raw features too (NC3 against the same W; NC4 with the model's own
        // predictions, made from the normalised features, against the nearest raw class mean).
        let nc_raw = match kind {
            FeatureKind::Normalized => {
                let raw = train_all.get(FeatureKind::Raw);
                let stats = ClassStats::new(raw, &self.labels, "NC", crate::stats::CHUNK)?;
                let wrong =
                    collapse::disagreements(&stats, raw, &collapse::predictions(train, &head));
                let raw_kind = Some(FeatureKind::Raw);
                Some(collapse::from_disagreements(
                    &stats, &head, wrong, raw_kind,
                )?)
            }
            FeatureKind::Raw | FeatureKind::HeadInput => None,
        };
        Ok(Tracked {
            nc,
            nc_raw,
            gda_auroc: det.auroc,
            topn_false_positives: det.topn_false_positives,
            ood: self.ood_name.to_string(),
            subset: self.subset.len(),
            seconds: t0.elapsed().as_secs_f64(),
        })
    }
}
