"""``sensor_msgs/Image`` / ``CompressedImage`` <-> numpy without cv_bridge.

cv_bridge is not on PyPI and drags in a C++ build; the pixel logic itself lives in
:mod:`underwater_detection.data.image_encoding` (pure numpy/OpenCV, shared with bag evaluation, so the node
and ``uwdet bag-eval`` decode every frame identically). This module only reads the message fields.

Decoded images are ``HxWx3`` uint8 with their colour order (``"rgb"``/``"bgr"``), which the detector takes
as they are; see ``data/image_encoding.py`` for the conventions (step padding, ``is_bigendian``, alpha
dropped, mono replicated, ``mono16`` -> high byte, compressed always BGR).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from sensor_msgs.msg import CompressedImage, Image

from ..data.image_encoding import (
    DecodedImage,
    ImageDecodeError,
    UnsupportedEncodingError,
    decode_compressed_image,
    decode_raw_image,
)

__all__ = [
    "DecodedImage", "ImageDecodeError", "UnsupportedEncodingError", "decode_image_msg", "image_encoding_name",
    "bgr_to_image_msg",
]


def decode_image_msg(msg: Image | CompressedImage) -> DecodedImage:
    """A camera message -> pixels for the detector. Raises :class:`ImageDecodeError` (a ValueError) with a
    message naming the bad field; :class:`UnsupportedEncodingError` for encodings we do not decode."""
    if isinstance(msg, CompressedImage):
        return decode_compressed_image(msg.format, msg.data)
    if isinstance(msg, Image):
        return decode_raw_image(msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian, msg.data)
    raise ImageDecodeError(f"expected sensor_msgs/Image or CompressedImage, got {type(msg).__name__}")


def image_encoding_name(msg: Any) -> str:
    """The encoding a message claims (``encoding`` of an Image, ``format`` of a CompressedImage), for logs."""
    return str(getattr(msg, "encoding", None) or getattr(msg, "format", "") or "?")


def bgr_to_image_msg(image_bgr: np.ndarray, header: Any) -> Image:
    """``HxWx3`` uint8 BGR -> ``sensor_msgs/Image`` (``bgr8``, unpadded rows) with ``header`` copied."""
    array = np.ascontiguousarray(image_bgr, dtype=np.uint8)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 uint8 BGR image, got shape {array.shape}")
    msg = Image()
    msg.header = header
    msg.height, msg.width = int(array.shape[0]), int(array.shape[1])
    msg.encoding = "bgr8"
    msg.is_bigendian = 0
    msg.step = int(array.shape[1] * 3)
    msg.data = array.tobytes()
    return msg
