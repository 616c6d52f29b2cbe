"""ncood from PyTorch, end to end on a small scale (about half a minute on one CPU core):

1. an ncood run (given, or a tiny one trained here by the ncood binary: ResNet18 w=4, L2 features,
   2 epochs on 2,000 Fashion-MNIST images) loaded as a PyTorch model with ncood.load_checkpoint;
2. its features of Fashion-MNIST images, fed batch by batch from a DataLoader into a streaming
   ncood.ClassStats: GDA fitted on them scores Fashion-MNIST test vs MNIST (ncood.metrics), and
   NC1-4 measured with the model's classifier;
3. 50 steps of a plain PyTorch loop that fine-tunes the model with ncood.nc_loss on class-balanced
   batches (gradients into the network and the classifier), then NC1-4 again.

usage: .venv/bin/python examples/python_walkthrough.py [RUN_DIR]
"""
from __future__ import annotations

import gzip
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import ncood

ROOT = Path(__file__).resolve().parents[1]
torch.manual_seed(0)
torch.set_num_threads(1)  # a shared 2-core machine: see python/ncood-py/tests/conftest.py


def idx(path: Path) -> np.ndarray:
    """An IDX file (gzip or not) as a numpy array."""
    raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    dims = raw[3]
    shape = np.frombuffer(raw[4 : 4 + 4 * dims], ">u4")
    return np.frombuffer(raw[4 + 4 * dims :], np.uint8).reshape(shape)


# 1. The run and its model.
if len(sys.argv) > 1:
    run = Path(sys.argv[1])
else:
    run = Path(tempfile.mkdtemp()) / "run"
    print(f"training a tiny ncood run into {run} ...")
    subprocess.run([ROOT / "target/release/ncood", "train", "--device", "cpu", "--threads", "1",
                    "--epochs", "2", "--out", run, "--set", "model.width=4", "--set", "model.l2=true",
                    "--set", "data.train_subset=2000"], check=True, capture_output=True)
checkpoint = sorted((run / "checkpoints").glob("epoch-*[0-9].safetensors"))[-1]
model = ncood.load_checkpoint(checkpoint)
print(f"loaded {checkpoint}: l2={model.l2}, {sum(p.numel() for p in model.parameters())} parameters")

# Images normalised as ncood does: (x / 255 - mean) / std with the training file's statistics.
fm = ROOT / "data" / "fashion-mnist"
train_u8 = idx(fm / "train-images-idx3-ubyte.gz")
mean, std = train_u8.mean() / 255, (train_u8 / 255).std()


def images(u8: np.ndarray) -> torch.Tensor:
    return ((torch.from_numpy(u8.astype(np.float32)) / 255 - mean) / std).unsqueeze(1)


g = np.random.default_rng(0)
pick = g.choice(len(train_u8), 6000, replace=False)
train_x, train_y = images(train_u8[pick]), torch.from_numpy(idx(fm / "train-labels-idx1-ubyte.gz")[pick].astype(np.int64))
test_x = images(idx(fm / "t10k-images-idx3-ubyte.gz")[:2000])
mnist_x = images(idx(ROOT / "data" / "mnist" / "images-idx3-ubyte")[g.choice(10000, 2000, replace=False)])


def head_input(x: torch.Tensor) -> torch.Tensor:
    """The features that enter the linear head (normalised under L2, as the run trained)."""
    f = model.features(x)
    return F.normalize(f, dim=1) if model.l2 else f


@torch.no_grad()
def batches(x: torch.Tensor, y: torch.Tensor | None = None):
    loader = DataLoader(TensorDataset(x) if y is None else TensorDataset(x, y), batch_size=500)
    for b in loader:
        yield (head_input(b[0]),) + tuple(b[1:])


def measure(title: str) -> None:
    model.eval()
    stats = ncood.ClassStats(10)
    for h, y in batches(train_x, train_y):  # 2. streaming: no need to hold all features
        stats.update(h, y)
    gda = stats.gda()
    score = lambda x: torch.cat([gda.score(h) for (h,) in batches(x)])  # noqa: E731
    m = ncood.metrics(score(test_x), score(mnist_x))
    # NC4 needs the final class means: a second pass over the features.
    nc = stats.collapse((h for h, _ in batches(train_x, train_y)), model.fc.weight, model.fc.bias)
    print(f"{title}: GDA jitter {gda.jitter:g}, AUROC Fashion-MNIST vs MNIST {m['auroc']:.4f}, "
          f"FPR@95 {m['fpr95_ood_positive']:.3f}; NC1 {nc['nc1']:.4f}, NC2 equinorm(M) "
          f"{nc['nc2']['equinorm_means']:.4f}, NC3 {nc['nc3']:.4f}, NC4 {nc['nc4']:.4f}")


measure("checkpoint")

# 3. Fine-tune with the NC loss: class-balanced batches of 12 images per class.
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
by_class = [torch.nonzero(train_y == c).flatten() for c in range(10)]
model.train()
for step in range(1, 51):
    idx_b = torch.cat([ix[torch.randint(len(ix), (12,))] for ix in by_class])
    loss = ncood.nc_loss(head_input(train_x[idx_b]), train_y[idx_b], model.fc.weight)
    opt.zero_grad()
    loss.backward()
    opt.step()
    if step in (1, 10, 25, 50):
        print(f"step {step:2d}: NC loss {loss.item():.4f}")
measure("after 50 NC-loss steps")
