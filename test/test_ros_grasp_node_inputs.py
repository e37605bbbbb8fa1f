"""grasp_target_node's input handling in-process (real rclpy node, callbacks called directly, no DDS traffic):
a malformed Detection2DArray from any publisher on the topic must not kill the node."""
from __future__ import annotations

import math

import pytest
import rclpy
from std_msgs.msg import Header
from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesis, ObjectHypothesisWithPose

from underwater_detection.ros.grasp_target_node import GraspTargetNode

from ros_process_utils import fresh_domain_id


def _detection(cx, cy, size, score=0.9, cls="sea_urchin", track="1"):
    d = Detection2D()
    d.id = track
    d.bbox.center.position.x, d.bbox.center.position.y = float(cx), float(cy)
    d.bbox.size_x = d.bbox.size_y = float(size)
    hyp = ObjectHypothesisWithPose()
    hyp.hypothesis = ObjectHypothesis(class_id=cls, score=float(score))
    d.results = [hyp]
    return d


@pytest.fixture()
def node():
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=fresh_domain_id())
    n = GraspTargetNode(context=ctx)
    try:
        yield n
    finally:
        n.destroy_node()
        rclpy.try_shutdown(context=ctx)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_boxes_and_scores_are_ignored_not_fatal(node, bad):
    """No CameraInfo and no image_width/height: the image size is guessed from the boxes, which used to raise
    on NaN/inf (math.ceil) inside the subscription callback and take the node down."""
    published = []
    node.pub_point.publish = published.append
    msg = Detection2DArray(header=Header(frame_id="cam"))
    msg.detections = [_detection(bad, 100, 40, track="7"), _detection(100, 100, bad, track="8"),
                      _detection(300, 400, 60, score=bad, track="9")]
    node._on_detections(msg)  # must not raise
    assert node.selector.target is None and published == []
    msg.detections.append(_detection(320, 420, 60, track="1"))
    node._on_detections(msg)
    assert node.selector.target is not None and node.selector.target.track_id == "1"
    assert len(published) == 1 and math.isfinite(published[0].point.x)
