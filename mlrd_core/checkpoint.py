"""The trainer's checkpoint format, in one place: write, load, resume, the model of a run, its metric history.

A checkpoint is a ``torch.save`` of a plain dict (loaded with ``weights_only=True``, so no code runs on load) with
the keys of :data:`CHECKPOINT_KEYS`, ``"format": CHECKPOINT_FORMAT`` and ``"metrics"`` (every metric row recorded
so far). :func:`mlrd_core.trainer.fit` writes one into its ``workdir`` at every period end
(:func:`save_checkpoint`) and resumes from it (:func:`load_resume_checkpoint`); the suite reads the trained model
(:func:`load_run_model`, for depth-map figures) and the validation history (:func:`metric_history`, for the
search's pruner) from the same files.
"""

from __future__ import annotations

import os
import pickle
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from mlrd_core.atomic import atomic_path
from mlrd_core.errors import ConfigError

if TYPE_CHECKING:
    from mlrd_core.config import RunConfig

CHECKPOINT_NAME = "checkpoint.pt"
#: The checkpoint before the latest one, kept by :func:`save_checkpoint` as a fallback.
PREVIOUS_CHECKPOINT_NAME = "checkpoint.prev.pt"
CHECKPOINT_FORMAT = 1
CHECKPOINT_KEYS = ("config", "seed", "model", "optimizer", "weighting", "scaler", "rng", "epoch", "next_batch", "step")


def save_checkpoint(path: Path, payload: Mapping[str, Any]) -> None:
    """Write atomically and keep the previous checkpoint as :data:`PREVIOUS_CHECKPOINT_NAME` beside it: a kill
    during the write leaves the previous checkpoint intact, and a checkpoint damaged later (a truncated copy, a full
    disk) still has a predecessor to resume from (:func:`load_resume_checkpoint`). The temporary file is named
    after the process, so two writers never rename each other's half-written file (:mod:`mlrd_core.atomic`)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            torch.save(dict(payload), fh)
            fh.flush()
            os.fsync(fh.fileno())
        if path.exists():
            os.replace(path, path.with_name(PREVIOUS_CHECKPOINT_NAME))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (no arbitrary code runs on load)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def _warn(message: str) -> None:
    """A warning of the trainer: on stderr (a worker's ``worker.log``), prefixed so that it is found."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


def load_resume_checkpoint(
    workdir: Path, *, config: Mapping[str, Any], seed: int, warn: Callable[[str], None] = _warn
) -> tuple[dict[str, Any] | None, Path | None]:
    """The checkpoint a run in ``workdir`` resumes from, and its file: ``checkpoint.pt``, or when that one does not
    load (truncated, not a checkpoint, wrong format) the previous one, ``checkpoint.prev.pt``, or else none (a fresh
    start). A file that does not load is renamed ``<name>.damaged-<UTC time>`` (kept for inspection, never loaded
    again) and ``warn`` is called with a message naming it. A checkpoint that loads but belongs to another run
    (config, seed) is a :class:`ConfigError`: it is not damaged, the folder is someone else's."""
    for name in (CHECKPOINT_NAME, PREVIOUS_CHECKPOINT_NAME):
        path = workdir / name
        if not path.exists():
            continue
        try:
            ckpt = load_checkpoint(path)
            if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
                found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
                raise ValueError(f"format {found!r}, expected {CHECKPOINT_FORMAT}")
            missing = [k for k in CHECKPOINT_KEYS if k not in ckpt]
            if missing:
                raise ValueError(f"it lacks {missing}")
        except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError, ... for damaged files
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            aside = path.with_name(f"{name}.damaged-{stamp}")
            os.replace(path, aside)
            first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
            fallback = "the previous checkpoint" if name == CHECKPOINT_NAME else "a fresh start"
            warn(
                f"checkpoint {path} does not load ({type(exc).__name__}: {first_line}); moved it to {aside.name} "
                f"and resuming from {fallback}"
            )
            continue
        if ckpt["config"] != dict(config) or ckpt["seed"] != seed:
            raise ConfigError(
                f"checkpoint {path} belongs to another run (config or seed differ); remove it or use another workdir"
            )
        return ckpt, path
    return None, None


def load_run_model(checkpoint: Path) -> tuple[torch.nn.Module, RunConfig]:
    """The trained model of a run checkpoint (``torch.load(weights_only=True)``) in eval mode, and its config.

    The encoder is built without pretrained weights (the checkpoint holds all of them), so no download happens.
    """
    from mlrd_core.config import RunConfig
    from mlrd_core.model import model_for_config

    state = load_checkpoint(checkpoint)
    config = RunConfig.from_dict(state["config"], where=f"{checkpoint} config")
    model = model_for_config(config, pretrained=False)
    model.load_state_dict(state["model"])
    model.eval()
    return model, config


def metric_history(path: Path, metric: str, split: str = "val") -> dict[int, float]:
    """``{epoch: value}`` of ``metric`` on ``split`` recorded in a trainer checkpoint (empty when there is none).

    The trainer writes its checkpoint atomically right after each epoch's validation, with every metric row so far
    (also those of earlier attempts of a resumed run). It is memory-mapped: tensors are not read.
    """
    if not path.exists():
        return {}
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError):  # gone since exists(), or not a checkpoint
        return {}
    rows = ckpt.get("metrics", []) if isinstance(ckpt, Mapping) else []
    return {int(r["epoch"]): float(r["value"]) for r in rows if r.get("split") == split and r.get("name") == metric}
