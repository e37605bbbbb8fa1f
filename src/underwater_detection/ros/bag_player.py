"""``uwdet bag-play``: publish a rosbag2's messages over ROS 2 with their recorded timing, without ``ros2 bag``.

``ros2 bag`` (rosbag2_py) is not on PyPI, so the pip-installed ROS here cannot replay bags; this player lets
the real nodes be tested from bags on any machine with rclpy.

* Messages are published as the bag's raw CDR bytes (``Publisher.publish(bytes)``): no deserialisation, so
  any type the local ROS knows is replayed bit for bit (a type it does not know is skipped with a warning).
* Timing: message i goes out at ``start + (log_time_i - log_time_0) / rate`` on the monotonic clock.
  ``--loop`` starts again after the last message.
* ``/clock`` (``rosgraph_msgs/Clock``) at ``--clock HZ`` carries the bag's time for nodes with
  ``use_sim_time:=true``; the clock value follows the same timeline as the messages.
* QoS: reliable by default (a replay that is meant to be lossless), keep-last ``--depth``, volatile; best
  effort by option. Note a reliable *subscriber* (e.g. a recorder) does not match a best-effort publisher.
* ``--publish-log FILE`` writes each publish's wall-clock time (JSON lines), for latency measurements.
* ``--wait-for-subscribers N`` holds the start until every played topic has N subscribers, so tests and the
  demo never lose the first frames to discovery; ``--start-delay`` is the simple fallback.
"""
from __future__ import annotations

import argparse
import importlib
import json
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rclpy
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from ..bags.reader import BagError, BagFile


def message_class(msgtype: str) -> Any:
    """``"sensor_msgs/msg/Image"`` -> the rclpy message class, or ``None`` if that package is not installed."""
    parts = msgtype.split("/")
    if len(parts) != 3:
        return None
    try:
        return getattr(importlib.import_module(f"{parts[0]}.{parts[1]}"), parts[2])
    except (ImportError, AttributeError):
        return None


def parse_remaps(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        if ":=" not in item:
            raise BagError(f"bad --remap {item!r}: expected FROM:=TO")
        src, dst = item.split(":=", 1)
        out[src] = dst
    return out


@dataclass
class PlayStats:
    published: dict[str, int] = field(default_factory=dict)
    skipped_topics: dict[str, str] = field(default_factory=dict)
    loops: int = 0
    wall_s: float = 0.0
    max_late_ms: float = 0.0  # worst lag of a publish behind its scheduled time
    log: list[tuple[str, int, int]] = field(default_factory=list)  # (topic, bag log time, wall ns) if logging


class BagPlayer:
    """Publishes one bag through ``node``; :meth:`play` blocks until done (or :meth:`stop`)."""

    def __init__(self, node: Node, bag: str | Path, topics: list[str] | None = None, rate: float = 1.0,
                 loop: bool = False, clock_hz: float = 0.0, reliability: str = "reliable", depth: int = 10,
                 remap: dict[str, str] | None = None, log_publishes: bool = False) -> None:
        if not rate > 0:
            raise BagError(f"rate must be > 0, got {rate}")
        self.node = node
        self.bag_path = Path(bag)
        self.rate, self.loop, self.clock_hz = float(rate), bool(loop), float(clock_hz)
        self.remap = dict(remap or {})
        self.log_publishes = log_publishes
        self._stop = threading.Event()
        self.stats = PlayStats()
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(depth),
                         reliability=ReliabilityPolicy.RELIABLE if reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT,
                         durability=DurabilityPolicy.VOLATILE)
        self.publishers: dict[str, Any] = {}
        with BagFile(self.bag_path) as bag:
            available = bag.topics
            wanted = list(available) if topics is None else list(topics)
            for topic in wanted:
                if topic not in available:
                    raise BagError(f"bag {self.bag_path} has no topic {topic!r}; its topics: {bag.topic_list()}")
                cls = message_class(available[topic].msgtype)
                if cls is None:
                    self.stats.skipped_topics[topic] = f"message type {available[topic].msgtype} is not installed"
                    continue
                self.publishers[topic] = node.create_publisher(cls, self.remap.get(topic, topic), qos)
                self.stats.published[topic] = 0
        if not self.publishers:
            raise BagError(f"nothing to play from {self.bag_path}: {self.stats.skipped_topics or 'no topics'}")
        self._clock_pub = None
        if self.clock_hz > 0:
            from rosgraph_msgs.msg import Clock

            self._clock_pub = node.create_publisher(Clock, "/clock", QoSProfile(depth=10))
        self._bag_time_ns: int | None = None  # current position on the bag's timeline (for /clock)

    def stop(self) -> None:
        self._stop.set()

    def wait_for_subscribers(self, count: int, timeout_s: float) -> bool:
        """Block until every publisher has ``count`` subscribers (True) or the timeout passes (False)."""
        deadline = time.monotonic() + timeout_s
        while not self._stop.is_set():
            if all(p.get_subscription_count() >= count for p in self.publishers.values()):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return False

    def _publish_clock(self) -> None:
        from builtin_interfaces.msg import Time
        from rosgraph_msgs.msg import Clock

        period = 1.0 / self.clock_hz
        while not self._stop.wait(period):
            ns = self._bag_time_ns
            if ns is not None and self._clock_pub is not None:
                self._clock_pub.publish(Clock(clock=Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)))

    def play(self) -> PlayStats:
        clock_thread = None
        if self._clock_pub is not None:
            clock_thread = threading.Thread(target=self._publish_clock, daemon=True)
            clock_thread.start()
        start_wall = time.monotonic()
        try:
            while not self._stop.is_set():
                self._play_once()
                if not self.loop or self._stop.is_set():
                    break
                self.stats.loops += 1
        finally:
            self.stats.wall_s = time.monotonic() - start_wall
            self._stop.set()
            if clock_thread is not None:
                clock_thread.join(timeout=1.0)
        return self.stats

    def _play_once(self) -> None:
        with BagFile(self.bag_path) as bag:
            t0_bag: int | None = None
            t0_wall = time.monotonic()
            for topic, _, log_time, raw in bag.raw_messages(list(self.publishers)):
                if t0_bag is None:
                    t0_bag = log_time
                due = t0_wall + (log_time - t0_bag) / 1e9 / self.rate
                while True:  # sleep in short steps so that stop() is honoured quickly and /clock advances
                    now = time.monotonic()
                    self._bag_time_ns = t0_bag + int((now - t0_wall) * self.rate * 1e9)
                    if now >= due or self._stop.is_set():
                        break
                    time.sleep(min(due - now, 0.02))
                if self._stop.is_set():
                    return
                self._bag_time_ns = log_time
                wall_ns = time.time_ns()  # CLOCK_REALTIME: comparable with other processes' reception times
                self.publishers[topic].publish(bytes(raw))
                if self.log_publishes:
                    self.stats.log.append((topic, log_time, wall_ns))
                self.stats.published[topic] += 1
                self.stats.max_late_ms = max(self.stats.max_late_ms, (time.monotonic() - due) * 1e3)


