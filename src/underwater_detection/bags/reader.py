"""Read rosbag2 folders (MCAP or sqlite3) without ROS: topics, image frames in log-time order, raw messages.

``rosbags``' ``AnyReader`` takes the message definitions stored in the bag; older bags without them fall
back to our typestore (ROS 2 Kilted + vision_msgs 4.1 from ``third_party``), so a bag written by
``ros2 bag record`` on the vehicle and one written by ``uwdet synth`` read the same way.

Every problem a user can fix (no such folder, not a bag, no such topic, wrong message type, an encoding we
do not decode) raises :class:`BagError` with one message that says what to do, e.g. the list of topics
that do exist.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from ..data.image_encoding import ImageDecodeError, decode_compressed_image, decode_raw_image

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_TYPE)
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
DETECTION_ARRAY_TYPE = "vision_msgs/msg/Detection2DArray"


class BagError(ValueError):
    """A bag problem the user can fix; the message names the bag and what exists instead."""


def stamp_to_ns(stamp: Any) -> int:
    """``builtin_interfaces/Time`` (rclpy or rosbags object) -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


@dataclass(frozen=True)
class TopicInfo:
    name: str
    msgtype: str
    count: int


@dataclass
class ImageFrame:
    """One decoded camera frame. ``stamp_ns`` is the header stamp, ``log_time_ns`` when it was recorded."""

    index: int
    log_time_ns: int
    stamp_ns: int
    frame_id: str
    image: np.ndarray  # HxWx3 uint8
    color: str  # "rgb" or "bgr"
    encoding: str  # Image.encoding, or CompressedImage.format

    @property
    def stamp_s(self) -> float:
        return self.stamp_ns / 1e9


def check_bag_path(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise BagError(f"bag not found: {path}")
    if path.is_dir() and not (path / "metadata.yaml").is_file():
        inner = sorted(str(p.parent.relative_to(path)) for pattern in ("*/metadata.yaml", "*/*/metadata.yaml")
                       for p in path.glob(pattern))
        hint = f"; bags inside it: {', '.join(inner)}" if inner else ""
        raise BagError(f"{path} is not a rosbag2 folder (no metadata.yaml){hint}")
    return path


class BagFile:
    """A rosbag2 folder opened for reading; use as a context manager."""

    def __init__(self, path: str | Path) -> None:
        from ..data.synthetic.ros_types import get_typestore

        self.path = check_bag_path(path)
        self._typestore = get_typestore()
        self._reader: Any = None

    def __enter__(self) -> "BagFile":
        from rosbags.highlevel import AnyReader

        try:
            self._reader = AnyReader([self.path], default_typestore=self._typestore)
            self._reader.open()
        except Exception as exc:  # rosbags raises its own error types for broken metadata / storage
            raise BagError(f"cannot open bag {self.path}: {exc}") from exc
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    # ------------------------------------------------------------------------------ topics
    @property
    def reader(self) -> Any:
        if self._reader is None:
            raise RuntimeError("BagFile is not open; use it as a context manager")
        return self._reader

    @property
    def topics(self) -> dict[str, TopicInfo]:
        out: dict[str, TopicInfo] = {}
        for conn in self.reader.connections:
            prev = out.get(conn.topic)
            count = (prev.count if prev else 0) + int(conn.msgcount)
            out[conn.topic] = TopicInfo(conn.topic, conn.msgtype, count)
        return dict(sorted(out.items()))

    def topic_list(self) -> str:
        """``"/a (sensor_msgs/msg/Image, 30 msgs), /b (...)"`` for error messages."""
        topics = self.topics.values()
        return ", ".join(f"{t.name} ({t.msgtype}, {t.count} msgs)" for t in topics) or "none"

    def require_topic(self, topic: str, msgtypes: Iterable[str]) -> TopicInfo:
        """The topic's info, or a :class:`BagError` listing the topics that exist / the types accepted."""
        msgtypes = tuple(msgtypes)
        info = self.topics.get(topic)
        if info is None:
            raise BagError(f"bag {self.path} has no topic {topic!r}; its topics: {self.topic_list()}")
        if info.msgtype not in msgtypes:
            raise BagError(f"topic {topic!r} in {self.path} carries {info.msgtype}, expected {' or '.join(msgtypes)}")
        return info

    def topics_of_type(self, msgtypes: Iterable[str]) -> list[str]:
        msgtypes = tuple(msgtypes)
        return [t.name for t in self.topics.values() if t.msgtype in msgtypes]

    # ------------------------------------------------------------------------------ messages
    def raw_messages(self, topics: Iterable[str] | None = None) -> Iterator[tuple[str, str, int, bytes]]:
        """``(topic, msgtype, log_time_ns, cdr_bytes)`` in log-time order across the chosen topics."""
        wanted = None if topics is None else set(topics)
        conns = [c for c in self.reader.connections if wanted is None or c.topic in wanted]
        for conn, log_time, raw in self.reader.messages(connections=conns):
            yield conn.topic, conn.msgtype, int(log_time), raw

    def messages(self, topics: Iterable[str] | None = None) -> Iterator[tuple[str, int, Any]]:
        """``(topic, log_time_ns, message)`` deserialised, in log-time order."""
        wanted = None if topics is None else set(topics)
        conns = [c for c in self.reader.connections if wanted is None or c.topic in wanted]
        for conn, log_time, raw in self.reader.messages(connections=conns):
            yield conn.topic, int(log_time), self.reader.deserialize(raw, conn.msgtype)

    def image_frames(self, topic: str, limit: int | None = None) -> Iterator[ImageFrame]:
        """Decoded frames of an Image or CompressedImage topic, in log-time order."""
        info = self.require_topic(topic, IMAGE_TYPES)
        for index, (_, log_time, msg) in enumerate(self.messages([topic])):
            if limit is not None and index >= limit:
                return
            yield decode_image_message(msg, info.msgtype, index, log_time, where=f"{topic} message #{index}")

    def camera_matrix(self, topic: str) -> np.ndarray | None:
        """K (3x3) of the first CameraInfo on ``topic``, or ``None`` if the bag has no such topic."""
        if topic not in self.topics:
            return None
        self.require_topic(topic, (CAMERA_INFO_TYPE,))
        for _, _, msg in self.messages([topic]):
            return np.asarray(msg.k, np.float64).reshape(3, 3)
        return None


def decode_image_message(msg: Any, msgtype: str, index: int, log_time_ns: int, where: str = "") -> ImageFrame:
    """An Image/CompressedImage message object (rosbags or rclpy) -> :class:`ImageFrame`."""
    try:
        if msgtype == COMPRESSED_TYPE:
            decoded = decode_compressed_image(msg.format, msg.data)
            encoding = str(msg.format)
        else:
            decoded = decode_raw_image(msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian, msg.data)
            encoding = str(msg.encoding)
    except ImageDecodeError as exc:
        raise BagError(f"{where}: {exc}" if where else str(exc)) from exc
    return ImageFrame(index, int(log_time_ns), stamp_to_ns(msg.header.stamp), str(msg.header.frame_id),
                      decoded.image, decoded.color, encoding)
