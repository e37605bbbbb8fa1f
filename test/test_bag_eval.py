"""``uwdet bag-eval`` end to end on a small synthetic bag with a real random-weights TDRNet checkpoint.

Checks: the detections bag is a readable rosbag2 with one Detection2DArray per image whose header (stamp,
frame_id) and log time equal the image's; the detections equal an independent run of the TemporalDetector on
pixels read straight from the bag (not through the bag module's decoder); the metrics JSON is sane and its
mAP equals an independent VOC evaluation of the written detections against the ground-truth topic.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from underwater_detection.bags.detection_messages import parse_detection_array
from underwater_detection.cli import main
from underwater_detection.data.synthetic.ros_types import get_typestore
from underwater_detection.engine.temporal import TemporalDetector
from underwater_detection.engine.voc_eval import GroundTruth, Prediction, evaluate_voc
from underwater_detection.models.random_weights import write_random_checkpoint

FRAMES = 12
K = 3

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("bag_eval")
    assert main(["synth", "--out", str(root / "synth"), "--split", "test", "--sequences", "1", "--frames", str(FRAMES),
                 "--size", "192x144", "--formats", "bag", "coco", "--preset", "clear"]) == 0
    bag = next((root / "synth" / "bags").iterdir())
    ckpt = write_random_checkpoint(root / "tdrnet_random.pt", "tdrnet_lite", input_size=(128, 128), spread_scores=30)
    return root, bag, ckpt


def _read(bag, topic):
    with AnyReader([bag], default_typestore=get_typestore()) as reader:
        conns = [c for c in reader.connections if c.topic == topic]
        assert conns, f"{topic} not in {[c.topic for c in reader.connections]}"
        return [(t, reader.deserialize(raw, c.msgtype), c.msgtype) for c, t, raw in reader.messages(connections=conns)]


@pytest.fixture(scope="module")
def evaluated(synth):
    root, bag, ckpt = synth
    out, js = root / "dets", root / "report.json"
    assert main(["bag-eval", str(bag), "--model", str(ckpt), "--out", str(out), "--json", str(js), "-k", str(K),
                 "--threads", "1", "--device", "cpu"]) == 0
    return out, json.loads(js.read_text())


def test_detection_bag_has_one_array_per_image_with_the_image_header(synth, evaluated):
    _, bag, _ = synth
    out, _ = evaluated
    images = _read(bag, "/camera/image_raw")
    dets = _read(out, "/detector_node/detections")
    assert len(dets) == len(images) == FRAMES
    for (t_img, img, _), (t_det, arr, msgtype) in zip(images, dets):
        assert msgtype == "vision_msgs/msg/Detection2DArray"
        assert t_det == t_img
        assert (arr.header.stamp.sec, arr.header.stamp.nanosec, arr.header.frame_id) == \
               (img.header.stamp.sec, img.header.stamp.nanosec, img.header.frame_id) == \
               (img.header.stamp.sec, img.header.stamp.nanosec, "camera_optical_frame")
        for d in arr.detections:
            assert (d.header.stamp.sec, d.header.stamp.nanosec, d.header.frame_id) == \
                   (img.header.stamp.sec, img.header.stamp.nanosec, img.header.frame_id)


def test_detections_equal_an_independent_detector_run(synth, evaluated):
    _, bag, ckpt = synth
    out, _ = evaluated
    detector = TemporalDetector.from_checkpoint(ckpt, device="cpu", key_interval=K)
    names = detector.class_names
    total = 0
    for (_, img, _), (_, arr, _) in zip(_read(bag, "/camera/image_raw"), _read(out, "/detector_node/detections")):
        assert img.encoding == "rgb8" and img.step == 3 * img.width
        pixels = np.asarray(img.data, np.uint8).reshape(img.height, img.width, 3)
        stamp = img.header.stamp.sec + img.header.stamp.nanosec * 1e-9
        want = detector.detect(pixels, stamp, img.header.frame_id, color="rgb")
        got = parse_detection_array(arr, names)
        assert len(got) == len(want)
        np.testing.assert_allclose(got.boxes, want.boxes, atol=1e-3)
        np.testing.assert_allclose(got.scores, want.scores, atol=1e-6)
        assert got.labels.tolist() == want.labels.tolist()
        assert got.class_ids == [names[i] for i in want.labels]
        assert got.track_ids == [str(t) if t >= 0 else "" for t in want.track_ids]
        total += len(got)
    assert total > 0, "the random checkpoint produced no detections at all: nothing was compared"


def test_metrics_json_is_sane_and_matches_an_independent_voc_evaluation(synth, evaluated):
    _, bag, _ = synth
    out, report = evaluated
    assert report["frames"] == report["frames_with_ground_truth"] == FRAMES
    assert report["untrained"] is True and report["model"] == "tdrnet_lite"
    assert report["key_interval"] == K and report["key_frames"] == math.ceil(FRAMES / K) and report["resets"] == 0
    assert 0.0 <= report["voc_map50"] <= 1.0 and 0.0 <= report["coco"]["AP"] <= 1.0
    lat = report["latency_ms"]
    assert 0 < lat["p50"] <= lat["p95"] <= lat["max"]
    assert report["fps"] > 0 and len(report["per_frame"]) == FRAMES
    assert [f["key_frame"] for f in report["per_frame"]] == [i % K == 0 for i in range(FRAMES)]

    names = ("sea_cucumber", "sea_urchin", "scallop", "starfish")
    preds, gts = [], []
    for (_, arr, _), (_, gt, _) in zip(_read(out, "/detector_node/detections"), _read(bag, "/ground_truth")):
        p, g = parse_detection_array(arr, names), parse_detection_array(gt, names)
        preds.append(Prediction(p.boxes, p.scores, p.labels))
        gts.append(GroundTruth(g.boxes, g.labels))
    assert report["voc_map50"] == pytest.approx(evaluate_voc(preds, gts, len(names)).mean_ap, abs=1e-9)


def test_coco_ground_truth_and_recorded_pace(synth, tmp_path, capsys):
    root, bag, ckpt = synth
    js = tmp_path / "r.json"
    assert main(["bag-eval", str(bag), "--model", str(ckpt), "--gt-coco", str(root / "synth"), "--pace", "recorded",
                 "--rate", "4", "--max-frames", "6", "--json", str(js), "--threads", "1", "--device", "cpu"]) == 0
    report = json.loads(js.read_text())
    assert report["frames"] == report["frames_with_ground_truth"] == 6
    assert report["ground_truth"].endswith("annotations.json")
    # 6 frames at 10 fps x 4 = 25 ms apart: the run spans at least 5 intervals of the recorded timeline
    assert report["fps"] <= 6 / (5 * 0.025)
    assert "NOT TRAINED" in capsys.readouterr().out


def test_user_errors_are_one_line(synth, capsys):
    _, bag, ckpt = synth
    assert main(["bag-eval", str(bag), "--model", str(ckpt), "--image-topic", "/nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("uwdet: error: bag ") and "has no topic '/nope'; its topics: /camera/camera_info" in err
    assert main(["bag-eval", str(bag), "--model", str(bag / "missing.pt")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


def test_input_size_runs_the_checkpoint_at_another_size_like_the_nodes_parameter(synth, evaluated, tmp_path, capsys):
    root, bag, ckpt = synth
    _, default_report = evaluated
    assert default_report["input_size"] == [128, 128]
    js = tmp_path / "r.json"
    assert main(["bag-eval", str(bag), "--model", str(ckpt), "--input-size", "192x256", "--max-frames", "4",
                 "--json", str(js), "--threads", "1", "--device", "cpu"]) == 0
    assert json.loads(js.read_text())["input_size"] == [192, 256]
    assert "at 192x256 (k=" in capsys.readouterr().out
    assert main(["bag-eval", str(bag), "--model", str(ckpt), "--input-size", "100x100", "--max-frames", "4"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("uwdet: error: ") and "100x100" in err and "multiples of" in err
