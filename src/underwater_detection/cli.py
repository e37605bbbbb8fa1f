"""``uwdet``: the project's command line. One sub-command per job; each lives in its own function.

Later capabilities (synth, train, eval, bag-eval, bag-play, run, demo) register here the same way.
Errors the user can fix (bad file, bad option) print one ``uwdet: error: ...`` line and exit 2, no traceback.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Sequence

from . import __version__
from .cli_types import input_size_hw, positive_int


class UserError(Exception):
    """An error caused by the user's input; printed without a traceback."""


def _json_safe(value: object) -> object:
    """Strict JSON for model cards: NaN/inf become null, anything exotic its string form."""
    import math

    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return _json_safe(item())
        except (ValueError, RuntimeError):
            pass
    return str(value)




def cmd_bench_models(args: argparse.Namespace) -> int:
    from .engine import benchmark_models as bm

    models = bm.DEFAULT_MODELS if args.models is None else tuple(args.models)
    backbones = bm.DEFAULT_BACKBONES if args.backbones is None else tuple(args.backbones)
    temporal = bm.DEFAULT_TEMPORAL if args.temporal is None else tuple(args.temporal)
    try:
        rows = bm.run_benchmark(
            models, backbones, size=args.size, threads=args.threads, warmup=args.warmup, repeats=args.repeats,
            tune_allocator=not args.no_allocator_tuning, temporal=temporal, key_intervals=tuple(args.k),
            sequence_length=args.sequence_length,
            progress=lambda msg: print(f"  timing {msg} ...", file=sys.stderr, flush=True),
        )
    except (ValueError, FileNotFoundError, RuntimeError) as exc:  # RuntimeError: e.g. effnet package missing
        raise UserError(str(exc)) from exc
    size = (f"{args.size[0]}x{args.size[1]} (NAME@HxW entries at their own)" if args.size
            else "each config's own input size or NAME@HxW (column 'input HxW')")
    print(f"bench-models: {size}, batch 1, {args.threads} threads, "
          f"median of {args.repeats} after {args.warmup} warm-up, "
          f"allocator tuning {'off' if args.no_allocator_tuning else 'on'}")
    print(bm.format_table(rows))
    if args.json:
        print(f"wrote {bm.write_json(args.json, rows, args.threads)}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from .models.spec import available_model_specs, load_model_spec

    status = 0
    for name in available_model_specs():
        try:
            spec = load_model_spec(name)
        except (ValueError, FileNotFoundError) as exc:  # one broken YAML must not hide the others
            print(f"{name:<20} INVALID: {exc}")
            status = 1
            continue
        print(f"{name:<20} {spec.architecture:<10} backbone={spec.backbone['name']:<20} {spec.description}")
    return status


def cmd_inspect(args: argparse.Namespace) -> int:
    import json

    from .models.checkpoint import CheckpointError, read_checkpoint

    try:
        ckpt = read_checkpoint(args.checkpoint)
    except CheckpointError as exc:
        raise UserError(str(exc)) from exc
    print(json.dumps(_json_safe({
        "spec": ckpt.spec.to_dict(), "class_names": ckpt.class_names, "preprocess": ckpt.preprocess,
        "provenance": ckpt.provenance, "metrics": ckpt.metrics,
        "tensors": len(ckpt.state_dict), "parameters": int(sum(v.numel() for v in ckpt.state_dict.values())),
    }), indent=2, allow_nan=False))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .engine.train_config import load_train_config

    try:
        cfg = load_train_config(args.config)
        if args.iterations is not None:
            cfg.solver.iterations = args.iterations
            cfg.solver.steps = [s for s in cfg.solver.steps if s < args.iterations]
        if args.output_dir:
            cfg.output_dir = args.output_dir
        if args.workers is not None:
            cfg.data.workers = args.workers
        if args.threads is not None:
            from .engine.runtime import configure_cpu_runtime

            configure_cpu_runtime(args.threads, tune_allocator=False)
        from .engine.trainer import train

        path = train(cfg, device=args.device, resume=args.resume, show_progress=not args.no_progress,
                     overwrite=args.overwrite)
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        raise UserError(str(exc)) from exc
    if path is not None:
        print(f"wrote {path}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .data.datasets import load_dataset
    from .engine import evaluation as ev
    from .engine.runtime import configure_cpu_runtime
    from .engine.temporal import TemporalDetector
    from .models.checkpoint import CheckpointError
    from .models.spec import aspect_change_warning

    configure_cpu_runtime(args.threads)
    try:
        options: dict = {"tracking": False}
        if args.k is not None:
            options["key_interval"] = args.k
        if args.e is not None:
            options["soft_coefficient"] = args.e
        detector = TemporalDetector.from_checkpoint(args.checkpoint, device=args.device, input_size=args.input_size,
                                                    **options)
        dataset = load_dataset(args.data, class_names=list(detector.class_names))
    except (CheckpointError, ValueError, FileNotFoundError) as exc:
        raise UserError(str(exc)) from exc
    warning = aspect_change_warning(detector.trained_input_size, detector.spec.input_size)
    if warning:
        print(f"uwdet eval: warning: {warning}", file=sys.stderr)
    # The same per-image cap as `uwdet results`, so the two commands' figures for one file agree to the digit.
    detector.postprocess_config = detector.postprocess_config.with_max_detections(args.max_detections)
    stamp_fps = args.fps if args.fps is not None else (dataset.frame_rate() or 10.0)
    out = Path(args.out)
    name = detector.spec.name
    if args.sweep:
        results = ev.sweep(detector, dataset, args.sweep_k, args.sweep_e, stamp_fps, args.max_frames,
                           progress=lambda m: print(f"  evaluating {m} ...", file=sys.stderr, flush=True))
    else:
        results = [ev.evaluate(detector, dataset, stamp_fps, args.max_frames)]
    h_in, w_in = detector.spec.input_size
    trained = detector.trained_input_size
    at = f"{h_in}x{w_in}" + ("" if trained == (h_in, w_in) else f", trained at {trained[0]}x{trained[1]}")
    print(f"eval {name} at {at} (HxW) on {args.data}: {results[0].frames} frames")
    print("| k | e | mAP@0.5 | mAP@0.5 (11pt) | COCO AP | AP50 | AP75 | APs | APm | APl | fwd FPS | e2e ms |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        c = r.coco
        print(f"| {r.key_interval or '-'} | {r.soft_coefficient if r.soft_coefficient is not None else '-'} | "
              f"{100 * r.voc_map50:.1f} | {100 * r.voc_map50_11pt:.1f} | {100 * c['AP']:.1f} | {100 * c['AP50']:.1f} | "
              f"{100 * c['AP75']:.1f} | {100 * c['APs']:.1f} | {100 * c['APm']:.1f} | {100 * c['APl']:.1f} | "
              f"{r.forward_fps:.1f} | {r.end_to_end_ms_median:.1f} |")
    best = results[0]
    print("AP@0.5 per class: " + ", ".join(f"{n} {100 * a:.1f}" for n, a in best.ap50_per_class.items()))
    if best.map50_by_condition:
        setting = f" (k={best.key_interval}, e={best.soft_coefficient})" if best.key_interval is not None else ""
        print(f"mAP@0.5 per water condition{setting}: "
              + ", ".join(f"{c} {100 * m:.1f} ({best.condition_videos[c]} videos)"
                          for c, m in best.map50_by_condition.items()))
    written = [ev.write_json(out / "eval.json", {
        "checkpoint": str(args.checkpoint), "data": str(args.data), "model": name,
        "input_size": [h_in, w_in], "trained_input_size": list(trained), "max_detections": args.max_detections,
        "results": [r.to_dict() for r in results]})]
    label = name if trained == (h_in, w_in) else f"{name} at {h_in}x{w_in}"
    written.append(ev.plot_pr_curves(best, detector.class_names, out / "pr_curves.png", f"{label} PR curves"))
    if args.sweep and detector.is_temporal:
        written.append(ev.plot_sweep(results, out / "sweep_k_e.png", f"{label}: mAP vs forward FPS"))
    for path in written:
        print(f"wrote {path}")
    return 0


def cmd_results(args: argparse.Namespace) -> int:
    from .data.datasets import load_dataset
    from .engine import benchmark_results as br
    from .engine.runtime import configure_cpu_runtime
    from .engine.track_motion import format_motion, motion_or_none
    from .models.checkpoint import CheckpointError, read_checkpoint

    configure_cpu_runtime(args.threads)
    models_dir = Path(args.models_dir)
    names = args.models if args.models is not None else list(br.DEFAULT_MODELS)
    paths = [models_dir / f"{name}.pt" for name in names]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing and (args.models is not None or len(missing) == len(paths)):
        raise UserError(f"no checkpoint {', '.join(missing)}; train them first (make train-shipped, models/README.md)")
    if missing:  # the default set, partly trained: measure what exists, the claims say what was not measured
        print(f"uwdet results: warning: not evaluated (no checkpoint): {', '.join(missing)}", file=sys.stderr)
        paths = [p for p in paths if p.is_file()]
    try:
        class_names = read_checkpoint(paths[0]).class_names
        dataset = load_dataset(args.data, class_names=list(class_names))
    except (CheckpointError, ValueError, FileNotFoundError) as exc:
        raise UserError(str(exc)) from exc
    if args.sequences is not None:
        dataset = br.SequenceSubset(dataset, args.sequences)
    if args.frame_step > 1:
        dataset = br.FrameStep(dataset, args.frame_step)
    gaps = sorted({k - 1 for k in args.k if k > 1})
    motion = motion_or_none(dataset, gaps) if gaps else None  # None for data without track ids (VOC)
    data_fps = dataset.frame_rate()
    try:
        stamp_fps = args.fps if args.fps is not None else (data_fps or 10.0)
        res = br.run_benchmark(paths, dataset, args.k, args.e, device=args.device, fps=stamp_fps,
                               data_name=str(args.data), max_detections=args.max_detections)
    except (CheckpointError, ValueError) as exc:
        raise UserError(str(exc)) from exc
    res.motion, res.data_fps = motion, data_fps
    print(f"results on {args.data} ({res.rows[0].result.frames} frames per row, {args.threads} threads, "
          f"{res.wall_s / 60:.1f} min)")
    print(br.format_table(res))
    print()
    print(br.format_claims(res))
    if res.condition_videos:
        print("\nmAP@0.5 per water condition:")
        print(br.format_conditions(res))
    if res.motion:
        print("\ntarget motion (IoU of a target's box with its own box g frames later):")
        print(format_motion(res.motion, res.data_fps))
    meta = {"command": " ".join(sys.argv), "threads": args.threads, "models": [str(p) for p in paths],
            "max_detections": args.max_detections, "sequences": args.sequences, "frame_step": args.frame_step}
    for path in br.write_outputs(res, args.out, meta):
        print(f"wrote {path}")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from .data.synthetic.cli import synth_main

    try:
        result = synth_main(args)
    except (ValueError, FileExistsError, FileNotFoundError) as exc:
        raise UserError(str(exc)) from exc
    return int(result or 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="uwdet", description="Underwater temporal refinement detection tools.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("bench-models", help="params, GFLOPs and CPU forward latency of every model and backbone")
    p.add_argument("--models", nargs="*", default=None,
                   help="per-frame model config names or YAML paths (default: the nine SSD4s / RefineDet / DRNet configs)")
    p.add_argument("--backbones", nargs="*", default=None, help="backbone names (default: all)")
    p.add_argument("--temporal", nargs="*", default=None,
                   help="TRNet/TDRNet configs (names or YAML paths, e.g. config/probes/tdrnet_lite_w2.yaml) timed "
                        "over a sequence, each at its own input size or at NAME@HxW (e.g. tdrnet_lite_tcb@320x448; "
                        "also for --models) (default: trnet_lite tdrnet_lite tdrnet_lite_tcb tdrnet_lite_tcb_r384)")
    p.add_argument("-k", nargs="+", type=positive_int, default=[1, 2, 4, 8], help="key-frame intervals (default 1 2 4 8)")
    p.add_argument("--sequence-length", type=positive_int, default=24, help="frames per timed sequence")
    p.add_argument("--size", type=input_size_hw, default=None,
                   help="input size N or HxW (height first, e.g. 384x512) for every model and backbone, overriding "
                        "each config's input_size (default: each config at its own size, backbones at 320x320)")
    p.add_argument("--threads", type=positive_int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--repeats", type=positive_int, default=20, help="timed forwards per model (median reported)")
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    p.add_argument("--no-allocator-tuning", action="store_true",
                   help="leave glibc's malloc thresholds alone (see engine/runtime.py)")
    p.set_defaults(func=cmd_bench_models)

    from .data.synthetic.cli import add_synth_arguments

    p = sub.add_parser("synth", help="generate synthetic underwater ROV video with ground truth (COCO/VOC/bag)")
    add_synth_arguments(p)
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("train", help="train a detector from a recipe in config/train (resumable)")
    p.add_argument("--config", required=True, help="training recipe YAML (config/train/NAME.yaml)")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--resume", action="store_true", help="continue from OUTPUT_DIR/train_state.pt")
    start.add_argument("--overwrite", action="store_true",
                       help="start afresh even if OUTPUT_DIR already holds a run (its model.pt and train_state.pt go)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--iterations", type=positive_int, default=None, help="override solver.iterations")
    p.add_argument("--output-dir", default=None, help="override output_dir")
    p.add_argument("--workers", type=int, default=None, help="override data.workers")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar (logs still go to log.csv)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="mAP (VOC + COCO), PR curves and speed of a checkpoint on a dataset")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True, help="COCO json (or folder with annotations.json) or VOC folder")
    p.add_argument("-k", type=positive_int, default=None, help="key-frame interval (default: the model's)")
    p.add_argument("-e", type=float, default=None, help="soft coefficient (default: the model's)")
    p.add_argument("--sweep", action="store_true", help="evaluate the k x e grid and plot mAP vs FPS")
    p.add_argument("--sweep-k", type=positive_int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--sweep-e", type=float, nargs="+", default=[1.0, 0.75, 0.5])
    p.add_argument("--fps", type=float, default=None,
                   help="frame rate used to make stamps from frame indices (default: the data's video fps, else 10)")
    p.add_argument("--max-frames", type=positive_int, default=None)
    p.add_argument("--max-detections", type=positive_int, default=100,
                   help="detections kept per image (default 100, as COCO evaluates and as `uwdet results` does)")
    p.add_argument("--input-size", type=input_size_hw, default=None,
                   help="run the network at N or HxW (height first, e.g. 320x448; multiples of 64) instead of the size "
                        "it was trained at: what accuracy a faster or a finer size gives, without retraining")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=positive_int, default=2)
    p.add_argument("--out", default="out/eval", help="folder for eval.json and the PNG plots")
    p.set_defaults(func=cmd_eval)

    from .engine.benchmark_results import DEFAULT_KEY_INTERVALS, DEFAULT_MODELS, DEFAULT_SOFT_COEFFICIENTS

    p = sub.add_parser("results", help="the README results table: every shipped model on the synthetic test split, "
                                       "k x e for the temporal ones, and the paper's claims checked")
    p.add_argument("--models-dir", default="models")
    p.add_argument("--models", nargs="+", default=None,
                   help=f"checkpoint names in --models-dir (default: those of {' '.join(DEFAULT_MODELS)} that exist)")
    p.add_argument("--data", default="data/synth/test/annotations.json", help="test split (make data-synth)")
    p.add_argument("-k", type=positive_int, nargs="+", default=list(DEFAULT_KEY_INTERVALS))
    p.add_argument("-e", type=float, nargs="+", default=list(DEFAULT_SOFT_COEFFICIENTS))
    p.add_argument("--sequences", type=positive_int, default=None, help="only the first N sequences (quick look)")
    p.add_argument("--frame-step", type=positive_int, default=1,
                   help="evaluate every N-th frame of each sequence: the same video at 1/N of its frame rate")
    p.add_argument("--max-detections", type=positive_int, default=100,
                   help="detections kept per image (default 100, as COCO evaluates)")
    p.add_argument("--fps", type=float, default=None,
                   help="frame rate used to make stamps from frame indices (default: the data's video fps, else 10)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=positive_int, default=2)
    p.add_argument("--out", default="out/results", help="folder for results.json, results.md and sweep plots")
    p.set_defaults(func=cmd_results)

    p = sub.add_parser("models", help="list the model configs in config/models")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("inspect", help="print a checkpoint's model card (config, classes, provenance, metrics)")
    p.add_argument("checkpoint")
    p.set_defaults(func=cmd_inspect)

    from .bags.commands import register as register_bag_commands

    register_bag_commands(sub)
    from .ros.commands import register as register_ros_commands  # no rclpy import: the nodes it starts load ROS

    register_ros_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except UserError as exc:
        print(f"uwdet: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("uwdet: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
