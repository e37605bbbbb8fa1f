"""Post-processing on hand-built head outputs: thresholds, per-class NMS, limits, clipping, NAF, two-step decoding."""

from __future__ import annotations

import math

import pytest
import torch

from underwater_detection.ops.box_coding import center_to_corners, decode, decode_two_step
from underwater_detection.ops.outputs import HeadOutputs
from underwater_detection.ops.postprocess import (
    ImageDetections,
    PostprocessConfig,
    class_scores,
    decode_boxes,
    postprocess,
    select_detections,
)

NUM_CLASSES = 2  # foreground; conf has a background column in front


def _conf(probs: list[list[float]]) -> torch.Tensor:
    """Logits whose softmax is exactly ``probs`` (rows: anchors; columns: background, class 0, class 1)."""
    p = torch.tensor(probs, dtype=torch.float64)
    assert torch.allclose(p.sum(-1), torch.ones(len(probs), dtype=torch.float64))
    return p.log().unsqueeze(0)


def _outputs(priors_cxcywh: list[list[float]], probs: list[list[float]], **extra) -> tuple[HeadOutputs, torch.Tensor]:
    priors = torch.tensor(priors_cxcywh, dtype=torch.float64)
    loc = torch.zeros(1, len(priors), 4, dtype=torch.float64)  # zero offsets: boxes are the anchors
    return HeadOutputs(loc=loc, conf=_conf(probs), **extra), priors


def _run(outputs, priors, **cfg) -> ImageDetections:
    (det,) = postprocess(outputs, priors, PostprocessConfig(**cfg))
    return det


# Five well-separated anchors along the diagonal, all 0.1 x 0.1.
SEPARATE = [[0.1 + 0.18 * i, 0.1 + 0.18 * i, 0.1, 0.1] for i in range(5)]


def _one_class(scores: list[float], cls: int = 0) -> list[list[float]]:
    rows = []
    for s in scores:
        fg = [0.0, 0.0]
        fg[cls] = s
        rows.append([1.0 - s] + fg)
    return rows


def test_scores_are_foreground_softmax():
    out, _ = _outputs(SEPARATE[:2], [[0.2, 0.5, 0.3], [0.9, 0.05, 0.05]])
    scores = class_scores(out)
    assert scores.shape == (1, 2, NUM_CLASSES)
    assert torch.allclose(scores, torch.tensor([[[0.5, 0.3], [0.05, 0.05]]], dtype=torch.float64))


def test_zero_offsets_give_the_anchor_boxes_with_labels_from_zero():
    out, priors = _outputs(SEPARATE[:2], [[0.1, 0.0, 0.9], [0.2, 0.8, 0.0]])
    det = _run(out, priors)
    assert len(det) == 2
    assert det.labels.tolist() == [1, 0]  # conf column 2 -> label 1, column 1 -> label 0
    assert torch.allclose(det.scores, torch.tensor([0.9, 0.8]))
    assert torch.allclose(det.boxes, center_to_corners(priors[[0, 1]]).float())
    assert det.boxes.dtype == torch.float32 and det.labels.dtype == torch.int64


def test_score_threshold_respected():
    out, priors = _outputs(SEPARATE, _one_class([0.9, 0.3, 0.05, 0.21, 0.19]))
    det = _run(out, priors, score_threshold=0.2)
    assert sorted(det.scores.tolist(), reverse=True) == pytest.approx([0.9, 0.3, 0.21])
    det = _run(out, priors, score_threshold=0.0)
    assert len(det) == 5
    det = _run(out, priors, score_threshold=0.95)
    assert len(det) == 0
    assert det.boxes.shape == (0, 4) and det.scores.shape == (0,) and det.labels.shape == (0,)


# Two anchors with IoU 0.818 (0.2 x 0.2 boxes, 0.02 apart: 0.18*0.2 / (0.04 + 0.04 - 0.036)) and a far one.
OVERLAPPING = [[0.25, 0.25, 0.2, 0.2], [0.27, 0.25, 0.2, 0.2], [0.75, 0.75, 0.2, 0.2]]


