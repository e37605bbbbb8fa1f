"""Pictures of a replay (``uwdet demo``): an annotated video and a one-page PNG summary.

Video: every played frame with the ground truth (thin white), the detections the node published (class
colours, ``class #track score``; the ``max_boxes`` best above ``min_score`` so an untrained model's hundreds
of boxes do not hide the image), the grasp target (thick yellow box + cross-hair), and a status line (frame,
latency, DROPPED, UNTRAINED). MP4 (``mp4v``) when OpenCV can write it, else AVI (MJPG).

PNG: a sample annotated frame, latency per frame with p50/p95, detections vs ground-truth objects per frame
(dropped frames marked), and the target's track id over time.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from ..engine.evaluation import save_figure
from .ground_truth import GroundTruthIndex
from .reader import BagFile
from .replay_analysis import FrameRecord, ReplayAnalysis

CLASS_COLOURS_BGR = [(80, 200, 60), (60, 60, 230), (230, 160, 40), (200, 80, 220), (40, 200, 220)]
TARGET_BGR = (0, 230, 255)


def annotate(image_bgr: np.ndarray, frame: FrameRecord, class_names: Sequence[str], gt: object | None,
             untrained: bool, min_score: float = 0.3, max_boxes: int = 20) -> np.ndarray:
    img = np.ascontiguousarray(image_bgr).copy()
    scale = max(1.0, img.shape[1] / 640)
    thick = max(1, int(round(scale)))
    if gt is not None:
        for box in np.asarray(gt.boxes).reshape(-1, 4):
            x1, y1, x2, y2 = (int(round(v)) for v in box)
            cv2.rectangle(img, (x1, y1), (x2, y2), (235, 235, 235), 1)
    d = frame.detections
    if d is not None and len(d):
        order = [i for i in np.argsort(-d.scores) if d.scores[i] >= min_score][:max_boxes]
        for i in order:
            x1, y1, x2, y2 = (int(round(v)) for v in d.boxes[i])
            colour = CLASS_COLOURS_BGR[int(d.labels[i]) % len(CLASS_COLOURS_BGR)] if d.labels[i] >= 0 else (200, 200, 200)
            cv2.rectangle(img, (x1, y1), (x2, y2), colour, thick)
            tid = f"#{d.track_ids[i]}" if d.track_ids[i] else ""
            cv2.putText(img, f"{d.class_ids[i]}{tid} {d.scores[i]:.2f}", (x1, max(10, y1 - 3)),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.35 * scale, colour, 1, cv2.LINE_AA)
    if frame.target is not None:
        x1, y1, x2, y2 = (int(round(v)) for v in frame.target["box"])
        cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
        cv2.rectangle(img, (x1, y1), (x2, y2), TARGET_BGR, 3 * thick)
        cv2.drawMarker(img, (cx, cy), TARGET_BGR, cv2.MARKER_CROSS, 18 * thick, 2 * thick)
        cv2.putText(img, f"TARGET {frame.target['class_name']} #{frame.target['track_id']}", (x1, y2 + int(14 * scale)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.45 * scale, TARGET_BGR, thick, cv2.LINE_AA)
    status = f"frame {frame.index}"
    if d is None:
        status += "  DROPPED (node busy)"
    elif frame.latency_ms is not None:
        status += f"  latency {frame.latency_ms:.0f} ms  {len(d)} dets"
    cv2.rectangle(img, (0, 0), (img.shape[1], int(20 * scale)), (0, 0, 0), -1)
    cv2.putText(img, status, (4, int(14 * scale)), cv2.FONT_HERSHEY_SIMPLEX, 0.45 * scale, (255, 255, 255), 1,
                cv2.LINE_AA)
    if untrained:
        text = "UNTRAINED WEIGHTS: detections are noise"
        cv2.putText(img, text, (4, img.shape[0] - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, (0, 0, 255), thick + 1,
                    cv2.LINE_AA)
    return img


def _open_writer(path: Path, fps: float, size: tuple[int, int]) -> tuple[cv2.VideoWriter, Path]:
    for suffix, fourcc in ((".mp4", "mp4v"), (".avi", "MJPG")):
        target = path.with_suffix(suffix)
        writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*fourcc), fps, size)
        if writer.isOpened():
            return writer, target
        writer.release()
    raise RuntimeError(f"OpenCV cannot write a video to {path} (neither mp4v nor MJPG)")


def write_video(source_bag: str | Path, analysis: ReplayAnalysis, path: str | Path, truth: GroundTruthIndex | None,
                untrained: bool, fps: float = 10.0, image_topic: str = "/camera/image_raw") -> tuple[Path, np.ndarray | None]:
    """Annotated video of every played frame; returns its path and a representative annotated frame (RGB)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = None
    sample, sample_rank = None, -1.0
    try:
        with BagFile(source_bag) as bag:
            for frame, img in zip(analysis.frames, bag.image_frames(image_topic)):
                gt = truth.lookup(frame.stamp_ns, frame.index) if truth is not None else None
                out = annotate(img.image if img.color == "bgr" else img.image[..., ::-1], frame,
                               analysis.class_names, gt, untrained)
                if writer is None:
                    writer, path = _open_writer(path, fps, (out.shape[1], out.shape[0]))
                writer.write(out)
                # sample: a frame with a target, as late as possible (the tracker has settled)
                rank = frame.index + (1e6 if frame.target is not None else 0)
                if rank > sample_rank:
                    sample, sample_rank = out[..., ::-1].copy(), rank
    finally:
        if writer is not None:
            writer.release()
    return path, sample


