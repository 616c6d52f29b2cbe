"""Type stub of ncood's compiled extension (its Rust source is the docstrings' one source: a test
checks that these are the same); re-exported by `ncood`."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Literal, TypedDict

from torch import Tensor

__version__: str

Covariance = Literal["full", "tied", "shrinkage"]
#: A batch as a DataLoader gives it: a tensor, or (inputs, labels, ...).
Batch = Tensor | tuple[Any, ...] | list[Any]
Model = Callable[[Any], Tensor]

class NcoodError(ValueError):
    """An input ncood cannot use (NaN, empty, mismatched shapes, a sparse or meta tensor, a
    singular covariance, a bad file), with ncood's message naming the input and the problem."""

class ConditioningWarning(UserWarning):
    """A fitted GDA whose covariances are so ill-conditioned (a condition number above 1e12, or a
    jitter below 1e-12) that its scores lose digits."""

class Nc2(TypedDict):
    equinorm_means: float
    equinorm_weights: float
    equiangularity_means: float
    equiangularity_weights: float
    maxangle_means: float
    maxangle_weights: float

class _Collapse(TypedDict):
    nc1: float | None
    nc2: Nc2
    nc3: float
    nc4: float
    n: int

class Collapse(_Collapse, total=False):
    """NC1-4; `nc1` is None and `nc1_undefined` says why when the centred class means span fewer
    than C - 1 dimensions."""

    nc1_undefined: str

class Detection(TypedDict):
    """Detection metrics, OoD positive."""

    auroc: float
    aupr_in: float
    aupr_out: float
    fpr95_ood_positive: float
    fpr95_id_positive: float
    topn_false_positives: int

class SoftmaxScores(TypedDict):
    msp: Tensor
    max_logit: Tensor
    neg_entropy: Tensor
    energy: Tensor

class GDAState(TypedDict):
    covariance: Covariance
    means: Tensor
    cholesky_factors: Tensor
    jitter: float
    condition_numbers: list[float | None]
    class_counts: list[int]

class GDA:
    """A fitted GDA (DDU): per-class float64 means and covariances (`covariance`: "full", each
    class its own; "tied", one shared; "shrinkage", each class its Ledoit-Wolf estimate), with
    the smallest jitter of the ladder 0, 1e-308, ..., 1e-1 that lets every Cholesky
    factorisation succeed. Only a fitted GDA exists: make one with `GDA.fit`, `GDA.fit_loader`,
    `ClassStats.gda` or `GDA.from_state_dict`. Pickles and `torch.save`s through `state_dict()`."""

    @staticmethod
    def fit(features: Tensor, labels: Tensor, covariance: Covariance = "full") -> GDA:
        """Fits on features (N x D, any float dtype, on the CPU or a CUDA device: computed there in
        float64) and integer labels 0..C-1 (every class with at least 2 samples; "tied" needs 1
        and more samples than classes). Raises NcoodError on NaN/inf, empty or mismatched
        inputs, too few samples, or covariances that stay singular with jitter 1e-1; warns
        (ConditioningWarning) when the fit is ill-conditioned."""
    @staticmethod
    def fit_loader(
        loader: Iterable[Batch], model: Model | None = None, covariance: Covariance = "full"
    ) -> GDA:
        """Fits in one pass over a loader of (inputs, labels) batches (a DataLoader; labels 0..C-1,
        C = the largest label + 1), with `model(inputs)` as the features when a model is given
        (called without autograd; inputs are passed as the loader gives them), the inputs
        themselves otherwise; memory C x D x D whatever the number of samples. As `fit`
        otherwise."""
    def score(self, features: Tensor | Iterable[Batch], model: Model | None = None) -> Tensor:
        """ID-confidence of each row (logsumexp over classes of the Gaussian log-densities; higher
        = more in-distribution), float64, on the features' device (computed on the device the
        GDA was fitted on). `features`: N x D (a 1-D row of D gives a 0-d tensor), or an
        iterable of batches (tensors, or (inputs, labels, ...) tuples whose labels are ignored),
        with `model(inputs)` as the features when a model is given."""
    def log_densities(
        self, features: Tensor | Iterable[Batch], model: Model | None = None
    ) -> Tensor:
        """The Gaussian log-density of each row under each class, N x C float64 (inputs as for
        `score`; a 1-D row gives C values). `score` is their logsumexp; their maximum over
        classes is the nearest-class score of Lee et al.'s Mahalanobis detector (pytorch-ood's,
        negated, up to a constant with a tied covariance), their argmax GDA's class prediction."""
    @property
    def covariance(self) -> Covariance:
        """The covariance model: "full", "tied" or "shrinkage"."""
    @property
    def jitter(self) -> float:
        """The jitter eps added to every covariance's diagonal."""
    @property
    def condition_numbers(self) -> list[float | None]:
        """Condition number of each class's covariance + eps I (None where the smallest computed
        eigenvalue is not positive)."""
    @property
    def class_counts(self) -> list[int]:
        """Training samples per class."""
    @property
    def feature_dim(self) -> int:
        """D."""
    @property
    def means(self) -> Tensor:
        """The class means, C x D float64 (on the device the GDA was fitted on)."""
    @property
    def covariances(self) -> Tensor:
        """The covariances the scores use (jitter included), C x D x D float64: L L^T of
        `cholesky_factors`, the one shared matrix repeated when tied."""
    @property
    def cholesky_factors(self) -> Tensor:
        """The lower Cholesky factors L of the covariances the scores use, K x D x D float64 (K = 1
        when tied, else C)."""
    def state_dict(self) -> GDAState:
        """The fitted state as plain tensors, numbers and strings (what `torch.save` and
        `torch.load(weights_only=True)` take): covariance, means, cholesky_factors, jitter,
        condition_numbers, class_counts."""
    @classmethod
    def from_state_dict(cls, state: GDAState) -> GDA:
        """The GDA of a `state_dict()`, checked (shapes, finite values, lower-triangular factors
        with a positive diagonal); tensors stay on their device."""
    def __reduce__(self) -> tuple[Callable[[GDAState], GDA], tuple[GDAState]]:
        """Pickling (and `torch.save`) goes through `state_dict()` and `from_state_dict`."""

