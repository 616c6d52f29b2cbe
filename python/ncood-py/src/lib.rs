//! `ncood._native`: ncood's GDA, Neural Collapse measures, NC loss, detection metrics and softmax
//! scores on torch tensors, through pyo3-tch (the tensors are libtorch's own: no copies at the
//! boundary, and results computed by tch ops keep their autograd graph, so `nc_loss` is
//! differentiable in PyTorch with ncood's own definition and backward).
//!
//! This layer converts what Python hands over and turns every `ncood::Error` into
//! `ncood.NcoodError` with ncood's message; the checks of values (dtype, finiteness, labels, the
//! NC loss's preconditions) and all numerics are the library's. It checks itself only what
//! libtorch's Rust binding cannot see: a tensor's layout (sparse, nested) and the name of its
//! device (tch reports meta as MPS), read from the Python object. Long computations run without
//! the GIL. The docstrings here are the API's one source: `python/ncood/_native.pyi` repeats them
//! and a test checks that the two agree.
use std::ffi::CString;
use std::sync::{Mutex, MutexGuard};

use ncood::collapse::{self, Classifier};
use ncood::features::{Labels, check_finite};
use ncood::ood::gda::{Covariance, Gda, GdaInfo};
use ncood::ood::{ScoreName, softmax};
use ncood::stats::{self, Moments, StreamingStats};
use pyo3::exceptions::{PyTypeError, PyUserWarning, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple, PyType};
use pyo3_tch::PyTensor;
use tch::{Device, Kind, Tensor};

pyo3::create_exception!(
    ncood,
    NcoodError,
    PyValueError,
    "An input ncood cannot use (NaN, empty, mismatched shapes, a sparse or meta tensor, a singular covariance, a bad file), with ncood's message naming the input and the problem."
);

pyo3::create_exception!(
    ncood,
    ConditioningWarning,
    PyUserWarning,
    "A fitted GDA whose covariances are so ill-conditioned (a condition number above 1e12, or a jitter below 1e-12) that its scores lose digits."
);

fn err(e: ncood::Error) -> PyErr {
    NcoodError::new_err(e.to_string())
}

fn invalid(what: &str, problem: impl Into<String>) -> PyErr {
    err(ncood::Error::invalid(what, problem))
}

/// A tensor argument: a torch.Tensor (else TypeError) that is dense (strided, not nested) and on
/// the CPU or a CUDA device, as Python names them; its values are the library's to check.
fn tensor_arg(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Tensor> {
    let t = obj.extract::<PyTensor>()?.0;
    let layout = obj.getattr("layout")?.str()?.to_string();
    let device = obj.getattr("device")?.getattr("type")?.to_string();
    let nested = obj.getattr("is_nested")?.is_truthy()?;
    if layout != "torch.strided" || nested || !matches!(device.as_str(), "cpu" | "cuda") {
        let kind = if nested { "nested".to_string() } else { layout };
        return Err(invalid(
            what,
            format!(
                "expected a dense tensor on the CPU or a CUDA device, got a {kind} tensor on {device}"
            ),
        ));
    }
    Ok(t)
}

/// A finite float tensor of rank `rank` (1: N, 2: N x D) with at least one element per axis.
fn checked(obj: &Bound<'_, PyAny>, rank: usize, what: &str) -> PyResult<Tensor> {
    let t = tensor_arg(obj, what)?;
    check_finite(&t, what).map_err(err)?;
    if t.dim() != rank || t.size().contains(&0) {
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
    Ok(t)
}

/// Integer labels (classes below `classes` when given, else 0..max with every class present).
fn labels_arg(obj: &Bound<'_, PyAny>, classes: Option<usize>, what: &str) -> PyResult<Labels> {
    Labels::from_tensor(&tensor_arg(obj, what)?, classes, what).map_err(err)
}

/// A DataLoader's batch split into its inputs and labels: a tensor (no labels), or a tuple or
/// list (inputs, labels, ...).
fn split_batch<'py>(
    item: &Bound<'py, PyAny>,
    what: &str,
) -> PyResult<(Bound<'py, PyAny>, Option<Bound<'py, PyAny>>)> {
    if item.extract::<PyTensor>().is_ok() {
        return Ok((item.clone(), None));
    }
    let parts: Vec<Bound<'py, PyAny>> = if let Ok(t) = item.downcast::<PyTuple>() {
        t.iter().collect()
    } else if let Ok(l) = item.downcast::<PyList>() {
        l.iter().collect()
    } else {
        vec![]
    };
    match &parts[..] {
        [x, rest @ ..] => Ok((x.clone(), rest.first().cloned())),
        [] => Err(PyTypeError::new_err(format!(
            "{what}: expected a torch.Tensor or an (inputs, labels) tuple or list, got {}",
            item.get_type()
        ))),
    }
}

