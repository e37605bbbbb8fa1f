"""SSD augmentation: boxes stay on the pixels they cover, each op's contract, determinism, network tensors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from underwater_detection.data import augment as aug
from underwater_detection.data.augment import (
    AugmentConfig,
    Compose,
    EvalTransform,
    Expand,
    PhotometricDistort,
    RandomIoUCrop,
    RandomMirror,
    Resize,
    TrainTransform,
    TransformedDataset,
    build_ssd_augmentation,
    collate,
)
from underwater_detection.data.datasets import Sample
from underwater_detection.data.transforms import image_to_tensor
from underwater_detection.ops.box_overlap import iou_matrix
from underwater_detection.ops.losses import Targets

IDENTITY = {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "color": "rgb"}
IMAGENET_BGR = {"mean": [103.5, 116.3, 123.7], "std": [57.4, 57.1, 58.4], "color": "bgr"}
WHITE, GREEN = (255, 255, 255), (0, 255, 0)


def _scene(h: int = 120, w: int = 160):
    """Black image, a white and a green solid rectangle; label 0 = white, 1 = green."""
    image = np.zeros((h, w, 3), np.uint8)
    boxes = np.array([[20, 30, 70, 90], [100, 10, 150, 50]], np.float32)
    image[30:90, 20:70] = WHITE
    image[10:50, 100:150] = GREEN
    return image, boxes, np.array([0, 1], np.int64)


def _colour_mask(image: np.ndarray, label: int) -> np.ndarray:
    r, g, b = (image[..., c].astype(int) for c in range(3))
    if label == 0:
        return (r > 200) & (g > 200) & (b > 200)
    return (g > 200) & (r < 60) & (b < 60)


def _assert_aligned(image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, tol: float = 2.0) -> int:
    """Each box tightly contains the visible pixels of its rectangle (one rectangle per colour), within ``tol``."""
    for box, label in zip(boxes, labels):
        ys, xs = np.nonzero(_colour_mask(image, int(label)))
        assert ys.size, f"no pixels of rectangle {label} in the image, but a box {box}"
        tight = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)
        assert np.abs(tight - box).max() <= tol, f"box {box} vs pixels {tight} (label {label})"
    return len(boxes)


def test_geometric_augmentation_keeps_boxes_on_their_pixels():
    image, boxes, labels = _scene()
    pipeline = Compose([Expand(fill=(90, 90, 90), p=0.7), RandomIoUCrop(), RandomMirror(), Resize((96, 128))])
    checked = mirrored = clipped = 0
    for seed in range(120):
        out, b, lab = pipeline(image, boxes, labels, np.random.default_rng(seed))
        assert out.shape == (96, 128, 3) and out.dtype == np.uint8 and b.dtype == np.float32
        checked += _assert_aligned(out, b, lab)
        mirrored += len(lab) == 2 and b[lab == 1, 0][0] < b[lab == 0, 0][0]
        clipped += bool(((b[:, :2] == 0) | (b[:, 2:] == [128, 96])).any())
    assert checked > 150  # most boxes survive; every surviving one was checked
    assert mirrored > 10 and clipped > 10  # the mirror and the crop were exercised


def test_train_transform_targets_stay_on_their_pixels():
    image, boxes, labels = _scene()
    sample = Sample(image, boxes, labels, np.zeros(2, bool), image_id=0)
    transform = TrainTransform((100, 100), IDENTITY, augment={"photometric": False})
    for seed in range(60):
        tensor, targets = transform(sample, np.random.default_rng(seed))
        pixels = tensor.permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()  # identity normalisation
        _assert_aligned(pixels, targets.boxes.numpy() * 100, targets.labels.numpy())


def test_mirror_flips_pixels_and_boxes():
    image, boxes, labels = _scene()
    out, flipped, lab = RandomMirror(p=1.0)(image, boxes, labels, np.random.default_rng(0))
    np.testing.assert_array_equal(out, image[:, ::-1])
    np.testing.assert_array_equal(flipped, [[160 - 70, 30, 160 - 20, 90], [160 - 150, 10, 160 - 100, 50]])
    assert _assert_aligned(out, flipped, lab, tol=0) == 2
    back, again, _ = RandomMirror(p=1.0)(out, flipped, lab, np.random.default_rng(0))
    np.testing.assert_array_equal(back, image)
    np.testing.assert_array_equal(again, boxes)
    same, kept, _ = RandomMirror(p=0.0)(image, boxes, labels, np.random.default_rng(0))
    assert same is image and kept is boxes


def test_expand_keeps_every_box_and_its_pixels():
    image, boxes, labels = _scene()
    expand = Expand(fill=(1, 2, 3), max_ratio=4.0, p=1.0)
    sizes = set()
    for seed in range(30):
        canvas, b, lab = expand(image, boxes, labels, np.random.default_rng(seed))
        sizes.add(canvas.shape[:2])
        assert canvas.shape[0] >= 120 and canvas.shape[1] >= 160 and canvas.shape[1] <= 4 * 160
        np.testing.assert_array_equal(lab, labels)
        shift = b - boxes
        assert np.allclose(shift, shift[0]) and shift[0, 0] == shift[0, 2] and shift[0, 1] == shift[0, 3]
        left, top = int(shift[0, 0]), int(shift[0, 1])
        np.testing.assert_array_equal(canvas[top : top + 120, left : left + 160], image)
        fill = np.ones(canvas.shape[:2], bool)
        fill[top : top + 120, left : left + 160] = False
        assert (canvas[fill] == (1, 2, 3)).all()
        assert _assert_aligned(canvas, b, lab, tol=0) == 2
    assert len(sizes) > 10
    unchanged = Expand(fill=(0, 0, 0), p=0.0)(image, boxes, labels, np.random.default_rng(0))
    assert unchanged[0] is image


def _coordinate_image(h: int, w: int) -> np.ndarray:
    """Pixel (y, x) holds (x, y, 0), so a crop's top-left pixel says where it came from."""
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx, yy, np.zeros_like(xx)], axis=-1).astype(np.uint8)


