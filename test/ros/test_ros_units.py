"""Unit level of the ros/ layer (real rclpy message classes, no DDS): image messages -> pixels for every
encoding (row padding, big-endian mono16, jpeg/png), Detections -> Detection2DArray / LabelInfo, the
newest-frame hand-off, statistics, error throttling, parameter rules and config/detector.yaml."""
from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from builtin_interfaces.msg import Time
from rclpy.qos import DurabilityPolicy, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from underwater_detection.engine.temporal import Detections
from underwater_detection.ros import detector_parameters as params
from underwater_detection.ros.class_filter import keep_mask, parse_class_filter
from underwater_detection.ros.debug_drawing import draw_detections
from underwater_detection.ros.detection_messages import class_id_text, detections_to_msg, label_info_msg
from underwater_detection.ros.detector_node import ConfigureError, resolve_model_path, select
from underwater_detection.ros.diagnostics import NodeStatistics, diagnostic_array, diagnostic_level
from underwater_detection.ros.error_throttle import ErrorThrottle
from underwater_detection.ros.image_conversion import (
    ImageDecodeError, UnsupportedEncodingError, bgr_to_image_msg, decode_image_msg,
)
from underwater_detection.ros.latest_frames import LatestFrames, PendingFrame
from underwater_detection.ros.qos import detections_qos, image_qos, label_info_qos, reliability_from_name

REPO = Path(__file__).resolve().parents[2]
H, W = 6, 5
RGB = np.random.default_rng(7).integers(0, 256, (H, W, 3), dtype=np.uint8)
CLASSES = ("sea_cucumber", "sea_urchin", "scallop", "starfish")


def _image_msg(encoding: str, rows: np.ndarray, pad: int, big_endian: int = 0) -> Image:
    """``rows`` (H, row_bytes) uint8 -> an rclpy Image whose rows are padded with 0xEE garbage bytes."""
    msg = Image()
    msg.header.frame_id = "cam"
    msg.height, msg.width, msg.encoding, msg.is_bigendian = H, W, encoding, big_endian
    msg.step = rows.shape[1] + pad
    padded = np.full((H, msg.step), 0xEE, np.uint8)
    padded[:, : rows.shape[1]] = rows
    msg.data = padded.tobytes()  # rclpy stores it as array.array('B'); the decoder must read that too
    return msg


def _expected_cases():
    """(encoding, rows bytes, is_bigendian, expected BGR pixels), expectations built with plain numpy."""
    alpha = np.full((H, W, 1), 9, np.uint8)
    grey = RGB[..., 1]
    mono16 = (np.arange(H * W, dtype=np.uint32).reshape(H, W) * 2111 % 65536).astype(np.uint16)
    grey16 = np.repeat((mono16 >> 8).astype(np.uint8)[..., None], 3, axis=2)
    return [
        ("rgb8", RGB.reshape(H, -1), 0, RGB[..., ::-1]),
        ("bgr8", RGB[..., ::-1].reshape(H, -1), 0, RGB[..., ::-1]),
        ("rgba8", np.concatenate([RGB, alpha], 2).reshape(H, -1), 0, RGB[..., ::-1]),
        ("bgra8", np.concatenate([RGB[..., ::-1], alpha], 2).reshape(H, -1), 0, RGB[..., ::-1]),
        ("mono8", grey.reshape(H, -1), 0, np.repeat(grey[..., None], 3, axis=2)),
        ("mono16", mono16.astype("<u2").view(np.uint8).reshape(H, -1), 0, grey16),
        ("mono16", mono16.astype(">u2").view(np.uint8).reshape(H, -1), 1, grey16),
    ]


@pytest.mark.parametrize("pad", [0, 3])
@pytest.mark.parametrize("case", range(7))
def test_every_raw_encoding_decodes_from_an_rclpy_message(case, pad):
    encoding, rows, big_endian, expected_bgr = _expected_cases()[case]
    decoded = decode_image_msg(_image_msg(encoding, np.ascontiguousarray(rows), pad, big_endian))
    assert decoded.image.shape == (H, W, 3) and decoded.image.dtype == np.uint8
    np.testing.assert_array_equal(decoded.as_bgr(), expected_bgr)


