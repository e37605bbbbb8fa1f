"""``uwdet bag-eval`` / ``bag-play`` / ``bag-record``: argument parsing and wiring (``register`` is called by
``cli.build_parser``). Heavy imports (torch, rclpy) happen inside the commands, so ``uwdet --help`` stays fast
and works without ROS; bag-play and bag-record need ROS 2 (rclpy) and say so clearly if it is missing."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cli_types import input_size_hw, positive_int
from ..models.shipped import DEFAULT_CHECKPOINT, VEHICLE_MODEL

DEFAULT_MODEL = Path(DEFAULT_CHECKPOINT)


def _user_error(message: str) -> Exception:
    from ..cli import UserError

    return UserError(message)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from exc
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def check_model_path(path: Path) -> Path:
    if not path.is_file():
        hint = (f" That is the default vehicle model ({VEHICLE_MODEL}): pass --model with another checkpoint (e.g. "
                f"one of models/*.pt), or train it (scripts/train_shipped_models.sh {VEHICLE_MODEL})"
                if path == DEFAULT_MODEL else "")
        raise _user_error(f"checkpoint not found: {path}.{hint}")
    return path


def cmd_bag_eval(args: argparse.Namespace) -> int:
    from ..engine.runtime import configure_cpu_runtime
    from ..models.checkpoint import CheckpointError
    from .evaluate import BagEvalOptions, format_report, run_bag_eval, write_report_json
    from .reader import BagError

    configure_cpu_runtime(args.threads)
    opts = BagEvalOptions(
        bag=Path(args.bag), checkpoint=check_model_path(Path(args.model)), image_topic=args.image_topic,
        gt_topic=args.gt_topic, gt_coco=None if args.gt_coco is None else Path(args.gt_coco), gt_video=args.gt_video,
        pace=args.pace, rate=args.rate, key_interval=args.k, soft_coefficient=args.e,
        score_threshold=args.score_threshold, device=args.device, input_size=args.input_size,
        out_bag=None if args.out is None else Path(args.out), out_topic=args.out_topic, overwrite=args.overwrite,
        max_frames=args.max_frames,
    )

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty() and (done % 10 == 0 or done == total):
            print(f"\r  {done}/{total} frames", end="" if done < total else "\n", file=sys.stderr, flush=True)

    try:
        report = run_bag_eval(opts, progress=progress)
    except (BagError, CheckpointError, ValueError, FileNotFoundError) as exc:
        raise _user_error(str(exc)) from exc
    print(format_report(report))
    if report.out_bag:
        print(f"wrote {report.out_bag} ({report.frames} Detection2DArray messages on {opts.out_topic})")
    if args.json:
        print(f"wrote {write_report_json(report, args.json)}")
    return 0


def _run_ros_command(command: str, module: str, entry: str, args: argparse.Namespace) -> int:
    """Import an rclpy-based command lazily (``uwdet`` itself must work without ROS) and map its errors."""
    import importlib

    from .reader import BagError

    try:
        main = getattr(importlib.import_module(f"..ros.{module}", __package__), entry)
    except ImportError as exc:
        raise _user_error(f"{command} needs ROS 2 (rclpy) in this Python: {exc}. Run `make setup`.") from exc
    try:
        return main(args)
    except BagError as exc:
        raise _user_error(str(exc)) from exc


def cmd_bag_play(args: argparse.Namespace) -> int:
    return _run_ros_command("bag-play", "bag_player", "play_main", args)


def cmd_bag_record(args: argparse.Namespace) -> int:
    return _run_ros_command("bag-record", "bag_recorder", "record_main", args)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bag-eval", help="run a checkpoint over a rosbag2 camera topic: detections bag, mAP, latency")
    p.add_argument("bag", help="rosbag2 folder (MCAP or sqlite3)")
    p.add_argument("--model", default=str(DEFAULT_MODEL), help=f"checkpoint (default {DEFAULT_MODEL})")
    p.add_argument("--image-topic", default="/camera/image_raw", help="sensor_msgs/Image or CompressedImage topic")
    gt = p.add_mutually_exclusive_group()
    gt.add_argument("--gt-topic", default=None,
                    help="vision_msgs/Detection2DArray ground-truth topic (default /ground_truth if the bag has it)")
    gt.add_argument("--gt-coco", default=None, help="COCO JSON (or folder with annotations.json) as ground truth")
    p.add_argument("--gt-video", default=None, help="with --gt-coco: the video of the file that the bag shows")
    p.add_argument("--pace", choices=("recorded", "fast"), default="fast",
                   help="release frames at their recorded times, or as fast as possible (default)")
    p.add_argument("--rate", type=_positive_float, default=1.0, help="with --pace recorded: speed factor")
    p.add_argument("-k", type=positive_int, default=None, help="key-frame interval (default: the model's)")
    p.add_argument("-e", type=float, default=None, help="soft coefficient (default: the model's)")
    p.add_argument("--score-threshold", type=float, default=None, help="override the model's score threshold")
    p.add_argument("--input-size", type=input_size_hw, default=None,
                   help="run the network at HxW (height first), as the node's input_size parameter does "
                        "(default: the size the checkpoint was trained at)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=positive_int, default=2, help="torch CPU threads")
    p.add_argument("--out", default=None, help="write the detections to this new bag folder (MCAP)")
    p.add_argument("--out-topic", default="/detector_node/detections", help="topic of the detections in --out")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out bag")
    p.add_argument("--max-frames", type=positive_int, default=None)
    p.add_argument("--json", default=None, help="write the report (and per-frame figures) to this JSON file")
    p.set_defaults(func=cmd_bag_eval)

    p = sub.add_parser("bag-play", help="publish a bag's messages over ROS 2 with recorded timing (needs rclpy)")
    p.add_argument("bag")
    p.add_argument("--topics", nargs="*", default=None, help="only these topics (default: all)")
    p.add_argument("--rate", type=_positive_float, default=1.0, help="speed factor (0.5 = half speed)")
    p.add_argument("--loop", action="store_true", help="start again at the end (Ctrl-C stops)")
    p.add_argument("--clock", type=float, default=0.0, metavar="HZ",
                   help="publish /clock at this rate for use_sim_time nodes (0: off)")
    p.add_argument("--qos", choices=("reliable", "best_effort"), default="reliable", help="publisher reliability")
    p.add_argument("--depth", type=positive_int, default=10, help="publisher history depth")
    p.add_argument("--start-delay", type=float, default=0.5,
                   help="seconds to wait after creating publishers, so subscribers can match (default 0.5)")
    p.add_argument("--wait-for-subscribers", type=int, default=0, metavar="N",
                   help="before starting, wait until every played topic has N subscribers (0: don't wait)")
    p.add_argument("--wait-timeout", type=float, default=30.0, help="seconds --wait-for-subscribers waits at most")
    p.add_argument("--remap", nargs="*", default=[], metavar="FROM:=TO", help="publish topic FROM as TO")
    p.add_argument("--publish-log", default=None,
                   help="write every publish's wall-clock time to this JSON-lines file (latency measurements)")
    p.add_argument("--linger", type=float, default=1.0,
                   help="seconds to stay up after the last message so reliable subscribers receive it (default 1)")
    p.set_defaults(func=cmd_bag_play)

    p = sub.add_parser("bag-record", help="record ROS 2 topics into a rosbag2 MCAP folder (needs rclpy)")
    p.add_argument("out", help="new bag folder")
    p.add_argument("--topics", nargs="+", required=True, help="topics to record (types are discovered)")
    p.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: until Ctrl-C)")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--qos", choices=("auto", "reliable", "best_effort"), default="auto",
                   help="subscription reliability; auto matches what the publishers offer")
    p.add_argument("--status-file", default=None,
                   help="JSON file rewritten whenever a topic gets subscribed (lets scripts start publishers after)")
    p.set_defaults(func=cmd_bag_record)
