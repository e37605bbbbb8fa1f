"""QoS profiles of the detector node, in one place so that every topic's contract is visible.

Why these choices:

* **Images: depth 1, KEEP_LAST, volatile.** A detector that queues camera frames falls behind and its output
  lags more and more (the most common complaint about ROS detectors). With depth 1 the middleware keeps only
  the newest frame; the node's worker thread also takes only the newest one.
* **Image reliability is a parameter** (``qos_reliability``): ``best_effort`` (default) matches every camera
  publisher, reliable or best effort; ``reliable`` is for bag replays that must not lose frames, but it does
  *not* match a best-effort publisher (DDS gives no data at all then; the node logs an incompatible-QoS
  warning instead of staying silent).
* **Outputs are reliable** (a reliable writer serves reliable and best-effort readers alike).
  **Detections: depth 10.** Consumers (grasp planner, navigation, recorder) may subscribe reliable
  or best effort; a reliable writer serves both.
* **LabelInfo: reliable + transient local, depth 1**, the ``vision_msgs`` convention: a subscriber that starts
  later still receives the class map.
* **Diagnostics: reliable, depth 10**, what ``diagnostic_aggregator`` expects.
"""
from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

RELIABILITY_CHOICES: dict[str, ReliabilityPolicy] = {
    "best_effort": ReliabilityPolicy.BEST_EFFORT,
    "reliable": ReliabilityPolicy.RELIABLE,
}


def reliability_from_name(name: str) -> ReliabilityPolicy:
    """``"best_effort"`` / ``"reliable"`` (case and ``-`` insensitive) -> policy; ValueError names the choices."""
    key = str(name).strip().lower().replace("-", "_")
    if key not in RELIABILITY_CHOICES:
        raise ValueError(f"qos_reliability must be one of {sorted(RELIABILITY_CHOICES)}, got {name!r}")
    return RELIABILITY_CHOICES[key]


def image_qos(reliability: str = "best_effort") -> QoSProfile:
    """Camera input: newest frame only (depth 1), volatile, reliability by parameter."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=1,
        reliability=reliability_from_name(reliability),
        durability=DurabilityPolicy.VOLATILE,
    )


def detections_qos() -> QoSProfile:
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=10,
        reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE,
    )


def debug_image_qos() -> QoSProfile:
    """Debug images are for people watching: depth 1 (a slow viewer gets the newest, never a backlog); reliable
    so that viewers subscribing reliable (rqt, RViz defaults) match too."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=1,
        reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE,
    )


def label_info_qos() -> QoSProfile:
    """Latched class map: late subscribers (transient local) get the last LabelInfo."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=1,
        reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL,
    )


def diagnostics_qos() -> QoSProfile:
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=10,
        reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE,
    )
