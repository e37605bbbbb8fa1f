"""Image -> network input, driven by the checkpoint's preprocess config (never hard-coded).

The model sees ``(image[color order] - mean) / std`` resized to its input size; boxes go the other way in
:func:`boxes_to_pixels`. A plain resize (no letterbox) is what SSD-family detectors are trained with, and
because boxes are normalised per axis, mapping back to any original aspect ratio is exact.
"""
from __future__ import annotations

from typing import Any, Sequence

import cv2
import numpy as np
import torch


def image_to_tensor(
    image: np.ndarray,
    input_size: tuple[int, int],
    preprocess: dict[str, Any],
    color: str = "bgr",
) -> torch.Tensor:
    """HxWx3 uint8 (or HxW grey) image in ``color`` order -> ``(3, H_in, W_in)`` float tensor.

    ``color`` names the order of ``image`` (OpenCV gives BGR); ``preprocess['color']`` the order the
    weights expect.
    """
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image (0-255), got dtype {image.dtype}; convert it first")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"expected an HxWx3, HxWx1 or HxW image, got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"empty image of shape {image.shape}")
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        color = "bgr"
    color = color.lower()
    if color not in ("rgb", "bgr"):
        raise ValueError(f"image color order must be 'rgb' or 'bgr', got {color!r}")
    h_in, w_in = input_size
    if image.shape[:2] != (h_in, w_in):
        # INTER_AREA when shrinking (a 1080p frame to 320 px would alias with bilinear), bilinear otherwise
        shrinking = image.shape[0] > h_in and image.shape[1] > w_in
        image = cv2.resize(image, (w_in, h_in), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    if color != preprocess["color"]:
        image = image[..., ::-1]
    mean = np.asarray(preprocess["mean"], np.float32)
    std = np.asarray(preprocess["std"], np.float32)
    array = (image.astype(np.float32) - mean) / std
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def images_to_batch(
    images: Sequence[np.ndarray], input_size: tuple[int, int], preprocess: dict[str, Any], color: str = "bgr"
) -> torch.Tensor:
    return torch.stack([image_to_tensor(im, input_size, preprocess, color) for im in images])


def boxes_to_pixels(boxes: torch.Tensor | np.ndarray, height: int, width: int) -> np.ndarray:
    """Normalised ``(x1, y1, x2, y2)`` -> pixels of the original image, clipped to it."""
    arr = boxes.detach().cpu().numpy() if isinstance(boxes, torch.Tensor) else np.asarray(boxes)
    scale = np.array([width, height, width, height], np.float32)
    return np.clip(arr.astype(np.float32) * scale, 0, scale)


def boxes_to_normalized(boxes: np.ndarray, height: int, width: int) -> torch.Tensor:
    scale = np.array([width, height, width, height], np.float32)
    return torch.from_numpy(np.asarray(boxes, np.float32).reshape(-1, 4) / scale)
