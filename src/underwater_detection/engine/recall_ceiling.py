"""Which objects a detector never boxes, at any score: the recall ceiling that caps its mAP.

VOC AP integrates precision over recall, so a model whose detections (all of them, down to the postprocess score
floor) cover only a share R of the objects at IoU 0.5 cannot score more than about R mAP@0.5, however well it
ranks what it does find. When a model sits far below a goal, this tells the two failure kinds apart: objects that
are found but ranked low (recall rises as the score floor falls) and objects that are never boxed at all (recall
stays flat down to the lowest score). Grouping the never-boxed objects by size and visible fraction then says
which lever (input resolution, occlusion handling) could lift the ceiling.

Per non-difficult ground-truth object this records ``best_score``: the highest score of a detection of the
object's class with IoU >= 0.5 (0 when none exists). Each detection may count for several objects here; that is an
upper bound on what greedy VOC matching can reach, which is the point of a ceiling.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from ..ops.box_overlap import iou_matrix
from .voc_eval import GroundTruth, Prediction

MATCH_IOU = 0.5


@dataclass(frozen=True)
class ObjectRecord:
    """One non-difficult object: its class, size (sqrt of the box area, original image pixels), visible fraction
    (``nan`` when the annotation has none) and the best score any same-class detection with IoU >= 0.5 gave it."""

    label: int
    size: float
    visible: float
    best_score: float


def object_records(
    predictions: Sequence[Prediction],
    ground_truths: Sequence[GroundTruth],
    visible: Sequence[np.ndarray | None] | None = None,
) -> list[ObjectRecord]:
    """One record per non-difficult ground-truth box. ``visible[i]`` holds image i's visible fraction per box (all
    boxes, difficult included, in the ground truth's order) or ``None``."""
    if len(predictions) != len(ground_truths):
        raise ValueError(f"{len(predictions)} predictions for {len(ground_truths)} images")
    if visible is not None and len(visible) != len(ground_truths):
        raise ValueError(f"{len(visible)} visibility arrays for {len(ground_truths)} images")
    records: list[ObjectRecord] = []
    for i, (pred, gt) in enumerate(zip(predictions, ground_truths)):
        gt_boxes = np.asarray(gt.boxes, np.float64).reshape(-1, 4)
        gt_labels = np.asarray(gt.labels, np.int64).reshape(-1)
        difficult = (np.zeros(len(gt_boxes), bool) if gt.difficult is None
                     else np.asarray(gt.difficult, bool).reshape(-1))
        vis = None if visible is None or visible[i] is None else np.asarray(visible[i], np.float64).reshape(-1)
        if vis is not None and len(vis) != len(gt_boxes):
            raise ValueError(f"image {i}: {len(vis)} visible fractions for {len(gt_boxes)} boxes")
        boxes = np.asarray(pred.boxes, np.float64).reshape(-1, 4)
        scores = np.asarray(pred.scores, np.float64).reshape(-1)
        labels = np.asarray(pred.labels, np.int64).reshape(-1)
        # one IoU matrix per image; a detection scores an object when it has its class and IoU >= 0.5
        hits = (iou_matrix(gt_boxes, boxes) >= MATCH_IOU) & (labels[None, :] == gt_labels[:, None])
        for j in np.flatnonzero(~difficult):
            best = float(scores[hits[j]].max()) if hits[j].any() else 0.0
            w, h = gt_boxes[j, 2] - gt_boxes[j, 0], gt_boxes[j, 3] - gt_boxes[j, 1]
            records.append(ObjectRecord(int(gt_labels[j]), float(np.sqrt(max(w * h, 0.0))),
                                        float("nan") if vis is None else float(vis[j]), best))
    return records


def recall_at(records: Sequence[ObjectRecord], score_floor: float) -> float:
    """Share of the objects with a same-class detection at IoU >= 0.5 scoring >= ``score_floor`` (> 0)."""
    if not records:
        return float("nan")
    floor = max(score_floor, np.nextafter(0.0, 1.0))  # a best_score of 0 means "no detection", never a hit
    return float(np.mean([r.best_score >= floor for r in records]))


def grouped_recall(
    records: Sequence[ObjectRecord],
    attribute: str,
    edges: Iterable[float],
    score_floors: Sequence[float],
) -> list[dict[str, float]]:
    """Recall per ``[lo, hi)`` bin of ``attribute`` ('size' or 'visible'): objects, their share and recall at each
    floor. Bins with no objects are left out; objects without the attribute (nan) fall in none."""
    edges = list(edges)
    values = np.array([getattr(r, attribute) for r in records], np.float64)
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = [r for r, v in zip(records, values) if lo <= v < hi]
        if not inside:
            continue
        row = {"lo": float(lo), "hi": float(hi), "objects": len(inside), "share": len(inside) / len(records)}
        row.update({f"recall@{floor:g}": recall_at(inside, floor) for floor in score_floors})
        rows.append(row)
    return rows
