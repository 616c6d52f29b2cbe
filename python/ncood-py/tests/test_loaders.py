"""DataLoaders and models: GDA.fit_loader = GDA.fit, score on loaders and 1-D rows, ClassStats on
(x, y) batches, collapse over a DataLoader's [x, y] batches, features from a model; results on the
inputs' device; long calls release the GIL."""
import threading
import time

import numpy as np
import pytest
import torch
from conftest import blobs, t
from torch.utils.data import DataLoader, TensorDataset

import ncood


def loader(x: np.ndarray, y: np.ndarray, batch_size: int = 17, shuffle: bool = True) -> DataLoader:
    return DataLoader(TensorDataset(t(x), t(y)), batch_size=batch_size, shuffle=shuffle,
                      generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("covariance", ["full", "tied", "shrinkage"])
def test_fit_loader_equals_fit(covariance):
    x, y = blobs(30, 4, 5, seed=51)
    test = t(blobs(8, 4, 5, seed=52)[0])
    want = ncood.GDA.fit(t(x), t(y), covariance=covariance).score(test)
    got = ncood.GDA.fit_loader(loader(x, y), covariance=covariance)
    assert got.class_counts == [30] * 4 and got.covariance == covariance
    torch.testing.assert_close(got.score(test), want, rtol=1e-10, atol=0)


def test_fit_loader_with_a_model_and_scores_of_loaders_and_rows():
    x, y = blobs(30, 3, 6, seed=53)
    model = torch.nn.Linear(6, 4).double()
    calls = []

    def features(inputs):
        calls.append(torch.is_grad_enabled())
        return model(inputs)

    g = ncood.GDA.fit_loader(loader(x, y), model=features)
    assert not any(calls)  # the model runs without autograd
    with torch.no_grad():
        h = model(t(x))
    torch.testing.assert_close(g.score(h), ncood.GDA.fit(h, t(y)).score(h), rtol=1e-10, atol=0)
    # A loader of (x, y) batches in order, through the model: the scores of all rows in order
    # (to rounding: a triangular solve of another batch size may round differently).
    whole = g.score(h)
    torch.testing.assert_close(g.score(loader(x, y, shuffle=False), model=features), whole, rtol=1e-12, atol=0)
    # A list of bare feature batches, and one 1-D row (a 0-d score).
    torch.testing.assert_close(g.score([h[:10], h[10:]]), whole, rtol=1e-12, atol=0)
    row = g.score(h[3])
    assert row.shape == ()
    torch.testing.assert_close(row, whole[3], rtol=1e-12, atol=0)
    with pytest.raises(ncood.NcoodError, match=r"GDA features to score: expected N x 4, got \[1, 3\]"):
        g.score(h[3, :3])
    with pytest.raises(TypeError, match="expected a torch.Tensor or an iterable of batches"):
        g.score(3.0)
    with pytest.raises(ncood.NcoodError, match="the iterable has no batches"):
        g.score([])


def test_class_stats_take_dataloader_batches():
    x, y = blobs(25, 3, 4, seed=54)
    w = t(np.random.default_rng(5).normal(size=(3, 4)))
    stats = ncood.ClassStats(3)
    for batch in loader(x, y):  # a list [x, y], as DataLoader gives it
        stats.update(batch)
    other = ncood.ClassStats(3)
    other.update_loader(loader(x, y, batch_size=7))
    assert stats.counts == other.counts == [25] * 3
    torch.testing.assert_close(stats.means, other.means, rtol=1e-12, atol=0)
    # NC4's second pass over the same DataLoader's [x, y] batches.
    want = ncood.collapse(t(x), t(y), w)
    got = stats.collapse(loader(x, y), w)
    for k in ("nc1", "nc3", "nc4", "n"):
        np.testing.assert_allclose(got[k], want[k], rtol=1e-9)
    with pytest.raises(TypeError, match="expected \\(inputs, labels\\), got a tensor alone"):
        other.update_loader([t(x)])
    with pytest.raises(TypeError, match="labels are missing"):
        stats.update(t(x))


def test_results_are_on_the_inputs_device():
    # CPU here; on a CUDA machine test_cuda_inputs_compute_on_the_device checks the GPU.
    x, y = blobs(20, 2, 3, seed=55)
    g = ncood.GDA.fit(t(x, torch.float32), t(y))
    assert g.means.device.type == "cpu" and g.means.dtype == torch.float64
    s = g.score(t(x, torch.float32))
    assert s.device.type == "cpu" and s.dtype == torch.float64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_inputs_compute_on_the_device():
    x, y = blobs(60, 3, 5, seed=56)
    xc, yc = t(x).cuda(), t(y).cuda()
    g = ncood.GDA.fit(xc, yc)
    assert g.means.device.type == "cuda" and g.cholesky_factors.device.type == "cuda"
    s = g.score(xc)
    assert s.device.type == "cuda"
    np.testing.assert_allclose(s.cpu().numpy(), ncood.GDA.fit(t(x), t(y)).score(t(x)).numpy(), rtol=1e-10)
    stats = ncood.ClassStats(3)
    stats.update(xc, yc)
    assert stats.means.device.type == "cuda"
    assert ncood.GDA.from_state_dict(g.state_dict()).means.device.type == "cuda"


def test_long_calls_release_the_gil():
    x, y = blobs(4000, 8, 128, seed=57)
    xt, yt = t(x), t(y)
    ticks = 0
    stop = threading.Event()

    def tick():
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            time.sleep(0.001)

    th = threading.Thread(target=tick)
    th.start()
    t0 = time.perf_counter()
    g = ncood.GDA.fit(xt, yt)
    g.score(xt)
    elapsed = time.perf_counter() - t0
    stop.set()
    th.join()
    # Holding the GIL, the ticker would advance a few times at most (at Python's 5 ms switch
    # interval between bytecodes, and not at all inside one call); released, about once per ms.
    assert elapsed > 0.05, f"too quick to tell ({elapsed:.3f} s)"
    assert ticks > 0.2 * elapsed / 0.001, f"{ticks} ticks in {elapsed:.3f} s"
