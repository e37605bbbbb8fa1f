"""Objects on the seabed: where they are, how they move, how they are pasted, and the exact ground truth.

Ground truth comes from the pixels, not from shape parameters: every pasted sprite writes its track id into
an instance map wherever its (warped) alpha is at least one half, and later sprites overwrite earlier ones.
A box is the tight extent of an object's surviving pixels; its visible fraction is those pixels over the
pixels the whole sprite would cover at this pose, so borders and occlusion by objects *and* distractors
both count. Distractors write "background" (-1) into the map, so they occlude without creating boxes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .camera import CameraPath
from .sprites import CLASS_NAMES, Sprite, make_distractor_sprite, make_object_sprite

ALPHA_VISIBLE = 128  # an object owns a pixel when its warped alpha is >= 0.5
MAX_SPRITE_PX = 320.0  # sprites are drawn at most this large (then up-sampled when seen closer)

# Longest extent at the reference altitude for a 640-px-wide frame (log-uniform); a few are drawn larger.
SIZE_RANGES: dict[int, tuple[float, float]] = {0: (32.0, 90.0), 1: (16.0, 52.0), 2: (16.0, 52.0), 3: (20.0, 72.0)}
LARGE_PROBABILITY = 0.07
LARGE_FACTOR = (1.5, 2.3)
# Chance that an instance moves, and its speed range (world px per second at 640 px width).
MOVING = {3: (0.35, (1.0, 5.0)), 0: (0.15, (0.5, 2.0)), 1: (0.1, (0.3, 1.5))}


@dataclass
class SceneObject:
    """Something drawn on the seabed. ``track_id`` >= 0 for targets, -1 for distractors; positions and
    angles are per frame (most objects repeat one value)."""

    track_id: int
    label: int
    sprite: Sprite
    sprite_scale: float          # sprite pixels per world pixel
    positions: np.ndarray        # (T, 2) world px
    angles: np.ndarray           # (T,) radians
    floating: bool = False


@dataclass
class PasteStats:
    """Pixel counts of one pasted object: ``full`` = its whole sprite at this pose, ``in_image`` = the part
    inside the frame (before occlusion); ``roi`` = (x0, y0, x1, y1) of the pasted area, clipped."""

    full: int
    in_image: int
    roi: tuple[int, int, int, int]


@dataclass
class GroundTruth:
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    track_ids: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    visible: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))
    difficult: np.ndarray = field(default_factory=lambda: np.zeros((0,), bool))
    truncated: np.ndarray = field(default_factory=lambda: np.zeros((0,), bool))


# ------------------------------------------------------------------------------------------- pasting
def sprite_matrix(camera: np.ndarray, position: np.ndarray, angle: float, sprite_scale: float,
                  sprite: Sprite) -> np.ndarray:
    """2x3 affine from full-resolution sprite pixels to image pixels for an object at ``position`` (world)
    turned by ``angle``, seen through the world-to-image ``camera`` matrix."""
    side_h, side_w = sprite.levels[0].shape[:2]
    centre = np.array([(side_w - 1) / 2.0, (side_h - 1) / 2.0])
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s], [s, c]]) / sprite_scale
    a = camera[:, :2] @ rot
    t = camera[:, :2] @ (np.asarray(position, np.float64) - rot @ centre) + camera[:, 2]
    return np.hstack([a, t[:, None]])


def paste(image: np.ndarray, instance_map: np.ndarray, sprite: Sprite, matrix: np.ndarray, track_id: int,
          shadow: bool = True) -> PasteStats | None:
    """Alpha-composite ``sprite`` (premultiplied) into ``image`` in place with its contact shadow, and mark
    its pixels in ``instance_map`` with ``track_id``. Returns None when nothing of it lands in the frame."""
    height, width = image.shape[:2]
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    level = 0
    while level + 1 < len(sprite.levels) and scale * (2 ** (level + 1)) <= 1.0:
        level += 1
    rgba = sprite.levels[level]
    m = matrix.copy()
    m[:, :2] *= 2 ** level
    h, w = rgba.shape[:2]
    corners = m @ np.array([[0, w - 1, 0, w - 1], [0, 0, h - 1, h - 1], [1, 1, 1, 1]], np.float64)
    x0, y0 = int(np.floor(corners[0].min())) - 1, int(np.floor(corners[1].min())) - 1
    x1, y1 = int(np.ceil(corners[0].max())) + 2, int(np.ceil(corners[1].max())) + 2
    if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
        return None
    local = m.copy()
    local[:, 2] -= (x0, y0)
    size = (x1 - x0, y1 - y0)
    warped = cv2.warpAffine(rgba, local, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    owned = warped[..., 3] >= ALPHA_VISIBLE
    full = int(np.count_nonzero(owned))
    if full == 0:
        return None
    ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    sl = (slice(iy0 - y0, iy1 - y0), slice(ix0 - x0, ix1 - x0))
    sub = warped[sl]
    keep = 1.0 - sub[..., 3].astype(np.float32) * (1.0 / 255.0)
    if shadow:
        sh = cv2.warpAffine(sprite.shadows[level], local, size, flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)[sl]
        keep *= 1.0 - sh.astype(np.float32) * (1.0 / 255.0)
    roi = image[iy0:iy1, ix0:ix1]
    out = roi.astype(np.float32) * keep[..., None] + sub[..., :3]
    roi[...] = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    mask = owned[sl]
    instance_map[iy0:iy1, ix0:ix1][mask] = track_id
    return PasteStats(full, int(np.count_nonzero(mask)), (ix0, iy0, ix1, iy1))


def measure_ground_truth(instance_map: np.ndarray, stats: dict[int, PasteStats], labels: dict[int, int],
                         visibility_threshold: float) -> GroundTruth:
    """Boxes, visible fractions and flags of every object that still owns at least one pixel."""
    rows: list[tuple] = []
    for tid in sorted(stats):
        st = stats[tid]
        x0, y0, x1, y1 = st.roi
        sub = instance_map[y0:y1, x0:x1] == tid
        visible = int(np.count_nonzero(sub))
        if visible == 0:
            continue
        ys = np.flatnonzero(sub.any(axis=1))
        xs = np.flatnonzero(sub.any(axis=0))
        box = (x0 + xs[0], y0 + ys[0], x0 + xs[-1] + 1, y0 + ys[-1] + 1)  # pixel edges: x2 = last column + 1
        frac = visible / st.full
        rows.append((box, labels[tid], tid, frac, frac < visibility_threshold, st.in_image < st.full))
    if not rows:
        return GroundTruth()
    return GroundTruth(
        boxes=np.array([r[0] for r in rows], np.float32),
        labels=np.array([r[1] for r in rows], np.int64),
        track_ids=np.array([r[2] for r in rows], np.int64),
        visible=np.array([r[3] for r in rows], np.float32),
        difficult=np.array([r[4] for r in rows], bool),
        truncated=np.array([r[5] for r in rows], bool),
    )


def render_objects(image: np.ndarray, objects: list[SceneObject], frame: int, camera: np.ndarray,
                   visibility_threshold: float) -> tuple[np.ndarray, GroundTruth]:
    """Paste all ``objects`` (already in drawing order) at ``frame``; returns the instance map and GT."""
    instance_map = np.full(image.shape[:2], -1, np.int32)
    stats: dict[int, PasteStats] = {}
    labels: dict[int, int] = {}
    for obj in objects:
        m = sprite_matrix(camera, obj.positions[frame], float(obj.angles[frame]), obj.sprite_scale, obj.sprite)
        st = paste(image, instance_map, obj.sprite, m, obj.track_id, shadow=not obj.floating)
        if st is not None and obj.track_id >= 0:
            stats[obj.track_id] = st
            labels[obj.track_id] = obj.label
    return instance_map, measure_ground_truth(instance_map, stats, labels, visibility_threshold)


# ------------------------------------------------------------------------------------------- placement
def coverage_cells(path: CameraPath, width: int, height: int, world_w: int, world_h: int,
                   cell: float) -> np.ndarray:
    """Centres (N, 2) of world grid cells that some frame of the path sees (or nearly sees)."""
    gx = np.arange(cell / 2, world_w, cell)
    gy = np.arange(cell / 2, world_h, cell)
    pts = np.stack(np.meshgrid(gx, gy), -1).reshape(-1, 2)
    seen = np.zeros(len(pts), bool)
    margin = cell
    step = max(1, len(path) // 50)
    for i in range(0, len(path), step):
        cam = path.matrix(i, width, height)
        img = pts @ cam[:, :2].T + cam[:, 2]
        seen |= (img[:, 0] > -margin) & (img[:, 0] < width + margin) & (img[:, 1] > -margin) & (img[:, 1] < height + margin)
    return pts[seen]


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _motion(rng: np.random.Generator, start: np.ndarray, angle: float, speed: float, t: np.ndarray,
            turn_std: float) -> tuple[np.ndarray, np.ndarray]:
    """A slow wandering walk: heading drifts smoothly, the body turns with the heading."""
    heading = angle + np.cumsum(rng.normal(0, turn_std, len(t))) * (t[1] - t[0] if len(t) > 1 else 0.0)
    heading = heading + 0.4 * np.sin(t * rng.uniform(0.1, 0.4) + rng.uniform(0, 6.3))
    dt = np.diff(t, prepend=t[0])
    step = np.stack([np.cos(heading), np.sin(heading)], 1) * (speed * dt)[:, None]
    return start + np.cumsum(step, 0), heading


def populate(rng: np.random.Generator, path: CameraPath, width: int, height: int, world_w: int, world_h: int,
             unit: float, objects_per_view: float, distractors_per_view: float, weed_per_view: float,
             clusters_per_view: float, moving: bool, object_scale: float = 1.0) -> list[SceneObject]:
    """``object_scale`` multiplies the size of targets and distractors (not of weed), e.g. to match a
    detector's input resolution and anchors without changing the scene layout.

    Place targets (scattered and in overlapping clusters), static distractors and drifting weed over the
    part of the world the camera sees; returns them in drawing order (weed last: it floats above)."""
    t = np.arange(len(path)) / path.fps
    n_frames = len(path)
    cell = 24.0 * unit
    cells = coverage_cells(path, width, height, world_w, world_h, cell)
    if len(cells) == 0:
        return []
    view_area = float(width * height)
    views = len(cells) * cell * cell / view_area
    sprite_scale = float(min(max(np.max(path.zoom), 1.0), 2.5))

    def where(n: int) -> np.ndarray:
        return cells[rng.integers(0, len(cells), n)] + rng.uniform(-cell / 2, cell / 2, (n, 2))

    class_w = 0.5 * rng.dirichlet(np.full(len(CLASS_NAMES), 2.0)) + 0.5 / len(CLASS_NAMES)
    total = int(rng.poisson(objects_per_view * views))
    n_clusters = int(rng.poisson(clusters_per_view * views))
    placements: list[tuple[np.ndarray, int]] = []
    budget = int(round(total * rng.uniform(0.3, 0.6))) if n_clusters else 0  # objects that go into clusters
    for centre in where(n_clusters):
        if budget <= 0:
            break
        dominant = int(rng.choice(len(CLASS_NAMES), p=class_w))
        members = min(2 + int(rng.poisson(3)), max(budget, 2))
        budget -= members
        spread = rng.uniform(8, 30) * unit
        for _ in range(members):
            label = dominant if rng.random() < 0.75 else int(rng.choice(len(CLASS_NAMES), p=class_w))
            placements.append((centre + rng.normal(0, spread, 2), label))
    for p in where(max(total - len(placements), 0)):
        placements.append((p, int(rng.choice(len(CLASS_NAMES), p=class_w))))

    items: list[tuple[float, SceneObject]] = []
    for tid, (pos, label) in enumerate(placements):
        lo, hi = SIZE_RANGES[label]
        size = _log_uniform(rng, lo, hi) * unit * object_scale
        if rng.random() < LARGE_PROBABILITY:
            size *= rng.uniform(*LARGE_FACTOR)
        size_px = min(size * sprite_scale, MAX_SPRITE_PX)
        sprite = make_object_sprite(label, size_px, rng)
        scale = size_px / size
        angle = float(rng.uniform(0, 2 * np.pi))
        positions = np.repeat(pos[None], n_frames, 0)
        angles = np.full(n_frames, angle)
        prob, speeds = MOVING.get(label, (0.0, (0.0, 0.0)))
        if moving and n_frames > 1 and rng.random() < prob:
            speed = rng.uniform(*speeds) * unit
            positions, heading = _motion(rng, pos, angle, speed, t, 0.3)
            angles = angle + (heading - heading[0]) * 0.8
        items.append((float(rng.random()), SceneObject(tid, label, sprite, scale, positions, angles)))

    for pos in where(int(rng.poisson(distractors_per_view * views))):
        kind = str(rng.choice(["rock", "rock", "pale_stone", "sponge"]))
        size = _log_uniform(rng, 12.0, 70.0) * unit * object_scale
        size_px = min(size * sprite_scale, MAX_SPRITE_PX)
        sprite = make_distractor_sprite(kind, size_px, rng)
        scale = size_px / size
        angle = float(rng.uniform(0, 2 * np.pi))
        items.append((float(rng.random()), SceneObject(-1, -1, sprite, scale, np.repeat(pos[None], n_frames, 0),
                                                        np.full(n_frames, angle))))
    items.sort(key=lambda it: it[0])
    ordered = [obj for _, obj in items]

    current = rng.uniform(-1, 1, 2)
    current = current / max(np.linalg.norm(current), 1e-6) * rng.uniform(5, 25) * unit
    duration = t[-1] if n_frames > 1 else 0.0
    for pos in where(int(rng.poisson(weed_per_view * views))):
        size = _log_uniform(rng, 20.0, 90.0) * unit
        size_px = min(size * sprite_scale, MAX_SPRITE_PX)
        sprite = make_distractor_sprite("weed", size_px, rng)
        scale = size_px / size
        vel = current + rng.normal(0, 4, 2) * unit
        start = pos - vel * duration / 2
        positions = start + np.outer(t, vel) + np.stack([np.sin(t * 1.3), np.cos(t * 0.9)], 1) * 4 * unit
        angles = rng.uniform(0, 2 * np.pi) + rng.normal(0, 0.4) * t
        ordered.append(SceneObject(-1, -1, sprite, scale, positions, angles, floating=True))
    return ordered
