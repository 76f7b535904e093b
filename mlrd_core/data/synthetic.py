"""Procedural RGB-D scenes: the default, offline, CPU-friendly dataset (registered as ``"synthetic"``).

Each item is an indoor scene rendered by vectorized ray casting (numpy, no per-pixel Python loops):

- a room (floor, ceiling and four walls: the inside of a box whose depth and width relative to the camera are
  random, 2.6 to 2.8 m high), with 3 to 8 pieces of furniture of known size (:data:`FURNITURE`: chairs, tables,
  cabinets, beds, sofas, crates, balls, bins, pillars; each dimension within ±8 % of its nominal size) standing on
  the floor in front of the camera, occluding each other and the walls;
- the floor is tiled (squares of 0.45 to 0.55 m) and the ceiling paneled (0.55 to 0.65 m), so the texture's
  perspective gives the metric scale; walls and furniture carry random procedural textures (checker, stripes or
  value noise plus a fine grain) laid out in object coordinates **in metres**, so every texture's period in pixels
  shrinks with distance; texture contrast is faded where its period falls below two pixels (a cheap band limit);
- Lambertian shading from a point light under the ceiling (inverse-square-like falloff) plus ambient light, and
  exponential fog towards a grey haze with the distance along the ray (light falls to 1/e over 5.0 to 5.5 m), so
  contrast and saturation also carry depth;
- a pinhole camera with NYU Depth v2's intrinsics scaled to the output size, at eye height (1.4 to 1.5 m), pitched
  down by up to 12 degrees, with small roll and yaw, and a random position in the room.

The cues are deliberately consistent, like the regularities of real indoor data (a handheld sensor at eye level,
standard tiles and furniture), and stronger than real ones (the haze): a small network trained from scratch for a
few minutes on a CPU learns metric depth from them (``specs/demo.toml``: test δ1 above 0.7), which scenes with a
random camera height, fog and object sizes did not allow (δ1 about 0.45 at the same cost).

Depth is the camera's **z-depth** (as in NYU's depth maps, not the length along the ray), in metres, in
[``MIN_DEPTH``, ``MAX_DEPTH``] = [0.5, 10]. Scene sampling keeps every room corner within 9.95 m of the camera and
objects, walls, floor and ceiling at least about 0.5 m away, so the final clamp to that range is only a safety net
(over 1000 items at 48x64: min 0.79 m, median 3.10 m, 99th percentile 7.9 m, max 9.5 m; NYU's mean is about 2.7 m).
Every pixel has a depth, so ``mask`` is all True. Images get a little Gaussian sensor noise (sigma 0.003 to 0.015).

Items are deterministic functions of ``(scene_seed, split, index)``: the generator of item ``i`` is seeded by
``numpy.random.SeedSequence([scene_seed, split_code, i])``, so the splits draw from disjoint streams, an item does not
depend on which items were generated before it, and DataLoader worker counts do not matter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from mlrd_core.data import OptionRule, register_dataset
from mlrd_core.errors import DataError

__all__ = [
    "DEFAULT_LENGTHS",
    "MAX_DEPTH",
    "MIN_DEPTH",
    "NYU_INTRINSICS",
    "SPLITS",
    "SyntheticDepth",
    "build_synthetic",
    "camera_matrix",
    "render_scene",
]

#: NYU Depth v2 RGB camera (fx, fy, cx, cy) in pixels at 640x480, from the NYU toolbox's ``camera_params.m``.
NYU_INTRINSICS: tuple[float, float, float, float] = (518.8579, 519.4696, 325.5824, 253.7362)
_NYU_SIZE = (480, 640)  # (H, W) the intrinsics refer to
_HFOV = 2.0 * math.atan(_NYU_SIZE[1] / 2.0 / NYU_INTRINSICS[0])  # horizontal field of view, radians (63.3°)

#: Depth range of the rendered scenes, metres.
MIN_DEPTH = 0.5
MAX_DEPTH = 10.0

#: Valid splits and their default lengths (items are generated on access; the length only bounds the index).
SPLITS: tuple[str, ...] = ("train", "val", "test")
DEFAULT_LENGTHS: dict[str, int] = {"train": 1000, "val": 200, "test": 200}
_SPLIT_CODES = {"train": 0, "val": 1, "test": 2}

_EPS = 1e-6
#: Memory each dataset object may use to keep rendered items (float32 RGB + depth: 98 KiB per item at 64x96).
CACHE_BYTES = 512 * 2**20

#: Metric cues the scenes keep consistent, as in real indoor data: a camera at eye height with a moderate downward
#: tilt, floor tiles and ceiling panels of a standard size, and furniture of known dimensions.
CAMERA_HEIGHT: tuple[float, float] = (1.4, 1.5)  # metres above the floor
ROOM_HEIGHT: tuple[float, float] = (2.6, 2.8)  # floor to ceiling, metres
FOG_DISTANCE: tuple[float, float] = (5.0, 5.5)  # metres of path over which the light falls to 1/e
FOG_GREY: tuple[float, float] = (0.72, 0.74)  # brightness of the haze
LIGHT_POWER: tuple[float, float] = (1.1, 1.8)  # the ceiling light's Lambertian gain
LIGHT_FALLOFF: tuple[float, float] = (3.0, 6.0)  # metres at which the light's irradiance halves
AMBIENT: tuple[float, float] = (0.15, 0.35)  # light reaching every surface
CAMERA_PITCH_DEG: tuple[float, float] = (-12.0, 0.0)
FLOOR_TILE: tuple[float, float] = (0.45, 0.55)  # side of a floor tile, metres
CEILING_TILE: tuple[float, float] = (0.55, 0.65)  # side of a ceiling panel, metres
#: (kind, width, height, depth) in metres; every instance is scaled by a factor within ±8 % per dimension. Boxes
#: stand on the floor with a random yaw; a ball's width is its diameter; a pillar reaches the ceiling.
FURNITURE: tuple[tuple[str, float, float, float], ...] = (
    ("chair", 0.45, 0.9, 0.45),
    ("table", 1.2, 0.75, 0.8),
    ("cabinet", 0.8, 1.8, 0.45),
    ("crate", 0.5, 0.5, 0.5),
    ("bed", 2.0, 0.55, 1.5),
    ("sofa", 1.8, 0.85, 0.9),
    ("ball", 0.5, 0.5, 0.5),
    ("bin", 0.36, 0.6, 0.36),
    ("pillar", 0.5, 0.0, 0.5),
)

_FAR = np.inf


def camera_matrix(height: int, width: int) -> np.ndarray:
    """NYU's intrinsics scaled to an ``height`` x ``width`` image, as a float64 3x3 matrix ``K``.

    Pixel centres are at integer coordinates (0-based), so a resize by ``s`` maps ``c`` to ``(c + 0.5)·s − 0.5``
    and ``f`` to ``f·s``; ``s`` is taken separately along each axis (a non-4:3 size gives non-square pixels, keeping
    NYU's field of view, about 63.3° x 49.6°).
    """
    if height < 1 or width < 1:
        raise DataError(f"image size must be at least 1x1, got {height}x{width}")
    fx, fy, cx, cy = NYU_INTRINSICS
    sy, sx = height / _NYU_SIZE[0], width / _NYU_SIZE[1]
    return np.array(
        [[fx * sx, 0.0, (cx + 0.5) * sx - 0.5], [0.0, fy * sy, (cy + 0.5) * sy - 0.5], [0.0, 0.0, 1.0]],
        dtype=np.float64,
    )


def _rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rot_y(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


# ---------------------------------------------------------------------------------------------------------------
# Vectors are kept as structures of arrays (x, y, z): numpy's matmul on [N, 3] @ [3, 3] is ~100x slower than three
# fused multiply-adds on contiguous arrays. Everything is float32 (ample for metres within 10 m).
# ---------------------------------------------------------------------------------------------------------------

Vec3 = tuple[np.ndarray, np.ndarray, np.ndarray]

_F32 = np.float32
_LATTICE = 64  # value-noise lattice side (periodic; a power of two so that wrapping is a bit mask)


def _safe(d: np.ndarray) -> np.ndarray:
    """``d`` with exact zeros nudged to a tiny value, so slab and plane divisions give +-inf, never NaN."""
    return np.where(d == 0, _F32(1e-12), d)


def _dot(a: Vec3, b: Vec3) -> np.ndarray:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _sub(a: Vec3, mask: np.ndarray) -> Vec3:
    return a[0][mask], a[1][mask], a[2][mask]


# ---------------------------------------------------------------------------------------------------------------
# Textures
# ---------------------------------------------------------------------------------------------------------------


def _value_noise(lattice: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Smooth periodic value noise in [0, 1] at lattice coordinates ``(u, v)`` (bilinear with a smoothstep).
    ``lattice`` is the flattened ``_LATTICE**2`` table."""
    iu, iv = np.floor(u), np.floor(v)
    fu, fv = u - iu, v - iv
    fu = fu * fu * (3.0 - 2.0 * fu)
    fv = fv * fv * (3.0 - 2.0 * fv)
    m = _LATTICE - 1
    i0, j0 = iu.astype(np.int64) & m, iv.astype(np.int64) & m
    r0, r1 = i0 * _LATTICE, ((i0 + 1) & m) * _LATTICE
    j1 = (j0 + 1) & m
    a00, a10 = np.take(lattice, r0 + j0), np.take(lattice, r1 + j0)
    a01, a11 = np.take(lattice, r0 + j1), np.take(lattice, r1 + j1)
    a = a00 + fu * (a10 - a00)
    b = a01 + fu * (a11 - a01)
    return a + fv * (b - a)


def _band_limit(period_m: float, footprint: np.ndarray) -> np.ndarray:
    """Contrast kept for a pattern of ``period_m`` metres seen with a pixel footprint of ``footprint`` metres: 1
    from 4 pixels per period up, fading linearly to 0 at 2 pixels per period (Nyquist)."""
    return np.clip((period_m / footprint - 2.0) * 0.5, 0.0, 1.0)


@dataclass(frozen=True)
class _Material:
    """A procedural texture in surface coordinates measured in metres."""

    base: tuple[float, float, float]  # RGB albedo
    alt: tuple[float, float, float]  # second colour of the pattern
    pattern: str  # "checker" | "stripes" | "noise" | "plain"
    period: float  # metres per pattern cycle
    angle: float  # orientation of the pattern in the surface plane, radians
    offset: tuple[float, float]  # shift of the pattern, metres
    grain: float  # amplitude of the fine grain (5 cm value noise)

    def albedo(self, lattice: np.ndarray, su: np.ndarray, sv: np.ndarray, footprint: np.ndarray) -> Vec3:
        """Albedo (r, g, b) at surface coordinates ``(su, sv)`` (metres) seen with pixel ``footprint`` (metres)."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        u = c * su - s * sv + self.offset[0]
        v = s * su + c * sv + self.offset[1]
        p = self.period
        if self.pattern == "checker":
            t = (np.floor(2.0 / p * u) + np.floor(2.0 / p * v)) % 2.0
        elif self.pattern == "stripes":
            t = 0.5 + 0.5 * np.sin(2.0 * math.pi / p * u)
        elif self.pattern == "noise":
            t = np.clip(1.6 * (_value_noise(lattice, u / p, v / p) - 0.5) + 0.5, 0.0, 1.0)
        else:
            t = np.full(u.shape, 0.5, dtype=_F32)
        t = 0.5 + _band_limit(p, footprint) * (t - 0.5)
        if self.grain > 0.0:
            g = _value_noise(lattice, u * 20.0 + 17.0, v * 20.0 + 31.0) - 0.5
            shade = 1.0 + self.grain * _band_limit(0.05, footprint) * g
        else:
            shade = np.ones_like(t)
        return tuple(  # type: ignore[return-value]
            ((b + t * (a - b)) * shade).astype(_F32, copy=False) for b, a in zip(self.base, self.alt, strict=True)
        )


def _random_colour(rng: np.random.Generator, lo: float = 0.15, hi: float = 0.95) -> tuple[float, float, float]:
    """A random colour drawn in HSV (moderate saturation) and returned as RGB."""
    hue = rng.random()
    sat = rng.uniform(0.1, 0.7)
    val = rng.uniform(lo, hi)
    h6 = hue * 6.0
    i = int(h6) % 6
    f = h6 - int(h6)
    p, q, t = val * (1 - sat), val * (1 - sat * f), val * (1 - sat * (1 - f))
    return [(val, t, p), (q, val, p), (p, val, t), (p, q, val), (t, p, val), (val, p, q)][i]


def _random_material(rng: np.random.Generator, period: tuple[float, float]) -> _Material:
    """A material with a random pattern whose period is log-uniform in ``period`` (metres)."""
    pattern = str(rng.choice(["checker", "stripes", "noise", "plain"], p=[0.3, 0.25, 0.35, 0.1]))
    base = np.array(_random_colour(rng))
    alt = np.clip(base * rng.uniform(0.35, 0.8) + rng.uniform(-0.08, 0.08, size=3), 0.02, 1.0)
    if rng.random() < 0.5:
        base, alt = alt, base
    return _Material(
        base=(float(base[0]), float(base[1]), float(base[2])),
        alt=(float(alt[0]), float(alt[1]), float(alt[2])),
        pattern=pattern,
        period=float(np.exp(rng.uniform(math.log(period[0]), math.log(period[1])))),
        angle=float(rng.choice([0.0, math.pi / 2]) if pattern != "noise" else rng.uniform(0, math.pi)),
        offset=(float(rng.uniform(0, 10)), float(rng.uniform(0, 10))),
        grain=float(rng.uniform(0.1, 0.35)),
    )


def _tiles(rng: np.random.Generator, tile: tuple[float, float], contrast: tuple[float, float]) -> _Material:
    """Square tiles with a side drawn in ``tile`` (metres, a narrow range: a size the network can learn) as a
    two-colour checker; ``contrast`` bounds the darker colour's brightness relative to the lighter one."""
    base = np.array(_random_colour(rng, 0.35, 0.95))
    alt = np.clip(base * rng.uniform(*contrast), 0.02, 1.0)
    return _Material(
        base=(float(base[0]), float(base[1]), float(base[2])),
        alt=(float(alt[0]), float(alt[1]), float(alt[2])),
        pattern="checker",
        period=2.0 * float(rng.uniform(*tile)),  # a checker cycle spans two tiles
        angle=0.0,
        offset=(float(rng.uniform(0, 10)), float(rng.uniform(0, 10))),
        grain=float(rng.uniform(0.05, 0.2)),
    )


# ---------------------------------------------------------------------------------------------------------------
# Primitives. ``intersect(o, d)`` works on a block of rays and returns (t, face) with t = inf on a miss, where ``o``
# is the camera position and ``d`` the ray directions with camera-frame z = 1, so that t is the z-depth.
# ``surface(p, face, d)`` gives world normals (any sign) and texture coordinates in metres at hit points ``p``.
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Room:
    """The inside of the box ``lo <= (x, y, z) <= hi`` (world frame, y up, floor at y = 0).

    Faces are ``2·axis + side`` (side 1: the ``hi`` plane); materials: floor, ceiling, walls."""

    lo: tuple[float, float, float]
    hi: tuple[float, float, float]
    materials: tuple[_Material, _Material, _Material]

    def intersect(self, o: np.ndarray, d: Vec3) -> tuple[np.ndarray, np.ndarray]:
        tx, ty, tz = (
            np.where(
                d[a] == 0,
                _F32(_FAR),
                np.where(d[a] > 0, _F32(self.hi[a] - o[a]), _F32(self.lo[a] - o[a])) / _safe(d[a]),
            )
            for a in range(3)
        )
        t = np.minimum(tx, np.minimum(ty, tz))
        axis = np.where(tx == t, 0, np.where(ty == t, 1, 2))
        side = np.where(axis == 0, d[0] > 0, np.where(axis == 1, d[1] > 0, d[2] > 0))
        return t, 2 * axis + side

    def surface(self, p: Vec3, face: np.ndarray) -> tuple[Vec3, np.ndarray, np.ndarray, np.ndarray]:
        """Normals, texture coordinates and material index (0 floor, 1 ceiling, 2 walls)."""
        axis = face // 2
        sign = np.where(face % 2 == 1, _F32(-1.0), _F32(1.0))
        zero = np.zeros_like(sign)
        normal = (np.where(axis == 0, sign, zero), np.where(axis == 1, sign, zero), np.where(axis == 2, sign, zero))
        # x-walls use (z, y), floor and ceiling (x, z), z-walls (x, y)
        su = np.where(axis == 0, p[2], p[0])
        sv = np.where(axis == 1, p[2], p[1])
        material = np.where(axis == 1, face - 2, 2)
        return normal, su, sv, material


@dataclass(frozen=True)
class _Box:
    """Box yawed by ``yaw`` around the vertical axis, centred at ``centre`` with half extents ``half``."""

    centre: tuple[float, float, float]
    half: tuple[float, float, float]
    yaw: float
    material: _Material

    @property
    def bounds(self) -> tuple[tuple[float, float, float], float]:
        """Bounding sphere (centre, radius)."""
        return self.centre, math.sqrt(sum(h * h for h in self.half))

    def _to_local(self, x: Any, y: Any, z: Any) -> tuple[Any, Any, Any]:
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        return c * x - s * z, y, s * x + c * z

    def intersect(self, o: np.ndarray, d: Vec3) -> tuple[np.ndarray, np.ndarray]:
        ol = self._to_local(*(float(o[a] - self.centre[a]) for a in range(3)))
        dl = self._to_local(*d)
        near, far = [], []
        for a in range(3):
            inv = 1.0 / _safe(dl[a])
            t1 = (-self.half[a] - ol[a]) * inv
            t2 = (self.half[a] - ol[a]) * inv
            near.append(np.minimum(t1, t2))
            far.append(np.maximum(t1, t2))
        tmin = np.maximum(near[0], np.maximum(near[1], near[2]))
        tmax = np.minimum(far[0], np.minimum(far[1], far[2]))
        axis = np.where(near[0] == tmin, 0, np.where(near[1] == tmin, 1, 2))
        hit = (tmax >= tmin) & (tmin > _EPS)
        return np.where(hit, tmin, _F32(_FAR)), axis

    def surface(self, p: Vec3, face: np.ndarray, d: Vec3) -> tuple[Vec3, np.ndarray, np.ndarray]:
        ql = self._to_local(*(p[a] - _F32(self.centre[a]) for a in range(3)))
        dl = self._to_local(*d)
        zero = np.zeros_like(ql[0])
        nl = [np.where(face == a, -np.sign(dl[a]), zero) for a in range(3)]
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        normal = (c * nl[0] + s * nl[2], nl[1], -s * nl[0] + c * nl[2])
        q = [ql[a] + _F32(self.half[a]) for a in range(3)]
        su = np.where(face == 0, q[2], q[0])
        sv = np.where(face == 1, q[2], q[1])
        return normal, su, sv


@dataclass(frozen=True)
class _Sphere:
    centre: tuple[float, float, float]
    radius: float
    material: _Material

    @property
    def bounds(self) -> tuple[tuple[float, float, float], float]:
        """Bounding sphere (centre, radius)."""
        return self.centre, self.radius

    def intersect(self, o: np.ndarray, d: Vec3) -> tuple[np.ndarray, np.ndarray]:
        oc = [float(o[a] - self.centre[a]) for a in range(3)]
        a2 = _dot(d, d)
        b = d[0] * oc[0] + d[1] * oc[1] + d[2] * oc[2]
        c = sum(x * x for x in oc) - self.radius**2
        disc = b * b - a2 * c
        t = (-b - np.sqrt(np.maximum(disc, 0.0))) / a2
        hit = (disc > 0) & (t > _EPS)
        return np.where(hit, t, _F32(_FAR)), np.zeros(t.shape, dtype=np.int64)

    def surface(self, p: Vec3, face: np.ndarray, d: Vec3) -> tuple[Vec3, np.ndarray, np.ndarray]:
        r = self.radius
        n = (
            (p[0] - self.centre[0]) / r,
            (p[1] - self.centre[1]) / r,
            (p[2] - self.centre[2]) / r,
        )
        su = np.arctan2(n[0], n[2]) * r
        sv = np.arcsin(np.clip(n[1], -1.0, 1.0)) * r
        return n, su, sv


@dataclass(frozen=True)
class _Cylinder:
    """Vertical cylinder of ``radius`` around (x, z) = ``axis_xz``, from height ``y0`` to ``y1``.

    Faces: 0 the side, 1 the top cap (the bottom cap stands on the floor and is never seen)."""

    axis_xz: tuple[float, float]
    radius: float
    y0: float
    y1: float
    material: _Material

    @property
    def bounds(self) -> tuple[tuple[float, float, float], float]:
        """Bounding sphere (centre, radius)."""
        half = 0.5 * (self.y1 - self.y0)
        return (self.axis_xz[0], self.y0 + half, self.axis_xz[1]), math.hypot(self.radius, half)

    def intersect(self, o: np.ndarray, d: Vec3) -> tuple[np.ndarray, np.ndarray]:
        ox, oy, oz = float(o[0] - self.axis_xz[0]), float(o[1]), float(o[2] - self.axis_xz[1])
        dx, dy, dz = d
        a = _safe(dx * dx + dz * dz)
        b = dx * ox + dz * oz
        c = ox * ox + oz * oz - self.radius**2
        disc = b * b - a * c
        ts = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
        ys = oy + ts * dy
        side = (disc > 0) & (ts > _EPS) & (ys >= self.y0) & (ys <= self.y1)
        t_side = np.where(side, ts, _F32(_FAR))
        if oy > self.y1:  # the top cap is visible only from above
            tc = (self.y1 - oy) / _safe(dy)
            px, pz = ox + tc * dx, oz + tc * dz
            cap = (tc > _EPS) & (px * px + pz * pz <= self.radius**2)
            t_cap = np.where(cap, tc, _F32(_FAR))
            top = t_cap < t_side
            return np.where(top, t_cap, t_side), top.astype(np.int64)
        return t_side, np.zeros(t_side.shape, dtype=np.int64)

    def surface(self, p: Vec3, face: np.ndarray, d: Vec3) -> tuple[Vec3, np.ndarray, np.ndarray]:
        rx, rz = p[0] - _F32(self.axis_xz[0]), p[2] - _F32(self.axis_xz[1])
        top = face == 1
        inv_r = 1.0 / self.radius
        normal = (
            np.where(top, _F32(0.0), rx * inv_r),
            np.where(top, _F32(1.0), _F32(0.0)),
            np.where(top, _F32(0.0), rz * inv_r),
        )
        su = np.where(top, rx, np.arctan2(rx, rz) * self.radius)
        sv = np.where(top, rz, p[1])
        return normal, su, sv


_Object = _Box | _Sphere | _Cylinder


# ---------------------------------------------------------------------------------------------------------------
# Scene sampling and rendering
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Scene:
    cam_pos: np.ndarray  # (3,) world
    cam_rot: np.ndarray  # (3, 3) camera-to-world, for camera vectors (x right, y down, z forward)
    room: _Room
    objects: tuple[_Object, ...]
    light_pos: tuple[float, float, float]
    light_rgb: tuple[float, float, float]
    light_power: float
    light_falloff: float
    ambient: float
    fog_distance: float
    fog_grey: float
    noise_std: float
    lattice: np.ndarray  # (_LATTICE**2,) float32


def _sample_scene(rng: np.random.Generator, hfov: float) -> _Scene:
    """Draw a room, a camera inside it, objects in front of the camera, a light and fog."""
    # Room: depth (along the initial view direction) and width such that every corner stays within 9.95 m of the
    # camera positions used below (|dz| <= room_d - 0.25, |dx| <= room_w - 0.8, |dy| <= 2.3), so the z-depth never
    # reaches MAX_DEPTH.
    height = rng.uniform(*ROOM_HEIGHT)
    room_d = rng.uniform(3.5, 9.6)
    max_w = 0.8 + math.sqrt(max(9.95**2 - (room_d - 0.25) ** 2 - 2.3**2, 0.0))
    room_w = rng.uniform(2.5, min(7.0, max_w))
    lo = (-room_w / 2, 0.0, 0.0)
    hi = (room_w / 2, height, room_d)

    cam_h = rng.uniform(*CAMERA_HEIGHT)
    cam_x = rng.uniform(-room_w / 2 + 0.8, room_w / 2 - 0.8)
    cam_z = rng.uniform(0.25, min(1.2, room_d / 3))
    # Yaw is limited so that the near side wall stays beyond MIN_DEPTH in view.
    yaw = rng.uniform(-0.45, 0.45)
    pitch = rng.uniform(math.radians(CAMERA_PITCH_DEG[0]), math.radians(CAMERA_PITCH_DEG[1]))
    roll = rng.uniform(math.radians(-2.0), math.radians(2.0))
    flip_y = np.diag([1.0, -1.0, 1.0])  # camera y points down, world y up
    cam_rot = _rot_y(yaw) @ _rot_x(-pitch) @ _rot_z(roll) @ flip_y

    room = _Room(
        lo=lo,
        hi=hi,
        materials=(
            _tiles(rng, FLOOR_TILE, contrast=(0.45, 0.8)),
            _tiles(rng, CEILING_TILE, contrast=(0.75, 0.9)),
            _random_material(rng, (0.2, 1.5)),
        ),
    )

    objects: list[_Object] = []
    for _ in range(int(rng.integers(3, 9))):
        for _attempt in range(8):
            kind, w, h, dz = FURNITURE[int(rng.integers(len(FURNITURE)))]
            w, h, dz = (v * rng.uniform(0.92, 1.08) for v in (w, h, dz))
            h = min(h, height) if kind != "pillar" else height
            size = 0.5 * math.hypot(w, dz)  # footprint radius, metres
            dist = rng.uniform(0.9 + size, 8.0)
            bearing = yaw + rng.uniform(-0.6, 0.6) * hfov
            x = cam_x + dist * math.sin(bearing)
            z = cam_z + dist * math.cos(bearing)
            if not (lo[0] + size < x < hi[0] - size and lo[2] + size < z < hi[2] - size):
                continue
            material = _random_material(rng, (0.08, 0.6))
            if kind == "ball":
                objects.append(_Sphere((x, w / 2, z), float(w / 2), material))
            elif kind in ("bin", "pillar"):
                objects.append(_Cylinder((x, z), float(w / 2), 0.0, float(h), material))
            else:
                yaw_obj = float(rng.uniform(0, math.pi))
                objects.append(_Box((x, h / 2, z), (w / 2, h / 2, dz / 2), yaw_obj, material))
            break

    return _Scene(
        cam_pos=np.array([cam_x, cam_h, cam_z]),
        cam_rot=cam_rot,
        room=room,
        objects=tuple(objects),
        light_pos=(rng.uniform(lo[0] + 0.3, hi[0] - 0.3), height - 0.15, rng.uniform(0.5, room_d - 0.3)),
        light_rgb=(1.0, rng.uniform(0.85, 1.0), rng.uniform(0.7, 1.0)),
        light_power=float(rng.uniform(*LIGHT_POWER)),
        light_falloff=float(rng.uniform(*LIGHT_FALLOFF)),
        ambient=float(rng.uniform(*AMBIENT)),
        fog_distance=float(rng.uniform(*FOG_DISTANCE)),
        fog_grey=float(rng.uniform(*FOG_GREY)),
        noise_std=float(rng.uniform(0.003, 0.015)),
        lattice=rng.random(_LATTICE * _LATTICE).astype(_F32),
    )


def _screen_box(
    scene: _Scene, centre: tuple[float, float, float], radius: float, k: np.ndarray, height: int, width: int
) -> tuple[slice, slice] | None:
    """Conservative pixel rectangle ``(rows, cols)`` covering a bounding sphere, or None when it is out of view.

    Projects the 8 corners of the sphere's bounding cube (in camera coordinates); when the cube reaches behind
    the camera's near plane the whole image is returned."""
    c = scene.cam_rot.T @ (np.asarray(centre) - scene.cam_pos)
    if c[2] + radius <= 0.0:
        return None
    if c[2] - radius <= 0.05:
        return slice(0, height), slice(0, width)
    corners = c[None, :] + radius * np.array([[i, j, m] for i in (-1, 1) for j in (-1, 1) for m in (-1, 1)])
    u = k[0, 0] * corners[:, 0] / corners[:, 2] + k[0, 2]
    v = k[1, 1] * corners[:, 1] / corners[:, 2] + k[1, 2]
    u0, u1 = max(math.floor(u.min()) - 1, 0), min(math.ceil(u.max()) + 2, width)
    v0, v1 = max(math.floor(v.min()) - 1, 0), min(math.ceil(v.max()) + 2, height)
    if u0 >= u1 or v0 >= v1:
        return None
    return slice(v0, v1), slice(u0, u1)


def _render(scene: _Scene, k: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Cast one ray per pixel into ``scene``; returns (rgb ``[3, H, W]``, z-depth ``[H, W]``), float32."""
    o = scene.cam_pos
    r = scene.cam_rot
    xn = ((np.arange(width) - k[0, 2]) / k[0, 0]).astype(_F32)[None, :]
    yn = ((np.arange(height) - k[1, 2]) / k[1, 1]).astype(_F32)[:, None]
    shape = (height, width)
    d: Vec3 = tuple(  # type: ignore[assignment]
        np.broadcast_to(_F32(r[a, 0]) * xn + _F32(r[a, 1]) * yn + _F32(r[a, 2]), shape).copy() for a in range(3)
    )
    t, face = scene.room.intersect(o, d)
    which = np.full(shape, -1, dtype=np.int64)  # -1: the room, k: objects[k]
    boxes: list[tuple[slice, slice] | None] = []
    for idx, obj in enumerate(scene.objects):
        box = _screen_box(scene, *obj.bounds, k, height, width)
        boxes.append(box)
        if box is None:
            continue
        tk, fk = obj.intersect(o, (d[0][box], d[1][box], d[2][box]))
        closer = tk < t[box]
        t[box] = np.where(closer, tk, t[box])
        face[box] = np.where(closer, fk, face[box])
        which[box] = np.where(closer, idx, which[box])

    p: Vec3 = (o[0] + t * d[0], o[1] + t * d[1], o[2] + t * d[2])
    ray_len = np.sqrt(_dot(d, d))
    dist = t * ray_len
    inv_len = 1.0 / ray_len
    focal = 0.5 * (k[0, 0] + k[1, 1])
    normal = [np.empty(shape, dtype=_F32) for _ in range(3)]
    albedo = [np.empty(shape, dtype=_F32) for _ in range(3)]

    def footprint(n: Vec3, sel_d: Vec3, sel_dist: np.ndarray, sel_inv: np.ndarray) -> np.ndarray:
        # metres per pixel on the surface: distance / focal, stretched by the grazing angle (capped)
        cos = np.abs(_dot(n, sel_d)) * sel_inv
        return sel_dist / focal / np.maximum(cos, 0.15)

    sel = which == -1
    n_room, su, sv, mat = scene.room.surface(_sub(p, sel), face[sel])
    foot = footprint(n_room, _sub(d, sel), dist[sel], inv_len[sel])
    alb = [np.empty(su.shape, dtype=_F32) for _ in range(3)]
    for m, material in enumerate(scene.room.materials):
        sm = mat == m
        if sm.any():
            rgb = material.albedo(scene.lattice, su[sm], sv[sm], foot[sm])
            for ch in range(3):
                alb[ch][sm] = rgb[ch]
    for ch in range(3):
        normal[ch][sel] = n_room[ch]
        albedo[ch][sel] = alb[ch]
    for idx, obj in enumerate(scene.objects):
        box = boxes[idx]
        if box is None:
            continue
        sel_box = which[box] == idx
        if not sel_box.any():
            continue
        pb: Vec3 = (p[0][box][sel_box], p[1][box][sel_box], p[2][box][sel_box])
        db: Vec3 = (d[0][box][sel_box], d[1][box][sel_box], d[2][box][sel_box])
        n_obj, su, sv = obj.surface(pb, face[box][sel_box], db)
        foot = footprint(n_obj, db, dist[box][sel_box], inv_len[box][sel_box])
        rgb = obj.material.albedo(scene.lattice, su, sv, foot)
        for ch in range(3):
            normal[ch][box][sel_box] = n_obj[ch]
            albedo[ch][box][sel_box] = rgb[ch]

    # Shading: Lambert from the point light with a soft 1 / (1 + (r / r0)^2) falloff plus ambient light, then
    # fog along the ray. Normals are two-sided (|n · l| would light back faces; flipping towards the camera first).
    n: Vec3 = (normal[0], normal[1], normal[2])
    flip = np.where(_dot(n, d) > 0, _F32(-1.0), _F32(1.0))
    lx, ly, lz = (_F32(scene.light_pos[a]) - p[a] for a in range(3))
    r_light = np.sqrt(lx * lx + ly * ly + lz * lz)
    lambert = np.maximum(flip * (n[0] * lx + n[1] * ly + n[2] * lz) / np.maximum(r_light, _EPS), 0.0)
    irradiance = scene.ambient + scene.light_power * lambert / (1.0 + (r_light / scene.light_falloff) ** 2)
    fog = np.exp(-dist / scene.fog_distance)
    haze = scene.fog_grey * (1.0 - fog)
    rgb_out = np.stack([albedo[ch] * irradiance * (scene.light_rgb[ch] * fog) + haze for ch in range(3)])
    return rgb_out.astype(_F32, copy=False), t


def render_scene(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw one scene from ``rng`` and render it at ``height`` x ``width``.

    Returns ``(image, depth)``: float32 arrays ``[3, H, W]`` in [0, 1] and ``[H, W]`` z-depth in metres, clamped
    to [``MIN_DEPTH``, ``MAX_DEPTH``]. The scene does not depend on the size (the same generator state renders
    the same room at any resolution); only the sensor noise drawn after it does.
    """
    if height < 1 or width < 1:
        raise DataError(f"image size must be at least 1x1, got {height}x{width}")
    k = camera_matrix(height, width)
    scene = _sample_scene(rng, hfov=_HFOV)
    rgb, depth = _render(scene, k, height, width)
    rgb += rng.standard_normal(size=rgb.shape, dtype=_F32) * _F32(scene.noise_std)
    np.clip(rgb, 0.0, 1.0, out=rgb)
    return rgb, np.clip(depth, MIN_DEPTH, MAX_DEPTH).astype(_F32, copy=False)


class SyntheticDepth(Dataset):
    """Procedural RGB-D scenes, generated on access; deterministic per ``(scene_seed, split, index)``.

    Items follow :mod:`mlrd_core.data`'s contract: ``image`` float32 ``[3, H, W]`` in [0, 1], ``depth`` float32
    ``[1, H, W]`` z-depth in metres within [0.5, 10], ``mask`` bool ``[1, H, W]`` (all True), ``index`` int.
    """

    def __init__(
        self,
        split: str = "train",
        *,
        length: int | None = None,
        height: int = 96,
        width: int = 128,
        scene_seed: int = 0,
    ) -> None:
        if split not in _SPLIT_CODES:
            raise DataError(f"unknown split {split!r} for 'synthetic'; valid splits: {', '.join(SPLITS)}")
        if length is None:
            length = DEFAULT_LENGTHS[split]
        if length < 0:
            raise DataError(f"length must be >= 0, got {length}")
        if height < 1 or width < 1:
            raise DataError(f"image size must be at least 1x1, got height={height}, width={width}")
        if scene_seed < 0:
            raise DataError(f"scene_seed must be >= 0, got {scene_seed}")
        self.split = split
        self.length = int(length)
        self.height = int(height)
        self.width = int(width)
        self.scene_seed = int(scene_seed)
        # Rendered items, kept while they fit in CACHE_BYTES: an item is a pure function of (scene_seed, split,
        # index, size), so a cached copy is exactly what rendering again would give, at no cost after the first
        # epoch. Each DataLoader worker process keeps its own cache.
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._cache_bytes = 0

    @property
    def intrinsics(self) -> np.ndarray:
        """Camera matrix ``K`` (3x3, float64) of the rendered images (NYU's, scaled to the size)."""
        return camera_matrix(self.height, self.width)

    def generator(self, index: int) -> np.random.Generator:
        """The generator that draws item ``index``: seeded by ``(scene_seed, split code, index)``."""
        return np.random.default_rng(np.random.SeedSequence([self.scene_seed, _SPLIT_CODES[self.split], index]))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -self.length <= index < self.length:
            raise IndexError(f"index {index} out of range for synthetic split {self.split!r} of length {self.length}")
        index = index % self.length if self.length else index
        cached = self._cache.get(index)
        if cached is None:
            cached = render_scene(self.generator(index), self.height, self.width)
            size = cached[0].nbytes + cached[1].nbytes
            if self._cache_bytes + size <= CACHE_BYTES:
                self._cache[index] = cached
                self._cache_bytes += size
        image, depth = cached
        return {
            "image": torch.from_numpy(image.copy()),
            "depth": torch.from_numpy(depth.copy())[None],
            "mask": torch.ones(1, self.height, self.width, dtype=torch.bool),
            "index": int(index),
        }

    def __repr__(self) -> str:
        return (
            f"SyntheticDepth(split={self.split!r}, length={self.length}, height={self.height}, "
            f"width={self.width}, scene_seed={self.scene_seed})"
        )


@register_dataset(
    "synthetic",
    splits=SPLITS,
    options={
        "length": OptionRule(minimum=1),
        "height": OptionRule(minimum=1),
        "width": OptionRule(minimum=1),
        "scene_seed": OptionRule(minimum=0),
    },
)
def build_synthetic(
    *,
    split: str = "train",
    length: int | None = None,
    height: int = 96,
    width: int = 128,
    scene_seed: int = 0,
) -> SyntheticDepth:
    """Builder for ``make_dataset("synthetic", ...)``; see :class:`SyntheticDepth`.

    ``scene_seed`` fixes the set of scenes (like a fixed dataset on disk); the run seed given to
    :func:`mlrd_core.data.make_dataset` as ``seed`` only drives augmentation.
    """
    return SyntheticDepth(split, length=length, height=height, width=width, scene_seed=scene_seed)
