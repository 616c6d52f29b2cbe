"""A rank of test_state.py's all-reduce test: its shard (every other row) of DIR/x.npy, y.npy
into ClassStats, ncood.all_reduce over a gloo group on the loopback, the result saved."""
import os

import numpy as np
import torch
import torch.distributed as dist

import ncood


def run(rank: int, world: int, d: str) -> None:
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{d}/store", rank=rank, world_size=world)
    x, y = np.load(f"{d}/x.npy"), np.load(f"{d}/y.npy")
    stats = ncood.ClassStats(int(y.max()) + 1)
    stats.update(torch.from_numpy(x[rank::world]), torch.from_numpy(y[rank::world]))
    merged = ncood.all_reduce(stats)
    torch.save(merged.state_dict(), f"{d}/rank{rank}.pt")
    dist.destroy_process_group()
