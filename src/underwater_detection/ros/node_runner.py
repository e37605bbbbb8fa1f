"""``uwdet run``: start the detector and grasp-target nodes as child processes, like the launch file does.

``launch``/``launch_ros`` are not on PyPI, so ``ros2 launch underwater_detection underwater_detection.launch.py``
only works on a machine with ROS from apt. ``uwdet run`` starts the same two nodes with the same parameter
files and the same arguments (model, image_topic, camera_info_topic, compressed, k, e, input_size, namespace,
use_sim_time, params_file, grasp_params_file), so both ways give the same system; ``test_launch_and_run`` keeps their argument lists equal.

This module imports no rclpy (the children do): it builds command lines and supervises processes.
Ctrl-C (SIGINT) or SIGTERM is forwarded to both nodes as SIGINT (clean lifecycle shutdown), with SIGKILL
after ``STOP_TIMEOUT_S``; if one node exits on its own, the other is stopped and its exit code returned.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..models.shipped import DEFAULT_CHECKPOINT
from ..models.spec import parse_input_size

PACKAGE = "underwater_detection"
DETECTOR_MODULE = "underwater_detection.ros.detector_node"
GRASP_MODULE = "underwater_detection.ros.grasp_target_node"
DETECTOR_NAME = "detector_node"
GRASP_NAME = "grasp_target_node"
STOP_TIMEOUT_S = 10.0

# The launch arguments (launch/underwater_detection.launch.py declares the same names and defaults).
LAUNCH_ARGUMENTS: dict[str, tuple[str, str]] = {
    "model": (DEFAULT_CHECKPOINT, "checkpoint file for the detector"),
    "image_topic": ("/camera/image_raw", "camera topic (with compressed:=true, <image_topic>/compressed)"),
    "camera_info_topic": ("/camera/camera_info", "the camera's sensor_msgs/CameraInfo (grasp-target bearing)"),
    "compressed": ("false", "subscribe to sensor_msgs/CompressedImage instead of sensor_msgs/Image"),
    "k": ("4", "key-frame interval"),
    "e": ("1.0", "soft refinement coefficient"),
    "input_size": ("", "network input HxW, height first (e.g. 320x448); empty = the checkpoint's trained size"),
    "namespace": ("", "namespace of both nodes"),
    "use_sim_time": ("false", "use /clock (e.g. from uwdet bag-play --clock)"),
    "params_file": ("detector.yaml", "detector parameter file (default: the package's config/detector.yaml)"),
    "grasp_params_file": ("grasp_target.yaml", "grasp-target parameter file (default: config/grasp_target.yaml)"),
}


def config_dirs() -> list[Path]:
    """Where the default parameter files are looked up: the checkout, then installed share folders."""
    here = Path(__file__).resolve()
    dirs = [here.parents[3] / "config"] if len(here.parents) > 3 else []
    prefixes = [Path(sys.prefix)] + [Path(p) for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    dirs += [p / "share" / PACKAGE / "config" for p in prefixes]
    return dirs


def find_config(name: str) -> Path:
    """A parameter file: an existing path as given, else ``name`` in :func:`config_dirs`; clear error otherwise."""
    path = Path(name)
    if path.is_file():
        return path.resolve()
    for d in config_dirs():
        if (d / name).is_file():
            return (d / name).resolve()
    raise FileNotFoundError(f"parameter file {name} not found (looked in the working directory and "
                            f"{', '.join(str(d) for d in config_dirs())})")


def parse_bool(text: str | bool) -> bool:
    if isinstance(text, bool):
        return text
    key = str(text).strip().lower()
    if key in ("true", "1", "yes", "on"):
        return True
    if key in ("false", "0", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


@dataclass
class RunOptions:
    model: str = LAUNCH_ARGUMENTS["model"][0]
    image_topic: str = LAUNCH_ARGUMENTS["image_topic"][0]
    camera_info_topic: str = LAUNCH_ARGUMENTS["camera_info_topic"][0]
    compressed: bool = False
    k: int = 4
    e: float = 1.0
    input_size: str = ""
    namespace: str = ""
    use_sim_time: bool = False
    params_file: str = LAUNCH_ARGUMENTS["params_file"][0]
    grasp_params_file: str = LAUNCH_ARGUMENTS["grasp_params_file"][0]
    grasp: bool = True
    detector_overrides: tuple[str, ...] = ()  # extra NAME:=VALUE for the detector (e.g. the demo's)
    grasp_overrides: tuple[str, ...] = ()


def _ros_args(name: str, params_file: Path, namespace: str, overrides: Sequence[str]) -> list[str]:
    args = ["--ros-args", "-r", f"__node:={name}", "--params-file", str(params_file)]
    if namespace:
        args += ["-r", f"__ns:={namespace if namespace.startswith('/') else '/' + namespace}"]
    for item in overrides:
        args += ["-p", item]
    return args


def node_commands(opts: RunOptions, python: str = sys.executable) -> dict[str, list[str]]:
    """The command lines of the nodes (``python -m <module> --ros-args ...``), keyed by node name."""
    if opts.k < 1:
        raise ValueError(f"k must be >= 1, got {opts.k}")
    if not 0.0 <= opts.e <= 1.0:
        raise ValueError(f"e must be in [0, 1], got {opts.e}")
    parse_input_size(opts.input_size)  # the form only; whether the model's anchors tile it is the node's check
    # '' quoted: ROS reads -p values as YAML, where a bare empty value is null, not the empty string
    input_size = opts.input_size.strip() or "''"
    sim = f"use_sim_time:={'true' if opts.use_sim_time else 'false'}"
    detector = [f"model_path:={opts.model}", f"image_topic:={opts.image_topic}",
                f"image_transport:={'compressed' if opts.compressed else 'raw'}", f"key_interval:={int(opts.k)}",
                f"soft_coefficient:={float(opts.e)}", f"input_size:={input_size}", sim, *opts.detector_overrides]
    commands = {DETECTOR_NAME: [python, "-m", DETECTOR_MODULE,
                                *_ros_args(DETECTOR_NAME, find_config(opts.params_file), opts.namespace, detector)]}
    if opts.grasp:
        commands[GRASP_NAME] = [python, "-m", GRASP_MODULE,
                                *_ros_args(GRASP_NAME, find_config(opts.grasp_params_file), opts.namespace,
                                           [sim, f"camera_info_topic:={opts.camera_info_topic}",
                                            *opts.grasp_overrides])]
    return commands


class NodeGroup:
    """Child processes started together and stopped together."""

    def __init__(self, commands: dict[str, list[str]], env: dict[str, str] | None = None,
                 log_dir: Path | None = None) -> None:
        self.commands = commands
        self.env = env
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen] = {}
        self._logs: list = []

    def start(self) -> "NodeGroup":
        for name, cmd in self.commands.items():
            out = None
            if self.log_dir is not None:
                self.log_dir.mkdir(parents=True, exist_ok=True)
                out = open(self.log_dir / f"{name}.log", "w")
                self._logs.append(out)
            # own session: a Ctrl-C in the terminal reaches us once, and we forward it exactly once
            self.procs[name] = subprocess.Popen(cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT if out else None,
                                                start_new_session=True)
        return self

    def exited(self) -> dict[str, int]:
        return {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> dict[str, int]:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        deadline = time.monotonic() + timeout
        for p in self.procs.values():
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
        for f in self._logs:
            f.close()
        return {n: p.returncode for n, p in self.procs.items()}

    def __enter__(self) -> "NodeGroup":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_main(args: argparse.Namespace) -> int:
    """``uwdet run``: start the nodes, wait until one exits or we are interrupted, stop both."""
    opts = RunOptions(model=args.model, image_topic=args.image_topic, camera_info_topic=args.camera_info_topic,
                      compressed=parse_bool(args.compressed),
                      k=args.k, e=args.e, input_size=args.input_size, namespace=args.namespace,
                      use_sim_time=parse_bool(args.use_sim_time),
                      params_file=args.params_file, grasp_params_file=args.grasp_params_file, grasp=not args.no_grasp)
    commands = node_commands(opts)
    if args.print_commands:
        for cmd in commands.values():
            print(" ".join(cmd))
        return 0
    stop = {"requested": False}

    def _on_signal(signum: int, frame: object) -> None:
        stop["requested"] = True

    old = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    group = NodeGroup(commands)
    try:
        group.start()
        print(f"uwdet run: started {', '.join(f'{n} (pid {p.pid})' for n, p in group.procs.items())}; Ctrl-C stops",
              flush=True)
        while not stop["requested"] and not group.exited():
            time.sleep(0.1)
        early = group.exited()
    finally:
        codes = group.stop()
        for s, handler in old.items():
            signal.signal(s, handler)
    if early and not stop["requested"]:
        name, code = next(iter(early.items()))
        print(f"uwdet run: {name} exited with {code}; stopped the others", file=sys.stderr)
        return code if code else 1
    return 0 if all(c in (0, -signal.SIGINT, 130) for c in codes.values()) else 1