@pytest.mark.parametrize("kind", ["jpeg", "png"])
def test_compressed_messages_decode_like_opencv(kind):
    bgr = np.ascontiguousarray(RGB[..., ::-1])
    ok, buf = cv2.imencode(".jpg" if kind == "jpeg" else ".png", bgr)
    assert ok
    msg = CompressedImage(format=f"bgr8; {kind} compressed bgr8" if kind == "jpeg" else kind)
    msg.data = buf.tobytes()
    decoded = decode_image_msg(msg)
    np.testing.assert_array_equal(decoded.as_bgr(), cv2.imdecode(buf, cv2.IMREAD_COLOR))
    if kind == "png":  # lossless
        np.testing.assert_array_equal(decoded.as_bgr(), bgr)


def test_bad_images_raise_clear_errors():
    with pytest.raises(UnsupportedEncodingError, match="unsupported image encoding '32FC1'"):
        decode_image_msg(_image_msg("32FC1", np.zeros((H, W * 4), np.uint8), 0))
    short = _image_msg("rgb8", RGB.reshape(H, -1), 0)
    short.data = bytes(10)
    with pytest.raises(ImageDecodeError, match="bytes but step x height"):
        decode_image_msg(short)
    with pytest.raises(ImageDecodeError, match="could not decode"):
        decode_image_msg(CompressedImage(format="jpeg", data=b"not a jpeg"))
    with pytest.raises(ImageDecodeError, match="expected sensor_msgs/Image"):
        decode_image_msg(Header())


def test_bgr_image_message_round_trip():
    header = Header(frame_id="cam", stamp=Time(sec=3, nanosec=4))
    msg = bgr_to_image_msg(RGB, header)
    assert (msg.encoding, msg.step, msg.height, msg.width, msg.header) == ("bgr8", W * 3, H, W, header)
    np.testing.assert_array_equal(decode_image_msg(msg).as_bgr(), RGB)


def _detections(n: int = 3) -> Detections:
    boxes = np.array([[10.0, 20.0, 50.0, 80.0], [0.5, 1.5, 2.5, 9.5], [5, 5, 6, 7]], np.float32)[:n]
    return Detections(
        boxes=boxes, scores=np.array([0.9, 0.4, 1.0000001], np.float32)[:n], labels=np.array([1, 3, 0])[:n],
        track_ids=np.array([7, -1, 12])[:n], class_names=CLASSES, is_key_frame=True, stamp=1.5,
        stream_id="cam", image_size=(100, 120),
    )


def test_detections_to_message_follows_the_documented_conventions():
    header = Header(frame_id="cam_front", stamp=Time(sec=12, nanosec=345))
    msg = detections_to_msg(_detections(), header)
    assert msg.header == header and len(msg.detections) == 3
    first = msg.detections[0]
    assert first.header == header and first.id == "7"
    assert (first.bbox.center.position.x, first.bbox.center.position.y) == (30.0, 50.0)
    assert (first.bbox.size_x, first.bbox.size_y, first.bbox.center.theta) == (40.0, 60.0, 0.0)
    assert len(first.results) == 1 and first.results[0].hypothesis.class_id == "sea_urchin"
    assert first.results[0].hypothesis.score == pytest.approx(0.9)
    assert first.results[0].pose.pose.orientation.w == 1.0
    assert msg.detections[1].id == "" and msg.detections[1].results[0].hypothesis.class_id == "starfish"
    assert msg.detections[2].results[0].hypothesis.score == 1.0  # clamped to [0, 1]
    indexed = detections_to_msg(_detections(), header, class_id_mode="index")
    assert [d.results[0].hypothesis.class_id for d in indexed.detections] == ["1", "3", "0"]
    empty = detections_to_msg(_detections(0), header)
    assert empty.header == header and list(empty.detections) == []
    with pytest.raises(ValueError, match="class_id_mode"):
        class_id_text(0, CLASSES, "number")