@pytest.mark.parametrize("min_iou", [0.0, 0.1, 0.3, 0.5, 0.7, 0.9])
def test_crop_keeps_boxes_with_centres_inside_and_respects_min_iou(min_iou):
    h, w = 200, 240
    image = _coordinate_image(h, w)
    boxes = np.array(
        [[10, 10, 110, 120], [100, 60, 230, 190], [150, 5, 190, 40], [0, 150, 60, 200], [60, 40, 180, 160],
         [15, 12, 225, 190]],
        np.float32,
    )
    labels = np.arange(len(boxes))
    crop = RandomIoUCrop(min_ious=(min_iou,))
    cropped_some, counts = 0, []
    for seed in range(40):
        out, b, lab = crop(image, boxes, labels, np.random.default_rng(seed))
        if out.shape == image.shape:
            continue  # no patch found in 50 trials: the image is kept (only possible without a None option)
        cropped_some += 1
        x1, y1 = int(out[0, 0, 0]), int(out[0, 0, 1])
        rect = np.array([x1, y1, x1 + out.shape[1], y1 + out.shape[0]], np.float32)
        np.testing.assert_array_equal(out, image[y1 : y1 + out.shape[0], x1 : x1 + out.shape[1]])
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        inside = (centres[:, 0] > rect[0]) & (centres[:, 0] < rect[2]) & (centres[:, 1] > rect[1]) & (centres[:, 1] < rect[3])
        np.testing.assert_array_equal(lab, labels[inside])
        expected = np.clip(boxes[inside], rect[[0, 1, 0, 1]], rect[[2, 3, 2, 3]]) - rect[[0, 1, 0, 1]]
        np.testing.assert_allclose(b, expected)
        assert (b[:, 2] <= out.shape[1]).all() and (b[:, 3] <= out.shape[0]).all() and (b >= 0).all()
        assert iou_matrix(rect, boxes[inside]).max() >= min_iou
        side = np.array([out.shape[1] / w, out.shape[0] / h])
        assert (side >= 0.3 - 0.01).all() and 0.5 - 0.02 <= out.shape[0] / out.shape[1] <= 2.0 + 0.02
        counts.append(int(inside.sum()))
    assert cropped_some >= (30 if min_iou < 0.7 else 5)
    assert min_iou >= 0.7 or len(set(counts)) > 1  # small patches drop boxes


def test_crop_options_none_and_small_objects():
    image, boxes, labels = _scene()
    out, b, _ = RandomIoUCrop(min_ious=(None,))(image, boxes, labels, np.random.default_rng(0))
    assert out is image and b is boxes
    # a 4x4 object cannot reach IoU 0.5 with a patch of >= 0.3 of each side: the image is kept
    tiny = np.array([[50, 50, 54, 54]], np.float32)
    out, b, _ = RandomIoUCrop(min_ious=(0.5,))(image, tiny, labels[:1], np.random.default_rng(0))
    assert out is image
    # no boxes at all: any patch is fine
    out, b, lab = RandomIoUCrop(min_ious=(0.9,))(image, np.zeros((0, 4), np.float32), labels[:0], np.random.default_rng(1))
    assert out.shape[0] < 120 or out.shape[1] < 160
    assert b.shape == (0, 4) and lab.shape == (0,)


def test_crop_draws_each_feasible_option():
    image, boxes, labels = _scene()
    kept_whole = sum(
        RandomIoUCrop()(image, boxes, labels, np.random.default_rng(s))[0] is image for s in range(300)
    )
    assert 15 < kept_whole < 120  # None is one of the options that succeed, chosen uniformly among them


