"""ops.box_overlap: the one numpy IoU, held to hand-computed values and to the torch IoU used by matching."""
import numpy as np
import pytest
import torch

from underwater_detection.ops.box_coding import box_iou
from underwater_detection.ops.box_overlap import iou_matrix, paired_iou


def test_hand_computed_overlaps():
    a = [[0, 0, 2, 2]]
    b = [[1, 1, 3, 3], [0, 0, 2, 2], [2, 2, 4, 4], [0, 0, 1, 2]]
    # 1 / (4 + 4 - 1); identical; touching corners only; contained half
    assert iou_matrix(a, b)[0] == pytest.approx([1 / 7, 1.0, 0.0, 0.5])


def test_degenerate_and_empty_boxes_give_zero_not_nan():
    point, inverted = [5, 5, 5, 5], [3, 3, 1, 1]
    out = iou_matrix([point, inverted], [point, inverted, [0, 0, 10, 10]])
    assert np.all(out == 0.0) and out.shape == (2, 3)
    assert iou_matrix(np.zeros((0, 4)), [[0, 0, 1, 1]]).shape == (0, 1)
    assert iou_matrix([[0, 0, 1, 1]], []).shape == (1, 0)
    assert paired_iou([], []).shape == (0,)


def test_matrix_agrees_with_the_torch_iou_and_pairs_with_its_diagonal():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 1, (2, 40, 2))
    wh = rng.uniform(0.01, 0.5, (2, 40, 2))
    a, b = np.concatenate([xy[0], xy[0] + wh[0]], 1), np.concatenate([xy[1], xy[1] + wh[1]], 1)
    ours = iou_matrix(a, b)
    theirs = box_iou(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-12)
    assert ours.max() > 0.1  # the fixture has real overlaps, not only zeros
    np.testing.assert_allclose(paired_iou(a, b), np.diag(ours), atol=1e-15)


def test_one_box_may_be_given_flat_and_wrong_shapes_are_errors():
    assert iou_matrix([0, 0, 2, 2], [[0, 0, 2, 2], [0, 0, 1, 2]]).tolist() == [[1.0, 0.5]]
    for bad in (np.zeros((4, 5)), np.zeros(5), np.zeros((2, 2, 4))):
        with pytest.raises(ValueError, match="an \\(N, 4\\) array, got shape"):
            iou_matrix(bad, [[0, 0, 1, 1]])


def test_paired_needs_equal_lengths():
    with pytest.raises(ValueError, match="as many boxes in a as in b, got 2 and 1"):
        paired_iou([[0, 0, 1, 1]] * 2, [[0, 0, 1, 1]])
