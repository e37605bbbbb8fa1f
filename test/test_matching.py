import torch

from underwater_detection.ops.box_coding import box_iou, center_to_corners
from underwater_detection.ops.matching import match_anchors
from underwater_detection.ops.priors import generate_priors


def test_every_ground_truth_gets_its_best_anchor_even_below_threshold():
    anchors = generate_priors(320, 320)
    tiny = torch.tensor([[0.50, 0.50, 0.53, 0.51]])  # far smaller than any anchor: best IoU < 0.5
    best_iou = box_iou(tiny, center_to_corners(anchors)).max()
    assert best_iou < 0.5
    matched, labels = match_anchors(tiny, torch.tensor([2]), anchors)
    assert (labels > 0).sum() == 1
    assert labels.max() == 3  # class index 2 -> label 3 (0 is background)
    assert torch.allclose(matched[labels > 0], tiny)


def test_positive_iff_iou_above_threshold_or_forced():
    gen = torch.Generator().manual_seed(0)
    anchors = generate_priors(320, 320)
    xy = torch.rand(6, 2, generator=gen) * 0.6
    gt = torch.cat([xy, xy + 0.1 + torch.rand(6, 2, generator=gen) * 0.3], dim=1)
    labels_in = torch.arange(6) % 4
    matched, labels = match_anchors(gt, labels_in, anchors, threshold=0.5)
    iou = box_iou(gt, center_to_corners(anchors))
    best_gt_iou, best_gt = iou.max(dim=0)
    forced = iou.argmax(dim=1)
    pos = labels > 0
    above = best_gt_iou > 0.5
    assert torch.equal(pos & ~above, torch.zeros_like(pos).index_fill(0, forced, True) & ~above)
    assert pos[above].all()
    # non-forced positives carry the label and box of their highest-IoU ground truth
    normal = above.clone()
    normal[forced] = False
    assert torch.equal(labels[normal], labels_in[best_gt[normal]] + 1)
    assert torch.equal(matched[normal], gt[best_gt[normal]])
    # each ground truth owns at least one positive anchor
    for g in range(6):
        assert (matched[pos] == gt[g]).all(dim=1).any()


def test_no_objects_gives_all_background():
    anchors = generate_priors(320, 320)
    matched, labels = match_anchors(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), anchors)
    assert labels.shape == (6375,) and labels.sum() == 0 and matched.abs().sum() == 0


def test_two_objects_sharing_a_best_anchor_both_get_a_positive():
    anchors = generate_priors(320, 320)
    # two tiny objects inside the same stride-8 cell: same best anchor
    a = torch.tensor([[0.500, 0.500, 0.510, 0.510]])
    b = torch.tensor([[0.501, 0.501, 0.511, 0.511]])
    iou = box_iou(torch.cat([a, b]), center_to_corners(anchors))
    assert iou[0].argmax() == iou[1].argmax()
    matched, labels = match_anchors(torch.cat([a, b]), torch.tensor([0, 1]), anchors)
    assert (labels == 1).sum() >= 1 and (labels == 2).sum() >= 1


def test_zero_area_box_is_not_force_matched():
    anchors = generate_priors(320, 320)
    _, labels = match_anchors(torch.tensor([[0.5, 0.5, 0.5, 0.6]]), torch.tensor([0]), anchors)
    assert labels.sum() == 0
