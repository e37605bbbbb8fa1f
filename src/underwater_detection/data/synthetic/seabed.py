"""The seabed world texture: one large image per sequence that the camera flies over.

Building the ground once per sequence and warping a window of it per frame is what makes camera motion
(drift, yaw, altitude) consistent between frames, the way a temporal detector will see it on a vehicle,
and it costs only one ``warpAffine`` per frame. The texture mixes sand or mud (with ripples), gravel,
rock outcrops, weed patches and scattered shell fragments and stones; the last two are deliberate
look-alikes of the small targets. Colours are the seabed's own (albedo under white light); the water
model adds attenuation and colour cast later, in image space.
"""
from __future__ import annotations

import cv2
import numpy as np

from .noise import fbm, ridged, value_noise

_SAND = [(0.62, 0.57, 0.46), (0.55, 0.52, 0.45), (0.66, 0.62, 0.52), (0.58, 0.50, 0.40), (0.50, 0.50, 0.46)]
_MUD = [(0.40, 0.37, 0.31), (0.35, 0.33, 0.30), (0.45, 0.40, 0.32), (0.32, 0.30, 0.24)]
_GRAVEL = [(0.45, 0.43, 0.40), (0.58, 0.54, 0.47), (0.30, 0.29, 0.27), (0.52, 0.44, 0.36)]
_ROCK = [(0.33, 0.32, 0.30), (0.26, 0.25, 0.24), (0.40, 0.36, 0.31), (0.22, 0.22, 0.20)]
_WEED = [(0.18, 0.28, 0.12), (0.30, 0.30, 0.13), (0.32, 0.24, 0.12), (0.22, 0.25, 0.11), (0.26, 0.22, 0.10),
         (0.36, 0.16, 0.14)]


def _pick(rng: np.random.Generator, palette: list[tuple[float, float, float]], jitter: float = 0.08) -> np.ndarray:
    """A palette colour with brightness jitter and only a little hue jitter (natural materials are dull)."""
    c = np.array(palette[int(rng.integers(len(palette)))], np.float32)
    return np.clip(c * rng.uniform(1 - jitter, 1 + jitter) * (1 + rng.normal(0, jitter * 0.15, 3)), 0.02, 1).astype(np.float32)


def _smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((x - lo) / max(hi - lo, 1e-6), 0, 1)
    return (t * t * (3 - 2 * t)).astype(np.float32)


