import pytest
import torch

from underwater_detection.ops.box_coding import (
    box_iou, center_to_corners, corners_to_center, decode, decode_two_step, encode, refine_anchors,
)
from underwater_detection.ops.priors import generate_priors


def _random_boxes(n, gen):
    xy = torch.rand(n, 2, generator=gen) * 0.8
    wh = torch.rand(n, 2, generator=gen) * 0.3 + 0.02
    return torch.cat([xy, (xy + wh).clamp(max=1.0)], dim=1)


def test_encode_decode_round_trip():
    gen = torch.Generator().manual_seed(0)
    anchors = generate_priors(320, 320)
    boxes = _random_boxes(anchors.shape[0], gen)
    offsets = encode(boxes, anchors)
    assert (decode(offsets, anchors) - boxes).abs().max() < 1e-5


def test_corner_center_inverse():
    gen = torch.Generator().manual_seed(1)
    boxes = _random_boxes(100, gen)
    assert torch.allclose(center_to_corners(corners_to_center(boxes)), boxes, atol=1e-7)


def test_zero_offsets_decode_to_the_anchor():
    anchors = generate_priors(320, 320)
    assert torch.allclose(decode(torch.zeros_like(anchors), anchors), center_to_corners(anchors))


def test_variances_scale_targets():
    anchor = torch.tensor([[0.5, 0.5, 0.2, 0.2]])
    box = torch.tensor([[0.42, 0.42, 0.62, 0.62]])  # centre +0.02, same size
    off = encode(box, anchor, (0.1, 0.2))
    assert torch.allclose(off, torch.tensor([[1.0, 1.0, 0.0, 0.0]]), atol=1e-5)


def test_two_step_decoding_and_soft_coefficient():
    gen = torch.Generator().manual_seed(2)
    anchors = generate_priors(320, 320)
    ar = torch.randn(anchors.shape[0], 4, generator=gen)
    odm = torch.randn(anchors.shape[0], 4, generator=gen)
    refined = refine_anchors(ar, anchors)
    assert torch.allclose(decode_two_step(odm, ar, anchors), decode(odm, refined), atol=1e-6)
    # e = 0 reproduces the original anchors, e = 1 the refined ones, e = 0.5 uses half the offsets
    assert torch.allclose(refine_anchors(ar, anchors, soft_coefficient=0.0), anchors)
    assert torch.allclose(refine_anchors(ar, anchors, soft_coefficient=0.5), refine_anchors(ar * 0.5, anchors))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        refine_anchors(ar, anchors, soft_coefficient=1.5)


def test_huge_size_offsets_stay_finite():
    anchors = generate_priors(320, 320)
    boxes = decode(torch.full_like(anchors, 1e4), anchors)
    assert torch.isfinite(boxes).all()


def test_iou_known_values_and_degenerate_boxes():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 0.0, 0.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 2.0, 2.0]])
    iou = box_iou(a, b)
    assert torch.allclose(iou[0], torch.tensor([1 / 7, 1.0]))
    assert torch.equal(iou[1], torch.zeros(2))
