#!/usr/bin/env python3
"""Write models/README.md (one model card per shipped checkpoint) and put the measured metrics into each
checkpoint, so `uwdet inspect models/NAME.pt` and the node's log show what the weights are worth.

Everything on a card comes from the checkpoint itself (recipe, command, seed, wall time, data, git commit:
recorded by `uwdet train`) and from `uwdet results`' JSON (measured on the test split); nothing is typed in.

    .venv/bin/uwdet results --out out/results
    .venv/bin/python scripts/write_model_cards.py --results out/results/results.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from underwater_detection.engine.train_config import InitConfig
from underwater_detection.models.checkpoint import Checkpoint, load_model, read_checkpoint, save_checkpoint
from underwater_detection.models.shipped import PAPER_TDRNET, SHIPPED_MODELS, VEHICLE_MODEL

REPO = Path(__file__).resolve().parents[1]
# The vehicle's model first, then the paper's TDRNet before the TRNet whose card names it as its RG's source.
ORDER = (VEHICLE_MODEL, PAPER_TDRNET, *(name for name in SHIPPED_MODELS if name not in (VEHICLE_MODEL, PAPER_TDRNET)))


def metrics_for(rows: list[dict], model: str) -> dict:
    mine = [r for r in rows if r["model"] == model]
    out = {}
    for r in mine:
        key = "per_frame" if r["key_interval"] is None else f"k{r['key_interval']}_e{r['soft_coefficient']:g}"
        out[key] = {"voc_map50": round(r["voc_map50"], 6), "coco_ap": round(r["coco"]["AP"], 6),
                    "coco_ap50": round(r["coco"]["AP50"], 6), "forward_fps": round(r["forward_fps"], 1),
                    "ap50_per_class": {k: round(v, 4) for k, v in r["ap50_per_class"].items()}}
    return out


def embedded_metrics(ckpt: Checkpoint) -> tuple[dict, dict]:
    """The metrics an earlier run wrote into the checkpoint, for a model the given results file does not cover:
    `uwdet results --models A B` then updates A's and B's cards and keeps the others' measured figures."""
    stored = dict(ckpt.metrics)
    meta = {"data": stored.pop("test_split", "?"), "command": stored.pop("command", None)}  # None: not recorded
    return {key: m for key, m in stored.items() if isinstance(m, dict) and "voc_map50" in m}, meta


def training_cycles(path: Path, ckpt: Checkpoint) -> tuple[list[dict], str | None]:
    """The provenance of every training cycle that led to ``ckpt`` (read from ``path``), first cycle first.

    A shipped model is several cycles, each starting from the previous one's checkpoint (recorded in the
    recipe's ``init``). The walk follows ``init.checkpoint`` while it is the same model; an init from another
    model (TRNet's frozen RG from TDRNet) ends it and is returned as the second value. A cycle whose file is
    no longer on disk, or that points back at a file already walked (a start point overwritten since), ends the
    walk with a note instead of guessing. Relative paths are the trainer's: from the repository root."""
    cycles = [ckpt.provenance]
    shared_from = None
    seen = {Path(path).resolve()}
    while True:
        init = cycles[0].get("recipe", {}).get("init")
        if not init:
            return cycles, shared_from
        source = Path(init["checkpoint"])
        earlier_path = source if source.is_absolute() else REPO / source
        if not earlier_path.is_file():
            cycles.insert(0, {"missing": str(source), "why": "file not on this machine"})
            return cycles, shared_from
        if earlier_path.resolve() in seen:
            cycles.insert(0, {"missing": str(source), "why": "already listed: the file was overwritten since"})
            return cycles, shared_from
        seen.add(earlier_path.resolve())
        earlier = read_checkpoint(earlier_path)
        if earlier.spec.name != ckpt.spec.name:
            recipe_init = InitConfig(**init)
            frozen = any(recipe_init.frozen(m) for m in recipe_init.modules)
            shared_from = (f"{', '.join(recipe_init.modules)} from `{source}` ({earlier.spec.name})"
                           + (", frozen" if frozen else ""))
            return cycles, shared_from
        cycles.insert(0, earlier.provenance)