/// The features of a batch's inputs: `model(x)` with autograd off (tch's guard sets the
/// thread's grad mode, which PyTorch shares), or `x` itself.
fn features_of<'py>(
    x: Bound<'py, PyAny>,
    model: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    match model {
        None => Ok(x),
        Some(m) => {
            let _no_grad = tch::no_grad_guard();
            m.call1((x,))
        }
    }
}

/// The items of `obj` if it is an iterable of batches rather than one tensor.
fn batches<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, pyo3::types::PyIterator>>> {
    if obj.extract::<PyTensor>().is_ok() {
        return Ok(None);
    }
    obj.try_iter().map(Some).map_err(|_| {
        PyTypeError::new_err(format!(
            "expected a torch.Tensor or an iterable of batches (a DataLoader), got {}",
            obj.get_type()
        ))
    })
}

/// Runs `f` on `value` without the GIL and hands `value` back: tch's tensors are Send but not
/// Sync, so a closure that runs on without the GIL may own them but not borrow them.
fn unlocked<T: Send, R: Send>(py: Python<'_>, value: T, f: impl FnOnce(&T) -> R + Send) -> (T, R) {
    py.allow_threads(move || {
        let r = f(&value);
        (value, r)
    })
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
fn classifier(weight: &Bound<'_, PyAny>, bias: Option<&Bound<'_, PyAny>>) -> PyResult<Classifier> {
    let w = tensor_arg(weight, "given classifier weight")?;
    check_finite(&w, "given classifier weight").map_err(err)?;
    let b = bias
        .map(|b| {
            let t = tensor_arg(b, "given classifier bias")?;
            check_finite(&t, "given classifier bias").map_err(err)?;
            Ok::<_, PyErr>(t)
        })
        .transpose()?;
    Classifier::new(&w, b.as_ref(), "given").map_err(err)
}

/// NC1-4 as a dict: `nc1` (None when undefined, with `nc1_undefined` saying why), `nc2` (a dict
/// of six), `nc3`, `nc4`, `n`.
fn collapse_dict(py: Python<'_>, c: &collapse::Collapse) -> PyResult<PyObject> {
    let d = to_py(py, c)?;
    d.bind(py).downcast::<PyDict>()?.del_item("features")?;
    Ok(d)
}

/// A value of a state dict (`ncood` wrote it; a user may have edited it).
fn state_item<'py>(
    state: &Bound<'py, PyDict>,
    key: &str,
    what: &str,
) -> PyResult<Bound<'py, PyAny>> {
    state
        .get_item(key)?
        .ok_or_else(|| invalid(what, format!("has no {key:?}")))
}

fn state_tensor(state: &Bound<'_, PyDict>, key: &str, what: &str) -> PyResult<Tensor> {
    let obj = state_item(state, key, what)?;
    tensor_arg(&obj, &format!("{what} {key}"))
}

/// Warns (`ConditioningWarning`) when a fitted GDA's scores lose digits: a condition number above
/// 1e12 (or none: not positive definite in float64) leaves about 16 - 12 = 4 reliable digits in
/// its Mahalanobis terms, and a jitter below 1e-12 regularises nothing while hiding a singular
/// covariance (there, scores differed from an exact solve by 11% and moved the AUROC by 0.013).
fn warn_conditioning(py: Python<'_>, info: &GdaInfo) -> PyResult<()> {
    let bad: Vec<usize> = (0..info.condition_numbers.len())
        .filter(|&c| info.condition_numbers[c].is_none_or(|k| k > 1e12))
        .collect();
    let tiny_jitter = info.jitter > 0.0 && info.jitter < 1e-12;
    if bad.is_empty() && !tiny_jitter {
        return Ok(());
    }
    let mut causes = vec![];
    if !bad.is_empty() {
        let largest = bad
            .iter()
            .map(|&c| info.condition_numbers[c].unwrap_or(f64::INFINITY))
            .fold(0.0, f64::max);
        causes.push(format!(
            "the covariance of class(es) {bad:?} has a condition number above 1e12 (largest {largest:.1e})"
        ));
    }
    if tiny_jitter {
        causes.push(format!(
            "jitter {:e} (below 1e-12: a singular covariance made barely invertible)",
            info.jitter
        ));
    }
    let msg = format!(
        "GDA: {}, so the log-densities lose digits and the scores may differ from an exact solve; covariance=\"shrinkage\" or \"tied\" gives better-conditioned estimates",
        causes.join("; ")
    );
    let msg = CString::new(msg).expect("no NUL in the message");
    PyErr::warn(py, &py.get_type::<ConditioningWarning>(), &msg, 1)
}

