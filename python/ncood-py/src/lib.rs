//! `ncood._native`: ncood's GDA, Neural Collapse measures, NC loss, detection metrics and softmax
//! scores on torch tensors, through pyo3-tch (the tensors are libtorch's own: no copies at the
//! boundary, and results computed by tch ops keep their autograd graph, so `nc_loss` is
//! differentiable in PyTorch with ncood's own definition and backward).
//!
//! This layer only converts and checks what Python hands over (a tensor's rank, dtype, device,
//! finiteness; labels as `Labels`) and turns every `ncood::Error` into `ncood.NcoodError` with
//! ncood's message. The numerics are the library's. The typed, documented Python API is
//! `python/ncood/_native.pyi`.
use std::sync::Mutex;

use ncood::collapse::{self, Classifier};
use ncood::features::Labels;
use ncood::ood::gda::Gda;
use ncood::ood::softmax;
use ncood::stats::{self, StreamingStats};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use pyo3_tch::PyTensor;
use tch::{Device, Kind, Tensor};

pyo3::create_exception!(
    ncood,
    NcoodError,
    PyValueError,
    "An input ncood cannot use (NaN, empty, mismatched shapes, a singular covariance, a bad file), with ncood's message naming the input and the problem."
);

fn err(e: ncood::Error) -> PyErr {
    NcoodError::new_err(e.to_string())
}

fn invalid(what: &str, problem: impl Into<String>) -> PyErr {
    err(ncood::Error::invalid(what, problem))
}

fn is_float(t: &Tensor) -> bool {
    matches!(
        t.kind(),
        Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16
    )
}

/// A float tensor of rank `rank` with at least one element along every axis and no NaN or inf
/// (the first bad row is named).
fn finite(t: &Tensor, rank: usize, what: &str) -> PyResult<()> {
    if t.dim() != rank || !is_float(t) || t.size().contains(&0) {
        let shape = if rank == 1 { "N" } else { "N x D" };
        return Err(invalid(
            what,
            format!(
                "expected a non-empty {shape} float tensor, got {:?} of shape {:?}",
                t.kind(),
                t.size()
            ),
        ));
    }
    let bad_rows = if rank == 1 {
        t.isfinite().logical_not()
    } else {
        t.isfinite().all_dim(1, false).logical_not()
    };
    let bad = Vec::<i64>::try_from(bad_rows.nonzero().view([-1]).to_device(Device::Cpu))
        .expect("int64 indices");
    if let Some(&row) = bad.first() {
        let values = t.get(row).to_device(Device::Cpu).to_kind(Kind::Double);
        let first = Vec::<f64>::try_from(values.view([-1]))
            .expect("f64 values")
            .into_iter()
            .find(|v| !v.is_finite())
            .expect("a row with a non-finite value");
        return Err(err(ncood::Error::NonFinite {
            what: format!("{what}: value {first}"),
            location: format!("row {row}"),
        }));
    }
    Ok(())
}

/// Checked N x D features.
fn checked_matrix<'a>(t: &'a PyTensor, what: &str) -> PyResult<&'a Tensor> {
    finite(t, 2, what)?;
    Ok(&t.0)
}

/// A 1-D integer tensor as `Labels` (classes below `classes` when given, else 0..max).
fn checked_labels(t: &Tensor, classes: Option<usize>, what: &str) -> PyResult<Labels> {
    let integer = matches!(
        t.kind(),
        Kind::Uint8 | Kind::Int8 | Kind::Int16 | Kind::Int | Kind::Int64
    );
    if t.dim() != 1 || !integer {
        return Err(invalid(
            what,
            format!(
                "expected a 1-D integer tensor, got {:?} of shape {:?}",
                t.kind(),
                t.size()
            ),
        ));
    }
    let values = Vec::<i64>::try_from(t.to_device(Device::Cpu).to_kind(Kind::Int64).contiguous())
        .expect("int64 values");
    Labels::new(values, classes, what).map_err(err)
}

