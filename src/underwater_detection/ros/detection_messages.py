"""``engine.temporal.Detections`` -> ``vision_msgs/Detection2DArray`` and the class map -> ``LabelInfo``.

Conventions (the same as ``bags/detection_messages.py``, so bags written by ``uwdet bag-eval`` and bags
recorded from this node compare field by field):

* the array's header and every ``Detection2D.header`` are the image's header (stamp and frame_id);
* an image without objects still gets an (empty) array, so consumers can tell "nothing there" from "no data";
* one ``ObjectHypothesisWithPose`` per detection; ``class_id`` is the class **name** (``"sea_urchin"``) by
  default, or the label index as a decimal string (``"1"``) with ``class_id_mode: index``; ``LabelInfo``
  maps index <-> name either way; ``score`` in [0, 1]; pose zero with identity orientation (2D detector);
* ``bbox.center.position`` = box centre, ``size_x``/``size_y`` = width/height, in pixels of the ORIGINAL image
  (not the network input), ``theta`` = 0;
* ``Detection2D.id`` = the temporal track id as a decimal string, ``""`` when untracked (track id -1).
"""
from __future__ import annotations

from typing import Any, Sequence

from vision_msgs.msg import (
    BoundingBox2D,
    Detection2D,
    Detection2DArray,
    LabelInfo,
    ObjectHypothesis,
    ObjectHypothesisWithPose,
    VisionClass,
)

from ..bags.detection_messages import track_id_text

CLASS_ID_MODES = ("name", "index")


def class_id_text(label: int, class_names: Sequence[str], mode: str = "name") -> str:
    """The ``ObjectHypothesis.class_id`` for ``label`` under ``mode`` (``"name"`` or ``"index"``)."""
    if mode == "name":
        return str(class_names[int(label)])
    if mode == "index":
        return str(int(label))
    raise ValueError(f"class_id_mode must be one of {CLASS_ID_MODES}, got {mode!r}")


def detections_to_msg(detections: Any, header: Any, class_id_mode: str = "name") -> Detection2DArray:
    """One frame's ``Detections`` (boxes in original-image pixels) + the image header -> Detection2DArray."""
    out = Detection2DArray()
    out.header = header
    items = []
    for box, score, label, track in zip(
        detections.boxes, detections.scores, detections.labels, detections.track_ids
    ):
        x1, y1, x2, y2 = (float(v) for v in box)
        det = Detection2D()
        det.header = header
        det.id = track_id_text(int(track))
        bbox = BoundingBox2D()
        bbox.center.position.x = (x1 + x2) / 2.0
        bbox.center.position.y = (y1 + y2) / 2.0
        bbox.center.theta = 0.0
        bbox.size_x = x2 - x1
        bbox.size_y = y2 - y1
        det.bbox = bbox
        hypothesis = ObjectHypothesisWithPose()
        hypothesis.hypothesis = ObjectHypothesis(
            class_id=class_id_text(int(label), detections.class_names, class_id_mode),
            score=min(max(float(score), 0.0), 1.0),
        )
        hypothesis.pose.pose.orientation.w = 1.0
        det.results = [hypothesis]
        items.append(det)
    out.detections = items
    return out


def label_info_msg(class_names: Sequence[str], threshold: float, header: Any) -> LabelInfo:
    """The class map (``class_id`` = label index, ``class_name`` = name) and the current score threshold."""
    msg = LabelInfo()
    msg.header = header
    msg.class_map = [VisionClass(class_id=i, class_name=str(name)) for i, name in enumerate(class_names)]
    msg.threshold = float(threshold)
    return msg
