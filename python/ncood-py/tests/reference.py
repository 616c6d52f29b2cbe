"""Independent float64 numpy references for the tests: written from docs/SPEC.md, not from ncood's
code, and by different routes where there is a choice (np.linalg.solve and slogdet instead of
Cholesky factors, a dense pseudo-inverse instead of the Gram-matrix route, pairwise counting for
the metrics)."""
from __future__ import annotations

import numpy as np
from scipy.special import logsumexp


def gda_scores(train: np.ndarray, labels: np.ndarray, test: np.ndarray, jitter: float) -> np.ndarray:
    """logsumexp_c log N(x; mu_c, S_c + jitter I), S_c unbiased, no class prior."""
    train, test = train.astype(np.float64), test.astype(np.float64)
    d = train.shape[1]
    logp = []
    for c in range(labels.max() + 1):
        xc = train[labels == c]
        cov = np.cov(xc, rowvar=False, ddof=1) + jitter * np.eye(d)
        diff = test - xc.mean(0)
        maha = np.einsum("nd,nd->n", diff, np.linalg.solve(cov, diff.T).T)
        logdet = np.linalg.slogdet(cov)[1]
        logp.append(-0.5 * (maha + logdet + d * np.log(2 * np.pi)))
    return logsumexp(np.stack(logp, 1), axis=1)


def gaussian_scores(means: np.ndarray, covs: np.ndarray, test: np.ndarray) -> np.ndarray:
    """logsumexp_c log N(x; mu_c, covs[c]) for given means (C x D) and covariances (C x D x D)."""
    d = means.shape[1]
    logp = []
    for mu, cov in zip(means, covs):
        diff = test.astype(np.float64) - mu
        maha = np.einsum("nd,nd->n", diff, np.linalg.solve(cov, diff.T).T)
        logp.append(-0.5 * (maha + np.linalg.slogdet(cov)[1] + d * np.log(2 * np.pi)))
    return logsumexp(np.stack(logp, 1), axis=1)


def pooled_covariance(train: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """sum_c (X_c - mu_c)^T (X_c - mu_c) / (N - C): the tied covariance."""
    c = labels.max() + 1
    centred = train - np.stack([train[labels == k].mean(0) for k in range(c)])[labels]
    return centred.T @ centred / (len(train) - c)


def _cosines(v: np.ndarray) -> np.ndarray:
    u = v / np.linalg.norm(v, axis=1, keepdims=True)
    cos = u @ u.T
    return cos[~np.eye(len(v), dtype=bool)]


def collapse(h: np.ndarray, y: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> dict:
    """NC1-4 of SPEC 6."""
    h = h.astype(np.float64)
    w = w.astype(np.float64)
    c = w.shape[0]
    mu = np.stack([h[y == k].mean(0) for k in range(c)])
    m = mu - mu.mean(0)
    centred = h - mu[y]
    sigma_w = centred.T @ centred / len(h)
    sigma_b = m.T @ m / c
    # Rank-(C-1) pseudo-inverse from the eigendecomposition of the D x D Sigma_B.
    ev, vec = np.linalg.eigh(sigma_b)
    top = np.argsort(ev)[::-1][: c - 1]
    pinv = (vec[:, top] / ev[top]) @ vec[:, top].T
    norms = lambda v: np.linalg.norm(v, axis=1)  # noqa: E731
    equinorm = lambda v: norms(v).std(ddof=1) / norms(v).mean()  # noqa: E731
    maxangle = lambda v: np.abs(_cosines(v) + 1 / (c - 1)).mean()  # noqa: E731
    logits = h @ w.T + (0 if b is None else b)
    nearest = np.argmin(((h[:, None, :] - mu[None]) ** 2).sum(-1), axis=1)
    return {
        "nc1": np.trace(sigma_w @ pinv) / c,
        "nc2": {
            "equinorm_means": equinorm(m),
            "equinorm_weights": equinorm(w),
            "equiangularity_means": _cosines(m).std(ddof=1),
            "equiangularity_weights": _cosines(w).std(ddof=1),
            "maxangle_means": maxangle(m),
            "maxangle_weights": maxangle(w),
        },
        "nc3": np.sum((w / np.linalg.norm(w) - m / np.linalg.norm(m)) ** 2),
        "nc4": np.mean(logits.argmax(1) != nearest),
        "n": len(h),
    }


def fpr95(pos: np.ndarray, neg: np.ndarray) -> float:
    """Fraction of negatives scoring >= the largest threshold that keeps >= 95% of positives."""
    for thr in np.sort(np.unique(pos))[::-1]:
        if np.mean(pos >= thr) >= 0.95:
            return float(np.mean(neg >= thr))
    raise AssertionError("unreachable: the smallest score keeps every positive")


def topn(id_conf: np.ndarray, ood_conf: np.ndarray) -> int:
    """OoD samples among the N = len(id) highest ID-confidences, OoD first among ties: all OoD
    samples strictly above the N-th highest score, then as many OoD samples at that score as fit."""
    allc = np.concatenate([id_conf, ood_conf])
    n = len(id_conf)
    nth = np.sort(allc)[::-1][n - 1]
    above_ood = int(np.sum(ood_conf > nth))
    room = n - int(np.sum(allc > nth))
    return above_ood + min(room, int(np.sum(ood_conf == nth)))
