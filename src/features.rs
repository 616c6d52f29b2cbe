//! Features first: one eval-mode pass over a data set gives raw and normalised features, logits
//! and labels; every score, metric and NC quantity is computed from them, never by running the
//! network again. Stored as .npy (float32 features and logits, int64 labels), read back with every
//! shape and value checked (`read_matrix`, `read_labels`, `read_vector`).
use crate::data::Dataset;
use crate::data::loader::{Normalizer, eval_batch};
use crate::error::{Error, Result};
use crate::model::ResNet;
use crate::npy::{self, Values};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// Which features a measure reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FeatureKind {
    /// What the linear head reads: normalised under L2, raw otherwise (written "auto").
    HeadInput,
    /// The pooled feature f.
    Raw,
    /// f / ||f||.
    Normalized,
}

impl FeatureKind {
    pub fn name(self) -> &'static str {
        match self {
            FeatureKind::HeadInput => "auto",
            FeatureKind::Raw => "raw",
            FeatureKind::Normalized => "normalized",
        }
    }
    /// Raw or Normalized: what `self` means for a model with or without the L2 head.
    pub fn resolve(self, l2: bool) -> FeatureKind {
        match self {
            FeatureKind::HeadInput if l2 => FeatureKind::Normalized,
            FeatureKind::HeadInput => FeatureKind::Raw,
            k => k,
        }
    }
}

impl std::str::FromStr for FeatureKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<FeatureKind> {
        match s {
            "auto" | "head" => Ok(FeatureKind::HeadInput),
            "raw" => Ok(FeatureKind::Raw),
            "normalized" => Ok(FeatureKind::Normalized),
            _ => Err(Error::config(
                "features",
                format!("{s}: expected auto, raw or normalized"),
            )),
        }
    }
}

impl std::fmt::Display for FeatureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

crate::serde_by_name!(FeatureKind);

/// Class labels in 0..C-1 with C known and bounded, checked when made: nothing is sized by a
/// label before this check.
#[derive(Debug, Clone, PartialEq)]
pub struct Labels {
    values: Vec<i64>,
    classes: usize,
}

impl Labels {
    /// Labels of `what`: non-empty, non-negative, below `classes` when it is given (the classifier's
    /// or data set's class count), else C = max + 1, which must not exceed the number of labels
    /// (every class has at least one sample).
    pub fn new(values: Vec<i64>, classes: Option<usize>, what: &str) -> Result<Labels> {
        let n = values.len();
        if n == 0 {
            return Err(Error::invalid(what, "no labels"));
        }
        if let Some(i) = values.iter().position(|&l| l < 0) {
            return Err(Error::invalid(
                what,
                format!("label of sample {i} is {}, expected 0..C-1", values[i]),
            ));
        }
        let (i, &max) = values
            .iter()
            .enumerate()
            .max_by_key(|(i, l)| (**l, std::cmp::Reverse(*i)))
            .expect("non-empty");
        let classes = match classes {
            Some(c) if max as u64 >= c as u64 => {
                return Err(Error::invalid(
                    what,
                    format!("label of sample {i} is {max}, expected 0..{}", c as i64 - 1),
                ));
            }
            Some(c) => c,
            None if max as u64 >= n as u64 => {
                return Err(Error::invalid(
                    what,
                    format!(
                        "label of sample {i} is {max}: labels must be 0..C-1 with every class present, and {n} samples cannot hold {} classes",
                        max as u128 + 1
                    ),
                ));
            }
            None => max as usize + 1,
        };
        Ok(Labels { values, classes })
    }
    pub fn values(&self) -> &[i64] {
        &self.values
    }
    pub fn classes(&self) -> usize {
        self.classes
    }
    pub fn len(&self) -> usize {
        self.values.len()
    }
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
    /// Labels from a tensor handed to ncood from outside (a Python caller): 1-D, an integer
    /// dtype, dense, on the CPU or a CUDA device, then checked as `new` says; only fallible
    /// libtorch calls, so any tensor is an error rather than a panic.
    pub fn from_tensor(t: &Tensor, classes: Option<usize>, what: &str) -> Result<Labels> {
        let kind = t.f_kind().ok();
        let integer = matches!(
            kind,
            Some(Kind::Uint8 | Kind::Int8 | Kind::Int16 | Kind::Int | Kind::Int64)
        );
        let dense = matches!(t.device(), Device::Cpu | Device::Cuda(_)) && !t.is_sparse();
        if !integer || !dense || t.dim() != 1 {
            return Err(Error::invalid(
                what,
                format!(
                    "expected a dense 1-D integer tensor on the CPU or a CUDA device, got {} of shape {:?}",
                    kind.map_or("an unsupported dtype".into(), |k| format!("{k:?}")),
                    t.size()
                ),
            ));
        }
        let values = Vec::<i64>::try_from(
            t.f_to_device(Device::Cpu)?
                .f_to_kind(Kind::Int64)?
                .f_contiguous()?,
        )?;
        Labels::new(values, classes, what)
    }
    pub fn tensor(&self) -> Tensor {
        Tensor::from_slice(&self.values)
    }
}

