"""Lifecycle of the detector node over real DDS, driven through its lifecycle services like `ros2 lifecycle set`.

The node is started through its console script (what `ros2 run` runs) with a params file derived from
config/detector.yaml, `autostart: false` and a missing model, so every transition is driven from here:
failed configures (missing, corrupt file) keep it alive and unconfigured; configure/activate/deactivate/
cleanup/shutdown do what they say; a temporal random-weights model shows k at work; compressed input and a
QoS mismatch are set up while inactive.
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from vision_msgs.msg import Detection2DArray

from detector_harness import NodeProcess, RosClient, fresh_domain_id
from underwater_detection.models.random_weights import write_random_checkpoint

REPO = Path(__file__).resolve().parents[2]
NODE = "detector_node"
TOPIC = "/lc/image"
H, W = 64, 80
FRAME = np.random.default_rng(5).integers(0, 256, (H, W, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lifecycle")
    model = write_random_checkpoint(tmp / "tdrnet_lite_random.pt", "tdrnet_lite", input_size=(128, 128))
    corrupt = tmp / "corrupt.pt"
    corrupt.write_bytes(model.read_bytes()[:5000])  # a truncated download
    doc = yaml.safe_load((REPO / "config" / "detector.yaml").read_text())
    values = doc["/**/detector_node"]["ros__parameters"]
    values.update(autostart=False, model_path=str(tmp / "missing.pt"), image_topic=TOPIC, threads=1,
                  score_threshold=0.9, key_interval=4)
    params_file = tmp / "detector.yaml"
    params_file.write_text(yaml.safe_dump(doc))
    script = Path(sys.executable).parent / "detector_node"
    assert script.is_file(), f"console script missing: {script} (setup.py entry point; run make setup)"
    domain = fresh_domain_id()
    node = NodeProcess(domain, tmp / "node.log", {}, extra_ros_args=["--params-file", str(params_file)],
                       command=[str(script)])
    client = RosClient(domain)
    yield node, client, model, corrupt
    client.close()
    code = node.stop()
    assert code == 0, f"node exited with {code}:\n{node.log()[-3000:]}"


def _raw(client: RosClient, frame_id: str) -> Image:
    msg = Image()
    msg.header.frame_id = frame_id
    msg.header.stamp = client.node.get_clock().now().to_msg()
    msg.height, msg.width, msg.encoding, msg.step = H, W, "rgb8", W * 3
    msg.data = FRAME.tobytes()
    return msg


def _answered(received: list, header) -> bool:
    return any(m.header == header for _, m in list(received))


def _send_until_answered(client, pub, make, received, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = make()
        pub.publish(msg)
        if client.wait_for(lambda: _answered(received, msg.header), 0.4):
            return msg
    raise AssertionError(f"no answer within {timeout} s")


def _last_diagnostics(client, received, after):
    assert client.wait_for(lambda: any(t > after for t, _ in received), 5.0), "no /diagnostics"
    status = [m for t, m in received if t > after][-1].status[0]
    return {kv.key: kv.value for kv in status.values}


def test_lifecycle_end_to_end(setup):
    node, client, model, corrupt = setup
    detections = client.collect(Detection2DArray, f"/{NODE}/detections")
    diagnostics = client.collect(DiagnosticArray, "/diagnostics")

    # started from the params file, waiting for transitions (autostart false)
    assert client.get_state(NODE) == "unconfigured"
    got = client.get_parameters(NODE, "image_topic", "key_interval", "nms_iou", "autostart")
    assert got == {"image_topic": TOPIC, "key_interval": 4, "nms_iou": 0.45, "autostart": False}

    # missing, then corrupt model: configure fails with a clear log line, the node stays alive and unconfigured
    assert not client.change_state(NODE, Transition.TRANSITION_CONFIGURE)
    assert client.get_state(NODE) == "unconfigured" and node.alive()
    assert "configure failed: model file not found" in node.log()
    assert client.set_parameters(NODE, model_path=str(corrupt))[0].successful
    assert not client.change_state(NODE, Transition.TRANSITION_CONFIGURE)
    assert "truncated or corrupt PyTorch checkpoint" in node.log() and node.alive()

    # input_size: a malformed value is refused when set; a size the anchors cannot tile fails configure with the
    # reason; a valid one runs the 128x128-trained model at 192x256 (reported in diagnostics below)
    refused = client.set_parameters(NODE, input_size="320-448")[0]
    assert not refused.successful and "HxW" in refused.reason
    assert client.set_parameters(NODE, model_path=str(model), input_size="100x100")[0].successful
    assert not client.change_state(NODE, Transition.TRANSITION_CONFIGURE)
    assert "invalid parameter: input_size for tdrnet_lite: input size 100x100" in node.log() and node.alive()
    assert client.get_state(NODE) == "unconfigured"
    assert client.set_parameters(NODE, input_size="192x256")[0].successful

    # configure -> inactive: model loaded, nothing subscribed yet
    assert client.change_state(NODE, Transition.TRANSITION_CONFIGURE)
    assert client.get_state(NODE) == "inactive" and "UNTRAINED MODEL" in node.log()
    refused = client.set_parameters(NODE, model_path=str(corrupt))[0]
    assert not refused.successful and "unconfigured" in refused.reason
    pub = client.publisher(Image, TOPIC, QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
    time.sleep(1.0)
    assert pub.get_subscription_count() == 0

    # activate -> detections; k = 4 on a temporal model: one key frame every 4 frames
    assert client.change_state(NODE, Transition.TRANSITION_ACTIVATE)
    assert client.get_state(NODE) == "active"
    client.wait_for_subscribers(pub)
    for _ in range(8):
        _send_until_answered(client, pub, lambda: _raw(client, "lc_cam"), detections)
    diag = _last_diagnostics(client, diagnostics, time.monotonic() + 0.1)
    processed, key_frames = int(diag["processed_total"]), int(diag["key_frames_total"])
    assert processed >= 8 and key_frames == math.ceil(processed / 4), diag
    assert diag["temporal"] == "True" and diag["model"] == "tdrnet_lite"
    assert diag["input_size"] == "192x256" and diag["trained_input_size"] == "128x128"

    # deactivate: no subscription, no output
    assert client.change_state(NODE, Transition.TRANSITION_DEACTIVATE)
    assert client.get_state(NODE) == "inactive"
    assert client.wait_for(lambda: pub.get_subscription_count() == 0, 5.0)
    count = len(detections)
    for _ in range(5):
        pub.publish(_raw(client, "lc_cam"))
        time.sleep(0.1)
    time.sleep(0.5)
    assert len(detections) == count

    # compressed input, set while inactive: jpeg and png arrive on <image_topic>/compressed
    assert client.set_parameters(NODE, image_transport="compressed")[0].successful
    assert client.change_state(NODE, Transition.TRANSITION_ACTIVATE)
    debug = client.collect(Image, f"/{NODE}/debug_image", QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    cpub = client.publisher(CompressedImage, f"{TOPIC}/compressed", 1)
    client.wait_for_subscribers(cpub)
    bgr = np.ascontiguousarray(FRAME[..., ::-1])
    for kind, ext in (("jpeg", ".jpg"), ("png", ".png")):
        def make(kind=kind, ext=ext):
            msg = CompressedImage(format=kind)
            msg.header = _raw(client, f"lc_{kind}").header
            msg.data = cv2.imencode(ext, bgr)[1].tobytes()
            return msg
        sent = _send_until_answered(client, cpub, make, detections)
        assert client.wait_for(lambda: any(m.header == sent.header for _, m in debug), 5.0)
        image = next(m for _, m in debug if m.header == sent.header)
        pixels = np.frombuffer(bytes(image.data), np.uint8).reshape(H, W, 3)
        expected = cv2.imdecode(np.frombuffer(bytes(sent.data), np.uint8), cv2.IMREAD_COLOR)
        np.testing.assert_array_equal(pixels, expected)
        if kind == "png":
            np.testing.assert_array_equal(pixels, bgr)

    # a reliable subscription and a best-effort camera do not match: the node says so instead of staying silent
    assert client.change_state(NODE, Transition.TRANSITION_DEACTIVATE)
    assert client.set_parameters(NODE, image_transport="raw", qos_reliability="reliable")[0].successful
    assert client.change_state(NODE, Transition.TRANSITION_ACTIVATE)
    assert client.wait_for(lambda: "QoS is incompatible" in node.log(), 10.0), node.log()[-2000:]

    # deactivate + cleanup frees the model; shutdown finalizes; the process still exits cleanly on SIGINT
    assert client.change_state(NODE, Transition.TRANSITION_DEACTIVATE)
    assert client.change_state(NODE, Transition.TRANSITION_CLEANUP)
    assert client.get_state(NODE) == "unconfigured"
    assert client.set_parameters(NODE, model_path=str(model))[0].successful
    assert client.change_state(NODE, Transition.TRANSITION_UNCONFIGURED_SHUTDOWN)
    assert client.get_state(NODE) == "finalized" and node.alive()
