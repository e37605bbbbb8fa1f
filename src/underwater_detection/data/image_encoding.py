"""ROS image payloads <-> numpy, in pure numpy/OpenCV (no cv_bridge, no message classes).

The ROS node (rclpy messages), bag evaluation and bag replay (rosbags messages) all receive the same five
fields of a ``sensor_msgs/Image`` -- ``encoding, height, width, step, is_bigendian, data`` -- or the
``format, data`` of a ``sensor_msgs/CompressedImage``. Decoding them here, from plain values, gives one
tested implementation for every consumer and keeps message packages out of the core.

What the detector gets: an ``HxWx3`` uint8 image plus its colour order (``"rgb"`` or ``"bgr"``), which is
exactly what :meth:`TemporalDetector.detect` takes, so no channel swap is done here that the detector's
preprocessing would undo again.

Conventions (documented because they are choices):

* ``step`` is the row length in bytes and may be larger than ``width * bytes_per_pixel`` (row padding);
  bytes past ``height * step`` are ignored, fewer is an error.
* ``is_bigendian`` only matters for 16-bit data (``mono16``); 8-bit encodings ignore it.
* Alpha (``rgba8``/``bgra8``) is dropped; grey (``mono8``/``mono16``) is replicated to three channels.
* ``mono16`` becomes 8-bit by keeping the high byte (``value >> 8``): a fixed, linear, frame-independent
  mapping, so brightness does not flicker between frames the way per-frame min/max stretching would. A
  camera that only uses the low 12 bits will look dark; rescale upstream if that matters.
* ``8UC1``/``8UC3``/``16UC1`` (OpenCV type names some drivers use) are read as mono8/bgr8/mono16.
* Compressed: the ``format`` field of ``image_transport``'s compressed plugin (``"jpeg"``, ``"png"``,
  ``"rgb8; jpeg compressed bgr8"``, ...). OpenCV decodes to BGR whatever the original encoding was, because
  the plugin itself converts colour images to bgr8 before compressing. ``compressedDepth`` is refused.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

# encoding -> (channels, bytes per channel, colour order of the channels as delivered)
_LAYOUTS: dict[str, tuple[int, int, str]] = {
    "rgb8": (3, 1, "rgb"),
    "bgr8": (3, 1, "bgr"),
    "rgba8": (4, 1, "rgb"),
    "bgra8": (4, 1, "bgr"),
    "mono8": (1, 1, "mono"),
    "mono16": (1, 2, "mono"),
}
_ALIASES = {"8uc1": "mono8", "8uc3": "bgr8", "16uc1": "mono16"}
SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(_LAYOUTS)
SUPPORTED_COMPRESSED_FORMATS: tuple[str, ...] = ("jpeg", "png")


class ImageDecodeError(ValueError):
    """An image message that cannot be turned into pixels (the message says which field is wrong)."""


class UnsupportedEncodingError(ImageDecodeError):
    """The encoding is valid ROS but not one this package decodes."""


@dataclass(frozen=True)
class DecodedImage:
    """Pixels ready for the detector: ``image`` HxWx3 uint8 with channels in ``color`` order."""

    image: np.ndarray
    color: str  # "rgb" or "bgr"

    def as_bgr(self) -> np.ndarray:
        """A BGR view/copy for OpenCV drawing and video writing."""
        return self.image if self.color == "bgr" else np.ascontiguousarray(self.image[..., ::-1])


def canonical_encoding(encoding: str) -> str:
    """``"RGB8"``/``"8UC3"`` -> the name used in :data:`SUPPORTED_ENCODINGS`; raises if unsupported."""
    key = str(encoding).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _LAYOUTS:
        raise UnsupportedEncodingError(
            f"unsupported image encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)} "
            "(and sensor_msgs/CompressedImage jpeg/png)"
        )
    return key


def _byte_buffer(data: Any) -> np.ndarray:
    """Any bytes-like payload (bytes, bytearray, memoryview, array.array from rclpy, numpy from rosbags)."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except TypeError as exc:
        raise ImageDecodeError(f"image data must be bytes-like, got {type(data).__name__}") from exc


def raw_image_array(
    encoding: str, height: int, width: int, step: int, is_bigendian: bool | int, data: Any
) -> np.ndarray:
    """The image in its native layout: ``HxWxC`` (C = 1, 3 or 4), uint8 or native-endian uint16.

    Zero-copy when the rows are unpadded and the byte order is native; otherwise one copy.
    """
    enc = canonical_encoding(encoding)
    channels, depth, _ = _LAYOUTS[enc]
    height, width, step = int(height), int(width), int(step)
    if height <= 0 or width <= 0:
        raise ImageDecodeError(f"image size must be positive, got {width}x{height}")
    row_bytes = width * channels * depth
    if step < row_bytes:
        raise ImageDecodeError(
            f"step {step} is smaller than width x bytes per pixel = {width} x {channels * depth} = {row_bytes} "
            f"for {enc}"
        )
    buf = _byte_buffer(data)
    if buf.size < step * height:
        raise ImageDecodeError(
            f"image data has {buf.size} bytes but step x height = {step} x {height} = {step * height} are needed"
        )
    rows = buf[: step * height].reshape(height, step)[:, :row_bytes]
    if depth == 2:
        dtype = np.dtype(">u2" if is_bigendian else "<u2")
        pixels = np.ascontiguousarray(rows).view(dtype).astype(np.uint16, copy=False)
    else:
        pixels = np.ascontiguousarray(rows)
    return pixels.reshape(height, width, channels)


