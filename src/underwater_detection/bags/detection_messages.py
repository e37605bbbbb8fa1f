"""``vision_msgs/Detection2DArray`` <-> arrays, for rosbags messages (writing) and any message object (reading).

Conventions (the same as the detector node's, so a bag written by ``uwdet bag-eval`` and one recorded from
the node compare field by field):

* the array's header and every ``Detection2D.header`` = the image's header (stamp and frame_id);
* one ``ObjectHypothesisWithPose`` per detection: ``class_id`` = class *name* (``"sea_urchin"``), ``score``
  in [0, 1], pose zero with identity orientation (a 2D detector has no pose);
* ``bbox.center.position`` = box centre, ``size_x``/``size_y`` = width/height, in ORIGINAL image pixels,
  ``theta`` = 0;
* ``Detection2D.id`` = the temporal track id as a decimal string, ``""`` when untracked (track id -1).

Reading (:func:`parse_detection_array`) only touches attributes, so it works on rosbags-deserialised
messages and on rclpy messages alike (the grasp-target node uses it too). ``class_id`` is mapped to a label
by normalised name (``"Sea urchin"`` = ``sea_urchin``) or, if it is a decimal number, as an index.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..data.class_names import normalize_class_name


@dataclass
class ParsedDetections:
    """One Detection2DArray as arrays. ``labels`` are -1 for class ids not in ``class_names``."""

    stamp_ns: int
    frame_id: str
    boxes: np.ndarray  # (N, 4) float64 x1, y1, x2, y2 pixels
    scores: np.ndarray  # (N,)
    labels: np.ndarray  # (N,) int64
    class_ids: list[str]
    track_ids: list[str]

    def __len__(self) -> int:
        return int(self.scores.shape[0])


def class_label(class_id: str, class_names: Sequence[str]) -> int:
    """Label index of ``class_id`` (a name, or a decimal index), -1 if it is not one of ``class_names``."""
    key = normalize_class_name(class_id)
    for i, name in enumerate(class_names):
        if normalize_class_name(name) == key:
            return i
    text = str(class_id).strip()
    if text.isdigit() and int(text) < len(class_names):
        return int(text)
    return -1


def parse_detection_array(msg: Any, class_names: Sequence[str] = ()) -> ParsedDetections:
    """Detection2DArray (any object with the message's attributes) -> :class:`ParsedDetections`.

    A detection with several hypotheses counts with its best-scoring one; one with none gets class ``""``
    and score 0.
    """
    boxes, scores, class_ids, track_ids = [], [], [], []
    for det in msg.detections:
        cx, cy = float(det.bbox.center.position.x), float(det.bbox.center.position.y)
        w, h = float(det.bbox.size_x), float(det.bbox.size_y)
        boxes.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
        best = max(det.results, key=lambda r: float(r.hypothesis.score), default=None)
        class_ids.append("" if best is None else str(best.hypothesis.class_id))
        scores.append(0.0 if best is None else float(best.hypothesis.score))
        track_ids.append(str(det.id))
    labels = np.array([class_label(c, class_names) for c in class_ids], np.int64)
    stamp = msg.header.stamp
    return ParsedDetections(
        stamp_ns=int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec),
        frame_id=str(msg.header.frame_id),
        boxes=np.asarray(boxes, np.float64).reshape(-1, 4),
        scores=np.asarray(scores, np.float64),
        labels=labels,
        class_ids=class_ids,
        track_ids=track_ids,
    )


def track_id_text(track_id: int) -> str:
    return "" if int(track_id) < 0 else str(int(track_id))


def detections_to_message(detections: Any, header: Any, typestore: Any) -> Any:
    """``engine.temporal.Detections`` + the image's header -> a rosbags ``Detection2DArray``."""
    t = typestore.types
    dets = []
    for box, score, label, track in zip(detections.boxes, detections.scores, detections.labels, detections.track_ids):
        x1, y1, x2, y2 = (float(v) for v in box)
        hyp = t["vision_msgs/msg/ObjectHypothesisWithPose"](
            hypothesis=t["vision_msgs/msg/ObjectHypothesis"](
                class_id=str(detections.class_names[int(label)]), score=float(score)),
            pose=t["geometry_msgs/msg/PoseWithCovariance"](
                pose=t["geometry_msgs/msg/Pose"](
                    position=t["geometry_msgs/msg/Point"](x=0.0, y=0.0, z=0.0),
                    orientation=t["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0)),
                covariance=np.zeros(36)))
        bbox = t["vision_msgs/msg/BoundingBox2D"](
            center=t["vision_msgs/msg/Pose2D"](
                position=t["vision_msgs/msg/Point2D"](x=(x1 + x2) / 2, y=(y1 + y2) / 2), theta=0.0),
            size_x=x2 - x1, size_y=y2 - y1)
        dets.append(t["vision_msgs/msg/Detection2D"](header=header, results=[hyp], bbox=bbox,
                                                     id=track_id_text(int(track))))
    return t["vision_msgs/msg/Detection2DArray"](header=header, detections=dets)
