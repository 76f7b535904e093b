"""Shared test setup: the torchvision shim and offline hub before anything imports timm; one torch thread per
xdist worker so two workers do not fight over two cores."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

import mlrd_core  # noqa: F401  (registers the torchvision op schemas before timm is imported)

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)