def card(path: Path, ckpt: Checkpoint, metrics: dict, results_meta: dict) -> str:
    p = ckpt.provenance
    size_mb = path.stat().st_size / 1e6
    cycles, shared_from = training_cycles(path, ckpt)
    known = [c for c in cycles if "missing" not in c]
    total_iterations = sum(int(c.get("iterations", 0)) for c in known)
    total_minutes = sum(float(c.get("wall_time_s", 0)) for c in known) / 60
    lines = [
        f"## {path.stem}",
        "",
        f"- Architecture: {ckpt.spec.architecture}, input {ckpt.spec.input_size[1]}x{ckpt.spec.input_size[0]}, "
        f"classes {', '.join(ckpt.class_names)}; file {size_mb:.1f} MB.",
        f"- Data: {', '.join(p.get('train_data', []))} ({p.get('train_images', '?')} images of `make data-synth`: "
        "`uwdet synth` train split, seeds 0-59, 60 sequences x 100 frames, object scale 2).",
        f"- Training: {len(known)} cycle{'' if len(known) == 1 else 's'}, {total_iterations} iterations x batch "
        f"{p.get('recipe', {}).get('solver', {}).get('batch_size', '?')}, {total_minutes:.0f} min wall time in all "
        f"on {p.get('device', '?')} with {p.get('threads', '?')} threads (shared 2-core machine), torch "
        f"{p.get('torch', '?')}" + (f"; {shared_from}" if shared_from else "") + ". "
        "`scripts/train_shipped_models.sh` runs every cycle of every model in order.",
        "",
        "| cycle | command | iterations | lr, warm-up, steps | seed | wall time | git |",
        "|---|---|---|---|---|---|---|",
    ]
    for number, c in enumerate(cycles, 1):
        if "missing" in c:
            lines.append(f"| {number} | earlier cycle(s) from `{c['missing']}`: {c['why']} | | | | | |")
            continue
        solver = c.get("recipe", {}).get("solver", {})
        lines.append(
            f"| {number} | `{c.get('command', '?')}` | {c.get('iterations', '?')} | {solver.get('optimizer', '?')} "
            f"{solver.get('lr', '?')}, {solver.get('warmup_iterations', '?')}, {solver.get('steps', '?')} | "
            f"{c.get('seed', '?')} | {float(c.get('wall_time_s', 0)) / 60:.0f} min | {str(c.get('git_commit', '?'))[:10]} |"
        )
    if metrics:
        command = results_meta.get("command")
        shown = f"`{command}`" if command else "an earlier `uwdet results` run (stored in the checkpoint)"
        lines += ["", f"Test split ({results_meta.get('data', '?')}), {shown}:", "",
                  "| setting | mAP@0.5 | COCO AP | AP50 | forward FPS |", "|---|---|---|---|---|"]
        for key, m in metrics.items():
            lines.append(f"| {key} | {100 * m['voc_map50']:.1f} | {100 * m['coco_ap']:.1f} | "
                         f"{100 * m['coco_ap50']:.1f} | {m['forward_fps']:.1f} |")
    else:
        lines += ["", "Not evaluated yet: run `make results`."]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", default="models")
    parser.add_argument("--results", default="out/results/results.json")
    parser.add_argument("--no-embed", action="store_true", help="do not write the metrics into the checkpoints")
    args = parser.parse_args()
    models_dir = Path(args.models_dir)
    results = json.loads(Path(args.results).read_text()) if Path(args.results).is_file() else {"rows": []}
    paths = sorted(models_dir.glob("*.pt"), key=lambda p: (ORDER.index(p.stem) if p.stem in ORDER else 99, p.stem))
    cards = []
    for path in paths:
        model, ckpt = load_model(path, "cpu")  # one read per file: the card and the re-save both use it
        metrics = metrics_for(results["rows"], ckpt.spec.name)
        if metrics:
            meta = {"data": results.get("data"), "command": results.get("command", "uwdet results")}
            if not args.no_embed:
                save_checkpoint(path, model, ckpt.spec, ckpt.class_names, provenance=ckpt.provenance,
                                metrics={"test_split": meta["data"], "command": meta["command"], **metrics})
        else:
            metrics, meta = embedded_metrics(ckpt)
        cards.append(card(path, ckpt, metrics, meta))
    header = [
        "# Shipped models",
        "",
        "Trained by this project's own `uwdet train` on its own synthetic underwater video (`uwdet synth`); no",
        "downloaded weights. Reproduce: `make train-shipped` (runs `scripts/train_shipped_models.sh`), then",
        "`make results` and `.venv/bin/python scripts/write_model_cards.py` (this file is generated by it).",
        "Load with `TemporalDetector.from_checkpoint` or the ROS node's `model_path`; `uwdet inspect FILE` prints",
        "the card stored inside each file (weights_only loading; a corrupt or foreign file gives a clear error).",
        "",
    ]
    (models_dir / "README.md").write_text("\n".join(header) + "\n" + "\n\n".join(cards) + "\n")
    print(f"wrote {models_dir / 'README.md'} ({len(cards)} models)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