fn covariance_arg(name: &str) -> PyResult<Covariance> {
    name.parse().map_err(err)
}

/// A fitted GDA (DDU): per-class float64 means and covariances (`covariance`: "full", each class
/// its own; "tied", one shared; "shrinkage", each class its Ledoit-Wolf estimate), with the
/// smallest jitter of the ladder 0, 1e-308, ..., 1e-1 that lets every Cholesky factorisation
/// succeed. Only a fitted GDA exists: make one with `GDA.fit`, `GDA.fit_loader`, `ClassStats.gda`
/// or `GDA.from_state_dict`. Pickles and `torch.save`s through `state_dict()`.
#[pyclass(name = "GDA", module = "ncood", frozen)]
struct PyGda(Mutex<Gda>);

impl PyGda {
    /// Wraps a fitted GDA, warning first if it is ill-conditioned.
    fn fitted(py: Python<'_>, gda: Gda) -> PyResult<PyGda> {
        warn_conditioning(py, &gda.info)?;
        Ok(PyGda(Mutex::new(gda)))
    }
    /// `f` of the GDA on the rows of `features` (a tensor, a 1-D row, or an iterable of
    /// batches, through `model` when given), without the GIL, on the features' device.
    fn per_row(
        &self,
        py: Python<'_>,
        features: &Bound<'_, PyAny>,
        model: Option<&Bound<'_, PyAny>>,
        f: fn(&Gda, &Tensor) -> ncood::Result<Tensor>,
    ) -> PyResult<PyTensor> {
        let what = "GDA features to score";
        let one = |x: Tensor| -> PyResult<Tensor> {
            let dev = x.device();
            let s = py.allow_threads(move || f(&self.gda(), &x)).map_err(err)?;
            Ok(s.to_device(dev))
        };
        let Some(items) = batches(features)? else {
            if tensor_arg(features, what)?.dim() == 1 {
                let row = features.call_method1("unsqueeze", (0,))?;
                return Ok(PyTensor(one(checked(&row, 2, what)?)?.squeeze_dim(0)));
            }
            return Ok(PyTensor(one(checked(features, 2, what)?)?));
        };
        let mut parts = vec![];
        for item in items {
            let (x, _) = split_batch(&item?, "GDA batch")?;
            parts.push(one(checked(&features_of(x, model)?, 2, what)?)?);
        }
        if parts.is_empty() {
            return Err(invalid(what, "the iterable has no batches"));
        }
        let dev = parts[0].device();
        let parts: Vec<Tensor> = parts.iter().map(|p| p.to_device(dev)).collect();
        Ok(PyTensor(Tensor::cat(&parts, 0)))
    }

    /// The GDA; held only briefly or without the GIL (a thread that waits for it with the GIL
    /// would block the one that holds it from returning to Python).
    fn gda(&self) -> MutexGuard<'_, Gda> {
        self.0.lock().expect("no panic while the GDA is held")
    }
}

#[pymethods]
impl PyGda {
    /// Fits on features (N x D, any float dtype, on the CPU or a CUDA device: computed there in
    /// float64) and integer labels 0..C-1 (every class with at least 2 samples; "tied" needs 1
    /// and more samples than classes). Raises NcoodError on NaN/inf, empty or mismatched inputs,
    /// too few samples, or covariances that stay singular with jitter 1e-1; warns
    /// (ConditioningWarning) when the fit is ill-conditioned.
    #[staticmethod]
    #[pyo3(signature = (features, labels, covariance = "full"))]
    fn fit(
        py: Python<'_>,
        features: &Bound<'_, PyAny>,
        labels: &Bound<'_, PyAny>,
        covariance: &str,
    ) -> PyResult<PyGda> {
        let cov = covariance_arg(covariance)?;
        let x = checked(features, 2, "GDA features")?;
        let y = labels_arg(labels, None, "GDA labels")?;
        let gda = py
            .allow_threads(move || Gda::fit_with(&x, &y, cov))
            .map_err(err)?;
        PyGda::fitted(py, gda)
    }