def test_label_info_maps_indices_to_names():
    msg = label_info_msg(CLASSES, 0.25, Header(frame_id=""))
    assert [(c.class_id, c.class_name) for c in msg.class_map] == list(enumerate(CLASSES))
    assert msg.threshold == pytest.approx(0.25)


def test_class_filter_and_selection():
    assert parse_class_filter("", CLASSES) is None
    keep = parse_class_filter("Sea-Urchin, starfish", CLASSES)
    assert keep == frozenset({1, 3})
    dets = _detections()
    kept = select(dets, keep_mask(dets.labels, keep))
    assert kept.labels.tolist() == [1, 3] and kept.track_ids.tolist() == [7, -1] and kept.boxes.shape == (2, 4)
    assert select(dets, keep_mask(dets.labels, None)) is dets
    with pytest.raises(ValueError, match=r"unknown classes \['octopus'\].*sea_cucumber"):
        parse_class_filter("octopus", CLASSES)


def test_debug_drawing_changes_only_box_pixels():
    image = np.zeros((100, 120, 3), np.uint8)
    drawn = draw_detections(image, _detections(1))
    assert drawn.shape == image.shape and image.max() == 0  # input untouched
    assert drawn[20, 30].any() and not drawn[60:70, 20:40].any() and not drawn[95, 110].any()
    np.testing.assert_array_equal(draw_detections(image, _detections(0)), image)


def test_latest_frames_keeps_the_newest_per_stream_and_counts_drops():
    frames = LatestFrames(max_streams=2)
    assert frames.put(PendingFrame("a1", "a")) is False
    assert frames.put(PendingFrame("a2", "a")) is True  # a1 dropped
    frames.put(PendingFrame("b1", "b"))
    assert [f.msg for f in frames.take(0.1)] == ["a2", "b1"] and frames.dropped == 1
    assert frames.take(0.05) == []
    for s in "xyz":
        frames.put(PendingFrame(s, s))
    assert [f.msg for f in frames.take(0.1)] == ["y", "z"] and frames.dropped == 2  # over max_streams
    got: list = []
    worker = threading.Thread(target=lambda: got.append(frames.take(10.0)))
    worker.start()
    frames.close()  # wakes a blocked worker at once
    worker.join(2.0)
    assert not worker.is_alive() and got == [[]]


def test_statistics_window_rates_percentiles_and_totals():
    stats = NodeStatistics(window_s=2.0)
    for i in range(10):
        stats.record_input(now=100.0 + i * 0.1)
        stats.record_output(latency_s=0.01 * (i + 1), processing_s=0.005, key_frame=i % 4 == 0, now=100.0 + i * 0.1)
    stats.record_drops(3)
    stats.record_error("decode_errors", now=100.5)
    snap = stats.snapshot(now=101.0)
    assert snap["input_rate_hz"] == pytest.approx(5.0) and snap["output_rate_hz"] == pytest.approx(5.0)
    assert snap["latency_p50_ms"] == pytest.approx(55.0) and snap["latency_p95_ms"] == pytest.approx(95.5)
    assert snap["key_frame_ratio"] == pytest.approx(0.3)
    assert (snap["dropped_total"], snap["decode_errors_total"], snap["received_total"]) == (3, 1, 10)
    later = stats.snapshot(now=110.0)  # nothing in the window any more, totals stay
    assert later["output_rate_hz"] == 0.0 and np.isnan(later["latency_p50_ms"]) and later["processed_total"] == 10
    level, text = diagnostic_level(snap, active=True, untrained=True)
    assert level == diagnostic_array("n", "cpu", level, text, {}, Time()).status[0].level
    assert "UNTRAINED" in text and level == b"\x01"
    broken = dict(later, inputs_in_window=5, outputs_in_window=0, errors_in_window=5)
    assert diagnostic_level(broken, active=True, untrained=False)[0] == b"\x02"
    assert diagnostic_level(later, active=True, untrained=False)[0] == b"\x00"


