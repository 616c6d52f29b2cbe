"""Type stub of ncood's compiled extension (src/lib.rs); re-exported by `ncood`."""
from __future__ import annotations

from collections.abc import Iterable
from typing import TypedDict

from torch import Tensor

class NcoodError(ValueError):
    """An input ncood cannot use (NaN, empty, mismatched shapes, a singular covariance, a bad
    file), with ncood's message naming the input and the problem."""

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
    """NC1-4 (SPEC 6); `nc1` is None and `nc1_undefined` says why when the centred class means
    span fewer than C - 1 dimensions."""

    nc1_undefined: str

class Detection(TypedDict):
    """Detection metrics (SPEC 5): OoD positive, OoD-ness = -ID-confidence."""

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

class GDA:
    """A fitted GDA (DDU, SPEC 4): per-class float64 means and unbiased covariances, with the
    smallest jitter of the ladder 0, 1e-308, ..., 1e-1 that lets every class's Cholesky
    factorisation succeed. Only a fitted GDA exists: make one with `GDA.fit` or
    `ClassStats.gda`."""

    @staticmethod
    def fit(features: Tensor, labels: Tensor) -> GDA:
        """Fits on features (N x D, any float dtype and device; float64 inside) and integer labels
        0..C-1 (every class with at least 2 samples). Raises NcoodError on NaN/inf, empty or
        mismatched inputs, a class with fewer than 2 samples, or covariances that stay singular
        with jitter 1e-1."""
    def score(self, features: Tensor) -> Tensor:
        """ID-confidence of each row: logsumexp over classes of the Gaussian log-densities (no
        class prior; higher = more in-distribution), float64, on the features' device."""
    @property
    def jitter(self) -> float:
        """The jitter eps added to every covariance's diagonal."""
    @property
    def condition_numbers(self) -> list[float | None]:
        """Condition number of each S_c + eps I (None where not positive definite numerically)."""
    @property
    def class_counts(self) -> list[int]:
        """Training samples per class."""
    @property
    def feature_dim(self) -> int:
        """D."""

class ClassStats:
    """Per-class float64 counts, means and scatter matrices, accumulated batch by batch (memory
    C x D x D whatever the number of samples; batches merged by Chan et al.'s pairwise update), for
    GDA and Neural Collapse on a data loader without holding all features."""

    def __init__(self, num_classes: int) -> None: ...
    def update(self, features: Tensor, labels: Tensor) -> None:
        """Adds a batch: features (B x D, any float dtype and device) and labels
        0..num_classes-1 (a batch need not hold every class)."""
    @property
    def num_classes(self) -> int: ...
    @property
    def counts(self) -> list[int]:
        """Samples seen per class."""
    @property
    def means(self) -> Tensor:
        """The class means (C x D, float64, CPU); every class must have a sample."""
    def gda(self) -> GDA:
        """GDA fitted on the statistics so far (the same as `GDA.fit` on all batches at once)."""
    def collapse(
        self, features: Tensor | Iterable[Tensor], weight: Tensor, bias: Tensor | None = None
    ) -> Collapse:
        """NC1-4 with the classifier `weight` (C x D) and optional `bias` (C). NC4 needs the final
        class means, so it takes a second pass: `features` holds every sample's features again,
        as one tensor or an iterable of batches (any order)."""

def collapse(
    features: Tensor, labels: Tensor, weight: Tensor, bias: Tensor | None = None
) -> Collapse:
    """NC1-4 (SPEC 6, float64) of features (N x D) with labels 0..C-1, the classifier weight
    (C x D, not centred) and optional bias (C)."""

def nc_loss(features: Tensor, labels: Tensor, weight: Tensor) -> Tensor:
    """The NC loss of SPEC 7 on a batch (NC1 + equinorm(M) + equinorm(W) + maxangle(M) +
    maxangle(W) + NC3): features (B x D), labels (B; every class 0..C-1 present), classifier weight
    (C x D, on the features' device). Computed in float64 by ncood's own tch ops and returned as a
    0-d tensor in the features' dtype, differentiable in features and weight by autograd."""

def metrics(id_conf: Tensor, ood_conf: Tensor) -> Detection:
    """Detection metrics (SPEC 5) of the ID-confidence scores (1-D) of ID and of OoD samples:
    AUROC (ties half), AUPR-In/Out (step-wise average precision), FPR@95 with OoD positive
    (OpenOOD) and with ID positive, top-N false positives (N = number of ID samples)."""

def softmax_scores(logits: Tensor, temperature: float = 1.0) -> SoftmaxScores:
    """ID-confidences from logits (N x C) at temperature T (max_logit ignores T): max softmax
    probability, max logit, negative entropy, energy T logsumexp(l / T); float64 on the logits'
    device."""

def read_checkpoint(path: str) -> tuple[dict[str, Tensor], dict[str, object]]:
    """An ncood weights checkpoint's tensors and the reference ResNet's constructor arguments
    (from the run configuration recorded in it); `ncood.load_checkpoint` builds the model."""
