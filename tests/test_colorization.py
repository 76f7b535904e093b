"""Tests of mlrd_core.data.colorization: the NYU toolbox's colorization fill, vectorized."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg

from mlrd_core.data.colorization import RGB2GRAY, colorization_weights, fill_depth_colorization
from mlrd_core.errors import DataError, ShapeError


def toolbox_fill(rgb: np.ndarray, depth: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """Loop-by-loop transcription of the toolbox's fill_depth_colorization.m (0-based, column-major order)."""
    is_noise = (depth == 0) | (depth == 10)
    max_depth = depth[~is_noise].max()
    img_depth = np.minimum(depth / max_depth, 1.0)
    height, width = depth.shape
    num_pix = height * width
    inds = np.arange(num_pix).reshape(width, height).T  # MATLAB's reshape(1:numPix, H, W)
    gray = rgb @ np.asarray(RGB2GRAY)
    rows, cols, vals = [], [], []
    for j in range(width):
        for i in range(height):
            gvals, neighbours = [], []
            for ii in range(max(0, i - 1), min(i + 2, height)):
                for jj in range(max(0, j - 1), min(j + 2, width)):
                    if ii == i and jj == j:
                        continue
                    neighbours.append(inds[ii, jj])
                    gvals.append(gray[ii, jj])
            cur = gray[i, j]
            window = np.asarray([*gvals, cur])
            c_var = np.mean((window - window.mean()) ** 2)
            csig = c_var * 0.6
            mgv = np.min((np.asarray(gvals) - cur) ** 2)
            if csig < -mgv / np.log(0.01):
                csig = -mgv / np.log(0.01)
            csig = max(csig, 0.000002)
            weights = np.exp(-((np.asarray(gvals) - cur) ** 2) / csig)
            weights /= weights.sum()
            rows += [inds[i, j]] * len(neighbours) + [inds[i, j]]
            cols += [*neighbours, inds[i, j]]
            vals += [*(-weights), 1.0]
    a = scipy.sparse.csc_matrix((vals, (rows, cols)), shape=(num_pix, num_pix))
    known = (~is_noise).T.ravel().astype(float) * alpha  # column-major, as knownValMask(:)
    g = scipy.sparse.diags(known)
    solved = scipy.sparse.linalg.spsolve((a + g).tocsc(), known * img_depth.T.ravel())
    return solved.reshape(width, height).T * max_depth


def test_matches_the_toolbox_transcription() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.random((7, 9, 3))
    depth = 1.0 + rng.random((7, 9)) * 4
    depth[rng.random((7, 9)) < 0.35] = 0.0
    depth[3, 4] = 10.0  # the toolbox's second noise value
    ours = fill_depth_colorization(rgb, depth)
    assert ours.dtype == np.float32 and ours.shape == (7, 9)
    np.testing.assert_allclose(ours, toolbox_fill(rgb, depth), rtol=1e-5)
    np.testing.assert_allclose(fill_depth_colorization(rgb, depth, 0.3), toolbox_fill(rgb, depth, 0.3), rtol=1e-5)


def test_weights_are_normalized_and_zero_outside() -> None:
    gray = np.random.default_rng(1).random((5, 6))
    weights, inside = colorization_weights(gray)
    assert weights.shape == inside.shape == (8, 5, 6)
    np.testing.assert_allclose(weights.sum(axis=0), 1.0)
    assert np.all(weights[~inside] == 0)
    assert inside[:, 0, 0].sum() == 3 and inside[:, 2, 2].sum() == 8


def ramp_case() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Constant grey image, depth a smooth ramp along rows and columns, a 6×8 hole in the middle."""
    height, width = 24, 32
    rows, cols = np.mgrid[0:height, 0:width]
    truth = 1.0 + 0.05 * cols + 0.02 * rows
    depth = truth.copy()
    depth[9:15, 12:20] = 0.0
    rgb = np.full((height, width, 3), 0.5)
    return rgb, depth, truth


def test_hole_in_smooth_ramp_is_filled_close_to_the_ramp() -> None:
    rgb, depth, truth = ramp_case()
    hole = depth == 0
    for alpha in (1.0, math.inf):
        filled = fill_depth_colorization(rgb, depth, alpha)
        assert np.all(filled > 0)
        np.testing.assert_allclose(filled[hole], truth[hole], rtol=2e-3)


def test_known_pixels_are_kept() -> None:
    rgb, depth, _ = ramp_case()
    known = depth > 0
    hard = fill_depth_colorization(rgb, depth, math.inf)
    np.testing.assert_array_equal(hard[known], depth[known].astype(np.float32))
    # The toolbox's soft constraint (alpha=1) keeps them up to slight smoothing at the image border.
    soft = fill_depth_colorization(rgb, depth, 1.0)
    np.testing.assert_allclose(soft[known], depth[known], rtol=5e-2)
    inner = (slice(2, -2), slice(2, -2))
    np.testing.assert_allclose(soft[inner][known[inner]], depth[inner][known[inner]], rtol=2e-3)


def test_strong_colour_edge_keeps_regions_apart() -> None:
    height, width = 20, 30
    rgb = np.zeros((height, width, 3))
    rgb[:, 15:] = (1.0, 0.9, 0.8)  # dark left, bright right
    depth = np.where(np.arange(width) < 15, 1.0, 3.0)[None].repeat(height, axis=0)
    depth[5:15, 10:20] = 0.0  # a hole straddling the edge
    for alpha in (1.0, math.inf):
        filled = fill_depth_colorization(rgb, depth, alpha)
        np.testing.assert_allclose(filled[5:15, 10:15], 1.0, atol=0.02)
        np.testing.assert_allclose(filled[5:15, 15:20], 3.0, atol=0.02)


def test_noise_values_and_uint8_input() -> None:
    rng = np.random.default_rng(2)
    rgb8 = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    depth = np.full((6, 7), 2.0)
    depth[2, 3] = 10.0
    filled = fill_depth_colorization(rgb8, depth, math.inf)
    assert filled[2, 3] == pytest.approx(2.0)  # 10 m is missing by default, as in the toolbox
    kept = fill_depth_colorization(rgb8, depth, math.inf, noise_values=())
    assert kept[2, 3] == 10.0
    np.testing.assert_allclose(
        fill_depth_colorization(rgb8, depth), fill_depth_colorization(rgb8 / 255.0, depth), rtol=1e-6
    )


def test_errors() -> None:
    rgb = np.zeros((4, 5, 3))
    with pytest.raises(ShapeError, match=r"expected rgb of shape \(H, W, 3\)"):
        fill_depth_colorization(np.zeros((3, 4, 5)), np.ones((4, 5)))
    with pytest.raises(ShapeError, match=r"expected depth of shape \(H, W\)"):
        fill_depth_colorization(rgb, np.ones((1, 4, 5)))
    with pytest.raises(DataError, match="no known pixel"):
        fill_depth_colorization(rgb, np.zeros((4, 5)))
    with pytest.raises(DataError, match="alpha must be > 0"):
        fill_depth_colorization(rgb, np.ones((4, 5)), 0.0)