/// Features of one data set, in data-set order, on the CPU.
pub struct FeatureSet {
    /// Pooled feature f, N x D (f32).
    pub raw: Tensor,
    /// f / ||f||, N x D (f32).
    pub normalized: Tensor,
    /// N x C (f32).
    pub logits: Tensor,
    /// N labels as the data set holds them (-1 for generated OoD images).
    pub labels: Vec<i64>,
}

impl FeatureSet {
    /// One eval-mode pass (no augmentation) in batches of `batch`. The set must not be empty.
    pub fn extract(
        model: &ResNet,
        data: &Dataset,
        norm: &Normalizer,
        batch: usize,
    ) -> Result<FeatureSet> {
        if data.is_empty() {
            return Err(Error::invalid(
                format!("data set {}", data.info.name),
                "has no images",
            ));
        }
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
        Ok(FeatureSet {
            raw: Tensor::cat(&raw, 0),
            normalized: Tensor::cat(&normalized, 0),
            logits: Tensor::cat(&logits, 0),
            labels: data.labels.clone(),
        })
    }

    /// The features of `kind`, resolved (`FeatureKind::resolve` with the model's `l2`): the
    /// normalised ones, else the raw ones.
    pub fn get(&self, kind: FeatureKind) -> &Tensor {
        match kind {
            FeatureKind::Normalized => &self.normalized,
            _ => &self.raw,
        }
    }

    /// The file names `write` uses for a prefix: raw, normalized, logits, labels.
    pub fn paths(prefix: &Path) -> [PathBuf; 4] {
        let p = prefix.to_string_lossy();
        ["raw", "normalized", "logits", "labels"].map(|k| PathBuf::from(format!("{p}.{k}.npy")))
    }

    pub fn write(&self, prefix: &Path) -> Result<()> {
        let [r, n, l, y] = Self::paths(prefix);
        write_f32(&r, &self.raw)?;
        write_f32(&n, &self.normalized)?;
        write_f32(&l, &self.logits)?;
        crate::atomic::write(&y, &npy::encode(&[self.labels.len()], &self.labels))
    }
}

/// Writes a float tensor as float32 .npy, atomically.
pub fn write_f32(path: &Path, t: &Tensor) -> Result<()> {
    let t = t.to_device(Device::Cpu).to_kind(Kind::Float).contiguous();
    let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
    let values = Vec::<f32>::try_from(t.flatten(0, -1))?;
    crate::atomic::write(path, &npy::encode(&shape, &values))
}

fn read(path: &Path) -> Result<npy::Array> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    npy::parse(&bytes).map_err(|p| Error::bad_file(path, format!("not a usable .npy file: {p}")))
}

/// Float values of a .npy file, checked to be finite; `row_len` turns the index into a row.
fn finite_floats(path: &Path, a: npy::Array, row_len: usize) -> Result<Vec<f64>> {
    let Values::Float(v) = a.values else {
        return Err(Error::bad_file(
            path,
            format!("expected float32 or float64 values, got {}", a.elem),
        ));
    };
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(Error::NonFinite {
            what: format!("{}: value {}", path.display(), v[i]),
            location: format!("row {}", i / row_len.max(1)),
        });
    }
    Ok(v)
}

