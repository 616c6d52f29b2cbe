"""PyTorch side of the training-step benchmark: the DDU ResNet of python/ddu_resnet.py, one SGD step
(forward, cross-entropy, backward, update) per batch on a fixed batch. Prints images/s as JSON."""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))
from ddu_resnet import ResNet  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--steps", type=int, default=30)
p.add_argument("--warmup", type=int, default=5)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--width", type=int, default=16)
p.add_argument("--batch", type=int, default=128)
p.add_argument("--device", default="cpu")
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
model = ResNet("resnet18", a.width, 1, 28, 10, mod=True, l2=True, sn=True).to(a.device).train()
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
x = torch.randn(a.batch, 1, 28, 28, device=a.device)
y = torch.randint(0, 10, (a.batch,), device=a.device)


def step():
    opt.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss


for _ in range(a.warmup):
    step()
t0 = time.perf_counter()
for _ in range(a.steps):
    loss = step()
float(loss)
dt = time.perf_counter() - t0
print(json.dumps({"images_per_s": a.steps * a.batch / dt, "torch": torch.__version__}))
