"""The synthetic underwater video generator: determinism, pixel-exact ground truth, presets, splits."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from underwater_detection.data.synthetic import (
    CLASS_NAMES, SPLITS, SequenceConfig, SyntheticSequence, generate_sequence, split_seeds,
)
from underwater_detection.data.synthetic.camera import world_to_image
from underwater_detection.data.synthetic.scene import ALPHA_VISIBLE, measure_ground_truth, paste, sprite_matrix
from underwater_detection.data.synthetic.sprites import make_distractor_sprite, make_object_sprite

SMALL = dict(width=320, height=240, num_frames=12, fps=10.0)


@pytest.fixture(scope="module")
def clean_sequence() -> SyntheticSequence:
    """Effects off, instance map kept: the frame pixels are seabed + sprites only."""
    cfg = SequenceConfig(**SMALL, effects=False, keep_instance_map=True, objects_per_view=(30.0, 32.0),
                         clusters_per_view=(1.0, 1.2))
    return SyntheticSequence(4242, cfg)


@pytest.fixture(scope="module")
def clean_frames(clean_sequence) -> list:
    return list(clean_sequence)


def test_class_names_order():
    assert CLASS_NAMES == ("sea_cucumber", "sea_urchin", "scallop", "starfish")


def test_same_seed_same_frames_and_ground_truth():
    cfg = SequenceConfig(**{**SMALL, "num_frames": 4})
    a, b = list(generate_sequence(7, cfg)), list(generate_sequence(7, cfg))
    for fa, fb in zip(a, b):
        assert fa.image.dtype == np.uint8 and fa.image.shape == (240, 320, 3)
        np.testing.assert_array_equal(fa.image, fb.image)
        for key in ("boxes", "labels", "track_ids", "visible", "difficult", "truncated"):
            np.testing.assert_array_equal(getattr(fa, key), getattr(fb, key))
        assert fa.stamp_s == fb.stamp_s
    other = next(generate_sequence(8, cfg))
    assert np.abs(other.image.astype(int) - a[0].image.astype(int)).mean() > 5


def test_random_access_matches_iteration():
    seq = SyntheticSequence(11, SequenceConfig(**{**SMALL, "num_frames": 5}))
    frames = list(seq)
    np.testing.assert_array_equal(seq.frame(3).image, frames[3].image)
    np.testing.assert_array_equal(seq.frame(3).boxes, frames[3].boxes)
    assert [f.index for f in frames] == list(range(5))
    assert frames[2].stamp_s == pytest.approx(0.2)


def test_boxes_tight_around_visible_pixels(clean_frames):
    n = 0
    for f in clean_frames:
        h, w = f.image.shape[:2]
        assert set(np.unique(f.instance_map)) - {-1} == set(f.track_ids.tolist())
        for box, tid, vis in zip(f.boxes, f.track_ids, f.visible):
            ys, xs = np.nonzero(f.instance_map == tid)
            assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
            assert 0 <= box[0] < box[2] <= w and 0 <= box[1] < box[3] <= h
            assert 0 < vis <= 1
            n += 1
    assert n > 50


def test_ground_truth_arrays_are_consistent(clean_frames):
    for f in clean_frames:
        k = len(f.boxes)
        assert f.boxes.shape == (k, 4) and f.boxes.dtype == np.float32
        assert f.labels.dtype == np.int64 and f.track_ids.dtype == np.int64
        assert f.visible.dtype == np.float32 and f.difficult.dtype == bool and f.truncated.dtype == bool
        np.testing.assert_array_equal(f.difficult, f.visible < 0.3)
        assert len(set(f.track_ids.tolist())) == k
        assert ((f.labels >= 0) & (f.labels < len(CLASS_NAMES))).all()


def test_track_ids_stable_and_follow_the_camera(clean_sequence, clean_frames):
    """A track id keeps its class, and its box contains the projection of that object's world position."""
    label_of: dict[int, int] = {}
    cfg = clean_sequence.config
    checked = 0
    for f in clean_frames:
        cam = clean_sequence.path.matrix(f.index, cfg.width, cfg.height)
        for box, label, tid, vis, trunc in zip(f.boxes, f.labels, f.track_ids, f.visible, f.truncated):
            assert label_of.setdefault(int(tid), int(label)) == int(label)
            obj = clean_sequence.objects[[o.track_id for o in clean_sequence.objects].index(int(tid))]
            assert obj.label == int(label)
            if vis > 0.95 and not trunc:
                x, y = cam[:, :2] @ obj.positions[f.index] + cam[:, 2]
                assert box[0] - 1 <= x <= box[2] + 1 and box[1] - 1 <= y <= box[3] + 1
                checked += 1
    assert checked > 30
    # the same object moves only a little between consecutive frames
    for fa, fb in zip(clean_frames, clean_frames[1:]):
        common = set(fa.track_ids.tolist()) & set(fb.track_ids.tolist())
        for tid in common:
            ia, ib = list(fa.track_ids).index(tid), list(fb.track_ids).index(tid)
            if fa.visible[ia] > 0.95 and fb.visible[ib] > 0.95 and not (fa.truncated[ia] or fb.truncated[ib]):
                ca = (fa.boxes[ia, :2] + fa.boxes[ia, 2:]) / 2
                cb = (fb.boxes[ib, :2] + fb.boxes[ib, 2:]) / 2
                assert np.abs(ca - cb).max() < 25


