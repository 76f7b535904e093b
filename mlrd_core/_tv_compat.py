"""Make the pure-Python parts of torchvision (and therefore timm) importable beside a CPU-only torch.

The torchvision wheel that matches torch 2.13.0 is a CUDA build whose C++ extension cannot load on the CPU
build of torch. torchvision then fails at import time in ``_meta_registrations.py`` with
"operator torchvision::nms does not exist", because it registers fake kernels for ops whose schemas were never
defined. Defining the two schemas it touches unconditionally is enough: transforms, models and ``timm`` work,
and only the C++ ops (nms, roi_align, ...) raise if called, which a depth project never does.

When a working torchvision is installed (a CUDA machine, or a matching CPU build) ``nms`` already exists and
this module does nothing. Import it before anything imports torchvision or timm.
"""

from __future__ import annotations

import torch

_LIB: torch.library.Library | None = None

if not hasattr(torch.ops.torchvision, "nms"):
    _LIB = torch.library.Library("torchvision", "DEF")
    _LIB.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIB.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
