"""``uwdet eval``: accuracy and speed of a checkpoint on a dataset, through the ``TemporalDetector``.

* Sequences (COCO ``video_id`` / frame order) are fed in frame order as one stream each, so temporal models
  are evaluated exactly as they run on the vehicle (key frames every k, references propagated, resets between
  sequences). Images without a video are independent one-frame streams.
* VOC mAP@0.5 (area and 11-point, ``engine.voc_eval``) and COCO AP / AP50 / AP75 / APs / APm / APl through
  pycocotools. Difficult ground truth (under the visibility threshold) is ignored by both: VOC's difficult
  rule, and ``iscrowd=1`` (COCO's ignore regions) for pycocotools.
* Per water condition (clear / turbid / dark, when the annotation names each video's): VOC mAP@0.5 of the
  frames of each condition, so a detector that fails in turbid water is not hidden by an average over dives.
* Speed: forward ms per frame (RG on key frames + RD, or the per-frame model), averaged over all frames, which
  is what the paper's FPS means; end-to-end ms (preprocess + forward + NMS) alongside.
* ``sweep``: the k x e grid of mAP and forward FPS (paper Fig. 9), plus PR curves, as PNG and JSON.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .temporal import TemporalDetector
from .voc_eval import GroundTruth, Prediction, VOCResult, evaluate_voc

COCO_METRIC_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")


@dataclass
class EvalResult:
    voc_map50: float
    voc_map50_11pt: float
    ap50_per_class: dict[str, float]
    coco: dict[str, float]
    frames: int
    key_frames: int
    forward_ms_mean: float
    forward_fps: float
    end_to_end_ms_median: float
    key_interval: int | None = None
    soft_coefficient: float | None = None
    forced_resets: int = 0  # resets other than the start of each sequence (gaps, size changes): should be 0
    most_detections: int = 0  # the most detections kept on one frame: equals the per-image cap when some frame hit it
    map50_by_condition: dict[str, float] = field(default_factory=dict)  # VOC mAP@0.5 per water condition
    condition_videos: dict[str, int] = field(default_factory=dict)      # videos evaluated per condition
    voc: VOCResult | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("voc")
        return out


def run_on_dataset(
    detector: TemporalDetector,
    dataset: Any,
    fps: float = 10.0,
    max_frames: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[Prediction], list[GroundTruth], list[dict[str, float]], list[bool], list[tuple[int, int]], list[Any]]:
    """Detect every image, sequence by sequence in frame order. Returns predictions, ground truths, per-frame
    timings, key-frame flags, image sizes and video keys (all in dataset order of visiting)."""
    preds, gts, timings, keys, sizes, videos = [], [], [], [], [], []
    sequences = dataset.sequences()
    total = sum(len(v) for v in sequences.values())
    done = 0
    for video, indices in sequences.items():  # video: a dataset-specific key; only its frames' order matters
        for position, index in enumerate(indices):
            if max_frames is not None and done >= max_frames:
                return preds, gts, timings, keys, sizes, videos
            sample = dataset[index]
            if sample.video_id is None:  # independent images: each one is a fresh stream
                detector.reset("image")
                stream, stamp = "image", 0.0
            else:
                stream = f"video-{video}"
                # consecutive stamps by position, not by frame number: a set annotated every 15th frame
                # would otherwise look like a dropped-frame gap every frame and silently force key frames
                stamp = float(position) / fps
                if position == 0:
                    detector.reset(stream)
            dets = detector.detect(sample.image, stamp, stream, color="rgb")
            preds.append(Prediction(dets.boxes, dets.scores, dets.labels))
            gts.append(GroundTruth(sample.boxes, sample.labels, sample.difficult))
            timings.append(dets.timings_ms)
            keys.append(dets.is_key_frame)
            sizes.append((int(sample.image.shape[0]), int(sample.image.shape[1])))
            videos.append(video)
            done += 1
            if progress is not None:
                progress(done, total)
    return preds, gts, timings, keys, sizes, videos


def map50_by_condition(
    preds: Sequence[Prediction], gts: Sequence[GroundTruth], videos: Sequence[Any], conditions: dict[Any, str],
    num_classes: int,
) -> tuple[dict[str, float], dict[str, int]]:
    """VOC mAP@0.5 over the frames of each condition's videos, and how many videos each had. Frames of videos
    without a condition are in no group; a condition with no frames evaluated (``--max-frames``) or nothing
    to score (every box difficult) is left out rather than reported as NaN."""
    maps, counts = {}, {}
    for condition in sorted(set(conditions.values())):
        chosen = [i for i, v in enumerate(videos) if conditions.get(v) == condition]
        if not chosen:
            continue
        value = evaluate_voc([preds[i] for i in chosen], [gts[i] for i in chosen], num_classes).mean_ap
        if math.isfinite(value):
            maps[condition] = float(value)
            counts[condition] = len({videos[i] for i in chosen})
    return maps, counts


def coco_metrics(
    preds: Sequence[Prediction], gts: Sequence[GroundTruth], sizes: Sequence[tuple[int, int]], class_names: Sequence[str]
) -> dict[str, float]:
    """COCO AP family via pycocotools on in-memory ground truth (difficult boxes -> ignore regions)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, annotations, results = [], [], []
    ann_id = 1
    for img_id, (gt, pred, (h, w)) in enumerate(zip(gts, preds, sizes), start=1):
        images.append({"id": img_id, "width": w, "height": h})
        difficult = np.zeros(len(gt.labels), bool) if gt.difficult is None else np.asarray(gt.difficult, bool)
        for box, label, diff in zip(np.asarray(gt.boxes).reshape(-1, 4), gt.labels, difficult):
            x1, y1, x2, y2 = (float(v) for v in box)
            annotations.append({
                "id": ann_id, "image_id": img_id, "category_id": int(label) + 1,
                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": int(diff),
            })
            ann_id += 1
        for box, score, label in zip(np.asarray(pred.boxes).reshape(-1, 4), pred.scores, pred.labels):
            x1, y1, x2, y2 = (float(v) for v in box)
            results.append({"image_id": img_id, "category_id": int(label) + 1, "bbox": [x1, y1, x2 - x1, y2 - y1],
                            "score": float(score)})
    if not annotations:
        return {name: float("nan") for name in COCO_METRIC_NAMES}
    gt_api = COCO()
    gt_api.dataset = {"images": images, "annotations": annotations,
                      "categories": [{"id": i + 1, "name": n} for i, n in enumerate(class_names)]}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its tables; we report our own
        gt_api.createIndex()
        if not results:
            return {name: 0.0 for name in COCO_METRIC_NAMES}
        dt_api = gt_api.loadRes(results)
        ev = COCOeval(gt_api, dt_api, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {name: float(ev.stats[i]) for i, name in enumerate(COCO_METRIC_NAMES)}


def evaluate(
    detector: TemporalDetector,
    dataset: Any,
    fps: float = 10.0,
    max_frames: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    resets_before = detector.stats["resets"]
    preds, gts, timings, keys, sizes, videos = run_on_dataset(detector, dataset, fps, max_frames, progress)
    forced_resets = detector.stats["resets"] - resets_before
    if not preds:
        raise ValueError("the dataset has no images to evaluate")
    names = list(detector.class_names)
    voc = evaluate_voc(preds, gts, len(names))
    voc11 = evaluate_voc(preds, gts, len(names), use_11_point=True)
    forward = [t["reference"] + t["detect"] for t in timings]
    by_condition, condition_videos = map50_by_condition(preds, gts, videos, dataset.video_conditions(), len(names))
    mean_fwd = float(np.mean(forward))
    return EvalResult(
        voc_map50=voc.mean_ap,
        voc_map50_11pt=voc11.mean_ap,
        ap50_per_class={n: float(a) for n, a in zip(names, voc.ap_per_class)},
        coco=coco_metrics(preds, gts, sizes, names),
        frames=len(preds),
        key_frames=int(sum(keys)),
        forward_ms_mean=mean_fwd,
        forward_fps=1000.0 / mean_fwd if mean_fwd > 0 else float("inf"),
        end_to_end_ms_median=float(statistics.median(t["total"] for t in timings)),
        key_interval=detector.key_interval if detector.is_temporal else None,
        soft_coefficient=detector.soft_coefficient if detector.is_temporal else None,
        forced_resets=forced_resets,
        most_detections=max(len(p.scores) for p in preds),
        map50_by_condition=by_condition,
        condition_videos=condition_videos,
        voc=voc,
    )


def sweep(
    detector: TemporalDetector,
    dataset: Any,
    key_intervals: Sequence[int] = (1, 2, 4, 8),
    soft_coefficients: Sequence[float] = (1.0, 0.75, 0.5),
    fps: float = 10.0,
    max_frames: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[EvalResult]:
    """The paper's Fig. 9 grid. Per-frame models have no k or e: one point."""
    if not detector.is_temporal:
        return [evaluate(detector, dataset, fps, max_frames)]
    results = []
    for e in soft_coefficients:
        for k in key_intervals:
            if progress:
                progress(f"k={k} e={e}")
            detector.reset()
            detector.key_interval = k
            detector.soft_coefficient = e
            results.append(evaluate(detector, dataset, fps, max_frames))
    return results


def plot_sweep(results: Sequence[EvalResult], path: str | Path, title: str = "") -> Path:
    """mAP@0.5 vs forward FPS, one line per e, points labelled with k (like the paper's Fig. 9)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=120)
    by_e: dict[float | None, list[EvalResult]] = {}
    for r in results:
        by_e.setdefault(r.soft_coefficient, []).append(r)
    for e, rows in by_e.items():
        rows = sorted(rows, key=lambda r: r.key_interval or 0)
        ax.plot([r.forward_fps for r in rows], [100 * r.voc_map50 for r in rows], marker="o", label=f"e = {e}")
        for r in rows:
            ax.annotate(f"k={r.key_interval}", (r.forward_fps, 100 * r.voc_map50), textcoords="offset points",
                        xytext=(4, 4), fontsize=8)
    ax.set_xlabel("forward FPS (this CPU)")
    ax.set_ylabel("mAP@0.5 (%)")
    ax.set_title(title or "accuracy vs speed over k and e")
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


def plot_pr_curves(result: EvalResult, class_names: Sequence[str], path: str | Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if result.voc is None:
        raise ValueError("PR curves need the VOC result of an evaluation run")
    fig, ax = plt.subplots(figsize=(5.5, 4.2), dpi=120)
    for name, rec, prec, ap in zip(class_names, result.voc.recall, result.voc.precision, result.voc.ap_per_class):
        if len(rec):
            ax.plot(rec, prec, label=f"{name} (AP {100 * ap:.1f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title(title or f"PR curves, mAP@0.5 {100 * result.voc_map50:.1f}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    return save_figure(fig, path)


def save_figure(fig: Any, path: str | Path) -> Path:
    """Lay out, write (creating the folder) and close a matplotlib figure: open figures leak memory in a long run."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_json(path: str | Path, payload: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=float))
    return path
