"""Write rosbag2 folders (MCAP) with rosbags: deserialised messages or raw CDR bytes (the recorder's case).

Message definitions come from our typestore (ROS 2 Kilted + vision_msgs 4.1), so the bags are
self-describing and ``ros2 bag play`` / Foxglove read them. A topic whose type the typestore does not know
cannot be written (its definition would be missing): :meth:`BagWriter.add_topic` raises ``BagError``.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from .reader import BagError


class BagWriter:
    """Context manager; ``add_topic`` then ``write``/``write_raw`` in any order (rosbags sorts nothing:
    write in log-time order if readers should not have to)."""

    def __init__(self, path: str | Path, overwrite: bool = False) -> None:
        from ..data.synthetic.ros_types import get_typestore

        self.path = Path(path)
        if self.path.exists():
            if not overwrite:
                raise BagError(f"output bag {self.path} already exists (remove it or pass --overwrite)")
            if not (self.path / "metadata.yaml").is_file() and any(self.path.iterdir()):
                raise BagError(f"refusing to overwrite {self.path}: it is not a rosbag2 folder")
            shutil.rmtree(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.typestore = get_typestore()
        self._writer: Any = None
        self._connections: dict[str, Any] = {}
        self.counts: dict[str, int] = {}

    def __enter__(self) -> "BagWriter":
        from rosbags.rosbag2 import StoragePlugin, Writer

        self._writer = Writer(self.path, version=9, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def knows(self, msgtype: str) -> bool:
        return msgtype in self.typestore.types

    def add_topic(self, topic: str, msgtype: str) -> None:
        if topic in self._connections:
            return
        if not self.knows(msgtype):
            raise BagError(f"cannot record {topic}: message type {msgtype} is unknown to the bag typestore")
        self._connections[topic] = self._writer.add_connection(topic, msgtype, typestore=self.typestore)
        self.counts[topic] = 0

    def write_raw(self, topic: str, log_time_ns: int, data: bytes) -> None:
        self._writer.write(self._connections[topic], int(log_time_ns), data)
        self.counts[topic] += 1

    def write(self, topic: str, log_time_ns: int, msg: Any) -> None:
        conn = self._connections[topic]
        self.write_raw(topic, log_time_ns, self.typestore.serialize_cdr(msg, conn.msgtype))