    /// Fits in one pass over a loader of (inputs, labels) batches (a DataLoader; labels 0..C-1,
    /// C = the largest label + 1), with `model(inputs)` as the features when a model is given
    /// (called without autograd; inputs are passed as the loader gives them), the inputs
    /// themselves otherwise; memory C x D x D whatever the number of samples. As `fit` otherwise.
    #[staticmethod]
    #[pyo3(signature = (loader, model = None, covariance = "full"))]
    fn fit_loader(
        py: Python<'_>,
        loader: &Bound<'_, PyAny>,
        model: Option<&Bound<'_, PyAny>>,
        covariance: &str,
    ) -> PyResult<PyGda> {
        let cov = covariance_arg(covariance)?;
        let acc = Mutex::new(StreamingStats::new(1).map_err(err)?);
        accumulate(py, &acc, loader, model, true, "GDA.fit_loader batch")?;
        let acc = acc.into_inner().expect("no panic while accumulating");
        let gda = py
            .allow_threads(move || Gda::from_stats_with(&acc.finish("GDA.fit_loader")?, cov))
            .map_err(err)?;
        PyGda::fitted(py, gda)
    }

    /// ID-confidence of each row (logsumexp over classes of the Gaussian log-densities; higher =
    /// more in-distribution), float64, on the features' device (computed on the device the GDA
    /// was fitted on). `features`: N x D (a 1-D row of D gives a 0-d tensor), or an iterable of
    /// batches (tensors, or (inputs, labels, ...) tuples whose labels are ignored), with
    /// `model(inputs)` as the features when a model is given.
    #[pyo3(signature = (features, model = None))]
    fn score(
        &self,
        py: Python<'_>,
        features: &Bound<'_, PyAny>,
        model: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyTensor> {
        self.per_row(py, features, model, Gda::scores)
    }

    /// The Gaussian log-density of each row under each class, N x C float64 (inputs as for
    /// `score`; a 1-D row gives C values). `score` is their logsumexp; their maximum over classes
    /// is the nearest-class score of Lee et al.'s Mahalanobis detector (pytorch-ood's, negated,
    /// up to a constant with a tied covariance), their argmax GDA's class prediction.
    #[pyo3(signature = (features, model = None))]
    fn log_densities(
        &self,
        py: Python<'_>,
        features: &Bound<'_, PyAny>,
        model: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyTensor> {
        self.per_row(py, features, model, Gda::log_densities)
    }

    /// The covariance model: "full", "tied" or "shrinkage".
    #[getter]
    fn covariance(&self) -> &'static str {
        self.gda().covariance().name()
    }

    /// The jitter eps added to every covariance's diagonal.
    #[getter]
    fn jitter(&self) -> f64 {
        self.gda().info.jitter
    }

    /// Condition number of each class's covariance + eps I (None where the smallest computed
    /// eigenvalue is not positive).
    #[getter]
    fn condition_numbers(&self) -> Vec<Option<f64>> {
        self.gda().info.condition_numbers.clone()
    }

    /// Training samples per class.
    #[getter]
    fn class_counts(&self) -> Vec<usize> {
        self.gda().info.class_counts.clone()
    }

    /// D.
    #[getter]
    fn feature_dim(&self) -> usize {
        self.gda().info.feature_dim
    }

    /// The class means, C x D float64 (on the device the GDA was fitted on).
    #[getter]
    fn means(&self) -> PyTensor {
        PyTensor(self.gda().means().copy())
    }

    /// The covariances the scores use (jitter included), C x D x D float64: L L^T of
    /// `cholesky_factors`, the one shared matrix repeated when tied.
    #[getter]
    fn covariances(&self) -> PyTensor {
        let g = self.gda();
        let (l, c) = (g.factors(), g.means().size()[0]);
        let d = l.size()[1];
        PyTensor(
            l.matmul(&l.transpose(1, 2))
                .expand([c, d, d], false)
                .contiguous(),
        )
    }

    /// The lower Cholesky factors L of the covariances the scores use, K x D x D float64 (K = 1
    /// when tied, else C).
    #[getter]
    fn cholesky_factors(&self) -> PyTensor {
        PyTensor(self.gda().factors().copy())
    }

    /// The fitted state as plain tensors, numbers and strings (what `torch.save` and
    /// `torch.load(weights_only=True)` take): covariance, means, cholesky_factors, jitter,
    /// condition_numbers, class_counts.
    fn state_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let g = self.gda();
        let d = PyDict::new(py);
        d.set_item("covariance", g.covariance().name())?;
        d.set_item("means", PyTensor(g.means().copy()))?;
        d.set_item("cholesky_factors", PyTensor(g.factors().copy()))?;
        d.set_item("jitter", g.info.jitter)?;
        d.set_item("condition_numbers", g.info.condition_numbers.clone())?;
        d.set_item("class_counts", g.info.class_counts.clone())?;
        Ok(d)
    }

