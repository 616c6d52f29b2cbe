"""Every kind of tensor a PyTorch user can hand over is an NcoodError naming what was passed, never
a PanicException (a BaseException that `except Exception` does not catch) from a tch unwrap;
scores are never NaN for finite inputs; resume-state checkpoints are refused."""
import re

import numpy as np
import pytest
import torch
from conftest import blobs, t

import ncood

# torch's own notices that sparse CSR and nested tensors are beta/prototype: not ours to show.
pytestmark = pytest.mark.filterwarnings("ignore:(Sparse CSR|The PyTorch API of nested):UserWarning")

X, Y = blobs(20, 2, 3, seed=31)
XT, YT = t(X), t(Y)
W = torch.randn(2, 3, dtype=torch.float64)
FITTED = ncood.GDA.fit(XT, YT)


def strange(x: torch.Tensor) -> dict[str, tuple[torch.Tensor, str]]:
    """Tensors of x's shape that no ncood function can use, with what the error must name."""
    kinds = {
        "meta": (torch.empty(x.shape, device="meta"), "got a torch.strided tensor on meta"),
        "sparse_coo": (x.to_sparse(), "got a torch.sparse_coo tensor on cpu"),
        "sparse_csr": (x.float().to_sparse_csr() if x.dim() == 2 else x.to_sparse(), "got a torch.sparse_"),
        "complex": (x.to(torch.complex64), "expected a float tensor, got ComplexFloat"),
        "bool": (x > 0, "expected a float tensor, got Bool"),
        "int": (x.long(), "expected a float tensor, got Int64"),
        "quantized": (torch.quantize_per_tensor(x.float(), 0.1, 0, torch.qint8), "expected a float tensor, got QInt8"),
        "nested": (torch.nested.nested_tensor([x[0], x[1]]) if x.dim() == 2 else x.to_sparse(), "got a "),
    }
    return kinds


KINDS = ["meta", "sparse_coo", "sparse_csr", "complex", "bool", "int", "quantized", "nested"]

# Each call with the argument under test and its shape: features (N x D), weights (C x D), scores (N).
CALLS = {
    "GDA.fit": ("x", lambda bad: ncood.GDA.fit(bad, YT)),
    "GDA.score": ("x", lambda bad: FITTED.score(bad)),
    "GDA.fit_loader": ("x", lambda bad: ncood.GDA.fit_loader([(bad, YT)])),
    "ClassStats.update": ("x", lambda bad: ncood.ClassStats(2).update(bad, YT)),
    "collapse": ("x", lambda bad: ncood.collapse(bad, YT, W)),
    "collapse weight": ("w", lambda bad: ncood.collapse(XT, YT, bad)),
    "nc_loss": ("x", lambda bad: ncood.nc_loss(bad, YT, W)),
    "nc_loss weight": ("w", lambda bad: ncood.nc_loss(XT, YT, bad)),
    "softmax_scores": ("x", lambda bad: ncood.softmax_scores(bad)),
    "metrics": ("s", lambda bad: ncood.metrics(bad, XT[:, 0])),
}
SHAPED = {"x": XT, "w": W, "s": XT[:, 0].contiguous()}


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("kind", KINDS)
def test_strange_tensors_are_errors_naming_them(call, kind):
    shape, f = CALLS[call]
    bad, named = strange(SHAPED[shape])[kind]
    with pytest.raises(ncood.NcoodError, match=re.escape(named)):
        f(bad)


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "int"] + ["float"])
def test_strange_label_tensors_are_errors(kind):
    bad = YT.double() if kind == "float" else strange(YT.double())[kind][0]
    with pytest.raises(ncood.NcoodError):
        ncood.GDA.fit(XT, bad)
    with pytest.raises(ncood.NcoodError):
        ncood.nc_loss(XT, bad, W)


def test_softmax_scores_stay_finite_at_extreme_temperatures_and_logits():
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [1e300, -1e300, 5.0]], dtype=torch.float64)
    for temperature in (1e-308, 1e-8, 1.0, 1e6):
        s = ncood.softmax_scores(logits, temperature)
        for name, v in s.items():
            assert torch.isfinite(v).all(), (temperature, name, v)
    s = ncood.softmax_scores(logits, 1e-308)
    # At T -> 0 the softmax is the argmax's indicator: msp 1 (ties split), entropy 0, energy the max.
    torch.testing.assert_close(s["msp"], torch.tensor([1.0, 1 / 3, 1.0], dtype=torch.float64))
    torch.testing.assert_close(s["neg_entropy"], torch.tensor([0.0, -np.log(3), 0.0], dtype=torch.float64))
    torch.testing.assert_close(s["energy"][[0, 2]], torch.tensor([3.0, 1e300], dtype=torch.float64))
    # Energy itself beyond float64 (T log C = 2.3e308) is an error, not inf or NaN.
    with pytest.raises(ncood.NcoodError, match=r"energy at temperature 1e308: value inf is not finite at row 0"):
        ncood.softmax_scores(torch.zeros(2, 10), 1e308)


def test_state_checkpoint_and_foreign_files_are_errors(real, tmp_path):
    state = real.checkpoint.with_name(real.checkpoint.name.replace(".safetensors", ".state.safetensors"))
    assert state.exists()
    with pytest.raises(ncood.NcoodError, match=r"state\.safetensors: a resume state, not the weights"):
        ncood.load_checkpoint(state)
    # The same file renamed: its tensors fit no PyTorch ResNet.
    renamed = tmp_path / "epoch-0002.safetensors"
    renamed.write_bytes(state.read_bytes())
    with pytest.raises(ncood.NcoodError, match="do not fit the ResNet its recorded configuration describes"):
        ncood.load_checkpoint(renamed)
