"""Shared test setup: the torchvision shim and offline hub before anything imports timm; one torch thread per
xdist worker so two workers do not fight over two cores."""

from __future__ import annotations

import os
from collections.abc import Iterator

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch

import mlrd_core  # noqa: F401  (registers the torchvision op schemas before timm is imported)

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Run a test on one torch thread (restored after): on the 2 shared cores of CI, two threads of small
    elementwise kernels on a 480×640 map are ~10× slower than one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
