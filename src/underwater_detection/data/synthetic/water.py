"""Water and sensor effects in image space, and the difficulty presets that parameterise them.

The image model is the usual simplified underwater formation model, per colour channel c:

    I_c = gain * ( J_c * E(x, y) * t_c(y)  +  B_c * (1 - t_c(y)) * S(x, y) ) + snow + noise

``J`` is the rendered seabed with objects (its albedo), ``E`` the illumination reaching the ground (daylight
with moving caustics, the ROV's lamps with fall-off from the beam centre, vignetting), ``t_c = exp(-beta_c d)``
the transmission over the light path ``d`` (longer when the ROV is higher, and towards the top of the frame
because real ROV cameras look slightly forward), ``B_c`` the veiling-light colour and ``S`` the lit,
cloudy backscatter. ``beta`` is largest for red in ocean water, so red fades first and the scene turns blue
or green; turbid coastal water also absorbs blue, giving a yellow-green cast. Marine snow, sensor noise,
motion blur from the camera's speed, defocus and JPEG compression finish the frame.

Each preset is a set of parameter *ranges*; every sequence samples its own values, so even one preset
covers a spread of difficulty. Per-sequence maps (lamp pattern, noise tile, caustic and cloud textures) are
built once; the per-frame work is a handful of full-frame OpenCV operations (about 10 ms at 640x480).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import cv2
import numpy as np

from .noise import fbm, ridged

PRESETS: tuple[str, ...] = ("clear", "turbid", "dark")
"""Difficulty presets; ``"mixed"`` samples one of them per sequence (weights in ``MIXED_WEIGHTS``)."""
MIXED_WEIGHTS: dict[str, float] = {"clear": 0.4, "turbid": 0.3, "dark": 0.3}


@dataclass(frozen=True)
class WaterParams:
    """One sequence's water and camera parameters (see the module docstring for the model)."""

    preset: str
    beta: tuple[float, float, float]      # attenuation per unit path length, R G B
    veil: tuple[float, float, float]      # backscatter (veiling light) colour
    distance: float                       # path length at zoom 1 (reference altitude)
    tilt: float                           # extra path fraction at the top of the frame vs the bottom
    ambient: float                        # daylight at the seabed
    lamp: float                           # ROV lamp strength
    lamp_width: float                     # lamp beam radius, fraction of the image diagonal
    lamp_offset: tuple[float, float]      # beam centre offset from the image centre, fraction of W, H
    vignette: float
    caustics: float                       # caustic contrast (0 = none)
    caustic_cell: float                   # caustic pattern size, world px
    clouds: float                         # turbidity cloud contrast in the backscatter
    snow: int                             # marine snow particles per frame at 640x480
    snow_brightness: float
    noise_sigma: float                    # sensor noise std (0..1 scale, after gain)
    target_mean: float                    # auto-exposure target brightness
    white_balance: float                  # 0 = none, 1 = full grey-world correction of the cast
    exposure_s: float                     # exposure time (motion blur length = speed * exposure)
    defocus: float                        # Gaussian blur sigma in px at 640x480
    jpeg_quality: int                     # 0 = no compression artefacts


