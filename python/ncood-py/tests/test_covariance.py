"""GDA's covariance models against independent references: "shrinkage" against scikit-learn's
LedoitWolf per class (one pass and streamed batches), "tied" against numpy's pooled covariance;
the conditioning warning; the sign switch of ncood.metrics."""
import warnings

import numpy as np
import pytest
import torch
from conftest import blobs, t
from reference import gaussian_scores, pooled_covariance
from sklearn.covariance import LedoitWolf
from sklearn.metrics import roc_auc_score

import ncood


def test_shrinkage_is_sklearns_ledoit_wolf_per_class():
    # Few samples per class against D (12 < 20): every S_c is singular, Ledoit-Wolf's is not.
    x, y = blobs(12, 3, 20, seed=21)
    g = ncood.GDA.fit(t(x), t(y), covariance="shrinkage")
    want = np.stack([LedoitWolf().fit(x[y == c]).covariance_ for c in range(3)])
    assert g.covariance == "shrinkage" and g.jitter == 0.0
    np.testing.assert_allclose(g.covariances.numpy(), want, rtol=1e-10, atol=1e-13)
    test, _ = blobs(7, 3, 20, seed=22)
    np.testing.assert_allclose(g.score(t(test)).numpy(), gaussian_scores(x_means(x, y), want, test),
                               rtol=1e-10)
    # Streamed in uneven batches, most without every class: the higher moments merge exactly.
    stats = ncood.ClassStats(3)
    for xb, yb in zip(np.array_split(x, 5), np.array_split(y, 5)):
        stats.update(t(xb), t(yb))
    np.testing.assert_allclose(stats.gda("shrinkage").covariances.numpy(), want, rtol=1e-9, atol=1e-12)


def x_means(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.stack([x[y == c].mean(0) for c in range(y.max() + 1)])


def test_tied_is_the_pooled_covariance():
    x, y = blobs(40, 4, 6, seed=23)
    g = ncood.GDA.fit(t(x), t(y), covariance="tied")
    pooled = pooled_covariance(x, y)
    assert g.cholesky_factors.shape == (1, 6, 6)
    np.testing.assert_allclose(g.covariances.numpy(), np.broadcast_to(pooled, (4, 6, 6)), rtol=1e-11)
    test, _ = blobs(9, 4, 6, seed=24)
    want = gaussian_scores(x_means(x, y), np.broadcast_to(pooled, (4, 6, 6)), test)
    np.testing.assert_allclose(g.score(t(test)).numpy(), want, rtol=1e-10)
    # The per-class log-densities: score is their logsumexp; a 1-D row gives C values.
    ld = g.log_densities(t(test))
    d = 6
    for c, mu in enumerate(x_means(x, y)):
        diff = test - mu
        maha = np.einsum("nd,nd->n", diff, np.linalg.solve(pooled, diff.T).T)
        want_c = -0.5 * (maha + np.linalg.slogdet(pooled)[1] + d * np.log(2 * np.pi))
        np.testing.assert_allclose(ld[:, c].numpy(), want_c, rtol=1e-10)
    torch.testing.assert_close(ld.logsumexp(1), g.score(t(test)), rtol=1e-12, atol=0)
    assert g.log_densities(t(test)[0]).shape == (4,)
    cond = np.linalg.cond(pooled)
    np.testing.assert_allclose(g.condition_numbers, [cond] * 4, rtol=1e-8)


def test_unknown_covariance_and_too_few_samples_are_errors():
    x, y = blobs(5, 2, 3, seed=25)
    with pytest.raises(ncood.NcoodError, match=r'covariance: "diag"; expected "full", "tied" or "shrinkage"'):
        ncood.GDA.fit(t(x), t(y), covariance="diag")
    one_each = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    with pytest.raises(ncood.NcoodError, match="2 training samples for 2 classes; a tied covariance needs more"):
        ncood.GDA.fit(one_each, torch.tensor([0, 1]), covariance="tied")
    with pytest.raises(ncood.NcoodError, match="class 0 has 1 training sample.*shrinkage covariance needs at least 2"):
        ncood.GDA.fit(one_each, torch.tensor([0, 1]), covariance="shrinkage")


def test_ill_conditioned_fits_warn_and_well_conditioned_ones_do_not():
    x, y = blobs(50, 2, 3, seed=26)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ncood.GDA.fit(t(x), t(y))
    # One direction with variance ~1e-14 against ~1: condition number ~1e14, still factorised
    # without jitter.
    thin = x.copy()
    thin[:, 2] = x[:, 0] + 1e-7 * np.random.default_rng(0).normal(size=len(x))
    with pytest.warns(ncood.ConditioningWarning, match=r"class\(es\) \[0, 1\] has a condition number above 1e12"):
        g = ncood.GDA.fit(t(thin), t(y))
    assert g.jitter == 0.0 and min(g.condition_numbers) > 1e12
    # An exactly singular covariance takes jitter 1e-308: below 1e-12, so it warns too.
    flat = x.copy()
    flat[:, 2] = 0.0
    with pytest.warns(ncood.ConditioningWarning, match="jitter 1e-308"):
        ncood.GDA.fit(t(flat), t(y))
    # The shrinkage estimate of the same features is well-conditioned: no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ncood.GDA.fit(t(thin), t(y), covariance="shrinkage")
    # As an error when the user asks for it.
    with warnings.catch_warnings():
        warnings.simplefilter("error", ncood.ConditioningWarning)
        with pytest.raises(ncood.ConditioningWarning):
            ncood.GDA.fit(t(flat), t(y))


def test_metrics_sign_switch_takes_outlier_scores():
    g = np.random.default_rng(27)
    id_conf, ood_conf = g.normal(1.0, 1.0, 200), g.normal(0.0, 1.0, 150)
    m = ncood.metrics(t(id_conf), t(ood_conf))
    is_ood = np.r_[np.zeros(200), np.ones(150)]
    np.testing.assert_allclose(m["auroc"], roc_auc_score(is_ood, -np.r_[id_conf, ood_conf]), rtol=1e-12)
    # Outlier scores (higher = more OoD, as pytorch-ood's) with the switch: the same metrics.
    assert ncood.metrics(t(-id_conf), t(-ood_conf), higher_is_ood=True) == m
    # Without it, the wrong sign gives 1 - AUROC, which is why the switch is explicit.
    flipped = ncood.metrics(t(-id_conf), t(-ood_conf))
    np.testing.assert_allclose(flipped["auroc"], 1 - m["auroc"], rtol=1e-12)
    with pytest.raises(TypeError):
        ncood.metrics(t(id_conf), t(ood_conf), True)  # keyword only: the sign is never implicit
