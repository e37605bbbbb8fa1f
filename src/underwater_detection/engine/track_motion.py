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


Frame = tuple[Any, int]  # (video_id, frame_id) as the COCO file spells them


@dataclass(frozen=True)
class GapMotion:
    gap: int                # positions between the two boxes (k - 1 for the furthest frame of a period of k)
    pairs: int              # (box, same track gap positions later) pairs measured; 0: the split is too short
    median_iou: float | None
    fraction_below_half: float | None  # pairs with IoU < 0.5

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


def _frame_id(image: Mapping[str, Any]) -> Any:
    return image.get("frame_id", image.get("frame_index"))


def frame_positions(coco: Mapping[str, Any]) -> dict[Frame, int]:
    """Every video frame's position in its video (rank of its frame id): what a temporal detector counts k in.
    A set annotated every 15th frame has positions 0, 1, 2, ..., not 0, 15, 30."""
    by_video: dict[Any, list[int]] = defaultdict(list)
    for image in coco.get("images", []):
        frame = _frame_id(image)
        if image.get("video_id") is not None and frame is not None:
            by_video[image["video_id"]].append(int(frame))
    return {(video, f): pos for video, frames in by_video.items() for pos, f in enumerate(sorted(set(frames)))}


def _tracks(coco: Mapping[str, Any], positions: Mapping[Frame, int]) -> dict[tuple[Any, Any], dict[int, list[float]]]:
    """(video, track) -> position -> xywh box, for the boxes evaluation counts (not ignored/difficult/crowd),
    in the frames of ``positions`` only."""
    where: dict[Any, tuple[Any, int]] = {}
    for image in coco.get("images", []):
        frame = _frame_id(image)
        if image.get("video_id") is None or frame is None:
            continue
        pos = positions.get((image["video_id"], int(frame)))
        if pos is not None:
            where[image["id"]] = (image["video_id"], pos)
    tracks: dict[tuple[Any, Any], dict[int, list[float]]] = defaultdict(dict)
    for ann in coco.get("annotations", []):
        if ann.get("iscrowd") or ann.get("ignore") or ann.get("difficult"):
            continue
        at = where.get(ann.get("image_id"))
        track = ann.get("track_id")
        if at is None or track is None:
            continue
        video, pos = at
        tracks[(video, track)][pos] = [float(v) for v in ann["bbox"]]
    return tracks


def track_motion(coco: Mapping[str, Any], gaps: Iterable[int],
                 positions: Mapping[Frame, int] | None = None) -> list[GapMotion]:
    """Motion IoU at each gap (in positions). ``positions``: the frames evaluated and their position in their
    sequence (default: every video frame of the file, ``frame_positions``), so a run on a subset of sequences
    or on every n-th frame describes the frames it actually ran on. Needs COCO video fields and ``track_id``;
    raises ``ValueError`` when there are none, rather than reporting the motion of nothing."""
    tracks = _tracks(coco, frame_positions(coco) if positions is None else positions)
    if not tracks:
        raise ValueError("no annotations with video_id/frame_id and track_id: cannot measure motion")
    out = []
    for gap in gaps:
        if gap < 1:
            raise ValueError(f"gap must be >= 1, got {gap}")
        first, later = [], []
        for boxes in tracks.values():
            for pos, box in boxes.items():
                other = boxes.get(pos + gap)
                if other is not None:
                    first.append(box)
                    later.append(other)
        if not first:
            out.append(GapMotion(gap, 0, None, None))
            continue
        ious = _iou_xywh(np.asarray(first), np.asarray(later))
        out.append(GapMotion(gap, len(ious), float(np.median(ious)), float(np.mean(ious < 0.5))))
    return out


def coco_file(path: str | Path) -> Path | None:
    """The COCO JSON behind a ``--data`` argument (a .json file, or a folder holding ``annotations.json``)."""
    path = Path(path)
    if path.is_dir():
        path = path / "annotations.json"
    return path if path.suffix.lower() == ".json" and path.is_file() else None


def read_coco(path: str | Path) -> dict[str, Any] | None:
    """The parsed COCO file behind ``path``, or ``None`` for data that is not one (VOC) or cannot be read;
    motion is a side figure, so it never stops a benchmark."""
    file = coco_file(path)
    if file is None:
        return None
    try:
        coco = json.loads(file.read_text())
    except (OSError, ValueError):
        return None
    return coco if isinstance(coco, dict) else None


def motion_or_none(coco: Mapping[str, Any] | None, gaps: Iterable[int],
                   positions: Mapping[Frame, int] | None = None) -> list[GapMotion] | None:
    """``track_motion``, or ``None`` for data that cannot say (no file, no tracks, malformed entries)."""
    if coco is None:
        return None
    try:
        return track_motion(coco, gaps, positions)
    except (ValueError, KeyError, TypeError, AttributeError, IndexError):
        return None


def video_fps(coco: Mapping[str, Any] | None) -> float | None:
    """The frame rate the file's video records agree on (the synthetic writer stores it), else ``None``."""
    if coco is None:
        return None
    try:
        rates = {float(v["fps"]) for v in coco.get("videos", []) if isinstance(v, dict) and "fps" in v}
    except (ValueError, TypeError, AttributeError):
        return None
    return rates.pop() if len(rates) == 1 else None


def format_motion(motion: list[GapMotion], fps: float | None = None) -> str:
    """One line per gap for the results report."""
    lines = []
    for m in motion:
        span = f" ({m.gap / fps:.2f} s at {fps:g} FPS)" if fps else ""
        head = f"- {m.gap} frame{'s' if m.gap != 1 else ''} later{span}: "
        if m.median_iou is None or m.fraction_below_half is None:
            lines.append(head + "no pairs (sequences too short)")
        else:
            lines.append(head + f"median IoU {m.median_iou:.2f}, "
                         f"{100 * m.fraction_below_half:.0f}% of {m.pairs} pairs below 0.5")
    return "\n".join(lines)
