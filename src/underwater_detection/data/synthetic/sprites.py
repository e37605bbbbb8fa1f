"""Procedural sprites of the four target classes and of look-alike distractors.

Each sprite is drawn once per object and sequence (not per frame) at the largest scale it will be seen at,
as **premultiplied** RGBA plus a soft contact-shadow channel, and kept as a small mip pyramid so per-frame
warping never aliases. Premultiplied colour matters: bilinear warps and ``pyrDown`` then never bleed the
black of transparent pixels into the object's rim.

The shapes are not meant to be photographic, but to carry the cues a detector must learn from real ROV
footage (elongated papillate bodies, spiny balls, ribbed fans, five tapered arms) with enough per-instance
variation in size, colour, texture, pose and elongation that a small detector cannot memorise them, while
distractors (stones, shell-coloured rocks, orange sponges, weed) punish colour- or blob-only shortcuts.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .noise import value_noise

CLASS_NAMES: tuple[str, ...] = ("sea_cucumber", "sea_urchin", "scallop", "starfish")
"""Label index order used everywhere (COCO category id = index + 1)."""

DISTRACTOR_KINDS: tuple[str, ...] = ("rock", "pale_stone", "sponge", "weed")

SUPERSAMPLE = 2  # shapes are rasterised at 2x and area-downsampled: cheap anti-aliasing

# Base colours (linear-ish RGB, 0..1); every instance jitters around one of them.
_CUCUMBER_COLOURS = [(0.30, 0.19, 0.12), (0.13, 0.11, 0.09), (0.45, 0.22, 0.14), (0.30, 0.29, 0.17),
                     (0.55, 0.45, 0.32), (0.22, 0.16, 0.16)]
_URCHIN_COLOURS = [(0.24, 0.07, 0.20), (0.07, 0.06, 0.08), (0.14, 0.24, 0.11), (0.38, 0.09, 0.16),
                   (0.28, 0.27, 0.12), (0.17, 0.08, 0.26)]
_SCALLOP_COLOURS = [(0.85, 0.74, 0.58), (0.90, 0.55, 0.30), (0.92, 0.90, 0.85), (0.76, 0.50, 0.45),
                    (0.70, 0.58, 0.42), (0.88, 0.68, 0.52)]
_STARFISH_COLOURS = [(0.92, 0.45, 0.14), (0.80, 0.15, 0.11), (0.45, 0.18, 0.45), (0.85, 0.30, 0.20),
                     (0.95, 0.62, 0.22), (0.60, 0.14, 0.30)]
_ROCK_COLOURS = [(0.40, 0.39, 0.36), (0.30, 0.28, 0.25), (0.50, 0.45, 0.38), (0.18, 0.17, 0.17),
                 (0.36, 0.32, 0.27)]
_PALE_STONE_COLOURS = [(0.80, 0.76, 0.68), (0.86, 0.70, 0.55), (0.72, 0.70, 0.66)]
_SPONGE_COLOURS = [(0.90, 0.55, 0.20), (0.85, 0.75, 0.25), (0.75, 0.30, 0.25), (0.55, 0.25, 0.45)]
_WEED_COLOURS = [(0.22, 0.42, 0.14), (0.40, 0.40, 0.14), (0.40, 0.27, 0.10), (0.50, 0.16, 0.15),
                 (0.30, 0.35, 0.10)]


@dataclass
class Sprite:
    """A drawn object. ``levels[i]`` is the premultiplied RGBA (uint8, HxWx4) at 1/2**i of full size,
    ``shadows[i]`` the matching contact shadow (uint8, HxW). The object's centre is the canvas centre."""

    levels: list[np.ndarray]
    shadows: list[np.ndarray]
    label: int  # class index, or -1 for a distractor
    kind: str

    @property
    def rgba(self) -> np.ndarray:
        return self.levels[0]


# --------------------------------------------------------------------------------------------- helpers
def _jitter_colour(rng: np.random.Generator, palette: list[tuple[float, float, float]], amount: float = 0.12) -> np.ndarray:
    base = np.array(palette[int(rng.integers(len(palette)))], np.float32)
    scale = float(rng.uniform(1 - amount, 1 + amount))
    tint = rng.normal(0.0, amount * 0.35, 3).astype(np.float32)
    return np.clip(base * scale + tint * base.mean(), 0.02, 1.0)