class ClassStats:
    """Per-class float64 counts, means and moments (scatter matrices, and the two higher moments
    the Ledoit-Wolf shrinkage needs), accumulated batch by batch (memory C x D x D whatever the
    number of samples; batches merged by Chan et al.'s pairwise update), for GDA and Neural
    Collapse on a data loader without holding all features. `ClassStats(num_classes)` starts
    empty; computed on the device of the first batch (CPU or CUDA). Statistics of several
    processes merge exactly (`merge`, `ncood.all_reduce`); pickles and `torch.save`s through
    `state_dict()`."""

    def __init__(self, num_classes: int) -> None:
        ...
    def update(self, features: Tensor | Batch, labels: Tensor | None = None) -> None:
        """Adds a batch: features (B x D, any float dtype, on the CPU or a CUDA device) and labels
        0..num_classes-1 (a batch need not hold every class), or one (features, labels) tuple or
        list as a DataLoader gives it."""
    def update_loader(self, loader: Iterable[Batch], model: Model | None = None) -> None:
        """Adds every (inputs, labels) batch of a loader, with `model(inputs)` as the features when
        a model is given (called without autograd), the inputs themselves otherwise."""
    def merge(self, other: ClassStats) -> None:
        """Adds every sample of `other` (same num_classes and D), as if its batches had been added
        here: exact, whatever the split (the statistics of two DDP ranks, two shards)."""
    @property
    def num_classes(self) -> int:
        """C: labels are 0..C-1."""
    @property
    def counts(self) -> list[int]:
        """Samples seen per class."""
    @property
    def means(self) -> Tensor:
        """The class means (C x D, float64, on the statistics' device); every class must have a
        sample."""
    def gda(self, covariance: Covariance = "full") -> GDA:
        """GDA fitted on the statistics so far (as `GDA.fit` on all the batches at once)."""
    def collapse(
        self,
        features: Tensor | Iterable[Batch],
        weight: Tensor,
        bias: Tensor | None = None,
        model: Model | None = None,
    ) -> Collapse:
        """NC1-4 with the classifier `weight` (C x D) and optional `bias` (C). NC4 needs the final
        class means, so it takes a second pass: `features` holds every sample's features again,
        as one tensor or an iterable of batches (tensors, or (inputs, labels, ...) tuples as a
        DataLoader gives them; any order), with `model(inputs)` as the features when a model is
        given."""
    def state_dict(self) -> dict[str, Tensor]:
        """The statistics as plain tensors (what `torch.save`, `torch.load(weights_only=True)` and
        `torch.distributed` take): counts (C, int64) and, once a batch was added, means (C x D),
        scatter (C x D x D), norm3 (C x D) and norm4 (C), float64."""
    @classmethod
    def from_state_dict(cls, state: dict[str, Tensor]) -> ClassStats:
        """The accumulator of a `state_dict()`, checked (shapes, finite values, empty classes
        zero); tensors stay on their device."""
    def __reduce__(
        self,
    ) -> tuple[Callable[[dict[str, Tensor]], ClassStats], tuple[dict[str, Tensor]]]:
        """Pickling (and `torch.save`) goes through `state_dict()` and `from_state_dict`."""

def collapse(
    features: Tensor, labels: Tensor, weight: Tensor, bias: Tensor | None = None
) -> Collapse:
    """NC1-4 (float64) of features (N x D) with labels 0..C-1 and the classifier weight (C x D, not
    centred) and optional bias (C)."""

def nc_loss(features: Tensor, labels: Tensor, weight: Tensor) -> Tensor:
    """The NC loss on a batch (NC1 + equinorm(M) + equinorm(W) + maxangle(M) + maxangle(W) + NC3):
    features (B x D), labels (B; every class 0..C-1 present), classifier weight (C x D, on the
    features' device). Computed in float64 by ncood's own tch ops and returned as a 0-d tensor
    in the features' dtype, differentiable in features and weight by autograd."""

def metrics(id_scores: Tensor, ood_scores: Tensor, *, higher_is_ood: bool = False) -> Detection:
    """Detection metrics of the scores (1-D) of ID and of OoD samples, with OoD as the positive
    class: AUROC (ties half), AUPR-In/Out (step-wise average precision), FPR@95 with OoD
    positive (OpenOOD) and with ID positive, top-N false positives (N = number of ID samples).
    ncood's scores are ID-confidences (higher = more in-distribution), the default; pass
    higher_is_ood=True for outlier scores (higher = more OoD, e.g. pytorch-ood's detectors),
    which are negated first. The wrong sign gives 1 - AUROC, with no error."""

def softmax_scores(logits: Tensor, temperature: float = 1.0) -> SoftmaxScores:
    """The softmax-family ID-confidences of logits (N x C) at temperature T > 0 (max_logit ignores
    T): max softmax probability, max logit, negative entropy, energy T logsumexp(l / T); float64
    on the logits' device. Computed from (l - max l) / T, so finite for any finite logits and T
    (energy beyond the float64 range is an error)."""

def read_checkpoint(path: str) -> tuple[dict[str, Tensor], dict[str, object]]:
    """An ncood weights checkpoint (`epoch-NNNN.safetensors`, not the `.state` file): its tensors
    (CPU) and the reference ResNet's constructor arguments from the run configuration recorded
    in it; `ncood.load_checkpoint` builds the model."""
