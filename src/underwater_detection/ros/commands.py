"""``uwdet run`` and ``uwdet demo``: argument parsing (``register`` is called by ``cli.build_parser``).

Importable without ROS: nothing here (or in ``node_runner`` / ``demo``) imports rclpy; the nodes they start do.
"""
from __future__ import annotations

import argparse

from ..cli_types import positive_int
from ..models.shipped import DEFAULT_CHECKPOINT
from .node_runner import LAUNCH_ARGUMENTS


def _user_error(message: str) -> Exception:
    from ..cli import UserError

    return UserError(message)


def cmd_run(args: argparse.Namespace) -> int:
    from .node_runner import run_main

    try:
        return run_main(args)
    except (ValueError, FileNotFoundError) as exc:
        raise _user_error(str(exc)) from exc


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import DemoError, demo_main

    try:
        return demo_main(args)
    except (DemoError, ValueError, FileNotFoundError) as exc:
        raise _user_error(str(exc)) from exc


def register(sub: argparse._SubParsersAction) -> None:
    d = {name: default for name, (default, _) in LAUNCH_ARGUMENTS.items()}
    h = {name: text for name, (_, text) in LAUNCH_ARGUMENTS.items()}
    p = sub.add_parser("run", help="start the detector + grasp-target nodes (what the launch file starts)")
    p.add_argument("--model", default=d["model"], help=h["model"])
    p.add_argument("--image-topic", default=d["image_topic"], help=h["image_topic"])
    p.add_argument("--camera-info-topic", default=d["camera_info_topic"], help=h["camera_info_topic"])
    p.add_argument("--compressed", default=d["compressed"], help=h["compressed"] + " (true/false)")
    p.add_argument("-k", type=positive_int, default=int(d["k"]), help=h["k"])
    p.add_argument("-e", type=float, default=float(d["e"]), help=h["e"])
    p.add_argument("--input-size", default=d["input_size"], help=h["input_size"])
    p.add_argument("--namespace", default=d["namespace"], help=h["namespace"])
    p.add_argument("--use-sim-time", default=d["use_sim_time"], help=h["use_sim_time"] + " (true/false)")
    p.add_argument("--params-file", default=d["params_file"], help=h["params_file"])
    p.add_argument("--grasp-params-file", default=d["grasp_params_file"], help=h["grasp_params_file"])
    p.add_argument("--no-grasp", action="store_true", help="start the detector only")
    p.add_argument("--print-commands", action="store_true", help="print the node command lines and exit")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="end-to-end demo over DDS: synthetic bag -> nodes -> metrics, video, PNG")
    p.add_argument("--out", default="out/demo", help="output folder (default out/demo; replaced)")
    p.add_argument("--model", default=None,
                   help=f"checkpoint (default {DEFAULT_CHECKPOINT}, else a random-weights one, said loudly)")
    p.add_argument("--frames", type=positive_int, default=60, help="frames of the synthetic bag (10 fps)")
    p.add_argument("--size", default="512x384", help="frame size WxH")
    p.add_argument("--preset", default="clear", choices=("clear", "turbid", "dark"), help="water preset")
    p.add_argument("--rate", type=float, default=1.0, help="replay speed factor")
    p.add_argument("-k", type=positive_int, default=4, help="key-frame interval")
    p.add_argument("-e", type=float, default=1.0, help="soft coefficient")
    p.add_argument("--image-qos", choices=("reliable", "best_effort"), default="reliable",
                   help="reliability of the image stream (player and detector; see ros/demo.py for why reliable)")
    p.add_argument("--timeout", type=float, default=180.0, help="give up if the nodes are not up after this (s)")
    p.set_defaults(func=cmd_demo)