def write_publish_log(path: str | Path, stats: PlayStats) -> Path:
    """One JSON object per published message: topic, the bag's log time and the wall-clock publish time (ns)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for topic, log_time, wall in stats.log:
            fh.write(json.dumps({"topic": topic, "log_time_ns": log_time, "wall_ns": wall}) + "\n")
    return path


def play_main(args: argparse.Namespace) -> int:
    """Entry point of ``uwdet bag-play`` (``cli`` parses the arguments)."""
    rclpy.init(args=None)
    node = Node("uwdet_bag_player")
    player = None

    def _on_signal(signum: int, frame: Any) -> None:
        if player is not None:
            player.stop()

    old = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        player = BagPlayer(node, args.bag, topics=args.topics, rate=args.rate, loop=args.loop, clock_hz=args.clock,
                           reliability=args.qos, depth=args.depth, remap=parse_remaps(args.remap),
                           log_publishes=bool(args.publish_log))
        for topic, why in player.stats.skipped_topics.items():
            print(f"bag-play: skipping {topic}: {why}", file=sys.stderr)
        if args.wait_for_subscribers > 0:
            if not player.wait_for_subscribers(args.wait_for_subscribers, args.wait_timeout):
                counts = {t: p.get_subscription_count() for t, p in player.publishers.items()}
                print(f"bag-play: waited {args.wait_timeout:.0f} s for {args.wait_for_subscribers} subscriber(s) per "
                      f"topic, have {counts}; playing anyway", file=sys.stderr)
        time.sleep(max(0.0, args.start_delay))
        print(f"bag-play: playing {args.bag} at rate {args.rate:g} ({', '.join(player.publishers)})", flush=True)
        stats = player.play()
        if args.publish_log:
            write_publish_log(args.publish_log, stats)
        time.sleep(max(0.0, args.linger))  # let reliable writers deliver the last messages before the node dies
        total = sum(stats.published.values())
        print(f"bag-play: published {total} messages in {stats.wall_s:.2f} s "
              f"({', '.join(f'{t}: {n}' for t, n in stats.published.items())}); "
              f"worst publish lag {stats.max_late_ms:.1f} ms", flush=True)
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
