"""bags.reader / bags.ground_truth / bags.writer on real rosbag2 folders (MCAP and sqlite3) written with rosbags:
image frames of every encoding in log-time order, ground truth from a topic and from COCO, clear errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer

from underwater_detection.bags.detection_messages import parse_detection_array
from underwater_detection.bags.ground_truth import ground_truth_from_coco, ground_truth_from_topic
from underwater_detection.bags.reader import BagError, BagFile
from underwater_detection.bags.writer import BagWriter
from underwater_detection.data.image_encoding import encode_compressed_image, encode_raw_image
from underwater_detection.data.synthetic.ros_types import get_typestore

TS = get_typestore()
T = TS.types
NAMES = ("sea_cucumber", "sea_urchin", "scallop", "starfish")
RNG = np.random.default_rng(11)
H, W = 6, 8
RGB = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
EPOCH = 1_700_000_000 * 10**9


def header(ns: int, frame_id: str = "cam"):
    return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9),
                                    frame_id=frame_id)


def image_msg(ns: int, encoding: str, pixels: np.ndarray, pad: int = 0, big_endian: bool = False):
    h, w = pixels.shape[:2]
    minimum = pixels.reshape(h, w, -1).shape[2] * pixels.dtype.itemsize * w
    step, data = encode_raw_image(pixels, encoding, step=minimum + pad, big_endian=big_endian)
    return T["sensor_msgs/msg/Image"](header=header(ns), height=h, width=w, encoding=encoding,
                                      is_bigendian=int(big_endian), step=step, data=np.frombuffer(data, np.uint8))


def detection_array(ns: int, boxes, classes, ids):
    dets = []
    for (x1, y1, x2, y2), cls, tid in zip(boxes, classes, ids):
        hyp = T["vision_msgs/msg/ObjectHypothesisWithPose"](
            hypothesis=T["vision_msgs/msg/ObjectHypothesis"](class_id=cls, score=1.0),
            pose=T["geometry_msgs/msg/PoseWithCovariance"](
                pose=T["geometry_msgs/msg/Pose"](position=T["geometry_msgs/msg/Point"](x=0.0, y=0.0, z=0.0),
                                                 orientation=T["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0)),
                covariance=np.zeros(36)))
        bbox = T["vision_msgs/msg/BoundingBox2D"](
            center=T["vision_msgs/msg/Pose2D"](position=T["vision_msgs/msg/Point2D"](x=(x1 + x2) / 2, y=(y1 + y2) / 2),
                                               theta=0.0), size_x=x2 - x1, size_y=y2 - y1)
        dets.append(T["vision_msgs/msg/Detection2D"](header=header(ns), results=[hyp], bbox=bbox, id=tid))
    return T["vision_msgs/msg/Detection2DArray"](header=header(ns), detections=dets)


def write_bag(path, messages, storage=StoragePlugin.MCAP):
    """messages: (topic, msgtype, log_time_ns, msg), written in the given (possibly unsorted) order."""
    with Writer(path, version=9, storage_plugin=storage) as writer:
        conns = {}
        for topic, msgtype, _, _ in messages:
            if topic not in conns:
                conns[topic] = writer.add_connection(topic, msgtype, typestore=TS)
        for topic, msgtype, t, msg in messages:
            writer.write(conns[topic], t, TS.serialize_cdr(msg, msgtype))
    return path


ENCODED = [  # (encoding, pixels in that layout, pad, big endian, expected RGB after decoding)
    ("rgb8", RGB, 0, False, RGB),
    ("bgr8", np.ascontiguousarray(RGB[..., ::-1]), 4, False, RGB),
    ("rgba8", np.dstack([RGB, np.zeros((H, W), np.uint8)]), 0, False, RGB),
    ("bgra8", np.dstack([RGB[..., ::-1], np.zeros((H, W), np.uint8)]), 8, False, RGB),
    ("mono8", RGB[..., 0], 3, False, np.repeat(RGB[..., :1], 3, axis=2)),
    ("mono16", RGB[..., 0].astype(np.uint16) << 8, 2, True, np.repeat(RGB[..., :1], 3, axis=2)),
]


@pytest.mark.parametrize("storage", [StoragePlugin.MCAP, StoragePlugin.SQLITE3], ids=["mcap", "sqlite3"])
def test_image_frames_of_every_encoding_in_log_time_order(tmp_path, storage):
    msgs = [("/cam", "sensor_msgs/msg/Image", EPOCH + i * 10**8, image_msg(EPOCH + i * 10**8, enc, px, pad, be))
            for i, (enc, px, pad, be, _) in enumerate(ENCODED)]
    bag = write_bag(tmp_path / "bag", list(reversed(msgs)), storage)  # written out of order on purpose
    with BagFile(bag) as b:
        assert b.topics["/cam"].count == len(ENCODED)
        frames = list(b.image_frames("/cam"))
    assert [f.stamp_ns for f in frames] == [EPOCH + i * 10**8 for i in range(len(ENCODED))]
    for frame, (enc, _, _, _, expected) in zip(frames, ENCODED):
        assert frame.encoding == enc and frame.frame_id == "cam"
        rgb = frame.image if frame.color == "rgb" else frame.image[..., ::-1]
        np.testing.assert_array_equal(rgb, expected, err_msg=enc)


@pytest.mark.parametrize("kind", ["jpeg", "png"])
def test_compressed_image_topic(tmp_path, kind):
    yy, xx = np.mgrid[0:24, 0:32]
    bgr = np.dstack([xx * 8, yy * 10, 255 - xx * 4]).astype(np.uint8)  # smooth: JPEG keeps it close
    msg = T["sensor_msgs/msg/CompressedImage"](header=header(EPOCH), format=kind,
                                               data=np.frombuffer(encode_compressed_image(bgr, kind, 95), np.uint8))
    bag = write_bag(tmp_path / "bag", [("/cam/compressed", "sensor_msgs/msg/CompressedImage", EPOCH, msg)])
    with BagFile(bag) as b:
        (frame,) = list(b.image_frames("/cam/compressed"))
    assert frame.color == "bgr" and frame.image.shape == bgr.shape
    assert np.abs(frame.image.astype(int) - bgr).mean() < (0.01 if kind == "png" else 4)


def test_clear_errors(tmp_path):
    with pytest.raises(BagError, match="bag not found"):
        BagFile(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BagError, match="not a rosbag2 folder"):
        BagFile(tmp_path / "empty")
    bad = image_msg(EPOCH, "rgb8", RGB)
    bad.encoding = "yuv422"
    bag = write_bag(tmp_path / "bag", [("/cam", "sensor_msgs/msg/Image", EPOCH, bad),
                                       ("/gt", "vision_msgs/msg/Detection2DArray", EPOCH, detection_array(EPOCH, [], [], []))])
    with BagFile(bag) as b:
        with pytest.raises(BagError, match=r"no topic '/camera/image_raw'; its topics: /cam \(sensor_msgs/msg/Image, 1 msgs\), /gt"):
            list(b.image_frames("/camera/image_raw"))
        with pytest.raises(BagError, match="carries vision_msgs/msg/Detection2DArray, expected sensor_msgs"):
            list(b.image_frames("/gt"))
        with pytest.raises(BagError, match=r"/cam message #0: unsupported image encoding 'yuv422'"):
            list(b.image_frames("/cam"))


def test_ground_truth_from_topic_maps_names_and_refuses_unknown_classes(tmp_path):
    gts = [("/gt", "vision_msgs/msg/Detection2DArray", EPOCH + i, detection_array(
        EPOCH + i, [(1.0, 2.0, 11.0, 22.0), (5.0, 5.0, 9.0, 7.0)], ["Sea urchin", "3"], ["4", "5"])) for i in (0, 100)]
    bag = write_bag(tmp_path / "bag", gts)
    with BagFile(bag) as b:
        index = ground_truth_from_topic(b, "/gt", NAMES)
    truth = index.lookup(EPOCH + 100, frame_index=99)
    np.testing.assert_allclose(truth.boxes, [[1, 2, 11, 22], [5, 5, 9, 7]])
    assert truth.labels.tolist() == [1, 3] and not truth.difficult.any()
    assert index.lookup(EPOCH + 5 * 10**6, 0) is None  # 5 ms off: not this frame

    bad = write_bag(tmp_path / "bad", [("/gt", "vision_msgs/msg/Detection2DArray", EPOCH,
                                        detection_array(EPOCH, [(0, 0, 1, 1)], ["octopus"], ["1"]))])
    with BagFile(bad) as b, pytest.raises(BagError, match=r"class ids \['octopus'\] are not among"):
        ground_truth_from_topic(b, "/gt", NAMES)


def _coco(path, videos):
    """videos: {name: [(stamp_s or None, [(x, y, w, h, category_id, ignore)])]}"""
    data = {"images": [], "annotations": [], "videos": [],
            "categories": [{"id": i + 1, "name": n} for i, n in enumerate(NAMES)]}
    for vid, (name, frames) in enumerate(videos.items(), start=1):
        data["videos"].append({"id": vid, "name": name})
        for f, (stamp, anns) in enumerate(frames):
            image_id = len(data["images"]) + 1
            im = {"id": image_id, "file_name": f"{name}/{f}.jpg", "width": 64, "height": 48, "video_id": vid,
                  "frame_id": f}
            if stamp is not None:
                im["stamp"] = stamp
            data["images"].append(im)
            for x, y, w, h, cat, ignore in anns:
                data["annotations"].append({"id": len(data["annotations"]) + 1, "image_id": image_id,
                                            "category_id": cat, "bbox": [x, y, w, h], "ignore": ignore})
    path.write_text(json.dumps(data))
    return path


def test_ground_truth_from_coco_chooses_the_video_and_matches_stamps(tmp_path):
    t0 = EPOCH / 1e9
    path = _coco(tmp_path / "a.json", {
        "seq_a": [(t0, [(1, 2, 3, 4, 1, 0)]), (t0 + 0.1, [(5, 6, 7, 8, 2, 1)])],
        "seq_b": [(t0, [(9, 9, 2, 2, 4, 0)])],
    })
    by_bag_name = ground_truth_from_coco(path, NAMES, bag_name="seq_a")
    truth = by_bag_name.lookup(EPOCH + 10**8, 0)
    np.testing.assert_allclose(truth.boxes, [[5, 6, 12, 14]])
    assert truth.labels.tolist() == [1] and truth.difficult.tolist() == [True]
    assert ground_truth_from_coco(path, NAMES, video="seq_b").lookup(EPOCH, 0).labels.tolist() == [3]
    with pytest.raises(BagError, match="holds 2 videos and none is named like the bag"):
        ground_truth_from_coco(path, NAMES, bag_name="other")
    with pytest.raises(BagError, match="no video 'seq_c'"):
        ground_truth_from_coco(path, NAMES, video="seq_c")


def test_ground_truth_from_coco_without_stamps_uses_frame_order(tmp_path):
    path = _coco(tmp_path / "a.json", {"v": [(None, [(1, 1, 1, 1, 1, 0)]), (None, [(2, 2, 2, 2, 3, 0)])]})
    index = ground_truth_from_coco(path, NAMES)
    assert "frame order" in index.source
    assert index.lookup(123, 1).labels.tolist() == [2] and index.lookup(123, 2) is None


def test_writer_round_trip_and_refuses_to_clobber(tmp_path):
    out = tmp_path / "out"
    with BagWriter(out) as w:
        w.add_topic("/det", "vision_msgs/msg/Detection2DArray")
        w.write("/det", EPOCH, detection_array(EPOCH, [(1.0, 1.0, 3.0, 5.0)], ["scallop"], ["12"]))
        with pytest.raises(BagError, match="unknown to the bag typestore"):
            w.add_topic("/x", "my_msgs/msg/Nothing")
    with BagFile(out) as b:
        ((topic, _, msg),) = list(b.messages())
    parsed = parse_detection_array(msg, NAMES)
    assert topic == "/det" and parsed.labels.tolist() == [2] and parsed.track_ids == ["12"]
    np.testing.assert_allclose(parsed.boxes, [[1, 1, 3, 5]])
    with pytest.raises(BagError, match="already exists"):
        BagWriter(out)
    BagWriter(out, overwrite=True).close()
