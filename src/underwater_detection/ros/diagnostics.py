"""Running statistics of the detector node and their ``diagnostic_msgs/DiagnosticArray`` form.

What an operator needs to know about a perception node at a glance, about once a second: is data coming in
(input rate), is the node keeping up (output rate, dropped frames), how old are the detections when they
leave (latency from the image stamp to publishing, p50/p95; and processing time from receipt to publishing,
which stays meaningful for replays of old bags whose stamps lie in the past), how often the expensive
reference generator runs (key-frame ratio), and what runs where (model, device, untrained weights).

Rates and percentiles are over a sliding window (``window_s``, default 5 s) so that a stall shows within
seconds; totals are since the node was configured.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, Mapping

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue


class NodeStatistics:
    """Thread-safe counters and windows; the callback, the worker and the diagnostics timer all touch them."""

    def __init__(self, window_s: float = 5.0, max_samples: int = 2000) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        self.window_s = float(window_s)
        self._lock = threading.Lock()
        self._inputs: deque[float] = deque(maxlen=max_samples)
        self._outputs: deque[tuple[float, float, float, bool]] = deque(maxlen=max_samples)
        self._errors: deque[float] = deque(maxlen=max_samples)
        self.totals = {"received": 0, "processed": 0, "dropped": 0, "decode_errors": 0, "inference_errors": 0,
                       "key_frames": 0, "debug_images": 0}

    def record_input(self, now: float | None = None) -> None:
        with self._lock:
            self._inputs.append(time.monotonic() if now is None else now)
            self.totals["received"] += 1

    def record_output(self, latency_s: float, processing_s: float, key_frame: bool, now: float | None = None) -> None:
        with self._lock:
            self._outputs.append((time.monotonic() if now is None else now, latency_s, processing_s, key_frame))
            self.totals["processed"] += 1
            self.totals["key_frames"] += int(key_frame)

    def record_drops(self, n: int = 1) -> None:
        with self._lock:
            self.totals["dropped"] += int(n)

    def record_error(self, kind: str = "decode_errors", now: float | None = None) -> None:
        with self._lock:
            self._errors.append(time.monotonic() if now is None else now)
            self.totals[kind] += 1

    def record_debug_image(self) -> None:
        with self._lock:
            self.totals["debug_images"] += 1

    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        """Window rates/percentiles + totals. Latencies in milliseconds; NaN when the window has no output."""
        now = time.monotonic() if now is None else now
        start = now - self.window_s
        with self._lock:
            inputs = [t for t in self._inputs if t >= start]
            outputs = [o for o in self._outputs if o[0] >= start]
            errors = [t for t in self._errors if t >= start]
            totals = dict(self.totals)
        latencies = np.array([o[1] for o in outputs], dtype=np.float64) * 1e3
        processing = np.array([o[2] for o in outputs], dtype=np.float64) * 1e3

        def pct(values: np.ndarray, q: float) -> float:
            return float(np.percentile(values, q)) if values.size else float("nan")

        return {
            "input_rate_hz": len(inputs) / self.window_s,
            "output_rate_hz": len(outputs) / self.window_s,
            "latency_p50_ms": pct(latencies, 50),
            "latency_p95_ms": pct(latencies, 95),
            "processing_p50_ms": pct(processing, 50),
            "processing_p95_ms": pct(processing, 95),
            "key_frame_ratio": (sum(o[3] for o in outputs) / len(outputs)) if outputs else float("nan"),
            "errors_in_window": len(errors),
            "inputs_in_window": len(inputs),
            "outputs_in_window": len(outputs),
            **{f"{k}_total": v for k, v in totals.items()},
        }


def _format(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if value != value else f"{value:.3f}"
    return str(value)


def diagnostic_level(snapshot: Mapping[str, Any], active: bool, untrained: bool) -> tuple[bytes, str]:
    """(level, one-line message) from a snapshot: ERROR when frames arrive but none can be processed, WARN
    when inactive, untrained, or some frames fail, OK otherwise."""
    if snapshot["inputs_in_window"] > 0 and snapshot["outputs_in_window"] == 0 and snapshot["errors_in_window"] > 0:
        return DiagnosticStatus.ERROR, "images arrive but none can be processed (see the node's log)"
    problems = []
    if not active:
        problems.append("node is not active")
    if untrained:
        problems.append("model weights are UNTRAINED (random): detections are meaningless")
    if snapshot["errors_in_window"] > 0:
        problems.append(f"{snapshot['errors_in_window']} frames failed in the last window")
    if problems:
        return DiagnosticStatus.WARN, "; ".join(problems)
    if snapshot["inputs_in_window"] == 0:
        return DiagnosticStatus.OK, "active, waiting for images"
    return DiagnosticStatus.OK, f"detecting at {snapshot['output_rate_hz']:.1f} Hz"


def diagnostic_array(
    name: str, hardware_id: str, level: bytes, message: str, values: Mapping[str, Any], stamp: Any
) -> DiagnosticArray:
    """One ``DiagnosticStatus`` with every value as a ``KeyValue`` (floats with 3 decimals)."""
    status = DiagnosticStatus()
    status.level = level
    status.name = name
    status.message = message
    status.hardware_id = hardware_id
    status.values = [KeyValue(key=str(k), value=_format(v)) for k, v in values.items()]
    array = DiagnosticArray()
    array.header.stamp = stamp
    array.status = [status]
    return array