/// 1-D float scores as f64.
fn checked_scores(t: &PyTensor, what: &str) -> PyResult<Vec<f64>> {
    finite(t, 1, what)?;
    Ok(
        Vec::<f64>::try_from(t.to_device(Device::Cpu).to_kind(Kind::Double).contiguous())
            .expect("f64 values"),
    )
}

/// f64 values as a tensor on `device`.
fn tensor_on(values: &[f64], device: Device) -> PyTensor {
    PyTensor(Tensor::from_slice(values).to_device(device))
}

/// A serialisable result (ncood's JSON form) as Python dicts, lists, floats, ints and None.
fn to_py<T: serde::Serialize>(py: Python<'_>, value: &T) -> PyResult<PyObject> {
    fn convert(py: Python<'_>, v: &serde_json::Value) -> PyResult<PyObject> {
        use serde_json::Value;
        Ok(match v {
            Value::Null => py.None(),
            Value::Bool(b) => b.into_pyobject(py)?.to_owned().into_any().unbind(),
            Value::Number(n) => match n.as_i64() {
                Some(i) => i.into_pyobject(py)?.into_any().unbind(),
                None => n
                    .as_f64()
                    .expect("a JSON number")
                    .into_pyobject(py)?
                    .into_any()
                    .unbind(),
            },
            Value::String(s) => s.into_pyobject(py)?.into_any().unbind(),
            Value::Array(a) => {
                let items = a
                    .iter()
                    .map(|x| convert(py, x))
                    .collect::<PyResult<Vec<_>>>()?;
                PyList::new(py, items)?.into_any().unbind()
            }
            Value::Object(o) => {
                let d = PyDict::new(py);
                for (k, x) in o {
                    d.set_item(k, convert(py, x)?)?;
                }
                d.into_any().unbind()
            }
        })
    }
    convert(
        py,
        &serde_json::to_value(value).expect("plain data serialises"),
    )
}

/// A linear classifier from Python tensors, checked by ncood.
fn classifier(weight: &PyTensor, bias: Option<&PyTensor>) -> PyResult<Classifier> {
    Classifier::new(weight, bias.map(|b| &b.0), "given").map_err(err)
}

/// NC1-4 as a dict: `nc1` (None when undefined, with `nc1_undefined` saying why), `nc2` (a dict
/// of six), `nc3`, `nc4`, `n`.
fn collapse_dict(py: Python<'_>, c: &collapse::Collapse) -> PyResult<PyObject> {
    let d = to_py(py, c)?;
    d.bind(py).downcast::<PyDict>()?.del_item("features")?;
    Ok(d)
}

/// A fitted GDA (DDU, SPEC 4): per-class float64 means and unbiased covariances with the smallest
/// jitter of the ladder 0, 1e-308, ..., 1e-1 that makes every Cholesky factorisation succeed.
#[pyclass(name = "GDA", module = "ncood", frozen)]
struct PyGda(Mutex<Gda>);

impl PyGda {
    fn new(gda: Gda) -> Self {
        PyGda(Mutex::new(gda))
    }
    fn with<R>(&self, f: impl FnOnce(&Gda) -> R) -> R {
        f(&self.0.lock().expect("no panic while fitted state is held"))
    }
}

#[pymethods]
impl PyGda {
    /// Fits on features (N x D, any float dtype and device; float64 inside) and integer labels
    /// 0..C-1 (every class with at least 2 samples).
    #[staticmethod]
    fn fit(features: PyTensor, labels: PyTensor) -> PyResult<PyGda> {
        let x = checked_matrix(&features, "GDA features")?;
        let y = checked_labels(&labels, None, "GDA labels")?;
        Ok(PyGda::new(Gda::fit(x, &y).map_err(err)?))
    }

