"""Score a live replay: what the nodes published (a recorded bag) against the bag that was played.

Used by ``uwdet demo`` after ``bag-play`` -> detector node + grasp-target node -> ``bag-record``; plain
rosbags + numpy, no rclpy, so it also runs on recordings from the vehicle.

* Frames are matched by header stamp: each played image either has a recorded Detection2DArray with its stamp
  or was **dropped** (the node keeps only the newest frame when it falls behind, by design).
* **Latency** per frame = reception of its detections by the recorder - publication of the image by the
  player, both on the wall clock of the same machine (the player's ``--publish-log``): transport + queueing
  + decoding + inference + publication, i.e. what a consumer of the detections sees.
* **FPS** = detection messages per second of recording (output rate; at most the camera rate).
* **mAP** (VOC@0.5, COCO AP) over all played frames (a dropped frame counts as "nothing detected") and over
  the processed frames only.
* **Targets**: the grasp node's ``~/target`` messages grouped into runs of the same track id, and the
  ``~/target_active`` transitions.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .detection_messages import ParsedDetections, parse_detection_array
from .ground_truth import GroundTruthIndex
from .reader import BagFile, stamp_to_ns


@dataclass
class FrameRecord:
    index: int
    stamp_ns: int
    published_wall_ns: int | None
    detections: ParsedDetections | None  # None: dropped
    received_wall_ns: int | None
    image_size: tuple[int, int] = (0, 0)  # (height, width)
    target: dict[str, Any] | None = None

    @property
    def latency_ms(self) -> float | None:
        if self.published_wall_ns is None or self.received_wall_ns is None:
            return None
        return (self.received_wall_ns - self.published_wall_ns) / 1e6


@dataclass
class TargetRun:
    track_id: str
    class_name: str
    first_stamp_ns: int
    last_stamp_ns: int
    messages: int


@dataclass
class ReplayAnalysis:
    frames: list[FrameRecord]
    class_names: tuple[str, ...]
    voc_map50_all: float | None = None
    voc_map50_processed: float | None = None
    coco_ap_all: float | None = None
    ap50_per_class: dict[str, float | None] = field(default_factory=dict)
    output_fps: float = float("nan")
    input_fps: float = float("nan")
    target_runs: list[TargetRun] = field(default_factory=list)
    active_transitions: list[tuple[int, bool]] = field(default_factory=list)  # (wall ns, active)
    diagnostics: dict[str, str] = field(default_factory=dict)  # the node's last report: final totals
    # The node's last report received while the replay was still running (no later than the last frame
    # published or the last detections received, whichever came later): its window rates describe the
    # playback, where the last report's windows also take in the idle seconds after it (a 10 FPS replay read
    # as 4.4 Hz before this was split). The node's window is 5 s, so a replay shorter than that still reads
    # low: the rate is counted over the whole window.
    diagnostics_while_playing: dict[str, str] = field(default_factory=dict)

    @property
    def processed(self) -> int:
        return sum(f.detections is not None for f in self.frames)

    @property
    def dropped(self) -> int:
        return len(self.frames) - self.processed

    def latencies_ms(self) -> list[float]:
        return [f.latency_ms for f in self.frames if f.latency_ms is not None]

    def latency_percentile(self, q: float) -> float:
        values = self.latencies_ms()
        return float(np.percentile(values, q)) if values else float("nan")

    def to_dict(self) -> dict[str, Any]:
        def clean(v: Any) -> Any:
            return None if isinstance(v, float) and not math.isfinite(v) else v

        return {
            "frames": len(self.frames), "processed": self.processed, "dropped": self.dropped,
            "voc_map50_all_frames": clean(self.voc_map50_all), "voc_map50_processed_frames": clean(self.voc_map50_processed),
            "coco_ap_all_frames": clean(self.coco_ap_all),
            "ap50_per_class": {k: clean(v) for k, v in self.ap50_per_class.items()},
            "latency_ms": {"p50": clean(self.latency_percentile(50)), "p95": clean(self.latency_percentile(95)),
                           "max": clean(max(self.latencies_ms(), default=float("nan")))},
            "output_fps": clean(self.output_fps), "input_fps": clean(self.input_fps),
            "detections_per_processed_frame": clean(
                float(np.mean([len(f.detections) for f in self.frames if f.detections is not None]))
                if self.processed else float("nan")),
            "target_runs": [run.__dict__ for run in self.target_runs],
            "target_switches": max(0, len(self.target_runs) - 1),
            "frames_with_target": sum(f.target is not None for f in self.frames),
            "target_active_transitions": [{"wall_ns": t, "active": a} for t, a in self.active_transitions],
            "detector_diagnostics": self.diagnostics,
            "detector_diagnostics_while_playing": self.diagnostics_while_playing,
        }


def _rate(times_ns: Sequence[int]) -> float:
    if len(times_ns) < 2:
        return float("nan")
    span = (max(times_ns) - min(times_ns)) / 1e9
    return (len(times_ns) - 1) / span if span > 0 else float("nan")


def read_publish_log(path: str | Path, topic: str) -> dict[int, int]:
    """Player publish log -> {bag log time: wall publish time} for ``topic``."""
    out: dict[int, int] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                item = json.loads(line)
                if item["topic"] == topic:
                    out[int(item["log_time_ns"])] = int(item["wall_ns"])
    return out


def analyze_replay(
    source_bag: str | Path,
    recorded_bag: str | Path,
    class_names: Sequence[str],
    image_topic: str = "/camera/image_raw",
    detections_topic: str = "/detector_node/detections",
    target_topic: str = "/grasp_target_node/target",
    active_topic: str = "/grasp_target_node/target_active",
    publish_log: str | Path | None = None,
    ground_truth: GroundTruthIndex | None = None,
    diagnostics_name: str = "detector_node",
) -> ReplayAnalysis:
    class_names = tuple(class_names)
    published = read_publish_log(publish_log, image_topic) if publish_log else {}
    frames: list[FrameRecord] = []
    with BagFile(source_bag) as src:
        src.require_topic(image_topic, ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"))
        for index, (_, log_time, msg) in enumerate(src.messages([image_topic])):
            size = (int(getattr(msg, "height", 0)), int(getattr(msg, "width", 0)))
            frames.append(FrameRecord(index, stamp_to_ns(msg.header.stamp), published.get(log_time), None, None, size))
    by_stamp = {f.stamp_ns: f for f in frames}

    analysis = ReplayAnalysis(frames, class_names)
    published_times = [f.published_wall_ns for f in frames if f.published_wall_ns is not None]
    det_times: list[int] = []
    with BagFile(recorded_bag) as rec:
        topics = rec.topics
        if detections_topic in topics:
            for _, log_time, msg in rec.messages([detections_topic]):
                parsed = parse_detection_array(msg, class_names)
                det_times.append(log_time)
                frame = by_stamp.get(parsed.stamp_ns)
                if frame is not None and frame.detections is None:
                    frame.detections, frame.received_wall_ns = parsed, log_time
        runs: list[TargetRun] = []
        if target_topic in topics:
            for _, _, det in rec.messages([target_topic]):
                stamp = stamp_to_ns(det.header.stamp)
                best = max(det.results, key=lambda r: float(r.hypothesis.score), default=None)
                cls = "" if best is None else str(best.hypothesis.class_id)
                cx, cy = float(det.bbox.center.position.x), float(det.bbox.center.position.y)
                w, h = float(det.bbox.size_x), float(det.bbox.size_y)
                frame = by_stamp.get(stamp)
                if frame is not None:
                    frame.target = {"track_id": str(det.id), "class_name": cls,
                                    "score": 0.0 if best is None else float(best.hypothesis.score),
                                    "box": [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]}
                if runs and runs[-1].track_id == str(det.id):
                    runs[-1].last_stamp_ns, runs[-1].messages = stamp, runs[-1].messages + 1
                else:
                    runs.append(TargetRun(str(det.id), cls, stamp, stamp, 1))
        analysis.target_runs = runs
        if active_topic in topics:
            analysis.active_transitions = [(t, bool(m.data)) for _, t, m in rec.messages([active_topic])]
        if "/diagnostics" in topics:
            # Detections and the publish log are both wall-clock ns on this machine; with no detections at all
            # (every frame failed) the last published frame still bounds the playback.
            last_output = max([*det_times, *published_times], default=None)
            for _, log_time, msg in rec.messages(["/diagnostics"]):
                for status in msg.status:
                    if diagnostics_name in str(status.name):
                        values = {str(kv.key): str(kv.value) for kv in status.values}
                        analysis.diagnostics = values
                        if last_output is not None and log_time <= last_output:
                            analysis.diagnostics_while_playing = values
    analysis.output_fps = _rate(det_times)
    analysis.input_fps = _rate(published_times)
    if ground_truth is not None:
        _score(analysis, ground_truth)
    return analysis


def _score(analysis: ReplayAnalysis, truth: GroundTruthIndex) -> None:
    from ..engine.evaluation import coco_metrics
    from ..engine.voc_eval import GroundTruth, Prediction, evaluate_voc

    names = analysis.class_names
    preds_all, gts_all, preds_done, gts_done, sizes = [], [], [], [], []
    for frame in analysis.frames:
        gt = truth.lookup(frame.stamp_ns, frame.index)
        if gt is None:
            continue
        d = frame.detections
        keep = None if d is None else d.labels >= 0
        pred = (Prediction(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64)) if d is None
                else Prediction(d.boxes[keep], d.scores[keep], d.labels[keep]))
        g = GroundTruth(gt.boxes, gt.labels, gt.difficult)
        preds_all.append(pred)
        gts_all.append(g)
        sizes.append(frame.image_size)
        if d is not None:
            preds_done.append(pred)
            gts_done.append(g)
    if not preds_all:
        return
    voc = evaluate_voc(preds_all, gts_all, len(names))
    analysis.voc_map50_all = voc.mean_ap
    analysis.ap50_per_class = {n: (float(a) if math.isfinite(a) else None) for n, a in zip(names, voc.ap_per_class)}
    if preds_done:
        analysis.voc_map50_processed = evaluate_voc(preds_done, gts_done, len(names)).mean_ap
    analysis.coco_ap_all = coco_metrics(preds_all, gts_all, sizes, names)["AP"]
