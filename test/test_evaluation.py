"""`uwdet eval`: pycocotools AP and our VOC mAP against hand-computed values, and the command end to end."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from test_trainer import recipe, write_coco
from underwater_detection.engine.evaluation import coco_metrics, map50_by_condition
from underwater_detection.engine.trainer import train
from underwater_detection.engine.voc_eval import GroundTruth, Prediction, evaluate_voc

SRC = Path(__file__).resolve().parents[1] / "src"


def _fixture():
    """One 100x100 image, two objects of class 0; detections: hit (0.9), miss (0.8), hit (0.7)."""
    gt = [GroundTruth(np.array([[10, 10, 30, 30], [50, 50, 80, 90]], np.float32), np.array([0, 0]))]
    pred = [Prediction(np.array([[10, 10, 30, 30], [0, 60, 5, 70], [50, 50, 80, 90]], np.float32),
                       np.array([0.9, 0.8, 0.7], np.float32), np.array([0, 0, 0]))]
    return pred, gt


def test_voc_and_coco_agree_with_hand_computed_values():
    pred, gt = _fixture()
    # precision/recall after each detection: (1, 0.5), (0.5, 0.5), (2/3, 1.0)
    # VOC area AP: recall 0->0.5 at precision 1, 0.5->1 at the envelope 2/3 => 0.5 + 1/3
    assert evaluate_voc(pred, gt, 1).mean_ap == pytest.approx(0.5 + 1 / 3, abs=1e-9)
    # VOC 11-point: recall thresholds 0..0.5 (6 points) at 1, 0.6..1.0 (5 points) at 2/3
    assert evaluate_voc(pred, gt, 1, use_11_point=True).mean_ap == pytest.approx((6 + 5 * 2 / 3) / 11, abs=1e-9)
    # COCO: 101 recall points, 0..0.50 (51 points) at 1 and 0.51..1.00 (50 points) at 2/3, at every IoU
    # threshold (the hits are exact), so AP == AP50 == AP75 == (51 + 50 * 2/3) / 101
    coco = coco_metrics(pred, gt, [(100, 100)], ["thing"])
    expected = (51 + 50 * 2 / 3) / 101
    assert coco["AP"] == pytest.approx(expected, abs=1e-6)
    assert coco["AP50"] == pytest.approx(expected, abs=1e-6)
    assert coco["AP75"] == pytest.approx(expected, abs=1e-6)


def test_coco_ignores_difficult_ground_truth():
    pred, gt = _fixture()
    gt[0].difficult = np.array([False, True])
    # the 0.7 detection now matches an ignored box: precision 1 at recall 1 after the first hit ... then a FP
    coco = coco_metrics(pred, gt, [(100, 100)], ["thing"])
    voc = evaluate_voc(pred, gt, 1)
    assert voc.mean_ap == pytest.approx(1.0)
    assert coco["AP50"] == pytest.approx(1.0, abs=1e-6)


def test_map50_by_condition_groups_frames_by_their_videos_condition():
    hit, gt = _fixture()  # 0.5 + 1/3 on its own
    box = np.array([[10, 10, 30, 30]], np.float32)
    perfect = Prediction(box, np.array([0.9], np.float32), np.array([0]))
    one = GroundTruth(box, np.array([0]))
    missed = Prediction(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))
    preds, gts = [perfect, missed, hit[0], perfect], [one, one, gt[0], one]
    videos = ["a", "b", "c", "d"]  # d has no condition: counted in no group
    got, counts = map50_by_condition(preds, gts, videos, {"a": "clear", "b": "turbid", "c": "clear"}, 1)
    assert list(got) == ["clear", "turbid"] and counts == {"clear": 2, "turbid": 1}
    # clear = frames a + c: detections 0.9 (hit a), 0.9 (hit c), 0.8 (miss), 0.7 (hit c) over 3 objects
    # P/R: (1, 1/3), (1, 2/3), (2/3, 2/3), (3/4, 1) -> area AP = 2/3 + 1/3 * 3/4
    assert got["clear"] == pytest.approx(2 / 3 + 0.25, abs=1e-9)
    assert got["turbid"] == 0.0
    assert map50_by_condition(preds, gts, videos, {}, 1) == ({}, {})
    # a condition with no frames evaluated, or only difficult boxes, is left out, never NaN
    hard = GroundTruth(box, np.array([0]), np.array([True]))
    got, counts = map50_by_condition([perfect, perfect], [one, hard], ["a", "b"],
                                     {"a": "clear", "b": "dark", "z": "turbid"}, 1)
    assert got == {"clear": 1.0} and counts == {"clear": 1}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    data = write_coco(root / "data")
    path = train(recipe(root, data, model="trnet_lite", iterations=4), device="cpu", show_progress=False)
    return path, data


def test_eval_command_writes_json_and_plots(trained, tmp_path):
    checkpoint, data = trained
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "underwater_detection.cli", "eval", "--checkpoint", str(checkpoint), "--data", str(data),
         "--sweep", "--sweep-k", "1", "4", "--sweep-e", "1", "0.5", "--threads", "1", "--max-detections", "3",
         "--out", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    payload = json.loads((tmp_path / "eval.json").read_text())
    results = payload["results"]
    assert [(r["key_interval"], r["soft_coefficient"]) for r in results] == [(1, 1.0), (4, 1.0), (1, 0.5), (4, 0.5)]
    for r in results:
        assert r["frames"] == 12 and 0.0 <= r["voc_map50"] <= 1.0 and r["forward_fps"] > 0
        assert r["forced_resets"] == 0  # consecutive stamps within a video: no gap resets
        assert set(r["coco"]) == {"AP", "AP50", "AP75", "APs", "APm", "APl"}
    # 8 still images (each its own stream: key) + a 4-frame video: k=1 -> 12 key frames, k=4 -> 9
    assert [r["key_frames"] for r in results] == [12, 9, 12, 9]
    assert payload["max_detections"] == 3 and all(r["most_detections"] == 3 for r in results)  # capped, not empty
    for png in ("pr_curves.png", "sweep_k_e.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| 4 | 0.5 |" in proc.stdout


def test_eval_rejects_a_dataset_with_other_classes(trained, tmp_path):
    checkpoint, data = trained
    other = json.loads(Path(data).read_text())
    other["categories"][0]["name"] = "octopus"
    bad = Path(data).with_name("other.json")
    bad.write_text(json.dumps(other))
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "underwater_detection.cli", "eval", "--checkpoint", str(checkpoint),
                           "--data", str(bad), "--out", str(tmp_path)], env=env, capture_output=True, text=True)
    assert proc.returncode == 2 and "octopus" in proc.stderr and "Traceback" not in proc.stderr


def test_eval_runs_a_checkpoint_at_another_input_size_and_refuses_one_the_anchors_cannot_tile(trained, tmp_path):
    """The weights are fully convolutional, so a 128x128-trained model can be scored at 192x256: the anchors follow
    the size. A size that is not a multiple of the largest stride is a clear error, not a shape crash."""
    checkpoint, data = trained
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    base = [sys.executable, "-m", "underwater_detection.cli", "eval", "--checkpoint", str(checkpoint), "--data",
            str(data), "-k", "4", "--threads", "1"]
    proc = subprocess.run(base + ["--input-size", "192x256", "--out", str(tmp_path / "a")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    payload = json.loads((tmp_path / "a" / "eval.json").read_text())
    assert payload["input_size"] == [192, 256] and payload["results"][0]["frames"] == 12
    assert payload["trained_input_size"] == [128, 128]
    assert "at 192x256, trained at 128x128 (HxW)" in proc.stdout
    assert "warning: input 192x256 has width/height 1.33" in proc.stderr  # stretched unlike training: said so
    proc = subprocess.run(base + ["--out", str(tmp_path / "b")], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and json.loads((tmp_path / "b" / "eval.json").read_text())["input_size"] == [128, 128]
    assert "at 128x128 (HxW)" in proc.stdout and "warning" not in proc.stderr
    proc = subprocess.run(base + ["--input-size", "100x100", "--out", str(tmp_path / "c")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "100x100" in proc.stderr and "multiples of" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "c" / "eval.json").exists()
