"""ncood.load_checkpoint: the reference ResNet with a run's weights, configured from the run."""
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import ncood


def test_loads_the_run_model_strictly(real, tmp_path):
    model = ncood.load_checkpoint(real.checkpoint)
    assert isinstance(model, ncood.ResNet) and not model.training
    assert model.l2  # the run trained with model.l2 = true
    state = load_file(str(real.checkpoint))
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        f = model.features(x)
        logits = model(x)
    assert f.shape == (3, 16)  # 8 w, w = 2
    torch.testing.assert_close(logits, model.fc(torch.nn.functional.normalize(f, dim=1)))
    # ncood's features of the same checkpoint enter the same head.
    head = model.fc.weight.detach().double().numpy(), model.fc.bias.detach().double().numpy()
    np.testing.assert_allclose(real.test.normalized.astype(np.float64) @ head[0].T + head[1],
                               real.test.logits, rtol=1e-4, atol=1e-4)


def test_bad_files_are_errors(tmp_path):
    with pytest.raises(ncood.NcoodError, match="nope.safetensors: No such file"):
        ncood.load_checkpoint(tmp_path / "nope.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    with pytest.raises(ncood.NcoodError, match="metadata has no config: not an ncood checkpoint"):
        ncood.load_checkpoint(tmp_path / "junk.safetensors")
