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

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from ..ops.box_overlap import paired_iou


@dataclass(frozen=True)
class GapMotion:
    gap: int                # positions between the two boxes (k - 1 for the furthest frame of a period of k)
    pairs: int              # (box, same track gap positions later) pairs measured; 0: the split is too short
    median_iou: float | None
    fraction_below_half: float | None  # pairs with IoU < 0.5

    def to_dict(self) -> dict[str, Any]:
        return {"gap": self.gap, "pairs": self.pairs, "median_iou": self.median_iou,
                "fraction_below_half": self.fraction_below_half}


def _tracks(dataset: Any) -> dict[tuple[Any, int], dict[int, np.ndarray]]:
    """(video, track) -> position in the evaluated sequence -> corner box, for the boxes evaluation counts
    (not difficult / ignored / crowd). Positions come from ``dataset.sequences()``, so a subset of sequences or
    every n-th frame (``benchmark_results.FrameStep``) is measured as it is evaluated, and a set annotated every
    15th frame has positions 0, 1, 2, ... (what a temporal detector counts k in), not 0, 15, 30."""
    tracks: dict[tuple[Any, int], dict[int, np.ndarray]] = defaultdict(dict)
    for video, indices in dataset.sequences().items():
        for position, index in enumerate(indices):
            ann = dataset.annotations(index)
            if ann.video_id is None or ann.track_ids is None:
                continue
            for box, track, difficult in zip(ann.boxes, ann.track_ids, ann.difficult):
                if track >= 0 and not difficult:
                    tracks[(video, int(track))][position] = box
    return tracks


def track_motion(dataset: Any, gaps: Iterable[int]) -> list[GapMotion]:
    """Motion IoU at each gap (in positions) over a dataset's video sequences. Needs track ids (COCO
    ``track_id``); raises ``ValueError`` when there are none, rather than reporting the motion of nothing."""
    tracks = _tracks(dataset)
    if not tracks:
        raise ValueError("no video frames with track ids (COCO track_id): cannot measure motion")
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
        ious = paired_iou(first, later)
        out.append(GapMotion(gap, len(ious), float(np.median(ious)), float(np.mean(ious < 0.5))))
    return out


def motion_or_none(dataset: Any, gaps: Iterable[int]) -> list[GapMotion] | None:
    """``track_motion``, or ``None`` for data that cannot say (VOC, COCO without track ids): motion is a side
    figure, so it never stops a benchmark."""
    try:
        return track_motion(dataset, gaps)
    except ValueError:
        return None


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
