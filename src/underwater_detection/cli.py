"""``uwdet``: the project's command line. One sub-command per job; each lives in its own function.

Later capabilities (synth, train, eval, bag-eval, bag-play, run, demo) register here the same way.
Errors the user can fix (bad file, bad option) print one ``uwdet: error: ...`` line and exit 2, no traceback.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from . import __version__


class UserError(Exception):
    """An error caused by the user's input; printed without a traceback."""


def _parse_size(text: str) -> tuple[int, int]:
    parts = text.lower().replace("x", ",").split(",")
    try:
        values = [int(p) for p in parts if p]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"size must be N or HxW, got {text!r}") from exc
    if len(values) == 1:
        return values[0], values[0]
    if len(values) == 2:
        return values[0], values[1]
    raise argparse.ArgumentTypeError(f"size must be N or HxW, got {text!r}")


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


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


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
    print(f"bench-models: {args.size[0]}x{args.size[1]}, batch 1, {args.threads} threads, "
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="uwdet", description="Underwater temporal refinement detection tools.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("bench-models", help="params, GFLOPs and CPU forward latency of every model and backbone")
    p.add_argument("--models", nargs="*", default=None, help="model config names (default: all shipped)")
    p.add_argument("--backbones", nargs="*", default=None, help="backbone names (default: all)")
    p.add_argument("--temporal", nargs="*", default=None,
                   help="TRNet/TDRNet configs timed over a sequence (default: trnet_lite tdrnet_lite)")
    p.add_argument("-k", nargs="+", type=_positive_int, default=[1, 2, 4, 8], help="key-frame intervals (default 1 2 4 8)")
    p.add_argument("--sequence-length", type=_positive_int, default=24, help="frames per timed sequence")
    p.add_argument("--size", type=_parse_size, default=(320, 320), help="input size N or HxW (default 320)")
    p.add_argument("--threads", type=_positive_int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--repeats", type=_positive_int, default=20, help="timed forwards per model (median reported)")
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    p.add_argument("--no-allocator-tuning", action="store_true",
                   help="leave glibc's malloc thresholds alone (see engine/runtime.py)")
    p.set_defaults(func=cmd_bench_models)

    p = sub.add_parser("models", help="list the model configs in config/models")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("inspect", help="print a checkpoint's model card (config, classes, provenance, metrics)")
    p.add_argument("checkpoint")
    p.set_defaults(func=cmd_inspect)
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
