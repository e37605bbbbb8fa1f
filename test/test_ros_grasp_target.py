"""grasp_target_node over real DDS: the node runs as its own process (``python -m ...grasp_target_node`` with
``config/grasp_target.yaml``); this test process publishes Detection2DArray + CameraInfo and listens.

Checks: the target stays on its object (track id) while a slightly better rival is present; every target
message carries the detection message's header; target_point is the box centre; target_bearing is K^-1 of it;
once detections stop, target_active turns false after target_timeout_s (not before) and nothing more is
published; parameter updates are accepted / refused with a reason.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

# ROS 2 is installed by `make setup`: a missing rclpy must FAIL here, never skip
from geometry_msgs.msg import PointStamped, Vector3Stamped  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo  # noqa: E402
from std_msgs.msg import Bool  # noqa: E402
from vision_msgs.msg import (  # noqa: E402
    Detection2D, Detection2DArray, ObjectHypothesis, ObjectHypothesisWithPose,
)

from ros_process_utils import RosProcess, TestPeer, fresh_domain_id, python_module, ros_env, wait_until  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
W, H = 640, 480
K = [500.0, 0.0, 320.0, 0.0, 500.0, 240.0, 0.0, 0.0, 1.0]
TIMEOUT_S = 0.6
NODE = "/grasp_target_node"
RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def detection(cx, cy, size, cls, score, track, header):
    d = Detection2D()
    d.header = header
    d.id = track
    d.bbox.center.position.x, d.bbox.center.position.y = float(cx), float(cy)
    d.bbox.size_x = d.bbox.size_y = float(size)
    hyp = ObjectHypothesisWithPose()
    hyp.hypothesis = ObjectHypothesis(class_id=cls, score=float(score))
    hyp.pose.pose.orientation.w = 1.0
    d.results = [hyp]
    return d


def array(i, dets):
    msg = Detection2DArray()
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1000 + i // 10, (i % 10) * 100_000_000
    msg.header.frame_id = "camera_optical_frame"
    msg.detections = [detection(*d, header=msg.header) for d in dets]
    return msg


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    domain = fresh_domain_id()
    log = tmp_path_factory.mktemp("grasp") / "grasp_node.log"
    args = python_module("underwater_detection.ros.grasp_target_node", "--params-file",
                         str(REPO / "config" / "grasp_target.yaml"), "-p", f"target_timeout_s:={TIMEOUT_S}",
                         "-p", "switch_frames:=3")
    with RosProcess(args, ros_env(domain), log) as proc:
        peer = TestPeer("grasp_test_peer", domain)
        try:
            for topic, kind in (("target", Detection2D), ("target_point", PointStamped),
                                ("target_bearing", Vector3Stamped)):
                peer.subscribe(kind, f"{NODE}/{topic}", RELIABLE)
            peer.subscribe(Bool, f"{NODE}/target_active", LATCHED)
            pubs = {
                "dets": peer.node.create_publisher(Detection2DArray, "/detector_node/detections", RELIABLE),
                "info": peer.node.create_publisher(CameraInfo, "/camera/camera_info", RELIABLE),
            }
            wait_until(lambda: proc.running() and pubs["dets"].get_subscription_count() >= 1
                       and peer.messages(f"{NODE}/target_active"),
                       60, "the grasp node to subscribe and latch target_active", proc.log)
            yield proc, peer, pubs
        finally:
            peer.close()


def test_target_is_stable_then_cleared_after_the_timeout(running):
    proc, peer, pubs = running
    assert peer.messages(f"{NODE}/target_active")[-1].data is False  # latched initial state
    info = CameraInfo(width=W, height=H, k=K, d=[0.0] * 5, distortion_model="plumb_bob")
    info.header.frame_id = "camera_optical_frame"
    for _ in range(3):
        pubs["info"].publish(info)
        time.sleep(0.05)
    time.sleep(0.3)
    sent = []
    for i in range(30):
        rival_score = 0.85 if i >= 10 else 0.3  # from frame 10 on, a rival slightly better than the target
        msg = array(i, [(320 + i, 400, 60, "sea_urchin", 0.8, "5"),  # in the reach area, moving slowly
                        (330, 410, 60, "sea_urchin", rival_score, "9"),
                        (30, 30, 60, "starfish", 0.99, "3")])  # not graspable
        pubs["dets"].publish(msg)
        sent.append(msg)
        time.sleep(0.05)
    last_publish = time.monotonic()
    wait_until(lambda: len(peer.messages(f"{NODE}/target")) >= 30, 10, "30 target messages", proc.log)
    targets = peer.messages(f"{NODE}/target")
    assert [t.id for t in targets] == ["5"] * 30, proc.log()
    assert [(t.header.stamp.sec, t.header.stamp.nanosec) for t in targets] == \
           [(m.header.stamp.sec, m.header.stamp.nanosec) for m in sent]

    wait_until(lambda: len(peer.messages(f"{NODE}/target_bearing")) >= 30, 10, "30 bearings", proc.log)
    point = peer.messages(f"{NODE}/target_point")[-1]
    assert (point.point.x, point.point.y, point.header.frame_id) == (320.0 + 29, 400.0, "camera_optical_frame")
    bearing = peer.messages(f"{NODE}/target_bearing")[-1].vector
    ray = np.array([(349 - 320) / 500, (400 - 240) / 500, 1.0])
    np.testing.assert_allclose([bearing.x, bearing.y, bearing.z], ray / np.linalg.norm(ray), atol=1e-9)

    wait_until(lambda: peer.messages(f"{NODE}/target_active")[-1].data is False, TIMEOUT_S + 3,
               "target_active to turn false", proc.log)
    cleared_at = next(t for t, m in reversed(peer.timed(f"{NODE}/target_active")) if m.data is False)
    assert [m.data for m in peer.messages(f"{NODE}/target_active")] == [False, True, False]
    assert TIMEOUT_S - 0.05 <= cleared_at - last_publish <= TIMEOUT_S + 1.0
    time.sleep(0.3)
    assert len(peer.messages(f"{NODE}/target")) == 30  # nothing published after the last detection
    assert proc.alive()


def test_parameter_updates_are_accepted_or_refused_with_a_reason(running):
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    proc, peer, _ = running
    client = peer.node.create_client(SetParameters, f"{NODE}/set_parameters")
    assert client.wait_for_service(timeout_sec=20), proc.log()

    def set_params(*params):
        future = client.call_async(SetParameters.Request(parameters=[p.to_parameter_msg() for p in params]))
        wait_until(future.done, 10, "set_parameters response", proc.log)
        return future.result().results

    (ok,) = set_params(Parameter("min_score", Parameter.Type.DOUBLE, 0.25))
    assert ok.successful
    (bad,) = set_params(Parameter("reach_area", Parameter.Type.DOUBLE_ARRAY, [0.9, 0.0, 0.1, 1.0]))
    assert not bad.successful and "reach_area" in bad.reason
    (bad,) = set_params(Parameter("graspable_classes", Parameter.Type.STRING_ARRAY, []))
    assert not bad.successful
    assert proc.alive()