def test_nms_same_class_keeps_only_the_best():
    out, priors = _outputs(OVERLAPPING, _one_class([0.7, 0.9, 0.6]))
    det = _run(out, priors)
    assert det.scores.tolist() == pytest.approx([0.9, 0.6])
    assert torch.allclose(det.boxes[0], center_to_corners(priors[1]).float())
    # a looser IoU threshold than their overlap keeps both
    assert len(_run(out, priors, nms_iou=0.9)) == 3


def test_nms_is_per_class():
    out, priors = _outputs(OVERLAPPING, [[0.3, 0.7, 0.0], [0.1, 0.0, 0.9], [0.4, 0.6, 0.0]])
    det = _run(out, priors)
    assert len(det) == 3
    assert det.labels.tolist() == [1, 0, 0]
    assert det.scores.tolist() == pytest.approx([0.9, 0.7, 0.6])


def test_one_anchor_can_report_several_classes():
    out, priors = _outputs(SEPARATE[:1], [[0.1, 0.5, 0.4]])
    det = _run(out, priors)
    assert sorted(det.labels.tolist()) == [0, 1]
    assert torch.equal(det.boxes[0], det.boxes[1])


def test_max_detections_keeps_the_best():
    out, priors = _outputs(SEPARATE, _one_class([0.5, 0.9, 0.3, 0.7, 0.6]))
    det = _run(out, priors, max_detections=3)
    assert det.scores.tolist() == pytest.approx([0.9, 0.7, 0.6])
    assert torch.allclose(det.boxes, center_to_corners(priors[[1, 3, 4]]).float())


def test_pre_nms_top_k_limits_candidates():
    out, priors = _outputs(SEPARATE, _one_class([0.5, 0.9, 0.3, 0.7, 0.6]))
    det = _run(out, priors, pre_nms_top_k=2, max_detections=200)
    assert det.scores.tolist() == pytest.approx([0.9, 0.7])


def test_pre_nms_top_k_counts_anchor_class_pairs():
    # the top-2 (anchor, class) pairs both sit on anchor 0
    out, priors = _outputs(SEPARATE[:2], [[0.0, 0.6, 0.4], [0.7, 0.3, 0.0]])
    det = _run(out, priors, pre_nms_top_k=2)
    assert det.scores.tolist() == pytest.approx([0.6, 0.4])
    assert det.labels.tolist() == [0, 1]


def test_boxes_clipped_to_unit_square():
    # corners: (-0.1, 0.9, 0.2, 1.3) and (0.85, -0.05, 1.25, 0.15)
    out, priors = _outputs([[0.05, 1.1, 0.3, 0.4], [1.05, 0.05, 0.4, 0.2]], _one_class([0.9, 0.8]))
    det = _run(out, priors)
    assert (det.boxes >= 0).all() and (det.boxes <= 1).all()
    expected = torch.tensor([[0.0, 0.9, 0.2, 1.0], [0.85, 0.0, 1.0, 0.15]])
    assert torch.allclose(det.boxes, expected, atol=1e-6)


def test_results_sorted_by_score():
    g = torch.Generator().manual_seed(0)
    n = 60
    centres = torch.rand(n, 2, generator=g, dtype=torch.float64) * 0.8 + 0.1
    sizes = torch.rand(n, 2, generator=g, dtype=torch.float64) * 0.2 + 0.05
    priors = torch.cat([centres, sizes], dim=1)
    logits = torch.randn(1, n, NUM_CLASSES + 1, generator=g, dtype=torch.float64) * 2
    out = HeadOutputs(loc=torch.zeros(1, n, 4, dtype=torch.float64), conf=logits)
    det = _run(out, priors, score_threshold=0.05)
    assert len(det) > 5
    assert torch.all(det.scores[:-1] >= det.scores[1:])
    assert (det.scores > 0.05).all()
    # NMS really ran: no two kept boxes of one class overlap by more than the threshold
    from underwater_detection.ops.box_coding import box_iou

    for c in range(NUM_CLASSES):
        b = det.boxes[det.labels == c]
        iou = box_iou(b, b) - torch.eye(len(b))
        assert (iou <= 0.45 + 1e-6).all()


