"""Ground truth for a bag's frames: from a ``vision_msgs/Detection2DArray`` topic or from a COCO JSON file.

Frames and ground truth are matched by the image's **header stamp** (not the log time, which depends on
the recorder), to the nearest entry within ``tolerance_ns`` (1 ms by default: stamps of one camera are tens
of ms apart, while a COCO file stores seconds as a float, which is exact only to ~0.2 us at today's epoch).

COCO files (``uwdet synth`` writes one per split): images carry ``stamp`` (seconds) and ``video_id``; a split
holds many videos that all start at the same epoch, so the video must be chosen: ``video`` names it, else a
video whose name equals the bag folder's name is used (synthetic bags are ``bags/<video>/``), else the file
must hold one video. COCO without stamps is matched by frame order instead (i-th frame of the bag = i-th
image of the video by ``frame_id``). COCO also flags *difficult* boxes (``ignore``/``iscrowd``/``difficult``),
which the evaluation ignores; a Detection2DArray has no such field, so topic ground truth has none.
"""
from __future__ import annotations

import bisect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .detection_messages import parse_detection_array
from .reader import DETECTION_ARRAY_TYPE, BagError, BagFile

DEFAULT_TOLERANCE_NS = 1_000_000


@dataclass
class FrameTruth:
    boxes: np.ndarray  # (G, 4) x1, y1, x2, y2 pixels
    labels: np.ndarray  # (G,) int64
    difficult: np.ndarray  # (G,) bool


class GroundTruthIndex:
    """Ground truth by stamp (or by frame order for COCO files without stamps)."""

    def __init__(self, by_stamp: dict[int, FrameTruth] | None = None, by_order: list[FrameTruth] | None = None,
                 source: str = "", tolerance_ns: int = DEFAULT_TOLERANCE_NS) -> None:
        self._stamps = sorted(by_stamp or {})
        self._by_stamp = by_stamp or {}
        self._by_order = by_order
        self.source = source
        self.tolerance_ns = int(tolerance_ns)

    def __len__(self) -> int:
        return len(self._by_order) if self._by_order is not None else len(self._stamps)

    def lookup(self, stamp_ns: int, frame_index: int) -> FrameTruth | None:
        """The frame's ground truth, ``None`` if there is none for it (the frame is then not evaluated)."""
        if self._by_order is not None:
            return self._by_order[frame_index] if frame_index < len(self._by_order) else None
        i = bisect.bisect_left(self._stamps, stamp_ns)
        best = None
        for j in (i - 1, i):
            if 0 <= j < len(self._stamps):
                d = abs(self._stamps[j] - stamp_ns)
                if d <= self.tolerance_ns and (best is None or d < best[0]):
                    best = (d, self._stamps[j])
        return None if best is None else self._by_stamp[best[1]]


def ground_truth_from_topic(bag: BagFile, topic: str, class_names: Sequence[str]) -> GroundTruthIndex:
    """Every Detection2DArray on ``topic``, keyed by its header stamp; unknown class ids are an error."""
    bag.require_topic(topic, (DETECTION_ARRAY_TYPE,))
    by_stamp: dict[int, FrameTruth] = {}
    for index, (_, _, msg) in enumerate(bag.messages([topic])):
        parsed = parse_detection_array(msg, class_names)
        unknown = sorted({c for c, lab in zip(parsed.class_ids, parsed.labels) if lab < 0})
        if unknown:
            raise BagError(
                f"{topic} message #{index} in {bag.path}: class ids {unknown} are not among the model's classes "
                f"{list(class_names)} (matched by name, or as an index)"
            )
        by_stamp[parsed.stamp_ns] = FrameTruth(parsed.boxes, parsed.labels, np.zeros(len(parsed), bool))
    return GroundTruthIndex(by_stamp=by_stamp, source=f"{bag.path}:{topic}")


def _pick_video(data: dict[str, Any], video: str | None, bag_name: str | None, path: Path) -> Any:
    """The ``video_id`` of the chosen video, or ``None`` when the file has no videos (all images)."""
    videos = data.get("videos") or []
    ids_in_images = {im.get("video_id") for im in data["images"]} - {None}
    names = {str(v.get("name")): v.get("id") for v in videos if isinstance(v, dict)}
    if video is not None:
        if video in names:
            return names[video]
        for vid in ids_in_images:
            if str(vid) == video:
                return vid
        raise BagError(f"{path}: no video {video!r}; videos: {sorted(names) or sorted(map(str, ids_in_images))}")
    if bag_name is not None and bag_name in names:
        return names[bag_name]
    if len(ids_in_images) <= 1:
        return next(iter(ids_in_images), None)
    raise BagError(
        f"{path} holds {len(ids_in_images)} videos and none is named like the bag ({bag_name!r}); choose one with "
        f"--gt-video (videos: {sorted(names)[:10]}{' ...' if len(names) > 10 else ''})"
    )


def ground_truth_from_coco(
    path: str | Path, class_names: Sequence[str], video: str | None = None, bag_name: str | None = None,
) -> GroundTruthIndex:
    """Ground truth of one video of a COCO file (see the module docstring for how the video is chosen)."""
    from ..data.datasets import CocoDataset

    path = Path(path)
    if path.is_dir():
        path = path / "annotations.json"
    try:
        dataset = CocoDataset(path, class_names=list(class_names))
    except FileNotFoundError as exc:
        raise BagError(str(exc)) from exc
    with open(path, "rb") as fh:  # CocoDataset validated it; read it again for the fields it does not keep
        data = json.load(fh)
    video_id = _pick_video(data, video, bag_name, path)
    chosen = [i for i, im in enumerate(data["images"]) if im.get("video_id") == video_id]
    if not chosen:
        raise BagError(f"{path}: no images for the chosen video")
    truths = {}
    for i in chosen:
        ann = dataset.annotations(i)
        truths[i] = FrameTruth(np.asarray(ann.boxes, np.float64).reshape(-1, 4), np.asarray(ann.labels, np.int64),
                               np.asarray(ann.difficult, bool))
    images = data["images"]
    if all(isinstance(images[i].get("stamp"), (int, float)) for i in chosen):
        by_stamp: dict[int, FrameTruth] = {}
        for i in chosen:
            key = int(round(float(images[i]["stamp"]) * 1e9))
            if key in by_stamp:
                raise BagError(f"{path}: two images of the chosen video have the stamp {images[i]['stamp']}")
            by_stamp[key] = truths[i]
        return GroundTruthIndex(by_stamp=by_stamp, source=str(path))
    order = sorted(chosen, key=lambda i: (images[i].get("frame_id", images[i].get("frame_index", 0)) or 0, i))
    return GroundTruthIndex(by_order=[truths[i] for i in order], source=f"{path} (by frame order)")
