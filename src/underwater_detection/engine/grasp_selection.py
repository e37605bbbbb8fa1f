"""Grasp-target selection: which detected object the manipulator should go for, held steadily, never stale.

Pure Python + numpy (OpenCV only for lens undistortion), so it is unit-tested without ROS; the grasp-target
node is a thin shell that feeds it ``vision_msgs`` detections and the ROS clock.

The rule
--------
1. **Eligible** detections: class in ``graspable_classes``, ``score >= min_score``, shorter box side
   ``>= min_size_px``. Everything else is ignored (starfish are predators we do not harvest, by default).
2. **Utility** of an eligible detection, a weighted mean of four terms in [0, 1]
   (weights ``weight_priority``, ``weight_score``, ``weight_size``, ``weight_reach``)::

       priority = (n - rank) / n           rank 0 = first class in graspable_classes, n = number of classes
       score    = the detector's score
       size     = min(1, sqrt(box area / image area) / size_saturation)      bigger = closer = easier
       reach    = max(0, 1 - d / reach_falloff)
                  d = distance from the box centre to the manipulator's reach area (a rectangle in
                  normalised image coordinates, 0 inside it), as a fraction of the image diagonal

3. **Hysteresis** (so the arm does not oscillate between two similar objects):
   * with no target, the best eligible detection becomes the target at once;
   * the target is followed by **track id** (``Detection2D.id`` from the detector's tracker); a detection
     without a track id is the same object if it has the same class and IoU >= ``iou_match`` with the
     target's last box;
   * while the target is seen, another object replaces it only if its utility beats the target's by more
     than ``switch_margin`` in ``switch_frames`` consecutive updates (the same challenger each time);
   * while the target is not seen (occluded, missed detection), the best eligible object replaces it after
     ``switch_frames`` consecutive updates (no margin: the target has no current utility).
4. **Nothing stale**: the target is dropped when it has not been seen for ``target_timeout_s``, checked at
   every update and by :meth:`GraspSelector.current` (the node calls it from a timer, so a target expires
   even when no detections arrive at all), and when the clock goes backwards. Time is whatever clock the
   caller passes (the node uses its ROS clock at *reception*, which is also correct under ``use_sim_time``;
   image stamps would make a bag recorded last year look stale).

Bearing
-------
:func:`bearing_ray` turns a pixel into a unit ray in the camera optical frame (x right, y down, z forward)
from ``K``. With distortion coefficients ``D`` (``plumb_bob`` / ``rational_polynomial`` order, as in
``sensor_msgs/CameraInfo``) the pixel is undistorted first (OpenCV); without them (or all zero) it is a plain
pinhole model, exact for rectified images (``image_rect``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Iterable, Sequence

import numpy as np

from ..data.class_names import normalize_class_name
from ..ops.box_overlap import iou_matrix


@dataclass(frozen=True)
class GraspCandidate:
    """One detection as the selector sees it. ``payload`` carries the caller's original message along."""

    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in image pixels
    class_name: str
    score: float
    track_id: str = ""  # "" = untracked
    payload: Any = field(default=None, compare=False, repr=False)

    @property
    def center(self) -> tuple[float, float]:
        x1, y1, x2, y2 = self.box
        return (x1 + x2) / 2.0, (y1 + y2) / 2.0

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]