def _coarse(rng: np.random.Generator, height: int, width: int, cell: float, octaves: int = 3, factor: int = 4) -> np.ndarray:
    """Low-frequency fbm computed at 1/factor resolution and up-sampled (it has no fine detail anyway)."""
    small = fbm(rng, max(height // factor, 2), max(width // factor, 2), cell / factor, octaves)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def build_seabed(rng: np.random.Generator, height: int, width: int, unit: float = 1.0) -> np.ndarray:
    """An ``(height, width, 3)`` uint8 RGB seabed. ``unit`` = pixels per reference pixel (image width / 640),
    so feature sizes stay the same relative to the frame at any output resolution.

    Colour is kept planar, ``(3, H, W)``, while it is built: numpy broadcasts a ``(H, W)`` map over the
    leading axis at memory speed, but over a trailing axis of 3 it is about 6x slower, and this texture is
    a few megapixels rebuilt for every sequence.
    """
    h, w = int(height), int(width)
    sand, mud = _pick(rng, _SAND), _pick(rng, _MUD)
    rock_c, gravel_a, gravel_b = _pick(rng, _ROCK), _pick(rng, _GRAVEL), _pick(rng, _GRAVEL)
    col = lambda c: np.asarray(c, np.float32)[:, None, None]  # noqa: E731  (3,) -> (3, 1, 1)

    # substrate regions from low-frequency noise; their fractions vary a lot between sequences
    rock_thr = rng.uniform(0.62, 0.95)
    gravel_thr = rng.uniform(0.45, 0.9)
    weed_thr = rng.uniform(0.6, 1.0)
    rock_field = _coarse(rng, h, w, 380 * unit)
    rock_field += 0.12 * _coarse(rng, h, w, 40 * unit, octaves=2, factor=2)
    rock = _smoothstep(rock_field, rock_thr, rock_thr + 0.03)
    del rock_field
    gravel = _smoothstep(_coarse(rng, h, w, 300 * unit), gravel_thr, gravel_thr + 0.1)
    gravel *= 1 - rock
    weed = _smoothstep(_coarse(rng, h, w, 320 * unit), weed_thr, weed_thr + 0.08)
    weed *= 1 - rock

    mud_mix = _coarse(rng, h, w, 420 * unit)
    mud_mix *= rng.uniform(0.2, 1.0)
    albedo = col(sand) + col(mud - sand) * mud_mix[None]
    grain = value_noise(rng, h, w, 1.6 * unit)
    lum = _coarse(rng, h, w, 60 * unit, octaves=3, factor=2)
    lum *= 0.3
    lum += 0.85
    lum *= 0.9 + 0.2 * grain
    albedo *= lum[None]

    # height field for shading: ripples on sand, bumps on gravel, relief on rock
    height_map = _coarse(rng, h, w, 150 * unit, octaves=2)
    height_map *= 2.0
    height_map += 0.6 * grain
    if rng.random() < 0.6:
        ang = rng.uniform(0, np.pi)
        wavelength = rng.uniform(14, 40) * unit
        k = 2 * np.pi / wavelength
        phase = (np.arange(w, dtype=np.float32) * np.float32(k * np.cos(ang)))[None, :] + \
            (np.arange(h, dtype=np.float32) * np.float32(k * np.sin(ang)))[:, None]
        phase += _coarse(rng, h, w, 160 * unit, octaves=3) * np.float32(rng.uniform(6, 16))
        ripple = np.sin(phase + 0.5 * np.sin(phase))  # asymmetric crests
        ripple *= np.float32(rng.uniform(0.3, 1.2))
        ripple *= 0.4 + 0.6 * _coarse(rng, h, w, 250 * unit, octaves=2)  # ripples fade in and out
        ripple *= 1 - rock
        ripple *= 1 - 0.7 * gravel
        height_map += ripple
        del phase, ripple

    cracks = ridged(value_noise(rng, h, w, 25 * unit), 30.0)
    rock_tex = _coarse(rng, h, w, 60 * unit, octaves=4, factor=2)
    rock_tex += 0.35 * value_noise(rng, h, w, 4 * unit)
    rock_tex *= 0.55
    rock_tex += 0.5
    rock_tex *= 1 - 0.25 * cracks
    rock_albedo = col(rock_c) * rock_tex[None]
    if rng.random() < 0.5:  # algal film / encrusting growth on rock
        film = _coarse(rng, h, w, 50 * unit, octaves=2)
        film *= rng.uniform(0.2, 0.6)
        rock_albedo += (col(_pick(rng, _WEED)) - rock_albedo) * film[None]
    rock_albedo -= albedo
    rock_albedo *= rock[None]
    albedo += rock_albedo
    del rock_albedo
    height_map += rock * (10.0 + 30.0 * rock_tex) - 2.0 * cracks * rock

    _stones(rng, albedo, height_map, gravel, rock, unit)
    _scatter_debris(rng, albedo, height_map, unit)
    _draw_weed(rng, albedo, height_map, weed, unit)

    gx = cv2.Sobel(height_map, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
    gy = cv2.Sobel(height_map, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
    la = rng.uniform(0, 2 * np.pi)
    lx, ly, lz = 0.45 * np.cos(la), 0.45 * np.sin(la), 0.89
    norm = cv2.magnitude(gx, gy)
    cv2.multiply(norm, norm, dst=norm)
    norm += 1.0
    cv2.sqrt(norm, dst=norm)
    shade = gx * np.float32(-lx / lz)
    shade -= gy * np.float32(ly / lz)
    shade += 1.0
    shade /= norm
    np.clip(shade, 0, 1.0 / lz, out=shade)
    shade *= np.float32(0.65 * 255.0)
    shade += np.float32(0.35 * 255.0)
    planes = [cv2.convertScaleAbs(cv2.multiply(albedo[c], shade)) for c in range(3)]
    return cv2.merge(planes)


def _stones(rng: np.random.Generator, albedo: np.ndarray, height_map: np.ndarray, gravel: np.ndarray,
            rock: np.ndarray, unit: float) -> None:
    """Pebbles (dense in gravel patches) and scattered stones, as shaded domes around random seeds.

    One distance transform with per-pixel labels gives every pixel its nearest seed, so tens of thousands
    of pebbles, packed into Voronoi-like mosaics where they are dense, cost about as much as one blur;
    drawing them one by one with OpenCV would take seconds per sequence.
    """
    _, h, w = albedo.shape
    spacing = rng.uniform(5.0, 9.0) * unit
    n_cand = int(h * w / (spacing * spacing))
    ys = rng.integers(0, h, n_cand)
    xs = rng.integers(0, w, n_cand)
    sparse = rng.uniform(0.003, 0.02)
    keep = rng.random(n_cand) < np.maximum(gravel[ys, xs] * 0.9, sparse) * (1 - rock[ys, xs])
    ys, xs = ys[keep], xs[keep]
    if len(ys) == 0:
        return
    seeds = np.full((h, w), 255, np.uint8)
    seeds[ys, xs] = 0
    dist, labels = cv2.distanceTransformWithLabels(seeds, cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL)
    zy, zx = np.nonzero(seeds == 0)  # label k (1-based) is the k-th seed in raster order
    in_gravel = gravel[zy, zx] > 0.3
    radius = np.where(in_gravel, rng.uniform(1.8, 4.5, len(zy)), rng.uniform(2.0, 8.0, len(zy))) * unit
    radius = np.concatenate([[0.0], radius]).astype(np.float32)
    palette = np.array([_pick(rng, [(0.45, 0.43, 0.40), (0.58, 0.54, 0.47), (0.30, 0.29, 0.27), (0.52, 0.44, 0.36),
                                    (0.25, 0.24, 0.23), (0.68, 0.64, 0.58)], 0.05) for _ in range(6)], np.float32)
    colour = palette[rng.integers(0, 6, len(zy))] * rng.uniform(0.75, 1.2, (len(zy), 1)).astype(np.float32)
    colour = np.concatenate([np.zeros((1, 3), np.float32), colour], 0)
    near = np.nonzero(dist < float(radius.max()) + 1.0)
    lab = labels[near]
    r = radius[lab]
    d = dist[near]
    cover = np.clip(r - d + 0.5, 0.0, 1.0)
    dome = np.sqrt(np.clip(1.0 - (d / np.maximum(r, 1e-3)) ** 2, 0.0, 1.0)) * r * 0.9
    height_map[near] = height_map[near] * (1 - cover) + dome * cover
    for c in range(3):
        plane = albedo[c]
        plane[near] = plane[near] * (1 - cover) + colour[lab, c] * cover


def _scatter_debris(rng: np.random.Generator, albedo: np.ndarray, height_map: np.ndarray, unit: float) -> None:
    """Pale shell fragments and burrow holes: small things that look a bit like targets."""
    _, h, w = albedo.shape
    area = h * w / (unit * unit)
    n_shells = int(area / rng.uniform(4000, 30000))
    n_holes = int(area / rng.uniform(8000, 40000))
    planes = [albedo[0], albedo[1], albedo[2]]
    for _ in range(n_shells):
        c = np.array([rng.uniform(0, w), rng.uniform(0, h)])
        r = rng.uniform(2, 10) * unit
        k = int(rng.integers(3, 7))
        a = np.sort(rng.uniform(0, 2 * np.pi, k))
        pts = (c + np.stack([np.cos(a), np.sin(a)], 1) * r * rng.uniform(0.5, 1.0, (k, 1))).astype(np.int32)
        colour = np.clip(np.array([0.85, 0.8, 0.72]) * rng.uniform(0.75, 1.1), 0, 1)
        for p, v in zip(planes, colour):
            cv2.fillPoly(p, [pts], float(v), cv2.LINE_AA)
    for _ in range(n_holes):
        c = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
        rad = max(1, int(rng.uniform(1.5, 4) * unit))
        cv2.circle(height_map, c, rad, -4.0, -1, cv2.LINE_AA)
        for p, v in zip(planes, (0.12, 0.11, 0.1)):
            cv2.circle(p, c, rad, v, -1, cv2.LINE_AA)


def _draw_weed(rng: np.random.Generator, albedo: np.ndarray, height_map: np.ndarray, weed: np.ndarray,
               unit: float) -> None:
    """Tufts of blades where the weed field is high; blades are strokes of a few green/brown shades.

    Blade geometry is computed for all blades at once and drawn with one ``polylines`` call per shade and
    thickness, because thousands of individual OpenCV calls would dominate the texture build time.
    """
    h, w = weed.shape
    step = max(int(8 * unit), 2)
    small = weed[::step, ::step]
    ys, xs = np.nonzero(small > 0.3)
    if len(xs) == 0:
        return
    n_tufts = min(len(xs), int(rng.uniform(150, 1200) * (h * w) / (2000 * 2000)))
    if n_tufts == 0:
        return
    pick = rng.choice(len(xs), n_tufts, replace=False)
    per_tuft = rng.integers(3, 9, n_tufts)
    n = int(per_tuft.sum())
    cx = np.repeat(xs[pick] * step + rng.uniform(0, step, n_tufts), per_tuft)
    cy = np.repeat(ys[pick] * step + rng.uniform(0, step, n_tufts), per_tuft)
    a = rng.uniform(0, 2 * np.pi, n)[:, None]
    length = (rng.uniform(8, 30, n) * unit)[:, None]
    bend = rng.normal(0, 0.6, n)[:, None]
    ang = a + bend * np.linspace(0, 1, 6)[None, :]
    px = cx[:, None] + np.cumsum(np.cos(ang), 1) * length / 6
    py = cy[:, None] + np.cumsum(np.sin(ang), 1) * length / 6
    pts = np.stack([px, py], 2).astype(np.int32)
    base = _pick(rng, _WEED, 0.1)
    shade_id = rng.integers(0, 5, n)
    thick = np.clip(np.round(rng.uniform(1, 3, n) * unit), 1, None).astype(int)
    for s in range(5):
        colour = np.clip(base * (0.6 + 0.15 * s), 0, 1)
        for t in np.unique(thick):
            sel = np.nonzero((shade_id == s) & (thick == t))[0]
            if len(sel) == 0:
                continue
            curves = list(pts[sel])
            for p, v in zip(albedo, colour):
                cv2.polylines(p, curves, False, float(v), int(t), cv2.LINE_AA)
            cv2.polylines(height_map, curves, False, 3.0, int(t), cv2.LINE_AA)