def _canvas(size_px: float, margin: float = 1.25) -> int:
    side = int(np.ceil(size_px * margin)) + 6
    return side + (side % 2)


def _downsample(img: np.ndarray, side: int) -> np.ndarray:
    return cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA)


def _lighting(mask: np.ndarray, bump: np.ndarray | None, relief: float, rng: np.random.Generator,
              gloss: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """Diffuse and specular terms from a dome height field (distance to the rim) plus optional bumps.

    The light comes mostly from above (ROV lamps and daylight), slightly off axis, so shapes read as 3D
    from any rotation without a visible, rotation-dependent light direction.
    """
    binary = (mask > 0.5).astype(np.uint8)
    dist = cv2.distanceTransform(binary, cv2.DIST_L2, 3)
    peak = float(dist.max())
    height = np.sqrt(dist / peak) * relief if peak > 0 else np.zeros_like(dist)
    if bump is not None:
        height = height + bump
    height = cv2.GaussianBlur(height, (3, 3), 0)
    gx = cv2.Sobel(height, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(height, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    ang = float(rng.uniform(0, 2 * np.pi))
    light = np.array([0.35 * np.cos(ang), 0.35 * np.sin(ang), 0.94], np.float32)
    norm = np.sqrt(gx * gx + gy * gy + 1.0)
    ndotl = (-gx * light[0] - gy * light[1] + light[2]) / norm
    diffuse = np.clip(ndotl, 0.0, 1.0)
    half = light + np.array([0, 0, 1], np.float32)
    half /= np.linalg.norm(half)
    ndoth = np.clip((-gx * half[0] - gy * half[1] + half[2]) / norm, 0.0, 1.0)
    spec = gloss * np.power(ndoth, 24.0)
    return diffuse.astype(np.float32), spec.astype(np.float32)


def _finish(mask_ss: np.ndarray, albedo_ss: np.ndarray, side: int, label: int, kind: str,
            rng: np.random.Generator, bump_ss: np.ndarray | None = None, relief: float = 6.0,
            gloss: float = 0.12, ambient: float = 0.45, alpha_scale: float = 1.0,
            shadow_strength: float = 0.55) -> Sprite:
    """Shade at supersampled resolution, downsample, premultiply, add the contact shadow and the mips."""
    diffuse, spec = _lighting(mask_ss, bump_ss, relief * SUPERSAMPLE, rng, gloss)
    shade = ambient + (1.0 - ambient) * diffuse
    colour = albedo_ss * shade[..., None] + spec[..., None]
    colour = _downsample(np.clip(colour, 0, 1).astype(np.float32), side)
    alpha = np.clip(_downsample(mask_ss.astype(np.float32), side) * alpha_scale, 0, 1)
    premult = np.empty((side, side, 4), np.uint8)
    premult[..., :3] = np.clip(colour * alpha[..., None] * 255.0 + 0.5, 0, 255).astype(np.uint8)
    premult[..., 3] = np.clip(alpha * 255.0 + 0.5, 0, 255).astype(np.uint8)
    k = max(3, int(side * 0.08) | 1)
    shadow = cv2.GaussianBlur(cv2.dilate(alpha, np.ones((3, 3), np.uint8)), (k, k), 0) * shadow_strength
    shadow = np.clip(shadow * 255.0 + 0.5, 0, 255).astype(np.uint8)
    levels, shadows = [premult], [shadow]
    while min(levels[-1].shape[:2]) >= 16:
        levels.append(cv2.pyrDown(levels[-1]))
        shadows.append(cv2.pyrDown(shadows[-1]))
    return Sprite(levels, shadows, label, kind)


def _mottle(rng: np.random.Generator, side: int, cell: float, amount: float) -> np.ndarray:
    return (1.0 + amount * (value_noise(rng, side, side, cell) * 2.0 - 1.0)).astype(np.float32)


def _tube_polygon(centre: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Outline of a tube of varying width around a polyline (used for arms, bodies and weed blades)."""
    d = np.gradient(centre, axis=0)
    d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-6)
    normal = np.stack([-d[:, 1], d[:, 0]], axis=1)
    left = centre + normal * widths[:, None] / 2
    right = centre - normal * widths[:, None] / 2
    return np.concatenate([left, right[::-1]], axis=0)


def _fill(mask: np.ndarray, poly: np.ndarray, value: float = 1.0) -> None:
    cv2.fillPoly(mask, [np.round(poly * 16).astype(np.int32)], value, lineType=cv2.LINE_AA, shift=4)


# --------------------------------------------------------------------------------------------- classes
def _starfish(size: float, rng: np.random.Generator) -> Sprite:
    side = _canvas(size, 1.15)
    ss = side * SUPERSAMPLE
    c = np.array([ss / 2, ss / 2], np.float32)
    radius = size * SUPERSAMPLE / 2
    base = float(rng.uniform(0, 2 * np.pi))
    stubby = rng.random() < 0.3  # bat-star-like: short broad arms
    w0 = radius * (rng.uniform(0.38, 0.55) if stubby else rng.uniform(0.20, 0.32))
    curl_bias = float(rng.uniform(-0.5, 0.5))
    mask = np.zeros((ss, ss), np.float32)
    for k in range(5):
        theta = base + 2 * np.pi * k / 5 + rng.normal(0, 0.09)
        length = radius * rng.uniform(0.72, 1.0) * (0.65 if stubby else 1.0)
        if rng.random() < 0.15:
            length *= rng.uniform(0.45, 0.7)  # regenerating arm
        curl = curl_bias + rng.normal(0, 0.45)
        s = np.linspace(0, 1, 14, dtype=np.float32)
        ang = theta + curl * s ** 2
        steps = np.stack([np.cos(ang), np.sin(ang)], 1) * (length / (len(s) - 1))
        centre = c + np.concatenate([[[0, 0]], np.cumsum(steps[1:], axis=0)], 0)
        widths = w0 * (1.0 - 0.72 * s) * (1 + 0.06 * np.sin(s * rng.uniform(6, 12)))
        _fill(mask, _tube_polygon(centre, widths))
        cv2.circle(mask, tuple(int(v) for v in centre[-1]), max(int(widths[-1] / 2), 1), 1.0, -1, cv2.LINE_AA)
    cv2.circle(mask, (int(c[0]), int(c[1])), int(w0 * 0.95), 1.0, -1, cv2.LINE_AA)

    colour = _jitter_colour(rng, _STARFISH_COLOURS)
    yy, xx = np.mgrid[0:ss, 0:ss].astype(np.float32)
    r = np.sqrt((xx - c[0]) ** 2 + (yy - c[1]) ** 2) / radius
    albedo = np.ones((ss, ss, 3), np.float32) * colour
    pale = np.clip((r - 0.55) * 1.6, 0, 1)[..., None] * float(rng.uniform(0.1, 0.45))
    albedo = albedo * (1 - pale) + pale * np.array([0.95, 0.85, 0.7], np.float32)
    dist = cv2.distanceTransform((mask > 0.5).astype(np.uint8), cv2.DIST_L2, 3)
    if not stubby and rng.random() < 0.35:  # contrasting mid-arm stripe (many species have one)
        stripe = (dist > w0 * rng.uniform(0.22, 0.3)).astype(np.float32)
        stripe = cv2.GaussianBlur(stripe, (5, 5), 0)[..., None]
        other = _jitter_colour(rng, _STARFISH_COLOURS + [(0.9, 0.85, 0.75)])
        albedo = albedo * (1 - 0.6 * stripe) + 0.6 * stripe * other
    albedo *= _mottle(rng, ss, max(radius / 6, 2), 0.18)[..., None]
    bump = np.zeros((ss, ss), np.float32)
    n_dots = int(np.clip((mask > 0.5).sum() / (SUPERSAMPLE * SUPERSAMPLE * rng.uniform(6, 14)), 10, 700))
    ys, xs = np.nonzero(mask > 0.5)
    if len(xs):
        pick = rng.integers(0, len(xs), n_dots)
        dot_r = max(1, int(SUPERSAMPLE * rng.uniform(0.6, 1.3) * max(size / 60, 0.6)))
        light_dots = rng.random() < 0.6
        dot_col = (1.25, 1.2, 1.1) if light_dots else (0.6, 0.55, 0.55)
        dots = np.zeros((ss, ss), np.float32)
        for i in pick:
            cv2.circle(dots, (int(xs[i]), int(ys[i])), dot_r, 1.0, -1)
        albedo = albedo * (1 + dots[..., None] * (np.array(dot_col, np.float32) - 1))
        bump += dots * 1.5
    return _finish(mask, np.clip(albedo, 0, 1), side, 3, "starfish", rng, bump, relief=size * 0.06 + 2,
                   gloss=0.08)


def _urchin(size: float, rng: np.random.Generator) -> Sprite:
    side = _canvas(size, 1.1)
    ss = side * SUPERSAMPLE
    c = (ss / 2, ss / 2)
    outer = size * SUPERSAMPLE / 2
    long_spined = rng.random() < 0.45
    body_r = outer * (rng.uniform(0.38, 0.55) if long_spined else rng.uniform(0.62, 0.8))
    colour = _jitter_colour(rng, _URCHIN_COLOURS, 0.15)
    mask = np.zeros((ss, ss), np.float32)
    albedo = np.ones((ss, ss, 3), np.float32) * colour * 0.8
    # body: slightly irregular disc with five faint ambulacral bands
    angles = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    rad = body_r * (1 + 0.04 * rng.standard_normal(48).cumsum() / 4)
    body = np.stack([c[0] + rad * np.cos(angles), c[1] + rad * np.sin(angles)], 1)
    _fill(mask, body)
    yy, xx = np.mgrid[0:ss, 0:ss].astype(np.float32)
    phi = np.arctan2(yy - c[1], xx - c[0])
    bands = 1 + 0.12 * np.cos(5 * phi + rng.uniform(0, 6.3))
    albedo *= bands[..., None]
    # spines: many thin radial strokes, varied length and shade
    n = int(np.clip(outer * rng.uniform(2.0, 4.0), 40, 420))
    thick = max(1, int(round(SUPERSAMPLE * max(size / 55, 0.5) * (1.0 if long_spined else 0.8))))
    spines = np.zeros((ss, ss), np.float32)
    shade_img = np.zeros((ss, ss), np.float32)
    for _ in range(n):
        a = rng.uniform(0, 2 * np.pi)
        start = body_r * rng.uniform(0.0, 0.6)
        length = body_r + (outer - body_r) * rng.uniform(0.55, 1.0)
        p0 = (int(c[0] + start * np.cos(a)), int(c[1] + start * np.sin(a)))
        p1 = (int(c[0] + length * np.cos(a)), int(c[1] + length * np.sin(a)))
        cv2.line(spines, p0, p1, 1.0, thick, cv2.LINE_AA)
        cv2.line(shade_img, p0, p1, float(rng.uniform(0.6, 1.5)), thick, cv2.LINE_AA)
    mask = np.maximum(mask, spines)
    spine_shade = np.where(spines > 0.2, shade_img / np.maximum(spines, 1e-3), 1.0)
    albedo *= np.clip(spine_shade, 0.5, 1.6)[..., None]
    if rng.random() < 0.3:  # pale spine tips
        r = np.sqrt((xx - c[0]) ** 2 + (yy - c[1]) ** 2) / outer
        tip = np.clip((r - 0.75) * 4, 0, 1)[..., None] * 0.5
        albedo = albedo * (1 - tip) + tip * np.array([0.7, 0.6, 0.65], np.float32)
    albedo *= _mottle(rng, ss, 1.5 * SUPERSAMPLE, 0.35)[..., None]  # stipple of spine bases
    bump = spines * 1.2
    return _finish(mask, np.clip(albedo, 0, 1), side, 1, "sea_urchin", rng, bump, relief=size * 0.12 + 2,
                   gloss=0.2, ambient=0.5)


def _scallop(size: float, rng: np.random.Generator) -> Sprite:
    side = _canvas(size, 1.2)
    ss = side * SUPERSAMPLE
    radius = size * SUPERSAMPLE / 2
    cx, cy = ss / 2, ss / 2
    hinge = np.array([cx, cy + radius * rng.uniform(0.88, 1.0)], np.float32)
    half_angle = np.deg2rad(rng.uniform(48, 62))
    n_ribs = int(rng.integers(12, 26))
    # outline in polar coordinates about the hinge; ribs make the rim slightly scalloped
    yy, xx = np.mgrid[0:ss, 0:ss].astype(np.float32)
    dx, dy = xx - hinge[0], hinge[1] - yy
    ang = np.arctan2(dx, dy)
    dist = np.sqrt(dx * dx + dy * dy)
    centre = np.array([cx, cy - radius * 0.05], np.float32)
    # rim: circle around `centre`, intersected with the wedge opening from the hinge
    rim_pts = []
    for p in np.linspace(-np.pi * 0.5 - half_angle * 1.3, np.pi * 0.5 + half_angle * 1.3, 120):
        r = radius * (1 + 0.025 * np.cos(n_ribs * p * 1.6))
        rim_pts.append(centre + r * np.array([np.sin(p), -np.cos(p)]))
    mask = np.zeros((ss, ss), np.float32)
    _fill(mask, np.array(rim_pts, np.float32))
    wedge = (np.abs(ang) <= half_angle * 1.02).astype(np.float32)
    mask = mask * cv2.GaussianBlur(wedge, (3, 3), 0)
    # ears (auricles) along the straight hinge line
    ear_w = radius * rng.uniform(0.45, 0.7)
    ear_h = radius * rng.uniform(0.18, 0.28)
    ears = np.array([[hinge[0] - ear_w, hinge[1] - ear_h * 0.2], [hinge[0] + ear_w * rng.uniform(0.6, 1.0), hinge[1] - ear_h * 0.2],
                     [hinge[0] + ear_w * 0.2, hinge[1] - ear_h * 1.6], [hinge[0] - ear_w * 0.2, hinge[1] - ear_h * 1.6]],
                    np.float32)
    _fill(mask, ears)
    colour = _jitter_colour(rng, _SCALLOP_COLOURS, 0.1)
    rib = 0.5 + 0.5 * np.cos(n_ribs * ang * (np.pi / (2 * half_angle)) * 2)
    albedo = np.ones((ss, ss, 3), np.float32) * colour
    albedo *= (0.82 + 0.3 * rib)[..., None]
    growth = np.sin(dist / (radius * rng.uniform(0.07, 0.14)) * 2 * np.pi + 3 * value_noise(rng, ss, ss, ss / 4))
    albedo *= (1 + 0.06 * growth)[..., None]
    if rng.random() < 0.5:  # coloured concentric bands / blotches
        other = _jitter_colour(rng, _SCALLOP_COLOURS + [(0.55, 0.3, 0.25), (0.45, 0.35, 0.3)])
        band = (np.sin(dist / (radius * rng.uniform(0.15, 0.3)) * 2 * np.pi + 4 * value_noise(rng, ss, ss, ss / 3)) > 0.3)
        band = cv2.GaussianBlur(band.astype(np.float32), (5, 5), 0)[..., None] * 0.7
        albedo = albedo * (1 - band) + band * other
    albedo *= _mottle(rng, ss, max(radius / 5, 2), 0.12)[..., None]
    dusting = float(rng.uniform(0.0, 0.45)) * value_noise(rng, ss, ss, max(radius / 3, 2))[..., None]
    albedo = albedo * (1 - dusting) + dusting * np.array([0.55, 0.5, 0.42], np.float32)  # sediment on top
    bump = (rib * 1.6).astype(np.float32) * mask
    return _finish(mask, np.clip(albedo, 0, 1), side, 2, "scallop", rng, bump, relief=size * 0.05 + 1.5,
                   gloss=0.15)


def _sea_cucumber(size: float, rng: np.random.Generator) -> Sprite:
    side = _canvas(size, 1.15)
    ss = side * SUPERSAMPLE
    length = size * SUPERSAMPLE
    width = length * rng.uniform(0.2, 0.36)
    s = np.linspace(0, 1, 28, dtype=np.float32)
    bend = rng.uniform(-0.25, 0.25) * length
    wiggle = rng.uniform(-0.06, 0.06) * length
    x = (s - 0.5) * length
    y = bend * (2 * s - 1) ** 2 - bend / 2 + wiggle * np.sin(2 * np.pi * s)
    centre = np.stack([x, y], 1) + ss / 2
    taper = np.clip(1 - np.abs(2 * s - 1) ** rng.uniform(2.5, 4.0), 0.05, 1) ** 0.5
    front = 1 - 0.25 * s * rng.random()  # one end a little narrower
    widths = width * taper * front * (1 + 0.05 * np.sin(s * rng.uniform(8, 16)))
    mask = np.zeros((ss, ss), np.float32)
    poly = _tube_polygon(centre, widths)
    _fill(mask, poly)
    colour = _jitter_colour(rng, _CUCUMBER_COLOURS, 0.15)
    albedo = np.ones((ss, ss, 3), np.float32) * colour
    albedo *= _mottle(rng, ss, max(width / 3, 2), 0.25)[..., None]
    bump = np.zeros((ss, ss), np.float32)
    spiky = rng.random() < 0.7  # conical papillae along the flanks (Apostichopus-like)
    papilla_len = width * rng.uniform(0.15, 0.35) if spiky else width * 0.08
    d = np.gradient(centre, axis=0)
    d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-6)
    normal = np.stack([-d[:, 1], d[:, 0]], axis=1)
    n_side = int(rng.integers(5, 11))
    for side_sign in (1, -1):
        for t in np.linspace(0.12, 0.88, n_side) + rng.normal(0, 0.02, n_side):
            i = int(np.clip(t * (len(s) - 1), 0, len(s) - 1))
            base = centre[i] + side_sign * normal[i] * widths[i] * 0.45
            tip = base + side_sign * normal[i] * papilla_len * rng.uniform(0.6, 1.2)
            half = d[i] * max(papilla_len * 0.45, 1.5)
            _fill(mask, np.array([base - half, base + half, tip], np.float32))
    # dorsal papillae: raised bumps with pale tips, in rough rows
    n_bumps = int(np.clip(length / max(width * 0.25, 2) * rng.uniform(1.5, 3.0), 6, 90))
    dots = np.zeros((ss, ss), np.float32)
    bump_r = max(1, int(width * rng.uniform(0.06, 0.11)))
    for _ in range(n_bumps):
        t = rng.uniform(0.08, 0.92)
        i = int(t * (len(s) - 1))
        off = rng.uniform(-0.35, 0.35) * widths[i]
        p = centre[i] + normal[i] * off
        cv2.circle(dots, (int(p[0]), int(p[1])), bump_r, 1.0, -1, cv2.LINE_AA)
    dots = cv2.GaussianBlur(dots, (3, 3), 0)
    tip_col = np.array([1.5, 1.4, 1.25], np.float32) if rng.random() < 0.7 else np.array([0.6, 0.6, 0.6], np.float32)
    albedo *= (1 + dots[..., None] * (tip_col - 1))
    bump += dots * 2.0
    mask = np.clip(mask, 0, 1)
    return _finish(mask, np.clip(albedo, 0, 1), side, 0, "sea_cucumber", rng, bump, relief=width * 0.25 / SUPERSAMPLE + 2,
                   gloss=0.25, ambient=0.4)


# --------------------------------------------------------------------------------------------- distractors
def _blob(size: float, rng: np.random.Generator, palette, kind: str, roughness: float, elong: float) -> Sprite:
    side = _canvas(size, 1.2)
    ss = side * SUPERSAMPLE
    radius = size * SUPERSAMPLE / 2
    a = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    r = np.ones_like(a)
    for h in range(2, 7):
        r += roughness / h * rng.normal() * np.cos(h * a + rng.uniform(0, 6.3))
    r = radius * np.clip(r, 0.5, 1.3)
    rot = rng.uniform(0, np.pi)
    pts = np.stack([r * np.cos(a) * elong, r * np.sin(a)], 1)
    pts = pts @ np.array([[np.cos(rot), np.sin(rot)], [-np.sin(rot), np.cos(rot)]], np.float32)
    mask = np.zeros((ss, ss), np.float32)
    _fill(mask, pts / max(elong, 1.0) + ss / 2)
    colour = _jitter_colour(rng, palette, 0.15)
    albedo = np.ones((ss, ss, 3), np.float32) * colour
    albedo *= _mottle(rng, ss, max(radius / 4, 2), 0.3)[..., None]
    albedo *= _mottle(rng, ss, 1.5 * SUPERSAMPLE, 0.15)[..., None]
    bump = value_noise(rng, ss, ss, max(radius / 5, 2)) * 3.0
    if kind == "sponge":  # oscula / pores: dark dots
        for _ in range(int(rng.integers(3, 12))):
            p = (int(ss / 2 + rng.normal(0, radius * 0.35)), int(ss / 2 + rng.normal(0, radius * 0.35)))
            cv2.circle(albedo, p, max(1, int(radius * rng.uniform(0.05, 0.12))), (0.1, 0.07, 0.06), -1, cv2.LINE_AA)
    if kind == "rock" and rng.random() < 0.4:  # algal film on top
        film = value_noise(rng, ss, ss, max(radius / 3, 2))[..., None] * 0.5
        albedo = albedo * (1 - film) + film * np.array([0.25, 0.35, 0.15], np.float32)
    return _finish(mask, np.clip(albedo, 0, 1), side, -1, kind, rng, bump, relief=size * 0.1 + 2, gloss=0.05,
                   ambient=0.4)


def _weed(size: float, rng: np.random.Generator) -> Sprite:
    side = _canvas(size, 1.15)
    ss = side * SUPERSAMPLE
    length = size * SUPERSAMPLE
    colour = _jitter_colour(rng, _WEED_COLOURS, 0.2)
    mask = np.zeros((ss, ss), np.float32)
    base = np.array([ss / 2, ss / 2], np.float32) + rng.normal(0, length * 0.05, 2)
    direction = rng.uniform(0, 2 * np.pi)
    for _ in range(int(rng.integers(1, 4))):
        s = np.linspace(0, 1, 16, dtype=np.float32)
        blade_len = length * rng.uniform(0.5, 0.95)
        a = direction + rng.normal(0, 0.5) + rng.uniform(-1.2, 1.2) * s ** 1.5
        steps = np.stack([np.cos(a), np.sin(a)], 1) * blade_len / 15
        centre = base - steps.sum(0) / 2 + np.concatenate([[[0, 0]], np.cumsum(steps[1:], 0)], 0)
        widths = length * rng.uniform(0.06, 0.16) * np.sin(np.pi * np.clip(s, 0.04, 0.96)) ** 0.6
        _fill(mask, _tube_polygon(centre, widths))
    albedo = np.ones((ss, ss, 3), np.float32) * colour
    albedo *= _mottle(rng, ss, max(length / 8, 2), 0.25)[..., None]
    return _finish(np.clip(mask, 0, 1), np.clip(albedo, 0, 1), side, -1, "weed", rng, None, relief=1.0, gloss=0.1,
                   ambient=0.6, alpha_scale=float(rng.uniform(0.8, 0.95)), shadow_strength=0.25)


_CLASS_MAKERS = {0: _sea_cucumber, 1: _urchin, 2: _scallop, 3: _starfish}


def make_object_sprite(label: int, size: float, rng: np.random.Generator) -> Sprite:
    """A new instance of class ``label`` whose longest extent is about ``size`` sprite pixels."""
    return _CLASS_MAKERS[int(label)](max(float(size), 6.0), rng)


def make_distractor_sprite(kind: str, size: float, rng: np.random.Generator) -> Sprite:
    """A look-alike that must not be detected: ``rock``, ``pale_stone``, ``sponge`` or ``weed``."""
    size = max(float(size), 6.0)
    if kind == "rock":
        return _blob(size, rng, _ROCK_COLOURS, "rock", rng.uniform(0.15, 0.4), rng.uniform(1.0, 1.6))
    if kind == "pale_stone":
        return _blob(size, rng, _PALE_STONE_COLOURS, "pale_stone", rng.uniform(0.1, 0.3), rng.uniform(1.0, 1.4))
    if kind == "sponge":
        return _blob(size, rng, _SPONGE_COLOURS, "sponge", rng.uniform(0.2, 0.45), rng.uniform(1.0, 1.8))
    if kind == "weed":
        return _weed(size, rng)
    raise ValueError(f"unknown distractor kind {kind!r}; expected one of {DISTRACTOR_KINDS}")
