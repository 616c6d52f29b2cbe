"""GDA from Python in four regimes, in one run: ncood.GDA with each covariance model (full: each
class its own, DDU's; tied: one shared; shrinkage: each class its Ledoit-Wolf estimate; and the
tied model scored by its nearest class, max_c of GDA.log_densities, instead of the logsumexp) against
pytorch-ood's Mahalanobis detector (fit_features + predict_features: one shared covariance, an
explicit inverse, float32) and DDU's GDA (benches/gda_ddu.py, run as a child process: float64
MultivariateNormal with DDU's jitter loop, log_prob per 128-row batch as DDU runs it; its own fit
and score timers, so interpreter start-up and .npy loading are not counted).

Regimes (float32 features; ID test rows from the training classes, OoD rows from C classes centred
half way between two ID classes' means, i.e. near OoD):
  own       C Gaussian classes in D dimensions, each with its own random correlated covariance
            plus isotropic noise (GDA's model);
  shared    the same, with one covariance for all classes (the shared model of pytorch-ood);
  few       own covariances with only 1.2 D training samples per class (S_c barely invertible);
  real      an ncood run's raw features (`ncood features`: training split to fit, Fashion-MNIST
            test as ID, MNIST as OoD); a tiny run is trained here with the ncood binary when
            --run is not given.
Rounds interleave the methods (the machine is noisy); the table gives each method's median time
(fit + score), the median over rounds of its time over pytorch-ood's in the same round, and its
AUROC (ID test vs OoD, ncood.metrics; pytorch-ood's outlier scores with higher_is_ood=True).
ncood's full-covariance scores are checked to agree with DDU's (the same model).

usage: .venv/bin/python benches/gda_python.py [--regimes own,shared,few,real] [--dim 256]
       [--classes 10] [--train 20000] [--test 5000] [--rounds 5] [--threads 1] [--spread 0.3]
       [--run RUN_DIR]
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
import warnings
from pathlib import Path

import numpy as np
import torch
from pytorch_ood.detector import Mahalanobis

import ncood

ROOT = Path(__file__).resolve().parents[1]
NCOOD_BIN = ROOT / "target" / "release" / "ncood"
p = argparse.ArgumentParser()
p.add_argument("--regimes", default="own,shared,few,real")
p.add_argument("--dim", type=int, default=256)
p.add_argument("--classes", type=int, default=10)
p.add_argument("--train", type=int, default=20000, help="training rows (own, shared)")
p.add_argument("--test", type=int, default=5000, help="ID test rows, and as many OoD rows")
p.add_argument("--rounds", type=int, default=5)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--spread", type=float, default=0.3, help="scale of the class means (sets how near the OoD classes are)")
p.add_argument("--run", help="the ncood run for the real regime (default: train a tiny one here)")
a = p.parse_args()
torch.set_num_threads(a.threads)
# Ill-conditioned fits (the few regime's full covariances) are the point here, not news.
warnings.simplefilter("ignore", ncood.ConditioningWarning)
tmp = tempfile.mkdtemp()


def synthetic(shared: bool, n_train: int, seed: int):
    g = np.random.default_rng(seed)
    d, c = a.dim, a.classes
    means = g.normal(size=(c, d)) * a.spread
    mix = g.normal(size=(1 if shared else c, d, d)) / np.sqrt(d)
    ood_means = 0.5 * (means + np.roll(means, 1, axis=0))

    def draw(n, centres):
        y = np.arange(n) % c
        z = g.normal(size=(n, d))
        # Plus isotropic noise, so no covariance is near-singular (that would make detection trivial).
        x = 0.5 * g.normal(size=(n, d)) + centres[y]
        for k in range(c):  # class by class: mix[y] would be N x D x D
            x[y == k] += z[y == k] @ mix[0 if shared else k]
        return x.astype(np.float32), y.astype(np.int64)

    train, labels = draw(n_train, means)
    return train, labels, draw(a.test, means)[0], draw(a.test, ood_means)[0]


def real():
    run = a.run
    if run is None:
        run = f"{tmp}/run"
        print(f"real: training a tiny ncood run into {run} (ResNet18 w=4, 2 epochs, 2,000 images) ...", flush=True)
        subprocess.run([NCOOD_BIN, "train", "--device", "cpu", "--threads", str(a.threads), "--epochs", "2",
                        "--out", run, "--set", "model.width=4", "--set", "data.train_subset=2000"],
                       check=True, capture_output=True)
    feats = {}
    for name, data, split in [("train", "fashion-mnist", "train"), ("id", "fashion-mnist", "test"), ("ood", "mnist", "test")]:
        subprocess.run([NCOOD_BIN, "features", run, "--threads", str(a.threads), "--data", data, "--split", split,
                        "--out", f"{tmp}/{name}"], check=True, capture_output=True)
        feats[name] = np.load(f"{tmp}/{name}.raw.npy"), np.load(f"{tmp}/{name}.labels.npy")
    return feats["train"][0], feats["train"][1], feats["id"][0], feats["ood"][0], run


def ncood_gda(covariance):
    def run(tr, lb, te):
        t0 = time.perf_counter()
        s = ncood.GDA.fit(tr, lb, covariance=covariance).score(te)
        return time.perf_counter() - t0, s, False
    return run


def ncood_tied_nearest(tr, lb, te):
    """The tied model scored by its nearest class (max over classes of the log-densities), as Lee
    et al.'s detector scores it, instead of the logsumexp over classes."""
    t0 = time.perf_counter()
    s = ncood.GDA.fit(tr, lb, covariance="tied").log_densities(te).amax(1)
    return time.perf_counter() - t0, s, False