    /// ID-confidence of each row (logsumexp over classes of the Gaussian log-densities; higher =
    /// more in-distribution), float64, on the features' device.
    fn score(&self, features: PyTensor) -> PyResult<PyTensor> {
        let x = checked_matrix(&features, "GDA features to score")?;
        let s = self.with(|g| g.score(x)).map_err(err)?;
        Ok(tensor_on(&s, x.device()))
    }

    /// The jitter eps added to every covariance's diagonal.
    #[getter]
    fn jitter(&self) -> f64 {
        self.with(|g| g.info.jitter)
    }

    /// Condition number of each S_c + eps I (None where the smallest computed eigenvalue is not
    /// positive).
    #[getter]
    fn condition_numbers(&self) -> Vec<Option<f64>> {
        self.with(|g| g.info.condition_numbers.clone())
    }

    /// Training samples per class.
    #[getter]
    fn class_counts(&self) -> Vec<usize> {
        self.with(|g| g.info.class_counts.clone())
    }

    /// D.
    #[getter]
    fn feature_dim(&self) -> usize {
        self.with(|g| g.info.feature_dim)
    }

    fn __repr__(&self) -> String {
        self.with(|g| {
            format!(
                "GDA(classes={}, feature_dim={}, jitter={:e})",
                g.info.class_counts.len(),
                g.info.feature_dim,
                g.info.jitter
            )
        })
    }
}

/// Per-class float64 counts, means and scatter, accumulated batch by batch (memory C x D x D,
/// whatever the number of samples); read by `gda()` and `collapse()`.
#[pyclass(name = "ClassStats", module = "ncood", frozen)]
struct PyClassStats(Mutex<StreamingStats>);

#[pymethods]
impl PyClassStats {
    #[new]
    fn new(num_classes: usize) -> PyResult<Self> {
        Ok(PyClassStats(Mutex::new(
            StreamingStats::new(num_classes).map_err(err)?,
        )))
    }

    /// Adds a batch: features (B x D, any float dtype and device) and labels 0..num_classes-1
    /// (a batch need not hold every class).
    fn update(&self, features: PyTensor, labels: PyTensor) -> PyResult<()> {
        let mut s = self.0.lock().expect("no panic while accumulating");
        let x = checked_matrix(&features, "ClassStats batch")?;
        let y = checked_labels(&labels, Some(s.classes()), "ClassStats batch labels")?;
        s.update(x, &y, "ClassStats batch").map_err(err)
    }

    #[getter]
    fn num_classes(&self) -> usize {
        self.0
            .lock()
            .expect("no panic while accumulating")
            .classes()
    }

    /// Samples seen per class.
    #[getter]
    fn counts(&self) -> Vec<usize> {
        self.0
            .lock()
            .expect("no panic while accumulating")
            .counts()
            .to_vec()
    }

    /// The class means (C x D, float64, CPU); every class must have a sample.
    #[getter]
    fn means(&self) -> PyResult<PyTensor> {
        Ok(PyTensor(self.finish()?.means))
    }

    /// GDA fitted on the statistics so far (as `GDA.fit` on all the batches at once).
    fn gda(&self) -> PyResult<PyGda> {
        Ok(PyGda::new(Gda::from_stats(&self.finish()?).map_err(err)?))
    }

