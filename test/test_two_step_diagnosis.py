"""The two-step diagnosis (engine/two_step_diagnosis.py) on hand-built outputs whose answers are known, and the
script end to end on a random-weights RefineDet over a toy COCO set."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from underwater_detection.engine.two_step_diagnosis import diagnose_image, size_bucket, summarise
from underwater_detection.models.random_weights import write_random_checkpoint
from underwater_detection.ops.box_coding import encode
from underwater_detection.ops.outputs import HeadOutputs

from test_trainer import write_coco

ROOT = Path(__file__).resolve().parents[1]
VAR = (0.1, 0.2)
# two anchors (cx, cy, w, h) in a 100 x 200 (h x w) image: one on the object, one far away
PRIORS = torch.tensor([[0.25, 0.5, 0.2, 0.4], [0.8, 0.2, 0.1, 0.1]])
GT = np.array([[30.0, 25.0, 70.0, 65.0]], np.float32)  # pixels (x1, y1, x2, y2): 40 x 40 -> "medium"
GT_NORM = torch.tensor([[30 / 200, 25 / 100, 70 / 200, 65 / 100]])


def outputs(arm_to: torch.Tensor, odm_to: torch.Tensor, class_logit: float) -> HeadOutputs:
    """ARM offsets that move each anchor onto ``arm_to``, ODM offsets from there onto ``odm_to`` (corners),
    and a logit for class 2 (index 1 of 3 foreground classes) on anchor 0 only."""
    arm = encode(arm_to, PRIORS, VAR)
    refined = torch.cat([(arm_to[:, :2] + arm_to[:, 2:]) / 2, arm_to[:, 2:] - arm_to[:, :2]], dim=-1)
    odm = encode(odm_to, refined, VAR)
    conf = torch.zeros(2, 4)
    conf[0, 2] = class_logit
    return HeadOutputs(loc=odm[None], conf=conf[None], arm_loc=arm[None])


def test_a_found_object_scores_perfect_iou_and_its_class_score():
    target = torch.cat([GT_NORM, torch.tensor([[0.7, 0.1, 0.9, 0.3]])])
    [obj] = diagnose_image(outputs(target, target, 6.0), PRIORS, VAR, GT, np.array([1]), (100, 200))
    assert obj.size == "medium"
    assert obj.refined_iou == pytest.approx(1.0, abs=1e-5) and obj.odm_positives == 1
    assert obj.detected_iou == pytest.approx(1.0, abs=1e-5)
    assert obj.class_score == pytest.approx(np.exp(6) / (np.exp(6) + 3), rel=1e-5)
    assert 0 < obj.anchor_iou < 1  # the original anchor is near but not on it


def test_an_arm_that_moves_anchors_away_leaves_no_odm_positive():
    away = torch.tensor([[0.6, 0.7, 0.7, 0.8], [0.7, 0.1, 0.9, 0.3]])
    [obj] = diagnose_image(outputs(away, away, 6.0), PRIORS, VAR, GT, np.array([1]), (100, 200))
    assert obj.refined_iou == 0.0 and obj.odm_positives == 0
    assert obj.detected_iou == 0.0 and obj.class_score == 0.0


def test_right_place_wrong_class_shows_as_a_low_class_score():
    target = torch.cat([GT_NORM, torch.tensor([[0.7, 0.1, 0.9, 0.3]])])
    [obj] = diagnose_image(outputs(target, target, 6.0), PRIORS, VAR, GT, np.array([0]), (100, 200))
    assert obj.refined_iou == pytest.approx(1.0, abs=1e-5)
    assert obj.class_score == pytest.approx(1 / (np.exp(6) + 3), rel=1e-5)
    assert obj.detected_iou == 0.0  # nothing scores >= 0.1 for class 0


def test_one_step_outputs_and_bad_shapes_are_clear_errors():
    plain = HeadOutputs(loc=torch.zeros(1, 2, 4), conf=torch.zeros(1, 2, 4))
    with pytest.raises(ValueError, match="one step"):
        diagnose_image(plain, PRIORS, VAR, GT, np.array([1]), (100, 200))
    target = torch.cat([GT_NORM, GT_NORM])
    with pytest.raises(ValueError, match="labels"):
        diagnose_image(outputs(target, target, 1.0), PRIORS, VAR, GT, np.array([1, 2]), (100, 200))
    assert diagnose_image(outputs(target, target, 1.0), PRIORS, VAR, GT[:0], np.array([], int), (100, 200)) == []


def test_size_buckets_follow_coco_and_summary_takes_medians():
    assert [size_bucket(a) for a in (31**2, 32**2, 95**2, 96**2)] == ["small", "medium", "medium", "large"]
    target = torch.cat([GT_NORM, torch.tensor([[0.7, 0.1, 0.9, 0.3]])])
    away = torch.tensor([[0.6, 0.7, 0.7, 0.8], [0.7, 0.1, 0.9, 0.3]])
    objs = (diagnose_image(outputs(target, target, 6.0), PRIORS, VAR, GT, np.array([1]), (100, 200))
            + 2 * diagnose_image(outputs(away, away, 6.0), PRIORS, VAR, GT, np.array([1]), (100, 200)))
    table = summarise(objs)
    assert set(table) == {"medium", "all"} and table["medium"]["objects"] == 3
    assert table["medium"]["with_odm_positive"] == pytest.approx(1 / 3)
    assert table["medium"]["refined_iou"] == 0.0  # the median of (1, 0, 0)


def test_script_end_to_end_on_a_random_refinedet(tmp_path):
    data = write_coco(tmp_path / "data", count=4)
    ckpt = write_random_checkpoint(tmp_path / "refinedet.pt", "refinedet_lite", input_size=(128, 128))
    ssd = write_random_checkpoint(tmp_path / "ssd.pt", "ssd4s_lite", input_size=(128, 128))
    out = tmp_path / "diag.json"
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "diagnose_two_step.py"), str(ckpt),
                          "--data", str(data), "--every", "2", "--out", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    report = json.loads(out.read_text())
    table = report["models"][str(ckpt)]
    images = len(json.loads(data.read_text())["images"])
    assert report["frames"] == (images + 1) // 2 and table["all"]["objects"] >= 1  # every 2nd image
    assert 0 <= table["all"]["refined_iou"] <= 1 and "| all |" in run.stdout
    bad = subprocess.run([sys.executable, str(ROOT / "scripts" / "diagnose_two_step.py"), str(ssd),
                          "--data", str(data)], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "one step" in bad.stderr
