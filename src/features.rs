//! Features first: one eval-mode pass over a data set gives raw and normalised features, logits
//! and labels; every score, metric and NC quantity is computed from them, never by running the
//! network again. Stored as .npy (float32 features and logits, int64 labels).
use crate::checkpoint::write_npy;
use crate::data::Dataset;
use crate::data::loader::{Normalizer, eval_batch};
use crate::error::{Error, Result};
use crate::model::ResNet;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// Features of one data set, in data-set order, on the CPU.
pub struct FeatureSet {
    /// Pooled feature f, N x D (f32).
    pub raw: Tensor,
    /// f / ||f||, N x D (f32).
    pub normalized: Tensor,
    /// N x C (f32).
    pub logits: Tensor,
    /// N (i64).
    pub labels: Tensor,
}

impl FeatureSet {
    /// One eval-mode pass (no augmentation) in batches of `batch`.
    pub fn extract(model: &ResNet, data: &Dataset, norm: &Normalizer, batch: usize) -> FeatureSet {
        let (mut raw, mut normalized, mut logits) = (vec![], vec![], vec![]);
        tch::no_grad(|| {
            for s in (0..data.len()).step_by(batch.max(1)) {
                let (x, _) = eval_batch(data, s, (s + batch).min(data.len()), norm);
                let out = model.forward_t(&x, false);
                raw.push(out.raw.to_device(Device::Cpu));
                normalized.push(out.normalized.to_device(Device::Cpu));
                logits.push(out.logits.to_device(Device::Cpu));
            }
        });
        FeatureSet {
            raw: Tensor::cat(&raw, 0),
            normalized: Tensor::cat(&normalized, 0),
            logits: Tensor::cat(&logits, 0),
            labels: Tensor::from_slice(&data.labels),
        }
    }

    /// The file names `write` uses for a prefix: raw, normalized, logits, labels.
    pub fn paths(prefix: &Path) -> [PathBuf; 4] {
        let p = prefix.to_string_lossy();
        ["raw", "normalized", "logits", "labels"].map(|k| PathBuf::from(format!("{p}.{k}.npy")))
    }

    pub fn write(&self, prefix: &Path) -> Result<()> {
        let [r, n, l, y] = Self::paths(prefix);
        write_npy(&r, &self.raw)?;
        write_npy(&n, &self.normalized)?;
        write_npy(&l, &self.logits)?;
        write_npy(&y, &self.labels)
    }
}

/// Reads a 2-D float32/float64 .npy matrix (returned as f64), rejecting NaN/inf with the row.
pub fn read_matrix(path: &Path) -> Result<Tensor> {
    let t = Tensor::read_npy(path)
        .map_err(|e| Error::bad_file(path, format!("not a readable .npy file: {e}")))?;
    if !matches!(t.kind(), Kind::Float | Kind::Double) || t.dim() != 2 {
        return Err(Error::bad_file(
            path,
            format!(
                "expected a 2-D float32/float64 array, got {:?} of shape {:?}",
                t.kind(),
                t.size()
            ),
        ));
    }
    let t = t.to_kind(Kind::Double);
    let bad = t.isfinite().logical_not().any_dim(1, false).nonzero();
    if bad.size()[0] > 0 {
        let row = i64::try_from(bad.get(0)).expect("row index");
        return Err(Error::bad_file(
            path,
            format!("row {row} contains NaN or inf"),
        ));
    }
    Ok(t)
}

/// Reads a 1-D integer .npy vector of labels (returned as i64).
pub fn read_labels(path: &Path) -> Result<Vec<i64>> {
    let t = Tensor::read_npy(path)
        .map_err(|e| Error::bad_file(path, format!("not a readable .npy file: {e}")))?;
    if !matches!(
        t.kind(),
        Kind::Int64 | Kind::Int | Kind::Int16 | Kind::Int8 | Kind::Uint8
    ) || t.dim() != 1
    {
        return Err(Error::bad_file(
            path,
            format!(
                "expected a 1-D integer array, got {:?} of shape {:?}",
                t.kind(),
                t.size()
            ),
        ));
    }
    Ok(Vec::<i64>::try_from(t.to_kind(Kind::Int64)).expect("i64 labels"))
}
