"""Launch-bound losses on CUDA: eager compute_losses vs the same captured in a CUDA graph (forward + backward).

python tools/cuda_graph_losses.py        # on a CUDA machine; docs/performance.md ("On a GPU") has its numbers
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

import mlrd_core  # noqa: F401  (registers torchvision's op schemas where needed)
from mlrd_core.losses import compute_losses
from mlrd_core.losses.functional import deferred_target_check
from suite.benchmarks.losses import bench_inputs


def losses(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    with deferred_target_check():  # no host sync inside the captured region
        return compute_losses(pred, target)


def time_ms(fn: Callable[..., torch.Tensor], pred: torch.Tensor, target: torch.Tensor, n: int = 40) -> float:
    for _ in range(5):
        fn(pred, target).sum().backward()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(n):
        fn(pred, target).sum().backward()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / n * 1000


def main() -> None:
    for batch in (2, 8):
        pred, target = bench_inputs(batch=batch, height=288, width=384)
        pred, target = pred.cuda().requires_grad_(True), target.cuda()
        eager = time_ms(losses, pred, target)
        graphed = torch.cuda.make_graphed_callables(losses, (pred, target))
        replayed = time_ms(graphed, pred, target)
        same = torch.allclose(graphed(pred, target).detach(), losses(pred, target).detach(), rtol=1e-5, atol=1e-6)
        ratio = eager / replayed
        print(f"batch {batch}: eager {eager:.2f} ms, CUDA graph {replayed:.2f} ms (x{ratio:.1f}), same values {same}")


if __name__ == "__main__":
    main()