@dataclass
class GraspConfig:
    """Selection parameters (the node reads them from ``config/grasp_target.yaml``)."""

    graspable_classes: tuple[str, ...] = ("sea_cucumber", "sea_urchin", "scallop")  # priority order
    min_score: float = 0.5
    min_size_px: float = 8.0
    reach_area: tuple[float, float, float, float] = (0.3, 0.55, 0.7, 1.0)  # normalised x1, y1, x2, y2
    weight_priority: float = 1.0
    weight_score: float = 1.0
    weight_size: float = 0.5
    weight_reach: float = 1.5
    size_saturation: float = 0.2
    reach_falloff: float = 0.5
    switch_margin: float = 0.15
    switch_frames: int = 3
    target_timeout_s: float = 1.0
    iou_match: float = 0.3

    def __post_init__(self) -> None:
        self.graspable_classes = tuple(str(c) for c in self.graspable_classes)
        self.reach_area = tuple(float(v) for v in self.reach_area)  # type: ignore[assignment]
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field (the node refuses a parameter update with it)."""
        if not self.graspable_classes:
            raise ValueError("graspable_classes must name at least one class")
        keys = [normalize_class_name(c) for c in self.graspable_classes]
        if len(set(keys)) != len(keys):
            raise ValueError(f"graspable_classes has duplicates: {list(self.graspable_classes)}")
        if len(self.reach_area) != 4:
            raise ValueError(f"reach_area must be [x1, y1, x2, y2] in [0, 1], got {list(self.reach_area)}")
        x1, y1, x2, y2 = self.reach_area
        if not (0 <= x1 <= x2 <= 1 and 0 <= y1 <= y2 <= 1):
            raise ValueError(f"reach_area must be [x1, y1, x2, y2] with 0 <= x1 <= x2 <= 1 and 0 <= y1 <= y2 <= 1, "
                             f"got {list(self.reach_area)}")
        checks = [
            ("min_score", 0.0 <= self.min_score <= 1.0, "in [0, 1]"),
            ("min_size_px", self.min_size_px >= 0.0, ">= 0"),
            ("size_saturation", self.size_saturation > 0.0, "> 0"),
            ("reach_falloff", self.reach_falloff > 0.0, "> 0"),
            ("switch_margin", self.switch_margin >= 0.0, ">= 0"),
            ("switch_frames", int(self.switch_frames) == self.switch_frames and self.switch_frames >= 1, "an integer >= 1"),
            ("target_timeout_s", self.target_timeout_s > 0.0, "> 0"),
            ("iou_match", 0.0 < self.iou_match <= 1.0, "in (0, 1]"),
        ]
        weights = ("weight_priority", "weight_score", "weight_size", "weight_reach")
        checks += [(w, getattr(self, w) >= 0.0, ">= 0") for w in weights]
        for name, ok, rule in checks:
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and ok):
                raise ValueError(f"{name} must be {rule}, got {value!r}")
        if sum(getattr(self, w) for w in weights) <= 0:
            raise ValueError(f"at least one of {', '.join(weights)} must be > 0")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "GraspConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown grasp selection option(s) {unknown}; known: {sorted(known)}")
        return cls(**values)


@dataclass(frozen=True)
class GraspDecision:
    """Result of one update. ``target`` is ``None`` or a detection *from this update* (never a stale one)."""

    target: GraspCandidate | None
    event: str  # "acquired", "kept", "switched", "held" (target unseen, lock kept), "lost" (timeout), "none"
    utility: float | None = None
    candidates: int = 0  # eligible detections in this update


def _overlap(a: Sequence[float], b: Sequence[float]) -> float:
    return float(iou_matrix(a, b)[0, 0])


class GraspSelector:
    """Stateful selection over successive detection sets of one camera (see the module docstring)."""

    def __init__(self, config: GraspConfig | None = None) -> None:
        self.config = config or GraspConfig()
        self.reset()

    def reset(self) -> None:
        self.target: GraspCandidate | None = None
        self.target_utility: float | None = None
        self.last_seen: float | None = None
        self._challenger: str | None = None
        self._challenger_count = 0

    @property
    def config(self) -> GraspConfig:
        return self._config

    @config.setter
    def config(self, config: GraspConfig) -> None:
        config.validate()
        self._config = config
        self._rank = {normalize_class_name(c): i for i, c in enumerate(config.graspable_classes)}

    # ----------------------------------------------------------------------------- scoring
    def eligible(self, candidates: Iterable[GraspCandidate]) -> list[GraspCandidate]:
        c = self.config
        return [d for d in candidates
                if normalize_class_name(d.class_name) in self._rank and d.score >= c.min_score
                and min(d.width, d.height) >= c.min_size_px]

    def utility(self, cand: GraspCandidate, image_size: tuple[int, int]) -> float:
        """Weighted mean of the priority, score, size and reach terms, in [0, 1]. ``image_size`` = (w, h)."""
        c = self.config
        w, h = float(image_size[0]), float(image_size[1])
        if w <= 0 or h <= 0:
            raise ValueError(f"image size must be positive, got {image_size}")
        n = len(self._rank)
        rank = self._rank.get(normalize_class_name(cand.class_name), n)
        priority = (n - rank) / n
        size = min(1.0, math.sqrt(max(cand.width, 0.0) * max(cand.height, 0.0) / (w * h)) / c.size_saturation)
        u, v = cand.center
        ax1, ay1, ax2, ay2 = c.reach_area
        dx = max(ax1 * w - u, 0.0, u - ax2 * w)
        dy = max(ay1 * h - v, 0.0, v - ay2 * h)
        distance = math.hypot(dx, dy) / math.hypot(w, h)
        reach = max(0.0, 1.0 - distance / c.reach_falloff)
        terms = ((c.weight_priority, priority), (c.weight_score, min(max(cand.score, 0.0), 1.0)),
                 (c.weight_size, size), (c.weight_reach, reach))
        return sum(wt * t for wt, t in terms) / sum(wt for wt, _ in terms)

    # ----------------------------------------------------------------------------- identity
    def _key(self, cand: GraspCandidate) -> str:
        if cand.track_id:
            return f"track:{cand.track_id}"
        x1, y1, x2, y2 = cand.box
        return f"box:{normalize_class_name(cand.class_name)}:{round(x1)}:{round(y1)}:{round(x2)}:{round(y2)}"

    def _is_target(self, cand: GraspCandidate) -> bool:
        t = self.target
        if t is None:
            return False
        if t.track_id and cand.track_id:
            return t.track_id == cand.track_id
        return (normalize_class_name(t.class_name) == normalize_class_name(cand.class_name)
                and _overlap(t.box, cand.box) >= self.config.iou_match)

    def _is_challenger(self, cand: GraspCandidate) -> bool:
        """Untracked challengers cannot keep a key from frame to frame; they match by box overlap instead."""
        if self._challenger is None:
            return False
        if cand.track_id:
            return self._challenger == self._key(cand)
        if not self._challenger.startswith("box:"):
            return False
        _, name, *coords = self._challenger.split(":")
        return (name == normalize_class_name(cand.class_name)
                and _overlap([float(v) for v in coords], cand.box) >= self.config.iou_match)

    # ----------------------------------------------------------------------------- updates
    def current(self, now: float) -> GraspCandidate | None:
        """The target if it was seen within ``target_timeout_s`` of ``now``; drops it otherwise, and when the clock
        went backwards (a looping bag under ``use_sim_time``, a stepped system clock): its age is then unknown."""
        if self.target is not None and self.last_seen is not None:
            age = now - self.last_seen
            if age > self.config.target_timeout_s or age < 0:
                self.reset()
        return self.target

    def update(self, candidates: Sequence[GraspCandidate], now: float, image_size: tuple[int, int]) -> GraspDecision:
        """Feed one frame's detections (all of them; filtering happens here) seen at time ``now`` (seconds)."""
        timed_out = self.target is not None and self.current(now) is None
        pool = self.eligible(candidates)
        scored = sorted(((self.utility(d, image_size), d) for d in pool), key=lambda x: -x[0])
        if self.target is None:
            if not scored:
                return GraspDecision(None, "lost" if timed_out else "none", None, 0)
            return self._take(scored[0], now, "acquired", len(scored))

        mine = [(u, d) for u, d in scored if self._is_target(d)]
        others = [(u, d) for u, d in scored if not self._is_target(d)]
        if mine:
            u_t, d_t = mine[0]
            self.target, self.target_utility, self.last_seen = d_t, u_t, now
            best = others[0] if others else None
            if best is not None and best[0] > u_t + self.config.switch_margin and self._count_challenger(best[1]):
                return self._take(best, now, "switched", len(scored))
            if best is None or best[0] <= u_t + self.config.switch_margin:
                self._challenger, self._challenger_count = None, 0
            return GraspDecision(d_t, "kept", u_t, len(scored))
        # target not seen in this frame: keep the lock, let a steady challenger take over
        if others and self._count_challenger(others[0][1]):
            return self._take(others[0], now, "switched", len(scored))
        if not others:
            self._challenger, self._challenger_count = None, 0
        return GraspDecision(None, "held", None, len(scored))

    def _count_challenger(self, cand: GraspCandidate) -> bool:
        """Count consecutive updates in which ``cand`` is the best challenger; True once it has enough."""
        if self._is_challenger(cand):
            self._challenger_count += 1
        else:
            self._challenger_count = 1
        self._challenger = self._key(cand)
        return self._challenger_count >= self.config.switch_frames

    def _take(self, scored: tuple[float, GraspCandidate], now: float, event: str, n: int) -> GraspDecision:
        utility, cand = scored
        self.target, self.target_utility, self.last_seen = cand, utility, now
        self._challenger, self._challenger_count = None, 0
        return GraspDecision(cand, event, utility, n)