/// Checks a tensor handed to ncood from outside (a Python caller): a dense float tensor on the
/// CPU or a CUDA device (the devices whose f64 the statistics use) with every value finite, the
/// first bad row (index along dimension 0) named. Only fallible libtorch calls, so that any tensor
/// (sparse, quantized, complex, on the meta device) is an error, never a panic.
pub fn check_finite(t: &Tensor, what: &str) -> Result<()> {
    let kind = t
        .f_kind()
        .map_err(|_| Error::invalid(what, "expected a float tensor, got an unsupported dtype"))?;
    if !matches!(
        kind,
        Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16
    ) {
        return Err(Error::invalid(
            what,
            format!("expected a float tensor, got {kind:?}"),
        ));
    }
    // tch reports devices it has no name for (meta, XLA, ...) as Mps; no Linux build has MPS.
    if !matches!(t.device(), Device::Cpu | Device::Cuda(_)) || t.is_sparse() {
        return Err(Error::invalid(
            what,
            "expected a dense tensor on the CPU or a CUDA device",
        ));
    }
    let bad = t.f_isfinite()?.f_logical_not()?;
    let bad_rows = match t.dim() {
        0 | 1 => bad.f_flatten(0, -1)?,
        _ => bad.f_flatten(1, -1)?.f_any_dim(1, false)?,
    };
    if bad_rows.f_any()?.f_int64_value(&[])? == 0 {
        return Ok(());
    }
    let row = bad_rows
        .f_to_kind(Kind::Int8)?
        .f_argmax(0, false)?
        .f_int64_value(&[])?;
    let values = if t.dim() == 0 {
        t.shallow_clone()
    } else {
        t.f_get(row)?
    }
    .f_flatten(0, -1)?;
    let value = values
        .f_masked_select(&values.f_isfinite()?.f_logical_not()?)?
        .f_to_kind(Kind::Double)?
        .f_double_value(&[0])?;
    Err(Error::NonFinite {
        what: format!("{what}: value {value}"),
        location: format!("row {row}"),
    })
}

/// Reads a 2-D float32/float64 .npy matrix with at least one row and one column (returned as
/// f64), rejecting NaN/inf with the row.
pub fn read_matrix(path: &Path) -> Result<Tensor> {
    let a = read(path)?;
    let [n, d] = a.shape[..] else {
        return Err(Error::bad_file(
            path,
            format!("expected a 2-D array, got shape {:?}", a.shape),
        ));
    };
    if n == 0 || d == 0 {
        return Err(Error::bad_file(
            path,
            format!("expected at least one row and one column, got shape ({n}, {d})"),
        ));
    }
    let v = finite_floats(path, a, d)?;
    Ok(Tensor::from_slice(&v).view([n as i64, d as i64]))
}

/// Reads a 1-D finite float .npy vector (e.g. a classifier bias), as f64.
pub fn read_vector(path: &Path) -> Result<Tensor> {
    let a = read(path)?;
    if a.shape.len() != 1 || a.shape[0] == 0 {
        return Err(Error::bad_file(
            path,
            format!("expected a non-empty 1-D array, got shape {:?}", a.shape),
        ));
    }
    Ok(Tensor::from_slice(&finite_floats(path, a, 1)?))
}

/// Reads a 1-D integer .npy vector of labels, checked as `Labels::new` says.
pub fn read_labels(path: &Path, classes: Option<usize>) -> Result<Labels> {
    let a = read(path)?;
    let Values::Int(v) = a.values else {
        return Err(Error::bad_file(
            path,
            format!("expected integer labels, got {}", a.elem),
        ));
    };
    if a.shape.len() != 1 {
        return Err(Error::bad_file(
            path,
            format!("expected a 1-D array of labels, got shape {:?}", a.shape),
        ));
    }
    Labels::new(v, classes, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_finite_names_the_first_bad_row_and_refuses_other_kinds() {
        let t = Tensor::zeros([4, 3], (Kind::Float, Device::Cpu));
        assert!(check_finite(&t, "x").is_ok());
        let _ = t.get(2).get(1).fill_(f64::INFINITY);
        let _ = t.get(3).get(0).fill_(f64::NAN);
        let e = check_finite(&t, "x").unwrap_err().to_string();
        assert_eq!(e, "x: value inf is not finite at row 2");
        let e = check_finite(&Tensor::from_slice(&[1i64, 2]), "y").unwrap_err();
        assert_eq!(e.to_string(), "y: expected a float tensor, got Int64");
        let scalar = Tensor::from(f64::NAN);
        let e = check_finite(&scalar, "s").unwrap_err().to_string();
        assert_eq!(e, "s: value NaN is not finite at row 0");
        let e = Labels::from_tensor(&Tensor::from_slice(&[0.0f32, 1.0]), None, "l").unwrap_err();
        assert!(
            e.to_string()
                .contains("expected a dense 1-D integer tensor"),
            "{e}"
        );
        let l = Labels::from_tensor(&Tensor::from_slice(&[1u8, 0, 1]), None, "l").unwrap();
        assert_eq!((l.values(), l.classes()), (&[1i64, 0, 1][..], 2));
    }
}
