"""How far objects move within a key-frame period: the number that decides how well references propagate.

TRNet/TDRNet detect a non-key frame with the refined anchors and sampling offsets of the last key frame, so
the accuracy lost at a key interval k depends on how much an object moves in the k - 1 frames after a key
frame. The paper's ImageNet VID is filmed at 25-30 FPS; the synthetic benchmark defaults to 10 FPS with a
surveying ROV, so the same k spans three times as much motion. This module measures that motion from the
ground truth alone, so a k-sweep can be read against it (and two test splits compared).

The measure is the IoU of a track's box with the same track's box ``gap`` frames later (FGFA's "motion IoU"
idea, with the gap set to the propagation distance): 1 means the object did not move in the image, below
0.5 the key frame's box and the current one overlap less than a detection must to count as a hit.
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np


@dataclass(frozen=True)
class GapMotion:
    gap: int                # frames between the two boxes (k - 1 for the furthest frame of a period of k)
    pairs: int              # (box, same track gap frames later) pairs measured
    median_iou: float
    fraction_below_half: float  # pairs with IoU < 0.5

    def to_dict(self) -> dict[str, Any]:
        return {"gap": self.gap, "pairs": self.pairs, "median_iou": self.median_iou,
                "fraction_below_half": self.fraction_below_half}


def _iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ax2, ay2, bx2, by2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2, bx2) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(ay2, by2) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = iw * ih
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def _tracks(coco: Mapping[str, Any]) -> dict[tuple[Any, Any], dict[int, list[float]]]:
    """(video, track) -> frame index -> xywh box, for the boxes evaluation counts (not ignored/difficult)."""
    frames: dict[Any, tuple[Any, int]] = {}
    for image in coco.get("images", []):
        if "video_id" in image and "frame_id" in image:
            frames[image["id"]] = (image["video_id"], int(image["frame_id"]))
    tracks: dict[tuple[Any, Any], dict[int, list[float]]] = defaultdict(dict)
    for ann in coco.get("annotations", []):
        if ann.get("iscrowd") or ann.get("ignore") or ann.get("difficult"):
            continue
        where = frames.get(ann.get("image_id"))
        track = ann.get("track_id")
        if where is None or track is None:
            continue
        video, frame = where
        tracks[(video, track)][frame] = [float(v) for v in ann["bbox"]]
    return tracks


def track_motion(coco: Mapping[str, Any], gaps: Iterable[int]) -> list[GapMotion]:
    """Motion IoU at each gap. Needs COCO video fields (``video_id``, ``frame_id``) and ``track_id``;
    raises ``ValueError`` when the annotations have none, rather than reporting a motion of nothing."""
    tracks = _tracks(coco)
    if not tracks:
        raise ValueError("no annotations with video_id/frame_id and track_id: cannot measure motion")
    out = []
    for gap in gaps:
        if gap < 1:
            raise ValueError(f"gap must be >= 1, got {gap}")
        first, later = [], []
        for boxes in tracks.values():
            for frame, box in boxes.items():
                other = boxes.get(frame + gap)
                if other is not None:
                    first.append(box)
                    later.append(other)
        if not first:
            out.append(GapMotion(gap, 0, float("nan"), float("nan")))
            continue
        ious = _iou_xywh(np.asarray(first), np.asarray(later))
        out.append(GapMotion(gap, len(ious), float(np.median(ious)), float(np.mean(ious < 0.5))))
    return out


def track_motion_of_file(path: str | Path, gaps: Iterable[int]) -> list[GapMotion] | None:
    """``track_motion`` of a COCO JSON file; ``None`` for data that cannot say (VOC, or COCO without tracks)."""
    path = Path(path)
    if path.suffix.lower() != ".json" or not path.is_file():
        return None
    try:
        return track_motion(json.loads(path.read_text()), gaps)
    except (ValueError, KeyError, TypeError):
        return None


def video_fps(path: str | Path) -> float | None:
    """The frame rate the data's COCO video records agree on (the synthetic writer stores it), else ``None``."""
    path = Path(path)
    if path.suffix.lower() != ".json" or not path.is_file():
        return None
    try:
        rates = {float(v["fps"]) for v in json.loads(path.read_text()).get("videos", []) if "fps" in v}
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return rates.pop() if len(rates) == 1 else None


def format_motion(motion: list[GapMotion], fps: float | None = None) -> str:
    """One line per gap for the results report."""
    lines = []
    for m in motion:
        span = f" ({m.gap / fps:.2f} s at {fps:g} FPS)" if fps else ""
        lines.append(f"- {m.gap} frames later{span}: median IoU {m.median_iou:.2f}, "
                     f"{100 * m.fraction_below_half:.0f}% of {m.pairs} pairs below 0.5")
    return "\n".join(lines)