    /// The GDA of a `state_dict()`, checked (shapes, finite values, lower-triangular factors
    /// with a positive diagonal); tensors stay on their device.
    #[classmethod]
    fn from_state_dict(_cls: &Bound<'_, PyType>, state: &Bound<'_, PyDict>) -> PyResult<PyGda> {
        let what = "GDA state";
        let cov = covariance_arg(&state_item(state, "covariance", what)?.extract::<String>()?)?;
        let means = state_tensor(state, "means", what)?;
        let factors = state_tensor(state, "cholesky_factors", what)?;
        let info = GdaInfo {
            jitter: state_item(state, "jitter", what)?.extract()?,
            condition_numbers: state_item(state, "condition_numbers", what)?.extract()?,
            class_counts: state_item(state, "class_counts", what)?.extract()?,
            feature_dim: means.size().get(1).map_or(0, |&d| d as usize),
        };
        let gda = Gda::from_parts(means, factors, cov, info, what).map_err(err)?;
        Ok(PyGda(Mutex::new(gda)))
    }

    /// Pickling (and `torch.save`) goes through `state_dict()` and `from_state_dict`.
    fn __reduce__<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyAny>, (Bound<'py, PyDict>,))> {
        let restore = py.get_type::<PyGda>().getattr("from_state_dict")?;
        Ok((restore, (self.state_dict(py)?,)))
    }

    fn __repr__(&self) -> String {
        let g = self.gda();
        format!(
            "GDA(covariance={:?}, classes={}, feature_dim={}, jitter={:e})",
            g.covariance().name(),
            g.info.class_counts.len(),
            g.info.feature_dim,
            g.info.jitter
        )
    }
}

/// Adds the batches of `loader` to `acc`: (inputs, labels) pairs, with `model(inputs)` as the
/// features when given; with `grow`, the class count follows the largest label seen.
fn accumulate(
    py: Python<'_>,
    acc: &Mutex<StreamingStats>,
    loader: &Bound<'_, PyAny>,
    model: Option<&Bound<'_, PyAny>>,
    grow: bool,
    what: &str,
) -> PyResult<()> {
    let items = batches(loader)?.ok_or_else(|| {
        PyTypeError::new_err(format!(
            "{what}: expected an iterable of (inputs, labels) batches, got one tensor"
        ))
    })?;
    let mut any = false;
    for item in items {
        let (x, y) = split_batch(&item?, what)?;
        let y = y.ok_or_else(|| {
            PyTypeError::new_err(format!(
                "{what}: expected (inputs, labels), got a tensor alone"
            ))
        })?;
        add_batch(py, acc, &features_of(x, model)?, &y, grow, what)?;
        any = true;
    }
    if !any {
        return Err(invalid(what, "the loader has no batches"));
    }
    Ok(())
}

/// Adds one batch (features B x D, labels B) to `acc`, locked and computed without the GIL (a
/// thread that waited for the lock with the GIL would block the holder from returning).
fn add_batch(
    py: Python<'_>,
    acc: &Mutex<StreamingStats>,
    features: &Bound<'_, PyAny>,
    labels: &Bound<'_, PyAny>,
    grow: bool,
    what: &str,
) -> PyResult<()> {
    let x = checked(features, 2, &format!("{what} features"))?;
    let label_what = format!("{what} labels");
    let y = labels_arg(labels, Some(stats::MAX_STREAMING_CLASSES), &label_what)?;
    py.allow_threads(move || {
        let mut s = acc.lock().expect("no panic while accumulating");
        if grow {
            let top = y.values().iter().copied().max().unwrap_or(0) as usize;
            s.grow(top + 1)?;
        }
        let y = Labels::new(y.values().to_vec(), Some(s.classes()), &label_what)?;
        s.update(&x, &y, what)
    })
    .map_err(err)
}

/// Per-class float64 counts, means and moments (scatter matrices, and the two higher moments the
/// Ledoit-Wolf shrinkage needs), accumulated batch by batch (memory C x D x D whatever the number
/// of samples; batches merged by Chan et al.'s pairwise update), for GDA and Neural Collapse on a
/// data loader without holding all features. `ClassStats(num_classes)` starts empty; computed on
/// the device of the first batch (CPU or CUDA). Statistics of several processes merge exactly
/// (`merge`, `ncood.all_reduce`); pickles and `torch.save`s through `state_dict()`.
#[pyclass(name = "ClassStats", module = "ncood", frozen)]
struct PyClassStats(Mutex<StreamingStats>);

impl PyClassStats {
    /// The accumulator; held only briefly or without the GIL (see `PyGda::gda`).
    fn stats(&self) -> MutexGuard<'_, StreamingStats> {
        self.0.lock().expect("no panic while accumulating")
    }

    fn finish(&self, py: Python<'_>) -> PyResult<stats::ClassStats> {
        py.allow_threads(|| self.stats().finish("ClassStats"))
            .map_err(err)
    }
}