    /// NC1-4 (SPEC 6) with the classifier `weight` (C x D) and optional `bias` (C). NC4 needs the
    /// final class means, so it takes a second pass: `features` is every sample's features again,
    /// as one tensor or an iterable of batches (any order; labels are not needed).
    #[pyo3(signature = (features, weight, bias=None))]
    fn collapse(
        &self,
        py: Python<'_>,
        features: &Bound<'_, PyAny>,
        weight: PyTensor,
        bias: Option<PyTensor>,
    ) -> PyResult<PyObject> {
        let st = self.finish()?;
        let head = classifier(&weight, bias.as_ref())?;
        collapse::check_classifier(&st, &head).map_err(err)?;
        let d = st.means.size()[1];
        let (mut rows, mut disagree) = (0usize, 0usize);
        let mut add = |t: PyTensor| -> PyResult<()> {
            let x = checked_matrix(&t, "ClassStats.collapse features")?;
            if x.size()[1] != d {
                return Err(err(ncood::Error::ShapeMismatch {
                    what: "ClassStats.collapse features".into(),
                    expected: format!("B x {d}"),
                    got: format!("{:?}", x.size()),
                }));
            }
            rows += x.size()[0] as usize;
            disagree += collapse::nc4_disagreements(&st, x, &head);
            Ok(())
        };
        match features.extract::<PyTensor>() {
            Ok(t) => add(t)?,
            Err(_) => {
                for item in features.try_iter()? {
                    add(item?.extract::<PyTensor>()?)?;
                }
            }
        }
        if rows != st.total() {
            return Err(invalid(
                "ClassStats.collapse features",
                format!(
                    "{rows} rows, but the statistics hold {} samples: NC4 needs every sample once",
                    st.total()
                ),
            ));
        }
        let c = collapse::from_disagreements(&st, &head, disagree, None).map_err(err)?;
        collapse_dict(py, &c)
    }

    fn __repr__(&self) -> String {
        let s = self.0.lock().expect("no panic while accumulating");
        format!(
            "ClassStats(num_classes={}, counts={:?})",
            s.classes(),
            s.counts()
        )
    }
}

impl PyClassStats {
    fn finish(&self) -> PyResult<stats::ClassStats> {
        let s = self.0.lock().expect("no panic while accumulating");
        s.finish("ClassStats").map_err(err)
    }
}

/// NC1-4 (SPEC 6) of features (N x D) with labels 0..C-1 and the classifier weight (C x D) and
/// optional bias (C), in float64.
#[pyfunction]
#[pyo3(name = "collapse", signature = (features, labels, weight, bias=None))]
fn collapse_measures(
    py: Python<'_>,
    features: PyTensor,
    labels: PyTensor,
    weight: PyTensor,
    bias: Option<PyTensor>,
) -> PyResult<PyObject> {
    let head = classifier(&weight, bias.as_ref())?;
    let x = checked_matrix(&features, "NC features")?;
    let y = checked_labels(&labels, Some(head.classes()), "NC labels")?;
    let c = collapse::measure(x, &y, &head, None, stats::CHUNK).map_err(err)?;
    collapse_dict(py, &c)
}

/// The NC loss of SPEC 7 on a batch: features (B x D), labels (B, every class 0..C-1 present),
/// classifier weight (C x D, on the features' device). Computed in float64 by ncood's tch ops and
/// returned in the features' dtype with its autograd graph.
#[pyfunction]
fn nc_loss(features: PyTensor, labels: PyTensor, weight: PyTensor) -> PyResult<PyTensor> {
    let h = checked_matrix(&features, "nc_loss features")?;
    finite(&weight, 2, "nc_loss weight")?;
    let (b, d) = (h.size()[0], h.size()[1]);
    let c = weight.size()[0];
    if weight.size()[1] != d || c < 2 || weight.device() != h.device() {
        return Err(err(ncood::Error::ShapeMismatch {
            what: "nc_loss weight".into(),
            expected: format!("C x {d} with C >= 2, on {:?}", h.device()),
            got: format!("{:?} on {:?}", weight.size(), weight.device()),
        }));
    }
    let y = checked_labels(&labels, Some(c as usize), "nc_loss labels")?;
    if y.len() != b as usize {
        return Err(err(ncood::Error::ShapeMismatch {
            what: "nc_loss labels".into(),
            expected: format!("{b} (one per feature row)"),
            got: y.len().to_string(),
        }));
    }
    let mut present = vec![false; c as usize];
    y.values().iter().for_each(|&l| present[l as usize] = true);
    if let Some(k) = present.iter().position(|p| !p) {
        return Err(invalid(
            "nc_loss labels",
            format!("class {k} has no sample in the batch: its mean is undefined"),
        ));
    }
    let yt = y.tensor().to_device(h.device());
    Ok(PyTensor(collapse::nc_loss(h, &yt, &weight, c)))
}

