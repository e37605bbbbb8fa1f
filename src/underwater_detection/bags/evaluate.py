"""``uwdet bag-eval``: run a checkpoint over a bag's camera topic, write its detections, score them.

The bag's frames go through :class:`TemporalDetector` one by one in log-time order, as one stream per
``frame_id`` with the header stamp as time -- exactly what the detector node does with live messages, so
``bag-eval`` predicts what the node will publish (the test suite checks they agree frame for frame).

* ``pace="fast"``: each frame starts as soon as the previous one is done (throughput of the pipeline).
  ``pace="recorded"``: frame i is released at its recorded offset (log time), like a live camera; when
  processing is slower than the camera, frames queue up (none is dropped, unlike the node, so accuracy is
  comparable) and the queueing shows up in latency.
* latency per frame = result ready - frame released, covering decode + preprocess + forward + NMS + tracking.
  FPS = frames / wall time of the run; ``processing_fps`` = 1000 / mean latency in fast mode.
* Accuracy: VOC mAP@0.5 (``engine.voc_eval``) and the COCO AP family (``engine.evaluation.coco_metrics``)
  over the frames that have ground truth (matched by header stamp, see ``bags.ground_truth``).
* Output bag (optional): the detections as ``vision_msgs/Detection2DArray`` (conventions in
  ``bags.detection_messages``), log time = the image's log time, header = the image's header.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .ground_truth import GroundTruthIndex, ground_truth_from_coco, ground_truth_from_topic
from .reader import DETECTION_ARRAY_TYPE, BagError, BagFile, decode_image_message

DEFAULT_IMAGE_TOPIC = "/camera/image_raw"
DEFAULT_GT_TOPIC = "/ground_truth"
DEFAULT_OUT_TOPIC = "/detector_node/detections"
PACES = ("recorded", "fast")


@dataclass
class BagEvalOptions:
    bag: Path
    checkpoint: Path
    image_topic: str = DEFAULT_IMAGE_TOPIC
    gt_topic: str | None = None  # None: DEFAULT_GT_TOPIC if the bag has it
    gt_coco: Path | None = None
    gt_video: str | None = None
    pace: str = "fast"
    rate: float = 1.0
    key_interval: int | None = None
    soft_coefficient: float | None = None
    score_threshold: float | None = None
    device: str = "auto"
    input_size: tuple[int, int] | None = None  # (height, width); None: the checkpoint's own
    out_bag: Path | None = None
    out_topic: str = DEFAULT_OUT_TOPIC
    overwrite: bool = False
    max_frames: int | None = None


@dataclass
class BagEvalReport:
    bag: str
    checkpoint: str
    model: str
    untrained: bool
    input_size: list[int]
    image_topic: str
    ground_truth: str | None
    pace: str
    frames: int
    frames_with_ground_truth: int
    key_frames: int
    resets: int
    key_interval: int | None
    soft_coefficient: float | None
    voc_map50: float | None
    voc_map50_11pt: float | None
    ap50_per_class: dict[str, float | None]
    coco: dict[str, float | None]
    latency_ms: dict[str, float]
    fps: float
    processing_fps: float
    detections_per_frame: float
    out_bag: str | None
    per_frame: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def to_dict(self, per_frame: bool = False) -> dict[str, Any]:
        out = {k: _finite_or_none(v) for k, v in self.__dict__.items() if k != "per_frame"}
        if per_frame:
            out["per_frame"] = self.per_frame
        return out


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    return value


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, np.float64), q)) if values else float("nan")


def load_ground_truth(bag: BagFile, opts: BagEvalOptions, class_names: tuple[str, ...]) -> GroundTruthIndex | None:
    if opts.gt_coco is not None:
        if opts.gt_topic is not None:
            raise BagError("give either --gt-topic or --gt-coco, not both")
        return ground_truth_from_coco(opts.gt_coco, class_names, video=opts.gt_video, bag_name=bag.path.name)
    topic = opts.gt_topic
    if topic is None:
        if DEFAULT_GT_TOPIC not in bag.topics:
            return None  # nothing to score against: speed only
        topic = DEFAULT_GT_TOPIC
    return ground_truth_from_topic(bag, topic, class_names)


def run_bag_eval(opts: BagEvalOptions, progress: Callable[[int, int], None] | None = None) -> BagEvalReport:
    """Detect every frame of ``opts.bag`` (see the module docstring); raise ``BagError``/``ValueError`` on bad
    input and ``CheckpointError`` on a bad checkpoint."""
    from ..data.synthetic.ros_types import get_typestore
    from ..engine.evaluation import coco_metrics
    from ..engine.temporal import TemporalDetector
    from ..engine.voc_eval import GroundTruth, Prediction, evaluate_voc
    from ..models.checkpoint import read_checkpoint
    from ..models.random_weights import is_untrained
    from ..ops.postprocess import PostprocessConfig

    if opts.pace not in PACES:
        raise ValueError(f"pace must be one of {PACES}, got {opts.pace!r}")
    if not (math.isfinite(opts.rate) and opts.rate > 0):
        raise ValueError(f"rate must be > 0, got {opts.rate}")
    with BagFile(opts.bag) as bag:
        info = bag.require_topic(opts.image_topic, ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"))
        ckpt_meta = read_checkpoint(opts.checkpoint)
        options: dict[str, Any] = {"tracking": True}
        if opts.key_interval is not None:
            options["key_interval"] = opts.key_interval
        if opts.soft_coefficient is not None:
            options["soft_coefficient"] = opts.soft_coefficient
        if opts.score_threshold is not None:
            pp = ckpt_meta.spec.postprocess
            options["postprocess_config"] = PostprocessConfig(
                score_threshold=opts.score_threshold, nms_iou=pp.nms_iou, pre_nms_top_k=pp.pre_nms_top_k,
                max_detections=pp.max_detections)
        detector = TemporalDetector.from_checkpoint(opts.checkpoint, device=opts.device, input_size=opts.input_size,
                                                    **options)
        names = detector.class_names
        truth = load_ground_truth(bag, opts, names)
        total = info.count if opts.max_frames is None else min(info.count, opts.max_frames)

        typestore = get_typestore()
        writer = None
        if opts.out_bag is not None:
            from .writer import BagWriter

            writer = BagWriter(opts.out_bag, overwrite=opts.overwrite).__enter__()
            writer.add_topic(opts.out_topic, DETECTION_ARRAY_TYPE)

        preds, gts, sizes, latencies, per_frame = [], [], [], [], []
        n_dets = 0
        start_wall = time.perf_counter()
        first_log: int | None = None
        try:
            frames = bag.messages([opts.image_topic])
            for index in range(total):
                # timing starts before decoding: decoding is part of what the node pays per frame
                if opts.pace == "recorded":
                    peek = next(frames, None)
                    if peek is None:
                        break
                    _, log_time, msg = peek
                    if first_log is None:
                        first_log = log_time
                    release = start_wall + (log_time - first_log) / 1e9 / opts.rate
                    wait = release - time.perf_counter()
                    if wait > 0:
                        time.sleep(wait)
                else:
                    release = time.perf_counter()
                    peek = next(frames, None)
                    if peek is None:
                        break
                    _, log_time, msg = peek
                frame = decode_image_message(msg, info.msgtype, index, log_time,
                                             where=f"{opts.image_topic} message #{index}")
                dets = detector.detect(frame.image, frame.stamp_s, frame.frame_id, color=frame.color)
                latency = (time.perf_counter() - release) * 1e3
                latencies.append(latency)
                n_dets += len(dets)
                if writer is not None:
                    out_msg = _detections_message(dets, msg.header, typestore)
                    writer.write(opts.out_topic, log_time, out_msg)
                gt = truth.lookup(frame.stamp_ns, index) if truth is not None else None
                if gt is not None:
                    preds.append(Prediction(dets.boxes, dets.scores, dets.labels))
                    gts.append(GroundTruth(gt.boxes, gt.labels, gt.difficult))
                    sizes.append(dets.image_size)
                per_frame.append({"index": index, "stamp_ns": frame.stamp_ns, "detections": len(dets),
                                  "key_frame": dets.is_key_frame, "latency_ms": round(latency, 3),
                                  "has_ground_truth": gt is not None})
                if progress is not None:
                    progress(index + 1, total)
        finally:
            if writer is not None:
                writer.close()
        wall = time.perf_counter() - start_wall
    frames_done = len(latencies)
    if frames_done == 0:
        raise BagError(f"topic {opts.image_topic} in {opts.bag} has no messages")

    voc50 = voc11 = None
    per_class: dict[str, float | None] = {n: None for n in names}
    coco: dict[str, float | None] = {}
    if preds:
        voc = evaluate_voc(preds, gts, len(names))
        voc50 = voc.mean_ap
        voc11 = evaluate_voc(preds, gts, len(names), use_11_point=True).mean_ap
        per_class = {n: float(a) for n, a in zip(names, voc.ap_per_class)}
        # pycocotools reports -1 for an area range without ground truth: undefined, not a score
        coco = {k: (v if v >= 0 else None) for k, v in coco_metrics(preds, gts, sizes, names).items()}
    mean_latency = float(np.mean(latencies))
    return BagEvalReport(
        bag=str(opts.bag), checkpoint=str(opts.checkpoint), model=detector.spec.name,
        untrained=is_untrained(ckpt_meta.provenance), input_size=list(detector.spec.input_size),
        image_topic=opts.image_topic,
        ground_truth=None if truth is None else truth.source, pace=opts.pace, frames=frames_done,
        frames_with_ground_truth=len(preds), key_frames=detector.stats["key_frames"], resets=detector.stats["resets"],
        key_interval=detector.key_interval if detector.is_temporal else None,
        soft_coefficient=detector.soft_coefficient if detector.is_temporal else None,
        voc_map50=voc50, voc_map50_11pt=voc11, ap50_per_class=per_class, coco=coco,
        latency_ms={"p50": _percentile(latencies, 50), "p95": _percentile(latencies, 95), "mean": mean_latency,
                    "max": float(max(latencies))},
        fps=frames_done / wall if wall > 0 else float("inf"),
        processing_fps=1000.0 / mean_latency if mean_latency > 0 else float("inf"),
        detections_per_frame=n_dets / frames_done,
        out_bag=None if opts.out_bag is None else str(opts.out_bag),
        per_frame=per_frame,
    )


def _detections_message(dets: Any, image_header: Any, typestore: Any) -> Any:
    from .detection_messages import detections_to_message

    return detections_to_message(dets, image_header, typestore)


def format_report(report: BagEvalReport) -> str:
    """The short human-readable table printed by ``uwdet bag-eval``."""
    def pct(v: float | None) -> str:
        return "-" if v is None or not math.isfinite(v) else f"{100 * v:.1f}"

    lines = []
    if report.untrained:
        lines.append("WARNING: the checkpoint is NOT TRAINED (random weights): accuracy figures are meaningless")
    k = "-" if report.key_interval is None else str(report.key_interval)
    e = "-" if report.soft_coefficient is None else f"{report.soft_coefficient:g}"
    size = "x".join(str(v) for v in report.input_size)
    lines.append(f"bag-eval {report.model} at {size} (k={k}, e={e}) on {report.bag} [{report.image_topic}], "
                 f"pace {report.pace}")
    lines.append(f"ground truth: {report.ground_truth or 'none (speed only)'}; "
                 f"{report.frames_with_ground_truth}/{report.frames} frames scored")
    lines.append("| frames | key frames | mAP@0.5 | mAP@0.5 (11pt) | COCO AP | AP50 | AP75 | latency p50 ms | p95 ms | FPS | dets/frame |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
    c = report.coco
    lines.append(
        f"| {report.frames} | {report.key_frames} | {pct(report.voc_map50)} | {pct(report.voc_map50_11pt)} | "
        f"{pct(c.get('AP'))} | {pct(c.get('AP50'))} | {pct(c.get('AP75'))} | {report.latency_ms['p50']:.1f} | "
        f"{report.latency_ms['p95']:.1f} | {report.fps:.1f} | {report.detections_per_frame:.1f} |")
    if report.voc_map50 is not None:
        lines.append("AP@0.5 per class: " + ", ".join(f"{n} {pct(a)}" for n, a in report.ap50_per_class.items()))
    return "\n".join(lines)


def write_report_json(report: BagEvalReport, path: str | Path, per_frame: bool = True) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_dict(per_frame=per_frame), indent=2, allow_nan=False))
    return path