#[pymethods]
impl PyClassStats {
    #[new]
    fn new(num_classes: usize) -> PyResult<Self> {
        Ok(PyClassStats(Mutex::new(
            StreamingStats::new(num_classes).map_err(err)?,
        )))
    }

    /// Adds a batch: features (B x D, any float dtype, on the CPU or a CUDA device) and labels
    /// 0..num_classes-1 (a batch need not hold every class), or one (features, labels) tuple or
    /// list as a DataLoader gives it.
    #[pyo3(signature = (features, labels = None))]
    fn update(
        &self,
        py: Python<'_>,
        features: &Bound<'_, PyAny>,
        labels: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let (x, y) = match labels {
            Some(y) => (features.clone(), Some(y.clone())),
            None => split_batch(features, "ClassStats batch")?,
        };
        let y = y.ok_or_else(|| PyTypeError::new_err("ClassStats.update: labels are missing"))?;
        add_batch(py, &self.0, &x, &y, false, "ClassStats batch")
    }

    /// Adds every (inputs, labels) batch of a loader, with `model(inputs)` as the features when
    /// a model is given (called without autograd), the inputs themselves otherwise.
    #[pyo3(signature = (loader, model = None))]
    fn update_loader(
        &self,
        py: Python<'_>,
        loader: &Bound<'_, PyAny>,
        model: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        accumulate(py, &self.0, loader, model, false, "ClassStats batch")
    }

    /// Adds every sample of `other` (same num_classes and D), as if its batches had been added
    /// here: exact, whatever the split (the statistics of two DDP ranks, two shards).
    fn merge(&self, py: Python<'_>, other: &PyClassStats) -> PyResult<()> {
        let theirs = py.allow_threads(|| other.stats().copy());
        py.allow_threads(move || self.stats().merge(&theirs, "ClassStats to merge"))
            .map_err(err)
    }

    /// C: labels are 0..C-1.
    #[getter]
    fn num_classes(&self) -> usize {
        self.stats().classes()
    }

    /// Samples seen per class.
    #[getter]
    fn counts(&self) -> Vec<usize> {
        self.stats().counts().to_vec()
    }

    /// The class means (C x D, float64, on the statistics' device); every class must have a
    /// sample.
    #[getter]
    fn means(&self, py: Python<'_>) -> PyResult<PyTensor> {
        Ok(PyTensor(self.finish(py)?.means))
    }

    /// GDA fitted on the statistics so far (as `GDA.fit` on all the batches at once).
    #[pyo3(signature = (covariance = "full"))]
    fn gda(&self, py: Python<'_>, covariance: &str) -> PyResult<PyGda> {
        let cov = covariance_arg(covariance)?;
        let st = self.finish(py)?;
        let gda = py
            .allow_threads(move || Gda::from_stats_with(&st, cov))
            .map_err(err)?;
        PyGda::fitted(py, gda)
    }

    /// NC1-4 with the classifier `weight` (C x D) and optional `bias` (C). NC4 needs the final
    /// class means, so it takes a second pass: `features` holds every sample's features again,
    /// as one tensor or an iterable of batches (tensors, or (inputs, labels, ...) tuples as a
    /// DataLoader gives them; any order), with `model(inputs)` as the features when a model is
    /// given.
    #[pyo3(signature = (features, weight, bias = None, model = None))]
    fn collapse(
        &self,
        py: Python<'_>,
        features: &Bound<'_, PyAny>,
        weight: &Bound<'_, PyAny>,
        bias: Option<&Bound<'_, PyAny>>,
        model: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyObject> {
        let st = self.finish(py)?;
        let head = classifier(weight, bias)?;
        collapse::check_classifier(&st, &head).map_err(err)?;
        let (d, total) = (st.means.size()[1], st.total());
        let what = "ClassStats.collapse features";
        let (mut rows, mut disagree) = (0usize, 0usize);
        let mut held = Some((st, head));
        let mut add = |t: &Bound<'_, PyAny>| -> PyResult<()> {
            let x = checked(t, 2, what)?;
            if x.size()[1] != d {
                return Err(err(ncood::Error::ShapeMismatch {
                    what: what.into(),
                    expected: format!("B x {d}"),
                    got: format!("{:?}", x.size()),
                }));
            }
            rows += x.size()[0] as usize;
            let (back, n) = unlocked(py, held.take().expect("held"), move |(st, head)| {
                collapse::nc4_disagreements(st, &x, head)
            });
            held = Some(back);
            disagree += n;
            Ok(())
        };
        match batches(features)? {
            None => add(features)?,
            Some(items) => {
                for item in items {
                    let (x, _) = split_batch(&item?, "ClassStats.collapse batch")?;
                    add(&features_of(x, model)?)?;
                }
            }
        }
        if rows != total {
            return Err(invalid(
                what,
                format!(
                    "{rows} rows, but the statistics hold {total} samples: NC4 needs every sample once"
                ),
            ));
        }
        let (st, head) = held.expect("held");
        let c = py
            .allow_threads(move || collapse::from_disagreements(&st, &head, disagree, None))
            .map_err(err)?;
        collapse_dict(py, &c)
    }

