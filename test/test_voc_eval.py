"""VOC mAP against a fixture computed by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from underwater_detection.engine.voc_eval import GroundTruth, Prediction, average_precision, evaluate_voc


def gt(boxes, labels, difficult=None) -> GroundTruth:
    return GroundTruth(
        np.asarray(boxes, np.float64).reshape(-1, 4),
        np.asarray(labels, np.int64),
        None if difficult is None else np.asarray(difficult, bool),
    )


def pred(rows) -> Prediction:
    """rows: (score, label, x1, y1, x2, y2)."""
    a = np.asarray(rows, np.float64).reshape(-1, 6)
    return Prediction(boxes=a[:, 2:], scores=a[:, 0], labels=a[:, 1].astype(np.int64))


# Image A: class 0 g1 [0,0,10,10], g2 [20,20,30,30], gd [40,40,50,50] (difficult); class 1 h1 [0,0,20,20].
# Image B: class 0 g3 [0,0,10,10]. No class-1 object in B. Class 2 has no ground truth anywhere.
GT = [
    gt([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50], [0, 0, 20, 20]], [0, 0, 0, 1], [0, 0, 1, 0]),
    gt([[0, 0, 10, 10]], [0]),
]
PRED = [
    pred([
        (0.9, 0, 0, 0, 10, 10),       # d1 -> g1, IoU 1: TP
        (0.8, 0, 0, 0, 10, 10),       # d2 -> g1 again: duplicate, FP
        (0.6, 0, 40, 40, 50, 50),     # d4 -> gd (difficult): ignored, neither TP nor FP
        (0.4, 0, 21, 20, 31, 30),     # d6 -> g2, IoU 90/110 = 0.818: TP
        (0.85, 1, 0, 0, 20, 10),      # e2 -> h1, IoU 200/400 = 0.5 exactly: TP (>= threshold)
        (0.1, 1, 100, 100, 110, 110),  # e3 -> nothing: FP
        (0.3, 2, 0, 0, 10, 10),       # class 2 has no ground truth at all
    ]),
    pred([
        (0.7, 0, 50, 50, 60, 60),     # d3 -> no overlap with g3: FP
        (0.5, 0, 0, 0, 10, 11),       # d5 -> g3, IoU 100/110 = 0.909: TP
        (0.95, 1, 0, 0, 20, 20),      # e1 -> image B has no class-1 object: FP
    ]),
]

# Class 0: 3 non-difficult objects (g1, g2, g3). By score, without the ignored d4:
#   d1 TP, d2 FP, d3 FP, d5 TP, d6 TP
#   cum TP 1 1 1 2 3, cum FP 0 1 2 2 2
#   precision 1, 1/2, 1/3, 2/4, 3/5 ; recall 1/3, 1/3, 1/3, 2/3, 1
# Area: precision envelope (max to the right) at recall 1/3 is 1, at 2/3 and 1 it is 0.6:
#   AP = 1/3 * 1 + 1/3 * 0.6 + 1/3 * 0.6 = 1/3 + 0.2 + 0.2 = 11/15
# 11-point: t = 0, .1, .2, .3 -> max precision with recall >= t = 1        (4 points)
#           t = .4 ... 1.0   -> only recall 2/3 and 1 qualify: max(.5, .6) = .6  (7 points)
#   AP = (4 * 1 + 7 * 0.6) / 11 = 8.2 / 11
AP0_AREA = 11 / 15
AP0_11 = 8.2 / 11
# Class 1: 1 object (h1). By score: e1 FP, e2 TP, e3 FP
#   precision 0, 1/2, 1/3 ; recall 0, 1, 1
#   area: recall steps 0 -> 1 once, envelope there max(.5, 1/3) = .5 -> AP = 0.5
#   11-point: every t has recall 1 entries, max precision .5 -> AP = 0.5
AP1_AREA = 0.5
AP1_11 = 0.5
# Class 2: no ground truth -> nan, excluded from the mean.
MAP_AREA = (AP0_AREA + AP1_AREA) / 2  # 37/60
MAP_11 = (AP0_11 + AP1_11) / 2  # 13.7/22


def test_hand_computed_area_ap():
    res = evaluate_voc(PRED, GT, num_classes=3)
    assert res.num_ground_truth == [3, 1, 0]
    assert res.ap_per_class[0] == pytest.approx(AP0_AREA, abs=1e-9)
    assert res.ap_per_class[1] == pytest.approx(AP1_AREA, abs=1e-9)
    assert math.isnan(res.ap_per_class[2])
    assert res.mean_ap == pytest.approx(MAP_AREA, abs=1e-9)
    assert MAP_AREA == pytest.approx(37 / 60, abs=1e-12)


def test_hand_computed_11_point_ap():
    res = evaluate_voc(PRED, GT, num_classes=3, use_11_point=True)
    assert res.ap_per_class[0] == pytest.approx(AP0_11, abs=1e-9)
    assert res.ap_per_class[1] == pytest.approx(AP1_11, abs=1e-9)
    assert math.isnan(res.ap_per_class[2])
    assert res.mean_ap == pytest.approx(MAP_11, abs=1e-9)
    assert MAP_11 == pytest.approx(13.7 / 22, abs=1e-12)


def test_hand_computed_curves():
    res = evaluate_voc(PRED, GT, num_classes=3)
    np.testing.assert_allclose(res.precision[0], [1, 1 / 2, 1 / 3, 2 / 4, 3 / 5], atol=1e-12)
    np.testing.assert_allclose(res.recall[0], [1 / 3, 1 / 3, 1 / 3, 2 / 3, 1], atol=1e-12)
    np.testing.assert_allclose(res.precision[1], [0, 1 / 2, 1 / 3], atol=1e-12)
    np.testing.assert_allclose(res.recall[1], [0, 1, 1], atol=1e-12)
    assert res.precision[2].size == 0 and res.recall[2].size == 0


def test_iou_threshold_is_inclusive_and_configurable():
    # e2 has IoU exactly 0.5 with h1; above a 0.6 threshold it becomes FP and class 1 has no TP at all.
    res = evaluate_voc(PRED, GT, num_classes=2, iou_threshold=0.6)
    assert res.ap_per_class[1] == 0.0
    # class 0 at 0.85: d6 (0.818) turns FP, d1 and d5 (0.909) stay TP
    #   d1 TP, d2 FP, d3 FP, d5 TP, d6 FP: precision 1, .5, 1/3, .5, .4 ; recall 1/3, 1/3, 1/3, 2/3, 2/3
    #   AP = 1/3 * 1 + 1/3 * 0.5 = 0.5
    res = evaluate_voc(PRED, GT, num_classes=1, iou_threshold=0.85)
    assert res.ap_per_class[0] == pytest.approx(0.5, abs=1e-9)


def test_difficult_ground_truth_is_neither_tp_nor_fp():
    truth = [gt([[0, 0, 10, 10], [50, 50, 60, 60]], [0, 0], [False, True])]
    # Detection on the difficult object ranked first: if it counted as FP, precision at recall 1 would be 1/2
    # (AP 0.5); as TP, recall would exceed 1 -- ignored, the single real TP gives AP 1.
    res = evaluate_voc([pred([(0.9, 0, 50, 50, 60, 60), (0.8, 0, 0, 0, 10, 10)])], truth, num_classes=1)
    assert res.num_ground_truth == [1]
    assert res.ap_per_class[0] == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(res.recall[0], [1.0])
    # Missing the difficult object costs nothing either.
    res = evaluate_voc([pred([(0.8, 0, 0, 0, 10, 10)])], truth, num_classes=1)
    assert res.ap_per_class[0] == pytest.approx(1.0, abs=1e-12)


def test_only_difficult_objects_means_no_ap():
    truth = [gt([[0, 0, 10, 10]], [0], [True])]
    res = evaluate_voc([pred([(0.9, 0, 0, 0, 10, 10)])], truth, num_classes=1)
    assert res.num_ground_truth == [0]
    assert math.isnan(res.ap_per_class[0]) and math.isnan(res.mean_ap)


def test_duplicate_detection_is_false_positive():
    truth = [gt([[0, 0, 10, 10], [20, 20, 30, 30]], [0, 0])]
    # TP (g1), FP (g1 again), TP (g2): precision 1, 1/2, 2/3 ; recall 1/2, 1/2, 1
    #   AP = 1/2 * 1 + 1/2 * 2/3 = 5/6 (it would be 1 if the duplicate were not counted)
    dets = [pred([(0.9, 0, 0, 0, 10, 10), (0.8, 0, 1, 0, 10, 10), (0.7, 0, 20, 20, 30, 30)])]
    res = evaluate_voc(dets, truth, num_classes=1)
    np.testing.assert_allclose(res.precision[0], [1, 1 / 2, 2 / 3], atol=1e-12)
    assert res.ap_per_class[0] == pytest.approx(5 / 6, abs=1e-9)


def test_wrong_label_does_not_match():
    truth = [gt([[0, 0, 10, 10]], [0])]
    res = evaluate_voc([pred([(0.9, 1, 0, 0, 10, 10)])], truth, num_classes=2)
    assert res.ap_per_class[0] == 0.0  # object missed
    assert math.isnan(res.ap_per_class[1])  # no class-1 ground truth
    assert res.mean_ap == 0.0


def test_class_without_ground_truth_is_nan_and_excluded():
    truth = [gt([[0, 0, 10, 10]], [0])]
    dets = [pred([(0.9, 0, 0, 0, 10, 10), (0.9, 1, 30, 30, 40, 40)])]
    res = evaluate_voc(dets, truth, num_classes=3)
    assert res.ap_per_class[0] == 1.0
    assert math.isnan(res.ap_per_class[1]) and math.isnan(res.ap_per_class[2])
    assert res.mean_ap == 1.0


def test_perfect_detections():
    truth = [gt([[0, 0, 10, 10], [5, 5, 25, 15]], [0, 1]), gt([[0.1, 0.2, 0.3, 0.4]], [1]), gt(np.zeros((0, 4)), [])]
    dets = [
        pred([(0.9, 0, 0, 0, 10, 10), (0.8, 1, 5, 5, 25, 15)]),
        pred([(0.7, 1, 0.1, 0.2, 0.3, 0.4)]),
        pred(np.zeros((0, 6))),
    ]
    for eleven in (False, True):
        res = evaluate_voc(dets, truth, num_classes=2, use_11_point=eleven)
        assert res.ap_per_class == [1.0, 1.0]
        assert res.mean_ap == 1.0


def test_no_detections_and_no_ground_truth():
    res = evaluate_voc([pred(np.zeros((0, 6)))], [gt([[0, 0, 1, 1]], [0])], num_classes=1)
    assert res.ap_per_class == [0.0] and res.mean_ap == 0.0
    res = evaluate_voc([pred(np.zeros((0, 6)))], [gt(np.zeros((0, 4)), [])], num_classes=2)
    assert all(math.isnan(a) for a in res.ap_per_class) and math.isnan(res.mean_ap)


def test_length_mismatch_rejected():
    with pytest.raises(ValueError, match="2 predictions for 1 ground-truth images"):
        evaluate_voc([pred(np.zeros((0, 6)))] * 2, [gt(np.zeros((0, 4)), [])], num_classes=1)


def test_average_precision_direct():
    # recall .5 at precision 1, then recall 1 at precision .5: area = .5 * 1 + .5 * .5 = .75
    r, p = np.array([0.5, 1.0]), np.array([1.0, 0.5])
    assert average_precision(r, p) == pytest.approx(0.75, abs=1e-12)
    # 11-point: t = 0..0.5 (6 points) -> 1, t = 0.6..1 (5 points) -> .5 => (6 + 2.5) / 11
    assert average_precision(r, p, use_11_point=True) == pytest.approx(8.5 / 11, abs=1e-12)
    assert average_precision(np.zeros(0), np.zeros(0)) == 0.0
