"""A picture grid of frames with their ground-truth boxes, for the README and for eyeballing realism.

Difficult (mostly hidden) objects are drawn with dashed boxes so a reader sees at once what evaluation
ignores. Drawing uses OpenCV only (no matplotlib figure machinery) so it also works in worker processes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from .sequence import Frame, SequenceConfig, SyntheticSequence
from .sprites import CLASS_NAMES

# RGB colours per class index (distinct on blue-green water)
CLASS_COLOURS: tuple[tuple[int, int, int], ...] = ((255, 200, 0), (255, 60, 255), (255, 255, 255), (255, 70, 40))


def _dashed_rect(img: np.ndarray, p0: tuple[int, int], p1: tuple[int, int], colour, thickness: int, dash: int = 5) -> None:
    (x0, y0), (x1, y1) = p0, p1
    for a, b, horizontal, fixed in ((x0, x1, True, y0), (x0, x1, True, y1), (y0, y1, False, x0), (y0, y1, False, x1)):
        for s in range(a, b, 2 * dash):
            e = min(s + dash, b)
            if horizontal:
                cv2.line(img, (s, fixed), (e, fixed), colour, thickness)
            else:
                cv2.line(img, (fixed, s), (fixed, e), colour, thickness)


def draw_frame(frame: Frame, class_names: Sequence[str] = CLASS_NAMES, title: str | None = None,
               show_labels: bool = True) -> np.ndarray:
    """A copy of ``frame.image`` (RGB) with boxes: solid = normal, dashed = difficult; label = class + track."""
    img = frame.image.copy()
    for box, label, tid, diff in zip(frame.boxes, frame.labels, frame.track_ids, frame.difficult):
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        colour = CLASS_COLOURS[int(label) % len(CLASS_COLOURS)]
        if diff:
            _dashed_rect(img, (x1, y1), (x2 - 1, y2 - 1), colour, 1)
        else:
            cv2.rectangle(img, (x1, y1), (x2 - 1, y2 - 1), colour, 1)
        if show_labels:
            text = f"{class_names[int(label)].replace('sea_', '')}{int(tid)}"
            cv2.putText(img, text, (x1, max(y1 - 3, 9)), cv2.FONT_HERSHEY_SIMPLEX, 0.33, colour, 1, cv2.LINE_AA)
    if title:
        cv2.rectangle(img, (0, 0), (8 + 7 * len(title), 16), (0, 0, 0), -1)
        cv2.putText(img, title, (4, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def save_preview_grid(path: str | Path, frames: Sequence[Frame], class_names: Sequence[str] = CLASS_NAMES,
                      cols: int = 3, titles: Sequence[str] | None = None, tile_width: int | None = None) -> Path:
    """Write a PNG/JPEG grid of ``frames`` with boxes to ``path``; returns the path."""
    if not frames:
        raise ValueError("save_preview_grid needs at least one frame")
    tiles = []
    for i, f in enumerate(frames):
        tile = draw_frame(f, class_names, titles[i] if titles else None)
        if tile_width and tile.shape[1] != tile_width:
            tile = cv2.resize(tile, (tile_width, int(round(tile.shape[0] * tile_width / tile.shape[1]))),
                              interpolation=cv2.INTER_AREA)
        tiles.append(tile)
    h = max(t.shape[0] for t in tiles)
    w = max(t.shape[1] for t in tiles)
    cols = max(1, min(cols, len(tiles)))
    rows = (len(tiles) + cols - 1) // cols
    grid = np.zeros((rows * h + (rows - 1) * 4, cols * w + (cols - 1) * 4, 3), np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        grid[r * (h + 4):r * (h + 4) + t.shape[0], c * (w + 4):c * (w + 4) + t.shape[1]] = t
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), grid[..., ::-1]):
        raise OSError(f"could not write preview image {path}")
    return path


def preview_frames(seeds: Sequence[int], presets: Sequence[str] = ("clear", "turbid", "dark"),
                   config: SequenceConfig | None = None, frame_index: int | None = None) -> tuple[list[Frame], list[str]]:
    """One frame from each (seed, preset) pair, cycling presets; returns frames and their titles."""
    base = config or SequenceConfig(num_frames=30)
    frames, titles = [], []
    for i, seed in enumerate(seeds):
        preset = presets[i % len(presets)]
        cfg = SequenceConfig(**{**base.__dict__, "preset": preset})
        seq = SyntheticSequence(seed, cfg)
        idx = (len(seq) // 2) if frame_index is None else min(frame_index, len(seq) - 1)
        frames.append(seq.frame(idx))
        titles.append(f"seed {seed} {seq.preset}")
    return frames, titles
