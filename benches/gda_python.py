"""GDA from Python on the same features, in one run: ncood.GDA (fit + score), pytorch-ood's
Mahalanobis detector (fit_features + predict_features: one shared covariance, explicit inverse,
float32) and DDU's GDA (benches/gda_ddu.py, run as a child process: float64 MultivariateNormal with
DDU's jitter loop, log_prob per 128-row batch as DDU runs it; its own fit and score timers, so
interpreter start-up and .npy loading are not counted).

Features: float32, C Gaussian classes in D dimensions with random means and random correlated
covariances (as benches/gda.rs) plus isotropic noise; ID test rows from the same classes, OoD rows
from C classes centred half way between two ID classes' means (near OoD). With --run RUN_DIR they
are an ncood run's features instead (`ncood features`: training split to fit, test split as ID,
MNIST as OoD). Rounds interleave the three (this machine is noisy); the table gives the median
time of each, the median over rounds of its time over ncood's in the same round, and the AUROC of
each (ID test vs OoD, ncood.metrics). ncood's and DDU's scores are checked to agree (same model).

usage: .venv/bin/python benches/gda_python.py [--dim 256] [--classes 10] [--train 20000]
       [--test 5000] [--rounds 5] [--threads 2] [--spread 0.3] [--run RUN_DIR [--kind raw|normalized]]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from pytorch_ood.detector import Mahalanobis

import ncood

p = argparse.ArgumentParser()
p.add_argument("--dim", type=int, default=256)
p.add_argument("--classes", type=int, default=10)
p.add_argument("--train", type=int, default=20000)
p.add_argument("--test", type=int, default=5000, help="ID test rows, and as many OoD rows")
p.add_argument("--rounds", type=int, default=5)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--spread", type=float, default=0.3, help="scale of the class means (sets how near the OoD classes are)")
p.add_argument("--run", help="an ncood run directory: use its features instead (training split to fit, test split as ID, MNIST as OoD)")
p.add_argument("--kind", default="raw", choices=["raw", "normalized"], help="with --run: which features")
a = p.parse_args()
torch.set_num_threads(a.threads)
tmp = tempfile.mkdtemp()

g = np.random.default_rng(0)
d, c = a.dim, a.classes
means = g.normal(size=(c, d)) * a.spread
mix = g.normal(size=(c, d, d)) / np.sqrt(d)
# Near OoD: centred between two ID classes' means.
ood_means = 0.5 * (means + np.roll(means, 1, axis=0))


def draw(n: int, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.arange(n) % c
    z = g.normal(size=(n, d))
    # Plus isotropic noise, so no covariance is near-singular (that would make detection trivial).
    x = np.einsum("nd,ned->ne", z, mix[y]) + 0.5 * g.normal(size=(n, d)) + centres[y]
    return x.astype(np.float32), y.astype(np.int64)


if a.run:
    ncood_bin = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "release", "ncood")
    feats = {}
    for name, data, split in [("train", "fashion-mnist", "train"), ("id", "fashion-mnist", "test"), ("ood", "mnist", "test")]:
        subprocess.run([ncood_bin, "features", a.run, "--threads", str(a.threads), "--data", data, "--split", split,
                        "--out", f"{tmp}/{name}"], check=True, capture_output=True)
        feats[name] = np.load(f"{tmp}/{name}.{a.kind}.npy"), np.load(f"{tmp}/{name}.labels.npy")
    (train, labels), (id_test, _), (ood_test, _) = feats["train"], feats["id"], feats["ood"]
    a.train, a.test, d, c = len(train), len(id_test), train.shape[1], int(labels.max()) + 1
    assert len(ood_test) == a.test, "the ID and OoD test sets must have the same size here"
else:
    train, labels = draw(a.train, means)
    id_test, _ = draw(a.test, means)
    ood_test, _ = draw(a.test, ood_means)
test = np.concatenate([id_test, ood_test])
tr, lb, te = torch.from_numpy(train), torch.from_numpy(labels), torch.from_numpy(test)


def auroc(conf: torch.Tensor) -> float:
    return ncood.metrics(conf[: a.test].double(), conf[a.test :].double())["auroc"]


def run_ncood() -> tuple[float, torch.Tensor]:
    t0 = time.perf_counter()
    s = ncood.GDA.fit(tr, lb).score(te)
    return time.perf_counter() - t0, s


def run_pytorch_ood() -> tuple[float, torch.Tensor]:
    t0 = time.perf_counter()
    det = Mahalanobis(None).fit_features(tr, lb)
    outlier = det.predict_features(te)
    return time.perf_counter() - t0, -outlier  # outlier score -> ID-confidence


np.save(f"{tmp}/train.npy", train)
np.save(f"{tmp}/labels.npy", labels)
np.save(f"{tmp}/test.npy", test)
ddu_script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gda_ddu.py")


def run_ddu() -> tuple[float, torch.Tensor]:
    out = subprocess.run([sys.executable, ddu_script, tmp, str(a.threads), "128"],
                         check=True, capture_output=True, text=True)
    t = json.loads(out.stdout)
    return t["fit_s"] + t["score_s"], torch.from_numpy(np.load(f"{tmp}/ddu_scores.npy"))


runs = {"ncood.GDA": run_ncood, "pytorch-ood Mahalanobis": run_pytorch_ood, "DDU gmm_fit + log_prob": run_ddu}
times: dict[str, list[float]] = {k: [] for k in runs}
scores: dict[str, torch.Tensor] = {}
for r in range(a.rounds):
    for name, f in runs.items():
        seconds, scores[name] = f()
        times[name].append(seconds)
    print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in times.items()), flush=True)

ours, ddu = scores["ncood.GDA"], scores["DDU gmm_fit + log_prob"]
max_rel = float(((ours - ddu).abs() / ddu.abs().clamp_min(1.0)).max())
assert max_rel < 1e-8, f"ncood and DDU scores disagree: max relative difference {max_rel:.1e}"
source = f"features of {a.run} ({a.kind})" if a.run else "synthetic float32 features"
print(f"\n{source}: D={d} C={c} train={a.train} test={a.test} ID + {a.test} OoD, {a.threads} "
      f"threads, {a.rounds} interleaved rounds; ncood vs DDU scores agree to {max_rel:.1e} (relative)\n")
print("| method | fit + score, median (s) | time / ncood's, median over rounds | AUROC |")
print("| --- | --- | --- | --- |")
for name in runs:
    ratio = statistics.median(t / b for t, b in zip(times[name], times["ncood.GDA"]))
    print(f"| {name} | {statistics.median(times[name]):.3f} | {ratio:.2f} | {auroc(scores[name]):.4f} |")