def write_summary_png(analysis: ReplayAnalysis, sample_rgb: np.ndarray | None, path: str | Path, title: str,
                      truth: GroundTruthIndex | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames = analysis.frames
    idx = np.array([f.index for f in frames])
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5), dpi=100)
    ax = axes[0, 0]
    if sample_rgb is not None:
        ax.imshow(sample_rgb)
    ax.set_axis_off()
    ax.set_title("annotated frame (yellow: grasp target, white: ground truth)", fontsize=9)

    ax = axes[0, 1]
    lat = np.array([np.nan if f.latency_ms is None else f.latency_ms for f in frames])
    ax.plot(idx, lat, ".-", lw=1, label="image published -> detections received")
    for q, style in ((50, "--"), (95, ":")):
        v = analysis.latency_percentile(q)
        if np.isfinite(v):
            ax.axhline(v, ls=style, color="k", lw=1, label=f"p{q} {v:.0f} ms")
    dropped = [f.index for f in frames if f.detections is None]
    if dropped:
        ax.plot(dropped, np.zeros(len(dropped)), "rx", label=f"dropped ({len(dropped)})")
    ax.set_xlabel("frame")
    ax.set_ylabel("latency (ms)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)

    ax = axes[1, 0]
    n_det = np.array([np.nan if f.detections is None else len(f.detections) for f in frames])
    ax.plot(idx, n_det, ".-", lw=1, label="detections published (gaps: dropped)")
    if truth is not None:
        n_gt = [0 if (g := truth.lookup(f.stamp_ns, f.index)) is None else len(g.labels) for f in frames]
        ax.plot(idx, n_gt, lw=1.5, label="ground-truth objects")
    ax.set_xlabel("frame")
    ax.set_ylabel("count")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)

    ax = axes[1, 1]
    ids = sorted({f.target["track_id"] for f in frames if f.target is not None})
    if ids:
        for f in frames:
            if f.target is not None:
                ax.plot(f.index, ids.index(f.target["track_id"]), "s", color="goldenrod", ms=4)
        ax.set_yticks(range(len(ids)), [f"#{i}" for i in ids])
    else:
        ax.text(0.5, 0.5, "no grasp target chosen", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlim(idx.min() - 1 if len(idx) else 0, idx.max() + 1 if len(idx) else 1)
    ax.set_xlabel("frame")
    ax.set_ylabel("target track id")
    ax.set_title(f"grasp target: {len(analysis.target_runs)} run(s), "
                 f"{max(0, len(analysis.target_runs) - 1)} switch(es)", fontsize=9)
    ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)
