"""ncood for PyTorch users: GDA, Neural Collapse (NC1-4, streaming), the NC loss, the pinned OoD
detection metrics and the softmax scores of the ncood toolkit, on torch tensors.

The numerics are ncood's Rust library (float64 statistics, Cholesky with a recorded jitter,
triangular solves, sorting-based metrics), reached through libtorch's own tensors: no copies at
the boundary, and `nc_loss` keeps its autograd graph. Every score is an ID-confidence (higher = more
in-distribution); `metrics` treats OoD as the positive class (docs/SPEC.md sections 4-7).
Inputs ncood cannot use raise `NcoodError` (a `ValueError`) with ncood's message.
"""
from __future__ import annotations

import os

# Loads libtorch (and libtorch_python, whose symbols the extension uses) before the extension.
import torch

from ._native import (
    GDA,
    ClassStats,
    NcoodError,
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
    "NcoodError",
    "ResNet",
    "collapse",
    "load_checkpoint",
    "metrics",
    "nc_loss",
    "softmax_scores",
]


def load_checkpoint(path: str | os.PathLike[str]) -> ResNet:
    """The reference DDU ResNet (`ncood.ResNet`, plain PyTorch) with the weights of an ncood run's
    checkpoint (`RUN/checkpoints/epoch-NNNN.safetensors`, not the `.state` file), built from the run
    configuration recorded in the checkpoint, loaded strictly, in eval mode, on the CPU.

    `model.features(x)` gives the raw penultimate features f; the head's input is f / ||f|| when the
    run trained with L2 (`model.l2`), f otherwise; `model(x)` the logits.
    """
    state, args = read_checkpoint(os.fspath(path))
    # Effective (spectrally normalised) weights are stored, so the model is built without SN.
    model = ResNet(**args, sn=False)
    model.load_state_dict(state, strict=True)
    return model.eval()