def test_photometric_distortion_changes_colours_not_boxes():
    image, boxes, labels = _scene()
    image = image.copy()
    image[:, :, 2] = np.maximum(image[:, :, 2], 60)  # some blue water
    original = image.copy()
    changed = 0
    for seed in range(30):
        out, b, lab = PhotometricDistort()(image, boxes, labels, np.random.default_rng(seed))
        assert out.shape == image.shape and out.dtype == np.uint8 and out is not image
        assert b is boxes and lab is labels
        changed += not np.array_equal(out, image)
    np.testing.assert_array_equal(image, original)  # inputs untouched
    assert changed >= 25
    same, _, _ = PhotometricDistort(p=0.0)(image, boxes, labels, np.random.default_rng(0))
    np.testing.assert_array_equal(same, image)


def test_photometric_keeps_channel_order_unless_asked():
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 200
    red[..., 1:] = 20
    for seed in range(40):
        out, _, _ = PhotometricDistort()(red, np.zeros((0, 4), np.float32), np.zeros(0), np.random.default_rng(seed))
        assert (out[..., 0].astype(int) >= out[..., 1:].max(axis=-1)).all()  # still red (hue moves <= 18 deg)
    swaps = [
        PhotometricDistort(channel_swap=True, p=1.0, brightness_delta=0, hue_delta=0, contrast_range=(1, 1), saturation_range=(1, 1))(
            red, np.zeros((0, 4), np.float32), np.zeros(0), np.random.default_rng(seed)
        )[0]
        for seed in range(20)
    ]
    assert any(int(np.argmax(s[0, 0])) != 0 for s in swaps)


def test_same_seed_same_result_and_different_seeds_differ():
    image, boxes, labels = _scene()
    sample = Sample(image, boxes, labels, np.zeros(2, bool), image_id=0)
    a = TrainTransform((64, 64), IMAGENET_BGR, seed=5)
    b = TrainTransform((64, 64), IMAGENET_BGR, seed=5)
    outs_a = [a(sample) for _ in range(5)]
    outs_b = [b(sample) for _ in range(5)]
    for (ta, ga), (tb, gb) in zip(outs_a, outs_b):
        assert torch.equal(ta, tb) and torch.equal(ga.boxes, gb.boxes) and torch.equal(ga.labels, gb.labels)
    assert any(not torch.equal(outs_a[0][0], t) for t, _ in outs_a[1:])  # a stream, not one repeated draw
    other = [TrainTransform((64, 64), IMAGENET_BGR, seed=6)(sample) for _ in range(5)]
    assert any(not torch.equal(x[0], y[0]) for x, y in zip(outs_a, other))
    pipeline = build_ssd_augmentation(fill=(1, 2, 3))
    r1 = pipeline(image, boxes, labels, np.random.default_rng(11))
    r2 = pipeline(image, boxes, labels, np.random.default_rng(11))
    assert all(np.array_equal(x, y) for x, y in zip(r1, r2))


def test_workers_get_their_own_streams(monkeypatch):
    image, boxes, labels = _scene()
    sample = Sample(image, boxes, labels, np.zeros(2, bool), image_id=0)
    transform = TrainTransform((64, 64), IDENTITY, seed=1)

    class Info:
        def __init__(self, id_, seed):
            self.id, self.seed = id_, seed

    results = {}
    for worker in (0, 1, 0):
        monkeypatch.setattr(aug, "get_worker_info", lambda w=worker: Info(w, 1000 + w))
        copy = TrainTransform((64, 64), IDENTITY, seed=1)  # what a worker gets: a fresh copy
        results.setdefault(worker, []).append(torch.stack([copy(sample)[0] for _ in range(3)]))
    assert torch.equal(results[0][0], results[0][1])  # same worker seed -> reproducible
    assert not torch.equal(results[0][0], results[1][0])  # different workers -> different augmentation
    monkeypatch.setattr(aug, "get_worker_info", lambda: None)
    assert not torch.equal(transform(sample)[0], results[0][0][0])


