"""Launch-bound losses on CUDA: eager compute_losses vs the same captured in a CUDA graph (forward + backward).

python tools/cuda_graph_losses.py        # on a CUDA machine; docs/performance.md ("On a GPU") has its numbers
"""

from __future__ import annotations

import time

import torch

import mlrd_core  # noqa: F401
from mlrd_core.losses import compute_losses
from mlrd_core.losses.functional import deferred_target_check
from suite.benchmarks.losses import bench_inputs

for batch in (2, 8):
    pred, target = bench_inputs(batch=batch, height=288, width=384)
    pred = pred.cuda().requires_grad_(True)
    target = target.cuda()

    def losses(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        with deferred_target_check():
            return compute_losses(p, t)

    def time_it(fn, n=40):
        for _ in range(5):
            fn(pred, target).sum().backward()
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(n):
            fn(pred, target).sum().backward()
        torch.cuda.synchronize()
        return (time.perf_counter() - t) / n * 1000

    eager = time_it(losses)
    ref = losses(pred, target).detach()
    try:
        graphed = torch.cuda.make_graphed_callables(losses, (pred, target))
        g = time_it(graphed)
        same = torch.allclose(graphed(pred, target).detach(), ref, rtol=1e-5, atol=1e-6)
        print(f"batch {batch}: eager {eager:.2f} ms, CUDA graph {g:.2f} ms (x{eager / g:.1f}), same values {same}")
    except Exception as error:
        print(f"batch {batch}: eager {eager:.2f} ms; graph capture failed: {type(error).__name__}: {error}"[:600])
