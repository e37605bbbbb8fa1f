"""Light IoU tracker: stable integer ids for detections across frames, for the grasp planner.

Rule (per stream, one frame at a time):
1. Only detections with ``score >= min_score`` take part; the others get id ``-1``.
2. Each live track predicts its box by adding its last displacement (constant velocity, damped by
   ``velocity_weight``), which keeps an object that moves several pixels a frame matched.
3. Greedy matching by descending IoU between predicted track boxes and detections of the *same class*
   (``class_aware``); a pair needs IoU >= ``iou_threshold``. Matched tracks take the detection's box.
4. Unmatched detections start new tracks with the next id (ids are never reused within a tracker).
5. A track survives ``max_missed`` frames without a match (a missed detection or a brief occlusion does not
   change the id), then is dropped.

Greedy IoU association (as in IOU-tracker / SORT without the Kalman filter) is enough here because the
detector runs at frame rate on slowly moving seabed objects; it needs no appearance model and costs
microseconds.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from ..ops.box_overlap import iou_matrix


@dataclass
class Track:
    track_id: int
    box: np.ndarray
    label: int
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float32))
    missed: int = 0
    hits: int = 1


class IoUTracker:
    def __init__(
        self,
        iou_threshold: float = 0.3,
        max_missed: int = 5,
        min_score: float = 0.3,
        class_aware: bool = True,
        velocity_weight: float = 0.5,
        id_counter: Iterator[int] | None = None,
    ) -> None:
        """``id_counter`` lets several trackers (one per stream, and the ones that replace them after a reset)
        draw from one sequence, so an id never names two objects."""
        def in_range(v: object, lo: float, hi: float, lo_open: bool = False) -> bool:
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                return False
            return (lo < v if lo_open else lo <= v) and v <= hi

        if not in_range(iou_threshold, 0.0, 1.0, lo_open=True):
            raise ValueError(f"tracker iou_threshold must be in (0, 1], got {iou_threshold!r}")
        if not isinstance(max_missed, int) or isinstance(max_missed, bool) or max_missed < 0:
            raise ValueError(f"tracker max_missed must be an integer >= 0, got {max_missed!r}")
        if not in_range(min_score, 0.0, 1.0):
            raise ValueError(f"tracker min_score must be in [0, 1], got {min_score!r}")
        if not in_range(velocity_weight, 0.0, 1.0):
            raise ValueError(f"tracker velocity_weight must be in [0, 1], got {velocity_weight!r}")
        self.iou_threshold = iou_threshold
        self.max_missed = max_missed
        self.min_score = min_score
        self.class_aware = class_aware
        self.velocity_weight = velocity_weight
        self.tracks: list[Track] = []
        self._ids = id_counter if id_counter is not None else itertools.count(1)

    def reset(self) -> None:
        """Forget live tracks (ids keep increasing, so an id never names two different objects)."""
        self.tracks = []

    def update(self, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Assign ids to one frame's detections; returns ``(N,)`` int64, ``-1`` for untracked ones."""
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        ids = np.full(len(boxes), -1, np.int64)
        candidates = np.nonzero(np.asarray(scores) >= self.min_score)[0]
        predicted = np.array([t.box + self.velocity_weight * t.velocity for t in self.tracks], np.float32).reshape(-1, 4)
        iou = iou_matrix(predicted, boxes[candidates])
        if self.class_aware and iou.size:
            same = np.array([t.label for t in self.tracks])[:, None] == np.asarray(labels)[candidates][None, :]
            iou = np.where(same, iou, 0.0)
        matched_tracks: set[int] = set()
        matched_dets: set[int] = set()
        if iou.size:
            order = np.dstack(np.unravel_index(np.argsort(-iou, axis=None), iou.shape))[0]
            for ti, dj in order:
                if iou[ti, dj] < self.iou_threshold:
                    break
                if ti in matched_tracks or dj in matched_dets:
                    continue
                matched_tracks.add(int(ti))
                matched_dets.add(int(dj))
                track = self.tracks[ti]
                det = int(candidates[dj])
                track.velocity = boxes[det] - track.box
                track.box = boxes[det].copy()
                track.label = int(labels[det])
                track.missed = 0
                track.hits += 1
                ids[det] = track.track_id
        survivors = []
        for ti, track in enumerate(self.tracks):
            if ti not in matched_tracks:
                track.missed += 1
                track.box = track.box + self.velocity_weight * track.velocity
            if track.missed <= self.max_missed:
                survivors.append(track)
        self.tracks = survivors
        for dj, det in enumerate(candidates):
            if dj in matched_dets:
                continue
            track = Track(next(self._ids), boxes[det].copy(), int(labels[det]))
            self.tracks.append(track)
            ids[det] = track.track_id
        return ids