def decode_raw_image(
    encoding: str, height: int, width: int, step: int, is_bigendian: bool | int, data: Any
) -> DecodedImage:
    """``sensor_msgs/Image`` fields -> :class:`DecodedImage` (HxWx3 uint8 + colour order)."""
    enc = canonical_encoding(encoding)
    pixels = raw_image_array(enc, height, width, step, is_bigendian, data)
    _, depth, order = _LAYOUTS[enc]
    if order == "mono":
        grey = pixels[..., 0]
        if depth == 2:
            grey = (grey >> 8).astype(np.uint8)
        return DecodedImage(np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2)), "bgr")
    if pixels.shape[2] == 4:
        pixels = np.ascontiguousarray(pixels[..., :3])
    return DecodedImage(pixels, order)


def compressed_kind(fmt: str) -> str:
    """``"jpeg"`` or ``"png"`` from a CompressedImage ``format`` string; raises for anything else."""
    text = str(fmt).strip().lower()
    if "compresseddepth" in text:
        raise UnsupportedEncodingError(
            f"compressed depth images (format {fmt!r}) are not camera images; subscribe to the colour stream"
        )
    # "rgb8; jpeg compressed bgr8": the part after ';' names the codec
    codec_part = text.split(";")[-1]
    for kind, names in (("jpeg", ("jpeg", "jpg")), ("png", ("png",))):
        if any(n in codec_part for n in names):
            return kind
    if text == "":  # some drivers leave it empty; OpenCV can still sniff the bytes
        return "unknown"
    raise UnsupportedEncodingError(
        f"unsupported compressed image format {fmt!r}; supported: {', '.join(SUPPORTED_COMPRESSED_FORMATS)}"
    )


def decode_compressed_image(fmt: str, data: Any) -> DecodedImage:
    """``sensor_msgs/CompressedImage`` fields -> :class:`DecodedImage` (always BGR, see module docstring)."""
    compressed_kind(fmt)
    buf = _byte_buffer(data)
    if buf.size == 0:
        raise ImageDecodeError("compressed image has no data")
    image = cv2.imdecode(buf, cv2.IMREAD_COLOR)  # 16-bit PNGs are reduced to 8 bit by OpenCV
    if image is None:
        raise ImageDecodeError(f"could not decode {buf.size} bytes as a {fmt or 'compressed'} image (corrupt data?)")
    return DecodedImage(image, "bgr")


# ------------------------------------------------------------------------------------------- encoding
def encode_raw_image(
    image: np.ndarray, encoding: str, step: int | None = None, big_endian: bool = False
) -> tuple[int, bytes]:
    """Pixels already in ``encoding``'s channel layout -> ``(step, data)`` for a ``sensor_msgs/Image``.

    For writing test bags and round-trip tests: ``image`` must be ``HxWxC`` (or ``HxW`` for mono) of the
    encoding's dtype; ``step`` > the minimum pads every row with zeros.
    """
    enc = canonical_encoding(encoding)
    channels, depth, _ = _LAYOUTS[enc]
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[..., None]
    expected = np.uint16 if depth == 2 else np.uint8
    if array.ndim != 3 or array.shape[2] != channels or array.dtype != expected:
        raise ValueError(
            f"{enc} needs an HxWx{channels} {np.dtype(expected).name} array, got {array.shape} {array.dtype}"
        )
    h, w = array.shape[:2]
    row_bytes = w * channels * depth
    step = row_bytes if step is None else int(step)
    if step < row_bytes:
        raise ValueError(f"step {step} is smaller than the row size {row_bytes}")
    if depth == 2:
        array = array.astype(">u2" if big_endian else "<u2")
    rows = np.zeros((h, step), np.uint8)
    rows[:, :row_bytes] = np.ascontiguousarray(array).view(np.uint8).reshape(h, row_bytes)
    return step, rows.tobytes()


def encode_compressed_image(image_bgr: np.ndarray, kind: str = "jpeg", quality: int = 90) -> bytes:
    """BGR (or grey) uint8 image -> JPEG/PNG bytes for a ``sensor_msgs/CompressedImage``."""
    if kind not in SUPPORTED_COMPRESSED_FORMATS:
        raise ValueError(f"kind must be one of {SUPPORTED_COMPRESSED_FORMATS}, got {kind!r}")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if kind == "jpeg" else []
    ok, buf = cv2.imencode(".jpg" if kind == "jpeg" else ".png", image_bgr, params)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {image_bgr.shape} {image_bgr.dtype} image as {kind}")
    return buf.tobytes()