def pytorch_ood(tr, lb, te):
    t0 = time.perf_counter()
    det = Mahalanobis(None).fit_features(tr, lb)
    outlier = det.predict_features(te)
    return time.perf_counter() - t0, outlier, True  # outlier scores: higher = more OoD


def ddu(tr, lb, te):
    np.save(f"{tmp}/train.npy", tr.numpy())
    np.save(f"{tmp}/labels.npy", lb.numpy())
    np.save(f"{tmp}/test.npy", te.numpy())
    out = subprocess.run([sys.executable, str(ROOT / "benches" / "gda_ddu.py"), tmp, str(a.threads), "128"],
                         check=True, capture_output=True, text=True)
    t = json.loads(out.stdout)
    return t["fit_s"] + t["score_s"], torch.from_numpy(np.load(f"{tmp}/ddu_scores.npy")), False


METHODS = {"ncood full": ncood_gda("full"), "ncood tied": ncood_gda("tied"),
           "ncood shrinkage": ncood_gda("shrinkage"), "ncood tied, nearest class": ncood_tied_nearest,
           "pytorch-ood Mahalanobis": pytorch_ood,
           "DDU gmm_fit + log_prob": ddu}
rows = []
for regime in a.regimes.split(","):
    if regime == "real":
        train, labels, id_test, ood_test, run = real()
        title = f"real: raw features of {run}"
    else:
        n_train = int(1.2 * a.dim) * a.classes if regime == "few" else a.train
        train, labels, id_test, ood_test = synthetic(regime == "shared", n_train, seed={"own": 0, "shared": 1, "few": 2}[regime])
        title = f"{regime}: synthetic"
    n_id = len(id_test)
    tr, lb = torch.from_numpy(train), torch.from_numpy(labels)
    te = torch.from_numpy(np.concatenate([id_test, ood_test]))
    d, c = train.shape[1], int(labels.max()) + 1
    title += f", D = {d}, C = {c}, {len(train)} train ({len(train) // c} per class), {n_id} ID + {len(ood_test)} OoD"
    times: dict[str, list[float]] = {k: [] for k in METHODS}
    scores, flipped = {}, {}
    for r in range(a.rounds):
        for name, f in METHODS.items():
            seconds, scores[name], flipped[name] = f(tr, lb, te)
            times[name].append(seconds)
        print(f"{regime} round {r + 1}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in times.items()), flush=True)
    ours, ref = scores["ncood full"], scores["DDU gmm_fit + log_prob"]
    agree = float(((ours - ref).abs() / ref.abs().clamp_min(1.0)).max())
    assert agree < 1e-6, f"{regime}: ncood's and DDU's scores disagree: max relative difference {agree:.1e}"
    for name in METHODS:
        s = scores[name].double()
        auroc = ncood.metrics(s[:n_id], s[n_id:], higher_is_ood=flipped[name])["auroc"]
        ratio = statistics.median(t / b for t, b in zip(times[name], times["pytorch-ood Mahalanobis"]))
        rows.append((title if name == "ncood full" else "", name, statistics.median(times[name]), ratio, auroc))
    print(f"{title}: ncood full vs DDU scores agree to {agree:.1e} (relative)", flush=True)

print(f"\n{a.threads} thread(s), {a.rounds} interleaved rounds per regime\n")
print("| regime | method | fit + score, median | time / pytorch-ood's (median over rounds) | AUROC |")
print("| --- | --- | --- | --- | --- |")
for title, name, t, ratio, auroc in rows:
    print(f"| {title} | {name} | {t:.3f} s | {ratio:.2f} | {auroc:.3f} |")