def test_train_transform_output_and_normalisation():
    image, boxes, labels = _scene()
    difficult = np.array([False, True])
    sample = Sample(image, boxes, labels, difficult, image_id=3)
    plain = TrainTransform((60, 80), IMAGENET_BGR, augment=False)
    tensor, targets = plain(sample)
    assert tensor.shape == (3, 60, 80) and tensor.dtype == torch.float32
    # exactly the inference preprocessing (colour order, mean/std, resize)
    assert torch.allclose(tensor, image_to_tensor(image, (60, 80), IMAGENET_BGR, color="rgb"))
    assert torch.allclose(tensor[0, 0, 0], torch.tensor((0 - 103.5) / 57.4))  # channel 0 is blue for a BGR model
    assert isinstance(targets, Targets) and targets.boxes.dtype == torch.float32 and targets.labels.dtype == torch.int64
    np.testing.assert_allclose(targets.boxes.numpy(), [[20 / 160, 30 / 120, 70 / 160, 90 / 120]], rtol=1e-6)
    assert targets.labels.tolist() == [0]  # the difficult box is dropped
    _, with_difficult = TrainTransform((60, 80), IMAGENET_BGR, augment=False, drop_difficult=False)(sample)
    assert with_difficult.labels.tolist() == [0, 1]
    augmenting = TrainTransform((60, 80), IMAGENET_BGR, seed=0)
    for _ in range(30):
        tensor, targets = augmenting(sample)
        assert tensor.shape == (3, 60, 80) and torch.isfinite(tensor).all()
        targets.validate(num_classes=2)
        assert ((targets.boxes[:, 2:] - targets.boxes[:, :2]) * torch.tensor([80, 60]) >= 1).all()


def test_expand_fill_is_the_model_mean():
    image, boxes, labels = _scene()
    sample = Sample(image, boxes, labels, np.zeros(2, bool), image_id=0)
    t = TrainTransform(
        (120, 160), IMAGENET_BGR, augment=AugmentConfig(photometric=False, crop=False, mirror_p=0, expand_p=1)
    )
    tensor, _ = t(sample, np.random.default_rng(0))
    corner = tensor[:, :2, :2].abs().max()  # fill == mean -> 0 after normalisation (if the corner is canvas)
    tensor2, _ = t(sample, np.random.default_rng(1))
    assert min(float(corner), float(tensor2[:, -2:, -2:].abs().max()), float(tensor2[:, :2, :2].abs().max())) < 0.02


def test_tiny_boxes_are_dropped_after_resize():
    image = np.zeros((400, 640, 3), np.uint8)
    boxes = np.array([[10, 10, 11.5, 40], [100, 100, 200, 200]], np.float32)  # 1.5 px wide -> 0.75 px at 320
    sample = Sample(image, boxes, np.array([0, 1]), np.zeros(2, bool), image_id=0)
    _, targets = TrainTransform((200, 320), IDENTITY, augment=False)(sample)
    assert targets.labels.tolist() == [1]
    _, targets = EvalTransform((200, 320), IDENTITY)(sample)
    assert targets.labels.tolist() == [1]
    targets.validate(num_classes=2)


def test_eval_transform_is_the_inference_preprocessing():
    image, boxes, labels = _scene()
    sample = Sample(image, boxes, labels, np.array([False, True]), image_id=0)
    tensor, targets = EvalTransform((96, 96), IMAGENET_BGR)(sample)
    assert torch.equal(tensor, image_to_tensor(image, (96, 96), IMAGENET_BGR, color="rgb"))
    np.testing.assert_allclose(targets.boxes.numpy(), boxes[:1] / [160, 120, 160, 120], rtol=1e-6)
    _, all_targets = EvalTransform((96, 96), IMAGENET_BGR, drop_difficult=False)(sample)
    assert all_targets.labels.tolist() == [0, 1]


def test_collate_and_dataloader():
    image, boxes, labels = _scene()
    samples = [
        Sample(image, boxes, labels, np.zeros(2, bool), image_id=0),
        Sample(image[:60], np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, bool), image_id=1),
        Sample(image, boxes[:1], labels[:1], np.zeros(1, bool), image_id=2),
    ]
    ds = TransformedDataset(samples, TrainTransform((64, 96), IDENTITY, seed=0))
    loader = DataLoader(ds, batch_size=3, collate_fn=collate)
    images, targets = next(iter(loader))
    assert images.shape == (3, 3, 64, 96) and images.dtype == torch.float32
    assert len(targets) == 3 and all(isinstance(t, Targets) for t in targets)
    assert targets[1].boxes.shape == (0, 4) and targets[1].labels.shape == (0,)
    for t in targets:
        t.validate(num_classes=2)
    with pytest.raises(ValueError):
        collate([])


def test_augment_config():
    cfg = AugmentConfig.from_dict({"expand_max_ratio": 3, "crop_min_ious": [None, 0.5]})
    assert cfg.crop_min_ious == (None, 0.5) and AugmentConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown augment keys"):
        AugmentConfig.from_dict({"flip": 0.5})
    names = [type(op).__name__ for op in build_ssd_augmentation().ops]
    assert names == ["PhotometricDistort", "Expand", "RandomIoUCrop", "RandomMirror"]
    with pytest.raises(ValueError, match="min IoU"):
        RandomIoUCrop(min_ious=(1.5,))
    with pytest.raises(ValueError, match="unknown augment keys"):
        TrainTransform((64, 64), IDENTITY, augment={"flip": 0.5})
    with pytest.raises(ValueError, match="augment must be"):
        TrainTransform((64, 64), IDENTITY, augment="yes")
