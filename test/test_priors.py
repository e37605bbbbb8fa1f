import pytest
import torch

from underwater_detection.ops.priors import PriorConfig, generate_priors, num_priors, priors_per_level


@pytest.mark.parametrize("size,count", [((320, 320), 6375), ((512, 512), 16320)])
def test_anchor_counts_match_the_papers(size, count):
    assert num_priors(*size) == count
    assert generate_priors(*size).shape == (count, 4)


def test_non_square_input_gives_square_pixel_anchors():
    h, w = 384, 512
    priors = generate_priors(h, w, PriorConfig(clip=False))
    assert priors.shape[0] == sum(priors_per_level(h, w)) == 3 * sum((h // s) * (w // s) for s in (8, 16, 32, 64))
    first = priors[0]  # level 0, cell (0, 0), ratio 1 -> 32 px square
    assert torch.allclose(first, torch.tensor([4 / w, 4 / h, 32 / w, 32 / h]))


def test_layout_is_level_then_row_major_cell_then_ratio():
    priors = generate_priors(320, 320, PriorConfig(clip=False))
    # second cell of level 0 is one stride (8 px) to the right, same row
    assert torch.allclose(priors[3, :2], torch.tensor([12 / 320, 4 / 320]))
    # ratios 1, 2, 1/2: w*h constant = size^2, w/h = ratio
    w, h = priors[:3, 2] * 320, priors[:3, 3] * 320
    assert torch.allclose(w * h, torch.full((3,), 32.0**2))
    assert torch.allclose(w / h, torch.tensor([1.0, 2.0, 0.5]))
    # the last level starts after 40*40*3 + 20*20*3 + 10*10*3 anchors with the 256 px size
    start = 3 * (1600 + 400 + 100)
    assert torch.allclose(priors[start, 2:] * 320, torch.tensor([256.0, 256.0]))


def test_clip_only_shrinks_oversized_anchors_and_keeps_centres():
    raw = generate_priors(320, 320, PriorConfig(clip=False))
    clipped = generate_priors(320, 320)
    assert clipped.min() >= 0 and clipped.max() <= 1
    assert torch.equal(raw[:, :2], clipped[:, :2])
    assert (raw[:, 2:] > 1).any()  # the 256 px, ratio-2 anchor is wider than a 320 px image


@pytest.mark.parametrize("size", [(300, 300), (320, 330), (0, 320)])
def test_sizes_not_multiple_of_64_rejected(size):
    with pytest.raises(ValueError, match="multiples of 64"):
        generate_priors(*size)


def test_config_round_trip_and_unknown_key():
    cfg = PriorConfig(scale_factor=3.0)
    assert PriorConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown anchor config keys"):
        PriorConfig.from_dict({"stride": [8]})
