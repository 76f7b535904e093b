"""Make the pure-Python parts of torchvision (and therefore timm) importable beside a CPU-only torch.

The torchvision wheel that matches torch 2.13.0 is a CUDA build whose C++ extension cannot load on the CPU
build of torch. torchvision then fails at import time in ``_meta_registrations.py`` with
"operator torchvision::nms does not exist", because it registers fake kernels for ops whose schemas were never
defined. Defining the two schemas it touches unconditionally is enough: transforms, models and ``timm`` work,
and only the C++ ops (nms, roi_align, ...) raise if called, which a depth project never does.

When a working torchvision is installed (a CUDA machine, or a matching CPU build) its extension loads here and
defines ``nms`` itself, and this module defines nothing: defining the schemas first would make the extension's own
registration fail ("registerDef ... already exists") and abort the process. Import it before anything imports
torchvision or timm.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import importlib.util
from pathlib import Path

import torch

_LIB: torch.library.Library | None = None


def _load_torchvision_extension() -> None:
    """Load torchvision's C++ extension the way torchvision does, if it is installed and loads with this torch."""
    spec = importlib.util.find_spec("torchvision")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            library = Path(folder) / f"_C{suffix}"
            if library.is_file():
                with contextlib.suppress(OSError, RuntimeError):  # a build for another torch: undefined symbols
                    torch.ops.load_library(str(library))
                return


if not hasattr(torch.ops.torchvision, "nms"):
    _load_torchvision_extension()
if not hasattr(torch.ops.torchvision, "nms"):
    _LIB = torch.library.Library("torchvision", "DEF")
    _LIB.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIB.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