def test_batch_images_are_independent():
    priors = torch.tensor(SEPARATE[:2], dtype=torch.float64)
    conf = torch.cat([_conf(_one_class([0.9, 0.1])), _conf(_one_class([0.1, 0.8], cls=1))])
    out = HeadOutputs(loc=torch.zeros(2, 2, 4, dtype=torch.float64), conf=conf)
    first, second = postprocess(out, priors, PostprocessConfig(score_threshold=0.5))
    assert first.scores.tolist() == pytest.approx([0.9]) and first.labels.tolist() == [0]
    assert second.scores.tolist() == pytest.approx([0.8]) and second.labels.tolist() == [1]
    assert torch.allclose(second.boxes[0], center_to_corners(priors[1]).float())


# ---------------------------------------------------------------------------------------------- NAF


def _arm_conf(background_probs: list[float]) -> torch.Tensor:
    p = torch.tensor(background_probs, dtype=torch.float64)
    return torch.stack([p, 1 - p], dim=-1).log().unsqueeze(0)


def test_negative_anchor_filtering_zeroes_rejected_anchors():
    probs = _one_class([0.9, 0.8, 0.7])
    arm_loc = torch.zeros(1, 3, 4, dtype=torch.float64)
    out, priors = _outputs(SEPARATE[:3], probs, arm_loc=arm_loc, arm_conf=_arm_conf([0.995, 0.5, 0.98]))

    scores = class_scores(out, naf_threshold=0.99)
    assert scores[0, 0].tolist() == [0.0, 0.0]  # ARM background 0.995 > 0.99: filtered
    assert scores[0, 1:, 0].tolist() == pytest.approx([0.8, 0.7])
    assert torch.allclose(class_scores(out, naf_threshold=None), class_scores(out))
    assert class_scores(out)[0, 0, 0].item() == pytest.approx(0.9)
    assert class_scores(out, naf_threshold=0.97)[0, :, 0].tolist() == pytest.approx([0.0, 0.8, 0.0])

    det = postprocess(out, priors, naf_threshold=0.99)[0]
    assert det.scores.tolist() == pytest.approx([0.8, 0.7])
    assert len(postprocess(out, priors)[0]) == 3


def test_naf_ignored_without_arm():
    out, _ = _outputs(SEPARATE[:2], _one_class([0.9, 0.8]))
    assert torch.equal(class_scores(out, naf_threshold=0.5), class_scores(out))


# ---------------------------------------------------------------------------------------------- decoding


def _random_two_step(n: int = 6):
    g = torch.Generator().manual_seed(3)
    priors = torch.cat([torch.rand(n, 2, generator=g) * 0.6 + 0.2, torch.rand(n, 2, generator=g) * 0.2 + 0.1], 1)
    loc = torch.randn(1, n, 4, generator=g)
    arm_loc = torch.randn(1, n, 4, generator=g)
    conf = torch.randn(1, n, NUM_CLASSES + 1, generator=g)
    arm_conf = torch.randn(1, n, 2, generator=g)
    return HeadOutputs(loc, conf, arm_loc, arm_conf), priors


def test_two_step_decoding_used_when_arm_loc_present():
    out, priors = _random_two_step()
    boxes = decode_boxes(out, priors)
    assert torch.allclose(boxes, decode_two_step(out.loc, out.arm_loc, priors))
    assert not torch.allclose(boxes, decode(out.loc, priors))
    one_step = decode_boxes(out._replace(arm_loc=None, arm_conf=None), priors)
    assert torch.allclose(one_step, decode(out.loc, priors))


def test_two_step_decoding_passes_variances_and_soft_coefficient():
    out, priors = _random_two_step()
    got = decode_boxes(out, priors, variances=(0.2, 0.3), soft_coefficient=0.5)
    assert torch.allclose(got, decode_two_step(out.loc, out.arm_loc, priors, (0.2, 0.3), 0.5))
    assert not torch.allclose(got, decode_two_step(out.loc, out.arm_loc, priors, (0.2, 0.3), 1.0))
    assert torch.allclose(decode_boxes(out, priors, soft_coefficient=0.0), decode(out.loc, priors))