# --------------------------------------------------------------------------------------------- geometry
def bearing_ray(u: float, v: float, k: Sequence[float] | np.ndarray, d: Sequence[float] | np.ndarray | None = None) -> np.ndarray:
    """Unit ray (x right, y down, z forward, camera optical frame) through pixel ``(u, v)``.

    ``k``: 3x3 camera matrix (or its 9 row-major values). ``d``: distortion coefficients; ``None``/all zero =
    undistorted pinhole (see the module docstring).
    """
    kk = np.asarray(k, np.float64).reshape(3, 3)
    fx, fy, cx, cy = kk[0, 0], kk[1, 1], kk[0, 2], kk[1, 2]
    if not (np.isfinite(kk).all() and fx > 0 and fy > 0):
        raise ValueError(f"camera matrix needs finite fx, fy > 0, got fx={fx}, fy={fy}")
    coeffs = None if d is None else np.asarray(d, np.float64).reshape(-1)
    if coeffs is not None and coeffs.size and np.any(coeffs != 0):
        if coeffs.size not in (4, 5, 8, 12, 14):
            raise ValueError(f"distortion needs 4, 5, 8, 12 or 14 coefficients, got {coeffs.size}")
        import cv2

        point = cv2.undistortPoints(np.array([[[u, v]]], np.float64), kk, coeffs)[0, 0]
        x, y = float(point[0]), float(point[1])
    else:
        # skew (k[0,1]) is honoured: x_n = (u - cx - s * y_n) / fx
        y = (v - cy) / fy
        x = (u - cx - kk[0, 1] * y) / fx
    ray = np.array([x, y, 1.0])
    return ray / np.linalg.norm(ray)
