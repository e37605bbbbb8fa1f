"""Cheap procedural noise: value noise and fractal sums built by resizing small random grids.

Perlin/simplex noise in pure numpy is slow at the sizes needed here (a 2k x 2k seabed per sequence and
several full-frame layers per frame). Bicubic up-sampling of a coarse random grid gives smooth value noise
at memory-bandwidth speed through OpenCV, and summing a few octaves gives natural-looking fractal texture.
Everything takes an explicit ``numpy.random.Generator`` so the generator stays deterministic from a seed.
"""
from __future__ import annotations

import cv2
import numpy as np


def value_noise(rng: np.random.Generator, height: int, width: int, cell: float, tileable: bool = False) -> np.ndarray:
    """Smooth noise in about [0, 1], float32 ``(height, width)``, with features about ``cell`` pixels wide.

    ``tileable`` makes the result wrap around at its edges (for layers sampled with ``BORDER_WRAP``).
    """
    cell = max(float(cell), 1.0)
    gh = max(int(np.ceil(height / cell)), 1)
    gw = max(int(np.ceil(width / cell)), 1)
    if tileable:
        grid = rng.random((gh, gw), dtype=np.float32)
        pad = 3
        padded = np.pad(grid, pad, mode="wrap")
        sy, sx = height / gh, width / gw
        big = cv2.resize(padded, (int(round((gw + 2 * pad) * sx)), int(round((gh + 2 * pad) * sy))),
                         interpolation=cv2.INTER_CUBIC)
        y0, x0 = int(round(pad * sy)), int(round(pad * sx))
        out = big[y0:y0 + height, x0:x0 + width]
        if out.shape != (height, width):  # rounding at odd sizes
            out = cv2.resize(out, (width, height), interpolation=cv2.INTER_LINEAR)
        return np.ascontiguousarray(out)
    grid = rng.random((gh + 1, gw + 1), dtype=np.float32)
    big = cv2.resize(grid, (int(np.ceil((gw + 1) * cell)), int(np.ceil((gh + 1) * cell))), interpolation=cv2.INTER_CUBIC)
    oy = int(rng.integers(0, max(big.shape[0] - height, 0) + 1))
    ox = int(rng.integers(0, max(big.shape[1] - width, 0) + 1))
    return np.ascontiguousarray(big[oy:oy + height, ox:ox + width])


def fbm(rng: np.random.Generator, height: int, width: int, cell: float, octaves: int = 4,
        persistence: float = 0.5, tileable: bool = False) -> np.ndarray:
    """Fractal (multi-octave) value noise normalised to [0, 1]: large blobs with finer detail on top."""
    total = np.zeros((height, width), np.float32)
    amp, norm = 1.0, 0.0
    for i in range(octaves):
        c = cell / (2 ** i)
        if c < 1.0:
            break
        total += amp * value_noise(rng, height, width, c, tileable)
        norm += amp
        amp *= persistence
    total /= max(norm, 1e-6)
    return normalise(total)


def normalise(a: np.ndarray) -> np.ndarray:
    """Stretch to [0, 1] (float32); a constant array becomes zeros."""
    lo, hi = float(a.min()), float(a.max())
    if hi - lo < 1e-9:
        return np.zeros_like(a, dtype=np.float32)
    return ((a - lo) * (1.0 / (hi - lo))).astype(np.float32)


def ridged(noise01: np.ndarray, sharpness: float) -> np.ndarray:
    """Thin bright ridges where the noise crosses its mid level (the look of caustic networks and cracks)."""
    return np.power(1.0 - np.abs(2.0 * noise01 - 1.0), sharpness).astype(np.float32)
