"""The ROV camera trajectory over the seabed plane and the world-to-image mapping.

The camera is modelled as looking (nearly) straight down at a flat seabed, so one frame is a similarity
transform of the world: translation (drift over the ground), rotation (yaw) and scale (altitude: lower
means larger objects). That keeps rendering to one ``warpAffine`` per frame and makes every object's image
transform exact, which is what exact ground-truth boxes need. The trajectory mixes what a pilot does while
surveying: a steady drift, slow wandering, yaw turns, approaches (descending, objects grow) and climbs, and
a little high-frequency bobbing. Speeds are in world pixels per *second*, so the frame rate changes the
per-frame motion (and motion blur) but not the path.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class CameraPath:
    """Per-frame pose: view centre ``(cx, cy)`` in world pixels, ``yaw`` (rad), ``zoom`` (image px per
    world px; 1 at the reference altitude, larger when the ROV is lower)."""

    cx: np.ndarray
    cy: np.ndarray
    yaw: np.ndarray
    zoom: np.ndarray
    fps: float

    def __len__(self) -> int:
        return len(self.cx)

    def matrix(self, i: int, width: int, height: int) -> np.ndarray:
        """2x3 affine mapping world pixel coordinates to image pixel coordinates at frame ``i``."""
        return world_to_image(float(self.cx[i]), float(self.cy[i]), float(self.yaw[i]), float(self.zoom[i]),
                              width, height)

    def image_velocity(self, i: int) -> tuple[float, float]:
        """Apparent velocity of the ground at the image centre (image px per second), for motion blur."""
        j0, j1 = max(i - 1, 0), min(i + 1, len(self) - 1)
        if j1 == j0:
            return 0.0, 0.0
        dt = (j1 - j0) / self.fps
        vx = (self.cx[j1] - self.cx[j0]) / dt
        vy = (self.cy[j1] - self.cy[j0]) / dt
        c, s, z = np.cos(self.yaw[i]), np.sin(self.yaw[i]), self.zoom[i]
        # the ground moves opposite to the camera
        return float(-z * (c * vx + s * vy)), float(-z * (-s * vx + c * vy))


def world_to_image(cx: float, cy: float, yaw: float, zoom: float, width: int, height: int) -> np.ndarray:
    """Similarity transform ``image = zoom * R(-yaw) (world - c) + image_centre`` as a 2x3 float64 matrix."""
    c, s = np.cos(yaw), np.sin(yaw)
    a = np.array([[c, s], [-s, c]]) * zoom
    t = np.array([width / 2.0, height / 2.0]) - a @ np.array([cx, cy])
    return np.hstack([a, t[:, None]])


def sample_camera_path(rng: np.random.Generator, num_frames: int, fps: float, unit: float,
                       zoom_range: tuple[float, float] = (0.75, 1.6)) -> CameraPath:
    """A smooth random survey trajectory; ``unit`` scales speeds with the output resolution."""
    t = np.arange(num_frames, dtype=np.float64) / fps
    behaviour = rng.choice(["transect", "hover", "approach", "climb", "turn"], p=[0.35, 0.15, 0.25, 0.1, 0.15])
    speed = {"transect": rng.uniform(35, 90), "hover": rng.uniform(2, 12), "approach": rng.uniform(10, 40),
             "climb": rng.uniform(15, 45), "turn": rng.uniform(10, 40)}[str(behaviour)] * unit
    heading = rng.uniform(0, 2 * np.pi)
    vx, vy = speed * np.cos(heading), speed * np.sin(heading)
    cx = vx * t
    cy = vy * t
    for _ in range(2):  # slow wander
        amp = rng.uniform(5, 45) * unit
        period = rng.uniform(3, 14)
        cx = cx + amp * np.sin(2 * np.pi * t / period + rng.uniform(0, 6.3))
        cy = cy + amp * np.sin(2 * np.pi * t / period * rng.uniform(0.7, 1.3) + rng.uniform(0, 6.3))
    # high-frequency bobbing: a sum of a few quick sinusoids (smooth, unlike white noise)
    for _ in range(3):
        amp = rng.uniform(0.2, 1.5) * unit
        f = rng.uniform(0.4, 1.5)
        cx = cx + amp * np.sin(2 * np.pi * f * t + rng.uniform(0, 6.3))
        cy = cy + amp * np.sin(2 * np.pi * f * t + rng.uniform(0, 6.3))

    yaw_rate = rng.normal(0, 0.04) + (rng.choice([-1, 1]) * rng.uniform(0.1, 0.3) if behaviour == "turn" else 0.0)
    yaw = rng.uniform(0, 2 * np.pi) + yaw_rate * t + rng.uniform(0, 0.08) * np.sin(2 * np.pi * t / rng.uniform(2, 8))

    lo, hi = np.log(zoom_range[0]), np.log(zoom_range[1])
    duration = max(t[-1], 1e-6) if num_frames > 1 else 1.0
    ramp = np.clip(t / duration, 0, 1)
    ramp = ramp * ramp * (3 - 2 * ramp)
    if behaviour == "approach":
        z0 = rng.uniform(lo, lo + 0.4 * (hi - lo))
        z1 = z0 + rng.uniform(0.25, 0.6)
    elif behaviour == "climb":
        z0 = rng.uniform(lo + 0.4 * (hi - lo), hi)
        z1 = z0 - rng.uniform(0.2, 0.5)
    else:
        z0 = rng.uniform(lo + 0.1 * (hi - lo), hi - 0.2 * (hi - lo))
        z1 = z0 + rng.normal(0, 0.08)
    logz = z0 + (z1 - z0) * ramp + rng.uniform(0.0, 0.05) * np.sin(2 * np.pi * t / rng.uniform(2, 6) + rng.uniform(0, 6.3))
    zoom = np.exp(np.clip(logz, lo, hi))
    return CameraPath(cx.astype(np.float64), cy.astype(np.float64), yaw.astype(np.float64), zoom.astype(np.float64),
                      float(fps))
