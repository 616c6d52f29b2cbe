"""ncood.GDA and ncood.ClassStats against a float64 numpy Mahalanobis + logsumexp (reference.py)."""
import numpy as np
import pytest
import torch
from conftest import blobs, t
from reference import gda_scores

import ncood


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_scores_match_numpy_on_random_features(dtype):
    x, y = blobs(150, 4, 6, seed=1)
    test, _ = blobs(40, 4, 6, seed=2)
    xt, testt = t(x, dtype), t(test, dtype)
    g = ncood.GDA.fit(xt, t(y))
    s = g.score(testt)
    assert s.dtype == torch.float64 and s.shape == (160,) and s.device == testt.device
    # The reference sees the same (possibly float32-rounded) values in float64.
    ref = gda_scores(xt.double().numpy(), y, testt.double().numpy(), jitter=0.0)
    np.testing.assert_allclose(s.numpy(), ref, rtol=1e-10)
    assert g.jitter == 0.0
    assert g.class_counts == [150] * 4 and g.feature_dim == 6
    conds = [np.linalg.cond(np.cov(xt.double().numpy()[y == c], rowvar=False)) for c in range(4)]
    np.testing.assert_allclose(g.condition_numbers, conds, rtol=1e-8)


def test_rank_deficient_class_takes_the_first_jitter_that_works():
    # A zero feature makes every covariance exactly singular: Cholesky fails at 0 and succeeds at
    # the ladder's next step, 1e-308 (the zero column's pivot becomes sqrt(1e-308)).
    x, y = blobs(50, 3, 4, seed=3)
    x[:, 3] = 0.0
    with pytest.warns(ncood.ConditioningWarning, match="jitter 1e-308"):
        g = ncood.GDA.fit(t(x), t(y))
    assert g.jitter == 1e-308
    # Largest eigenvalue over 1e-308: beyond the float64 range, or just inside it.
    assert all(c is None or c > 1e300 for c in g.condition_numbers)
    on_plane = x[:5]
    np.testing.assert_allclose(g.score(t(on_plane)).numpy(),
                               gda_scores(x, y, on_plane, 1e-308), rtol=1e-10)


def test_scores_match_numpy_on_real_features(real):
    v = real.val
    g = ncood.GDA.fit(t(v.normalized), t(v.labels))
    for split in (real.test, real.ood):
        ref = gda_scores(v.normalized, v.labels, split.normalized, g.jitter)
        np.testing.assert_allclose(g.score(t(split.normalized)).numpy(), ref, rtol=1e-9)
    assert g.class_counts == np.bincount(v.labels).tolist()


def test_streaming_class_stats_equal_one_pass():
    x, y = blobs(80, 5, 7, seed=4)
    stats = ncood.ClassStats(5)
    g = np.random.default_rng(0)
    cuts = np.sort(g.choice(np.arange(1, len(x)), size=9, replace=False))
    for xb, yb in zip(np.split(x, cuts), np.split(y, cuts)):
        stats.update(t(xb, torch.float32), t(yb))
    x32 = t(x, torch.float32)
    assert stats.counts == [80] * 5 and stats.num_classes == 5
    np.testing.assert_allclose(stats.means.numpy(),
                               [x32.double().numpy()[y == c].mean(0) for c in range(5)], rtol=1e-12)
    test = t(x[:50], torch.float32)
    np.testing.assert_allclose(stats.gda().score(test).numpy(),
                               ncood.GDA.fit(x32, t(y)).score(test).numpy(), rtol=1e-10)


def test_errors_are_exceptions_with_ncood_messages():
    x, y = blobs(10, 2, 3, seed=5)
    bad = x.copy()
    bad[7, 1] = np.nan
    with pytest.raises(ncood.NcoodError, match=r"GDA features: value NaN is not finite at row 7"):
        ncood.GDA.fit(t(bad), t(y))
    with pytest.raises(ncood.NcoodError, match="non-empty N x D float tensor"):
        ncood.GDA.fit(torch.zeros(0, 3), torch.zeros(0, dtype=torch.int64))
    with pytest.raises(ncood.NcoodError, match=r"GDA features: expected 20 x D \(one row per label\), got \[19, 3\]"):
        ncood.GDA.fit(t(x[:19]), t(y))
    with pytest.raises(ncood.NcoodError, match="class 1 has 1 training sample"):
        ncood.GDA.fit(t(x[:3]), torch.tensor([0, 0, 1]))
    with pytest.raises(ncood.NcoodError, match="1-D integer tensor"):
        ncood.GDA.fit(t(x), t(y).double())
    # Rank-1 covariances 2^60 [[1, +-1], [+-1, 1]]: Cholesky's second pivot is exactly 0, and even
    # eps = 0.1 is below the diagonal's resolution (2^60 has an ulp of 256), so every step fails.
    a = 2.0**30
    huge = np.array([[a, a], [-a, -a], [0, 0], [a, -a], [-a, a], [0, 0]])
    with pytest.raises(ncood.NcoodError, match=r"class\(es\) \[0, 1\] is not positive definite even with jitter 0.1"):
        ncood.GDA.fit(t(huge), torch.tensor([0, 0, 0, 1, 1, 1]))
    g = ncood.GDA.fit(t(x), t(y))
    with pytest.raises(ncood.NcoodError, match=r"GDA features to score: expected a non-empty"):
        g.score(torch.zeros(0, 3))
    with pytest.raises(TypeError, match="expected a torch.Tensor"):
        g.score(x)
    with pytest.raises(ncood.NcoodError, match="0 classes; expected 1 to 1048576"):
        ncood.ClassStats(0)
    stats = ncood.ClassStats(3)
    stats.update(t(x), t(y))
    with pytest.raises(ncood.NcoodError, match="ClassStats labels: class 2 has no samples"):
        stats.gda()
    with pytest.raises(ncood.NcoodError, match=r"label of sample 0 is 3, expected 0..2"):
        stats.update(t(x[:1]), torch.tensor([3]))
    with pytest.raises(ncood.NcoodError, match=r"ClassStats batch features: expected 1 x 3"):
        stats.update(torch.zeros(1, 4), torch.tensor([0]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_inputs_give_cuda_scores_equal_to_cpu():
    x, y = blobs(60, 3, 5, seed=6)
    cpu = ncood.GDA.fit(t(x), t(y)).score(t(x))
    gpu = ncood.GDA.fit(t(x).cuda(), t(y).cuda()).score(t(x).cuda())
    assert gpu.device.type == "cuda"
    np.testing.assert_allclose(gpu.cpu().numpy(), cpu.numpy(), rtol=1e-12)
