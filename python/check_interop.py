"""Loads an ncood checkpoint into the plain PyTorch reference ResNet and compares logits.

usage: check_interop.py WEIGHTS.safetensors X.npy LOGITS.npy ARCH WIDTH CHANNELS SIDE CLASSES MOD L2
Exits non-zero (with the reason) unless load_state_dict(strict=True) succeeds and the eval-mode
logits on X match ncood's within 1e-4.
"""
import os
import sys

import numpy as np
import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(__file__))
from ddu_resnet import ResNet  # noqa: E402

w, x, logits, arch, width, ch, side, classes, mod, l2 = sys.argv[1:]
model = ResNet(arch, int(width), int(ch), int(side), int(classes), mod=mod == "1", l2=l2 == "1", sn=False)
model.load_state_dict(load_file(w), strict=True)
model.eval()
with torch.no_grad():
    out = model(torch.from_numpy(np.load(x))).numpy()
ref = np.load(logits)
diff = float(np.abs(out - ref).max())
print(f"max |logit difference| = {diff:.3g}")
sys.exit(0 if diff < 1e-4 else 1)