    /// The statistics as plain tensors (what `torch.save`, `torch.load(weights_only=True)` and
    /// `torch.distributed` take): counts (C, int64) and, once a batch was added, means (C x D),
    /// scatter (C x D x D), norm3 (C x D) and norm4 (C), float64.
    fn state_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.stats();
        let d = PyDict::new(py);
        let counts: Vec<i64> = s.counts().iter().map(|&n| n as i64).collect();
        d.set_item("counts", PyTensor(Tensor::from_slice(&counts)))?;
        if let Some(m) = s.moments() {
            d.set_item("means", PyTensor(m.means.copy()))?;
            d.set_item("scatter", PyTensor(m.scatter.copy()))?;
            d.set_item("norm3", PyTensor(m.norm3.copy()))?;
            d.set_item("norm4", PyTensor(m.norm4.copy()))?;
        }
        Ok(d)
    }

    /// The accumulator of a `state_dict()`, checked (shapes, finite values, empty classes
    /// zero); tensors stay on their device.
    #[classmethod]
    fn from_state_dict(
        _cls: &Bound<'_, PyType>,
        state: &Bound<'_, PyDict>,
    ) -> PyResult<PyClassStats> {
        let what = "ClassStats state";
        let counts = state_tensor(state, "counts", what)?;
        let counts: Vec<i64> =
            Labels::from_tensor(&counts, Some(usize::MAX), &format!("{what} counts"))
                .map_err(err)?
                .values()
                .to_vec();
        let moments = match state.get_item("means")? {
            None => None,
            Some(_) => Some(Moments {
                means: state_tensor(state, "means", what)?,
                scatter: state_tensor(state, "scatter", what)?,
                norm3: state_tensor(state, "norm3", what)?,
                norm4: state_tensor(state, "norm4", what)?,
            }),
        };
        let counts = counts.into_iter().map(|n| n as usize).collect();
        let s = StreamingStats::from_parts(counts, moments, what).map_err(err)?;
        Ok(PyClassStats(Mutex::new(s)))
    }

    /// Pickling (and `torch.save`) goes through `state_dict()` and `from_state_dict`.
    fn __reduce__<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyAny>, (Bound<'py, PyDict>,))> {
        let restore = py.get_type::<PyClassStats>().getattr("from_state_dict")?;
        Ok((restore, (self.state_dict(py)?,)))
    }

    fn __repr__(&self) -> String {
        let s = self.stats();
        format!(
            "ClassStats(num_classes={}, counts={:?})",
            s.classes(),
            s.counts()
        )
    }
}

