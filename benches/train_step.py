"""PyTorch side of the training-step benchmark: the DDU ResNet18 of python/ddu_resnet.py (spectral
norm, mod, L2), one SGD step (forward, cross-entropy, backward, update) per batch on a fixed batch,
in each requested variant (memory layout x precision). Prints {variant: images/s} as JSON.

Variants are `LAYOUT:PRECISION` with LAYOUT contiguous (PyTorch's default) or channels_last and
PRECISION fp32 or bf16 (`torch.autocast(dtype=torch.bfloat16)` around the forward pass, loss in
fp32), as a PyTorch user would write them. With each variant's images/s goes the memory it
page-faulted in per timed step (getrusage minor faults x page size): the cost of an allocator that
hands freed memory back to the kernel.
"""
import argparse
import json
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))
from ddu_resnet import ResNet  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--variants", default="contiguous:fp32")
p.add_argument("--steps", type=int, default=30)
p.add_argument("--warmup", type=int, default=3)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--width", type=int, default=16)
p.add_argument("--channels", type=int, default=1)
p.add_argument("--side", type=int, default=28)
p.add_argument("--batch", type=int, default=128)
p.add_argument("--device", default="cpu")
a = p.parse_args()
torch.set_num_threads(a.threads)


def sync():
    if a.device.startswith("cuda"):
        torch.cuda.synchronize()


def bench(layout, precision):
    torch.manual_seed(0)
    model = ResNet("resnet18", a.width, a.channels, a.side, 10, mod=True, l2=True, sn=True)
    model = model.to(a.device).train()
    x = torch.randn(a.batch, a.channels, a.side, a.side, device=a.device)
    if layout == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (a.batch,), device=a.device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    device_type = "cuda" if a.device.startswith("cuda") else "cpu"

    def step():
        opt.zero_grad()
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = model(x)
        loss = F.cross_entropy(out.float(), y)
        loss.backward()
        opt.step()
        return loss

    for _ in range(a.warmup):
        step()
    sync()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t0 = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    float(loss.detach())
    dt = time.perf_counter() - t0
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    return {
        "images_per_s": a.steps * a.batch / dt,
        "page_fault_mb_per_step": faults * resource.getpagesize() / 1e6 / a.steps,
    }


out = {}
for v in a.variants.split(","):
    layout, precision = v.split(":")
    assert layout in ("contiguous", "channels_last") and precision in ("fp32", "bf16"), v
    out[v] = bench(layout, precision)
print(json.dumps(out))
