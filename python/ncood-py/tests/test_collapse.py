"""ncood.collapse and ClassStats.collapse against the numpy NC1-4 of reference.py (SPEC 6)."""
import numpy as np
import pytest
import torch
from conftest import blobs, t
from reference import collapse as ref_collapse
from safetensors.numpy import load_file

import ncood


def assert_same(got: dict, want: dict, rtol: float) -> None:
    assert got.keys() == want.keys()
    for k, v in want.items():
        if isinstance(v, dict):
            assert_same(got[k], v, rtol)
        else:
            np.testing.assert_allclose(got[k], v, rtol=rtol, atol=1e-13, err_msg=k)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("with_bias", [False, True])
def test_random_features_match_numpy(dtype, with_bias):
    x, y = blobs(60, 5, 12, seed=7, spread=1.0)
    g = np.random.default_rng(8)
    w, b = g.normal(size=(5, 12)), g.normal(size=5) if with_bias else None
    xt, wt = t(x, dtype), t(w, dtype)
    got = ncood.collapse(xt, t(y), wt, None if b is None else t(b, dtype))
    want = ref_collapse(xt.double().numpy(), y, wt.double().numpy(), b)
    assert_same(got, want, rtol=1e-9)
    assert 0 < got["nc4"] < 1  # a random classifier disagrees with the nearest mean on some rows


def test_real_features_match_numpy(real):
    head = load_file(str(real.checkpoint))
    w, b = head["fc.weight"], head["fc.bias"]
    for split in (real.val, real.test):
        got = ncood.collapse(t(split.normalized), t(split.labels), t(w), t(b))
        assert_same(got, ref_collapse(split.normalized, split.labels, w, b), rtol=1e-8)


def test_streaming_collapse_equals_one_pass():
    x, y = blobs(40, 4, 9, seed=9, spread=1.0)
    w = np.random.default_rng(10).normal(size=(4, 9))
    stats = ncood.ClassStats(4)
    for xb, yb in zip(np.array_split(x, 7), np.array_split(y, 7)):
        stats.update(t(xb), t(yb))
    # NC4's second pass: the batches again, in another order, as a generator.
    streamed = stats.collapse((t(xb) for xb in reversed(np.array_split(x, 3))), t(w))
    assert_same(streamed, ncood.collapse(t(x), t(y), t(w)), rtol=1e-10)
    with pytest.raises(ncood.NcoodError, match="100 rows, but the statistics hold 160 samples"):
        stats.collapse(t(x[:100]), t(w))


def test_nc1_is_undefined_below_c_minus_1_dimensions():
    x, y = blobs(20, 5, 2, seed=11)
    r = ncood.collapse(t(x), t(y), t(np.random.default_rng(1).normal(size=(5, 2))))
    assert r["nc1"] is None
    assert "span 2 dimension(s), fewer than C - 1 = 4" in r["nc1_undefined"]


def test_errors():
    x, y = blobs(10, 3, 4, seed=12)
    w = t(np.random.default_rng(2).normal(size=(3, 4)))
    with pytest.raises(ncood.NcoodError, match=r"NC classifier weights: expected 3 x 4"):
        ncood.collapse(t(x), t(y), w[:, :3])
    with pytest.raises(ncood.NcoodError, match=r"given classifier bias: expected 3 floats"):
        ncood.collapse(t(x), t(y), w, torch.zeros(2))
    with pytest.raises(ncood.NcoodError, match="weight row 1 is zero"):
        ncood.collapse(t(x), t(y), w * torch.tensor([[1.0], [0.0], [1.0]], dtype=w.dtype))
    with pytest.raises(ncood.NcoodError, match=r"label of sample \d+ is 2, expected 0..1"):
        ncood.collapse(t(x), t(y), w[:2])
    bad = x.copy()
    bad[3, 0] = np.inf
    with pytest.raises(ncood.NcoodError, match="NC features: value inf is not finite at row 3"):
        ncood.collapse(t(bad), t(y), w)
    with pytest.raises(ncood.NcoodError, match="non-empty N x D"):
        ncood.collapse(torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64), w)
    with pytest.raises(ncood.NcoodError, match=r"NC features: expected 30 x D"):
        ncood.collapse(t(x[:29]), t(y), w)
