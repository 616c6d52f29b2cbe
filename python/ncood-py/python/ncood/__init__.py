"""ncood for PyTorch users: GDA (full, tied or Ledoit-Wolf covariances), Neural Collapse (NC1-4,
streaming, mergeable across processes), the NC loss, the pinned OoD detection metrics and the
softmax scores of the ncood toolkit, on torch tensors and DataLoaders.

The numerics are ncood's Rust library (float64 statistics on the inputs' device, Cholesky with a
recorded jitter, triangular solves, sorting-based metrics), reached through libtorch's own
tensors: no copies at the boundary, and `nc_loss` keeps its autograd graph.

Sign convention: every ncood score is an ID-confidence (higher = more in-distribution);
`metrics` treats OoD as the positive class and takes outlier scores (higher = more OoD, as
pytorch-ood's detectors give) with `higher_is_ood=True`. Inputs ncood cannot use raise
`NcoodError` (a `ValueError`) with ncood's message; an ill-conditioned GDA fit warns with
`ConditioningWarning`.
"""
from __future__ import annotations

import os

# Loads libtorch (and libtorch_python, whose symbols the extension uses) before the extension.
import torch

from ._native import (
    GDA,
    ClassStats,
    ConditioningWarning,
    NcoodError,
    __version__,
    collapse,
    metrics,
    nc_loss,
    read_checkpoint,
    softmax_scores,
)
from .ddu_resnet import ResNet

__all__ = [
    "GDA",
    "ClassStats",
    "ConditioningWarning",
    "NcoodError",
    "ResNet",
    "__version__",
    "all_reduce",
    "collapse",
    "load_checkpoint",
    "metrics",
    "nc_loss",
    "softmax_scores",
]


def load_checkpoint(path: str | os.PathLike[str]) -> ResNet:
    """The reference DDU ResNet (`ncood.ResNet`, plain PyTorch) with the weights of an ncood run's
    checkpoint (`RUN/checkpoints/epoch-NNNN.safetensors`, not the `.state` file), built from the run
    configuration recorded in the checkpoint, loaded strictly, in eval mode, on the CPU. A file
    that is not such a checkpoint raises NcoodError.

    `model.features(x)` gives the raw penultimate features f; the head's input is f / ||f|| when the
    run trained with L2 (`model.l2`), f otherwise; `model(x)` the logits.
    """
    state, args = read_checkpoint(os.fspath(path))
    # Effective (spectrally normalised) weights are stored, so the model is built without SN.
    model = ResNet(**args, sn=False)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:  # tensors of another model, or a renamed resume state
        raise NcoodError(f"{os.fspath(path)}: its tensors do not fit the ResNet its recorded "
                         f"configuration describes: {e}") from None
    return model.eval()


def all_reduce(stats: ClassStats, group=None) -> ClassStats:
    """The statistics of every process of a `torch.distributed` group merged into one
    `ClassStats`, the same on every rank (call it on every rank, e.g. of a DDP job, after each has
    added its shard): each rank's `state_dict()` (on the CPU) is gathered with
    `all_gather_object`, and every rank merges all of them in rank order with `ClassStats.merge`,
    which is exact (Chan et al.'s update), so the result (on the CPU) equals one process's pass
    over all shards up to rounding. The statistics are C x D x D floats per rank, sent once."""
    import torch.distributed as dist

    state = {k: v.cpu() for k, v in stats.state_dict().items()}
    gathered: list[dict[str, torch.Tensor] | None] = [None] * dist.get_world_size(group)
    dist.all_gather_object(gathered, state, group=group)
    merged = ClassStats(stats.num_classes)
    for s in gathered:
        merged.merge(ClassStats.from_state_dict(s))
    return merged
