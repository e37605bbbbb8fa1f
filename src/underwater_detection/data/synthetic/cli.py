"""``uwdet synth``: generate a split of the synthetic benchmark in COCO / VOC / rosbag2 form.

The maintainer's ``cli.py`` wires it in with ``add_synth_arguments(sub.add_parser("synth", ...))`` and
``set_defaults(func=synth_main)``. User errors (bad option values, a non-empty output folder) raise
``ValueError`` with a one-line message, which the top-level CLI prints as ``uwdet: error: ...``.

Sequences are independent, so ``--workers N`` renders N sequences at once in separate processes (each
with one OpenCV thread); the split-wide files (COCO JSON, VOC image list) are assembled at the end in seed
order, so the output does not depend on the number of workers.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import shutil
from pathlib import Path

from ...cli_types import positive_int
from .sequence import SequenceConfig, SyntheticSequence
from .splits import SPLITS, TEST_FRAMES, TEST_SEQUENCES, split_seeds
from .water import PRESETS
from .writers import FORMATS, JPEG_QUALITY, SequenceResult, finish_split, write_sequence

OUTPUT_ENTRIES = ("annotations.json", "images", "voc", "bags", "synth_info.json")  # everything synth writes (and --overwrite removes)
DEFAULT_SEQUENCES = {"train": 100, "val": 10, "test": TEST_SEQUENCES}


def _size(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    try:
        w, h = (int(p) for p in parts)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"size must be WxH, e.g. 640x480, got {text!r}") from exc
    if w < 32 or h < 32:
        raise argparse.ArgumentTypeError(f"size must be at least 32x32, got {text!r}")
    return w, h




def add_synth_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Options of ``uwdet synth``."""
    parser.add_argument("--out", required=True, type=Path, help="output folder (one split per folder)")
    parser.add_argument("--split", choices=sorted(SPLITS), default="train", help="seed range to draw from")
    parser.add_argument("--sequences", type=positive_int, default=None,
                        help=f"number of sequences (default: {DEFAULT_SEQUENCES})")
    parser.add_argument("--frames", type=positive_int, default=TEST_FRAMES, help="frames per sequence")
    parser.add_argument("--size", type=_size, default=(640, 480), help="frame size WxH (default 640x480)")
    parser.add_argument("--fps", type=float, default=10.0, help="frame rate of the camera (default 10)")
    parser.add_argument("--object-scale", type=float, default=SequenceConfig.object_scale,
                        help=f"multiply target/distractor sizes (default {SequenceConfig.object_scale}, the benchmark's "
                             "scale; 1.0 gives objects half as large)")
    parser.add_argument("--preset", choices=PRESETS + ("mixed",), default="mixed",
                        help="water difficulty; mixed samples one per sequence")
    parser.add_argument("--seed-offset", type=int, default=0, help="skip this many seeds into the split's range")
    parser.add_argument("--formats", nargs="+", choices=FORMATS, default=["coco"], help="what to write")
    parser.add_argument("--workers", type=positive_int, default=1, help="processes rendering sequences in parallel")
    parser.add_argument("--jpeg-quality", type=int, default=JPEG_QUALITY, help="quality of written JPEGs")
    parser.add_argument("--preview", type=Path, default=None, help="also save a PNG grid of sample frames")
    parser.add_argument("--overwrite", action="store_true", help="replace what an earlier synth run wrote in --out")
    return parser


def _config(args: argparse.Namespace) -> SequenceConfig:
    w, h = args.size
    return SequenceConfig(width=w, height=h, num_frames=args.frames, fps=args.fps, preset=args.preset,
                          object_scale=args.object_scale)


def _render_one(job: tuple) -> SequenceResult:
    out, seed, config, formats, quality, keep_preview = job
    return write_sequence(out, SyntheticSequence(seed, config), formats, quality, keep_preview=keep_preview)


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)


def prepare_output(out: Path, overwrite: bool) -> None:
    """Refuse a non-empty folder unless ``overwrite``; then remove only what synth itself writes."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise ValueError(f"output folder {out} is not empty; choose another --out or pass --overwrite")
        for name in OUTPUT_ENTRIES:
            p = out / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)


def synth_main(args: argparse.Namespace) -> int:
    """Run ``uwdet synth``; returns the exit code (0)."""
    from tqdm import tqdm

    if not 1 <= args.jpeg_quality <= 100:
        raise ValueError(f"--jpeg-quality must be in 1..100, got {args.jpeg_quality}")
    if args.seed_offset < 0:
        raise ValueError(f"--seed-offset must be >= 0, got {args.seed_offset}")
    count = args.sequences or DEFAULT_SEQUENCES[args.split]
    seeds = split_seeds(args.split, count, args.seed_offset)
    config = _config(args)
    formats = list(dict.fromkeys(args.formats))
    out: Path = args.out
    prepare_output(out, args.overwrite)
    n_preview = 9 if args.preview else 0
    jobs = [(out, s, config, formats, args.jpeg_quality, i < n_preview) for i, s in enumerate(seeds)]

    results: list[SequenceResult] = []
    with tqdm(total=len(seeds) * config.num_frames, unit="frame", desc=f"synth {args.split}") as bar:
        if args.workers == 1 or len(jobs) == 1:
            for job in jobs:
                out_, seed, cfg, fmts, q, keep = job
                results.append(write_sequence(out_, SyntheticSequence(seed, cfg), fmts, q, progress=bar.update,
                                              keep_preview=keep))
        else:
            ctx = mp.get_context("spawn")  # no fork of a process that may hold torch / OpenMP threads
            with ctx.Pool(min(args.workers, len(jobs)), initializer=_init_worker) as pool:
                for res in pool.imap(_render_one, jobs):  # imap keeps seed order
                    results.append(res)
                    bar.update(config.num_frames)
    written = finish_split(out, args.split, results, formats)

    info = {
        "split": args.split, "seeds": seeds, "formats": formats, "config": config.__dict__,
        "presets": {r.video.name: r.video.preset for r in results},
        "objects": sum(len(fr.boxes) for r in results for fr in r.video.frames) if "coco" in formats else None,
    }
    (out / "synth_info.json").write_text(json.dumps(info, indent=1, default=list), encoding="utf-8")
    if args.preview:
        from .preview import save_preview_grid

        frames = [r.preview for r in results if r.preview is not None]
        titles = [f"{r.video.name} {r.video.preset}" for r in results if r.preview is not None]
        save_preview_grid(args.preview, frames, titles=titles, cols=3)
    print(f"synth: wrote {len(seeds)} sequences x {config.num_frames} frames ({args.split}, "
          f"{config.width}x{config.height}, {', '.join(formats)}) to {out}")
    for p in written:
        print(f"  {p}")
    return 0


if __name__ == "__main__":  # python -m underwater_detection.data.synthetic.cli --out ... (before uwdet wiring)
    import sys

    _parser = add_synth_arguments(argparse.ArgumentParser(prog="uwdet synth", description=__doc__.splitlines()[0]))
    try:
        sys.exit(synth_main(_parser.parse_args()))
    except ValueError as _exc:
        _parser.error(str(_exc))