/// NC1-4 (float64) of features (N x D) with labels 0..C-1 and the classifier weight (C x D, not
/// centred) and optional bias (C).
#[pyfunction]
#[pyo3(name = "collapse", signature = (features, labels, weight, bias = None))]
fn collapse_measures(
    py: Python<'_>,
    features: &Bound<'_, PyAny>,
    labels: &Bound<'_, PyAny>,
    weight: &Bound<'_, PyAny>,
    bias: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyObject> {
    let head = classifier(weight, bias)?;
    let x = checked(features, 2, "NC features")?;
    let y = labels_arg(labels, Some(head.classes()), "NC labels")?;
    let c = py
        .allow_threads(move || collapse::measure(&x, &y, &head, None, stats::CHUNK))
        .map_err(err)?;
    collapse_dict(py, &c)
}

/// The NC loss on a batch (NC1 + equinorm(M) + equinorm(W) + maxangle(M) + maxangle(W) + NC3):
/// features (B x D), labels (B; every class 0..C-1 present), classifier weight (C x D, on the
/// features' device). Computed in float64 by ncood's own tch ops and returned as a 0-d tensor in
/// the features' dtype, differentiable in features and weight by autograd.
#[pyfunction]
fn nc_loss(
    py: Python<'_>,
    features: &Bound<'_, PyAny>,
    labels: &Bound<'_, PyAny>,
    weight: &Bound<'_, PyAny>,
) -> PyResult<PyTensor> {
    let h = tensor_arg(features, "nc_loss features")?;
    let y = tensor_arg(labels, "nc_loss labels")?;
    let w = tensor_arg(weight, "nc_loss weight")?;
    let loss = py
        .allow_threads(move || collapse::nc_loss_checked(&h, &y, &w))
        .map_err(err)?;
    Ok(PyTensor(loss))
}

/// Detection metrics of the scores (1-D) of ID and of OoD samples, with OoD as the positive
/// class: AUROC (ties half), AUPR-In/Out (step-wise average precision), FPR@95 with OoD positive
/// (OpenOOD) and with ID positive, top-N false positives (N = number of ID samples). ncood's
/// scores are ID-confidences (higher = more in-distribution), the default; pass
/// higher_is_ood=True for outlier scores (higher = more OoD, e.g. pytorch-ood's detectors),
/// which are negated first. The wrong sign gives 1 - AUROC, with no error.
#[pyfunction]
#[pyo3(signature = (id_scores, ood_scores, *, higher_is_ood = false))]
fn metrics(
    py: Python<'_>,
    id_scores: &Bound<'_, PyAny>,
    ood_scores: &Bound<'_, PyAny>,
    higher_is_ood: bool,
) -> PyResult<PyObject> {
    let as_confidence = |obj: &Bound<'_, PyAny>, what: &str| -> PyResult<Vec<f64>> {
        let t = checked(obj, 1, what)?;
        let sign = if higher_is_ood { -1.0 } else { 1.0 };
        Ok(Vec::<f64>::try_from(
            (t.to_device(Device::Cpu).to_kind(Kind::Double) * sign).contiguous(),
        )
        .expect("f64 values"))
    };
    let id = as_confidence(id_scores, "ID scores")?;
    let ood = as_confidence(ood_scores, "OoD scores")?;
    let d = py
        .allow_threads(|| ncood::metrics::detection(&id, &ood))
        .map_err(err)?;
    to_py(py, &d)
}

/// The softmax-family ID-confidences of logits (N x C) at temperature T > 0 (max_logit ignores
/// T): max softmax probability, max logit, negative entropy, energy T logsumexp(l / T); float64
/// on the logits' device. Computed from (l - max l) / T, so finite for any finite logits and T
/// (energy beyond the float64 range is an error).
#[pyfunction]
#[pyo3(signature = (logits, temperature = 1.0))]
fn softmax_scores<'py>(
    py: Python<'py>,
    logits: &Bound<'py, PyAny>,
    temperature: f64,
) -> PyResult<Bound<'py, PyDict>> {
    let l = checked(logits, 2, "logits")?;
    if !(temperature.is_finite() && temperature > 0.0) {
        return Err(invalid(
            "temperature",
            format!("{temperature}; expected a finite value > 0"),
        ));
    }
    let t = temperature;
    let dev = l.device();
    let scores = py.allow_threads(move || {
        [
            (ScoreName::Msp, softmax::msp(&l, t)),
            (ScoreName::MaxLogit, softmax::max_logit(&l)),
            (ScoreName::NegEntropy, softmax::neg_entropy(&l, t)),
            (ScoreName::Energy, softmax::energy(&l, t)),
        ]
    });
    let out = PyDict::new(py);
    for (name, values) in scores {
        let v = Tensor::from_slice(&values);
        check_finite(&v, &format!("{name} at temperature {t:e}")).map_err(err)?;
        out.set_item(name.name(), PyTensor(v.to_device(dev)))?;
    }
    Ok(out)
}

/// An ncood weights checkpoint (`epoch-NNNN.safetensors`, not the `.state` file): its tensors
/// (CPU) and the reference ResNet's constructor arguments from the run configuration recorded in
/// it; `ncood.load_checkpoint` builds the model.
#[pyfunction]
fn read_checkpoint(
    py: Python<'_>,
    path: std::path::PathBuf,
) -> PyResult<(Bound<'_, PyDict>, Bound<'_, PyDict>)> {
    let (tensors, cfg) = ncood::run::read_weights(&path).map_err(err)?;
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
    m.add("__version__", ncood::VERSION)?;
    m.add("NcoodError", m.py().get_type::<NcoodError>())?;
    m.add(
        "ConditioningWarning",
        m.py().get_type::<ConditioningWarning>(),
    )?;
    m.add_class::<PyGda>()?;
    m.add_class::<PyClassStats>()?;
    m.add_function(wrap_pyfunction!(collapse_measures, m)?)?;
    m.add_function(wrap_pyfunction!(nc_loss, m)?)?;
    m.add_function(wrap_pyfunction!(metrics, m)?)?;
    m.add_function(wrap_pyfunction!(softmax_scores, m)?)?;
    m.add_function(wrap_pyfunction!(read_checkpoint, m)?)?;
    Ok(())
}