def _full_mask(sprite, matrix, shape) -> np.ndarray:
    """Independent oracle: warp the whole sprite onto a large canvas (no local ROI, no clipping)."""
    big_h, big_w = shape[0] * 3, shape[1] * 3
    m = matrix.copy()
    m[:, 2] += (shape[1], shape[0])
    level0 = sprite.levels[0]
    warped = cv2.warpAffine(level0[..., 3], m, (big_w, big_h), flags=cv2.INTER_LINEAR)
    return (warped >= ALPHA_VISIBLE)[shape[0]:2 * shape[0], shape[1]:2 * shape[1]], int((warped >= ALPHA_VISIBLE).sum())


def _paste_at(image, inst, sprite, x, y, tid, angle=0.0):
    cam = world_to_image(image.shape[1] / 2, image.shape[0] / 2, 0.0, 1.0, image.shape[1], image.shape[0])
    m = sprite_matrix(cam, np.array([x, y]), angle, 1.0, sprite)
    return m, paste(image, inst, sprite, m, tid)


def test_half_outside_and_occluded_objects():
    rng = np.random.default_rng(0)
    h, w = 120, 160
    image = np.full((h, w, 3), 90, np.uint8)
    inst = np.full((h, w), -1, np.int32)
    urchin = make_object_sprite(1, 40, rng)  # round: cut through its centre it is half visible
    scallop = make_object_sprite(2, 36, rng)
    rock = make_distractor_sprite("rock", 34, rng)
    stats, labels = {}, {}
    m0, stats[0] = _paste_at(image, inst, urchin, 0.0, 60.0, 0)          # centred on the left border
    m1, stats[1] = _paste_at(image, inst, scallop, 100.0, 60.0, 1)       # fully inside ...
    m2, st_rock = _paste_at(image, inst, rock, 108.0, 62.0, -1)          # ... then mostly covered by a rock
    labels = {0: 1, 1: 2}
    gt = measure_ground_truth(inst, stats, labels, 0.3)
    assert gt.track_ids.tolist() == [0, 1]

    mask0, full0 = _full_mask(urchin, m0, (h, w))
    assert stats[0].full == full0
    assert gt.visible[0] == pytest.approx(mask0.sum() / full0, abs=1e-6)
    assert 0.4 < gt.visible[0] < 0.6 and gt.truncated[0] and not gt.difficult[0]
    ys, xs = np.nonzero(mask0)
    assert gt.boxes[0].tolist() == [0, ys.min(), xs.max() + 1, ys.max() + 1]

    mask1, full1 = _full_mask(scallop, m1, (h, w))
    mask_rock, _ = _full_mask(rock, m2, (h, w))
    left = mask1 & ~mask_rock
    assert stats[1].full == full1 and not gt.truncated[1]
    assert gt.visible[1] == pytest.approx(left.sum() / full1, abs=1e-6)
    ys, xs = np.nonzero(left)
    assert gt.boxes[1].tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    assert gt.difficult[1] == (gt.visible[1] < 0.3)

    # further out of the frame: under the threshold -> difficult, still listed; fully out -> not listed
    image[:] = 90
    inst[:] = -1
    _, st = _paste_at(image, inst, urchin, -12.0, 60.0, 0)
    gt = measure_ground_truth(inst, {0: st}, {0: 1}, 0.3)
    assert gt.visible[0] < 0.3 and gt.difficult[0] and len(gt.boxes) == 1
    _, st = _paste_at(image, inst, urchin, -60.0, 60.0, 5)
    assert st is None


