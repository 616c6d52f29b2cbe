"""ncood.nc_loss: values and gradients against torch autograd of a pure-PyTorch NC loss written
from SPEC 7 (a dense rank-(C-1) pseudo-inverse, not ncood's Gram-matrix route), and against finite
differences (torch.autograd.gradcheck, float64)."""
import numpy as np
import pytest
import torch
from conftest import blobs, t

import ncood


def reference_nc_loss(h: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """NC1 + equinorm(M) + equinorm(W) + maxangle(M) + maxangle(W) + NC3 on one batch."""
    c = w.shape[0]
    mu = torch.stack([h[y == k].mean(0) for k in range(c)])
    m = mu - mu.mean(0)
    centred = h - mu[y]
    sigma_w = centred.T @ centred / h.shape[0]
    sigma_b = m.T @ m / c
    ev, vec = torch.linalg.eigh(sigma_b)
    top = vec[:, -(c - 1):] / ev[-(c - 1):]
    nc1 = torch.trace(sigma_w @ top @ vec[:, -(c - 1):].T) / c

    def equinorm(v):
        n = v.norm(dim=1)
        return n.std() / n.mean()

    def cosines(v):
        u = v / v.norm(dim=1, keepdim=True)
        return (u @ u.T)[~torch.eye(c, dtype=torch.bool)]

    def maxangle(v):
        return (cosines(v) + 1 / (c - 1)).abs().mean()

    nc3 = ((w / w.norm() - m / m.norm()) ** 2).sum()
    return nc1 + equinorm(m) + equinorm(w) + maxangle(m) + maxangle(w) + nc3


def batch(seed: int, dtype=torch.float64):
    x, y = blobs(6, 4, 8, seed=seed, spread=1.5)
    w = np.random.default_rng(seed).normal(size=(4, 8))
    return (t(x, dtype).requires_grad_(), t(y), t(w, dtype).requires_grad_())


def test_value_and_gradients_match_pure_pytorch():
    h, y, w = batch(13)
    loss = ncood.nc_loss(h, y, w)
    gh, gw = torch.autograd.grad(loss, (h, w))
    h2, w2 = h.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    ref = reference_nc_loss(h2, y, w2)
    rh, rw = torch.autograd.grad(ref, (h2, w2))
    assert loss.dtype == torch.float64 and loss.shape == ()
    np.testing.assert_allclose(loss.item(), ref.item(), rtol=1e-10)
    np.testing.assert_allclose(gh.numpy(), rh.numpy(), rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(gw.numpy(), rw.numpy(), rtol=1e-7, atol=1e-10)


def test_gradients_match_finite_differences():
    h, y, w = batch(14)
    assert torch.autograd.gradcheck(lambda a, b: ncood.nc_loss(a, y, b), (h, w), eps=1e-6, atol=1e-6)


def test_float32_keeps_dtype_and_trains():
    h, y, w = batch(15, torch.float32)
    loss = ncood.nc_loss(h, y, w)
    assert loss.dtype == torch.float32
    loss.backward()
    assert h.grad.dtype == torch.float32 and w.grad.shape == (4, 8)
    # A few plain SGD steps on features and weights lower the loss.
    opt = torch.optim.SGD([h, w], lr=0.05)
    first = loss.item()
    for _ in range(20):
        opt.zero_grad()
        loss = ncood.nc_loss(h, y, w)
        loss.backward()
        opt.step()
    assert loss.item() < first


def test_errors():
    h, y, w = batch(16)
    with pytest.raises(ncood.NcoodError, match="class 3 has no sample in the batch"):
        ncood.nc_loss(h[y < 3], y[y < 3], w)
    with pytest.raises(ncood.NcoodError, match=r"nc_loss weight: expected C x 8 with C >= 2"):
        ncood.nc_loss(h, y, w[:, :5])
    with pytest.raises(ncood.NcoodError, match=r"nc_loss labels: expected 24 \(one per feature row\), got 23"):
        ncood.nc_loss(h, y[:23], w)
    with pytest.raises(ncood.NcoodError, match="nc_loss features: value nan is not finite at row 0|nc_loss features: value NaN"):
        ncood.nc_loss(h.detach() * torch.nan, y, w)
