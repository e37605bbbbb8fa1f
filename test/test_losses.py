import pytest
import torch

from underwater_detection.ops.losses import MultiBoxLoss, Targets, hard_negative_mask
from underwater_detection.ops.outputs import HeadOutputs
from underwater_detection.ops.priors import generate_priors

A = 6375
C = 4


def _outputs(batch, two_step, requires_grad=True, seed=0):
    gen = torch.Generator().manual_seed(seed)
    t = lambda *s: torch.randn(*s, generator=gen).requires_grad_(requires_grad)  # noqa: E731
    if two_step:
        return HeadOutputs(t(batch, A, 4), t(batch, A, C + 1), t(batch, A, 4) * 0.1, t(batch, A, 2))
    return HeadOutputs(t(batch, A, 4), t(batch, A, C + 1))


def _targets():
    return [
        Targets(torch.tensor([[0.1, 0.1, 0.4, 0.5], [0.5, 0.5, 0.9, 0.8]]), torch.tensor([0, 3])),
        Targets(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)),
    ]


@pytest.mark.parametrize("two_step", [False, True])
def test_loss_is_finite_and_backpropagates(two_step):
    outputs = _outputs(2, two_step)
    terms = MultiBoxLoss(naf_threshold=0.99 if two_step else None)(outputs, generate_priors(320, 320), _targets())
    assert torch.isfinite(terms["loss"]) and terms["loss"] > 0
    terms["loss"].backward()
    assert outputs.loc.grad is not None and outputs.loc.grad.abs().sum() > 0
    if two_step:
        assert {"arm_loc", "arm_conf", "odm_loc", "odm_conf"} <= set(terms)
        assert outputs.arm_conf.grad.abs().sum() > 0


@pytest.mark.parametrize("two_step", [False, True])
def test_zero_objects_gives_zero_loss_with_a_graph(two_step):
    outputs = _outputs(2, two_step)
    empty = [Targets(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))] * 2
    terms = MultiBoxLoss()(outputs, generate_priors(320, 320), empty)
    assert terms["loss"].item() == 0.0
    terms["loss"].backward()  # must not raise
    assert int(terms["num_pos"]) == 0


def test_hard_negative_mining_ratio_and_choice():
    loss = torch.tensor([[0.1, 5.0, 3.0, 0.2, 4.0, 9.0, 0.3, 0.05]])
    pos = torch.zeros_like(loss, dtype=torch.bool)
    pos[0, 5] = True  # the highest-loss anchor is positive: it must not be mined as a negative
    neg = hard_negative_mask(loss, pos, None, neg_pos_ratio=3)
    assert neg.sum() == 3
    assert torch.equal(neg.nonzero()[:, 1], torch.tensor([1, 2, 4]))
    ignore = torch.zeros_like(pos)
    ignore[0, 1] = True
    neg = hard_negative_mask(loss, pos, ignore, neg_pos_ratio=3)
    assert torch.equal(neg.nonzero()[:, 1], torch.tensor([2, 4, 6]))  # next highest: 3.0, 4.0, 0.3


def test_perfect_predictions_have_near_zero_loss():
    """Encode the ground truth as predictions: the only loss left is the classification of mined negatives."""
    from underwater_detection.ops.box_coding import encode
    from underwater_detection.ops.matching import match_anchors

    priors = generate_priors(320, 320)
    target = _targets()[0]
    matched, labels = match_anchors(target.boxes, target.labels, priors)
    loc = encode(matched, priors).unsqueeze(0)
    conf = torch.full((1, A, C + 1), -20.0)
    conf[0, torch.arange(A), labels] = 20.0
    terms = MultiBoxLoss()(HeadOutputs(loc, conf), priors, [target])
    assert terms["loss"].item() < 1e-6


def test_negative_anchor_filtering_removes_confident_background():
    priors = generate_priors(320, 320)
    outputs = _outputs(1, True, requires_grad=False)
    arm_conf = torch.zeros(1, A, 2)
    arm_conf[..., 0] = 10.0  # ARM sure everything is background -> NAF ignores every anchor
    outputs = outputs._replace(arm_conf=arm_conf, arm_loc=torch.zeros(1, A, 4))
    with_naf = MultiBoxLoss(naf_threshold=0.99)(outputs, priors, _targets()[:1])
    without = MultiBoxLoss(naf_threshold=None)(outputs, priors, _targets()[:1])
    assert with_naf["odm_conf"].item() == 0.0 and with_naf["num_pos"] == 0
    assert without["odm_conf"].item() > 0


def test_mismatched_anchor_count_is_a_clear_error():
    with pytest.raises(ValueError, match="anchors but the head predicts"):
        MultiBoxLoss()(_outputs(2, False), generate_priors(512, 512), _targets())


@pytest.mark.parametrize(
    "boxes,labels,message",
    [
        ([[10.0, 10.0, 40.0, 50.0]], [0], "normalised"),
        ([[0.5, 0.5, 0.5, 0.6]], [0], "zero or negative width"),
        ([[0.1, 0.1, 0.2, 0.2]], [-1], "labels must be class indices"),
        ([[0.1, 0.1, 0.2, 0.2]], [C], "labels must be class indices"),
        ([[0.1, float("nan"), 0.2, 0.2]], [0], "non-finite"),
    ],
)
def test_bad_targets_are_rejected_with_a_clear_message(boxes, labels, message):
    bad = Targets(torch.tensor(boxes), torch.tensor(labels))
    with pytest.raises(ValueError, match=message):
        MultiBoxLoss()(_outputs(1, False), generate_priors(320, 320), [bad])


def test_min_negatives_lets_empty_images_teach_background():
    outputs = _outputs(1, False)
    empty = [Targets(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))]
    assert MultiBoxLoss()(outputs, generate_priors(320, 320), empty)["loss"].item() == 0.0
    with_min = MultiBoxLoss(min_negatives_per_image=16)(outputs, generate_priors(320, 320), empty)
    assert with_min["odm_conf"].item() > 0  # normalised by max(N, 1) = 1


def test_two_step_without_objectness_has_no_arm_conf_term():
    outputs = _outputs(1, True)._replace(arm_conf=None)
    terms = MultiBoxLoss()(outputs, generate_priors(320, 320), _targets()[:1])
    assert terms["arm_conf"].item() == 0.0 and terms["arm_loc"].item() > 0


def test_loss_runs_in_float32_for_half_outputs():
    outputs = HeadOutputs(*(t.detach().half() for t in _outputs(1, True)))
    terms = MultiBoxLoss()(outputs, generate_priors(320, 320), _targets()[:1])
    assert terms["loss"].dtype == torch.float32 and torch.isfinite(terms["loss"])
