#!/usr/bin/env python3
"""How much would online rescoring along tracks add to a checkpoint's mAP@0.5? A check, not a feature.

Objects on the seabed persist from frame to frame and false positives flicker, so a detection that continues a
track of confident detections deserves a higher score than its frame alone gives it (the idea of Seq-NMS; here
causal: only earlier frames are used, as the vehicle would have to). If that moved mAP a lot, it would be worth
building into the `TemporalDetector`; session 14 measured +0.8 to +1.2 points across the variants below on
the vehicle model at k = 4 (67.3 as detected), so it was not.

Runs the detector as `uwdet eval` does (frame order, tracking off, at most 100 detections per image), then
rescores the stored detections offline for each variant and prints VOC mAP@0.5 for each:

    .venv/bin/python scripts/check_track_rescoring.py models/tdrnet_lite_tcb.pt --data data/synth/test -k 4

Rescoring, per video in frame order: detections (highest score first) join the live track of their class whose last
box overlaps them most (IoU >= ``iou``), or start one; a joined detection's score becomes a combination of its own
score and the track's last ``window`` scores (``mode``). ``coast`` frames re-emit an unmatched track's box at a
decaying score (tests whether a missed frame can be recovered).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from underwater_detection.engine.voc_eval import Prediction, evaluate_voc
from underwater_detection.ops.box_overlap import iou_matrix

MODES = ("mean", "max_mean", "blend_max")


@dataclass
class _Track:
    box: np.ndarray
    label: int
    history: list[float]
    score: float
    missed: int = 0


def _combine(score: float, history: list[float], mode: str) -> float:
    if mode == "mean":
        return float(np.mean(history))
    if mode == "max_mean":  # never lower a detection below its own score
        return max(score, float(np.mean(history)))
    if mode == "blend_max":  # half its own score, half the track's best, never lower than its own
        return max(score, 0.5 * score + 0.5 * float(np.max(history)))
    raise ValueError(f"unknown mode {mode!r}; choose from {MODES}")


def rescore(
    preds: Sequence[Prediction], videos: Sequence[Any], mode: str = "max_mean", window: int = 8, iou: float = 0.5,
    floor: float = 0.01, coast: int = 0, decay: float = 0.8, max_detections: int = 100,
) -> list[Prediction]:
    """Causal track rescoring of per-frame detections; ``videos[i]`` names frame i's video (frames in order)."""
    if window < 1 or not 0 < iou <= 1:
        raise ValueError(f"window must be >= 1 and iou in (0, 1], got {window}, {iou}")
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose from {MODES}")
    if len(preds) != len(videos):
        raise ValueError(f"{len(preds)} frames of detections but {len(videos)} video keys: one key per frame")
    out: list[Prediction] = []
    tracks: list[_Track] = []
    previous_video: Any = object()
    for pred, video in zip(preds, videos):
        if video != previous_video:
            tracks, previous_video = [], video
        boxes = np.asarray(pred.boxes, np.float32).reshape(-1, 4)
        scores = np.asarray(pred.scores, np.float64)
        labels = np.asarray(pred.labels, np.int64)
        new_scores = scores.copy()
        overlap = iou_matrix(np.array([t.box for t in tracks], np.float32).reshape(-1, 4), boxes)
        joined: set[int] = set()
        born: list[_Track] = []
        for j in np.argsort(-scores, kind="stable"):
            if scores[j] < floor:
                continue
            candidates = [(overlap[ti, j], ti) for ti, t in enumerate(tracks)
                          if ti not in joined and t.label == labels[j] and overlap[ti, j] >= iou]
            if candidates:
                _, ti = max(candidates)
                track = tracks[ti]
                track.history = track.history[-(window - 1):] + [float(scores[j])] if window > 1 else [float(scores[j])]
                track.score = _combine(float(scores[j]), track.history, mode)
                track.box, track.missed = boxes[j].copy(), 0
                new_scores[j] = track.score
                joined.add(ti)
            else:
                born.append(_Track(boxes[j].copy(), int(labels[j]), [float(scores[j])], float(scores[j])))
        coasted_boxes, coasted_scores, coasted_labels = [], [], []
        survivors = []
        for ti, track in enumerate(tracks):
            if ti in joined:
                survivors.append(track)
                continue
            track.missed += 1
            if track.missed <= max(coast, 2):  # a track survives two missed frames even without coasting
                survivors.append(track)
                if track.missed <= coast and len(track.history) >= 3:
                    coasted_boxes.append(track.box)
                    coasted_scores.append(track.score * decay ** track.missed)
                    coasted_labels.append(track.label)
        tracks = survivors + born
        if coasted_boxes:
            boxes = np.concatenate([boxes, np.array(coasted_boxes, np.float32)])
            new_scores = np.concatenate([new_scores, coasted_scores])
            labels = np.concatenate([labels, coasted_labels])
        top = np.argsort(-new_scores, kind="stable")[:max_detections]
        out.append(Prediction(boxes[top], new_scores[top].astype(np.float32), labels[top]))
    return out


VARIANTS: tuple[dict[str, Any], ...] = (
    {"mode": "mean", "window": 4}, {"mode": "mean", "window": 8}, {"mode": "mean", "window": 16},
    {"mode": "max_mean", "window": 8}, {"mode": "blend_max", "window": 8},
    {"mode": "max_mean", "window": 8, "iou": 0.3}, {"mode": "max_mean", "window": 8, "floor": 0.05},
    {"mode": "max_mean", "window": 8, "coast": 2}, {"mode": "max_mean", "window": 8, "coast": 4, "decay": 0.7},
)


def main(argv: list[str] | None = None) -> int:
    from underwater_detection.data.datasets import load_dataset
    from underwater_detection.engine.evaluation import run_on_dataset
    from underwater_detection.engine.runtime import configure_cpu_runtime
    from underwater_detection.engine.temporal import TemporalDetector
    from underwater_detection.models.checkpoint import CheckpointError

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("--data", default="data/synth/test", help="COCO json or a folder with annotations.json")
    p.add_argument("-k", type=int, default=None, help="key-frame interval (default: the model's)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    configure_cpu_runtime(args.threads)
    options: dict = {"tracking": False}
    if args.k is not None:
        options["key_interval"] = args.k
    try:
        detector = TemporalDetector.from_checkpoint(args.checkpoint, device="cpu", **options)
        dataset = load_dataset(args.data, class_names=list(detector.class_names))
    except (CheckpointError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    detector.postprocess_config = detector.postprocess_config.with_max_detections(100)
    preds, gts, _, _, _, videos = run_on_dataset(detector, dataset, fps=dataset.frame_rate() or 10.0)
    classes = len(detector.class_names)
    print(f"{args.checkpoint} on {args.data}: {len(preds)} frames, k={detector.key_interval}")
    print(f"| variant | mAP@0.5 |\n|---|---|\n| as detected (what `uwdet eval` scores) | "
          f"{100 * evaluate_voc(preds, gts, classes).mean_ap:.2f} |")
    for variant in VARIANTS:
        value = evaluate_voc(rescore(preds, videos, **variant), gts, classes).mean_ap
        print(f"| {', '.join(f'{k}={v}' for k, v in variant.items())} | {100 * value:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
