"""``uwdet bag-record``: subscribe to ROS 2 topics and write what arrives into a rosbag2 MCAP folder (rosbags).

The small stand-in for ``ros2 bag record`` (not on PyPI) that the demo and the tests use to capture what the
nodes publish over real DDS.

* Topic types are discovered from the graph: a topic is subscribed as soon as a publisher for it appears
  (not before: the publishers' QoS decides the subscription's), so the recorder can start before the nodes
  it records.
* Messages are received serialised (``raw=True``) and written as they are: no deserialisation cost.
* Log time = reception time on the node's clock (system time, or ``/clock`` under ``use_sim_time``), which
  is what latency measurements from a recording use.
* QoS ``auto`` (default) matches the publishers, like ``ros2 bag``: reliable if every publisher offers it
  (so nothing is lost), else best effort; transient local if every publisher offers it (latched topics such
  as ``LabelInfo``); history depth 100 so that bursts are not dropped by the recorder itself.
* ``--status-file`` is rewritten (atomically, JSON) whenever the set of subscribed topics changes, so a script
  can start publishers only once the recorder listens.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from ..bags.reader import BagError
from ..bags.writer import BagWriter
from .bag_player import message_class

RECORD_DEPTH = 100


def subscription_qos(publisher_qos: list[Any], mode: str = "auto") -> QoSProfile:
    """The subscription profile for a topic, given its publishers' offered profiles (see the module docstring)."""
    if mode == "reliable":
        reliability = ReliabilityPolicy.RELIABLE
    elif mode == "best_effort":
        reliability = ReliabilityPolicy.BEST_EFFORT
    elif publisher_qos and all(q.reliability == ReliabilityPolicy.RELIABLE for q in publisher_qos):
        reliability = ReliabilityPolicy.RELIABLE
    else:
        reliability = ReliabilityPolicy.BEST_EFFORT
    latched = bool(publisher_qos) and all(q.durability == DurabilityPolicy.TRANSIENT_LOCAL for q in publisher_qos)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=RECORD_DEPTH, reliability=reliability,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


class BagRecorder:
    """Records ``topics`` through ``node`` into ``writer`` (an open :class:`BagWriter`)."""

    def __init__(self, node: Node, writer: BagWriter, topics: list[str], qos_mode: str = "auto",
                 status_file: str | Path | None = None) -> None:
        self.node = node
        self.writer = writer
        self.qos_mode = qos_mode
        self.status_file = Path(status_file) if status_file else None
        self.pending = [node.resolve_topic_name(t) for t in topics]
        self.subscribed: dict[str, str] = {}
        self.problems: dict[str, str] = {}
        self._subscriptions: list[Any] = []
        self._lock = threading.Lock()
        self._write_status()
        self._timer = node.create_timer(0.1, self._discover)
        self._discover()

    def _discover(self) -> None:
        if not self.pending:
            return
        graph = dict(self.node.get_topic_names_and_types())
        changed = False
        for topic in list(self.pending):
            types = graph.get(topic)
            if not types:
                continue
            msgtype = types[0]
            cls = message_class(msgtype)
            if cls is None or not self.writer.knows(msgtype):
                self.problems[topic] = f"type {msgtype} cannot be recorded (not installed or unknown to the typestore)"
                self.pending.remove(topic)
                changed = True
                continue
            infos = self.node.get_publishers_info_by_topic(topic)
            if not infos:
                continue  # only subscribers so far: wait for a publisher, whose QoS decides ours
            qos = subscription_qos([i.qos_profile for i in infos], self.qos_mode)
            self.writer.add_topic(topic, msgtype)
            self._subscriptions.append(self.node.create_subscription(
                cls, topic, lambda data, t=topic: self._on_message(t, data), qos, raw=True))
            self.subscribed[topic] = msgtype
            self.pending.remove(topic)
            changed = True
            print(f"bag-record: recording {topic} ({msgtype}, {qos.reliability.name.lower()}, "
                  f"{qos.durability.name.lower()})", flush=True)
        if changed:
            self._write_status()

    def _on_message(self, topic: str, data: bytes) -> None:
        stamp = self.node.get_clock().now().nanoseconds
        with self._lock:
            self.writer.write_raw(topic, stamp, data)

    def _write_status(self) -> None:
        if self.status_file is None:
            return
        tmp = self.status_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"subscribed": sorted(self.subscribed), "pending": sorted(self.pending),
                                   "problems": self.problems, "pid": os.getpid()}))
        tmp.replace(self.status_file)


def record_main(args: argparse.Namespace) -> int:
    """Entry point of ``uwdet bag-record`` (``cli`` parses the arguments). Stops on SIGINT/SIGTERM or after
    ``--duration`` and always closes the bag cleanly."""
    stop = threading.Event()
    rclpy.init(args=None)
    old = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    node = Node("uwdet_bag_recorder")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        with BagWriter(args.out, overwrite=args.overwrite) as writer:
            recorder = BagRecorder(node, writer, list(args.topics), args.qos, args.status_file)
            deadline = time.monotonic() + args.duration if args.duration > 0 else None
            while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                executor.spin_once(timeout_sec=0.05)
            with recorder._lock:
                counts = dict(writer.counts)
        print(f"bag-record: wrote {args.out}: " + (", ".join(f"{t}: {n}" for t, n in counts.items()) or "nothing"),
              flush=True)
        for topic in recorder.pending:
            print(f"bag-record: {topic} never appeared (no publisher)", file=sys.stderr)
        for topic, why in recorder.problems.items():
            print(f"bag-record: {topic} not recorded: {why}", file=sys.stderr)
    except BagError:
        raise
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
