"""One log line per problem and stream, then a reminder with a count (no rclpy).

Why not rclpy's ``throttle_duration_sec``: it throttles a call site, so a broken camera would hide the first
error of a second camera with a different problem. Here the key is ``(stream, problem)``: every new problem
is logged at once, repeats are summarised every ``period_s``.
"""
from __future__ import annotations

import threading
import time
from typing import Hashable


class ErrorThrottle:
    def __init__(self, period_s: float = 10.0) -> None:
        self.period_s = float(period_s)
        self._lock = threading.Lock()
        self._state: dict[Hashable, tuple[float, int]] = {}  # key -> (last logged at, suppressed since)

    def message(self, key: Hashable, text: str, now: float | None = None) -> str | None:
        """The line to log now for ``key`` (with the count of repeats suppressed since), or None to stay quiet."""
        now = time.monotonic() if now is None else now
        with self._lock:
            last = self._state.get(key)
            if last is None:
                self._state[key] = (now, 0)
                return text
            logged_at, suppressed = last
            if now - logged_at < self.period_s:
                self._state[key] = (logged_at, suppressed + 1)
                return None
            self._state[key] = (now, 0)
        return f"{text} ({suppressed} more like this in the last {now - logged_at:.0f} s)" if suppressed else text

    def reset(self) -> None:
        with self._lock:
            self._state.clear()