def test_postprocess_boxes_are_the_two_step_boxes():
    out, priors = _random_two_step()
    n = priors.shape[0]
    probs = torch.full((n, 3), 0.0)
    probs[:, 0] = 1.0
    probs[4] = torch.tensor([0.05, 0.95, 0.0])  # only anchor 4, class 0, survives
    out = out._replace(conf=torch.log(probs.clamp(min=1e-30)).unsqueeze(0))
    det = postprocess(out, priors, PostprocessConfig(score_threshold=0.5), soft_coefficient=0.7)[0]
    assert len(det) == 1 and det.labels.tolist() == [0]
    expected = decode_two_step(out.loc, out.arm_loc, priors, soft_coefficient=0.7)[0, 4].clamp(0, 1)
    assert torch.allclose(det.boxes[0], expected)


def test_select_detections_on_plain_tensors():
    boxes = center_to_corners(torch.tensor(SEPARATE[:3]))
    scores = torch.tensor([[0.1, 0.6], [0.3, 0.0], [0.0, 0.02]])
    det = select_detections(boxes, scores, PostprocessConfig(score_threshold=0.05))
    assert det.scores.tolist() == pytest.approx([0.6, 0.3, 0.1])
    assert det.labels.tolist() == [1, 0, 0]


# ---------------------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"score_threshold": -0.1}, "score_threshold"),
        ({"score_threshold": 1.0}, "score_threshold"),
        ({"nms_iou": 0.0}, "nms_iou"),
        ({"nms_iou": 1.5}, "nms_iou"),
        ({"nms_iou": math.nan}, "nms_iou"),
        ({"pre_nms_top_k": 0}, "pre_nms_top_k"),
        ({"max_detections": 0}, "max_detections"),
    ],
)
def test_config_rejects_invalid_values(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        PostprocessConfig(**kwargs)
    with pytest.raises(ValueError, match=fragment):
        PostprocessConfig.from_dict(kwargs)


def test_config_dict_round_trip_and_unknown_keys():
    cfg = PostprocessConfig(score_threshold=0.5, nms_iou=0.3, pre_nms_top_k=10, max_detections=5)
    assert PostprocessConfig.from_dict(cfg.to_dict()) == cfg
    assert PostprocessConfig.from_dict(None) == PostprocessConfig()
    assert PostprocessConfig() == PostprocessConfig(0.01, 0.45, 400, 200)  # the papers' defaults
    with pytest.raises(ValueError, match=r"unknown postprocess keys \['top_k'\]"):
        PostprocessConfig.from_dict({"top_k": 5})


def test_a_detection_cap_above_the_nms_candidates_raises_them_with_it():
    cfg = PostprocessConfig(score_threshold=0.5, nms_iou=0.3, pre_nms_top_k=10, max_detections=5)
    assert cfg.with_max_detections(3) == PostprocessConfig(0.5, 0.3, 10, 3)
    assert cfg.with_max_detections(50) == PostprocessConfig(0.5, 0.3, 50, 50)  # else NMS would see only 10


def test_boxes_outside_the_image_and_non_finite_boxes_are_dropped():
    from underwater_detection.ops.postprocess import select_detections

    boxes = torch.tensor([[1.2, 1.2, 1.5, 1.5], [0.1, 0.1, 0.3, 0.3], [float("nan"), 0.1, 0.2, 0.2]])
    scores = torch.tensor([[0.99], [0.6], [0.95]])
    dets = select_detections(boxes, scores)
    assert len(dets) == 1 and torch.allclose(dets.boxes[0], boxes[1])


def test_prior_count_mismatch_is_a_clear_error():
    from underwater_detection.ops.outputs import HeadOutputs
    from underwater_detection.ops.postprocess import postprocess
    from underwater_detection.ops.priors import generate_priors

    out = HeadOutputs(torch.zeros(1, 6375, 4), torch.zeros(1, 6375, 5))
    with pytest.raises(ValueError, match="anchors but the head predicts"):
        postprocess(out, generate_priors(512, 512))
