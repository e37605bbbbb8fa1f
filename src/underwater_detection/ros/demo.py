"""``uwdet demo`` (``make demo``): the whole system on a synthetic dive, over real DDS, in a few minutes.

1. synthesise a short underwater bag (``uwdet synth``: camera images, CameraInfo, ground truth + COCO file);
2. take the vehicle model (``models/tdrnet_lite_tcb_480_videos.pt``, named in ``models.shipped``), or -- before trained
   weights ship -- write a random-weights checkpoint and say so loudly (every figure is then meaningless, only
   the plumbing is shown);
3. start the detector node and the grasp-target node (the same command lines as ``uwdet run``), a recorder
   (``uwdet bag-record``) and the player (``uwdet bag-play``) as separate processes on a fresh
   ``ROS_DOMAIN_ID`` with localhost-only discovery;
4. score the recording (``bags.replay_analysis``): mAP, output FPS, latency p50/p95, dropped frames, the chosen
   targets; write an annotated video and a PNG summary (``bags.replay_render``) into ``--out``.

This module imports no rclpy: it only starts and supervises processes, then reads bags.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ..models.shipped import DEFAULT_CHECKPOINT, VEHICLE_MODEL
from .node_runner import NodeGroup, RunOptions, node_commands

MARKER = ".uwdet-demo"
IMAGE_TOPIC = "/camera/image_raw"
INFO_TOPIC = "/camera/camera_info"
DETECTIONS = "/detector_node/detections"
GRASP = "/grasp_target_node"
RECORDED_TOPICS = (DETECTIONS, "/detector_node/label_info", f"{GRASP}/target", f"{GRASP}/target_point",
                   f"{GRASP}/target_bearing", f"{GRASP}/target_active", "/diagnostics")
READY_TOPICS = RECORDED_TOPICS[:-1]  # /diagnostics appears a second after activation; not worth waiting for
DEFAULT_MODEL = Path(DEFAULT_CHECKPOINT)
UNTRAINED_GRASP_MIN_SCORE = 0.3  # = the detector's default score threshold


class DemoError(RuntimeError):
    """The demo could not run (a node died, nothing came up in time); the message names the log to read."""


def _prepare_out(out: Path) -> None:
    if out.exists():
        if out.resolve() in (Path.cwd().resolve(), *Path.cwd().resolve().parents):
            raise DemoError(f"refusing to use {out} as the demo folder (it holds the working directory)")
        if any(out.iterdir()) and not (out / MARKER).exists():
            raise DemoError(f"{out} exists and was not written by uwdet demo; choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("written by uwdet demo; replaced on every run\n")


def _banner(lines: list[str]) -> None:
    width = max(len(x) for x in lines) + 6
    print("!" * width)
    for line in lines:
        print(f"!! {line}")
    print("!" * width, flush=True)


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def _resolve_model(args: argparse.Namespace, out: Path) -> tuple[Path, bool]:
    from ..models.checkpoint import read_checkpoint
    from ..models.random_weights import is_untrained, write_random_checkpoint

    if args.model is not None:
        path = Path(args.model)
        if not path.is_file():
            raise DemoError(f"checkpoint not found: {path}")
    elif DEFAULT_MODEL.is_file():
        path = DEFAULT_MODEL
    else:
        path = write_random_checkpoint(out / f"untrained_{VEHICLE_MODEL}.pt", VEHICLE_MODEL, spread_scores=30.0)
    untrained = is_untrained(read_checkpoint(path).provenance)
    if untrained:
        _banner([f"UNTRAINED WEIGHTS: {path} holds random weights"
                 + ("" if args.model or DEFAULT_MODEL.is_file() else f" ({DEFAULT_MODEL} does not exist yet)"),
                 "Every accuracy figure below is meaningless; the demo shows the plumbing only",
                 "(DDS, nodes, timing, target selection). Pass --model with a trained checkpoint (models/*.pt),",
                 f"or train {VEHICLE_MODEL} (scripts/train_shipped_models.sh {VEHICLE_MODEL})."])
    return path, untrained


def _wait_ready(status: Path, group: NodeGroup, recorder: subprocess.Popen, timeout: float, logs: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dead = group.exited()
        if dead:
            name, code = next(iter(dead.items()))
            raise DemoError(f"{name} exited with {code} during start-up; its log ({logs / (name + '.log')}):\n"
                            + _tail(logs / f"{name}.log"))
        if recorder.poll() is not None:
            raise DemoError(f"the recorder exited with {recorder.returncode}:\n" + _tail(logs / "recorder.log"))
        if status.exists():
            subscribed = set(json.loads(status.read_text())["subscribed"])
            if set(READY_TOPICS) <= subscribed:
                return
        time.sleep(0.1)
    missing = set(READY_TOPICS) - (set(json.loads(status.read_text())["subscribed"]) if status.exists() else set())
    raise DemoError(f"nodes not up after {timeout:.0f} s (no publisher on {sorted(missing)}); see the logs in {logs}:\n"
                    + _tail(logs / "detector_node.log"))


def _stop(proc: subprocess.Popen, timeout: float = 10.0) -> int:
    if proc.poll() is None:
        proc.send_signal(2)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    return proc.returncode


def demo_main(args: argparse.Namespace) -> int:
    from ..bags.ground_truth import ground_truth_from_coco
    from ..bags.replay_analysis import analyze_replay
    from ..bags.replay_render import write_summary_png, write_video
    from ..cli import main as cli_main
    from ..models.checkpoint import read_checkpoint

    t_start = time.monotonic()
    out = Path(args.out)
    _prepare_out(out)
    logs = out / "logs"
    logs.mkdir()

    print(f"[1/4] synthesising a {args.frames}-frame underwater bag ({args.size}, {args.preset} water) ...", flush=True)
    if cli_main(["synth", "--out", str(out / "data"), "--split", "test", "--sequences", "1", "--frames",
                 str(args.frames), "--size", args.size, "--formats", "bag", "coco", "--preset", args.preset]) != 0:
        raise DemoError("uwdet synth failed")
    bag = next((out / "data" / "bags").iterdir())
    model, untrained = _resolve_model(args, out)
    ckpt = read_checkpoint(model)
    class_names = tuple(ckpt.class_names)

    domain = random.SystemRandom().randint(1, 100)
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
           "PYTHONUNBUFFERED": "1", "RCUTILS_COLORIZED_OUTPUT": "0"}
    grasp_overrides = (f"min_score:={UNTRAINED_GRASP_MIN_SCORE}",) if untrained else ()
    if untrained:
        print(f"      (untrained weights: grasp min_score lowered to {UNTRAINED_GRASP_MIN_SCORE} so that target "
              "selection has candidates; the targets are as meaningless as the detections)")
    # reliable by default: over loopback, best-effort images larger than Fast DDS's 0.5 MB shared-memory segment
    # travel as UDP fragments, and a loaded CPU loses fragments -> whole frames vanish before the node sees them
    detector_overrides = (f"qos_reliability:={args.image_qos}",)
    commands = node_commands(RunOptions(model=str(model), k=args.k, e=args.e, detector_overrides=detector_overrides,
                                        grasp_overrides=grasp_overrides))
    py = sys.executable
    status = logs / "recorder_status.json"
    recorder_cmd = [py, "-m", "underwater_detection.cli", "bag-record", str(out / "recorded"), "--topics",
                    *RECORDED_TOPICS, "--status-file", str(status)]
    player_cmd = [py, "-m", "underwater_detection.cli", "bag-play", str(bag), "--topics", IMAGE_TOPIC, INFO_TOPIC,
                  "--rate", str(args.rate), "--qos", args.image_qos, "--wait-for-subscribers", "1", "--wait-timeout", "60",
                  "--publish-log", str(logs / "published.jsonl")]

    print(f"[2/4] starting detector_node, grasp_target_node and the recorder (ROS_DOMAIN_ID={domain}, localhost) ...",
          flush=True)
    group = NodeGroup(commands, env=env, log_dir=logs)
    rec_log = open(logs / "recorder.log", "w")
    recorder = None
    try:
        group.start()
        recorder = subprocess.Popen(recorder_cmd, env=env, stdout=rec_log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        _wait_ready(status, group, recorder, args.timeout, logs)
        print(f"      nodes up after {time.monotonic() - t_start:.0f} s; [3/4] playing {bag.name} at rate "
              f"{args.rate:g} ...", flush=True)
        with open(logs / "player.log", "w") as play_log:
            player = subprocess.run(player_cmd, env=env, stdout=play_log, stderr=subprocess.STDOUT,
                                    timeout=args.frames / 10.0 / args.rate + 120)
        if player.returncode != 0:
            raise DemoError(f"bag-play failed ({player.returncode}):\n" + _tail(logs / "player.log"))
        time.sleep(1.0 + 0.7)  # last detections + the grasp node's 1 s target timeout reach the recorder
    finally:
        if recorder is not None:
            _stop(recorder)
        rec_log.close()
        group.stop()

    print("[4/4] scoring the recording, writing the video and the summary ...", flush=True)
    truth = ground_truth_from_coco(out / "data", class_names, bag_name=bag.name)
    analysis = analyze_replay(bag, out / "recorded", class_names, publish_log=logs / "published.jsonl",
                              ground_truth=truth)
    video, sample = write_video(bag, analysis, out / "demo.mp4", truth, untrained)
    k_text = f"k={args.k} e={args.e:g}" if ckpt.spec.is_temporal else "per-frame model"
    title = (f"uwdet demo: {ckpt.spec.name} ({k_text}){' - UNTRAINED WEIGHTS' if untrained else ''}; "
             f"mAP@0.5 {_pct(analysis.voc_map50_all)}, p50 {analysis.latency_percentile(50):.0f} ms, "
             f"{analysis.output_fps:.1f} FPS out, {analysis.dropped} dropped")
    png = write_summary_png(analysis, sample, out / "summary.png", title, truth)
    summary = {"model": str(model), "model_name": ckpt.spec.name, "untrained": untrained, "k": args.k, "e": args.e,
               "bag": str(bag), "ros_domain_id": domain, "rate": args.rate, **analysis.to_dict(),
               "video": str(video), "summary_png": str(png), "wall_s": round(time.monotonic() - t_start, 1)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(format_summary(summary))
    print(f"wrote {video}, {png}, {out / 'summary.json'} (recording: {out / 'recorded'}, logs: {logs})")
    return 0


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f} %"


def format_summary(s: dict) -> str:
    lat = s["latency_ms"]
    lines = [
        "",
        f"=== uwdet demo: {s['model_name']} ({s['model']})" + ("  ** UNTRAINED WEIGHTS **" if s["untrained"] else ""),
        f"frames played {s['frames']} | processed {s['processed']} | dropped {s['dropped']}",
        f"mAP@0.5 {_pct(s['voc_map50_all_frames'])} over all frames (dropped = nothing detected), "
        f"{_pct(s['voc_map50_processed_frames'])} over processed frames; COCO AP {_pct(s['coco_ap_all_frames'])}",
        f"latency p50 {lat['p50'] or float('nan'):.1f} ms, p95 {lat['p95'] or float('nan'):.1f} ms "
        "(image published -> detections received, wall clock)",
        f"output {s['output_fps'] or float('nan'):.1f} FPS (input {s['input_fps'] or float('nan'):.1f} FPS), "
        f"{s['detections_per_processed_frame'] or 0:.1f} detections per frame",
    ]
    final = s.get("detector_diagnostics") or {}
    playing = s.get("detector_diagnostics_while_playing") or {}
    if final or playing:
        # Rates and the key-frame ratio from the node's last report during playback (its window then covers the
        # replay, not the idle end); totals and the device from its last report. Not its latency: the node
        # measures that from the image stamp, which is the bag's recording time here.
        def window(k: str) -> bool:
            return any(w in k.lower() for w in ("rate", "key_frame_ratio"))
        keys = [k for k in playing if window(k)] + [
            k for k in final if not window(k) and any(w in k.lower() for w in ("drop", "key_interval", "key_frames", "device"))]
        values = {**final, **{k: v for k, v in playing.items() if window(k)}}
        lines.append("detector diagnostics: " + ", ".join(f"{k}={values[k]}" for k in keys[:8]))
    runs = s["target_runs"]
    if runs:
        lines.append(f"grasp targets ({s['frames_with_target']} frames with a target, {s['target_switches']} switches):")
        for r in runs[:10]:
            lines.append(f"  track #{r['track_id']} {r['class_name']}: {r['messages']} messages over "
                         f"{(r['last_stamp_ns'] - r['first_stamp_ns']) / 1e9:.1f} s")
        if len(runs) > 10:
            lines.append(f"  ... {len(runs) - 10} more")
    else:
        lines.append("grasp targets: none chosen")
    trans = s["target_active_transitions"]
    if trans:
        lines.append("target_active: " + " -> ".join("true" if t["active"] else "false" for t in trans))
    if s["untrained"]:
        lines.append("** the weights are UNTRAINED: the accuracy and the targets above are meaningless **")
    return "\n".join(lines)