def test_occlusion_inside_a_generated_sequence(clean_frames):
    """Clusters and borders produce partly hidden objects whose fractions match the instance map."""
    partial = [v for f in clean_frames for v in f.visible if v < 0.999]
    assert len(partial) > 5
    assert any(f.truncated.any() for f in clean_frames)


def test_every_class_appears_over_a_few_sequences():
    seen = set()
    cfg = SequenceConfig(width=256, height=192, num_frames=3)
    for seed in range(4):
        for f in generate_sequence(seed, cfg):
            seen |= set(f.labels.tolist())
    assert seen == {0, 1, 2, 3}


def _stats(preset: str) -> tuple[float, float]:
    means, contrasts = [], []
    for seed in range(3):
        seq = SyntheticSequence(300 + seed, SequenceConfig(width=192, height=144, num_frames=3, preset=preset))
        assert seq.preset == preset
        img = seq.frame(1).image.astype(np.float32)
        lum = img @ np.array([0.299, 0.587, 0.114], np.float32)
        means.append(lum.mean())
        contrasts.append(lum.std() / max(lum.mean(), 1.0))
    return float(np.mean(means)), float(np.mean(contrasts))


def test_presets_differ_measurably():
    clear, turbid, dark = _stats("clear"), _stats("turbid"), _stats("dark")
    assert dark[0] < clear[0] - 20  # darker
    assert turbid[1] < clear[1]     # lower contrast


def test_mixed_preset_samples_all_presets():
    presets = {SyntheticSequence(s, SequenceConfig(width=64, height=48, num_frames=1)).preset for s in range(12)}
    assert presets == {"clear", "turbid", "dark"}


def test_water_effects_keep_ground_truth():
    """Effects change pixels, never the ground truth."""
    raw = SyntheticSequence(5, SequenceConfig(**{**SMALL, "num_frames": 2}, effects=False)).frame(1)
    wet = SyntheticSequence(5, SequenceConfig(**{**SMALL, "num_frames": 2})).frame(1)
    np.testing.assert_array_equal(raw.boxes, wet.boxes)
    assert np.abs(raw.image.astype(int) - wet.image.astype(int)).mean() > 5


def test_splits_are_disjoint_and_fixed():
    assert SPLITS["test"] == range(200_000, 300_000)
    tr, va, te = (set(SPLITS[s]) for s in ("train", "val", "test"))
    assert not (tr & va) and not (tr & te) and not (va & te)
    assert split_seeds("test", 3) == [200_000, 200_001, 200_002]
    assert split_seeds("val", 2, offset=5) == [100_005, 100_006]
    with pytest.raises(ValueError):
        split_seeds("bogus", 1)


def test_config_validation():
    with pytest.raises(ValueError, match="preset"):
        SequenceConfig(preset="murky")
    with pytest.raises(ValueError):
        SequenceConfig(num_frames=0)
    with pytest.raises(IndexError):
        SyntheticSequence(1, SequenceConfig(width=64, height=48, num_frames=2)).frame(2)


def test_object_scale_grows_objects_without_changing_the_scene():
    from underwater_detection.data.synthetic import SequenceConfig, SyntheticSequence

    base = SequenceConfig(width=320, height=240, num_frames=3, preset="clear", object_scale=1.0)
    small = [SyntheticSequence(11, base).frame(i) for i in range(3)]
    large = [SyntheticSequence(11, SequenceConfig(**{**base.__dict__, "object_scale": 2.0})).frame(i) for i in range(3)]

    def median_side(frames):
        boxes = np.concatenate([f.boxes[~f.difficult] for f in frames])
        return float(np.median(np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))))

    ratio = median_side(large) / median_side(small)
    assert 1.6 < ratio < 2.8, ratio  # ~2x; visibility and border clipping shift the median a little
    with pytest.raises(ValueError, match="object_scale"):
        SequenceConfig(object_scale=0.0)