# Each preset is data: per parameter a float range (lo, hi), an int range ("int", lo, hi) drawn with
# rng.integers (hi exclusive), or a constant. Parameters are drawn in WaterParams field order (tuples
# element by element), so a preset's values depend only on the seed and this table.
PRESET_RANGES: dict[str, dict[str, object]] = {
    "clear": {
        "beta": ((0.5, 1.0), (0.06, 0.16), (0.08, 0.22)), "veil": ((0.02, 0.10), (0.30, 0.48), (0.38, 0.58)),
        "distance": (0.6, 1.3), "tilt": (0.1, 0.6), "ambient": (0.8, 1.1), "lamp": (0.0, 0.35),
        "lamp_width": (0.5, 0.9), "lamp_offset": ((-0.1, 0.1), (-0.1, 0.15)), "vignette": (0.1, 0.35),
        "caustics": (0.25, 0.7), "caustic_cell": (40, 110), "clouds": (0.05, 0.2), "snow": ("int", 20, 120),
        "snow_brightness": (0.15, 0.35), "noise_sigma": (0.006, 0.02), "target_mean": (0.4, 0.55),
        "white_balance": (0.2, 0.8), "exposure_s": (0.003, 0.012), "defocus": (0.0, 0.6), "jpeg_quality": ("int", 55, 96),
    },
    "turbid": {
        "beta": ((0.9, 1.6), (0.45, 0.9), (0.7, 1.3)), "veil": ((0.26, 0.38), (0.34, 0.46), (0.26, 0.38)),
        "distance": (1.0, 1.7), "tilt": (0.2, 0.8), "ambient": (0.6, 0.95), "lamp": (0.1, 0.5),
        "lamp_width": (0.4, 0.8), "lamp_offset": ((-0.1, 0.1), (-0.1, 0.15)), "vignette": (0.15, 0.4),
        "caustics": (0.0, 0.15), "caustic_cell": (40, 110), "clouds": (0.2, 0.55), "snow": ("int", 200, 650),
        "snow_brightness": (0.1, 0.3), "noise_sigma": (0.01, 0.03), "target_mean": (0.4, 0.55),
        "white_balance": (0.2, 0.6), "exposure_s": (0.006, 0.02), "defocus": (0.5, 1.6), "jpeg_quality": ("int", 40, 86),
    },
    "dark": {
        "beta": ((0.7, 1.3), (0.15, 0.35), (0.18, 0.45)), "veil": ((0.02, 0.08), (0.12, 0.30), (0.16, 0.36)),
        "distance": (0.8, 1.5), "tilt": (0.1, 0.6), "ambient": (0.0, 0.1), "lamp": (1.0, 1.6),
        "lamp_width": (0.28, 0.55), "lamp_offset": ((-0.15, 0.15), (-0.1, 0.2)), "vignette": (0.3, 0.6),
        "caustics": 0.0, "caustic_cell": 80.0, "clouds": (0.1, 0.4), "snow": ("int", 80, 400),
        "snow_brightness": (0.3, 0.7), "noise_sigma": (0.02, 0.05), "target_mean": (0.16, 0.28),
        "white_balance": (0.1, 0.5), "exposure_s": (0.015, 0.04), "defocus": (0.0, 1.0), "jpeg_quality": ("int", 35, 81),
    },
}


def _draw(spec: object, rng: np.random.Generator) -> object:
    if isinstance(spec, (int, float)):
        return float(spec)
    assert isinstance(spec, tuple)
    if spec and spec[0] == "int":
        return int(rng.integers(spec[1], spec[2]))
    if spec and isinstance(spec[0], tuple):  # a vector parameter: one range per element
        return tuple(_draw(s, rng) for s in spec)
    return float(rng.uniform(spec[0], spec[1]))


def sample_water(preset: str, rng: np.random.Generator) -> WaterParams:
    """Sample one sequence's parameters from a preset's ranges (``mixed`` picks a preset first)."""
    if preset == "mixed":
        names = list(MIXED_WEIGHTS)
        p = np.array([MIXED_WEIGHTS[n] for n in names])
        preset = names[int(rng.choice(len(names), p=p / p.sum()))]
    if preset not in PRESET_RANGES:
        raise ValueError(f"unknown preset {preset!r}; expected one of {PRESETS + ('mixed',)}")
    ranges = PRESET_RANGES[preset]
    values = {f.name: _draw(ranges[f.name], rng) for f in fields(WaterParams) if f.name != "preset"}
    return WaterParams(preset=preset, **values)  # type: ignore[arg-type]


