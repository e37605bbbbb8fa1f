"""Helpers for tests that talk to ROS 2 nodes over real DDS between separate processes.

* :func:`fresh_domain_id`: a ROS_DOMAIN_ID not used by another test run started at about the same time
  (pid-based, plus a per-process counter), in the 1..100 range that Fast DDS maps to valid ports.
* :func:`ros_env`: the environment for a child process (domain id, localhost-only discovery, unbuffered
  output, single-threaded BLAS so two processes do not fight over the two cores).
* :class:`RosProcess`: a child process with its output in a log file, stopped with SIGINT (then SIGKILL),
  whose log is shown when an assertion fails.
* :class:`TestPeer`: an rclpy context + node in the test process, spun in a background thread, that records
  what it receives.
"""
from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

_counter = itertools.count()


def fresh_domain_id() -> int:
    return 1 + (os.getpid() * 7 + next(_counter) * 13) % 100


def ros_env(domain_id: int, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "ROS_DOMAIN_ID": str(domain_id),
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": "1",
        "RCUTILS_COLORIZED_OUTPUT": "0",
    })
    env.update(extra)
    return env


class RosProcess:
    """``with RosProcess([...], env, log) as p:`` runs a child; leaving the block interrupts it."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: str | Path, cwd: str | Path | None = None):
        self.args = [str(a) for a in args]
        self.env = env
        self.log_path = Path(log_path)
        self.cwd = cwd
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "RosProcess":
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.args, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                     cwd=self.cwd, start_new_session=True)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if not self._log.closed:
            self._log.close()
        return self.proc.returncode

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        code = self.proc.wait(timeout=timeout)
        return code

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def running(self) -> bool:
        """True while running; an AssertionError with the log if it has exited (so waits fail fast)."""
        if not self.alive():
            raise AssertionError(f"{' '.join(self.args[:4])} ... exited with {self.proc and self.proc.returncode}:\n"
                                 f"{self.log()}")
        return True

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


def python_module(module: str, *ros_args: str) -> list[str]:
    """Command line that runs ``python -m module --ros-args ...`` (a node) with the test's interpreter."""
    return [sys.executable, "-m", module, *(["--ros-args", *ros_args] if ros_args else [])]


def uwdet(*args: str) -> list[str]:
    """Command line of ``uwdet ARGS`` with the test's interpreter."""
    return [sys.executable, "-m", "underwater_detection.cli", *args]


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, logs: Callable[[], str] = lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{logs()}")


class TestPeer:
    """An rclpy node in the test process (own context, given domain), spun in a thread."""

    __test__ = False  # not a pytest class

    def __init__(self, name: str, domain_id: int) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.lock = threading.Lock()
        self.received: dict[str, list[tuple[float, Any]]] = {}
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self.context.ok() and not self._stopping.is_set():
            self.executor.spin_once(timeout_sec=0.05)

    def subscribe(self, msg_type: Any, topic: str, qos: Any) -> None:
        self.received.setdefault(topic, [])

        def callback(msg: Any, topic: str = topic) -> None:
            with self.lock:
                self.received[topic].append((time.monotonic(), msg))

        self.node.create_subscription(msg_type, topic, callback, qos)

    def messages(self, topic: str) -> list[Any]:
        with self.lock:
            return [m for _, m in self.received.get(topic, [])]

    def timed(self, topic: str) -> list[tuple[float, Any]]:
        with self.lock:
            return list(self.received.get(topic, []))

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=2)
        self.executor.shutdown(timeout_sec=1)
        self.node.destroy_node()
        self.context.try_shutdown()
