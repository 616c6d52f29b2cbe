"""Fitted state kept: GDA and ClassStats through pickle, torch.save/torch.load and their state
dicts; the exposed means and covariances against numpy; ClassStats.merge and ncood.all_reduce
(two real gloo processes) against one pass over all samples."""
import io
import os
import pickle
import sys

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from conftest import blobs, t

import ncood

sys.path.insert(0, os.path.dirname(__file__))
import ddp_worker  # noqa: E402


@pytest.mark.parametrize("covariance", ["full", "tied", "shrinkage"])
def test_gda_round_trips_through_pickle_and_torch_save(covariance, tmp_path):
    x, y = blobs(30, 3, 5, seed=41)
    g = ncood.GDA.fit(t(x), t(y), covariance=covariance)
    test = t(blobs(10, 3, 5, seed=42)[0])
    want = g.score(test)
    # Scores to rounding: MKL's kernels may round differently with the memory's alignment.
    same = lambda a, b: torch.testing.assert_close(a, b, rtol=1e-13, atol=0)  # noqa: E731
    back = pickle.loads(pickle.dumps(g))
    same(back.score(test), want)
    torch.save(g, tmp_path / "gda.pt")
    same(torch.load(tmp_path / "gda.pt", weights_only=False).score(test), want)
    # The state dict is plain data: loadable with torch.load's default weights_only=True.
    torch.save(g.state_dict(), tmp_path / "state.pt")
    again = ncood.GDA.from_state_dict(torch.load(tmp_path / "state.pt"))
    same(again.score(test), want)
    for k in ("covariance", "jitter", "condition_numbers", "class_counts", "feature_dim"):
        assert getattr(again, k) == getattr(g, k), k
    assert torch.equal(again.means, g.means) and torch.equal(again.covariances, g.covariances)


def test_gda_exposes_means_and_covariances():
    x, y = blobs(25, 3, 4, seed=43)
    g = ncood.GDA.fit(t(x), t(y))
    np.testing.assert_allclose(g.means.numpy(), [x[y == c].mean(0) for c in range(3)], rtol=1e-12)
    covs = np.stack([np.cov(x[y == c], rowvar=False) for c in range(3)])
    np.testing.assert_allclose(g.covariances.numpy(), covs, rtol=1e-11)
    l = g.cholesky_factors
    assert l.shape == (3, 4, 4) and torch.equal(l, l.tril())
    assert g.class_counts == [25, 25, 25]


def test_corrupt_gda_states_are_errors():
    x, y = blobs(25, 2, 3, seed=44)
    s = ncood.GDA.fit(t(x), t(y)).state_dict()
    with pytest.raises(ncood.NcoodError, match="GDA state factors: not lower Cholesky factors"):
        ncood.GDA.from_state_dict({**s, "cholesky_factors": s["cholesky_factors"].transpose(1, 2)})
    with pytest.raises(ncood.NcoodError, match=r"GDA state factors: expected 1 x 3 x 3 float64 \(tied covariance\)"):
        ncood.GDA.from_state_dict({**s, "covariance": "tied"})
    with pytest.raises(ncood.NcoodError, match="GDA state: has no \"means\""):
        ncood.GDA.from_state_dict({k: v for k, v in s.items() if k != "means"})
    with pytest.raises(ncood.NcoodError, match="GDA state means: value NaN is not finite at row 1"):
        ncood.GDA.from_state_dict({**s, "means": s["means"].index_fill(0, torch.tensor([1]), float("nan"))})


def test_class_stats_round_trip_and_merge_equal_one_pass():
    x, y = blobs(40, 4, 6, seed=45)
    shards = [ncood.ClassStats(4) for _ in range(3)]
    for k, (xb, yb) in enumerate(zip(np.array_split(x, 9), np.array_split(y, 9))):
        shards[k % 3].update(t(xb), t(yb))
    # Through pickle and torch.save, then merged (one shard is empty of some classes).
    buf = io.BytesIO()
    torch.save(shards[1].state_dict(), buf)
    buf.seek(0)
    restored = [pickle.loads(pickle.dumps(shards[0])), ncood.ClassStats.from_state_dict(torch.load(buf)), shards[2]]
    merged = ncood.ClassStats(4)
    for s in restored:
        merged.merge(s)
    merged.merge(ncood.ClassStats(4))  # an empty one changes nothing
    one = ncood.ClassStats(4)
    one.update(t(x), t(y))
    assert merged.counts == one.counts == [40] * 4
    a, b = merged.state_dict(), one.state_dict()
    for k in ("means", "scatter", "norm3", "norm4"):
        torch.testing.assert_close(a[k], b[k], rtol=1e-10, atol=1e-9)
    test = t(x[:20])
    for cov in ("full", "tied", "shrinkage"):
        torch.testing.assert_close(merged.gda(cov).score(test), one.gda(cov).score(test), rtol=1e-10, atol=0)
    # Merging into itself doubles every count (no deadlock on its own lock).
    merged.merge(merged)
    assert merged.counts == [80] * 4
    with pytest.raises(ncood.NcoodError, match="ClassStats to merge: expected statistics of 4 classes, got 3 classes"):
        merged.merge(ncood.ClassStats(3))
    empty = pickle.loads(pickle.dumps(ncood.ClassStats(2)))
    assert empty.counts == [0, 0] and set(empty.state_dict()) == {"counts"}


def test_corrupt_class_stats_states_are_errors():
    s = ncood.ClassStats(2)
    s.update(torch.randn(4, 3, dtype=torch.float64), torch.tensor([0, 0, 0, 0]))
    st = s.state_dict()
    with pytest.raises(ncood.NcoodError, match=r"classes \[1\] have no samples but nonzero moments"):
        ncood.ClassStats.from_state_dict({**st, "means": st["means"] + 1})
    with pytest.raises(ncood.NcoodError, match=r"ClassStats state scatter: expected float64 of shape \[2, 3, 3\]"):
        ncood.ClassStats.from_state_dict({**st, "scatter": st["scatter"][:, :2]})


def test_all_reduce_over_two_processes_equals_one_pass(tmp_path):
    x, y = blobs(30, 3, 5, seed=46)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    mp.spawn(ddp_worker.run, args=(2, str(tmp_path)), nprocs=2, join=True)
    one = ncood.ClassStats(3)
    one.update(t(x), t(y))
    for rank in range(2):
        got = ncood.ClassStats.from_state_dict(torch.load(tmp_path / f"rank{rank}.pt"))
        assert got.counts == one.counts
        torch.testing.assert_close(got.state_dict()["scatter"], one.state_dict()["scatter"], rtol=1e-10, atol=1e-9)
