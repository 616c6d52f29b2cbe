"""The DDU reference GDA (utils/gmm_utils.py of the DDU code: gmm_fit with its jitter loop over
torch.distributions.MultivariateNormal, then log_prob + logsumexp), float64, on .npy features.

usage: gda_ddu.py DIR THREADS BATCH   (DIR holds train.npy, labels.npy, test.npy)
BATCH: rows per log_prob call (DDU evaluates per test-loader batch); 0 = all at once.
Prints seconds for fit and score as JSON; writes DIR/ddu_scores.npy.
"""
import json
import sys
import time

import numpy as np
import torch

d, threads, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
DOUBLE_INFO = torch.finfo(torch.double)
JITTERS = [0, DOUBLE_INFO.tiny] + [10 ** exp for exp in range(-308, 0, 1)]

train = torch.from_numpy(np.load(f"{d}/train.npy")).double()
labels = torch.from_numpy(np.load(f"{d}/labels.npy"))
test = torch.from_numpy(np.load(f"{d}/test.npy")).double()
num_classes = int(labels.max()) + 1


def centered_cov_torch(x):
    n = x.shape[0]
    return 1 / (n - 1) * x.t().mm(x)


def gmm_fit(embeddings, labels, num_classes):
    with torch.no_grad():
        means = torch.stack([torch.mean(embeddings[labels == c], dim=0) for c in range(num_classes)])
        covs = torch.stack([centered_cov_torch(embeddings[labels == c] - means[c]) for c in range(num_classes)])
    with torch.no_grad():
        for jitter_eps in JITTERS:
            try:
                jitter = jitter_eps * torch.eye(covs.shape[1]).unsqueeze(0)
                gmm = torch.distributions.MultivariateNormal(loc=means, covariance_matrix=(covs + jitter))
            except RuntimeError as e:
                if "cholesky" in str(e):
                    continue
                raise
            except ValueError as e:
                if "The parameter covariance_matrix has invalid values" in str(e):
                    continue
                raise
            break
    return gmm, jitter_eps


t0 = time.perf_counter()
gmm, eps = gmm_fit(train, labels, num_classes)
t1 = time.perf_counter()
with torch.no_grad():
    step = batch if batch > 0 else test.shape[0]
    logp = torch.cat([gmm.log_prob(test[i : i + step][:, None, :]) for i in range(0, test.shape[0], step)])
    scores = torch.logsumexp(logp, dim=1)
t2 = time.perf_counter()
np.save(f"{d}/ddu_scores.npy", scores.numpy())
print(json.dumps({"fit_s": t1 - t0, "score_s": t2 - t1, "jitter": eps}))