class WaterModel:
    """Per-sequence precomputation plus the per-frame ``apply`` (uint8 RGB in, uint8 RGB out)."""

    def __init__(self, params: WaterParams, width: int, height: int, rng: np.random.Generator) -> None:
        self.p = params
        self.w, self.h = int(width), int(height)
        self.unit = self.w / 640.0
        w, h = self.w, self.h
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        diag = float(np.hypot(w, h))
        lx = w / 2 + params.lamp_offset[0] * w
        ly = h / 2 + params.lamp_offset[1] * h
        r_lamp = np.hypot(xx - lx, yy - ly) / (params.lamp_width * diag)
        lamp = 1.0 / (1.0 + r_lamp ** 2) ** 2
        r_img = np.hypot(xx - w / 2, yy - h / 2) / (0.5 * diag)
        vignette = 1.0 - params.vignette * r_img ** 2
        # light reaching the ground, without caustics; caustics modulate the daylight part only
        self.base_light = ((params.ambient + params.lamp * lamp) * vignette).astype(np.float32)
        self.caustic_weight = (params.ambient * params.caustics * vignette).astype(np.float32)
        # backscatter is lit by daylight everywhere and by the lamp beam (wider than its footprint)
        lamp_wide = 1.0 / (1.0 + (r_lamp * 0.6) ** 2)
        self.scatter = ((0.7 * params.ambient + 0.6 * params.lamp * lamp_wide) * vignette).astype(np.float32)
        self.row_path = (1.0 + params.tilt * (0.5 - np.arange(h, dtype=np.float32) / max(h - 1, 1)))  # (H,)
        # textures sampled with a moving warp each frame
        self.caustic_tex = [ridged(fbm(rng, 256, 256, 64, 2, tileable=True), 5.0) for _ in range(2)] \
            if params.caustics > 0 else []
        self.cloud_tex = fbm(rng, 128, 128, 32, 3, tileable=True) if params.clouds > 0 else None
        pad = 16
        self.noise_tile = rng.standard_normal((h + pad, w + pad, 3), dtype=np.float32)
        self.current = rng.uniform(-1, 1, 2) * 20 * self.unit  # water current, px/s, moves snow and clouds
        self.caustic_drift = [rng.uniform(-1, 1, 2) * 12, rng.uniform(-1, 1, 2) * 12]
        n = int(params.snow * (w * h) / (640 * 480))
        self.snow_pos = rng.uniform(0, 1, (n, 2)) * np.array([w, h])
        self.snow_depth = rng.uniform(0, 1, n)  # 0 = near the lens (large, blurred), 1 = far
        self.snow_vel = rng.normal(0, 8, (n, 2)) * self.unit + self.current
        self.snow_phase = rng.uniform(0, 6.3, n)

    # ---------------------------------------------------------------------------------------- pieces
    def _caustics(self, t: float, cam: np.ndarray) -> np.ndarray | None:
        """Moving bright network at half resolution, attached to the seabed (follows the camera warp)."""
        if not self.caustic_tex:
            return None
        hw, hh = self.w // 2, self.h // 2
        out = None
        for k, tex in enumerate(self.caustic_tex):
            # world -> texture: scale to the caustic cell, then drift with time
            s = 64.0 / (self.p.caustic_cell * self.unit) * (1.0 if k == 0 else 1.37)
            drift = self.caustic_drift[k] * t
            # image(half) -> world: inverse of the camera matrix (scaled for half resolution)
            a = cam[:, :2] * 0.5
            tr = cam[:, 2] * 0.5
            inv_a = np.linalg.inv(a)
            m = np.hstack([inv_a * s, ((-inv_a @ tr) * s + drift)[:, None]])
            layer = cv2.warpAffine(tex, m.astype(np.float32), (hw, hh), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                   borderMode=cv2.BORDER_WRAP)
            out = layer if out is None else cv2.multiply(out, layer)
        out = np.sqrt(out) * 2.0 - 0.35
        return cv2.resize(out, (self.w, self.h), interpolation=cv2.INTER_LINEAR)

    def _clouds(self, t: float) -> np.ndarray | None:
        if self.cloud_tex is None:
            return None
        lw, lh = max(self.w // 8, 4), max(self.h // 8, 4)
        s = 128.0 / (lw * 1.5)
        off = self.current * t / 8.0 * s * 0.3
        m = np.array([[s, 0, off[0]], [0, s, off[1]]], np.float32)
        layer = cv2.warpAffine(self.cloud_tex, m, (lw, lh), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_WRAP)
        layer = cv2.resize(layer, (self.w, self.h), interpolation=cv2.INTER_LINEAR)
        return 1.0 + self.p.clouds * (layer * 2.0 - 1.0)

    def _snow(self, t: float, cam_vel: tuple[float, float]) -> np.ndarray | None:
        n = len(self.snow_pos)
        if n == 0:
            return None
        w, h = self.w, self.h
        parallax = 0.3 + 0.9 * (1.0 - self.snow_depth)  # near particles sweep past faster
        wobble = np.stack([np.sin(t * 1.3 + self.snow_phase), np.cos(t * 1.1 + self.snow_phase)], 1) * 3 * self.unit
        pos = self.snow_pos + (self.snow_vel + np.outer(parallax, cam_vel)) * t + wobble
        pos = np.mod(pos, [w, h])
        layer = np.zeros((h, w), np.float32)
        radius = (0.6 + 3.5 * (1.0 - self.snow_depth) ** 3) * self.unit
        bright = self.p.snow_brightness * (0.35 + 0.65 * self.snow_depth)
        xi = np.round(pos[:, 0] * 4).astype(np.int32)
        yi = np.round(pos[:, 1] * 4).astype(np.int32)
        ri = np.maximum(np.round(radius * 4).astype(np.int32), 2)
        for x, y, r, b in zip(xi.tolist(), yi.tolist(), ri.tolist(), bright.tolist()):
            cv2.circle(layer, (x, y), r, b, -1, cv2.LINE_AA, shift=2)
        return cv2.GaussianBlur(layer, (5, 5), 0)

    # ---------------------------------------------------------------------------------------- frame
    def apply(self, scene: np.ndarray, frame_index: int, fps: float, cam: np.ndarray, zoom: float,
              cam_vel: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
        """Turn the rendered seabed+objects (uint8 RGB) into the camera image (uint8 RGB)."""
        p = self.p
        t = frame_index / fps
        # motion blur along the apparent ground motion (box blur: O(1) per pixel at any length)
        blur = np.abs(np.array(cam_vel)) * p.exposure_s
        kx, ky = int(round(blur[0])), int(round(blur[1]))
        if kx > 1 or ky > 1:
            scene = cv2.blur(scene, (max(kx, 1), max(ky, 1)))
        sigma = p.defocus * self.unit
        if sigma > 0.3:
            scene = cv2.GaussianBlur(scene, (0, 0), sigma)
        img = scene.astype(np.float32)

        light = self.base_light
        caus = self._caustics(t, cam)
        if caus is not None:
            light = light + self.caustic_weight * caus
        path = p.distance / zoom * self.row_path                              # (H,)
        trans = np.exp(-np.outer(path, p.beta)).astype(np.float32)            # (H, 3)
        veil = np.asarray(p.veil, np.float32) * (1.0 - trans)                 # (H, 3)
        scatter = self.scatter
        clouds = self._clouds(t)
        if clouds is not None:
            scatter = scatter * clouds

        # auto exposure + partial white balance from the expected mean colour (no full-frame statistics)
        mean_j = 0.42 * 255.0
        mean_rgb = mean_j / 255.0 * float(light.mean()) * trans.mean(0) + veil.mean(0) * float(scatter.mean())
        wb = (mean_rgb.mean() / np.maximum(mean_rgb, 1e-3)) ** p.white_balance
        gain = p.target_mean / max(float((mean_rgb * wb).mean()), 1e-3)
        gain = float(np.clip(gain, 0.3, 8.0))
        chan = (wb * gain).astype(np.float32)                                 # (3,)

        mult = trans * chan / 255.0                                           # (H, 3), pixels are 0..255
        add = veil * chan                                                     # (H, 3)
        # planar per-channel passes are the fast path for OpenCV/numpy broadcasting
        planes = cv2.split(img)
        snow = self._snow(t, cam_vel)
        out = []
        noise = self.noise_tile[int(rng.integers(0, 16)):, int(rng.integers(0, 16)):][: self.h, : self.w]
        sig = p.noise_sigma * 255.0
        for c in range(3):
            v = cv2.multiply(planes[c], light)
            v *= mult[:, c:c + 1]
            v += scatter * add[:, c:c + 1]
            if snow is not None:
                v += snow * float(chan[c] / max(chan.mean(), 1e-6))
            v *= 255.0
            v += noise[..., c] * sig
            out.append(cv2.convertScaleAbs(np.maximum(v, 0)))
        rgb = cv2.merge(out)
        if p.jpeg_quality > 0:
            bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
            _, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(p.jpeg_quality)])
            rgb = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        return rgb