def test_error_throttle_logs_each_problem_once_then_summarises():
    throttle = ErrorThrottle(period_s=10.0)
    assert throttle.message(("cam", "32FC1"), "bad", now=0.0) == "bad"
    assert throttle.message(("cam", "32FC1"), "bad", now=1.0) is None
    assert throttle.message(("cam2", "32FC1"), "bad2", now=1.0) == "bad2"  # another stream is not hidden
    assert throttle.message(("cam", "32FC1"), "bad", now=2.0) is None
    assert throttle.message(("cam", "32FC1"), "bad", now=11.0) == "bad (2 more like this in the last 11 s)"


def test_qos_profiles():
    assert image_qos().depth == 1 and image_qos().reliability == ReliabilityPolicy.BEST_EFFORT
    assert image_qos("reliable").reliability == ReliabilityPolicy.RELIABLE
    assert label_info_qos().durability == DurabilityPolicy.TRANSIENT_LOCAL
    assert detections_qos().reliability == ReliabilityPolicy.RELIABLE
    assert reliability_from_name("Best-Effort") == ReliabilityPolicy.BEST_EFFORT
    with pytest.raises(ValueError, match="qos_reliability must be one of"):
        reliability_from_name("sometimes")


def test_config_file_sets_every_parameter_to_the_code_default():
    doc = yaml.safe_load((REPO / "config" / "detector.yaml").read_text())
    values = doc["/**/detector_node"]["ros__parameters"]
    assert values == {p.name: p.default for p in params.PARAMETERS}
    for p in params.PARAMETERS:
        assert params.check_value(p.name, p.default) is None, p.name
        d = p.descriptor()
        assert d.description and d.read_only == (p.name == "autostart")


@pytest.mark.parametrize("name,value,reason", [
    ("key_interval", 0, "k must be an integer >= 1"),
    ("soft_coefficient", 1.5, "e must be a number in [0, 1]"),
    ("score_threshold", 1.0, "score_threshold must be in [0, 1)"),
    ("nms_iou", 0.0, "nms_iou must be in (0, 1]"),
    ("device", "tpu", "device must be auto"),
    ("image_transport", "theora", "image_transport must be one of raw, compressed"),
    ("qos_reliability", "maybe", "qos_reliability must be one of"),
    ("class_id_mode", "number", "class_id_mode must be one of name, index"),
    ("model_path", " ", "model_path must not be empty"),
    ("input_size", "320", "input_size must be HxW"),
    ("input_size", "320x-448", "input_size must be HxW"),
    ("input_size", "32x448", "between 64 and 4096"),
])
def test_invalid_parameter_values_are_refused_with_a_reason(name, value, reason):
    assert reason in params.check_value(name, value)


def test_parameters_change_only_in_their_lifecycle_states():
    assert params.phase_refusal("key_interval", "active") is None
    assert "deactivate" in params.phase_refusal("image_topic", "active")
    assert params.phase_refusal("image_topic", "inactive") is None
    assert "unconfigured" in params.phase_refusal("model_path", "inactive")
    assert params.phase_refusal("model_path", "unconfigured") is None


def test_missing_model_path_names_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigureError, match=r"model file not found: 'models/none.pt' \(looked in: .*models/none.pt"):
        resolve_model_path("models/none.pt")
    (tmp_path / "m.pt").write_bytes(b"x")
    assert resolve_model_path("m.pt") == tmp_path / "m.pt"
    assert resolve_model_path(str(tmp_path / "m.pt")) == tmp_path / "m.pt"


def test_input_size_parses_height_first_and_empty_means_the_checkpoints_own():
    assert params.parse_input_size("") is None and params.parse_input_size("  ") is None
    assert params.parse_input_size("320x448") == (320, 448) and params.parse_input_size(" 384X512 ") == (384, 512)
