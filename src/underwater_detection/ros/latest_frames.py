"""A newest-frame-only hand-off between the subscription callback and the inference worker (no rclpy).

Why: a detector slower than its camera must not build a queue; every queued frame adds one inference time of
lag, for ever. The callback only stores the message (cheap: decoding happens in the worker) and the worker
always takes the newest frame of each stream. A frame replaced before the worker took it is *dropped* and
counted, so diagnostics show how much of the camera rate the detector keeps up with.

One slot per stream (camera ``frame_id``): with two cameras, a newest-only slot shared by both would starve
one of them; per-stream slots let the worker run one frame of every waiting camera in one batch
(``TemporalDetector.detect_batch``).

Frames the middleware itself discards (image QoS depth 1) never reach the callback and cannot be counted here.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any


@dataclass
class PendingFrame:
    """A received, not yet decoded, camera message."""

    msg: Any
    stream_id: str
    received_monotonic: float = field(default_factory=time.monotonic)


class LatestFrames:
    """Per-stream single-slot buffer. ``put`` never blocks; ``take`` blocks until frames wait or ``close``."""

    def __init__(self, max_streams: int = 16) -> None:
        if max_streams < 1:
            raise ValueError(f"max_streams must be >= 1, got {max_streams}")
        self.max_streams = max_streams
        self._pending: OrderedDict[str, PendingFrame] = OrderedDict()
        self._cond = threading.Condition()
        self._closed = False
        self.dropped = 0

    def put(self, frame: PendingFrame) -> bool:
        """Store ``frame`` as its stream's newest; returns True if it replaced an unprocessed frame (a drop)."""
        with self._cond:
            replaced = self._pending.pop(frame.stream_id, None) is not None
            self._pending[frame.stream_id] = frame  # re-inserted last: streams are served oldest-waiting first
            if replaced:
                self.dropped += 1
            while len(self._pending) > self.max_streams:  # more cameras than the detector keeps: oldest goes
                self._pending.popitem(last=False)
                self.dropped += 1
            self._cond.notify()
            return replaced

    def take(self, timeout: float | None = None) -> list[PendingFrame]:
        """All waiting frames (one per stream, oldest-waiting stream first); ``[]`` on timeout or when closed."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._pending or self._closed, timeout):
                return []
            if self._closed:
                return []
            frames = list(self._pending.values())
            self._pending.clear()
            return frames

    def clear(self) -> int:
        """Forget waiting frames (not counted as drops: the node stopped, the camera did not outpace it)."""
        with self._cond:
            n = len(self._pending)
            self._pending.clear()
            return n

    def close(self) -> None:
        """Wake and release a worker blocked in :meth:`take` for good."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed
