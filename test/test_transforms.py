"""Image -> network tensor (colour order, normalisation, resize) and box coordinate conversions."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from underwater_detection.data.transforms import (
    boxes_to_normalized,
    boxes_to_pixels,
    image_to_tensor,
    images_to_batch,
)

IDENTITY_RGB = {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "color": "rgb"}
IDENTITY_BGR = {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "color": "bgr"}


def _red_bgr(h: int = 64, w: int = 64) -> np.ndarray:
    image = np.zeros((h, w, 3), np.uint8)
    image[..., 2] = 255  # OpenCV order: B, G, R
    return image


def test_bgr_image_into_rgb_model_swaps_channels():
    t = image_to_tensor(_red_bgr(), (64, 64), IDENTITY_RGB, color="bgr")
    assert t.shape == (3, 64, 64) and t.dtype == torch.float32
    assert (t[0] == 255).all() and (t[1] == 0).all() and (t[2] == 0).all()  # R first for an RGB model


def test_bgr_default_colour_order():
    t = image_to_tensor(_red_bgr(), (64, 64), IDENTITY_RGB)  # default: the image is BGR (OpenCV)
    assert (t[0] == 255).all() and (t[2] == 0).all()


def test_matching_colour_orders_keep_channels():
    t = image_to_tensor(_red_bgr(), (64, 64), IDENTITY_BGR, color="bgr")
    assert (t[0] == 0).all() and (t[2] == 255).all()
    rgb_red = _red_bgr()[..., ::-1].copy()
    t = image_to_tensor(rgb_red, (64, 64), IDENTITY_RGB, color="RGB")  # case-insensitive
    assert (t[0] == 255).all() and (t[2] == 0).all()
    t = image_to_tensor(rgb_red, (64, 64), IDENTITY_BGR, color="rgb")
    assert (t[0] == 0).all() and (t[2] == 255).all()


def test_mean_and_std_applied_per_channel_in_model_order():
    image = np.empty((64, 128, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 10, 20, 30  # B=10, G=20, R=30
    pre = {"mean": [1.0, 2.0, 3.0], "std": [2.0, 4.0, 6.0], "color": "rgb"}
    t = image_to_tensor(image, (64, 128), pre, color="bgr")
    # R: (30 - 1) / 2, G: (20 - 2) / 4, B: (10 - 3) / 6
    for channel, value in enumerate([14.5, 4.5, 7 / 6]):
        assert torch.allclose(t[channel], torch.full((64, 128), value))


def test_imagenet_like_values():
    pre = {"mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375], "color": "rgb"}
    t = image_to_tensor(np.full((64, 64, 3), 128, np.uint8), (64, 64), pre)
    expected = (128 - np.array(pre["mean"])) / np.array(pre["std"])
    assert torch.allclose(t.mean(dim=(1, 2)), torch.tensor(expected, dtype=torch.float32), atol=1e-6)


def test_resize_to_input_size_keeps_orientation():
    # 30x50 (HxW) image: left half red, right half blue; top rows green added to the red half
    image = np.zeros((30, 50, 3), np.uint8)
    image[:, :25, 2] = 255  # red (BGR)
    image[:, 25:, 0] = 255  # blue
    image[:15, :, 1] = 200  # green in the top half
    t = image_to_tensor(image, (128, 192), IDENTITY_RGB)
    assert t.shape == (3, 128, 192)
    assert (t[0, :, :90] == 255).all() and (t[0, :, 102:] == 0).all()  # red on the left only
    assert (t[2, :, 102:] == 255).all() and (t[2, :, :90] == 0).all()  # blue on the right only
    assert (t[1, :60] == 200).all() and (t[1, 68:] == 0).all()  # green on top only


def test_no_resize_when_already_at_input_size():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 128, 3), dtype=np.uint8)
    t = image_to_tensor(image, (64, 128), IDENTITY_BGR)
    assert torch.equal(t, torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1))
    assert t.is_contiguous()


def test_grey_image_accepted():
    grey = np.full((40, 60), 100, np.uint8)
    pre = {"mean": [10.0, 20.0, 30.0], "std": [1.0, 2.0, 3.0], "color": "rgb"}
    t = image_to_tensor(grey, (64, 64), pre, color="rgb")
    assert t.shape == (3, 64, 64)
    for channel, value in enumerate([90.0, 40.0, 70 / 3]):
        assert torch.allclose(t[channel], torch.full((64, 64), value))


@pytest.mark.parametrize(
    "shape", [(64, 64, 4), (64, 64, 2), (64,), (1, 64, 64, 3), (0, 10, 3), (10, 0, 3)]
)
def test_wrong_shapes_rejected(shape):
    with pytest.raises(ValueError, match="image"):
        image_to_tensor(np.zeros(shape, np.uint8), (64, 64), IDENTITY_RGB)


@pytest.mark.parametrize("shape", [(0, 10), (0, 0)])
def test_empty_grey_image_rejected_with_value_error(shape):
    with pytest.raises(ValueError, match="empty image"):
        image_to_tensor(np.zeros(shape, np.uint8), (64, 64), IDENTITY_RGB)


def test_unknown_colour_order_rejected():
    with pytest.raises(ValueError, match="'hsv'"):
        image_to_tensor(_red_bgr(), (64, 64), IDENTITY_RGB, color="hsv")


def test_images_to_batch():
    batch = images_to_batch([_red_bgr(32, 48), np.zeros((64, 64), np.uint8)], (64, 128), IDENTITY_RGB)
    assert batch.shape == (2, 3, 64, 128)
    assert (batch[0, 0] == 255).all() and (batch[1] == 0).all()


# ---------------------------------------------------------------------------------------------- boxes


def test_boxes_normalized_per_axis_on_non_square_image():
    h, w = 480, 640
    px = np.array([[64.0, 48.0, 320.0, 240.0], [0.0, 0.0, 640.0, 480.0]], np.float32)
    norm = boxes_to_normalized(px, h, w)
    assert isinstance(norm, torch.Tensor) and norm.dtype == torch.float32 and norm.shape == (2, 4)
    assert torch.allclose(norm, torch.tensor([[0.1, 0.1, 0.5, 0.5], [0.0, 0.0, 1.0, 1.0]]))


@pytest.mark.parametrize("h, w", [(480, 640), (1080, 1920), (300, 100)])
def test_boxes_to_pixels_inverts_boxes_to_normalized(h, w):
    rng = np.random.default_rng(h)
    x = np.sort(rng.uniform(0, w, (20, 2)), axis=1)
    y = np.sort(rng.uniform(0, h, (20, 2)), axis=1)
    px = np.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], axis=1).astype(np.float32)
    back = boxes_to_pixels(boxes_to_normalized(px, h, w), h, w)
    assert isinstance(back, np.ndarray) and back.shape == px.shape
    np.testing.assert_allclose(back, px, rtol=1e-5, atol=1e-3)
    # numpy input works as well as torch
    np.testing.assert_allclose(boxes_to_pixels(boxes_to_normalized(px, h, w).numpy(), h, w), px, atol=1e-3)


def test_boxes_to_pixels_clips_to_the_image():
    boxes = torch.tensor([[-0.1, -0.2, 1.5, 0.5], [0.25, 0.5, 0.75, 1.2]])
    px = boxes_to_pixels(boxes, 480, 640)
    np.testing.assert_allclose(px, [[0, 0, 640, 240], [160, 240, 480, 480]])


def test_single_channel_image_is_treated_as_grey():
    grey = np.full((64, 48, 1), 200, np.uint8)
    pre = {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "color": "rgb"}
    t = image_to_tensor(grey, (64, 64), pre)
    assert t.shape == (3, 64, 64) and torch.all(t == 200.0)


def test_non_uint8_image_rejected():
    pre = {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "color": "rgb"}
    with pytest.raises(ValueError, match="uint8"):
        image_to_tensor(np.zeros((64, 64, 3), np.float32), (64, 64), pre)
