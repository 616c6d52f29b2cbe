"""Shared fixtures: random features, and real ones from an ncood checkpoint trained here.

The real run is the ncood binary (target/release/ncood, built by scripts/setup.sh) training a
ResNet18 of width 2 with L2 features for 2 epochs on a 1,000-image class-balanced subset of
Fashion-MNIST (about 10 s), then `ncood features` on the validation split (GDA and NC
training features), the test split (ID) and MNIST (OoD).
"""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[3]
# One thread, here and in the binary: the suite's tensors are small, and on a busy 2-core machine
# two OpenMP threads per process made single libtorch calls (eigvalsh, training) 5-200x slower.
torch.set_num_threads(1)
NCOOD = Path(os.environ.get("NCOOD_BIN", ROOT / "target" / "release" / "ncood"))


@dataclass
class Split:
    raw: np.ndarray
    normalized: np.ndarray
    logits: np.ndarray
    labels: np.ndarray


@dataclass
class RealRun:
    checkpoint: Path
    val: Split
    test: Split
    ood: Split


def _ncood(*args: str) -> None:
    subprocess.run([str(NCOOD), *args], check=True, capture_output=True, text=True)


@pytest.fixture(scope="session")
def real(tmp_path_factory: pytest.TempPathFactory) -> RealRun:
    d = tmp_path_factory.mktemp("run")
    run = d / "run"
    _ncood(
        "train", "--device", "cpu", "--threads", "1", "--epochs", "2", "--out", str(run),
        "--set", "model.width=2", "--set", "model.l2=true", "--set", "data.train_subset=1000",
        "--set", "optim.batch_size=64",
    )
    splits = {}
    for name, data, split in [("val", "fashion-mnist", "val"), ("test", "fashion-mnist", "test"),
                              ("ood", "mnist", "test")]:
        prefix = d / name
        _ncood("features", str(run), "--threads", "1", "--data", data, "--split", split,
               "--out", str(prefix))
        splits[name] = Split(*(np.load(f"{prefix}.{k}.npy")
                               for k in ("raw", "normalized", "logits", "labels")))
    return RealRun(run / "checkpoints" / "epoch-0002.safetensors", **splits)


def blobs(n_per_class: int, classes: int, dim: int, seed: int, spread: float = 3.0):
    """Gaussian clusters with random per-class covariances: float64 features and int64 labels."""
    g = np.random.default_rng(seed)
    xs, ys = [], []
    for c in range(classes):
        a = g.normal(size=(dim, dim)) / np.sqrt(dim)
        xs.append(g.normal(size=(n_per_class, dim)) @ a + spread * g.normal(size=dim))
        ys.append(np.full(n_per_class, c))
    perm = g.permutation(n_per_class * classes)
    return np.concatenate(xs)[perm], np.concatenate(ys)[perm].astype(np.int64)


def t(a: np.ndarray, dtype: torch.dtype | None = None) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(a))
    return x if dtype is None else x.to(dtype)
