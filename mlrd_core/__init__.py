"""MLRD core: the science of multi-loss monocular depth estimation (losses, weighting, model, data, metrics,
trainer). It has no I/O policy and never imports :mod:`suite`.
"""

from __future__ import annotations

import os

# Pretrained weights come from the Hugging Face hub. Without this default an offline machine retries for about a
# minute before failing; with it, ``pretrained=True`` fails in under a second with a clear message. It must be
# set before huggingface_hub is imported. Users who are online opt in with HF_HUB_OFFLINE=0.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from mlrd_core import _tv_compat  # noqa: F401  (must run before anything imports torchvision/timm)

__version__ = "0.2.0"
