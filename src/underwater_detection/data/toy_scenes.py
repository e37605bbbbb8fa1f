"""A tiny, deterministic set of drawn scenes with exact boxes, for end-to-end sanity checks.

This is *not* the synthetic underwater benchmark (that generator models water, seabed and camera motion);
it is the smallest data that still exercises every class, several objects per image and a range of sizes,
so a short overfitting run can prove that the losses, the box coding and the decoding agree end to end.
Boxes are measured from the drawn pixels, not from the shape parameters, so they are exact.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MARINE_CLASSES: tuple[str, ...] = ("sea_cucumber", "sea_urchin", "scallop", "starfish")


@dataclass
class Scene:
    """``image`` HxWx3 uint8 **RGB**; ``boxes`` (N, 4) pixel ``(x1, y1, x2, y2)``; ``labels`` (N,) int64."""

    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray


def _star(cx: float, cy: float, r_out: float, r_in: float, angle: float, points: int = 5) -> np.ndarray:
    t = angle + np.arange(2 * points) * np.pi / points
    r = np.where(np.arange(2 * points) % 2 == 0, r_out, r_in)
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1).round().astype(np.int32)


def _draw_object(mask: np.ndarray, label: int, cx: int, cy: int, size: int, rng: np.random.Generator) -> None:
    """Draw class ``label`` into a binary mask; shapes are distinctive enough to learn in a few hundred steps."""
    angle = float(rng.uniform(0, 180))
    if label == 0:  # sea cucumber: elongated ellipse
        cv2.ellipse(mask, (cx, cy), (size // 2, max(size // 5, 3)), angle, 0, 360, 1, -1)
    elif label == 1:  # sea urchin: disc with spines
        cv2.circle(mask, (cx, cy), size // 3, 1, -1)
        for a in np.linspace(0, 2 * np.pi, 12, endpoint=False):
            end = (int(cx + size / 2 * np.cos(a)), int(cy + size / 2 * np.sin(a)))
            cv2.line(mask, (cx, cy), end, 1, 2)
    elif label == 2:  # scallop: half disc (fan)
        cv2.ellipse(mask, (cx, cy), (size // 2, size // 2), angle, 180, 360, 1, -1)
    else:  # starfish: five-pointed star
        cv2.fillPoly(mask, [_star(cx, cy, size / 2, size / 5, np.deg2rad(angle))], 1)


_COLOURS = {0: (120, 80, 50), 1: (40, 20, 60), 2: (230, 210, 170), 3: (240, 120, 40)}


def make_scene(
    seed: int,
    height: int = 256,
    width: int = 256,
    max_objects: int = 4,
    size_range: tuple[int, int] = (28, 96),
    first_label: int | None = None,
) -> Scene:
    """``first_label`` fixes the class of the first object, so a handful of scenes can cover every class."""
    rng = np.random.default_rng(seed)
    # Smooth blue-green background with mild noise: textured enough that "everything non-blue" is not a rule.
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([20 + 30 * yy / height, 90 + 60 * xx / width, 110 + 40 * yy / height], axis=-1)
    image = np.clip(base + rng.normal(0, 8, size=base.shape), 0, 255).astype(np.uint8)

    boxes, labels = [], []
    occupied = np.zeros((height, width), np.uint8)
    for index in range(int(rng.integers(1, max_objects + 1))):
        label = int(rng.integers(0, len(MARINE_CLASSES)))
        if index == 0 and first_label is not None:
            label = first_label % len(MARINE_CLASSES)
        for _attempt in range(30):
            size = int(rng.integers(*size_range))
            cx = int(rng.integers(size // 2 + 2, width - size // 2 - 2))
            cy = int(rng.integers(size // 2 + 2, height - size // 2 - 2))
            mask = np.zeros((height, width), np.uint8)
            _draw_object(mask, label, cx, cy, size, rng)
            ys, xs = np.nonzero(mask)
            if ys.size < 20 or (occupied[ys, xs] > 0).any():
                continue
            occupied[ys, xs] = 1
            colour = np.array(_COLOURS[label], np.float32) + rng.normal(0, 10, 3)
            image[ys, xs] = np.clip(colour, 0, 255).astype(np.uint8)
            boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            labels.append(label)
            break
    return Scene(image=image, boxes=np.asarray(boxes, np.float32).reshape(-1, 4), labels=np.asarray(labels, np.int64))


def make_scenes(count: int, seed: int = 0, **kwargs: object) -> list[Scene]:
    """``count`` scenes; scene i starts with class ``i mod 4`` so every class appears once count >= 4."""
    return [make_scene(seed * 100_003 + i, first_label=i, **kwargs) for i in range(count)]  # type: ignore[arg-type]


@dataclass
class _Sprite:
    mask: np.ndarray  # cropped boolean mask
    colour: np.ndarray
    label: int
    x: float
    y: float
    vx: float
    vy: float


def make_sequence(
    seed: int,
    num_frames: int,
    height: int = 256,
    width: int = 256,
    num_objects: int = 4,
    size_range: tuple[int, int] = (28, 80),
    max_speed: float = 3.0,
) -> list[Scene]:
    """A short video: ``num_objects`` drawn objects (object i has class ``i mod 4``) drifting at constant
    velocity (up to ``max_speed`` px/frame, bouncing off the borders) over a fixed background with fresh
    sensor noise per frame. Enough motion that stale references matter at k = 4-8, little enough to track."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([20 + 30 * yy / height, 90 + 60 * xx / width, 110 + 40 * yy / height], axis=-1)
    sprites: list[_Sprite] = []
    for index in range(num_objects):
        label = index % len(MARINE_CLASSES)
        size = int(rng.integers(*size_range))
        canvas = np.zeros((size + 8, size + 8), np.uint8)
        _draw_object(canvas, label, (size + 8) // 2, (size + 8) // 2, size, rng)
        ys, xs = np.nonzero(canvas)
        mask = canvas[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].astype(bool)
        h, w = mask.shape
        for _attempt in range(50):  # start apart (8 px margin); they may still meet later, as real ones do
            x, y = float(rng.uniform(0, width - w)), float(rng.uniform(0, height - h))
            if all(
                x + w + 8 <= o.x or o.x + o.mask.shape[1] + 8 <= x or y + h + 8 <= o.y or o.y + o.mask.shape[0] + 8 <= y
                for o in sprites
            ):
                break
        sprites.append(
            _Sprite(
                mask=mask,
                colour=np.array(_COLOURS[label], np.float32) + rng.normal(0, 10, 3),
                label=label,
                x=x,
                y=y,
                vx=float(rng.uniform(-max_speed, max_speed)),
                vy=float(rng.uniform(-max_speed, max_speed)),
            )
        )
    frames = []
    for _ in range(num_frames):
        image = np.clip(base + rng.normal(0, 6, size=base.shape), 0, 255).astype(np.uint8)
        boxes, labels = [], []
        for s in sprites:
            h, w = s.mask.shape
            x0, y0 = int(round(s.x)), int(round(s.y))
            region = image[y0 : y0 + h, x0 : x0 + w]
            region[s.mask] = np.clip(s.colour, 0, 255).astype(np.uint8)
            boxes.append([x0, y0, x0 + w, y0 + h])
            labels.append(s.label)
            # advance, bouncing off the borders so every object stays fully visible
            s.x += s.vx
            s.y += s.vy
            if not 0 <= s.x <= width - w:
                s.vx = -s.vx
                s.x = float(np.clip(s.x, 0, width - w))
            if not 0 <= s.y <= height - h:
                s.vy = -s.vy
                s.y = float(np.clip(s.y, 0, height - h))
        frames.append(Scene(image=image, boxes=np.asarray(boxes, np.float32), labels=np.asarray(labels, np.int64)))
    return frames
