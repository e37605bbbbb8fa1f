"""PASCAL VOC average precision (mAP@0.5), area-under-curve (VOC2010+) and 11-point (VOC2007) variants.

Differences from the original devkit, on purpose: boxes are continuous (normalised or float pixels), so
areas have no ``+1``; a detection is a true positive when IoU >= the threshold (devkit: >). Ground truths
marked *difficult* neither count as misses nor turn matching detections into false positives. A class with
no (non-difficult) ground truth has no defined AP: it is reported as ``nan`` and left out of the mean.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..ops.box_overlap import iou_matrix


@dataclass
class GroundTruth:
    boxes: np.ndarray  # (G, 4) x1, y1, x2, y2
    labels: np.ndarray  # (G,)
    difficult: np.ndarray | None = None  # (G,) bool


@dataclass
class Prediction:
    boxes: np.ndarray  # (N, 4)
    scores: np.ndarray  # (N,)
    labels: np.ndarray  # (N,)


@dataclass
class VOCResult:
    mean_ap: float
    ap_per_class: list[float]
    num_ground_truth: list[int]
    precision: list[np.ndarray] = field(repr=False, default_factory=list)
    recall: list[np.ndarray] = field(repr=False, default_factory=list)


def average_precision(recall: np.ndarray, precision: np.ndarray, use_11_point: bool = False) -> float:
    if recall.size == 0:
        return 0.0
    if use_11_point:
        return float(np.mean([precision[recall >= t].max() if (recall >= t).any() else 0.0 for t in np.linspace(0, 1, 11)]))
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # precision envelope
    idx = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]))


def evaluate_voc(
    predictions: Sequence[Prediction],
    ground_truths: Sequence[GroundTruth],
    num_classes: int,
    iou_threshold: float = 0.5,
    use_11_point: bool = False,
) -> VOCResult:
    if len(predictions) != len(ground_truths):
        raise ValueError(f"{len(predictions)} predictions for {len(ground_truths)} ground-truth images")
    aps, counts, precisions, recalls = [], [], [], []
    for cls in range(num_classes):
        gt_boxes, gt_difficult, gt_used = [], [], []
        n_gt = 0
        for gt in ground_truths:
            sel = np.asarray(gt.labels) == cls
            boxes = np.asarray(gt.boxes, np.float64).reshape(-1, 4)[sel]
            diff = (np.zeros(len(sel), bool) if gt.difficult is None else np.asarray(gt.difficult, bool))[sel]
            gt_boxes.append(boxes)
            gt_difficult.append(diff)
            gt_used.append(np.zeros(len(boxes), bool))
            n_gt += int((~diff).sum())
        entries = []  # (score, image index, box)
        for img, pred in enumerate(predictions):
            sel = np.asarray(pred.labels) == cls
            for score, box in zip(np.asarray(pred.scores)[sel], np.asarray(pred.boxes, np.float64).reshape(-1, 4)[sel]):
                entries.append((float(score), img, box))
        entries.sort(key=lambda e: -e[0])
        tp = np.zeros(len(entries))
        fp = np.zeros(len(entries))
        for i, (_score, img, box) in enumerate(entries):
            boxes = gt_boxes[img]
            if len(boxes) == 0:
                fp[i] = 1
                continue
            ious = iou_matrix(box, boxes)[0]
            j = int(ious.argmax())
            if ious[j] >= iou_threshold:
                if gt_difficult[img][j]:
                    continue  # neither TP nor FP
                if not gt_used[img][j]:
                    tp[i] = 1
                    gt_used[img][j] = True
                else:
                    fp[i] = 1
            else:
                fp[i] = 1
        counts.append(n_gt)
        if n_gt == 0:
            aps.append(float("nan"))
            precisions.append(np.zeros(0))
            recalls.append(np.zeros(0))
            continue
        ctp, cfp = np.cumsum(tp), np.cumsum(fp)
        recall = ctp / n_gt
        precision = ctp / np.maximum(ctp + cfp, np.finfo(np.float64).eps)
        keep = (tp + fp) > 0  # skip difficult-only matches so they do not create flat steps
        recall, precision = recall[keep], precision[keep]
        aps.append(average_precision(recall, precision, use_11_point))
        precisions.append(precision)
        recalls.append(recall)
    valid = [a for a in aps if not np.isnan(a)]
    return VOCResult(
        mean_ap=float(np.mean(valid)) if valid else float("nan"),
        ap_per_class=aps,
        num_ground_truth=counts,
        precision=precisions,
        recall=recalls,
    )
