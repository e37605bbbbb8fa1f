"""SSD data augmentation (Liu et al. 2016, section 2.2 / 3.6), as RefineDet and DRNet train with it.

Pipeline (:func:`build_ssd_augmentation`): photometric distortion -> expand (zoom out) -> IoU-constrained
random crop (zoom in) -> horizontal mirror; :class:`TrainTransform` then resizes to the input size and
normalises with the model's preprocess config. Each op is a small class called as
``op(image, boxes, labels, rng) -> (image, boxes, labels)`` on

* ``image``: ``HxWx3`` uint8 RGB, ``boxes``: ``(N, 4)`` float32 pixel ``(x1, y1, x2, y2)`` in the
  continuous convention of ``data.datasets`` (pixel ``i`` covers ``[i, i + 1)``, so mirroring is
  ``x -> W - x`` and resizing is a plain scale), ``labels``: ``(N,)`` or any per-box array (only indexed
  along its first axis),
* ``rng``: a ``numpy.random.Generator``; all randomness comes from it, so the same seed gives the same
  result. Ops never modify their inputs in place.

Choices worth knowing:

* Photometric distortion works on uint8 look-up tables (brightness, contrast) and OpenCV's 8-bit HSV
  (saturation, hue; hue in 2-degree steps), with values clipped to 0-255 after each step: a few
  milliseconds per image, where float HSV round trips cost tens. The random channel permutation of
  ssd.pytorch ("lighting noise") is **off by default**: underwater, colour is class information (an orange
  starfish vs a dark-purple urchin on blue-green water) and swapping channels teaches the detector to
  ignore it.
* Expand places the image at a random spot of a canvas up to ``max_ratio`` (4) times larger filled with the
  model's mean colour (zero after normalisation), making objects smaller.
* The crop follows the SSD paper's three options: keep the whole image (``None``), a patch whose IoU with an
  object is at least 0.1 / 0.3 / 0.5 / 0.7 / 0.9, or an unconstrained patch (``0.0``). Patches are
  0.3-1 of each side with aspect ratio in [1/2, 2], integer-aligned. The constraint is met by at least
  one object whose centre lies inside the patch (Caffe SSD checks "any object"; a patch that would drop
  that very object is rejected). Boxes whose centres fall outside the patch are dropped, the others
  clipped. Options are tried in random order and the first that finds a patch in ``max_trials`` (50)
  samples wins, i.e. one is drawn uniformly among those that succeed (as in Caffe SSD; ssd.pytorch's
  re-draw loop has the same distribution). Small objects cannot reach IoU 0.1 with a patch of >= 0.3 of
  the image, so for them the IoU options fail and the unconstrained option is what zooms in.
  ssd.pytorch's crop never enforces its IoU bound (``min < lo and hi < max`` with ``hi = inf``) and lacks
  0.5; this one does both as the paper says.
* Mirror: horizontal flip with probability 0.5.
* Resize to the input size uses the same rule as ``transforms.image_to_tensor`` at inference (area
  interpolation when shrinking both axes, bilinear otherwise), so training sees what deployment sees.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from ..models.spec import validate_preprocess
from ..ops.box_overlap import iou_matrix
from ..ops.losses import Targets
from .datasets import Sample
from .transforms import boxes_to_normalized, image_to_tensor

Op = Callable[[np.ndarray, np.ndarray, np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray, np.ndarray]]

SSD_MIN_IOUS: tuple[float | None, ...] = (None, 0.1, 0.3, 0.5, 0.7, 0.9, 0.0)
MIN_BOX_SIDE_PX = 1.0  # boxes thinner than this at the network input are dropped (nothing left to detect)


def _lut(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


class PhotometricDistort:
    """Random brightness, contrast, saturation and hue (each with probability ``p``), contrast either
    before or after the HSV part; optional random channel order. Boxes are untouched."""

    def __init__(
        self,
        brightness_delta: float = 32.0,
        contrast_range: tuple[float, float] = (0.5, 1.5),
        saturation_range: tuple[float, float] = (0.5, 1.5),
        hue_delta: float = 18.0,
        channel_swap: bool = False,
        p: float = 0.5,
    ) -> None:
        if brightness_delta < 0 or hue_delta < 0 or hue_delta > 180:
            raise ValueError(f"brightness_delta must be >= 0 and hue_delta in [0, 180] degrees, got {brightness_delta}, {hue_delta}")
        for name, (lo, hi) in (("contrast_range", contrast_range), ("saturation_range", saturation_range)):
            if not 0 <= lo <= hi:
                raise ValueError(f"{name} must be (low, high) with 0 <= low <= high, got {(lo, hi)}")
        self.brightness_delta = float(brightness_delta)
        self.contrast_range = (float(contrast_range[0]), float(contrast_range[1]))
        self.saturation_range = (float(saturation_range[0]), float(saturation_range[1]))
        self.hue_delta = float(hue_delta)
        self.channel_swap = bool(channel_swap)
        self.p = float(p)

    def __call__(
        self, image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        levels = np.arange(256, dtype=np.float64)
        brightness = rng.uniform(-self.brightness_delta, self.brightness_delta) if rng.random() < self.p else None
        contrast = rng.uniform(*self.contrast_range) if rng.random() < self.p else None
        contrast_first = rng.random() < 0.5
        saturation = rng.uniform(*self.saturation_range) if rng.random() < self.p else None
        hue = rng.uniform(-self.hue_delta, self.hue_delta) if rng.random() < self.p else None
        order = rng.permutation(3) if self.channel_swap and rng.random() < self.p else None

        out = image
        table = levels.copy()
        if brightness is not None:
            table = np.clip(table + brightness, 0, 255)
        if contrast is not None and contrast_first:
            table = np.clip(np.rint(table) * contrast, 0, 255)
        if brightness is not None or (contrast is not None and contrast_first):
            out = cv2.LUT(out, _lut(table))
        if saturation is not None or hue is not None:
            hsv = cv2.cvtColor(out, cv2.COLOR_RGB2HSV)  # 8-bit: H in [0, 180) (2-degree units), S, V in [0, 255]
            h_table = levels.copy()
            if hue is not None:
                h_table[:180] = np.mod(np.rint(levels[:180] + hue / 2.0), 180)
            s_table = np.clip(levels * saturation, 0, 255) if saturation is not None else levels
            tables = np.stack([_lut(h_table), _lut(s_table), _lut(levels)], axis=-1).reshape(256, 1, 3)
            out = cv2.cvtColor(cv2.LUT(hsv, tables), cv2.COLOR_HSV2RGB)
        if contrast is not None and not contrast_first:
            out = cv2.LUT(out, _lut(levels * contrast))
        if order is not None:
            out = np.ascontiguousarray(out[..., order])
        if out is image:
            out = image.copy()
        return out, boxes, labels


class Expand:
    """Zoom out: with probability ``p`` put the image at a random place on a canvas ``ratio`` in
    ``[1, max_ratio]`` times its size, filled with ``fill`` (RGB, the model's mean)."""

    def __init__(self, fill: Sequence[float], max_ratio: float = 4.0, p: float = 0.5) -> None:
        if max_ratio < 1:
            raise ValueError(f"expand max_ratio must be >= 1, got {max_ratio}")
        if len(fill) != 3:
            raise ValueError(f"expand fill must be 3 values (RGB), got {fill}")
        self.fill = tuple(int(np.clip(round(float(v)), 0, 255)) for v in fill)
        self.max_ratio = float(max_ratio)
        self.p = float(p)

    def __call__(
        self, image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.max_ratio == 1 or rng.random() >= self.p:
            return image, boxes, labels
        h, w = image.shape[:2]
        ratio = rng.uniform(1.0, self.max_ratio)
        new_w, new_h = int(w * ratio), int(h * ratio)
        left = int(rng.uniform(0, new_w - w))
        top = int(rng.uniform(0, new_h - h))
        canvas = cv2.copyMakeBorder(
            image, top, new_h - h - top, left, new_w - w - left, cv2.BORDER_CONSTANT, value=self.fill
        )
        shifted = boxes + np.array([left, top, left, top], np.float32)
        return canvas, shifted.astype(np.float32), labels


class RandomIoUCrop:
    """Zoom in: crop a random patch subject to a minimum IoU with an object (see the module docstring).

    ``min_ious``: the options; ``None`` keeps the whole image, a number ``m`` asks for a patch in which an
    object whose centre is inside has IoU >= ``m`` (``0.0`` is an unconstrained patch). An image without
    boxes accepts any patch.
    """

    def __init__(
        self,
        min_ious: Sequence[float | None] = SSD_MIN_IOUS,
        min_scale: float = 0.3,
        max_aspect: float = 2.0,
        max_trials: int = 50,
    ) -> None:
        if not min_ious:
            raise ValueError("RandomIoUCrop needs at least one min IoU option (None keeps the whole image)")
        for m in min_ious:
            if m is not None and not 0.0 <= float(m) <= 1.0:
                raise ValueError(f"crop min IoU options must be None or in [0, 1], got {m!r}")
        if not 0 < min_scale <= 1 or max_aspect < 1 or max_trials < 1:
            raise ValueError(
                f"need 0 < min_scale <= 1, max_aspect >= 1, max_trials >= 1; got {min_scale}, {max_aspect}, {max_trials}"
            )
        self.min_ious = tuple(None if m is None else float(m) for m in min_ious)
        self.min_scale = float(min_scale)
        self.max_aspect = float(max_aspect)
        self.max_trials = int(max_trials)

    def sample_patch(
        self, width: int, height: int, boxes: np.ndarray, min_iou: float, rng: np.random.Generator
    ) -> np.ndarray | None:
        """``max_trials`` candidate patches at once; the first that satisfies ``min_iou`` as int
        ``(x1, y1, x2, y2)``, or ``None``."""
        n = self.max_trials
        cw = rng.uniform(self.min_scale * width, width, size=n)
        ch = rng.uniform(self.min_scale * height, height, size=n)
        left = rng.uniform(0.0, width - cw)
        top = rng.uniform(0.0, height - ch)
        rects = np.stack([left, top, left + cw, top + ch], axis=1).astype(np.int64)  # floor, as SSD
        aspect = ch / cw
        valid = (aspect >= 1.0 / self.max_aspect) & (aspect <= self.max_aspect)
        valid &= (rects[:, 2] > rects[:, 0]) & (rects[:, 3] > rects[:, 1])
        if len(boxes):
            inside = self.centres_inside(boxes, rects)  # (n, N)
            iou = iou_matrix(rects, boxes)
            valid &= (inside & (iou >= min_iou)).any(axis=1)
        hits = np.flatnonzero(valid)
        return rects[hits[0]] if hits.size else None

    @staticmethod
    def centres_inside(boxes: np.ndarray, rects: np.ndarray) -> np.ndarray:
        """``(len(rects), len(boxes))``: box centre strictly inside the patch."""
        cx = (boxes[:, 0] + boxes[:, 2]) / 2.0
        cy = (boxes[:, 1] + boxes[:, 3]) / 2.0
        r = np.asarray(rects, np.float64).reshape(-1, 4)
        return (
            (r[:, None, 0] < cx[None]) & (cx[None] < r[:, None, 2]) & (r[:, None, 1] < cy[None]) & (cy[None] < r[:, None, 3])
        )

    def __call__(
        self, image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        h, w = image.shape[:2]
        for choice in rng.permutation(len(self.min_ious)):
            min_iou = self.min_ious[choice]
            if min_iou is None:
                return image, boxes, labels
            rect = self.sample_patch(w, h, boxes, min_iou, rng)
            if rect is None:
                continue
            x1, y1, x2, y2 = (int(v) for v in rect)
            keep = self.centres_inside(boxes, rect[None])[0] if len(boxes) else np.zeros(0, bool)
            kept = boxes[keep].astype(np.float32)
            kept[:, :2] = np.maximum(kept[:, :2], [x1, y1])
            kept[:, 2:] = np.minimum(kept[:, 2:], [x2, y2])
            kept -= np.array([x1, y1, x1, y1], np.float32)
            return image[y1:y2, x1:x2].copy(), kept, labels[keep]
        return image, boxes, labels  # only reachable without a None option: every option failed


class RandomMirror:
    """Horizontal flip with probability ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = float(p)

    def __call__(
        self, image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if rng.random() >= self.p:
            return image, boxes, labels
        return mirror(image, boxes) + (labels,)


def mirror(image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    w = image.shape[1]
    flipped = boxes.astype(np.float32)  # copy
    flipped[:, 0] = w - boxes[:, 2]
    flipped[:, 2] = w - boxes[:, 0]
    return cv2.flip(image, 1), flipped


class Resize:
    """To ``size = (height, width)``; boxes scale per axis. Interpolation as ``image_to_tensor``."""

    def __init__(self, size: Sequence[int]) -> None:
        if len(size) != 2 or min(int(s) for s in size) < 1:
            raise ValueError(f"resize size must be (height, width) >= 1, got {size}")
        self.size = (int(size[0]), int(size[1]))

    def __call__(
        self, image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, rng: np.random.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        h, w = image.shape[:2]
        h_out, w_out = self.size
        if (h, w) == (h_out, w_out):
            return image, boxes, labels
        shrinking = h > h_out and w > w_out
        resized = cv2.resize(image, (w_out, h_out), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
        scale = np.array([w_out / w, h_out / h, w_out / w, h_out / h], np.float32)
        return resized, (boxes * scale).astype(np.float32), labels


class Compose:
    """Ops applied in order with one generator."""

    def __init__(self, ops: Sequence[Op]) -> None:
        self.ops = list(ops)

    def __call__(
        self, image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        for op in self.ops:
            image, boxes, labels = op(image, boxes, labels, rng)
        return image, boxes, labels

    def __repr__(self) -> str:
        return f"Compose({[type(op).__name__ for op in self.ops]})"


@dataclass
class AugmentConfig:
    """The knobs of the SSD augmentation, e.g. from a training recipe's ``augment:`` mapping."""

    photometric: bool = True
    brightness_delta: float = 32.0
    contrast_range: tuple[float, float] = (0.5, 1.5)
    saturation_range: tuple[float, float] = (0.5, 1.5)
    hue_delta: float = 18.0
    channel_swap: bool = False
    photometric_p: float = 0.5
    expand_p: float = 0.5
    expand_max_ratio: float = 4.0
    crop: bool = True
    crop_min_ious: tuple[float | None, ...] = SSD_MIN_IOUS
    crop_min_scale: float = 0.3
    crop_max_aspect: float = 2.0
    crop_max_trials: int = 50
    mirror_p: float = 0.5

    @classmethod
    def from_dict(cls, cfg: dict[str, Any] | None) -> "AugmentConfig":
        cfg = dict(cfg or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(cfg) - known
        if unknown:
            raise ValueError(f"unknown augment keys {sorted(unknown)}; known: {sorted(known)}")
        for key in ("contrast_range", "saturation_range", "crop_min_ious"):
            if key in cfg:
                cfg[key] = tuple(cfg[key])
        return cls(**cfg)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for key in ("contrast_range", "saturation_range", "crop_min_ious"):
            out[key] = list(out[key])
        return out


def build_ssd_augmentation(config: AugmentConfig | None = None, fill: Sequence[float] = (0, 0, 0)) -> Compose:
    """Photometric distortion -> expand -> IoU crop -> mirror (no resize). ``fill``: RGB expand colour."""
    c = config or AugmentConfig()
    ops: list[Op] = []
    if c.photometric:
        ops.append(
            PhotometricDistort(
                c.brightness_delta, c.contrast_range, c.saturation_range, c.hue_delta, c.channel_swap, c.photometric_p
            )
        )
    if c.expand_p > 0 and c.expand_max_ratio > 1:
        ops.append(Expand(fill, c.expand_max_ratio, c.expand_p))
    if c.crop:
        ops.append(RandomIoUCrop(c.crop_min_ious, c.crop_min_scale, c.crop_max_aspect, c.crop_max_trials))
    if c.mirror_p > 0:
        ops.append(RandomMirror(c.mirror_p))
    return Compose(ops)


def _rgb_mean(preprocess: dict[str, Any]) -> tuple[float, float, float]:
    mean = [float(m) for m in preprocess["mean"]]
    if preprocess["color"] == "bgr":
        mean = mean[::-1]
    return (mean[0], mean[1], mean[2])


def _to_network(
    image: np.ndarray,
    boxes: np.ndarray,
    labels: np.ndarray,
    input_size: tuple[int, int],
    preprocess: dict[str, Any],
) -> tuple[torch.Tensor, Targets]:
    """Resized RGB image + pixel boxes (at the input size) -> normalised tensor and :class:`Targets`."""
    h_in, w_in = input_size
    tensor = image_to_tensor(image, input_size, preprocess, color="rgb")
    boxes = np.clip(np.asarray(boxes, np.float32).reshape(-1, 4), 0, np.array([w_in, h_in, w_in, h_in], np.float32))
    keep = ((boxes[:, 2] - boxes[:, 0]) >= MIN_BOX_SIDE_PX) & ((boxes[:, 3] - boxes[:, 1]) >= MIN_BOX_SIDE_PX)
    targets = Targets(
        boxes=boxes_to_normalized(boxes[keep], h_in, w_in),
        labels=torch.from_numpy(np.asarray(labels, np.int64).reshape(-1)[keep].copy()),
    )
    return tensor, targets


def _input_size(size: Sequence[int]) -> tuple[int, int]:
    if len(size) != 2 or min(int(s) for s in size) < 1:
        raise ValueError(f"input_size must be (height, width), got {size}")
    return int(size[0]), int(size[1])


def _sample_arrays(sample: Sample, drop_difficult: bool) -> tuple[np.ndarray, np.ndarray]:
    boxes = np.asarray(sample.boxes, np.float32).reshape(-1, 4)
    labels = np.asarray(sample.labels, np.int64).reshape(-1)
    if drop_difficult and len(boxes):
        keep = ~np.asarray(sample.difficult, bool).reshape(-1)
        boxes, labels = boxes[keep], labels[keep]
    return boxes, labels


class TrainTransform:
    """:class:`Sample` -> ``(image (3, H, W) float32 normalised, Targets with normalised boxes)``.

    Args:
        input_size: the network input ``(height, width)`` (``spec.input_size``).
        preprocess: ``registry.preprocess_config(spec, model)``: mean/std in 0-255 units and the colour
            order the weights expect; the expand canvas is filled with that mean.
        augment: ``True`` for the default SSD augmentation, ``False`` for none (only resize + normalise), or
            an :class:`AugmentConfig` / its mapping (a recipe's ``augment:`` entry) to tune it.
        drop_difficult: remove ``difficult`` boxes first (they are ignored by evaluation; as background
            they are simply not asked for). ``False`` trains on them as ordinary objects.
        seed: seed of the generator. In a ``DataLoader`` worker the generator is re-seeded from the worker's
            torch seed (and ``seed``), so workers do not repeat each other and a seeded run is reproducible.

    Boxes narrower or shorter than 1 px at the input size are dropped. ``transform(sample, rng)`` uses the
    given generator instead of the transform's own.
    """

    def __init__(
        self,
        input_size: Sequence[int],
        preprocess: dict[str, Any],
        augment: bool | AugmentConfig | dict[str, Any] = True,
        drop_difficult: bool = True,
        seed: int | None = None,
    ) -> None:
        self.input_size = _input_size(input_size)
        self.preprocess = validate_preprocess(dict(preprocess))
        if isinstance(augment, AugmentConfig):
            self.config: AugmentConfig | None = augment
        elif isinstance(augment, dict):
            self.config = AugmentConfig.from_dict(augment)
        elif isinstance(augment, bool):
            self.config = AugmentConfig() if augment else None
        else:
            raise ValueError(f"augment must be true/false or a mapping of AugmentConfig options, got {augment!r}")
        self.augmentation = (
            build_ssd_augmentation(self.config, _rgb_mean(self.preprocess)) if self.config is not None else None
        )
        self.resize = Resize(self.input_size)
        self.drop_difficult = bool(drop_difficult)
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._rng_owner: tuple[int, int] | None = None  # (worker id, worker seed) the generator was made for

    def generator(self) -> np.random.Generator:
        info = get_worker_info()
        owner = None if info is None else (info.id, info.seed)
        if owner != self._rng_owner:
            self._rng_owner = owner
            entropy = [info.seed] if self.seed is None else [info.seed, int(self.seed)]  # type: ignore[union-attr]
            self._rng = np.random.default_rng(entropy)
        return self._rng

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> tuple[torch.Tensor, Targets]:
        boxes, labels = _sample_arrays(sample, self.drop_difficult)
        image = sample.image
        if self.augmentation is not None:
            image, boxes, labels = self.augmentation(image, boxes, labels, rng if rng is not None else self.generator())
        image, boxes, labels = self.resize(image, boxes, labels)
        return _to_network(image, boxes, labels, self.input_size, self.preprocess)


class EvalTransform:
    """:class:`Sample` -> ``(image tensor, Targets)`` with no augmentation: exactly the inference
    preprocessing (``image_to_tensor``), for validation losses. ``drop_difficult`` as in :class:`TrainTransform`."""

    def __init__(self, input_size: Sequence[int], preprocess: dict[str, Any], drop_difficult: bool = True) -> None:
        self.input_size = _input_size(input_size)
        self.preprocess = validate_preprocess(dict(preprocess))
        self.drop_difficult = bool(drop_difficult)

    def __call__(self, sample: Sample) -> tuple[torch.Tensor, Targets]:
        boxes, labels = _sample_arrays(sample, self.drop_difficult)
        h, w = sample.image.shape[:2]
        h_in, w_in = self.input_size
        scaled = boxes * np.array([w_in / w, h_in / h, w_in / w, h_in / h], np.float32)
        return _to_network(sample.image, scaled, labels, self.input_size, self.preprocess)


def collate(batch: Sequence[tuple[torch.Tensor, Targets]]) -> tuple[torch.Tensor, list[Targets]]:
    """``DataLoader`` collate: images stacked to ``(B, 3, H, W)``, targets kept as a list."""
    if not batch:
        raise ValueError("cannot collate an empty batch")
    images = torch.stack([item[0] for item in batch])
    return images, [item[1] for item in batch]


class TransformedDataset(Dataset):
    """``dataset[i]`` passed through ``transform`` (e.g. a :class:`TrainTransform`), for a ``DataLoader``."""

    def __init__(self, dataset: Any, transform: Callable[[Sample], Any]) -> None:
        self.dataset = dataset
        self.transform = transform
        self.class_names = tuple(getattr(dataset, "class_names", ()))

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> Any:
        return self.transform(self.dataset[i])