/// Detection metrics (SPEC 5) of ID-confidence scores of ID and OoD samples (1-D, OoD positive
/// with OoD-ness = -score).
#[pyfunction]
fn metrics(py: Python<'_>, id_conf: PyTensor, ood_conf: PyTensor) -> PyResult<PyObject> {
    let id = checked_scores(&id_conf, "ID scores")?;
    let ood = checked_scores(&ood_conf, "OoD scores")?;
    to_py(py, &ncood::metrics::detection(&id, &ood).map_err(err)?)
}

/// The softmax-family ID-confidences of logits (N x C) at temperature T: msp, max_logit,
/// neg_entropy, energy (float64 tensors on the logits' device).
#[pyfunction]
#[pyo3(signature = (logits, temperature=1.0))]
fn softmax_scores(
    py: Python<'_>,
    logits: PyTensor,
    temperature: f64,
) -> PyResult<Bound<'_, PyDict>> {
    let l = checked_matrix(&logits, "logits")?;
    if !(temperature.is_finite() && temperature > 0.0) {
        return Err(invalid(
            "temperature",
            format!("{temperature}; expected a finite value > 0"),
        ));
    }
    let out = PyDict::new(py);
    let dev = l.device();
    out.set_item("msp", tensor_on(&softmax::msp(l, temperature), dev))?;
    out.set_item("max_logit", tensor_on(&softmax::max_logit(l), dev))?;
    out.set_item(
        "neg_entropy",
        tensor_on(&softmax::neg_entropy(l, temperature), dev),
    )?;
    out.set_item("energy", tensor_on(&softmax::energy(l, temperature), dev))?;
    Ok(out)
}

/// An ncood weights checkpoint (`epoch-NNNN.safetensors`): its tensors (CPU) and the reference
/// ResNet's constructor arguments from the run configuration recorded in its metadata.
#[pyfunction]
fn read_checkpoint(
    py: Python<'_>,
    path: std::path::PathBuf,
) -> PyResult<(Bound<'_, PyDict>, Bound<'_, PyDict>)> {
    let (tensors, meta) = ncood::checkpoint::read(&path).map_err(err)?;
    let cfg = meta
        .get("config")
        .ok_or_else(|| {
            ncood::Error::bad_file(&path, "metadata has no config: not an ncood checkpoint")
        })
        .and_then(|text| {
            ncood::config::RunConfig::from_toml(text, &[])
                .map_err(|e| ncood::Error::bad_file(&path, format!("its recorded config: {e}")))
        })
        .map_err(err)?;
    let state = PyDict::new(py);
    for (name, t) in tensors {
        state.set_item(name, PyTensor(t))?;
    }
    let info = cfg.data.name.info();
    let args = PyDict::new(py);
    args.set_item("arch", cfg.model.arch.name())?;
    args.set_item("width", cfg.model.width)?;
    args.set_item("channels", info.channels)?;
    args.set_item("side", info.side)?;
    args.set_item("classes", info.classes)?;
    args.set_item("mod", cfg.model.modded)?;
    args.set_item("l2", cfg.model.l2)?;
    Ok((state, args))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("NcoodError", m.py().get_type::<NcoodError>())?;
    m.add_class::<PyGda>()?;
    m.add_class::<PyClassStats>()?;
    m.add_function(wrap_pyfunction!(collapse_measures, m)?)?;
    m.add_function(wrap_pyfunction!(nc_loss, m)?)?;
    m.add_function(wrap_pyfunction!(metrics, m)?)?;
    m.add_function(wrap_pyfunction!(softmax_scores, m)?)?;
    m.add_function(wrap_pyfunction!(read_checkpoint, m)?)?;
    Ok(())
}
