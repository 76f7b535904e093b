"""Qualitative depth maps: a run's model from its checkpoint (:func:`mlrd_core.checkpoint.load_run_model`), test
items built as the trainer builds them (:func:`depth_samples`), predictions (:func:`predict_depth`) and the figure
(:func:`plot_depth_maps`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import torch

    from mlrd_core.config import RunConfig

from mlrd_core.checkpoint import CHECKPOINT_NAME
from suite.figures.data import FigureDataError
from suite.figures.plots import FORMATS, _colormap, _figure, _save


@dataclass(frozen=True)
class DepthSample:
    """One test item at its native resolution: ``image`` [H, W, 3] in [0, 1], ``depth`` and ``mask`` [H, W]."""

    index: int
    image: np.ndarray
    depth: np.ndarray
    mask: np.ndarray


def depth_samples(config: RunConfig, indices: Sequence[int], *, seed: int = 0) -> list[DepthSample]:
    """Items ``indices`` of the run's test split, built exactly as the trainer builds it for the final test."""
    from mlrd_core.data import make_dataset
    from mlrd_core.data.mixture import eval_dataset_name
    from mlrd_core.trainer import split_options  # the trainer's own rule: the images the run was tested on

    if not config.test_split:
        raise FigureDataError("the run has no test split")
    dataset = make_dataset(  # a mixture is tested on its eval dataset (split_options gives that one's options)
        eval_dataset_name(config), split=config.test_split, seed=seed, **split_options(config, config.test_split)
    )
    n = len(dataset)  # type: ignore[arg-type]
    out = []
    for index in [i for i in indices if 0 <= i < n]:
        item = dataset[index]
        out.append(
            DepthSample(
                index=int(index),
                image=item["image"].permute(1, 2, 0).numpy().clip(0, 1),
                depth=item["depth"][0].numpy(),
                mask=item["mask"][0].numpy().astype(bool),
            )
        )
    if not out:
        raise FigureDataError(f"the test split {config.test_split!r} has none of the items {list(indices)}")
    return out


def predict_depth(model: torch.nn.Module, config: RunConfig, samples: Sequence[DepthSample]) -> list[np.ndarray]:
    """Predicted depth [H, W] for each sample at its native size: the image is resized to the network input as in
    the trainer's evaluation (bilinear, antialiased) and the prediction resized back (bilinear)."""
    import torch
    import torch.nn.functional as F

    out = []
    with torch.no_grad():
        for sample in samples:
            image = torch.from_numpy(np.ascontiguousarray(sample.image.transpose(2, 0, 1)))[None].float()
            size = tuple(config.input_size)
            if tuple(image.shape[-2:]) != size:
                image = F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)
            pred = model(image).float()
            if tuple(pred.shape[-2:]) != sample.depth.shape:
                pred = F.interpolate(pred, size=sample.depth.shape, mode="bilinear", align_corners=False)
            out.append(pred[0, 0].numpy())
    return out


def plot_depth_maps(
    samples: Sequence[DepthSample],
    predictions: Mapping[str, Sequence[np.ndarray]],
    stem: Path,
    *,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """Rows: test images; columns: RGB, ground truth, each arm's prediction with its RMSE on that image (plain
    per-pixel RMSE over the valid mask, not a protocol's). One colour scale per row (its colour bar), the ground
    truth's 2nd-98th percentile; far is red, near is blue, as in the paper's Fig. 4."""
    cmap = _colormap("turbo")
    columns = 2 + len(predictions)
    h, w = samples[0].depth.shape
    panel_w = 2.0
    fig = _figure(panel_w * columns + 1.0, (panel_w * h / w + 0.35) * len(samples) + 0.6)
    axes = np.atleast_2d(fig.subplots(len(samples), columns, squeeze=False))
    for i, sample in enumerate(samples):
        valid = sample.depth[sample.mask] if sample.mask.any() else sample.depth.ravel()
        lo, hi = (float(v) for v in np.percentile(valid, [2, 98])) if valid.size else (0.0, 1.0)
        axes[i, 0].imshow(sample.image)
        shown = axes[i, 1].imshow(sample.depth, cmap=cmap, vmin=lo, vmax=hi)
        axes[i, 0].set_ylabel(f"test #{sample.index}", fontsize=8)
        axes[i, 0].set_title("image" if i == 0 else "", fontsize=8, pad=2)
        axes[i, 1].set_title("ground truth" if i == 0 else "", fontsize=8, pad=2)
        for j, (arm, preds) in enumerate(predictions.items()):
            pred = preds[i]
            err = pred[sample.mask] - sample.depth[sample.mask]
            rmse = float(np.sqrt(np.mean(err**2))) if err.size else math.nan
            axes[i, 2 + j].imshow(pred, cmap=cmap, vmin=lo, vmax=hi)
            title = f"{arm}\nRMSE {rmse:.3f} m" if i == 0 else f"RMSE {rmse:.3f} m"
            axes[i, 2 + j].set_title(title, fontsize=7, pad=2)
        bar = fig.colorbar(shown, ax=axes[i, :].tolist(), fraction=0.02, pad=0.01)
        bar.ax.tick_params(labelsize=6)
        bar.set_label("depth (m)", fontsize=6)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("Test images: ground truth and predictions (far = red, near = blue)", fontsize=10)
    return _save(fig, stem, formats)


def _checkpoints(arms: pd.DataFrame, order: Sequence[str], runs_dir: Path) -> list[tuple[str, Path]]:
    """(arm, checkpoint of its lowest seed that has one) for every arm in ``order`` with a checkpoint."""
    from suite.plan import SHORT_ID_LENGTH

    out = []
    for arm in order:
        members = arms[arms["key"] == arm].sort_values("seed")
        for run_id in members["run_id"]:
            path = runs_dir / str(run_id)[:SHORT_ID_LENGTH] / CHECKPOINT_NAME
            if path.exists():
                out.append((arm, path))
                break
    return out
