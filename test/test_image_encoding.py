"""data.image_encoding: every supported sensor_msgs/Image encoding (with row padding and both byte orders) and
CompressedImage jpeg/png decode to the right pixels; bad payloads give clear errors. Expected pixels are built
independently with numpy byte manipulation, not with the module's own encoder."""
from __future__ import annotations

import array

import cv2
import numpy as np
import pytest

from underwater_detection.data.image_encoding import (
    ImageDecodeError, UnsupportedEncodingError, canonical_encoding, decode_compressed_image, decode_raw_image,
    encode_compressed_image, encode_raw_image, raw_image_array,
)

RNG = np.random.default_rng(3)
H, W = 5, 7
RGB = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)


def _pad_rows(rows: np.ndarray, step: int) -> bytes:
    """rows (H, row_bytes) uint8 -> bytes with each row padded to ``step`` with 0xAB (garbage must be ignored)."""
    out = np.full((rows.shape[0], step), 0xAB, np.uint8)
    out[:, : rows.shape[1]] = rows
    return out.tobytes()


@pytest.mark.parametrize("pad", [0, 3])
@pytest.mark.parametrize("encoding,channels,expected_color", [
    ("rgb8", RGB, "rgb"),
    ("bgr8", RGB[..., ::-1], "bgr"),
    ("rgba8", np.dstack([RGB, np.full((H, W), 7, np.uint8)]), "rgb"),
    ("bgra8", np.dstack([RGB[..., ::-1], np.full((H, W), 7, np.uint8)]), "bgr"),
])
def test_colour_encodings_decode_to_the_original_pixels(encoding, channels, expected_color, pad):
    row_bytes = W * channels.shape[2]
    data = _pad_rows(np.ascontiguousarray(channels).reshape(H, row_bytes), row_bytes + pad)
    out = decode_raw_image(encoding, H, W, row_bytes + pad, 0, data)
    assert out.color == expected_color and out.image.shape == (H, W, 3) and out.image.dtype == np.uint8
    np.testing.assert_array_equal(out.image, RGB if expected_color == "rgb" else RGB[..., ::-1])
    np.testing.assert_array_equal(out.as_bgr(), RGB[..., ::-1])


@pytest.mark.parametrize("pad", [0, 2])
def test_mono8_is_replicated_to_three_channels(pad):
    grey = RGB[..., 0]
    out = decode_raw_image("mono8", H, W, W + pad, 1, _pad_rows(grey, W + pad))  # is_bigendian ignored for 8 bit
    for c in range(3):
        np.testing.assert_array_equal(out.image[..., c], grey)


@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("pad", [0, 4])
def test_mono16_honours_byte_order_and_padding(big_endian, pad):
    values = RNG.integers(0, 65536, (H, W), dtype=np.uint16)
    hi, lo = (values >> 8).astype(np.uint8), (values & 0xFF).astype(np.uint8)
    pairs = np.stack([hi, lo] if big_endian else [lo, hi], axis=-1).reshape(H, 2 * W)
    data = _pad_rows(pairs, 2 * W + pad)
    native = raw_image_array("mono16", H, W, 2 * W + pad, big_endian, data)
    np.testing.assert_array_equal(native[..., 0], values)
    out = decode_raw_image("mono16", H, W, 2 * W + pad, big_endian, data)
    np.testing.assert_array_equal(out.image[..., 1], hi)  # 8-bit view = high byte


def test_payload_types_from_rclpy_and_rosbags_are_accepted():
    row = RGB.reshape(H, 3 * W)
    for payload in (row.tobytes(), bytearray(row.tobytes()), memoryview(row.tobytes()),
                    array.array("B", row.tobytes()), row.reshape(-1)):
        np.testing.assert_array_equal(decode_raw_image("rgb8", H, W, 3 * W, 0, payload).image, RGB)


def test_encoder_round_trips_with_padding_and_big_endian():
    step, data = encode_raw_image(RGB, "bgr8", step=3 * W + 5)
    assert step == 3 * W + 5 and len(data) == step * H
    np.testing.assert_array_equal(decode_raw_image("bgr8", H, W, step, 0, data).image, RGB)
    values = RNG.integers(0, 65536, (H, W), dtype=np.uint16)
    step, data = encode_raw_image(values, "mono16", step=2 * W + 2, big_endian=True)
    np.testing.assert_array_equal(raw_image_array("mono16", H, W, step, True, data)[..., 0], values)


def test_aliases_and_case():
    assert canonical_encoding("RGB8") == "rgb8"
    assert canonical_encoding("8UC3") == "bgr8" and canonical_encoding("16UC1") == "mono16"


@pytest.mark.parametrize("kind", ["jpeg", "png"])
def test_compressed_images_decode_to_bgr(kind):
    bgr = np.ascontiguousarray(RGB[..., ::-1])
    smooth = cv2.resize(bgr, (64, 48), interpolation=cv2.INTER_CUBIC)  # jpeg needs something smooth to be close
    data = encode_compressed_image(smooth, kind, quality=95)
    for fmt in (kind, f"rgb8; {kind} compressed bgr8"):
        out = decode_compressed_image(fmt, np.frombuffer(data, np.uint8))
        assert out.color == "bgr" and out.image.shape == (48, 64, 3)
        if kind == "png":
            np.testing.assert_array_equal(out.image, smooth)
        else:
            assert np.abs(out.image.astype(int) - smooth).mean() < 6


@pytest.mark.parametrize("call,match", [
    (lambda: decode_raw_image("yuv422", H, W, 2 * W, 0, bytes(2 * W * H)), "unsupported image encoding 'yuv422'"),
    (lambda: decode_raw_image("rgb8", H, W, 3 * W - 1, 0, bytes(3 * W * H)), "step 20 is smaller"),
    (lambda: decode_raw_image("rgb8", H, W, 3 * W, 0, bytes(3 * W * H - 1)), "104 bytes but step x height"),
    (lambda: decode_raw_image("rgb8", 0, W, 3 * W, 0, b""), "size must be positive"),
    (lambda: decode_compressed_image("jpeg", b"not a jpeg"), "could not decode"),
    (lambda: decode_compressed_image("png", b""), "no data"),
    (lambda: decode_compressed_image("16UC1; compressedDepth", b"x"), "compressed depth"),
    (lambda: decode_compressed_image("tiff", b"x"), "unsupported compressed image format 'tiff'"),
])
def test_bad_payloads_raise_clear_errors(call, match):
    with pytest.raises(ImageDecodeError, match=match):
        call()


def test_unsupported_encoding_is_its_own_error_type():
    with pytest.raises(UnsupportedEncodingError):
        canonical_encoding("bayer_rggb8")
