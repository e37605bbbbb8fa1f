#!/usr/bin/env python3
"""Write models/README.md (one model card per shipped checkpoint) and put the measured metrics into each
checkpoint, so `uwdet inspect models/NAME.pt` and the node's log show what the weights are worth.

Everything on a card comes from the checkpoint itself (recipe, command, seed, wall time, data, git commit:
recorded by `uwdet train`, or for the five models' first two cycles restored once from their earlier cards by
`scripts/restore_cycle_history.py`, marked `restored_from`) and from `uwdet results`' JSON (measured on the test
split); nothing is typed in here.

    .venv/bin/uwdet results --out out/results
    .venv/bin/python scripts/write_model_cards.py --results out/results/results.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from underwater_detection.engine.lineage import EARLIER_CYCLES, INIT_SOURCE, PROMOTED_FROM, cycles_of
from underwater_detection.engine.train_config import InitConfig
from underwater_detection.models.checkpoint import Checkpoint, load_model, read_checkpoint, save_checkpoint
from underwater_detection.models.shipped import PAPER_TDRNET, SHIPPED_MODELS, VEHICLE_MODEL, recipes_of

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
    """The provenance of every training cycle that led to ``ckpt`` (read from ``path``), first cycle first,
    and, for a model whose first cycle started from another model, which modules came from where.

    A shipped model is several cycles, each starting from the previous one's checkpoint (recorded in the
    recipe's ``init``). Checkpoints trained since session 12 carry their earlier cycles inside
    (``engine.lineage``); for older ones, and past the start of what a file carries, the walk follows
    ``init.checkpoint`` on disk while it is the same model. An init from another model (TRNet's frozen RG from
    TDRNet) ends it. A cycle whose file is no longer on disk, or that points back at a file already walked (a
    start point overwritten since), ends the walk with a note instead of guessing. Relative paths are the
    trainer's: from the repository root."""
    cycles = cycles_of(ckpt.provenance)
    seen = {Path(path).resolve()}
    while True:
        first = cycles[0]
        init = first.get("recipe", {}).get("init")
        if not init:
            return cycles, None
        source = Path(init["checkpoint"])
        recorded = first.get(INIT_SOURCE)
        if recorded and recorded.get("model") != ckpt.spec.name:
            return cycles, _shared_from(init, source, recorded["model"])
        earlier_path = source if source.is_absolute() else REPO / source
        if not earlier_path.is_file():
            cycles.insert(0, {"missing": str(source), "why": "file not on this machine"})
            return cycles, None
        if earlier_path.resolve() in seen:
            cycles.insert(0, {"missing": str(source), "why": "already listed: the file was overwritten since"})
            return cycles, None
        seen.add(earlier_path.resolve())
        earlier = read_checkpoint(earlier_path)
        if earlier.spec.name != ckpt.spec.name:
            recipe_init = InitConfig(**init)  # recorded, so a card written without this file still says so
            cycles[0][INIT_SOURCE] = {"checkpoint": str(source), "model": earlier.spec.name,
                                      "modules": list(recipe_init.modules), "frozen": recipe_init.frozen_modules()}
            return cycles, _shared_from(init, source, earlier.spec.name)
        cycles[:0] = cycles_of(earlier.provenance)


def _shared_from(init: dict, source: Path, model: str) -> str:
    recipe_init = InitConfig(**init)
    frozen = bool(recipe_init.frozen_modules())
    return f"{', '.join(recipe_init.modules)} from `{source}` ({model})" + (", frozen" if frozen else "")


def with_history(provenance: dict, cycles: list[dict], path: Path) -> dict:
    """``provenance`` with what the walk read from earlier files stored inside (more earlier cycles than it
    carries, or where a first cycle's start from another model came from), so the next card written from this
    file no longer needs them. The same object when there is nothing to add, or when the walk was incomplete:
    a gap is not written down as if it were the whole history."""
    if any("missing" in c for c in cycles):
        return provenance
    updated = dict(provenance)
    if len(cycles) - 1 > len(provenance.get(EARLIER_CYCLES) or []):
        updated[EARLIER_CYCLES] = cycles[:-1]
        print(f"{path}: storing {len(cycles) - 1} earlier cycle(s) read from earlier files inside the checkpoint")
    if len(cycles) == 1 and INIT_SOURCE in cycles[0] and INIT_SOURCE not in provenance:
        updated[INIT_SOURCE] = cycles[0][INIT_SOURCE]
    return provenance if updated == provenance else updated


# Where each training file comes from (Makefile targets), for the cards' data line.
TRAIN_DATA_SOURCES = {
    "data/synth/train/annotations.json": "`make data-synth`, train seeds 0-59, 60 sequences",
    "data/synth/train_more/annotations.json": "`make data-synth-more`, train seeds 60-239, 180 sequences",
    "data/synth/train_more2/annotations.json": "`make data-synth-480`, train seeds 240-479, 240 sequences",
}


def describe_train_data(paths: list[str]) -> list[str]:
    return [f"{path} ({TRAIN_DATA_SOURCES[path]})" if path in TRAIN_DATA_SOURCES else path for path in paths] or ["?"]


def card(path: Path, ckpt: Checkpoint, cycles: list[dict], shared_from: str | None, metrics: dict,
         results_meta: dict) -> str:
    p = ckpt.provenance
    size_mb = path.stat().st_size / 1e6
    known = [c for c in cycles if "missing" not in c]
    total_iterations = sum(int(c.get("iterations", 0)) for c in known)
    total_minutes = sum(float(c.get("wall_time_s", 0)) for c in known) / 60
    lines = [
        f"## {path.stem}",
        "",
        f"- Architecture: {ckpt.spec.architecture}, input {ckpt.spec.input_size[1]}x{ckpt.spec.input_size[0]}, "
        f"classes {', '.join(ckpt.class_names)}; file {size_mb:.1f} MB.",
        f"- Data{' (the last cycle; earlier cycles ran the recipes in the table)' if len(cycles) > 1 else ''}: "
        f"{p.get('train_images', '?')} images of the `uwdet synth` train split (100 frames per sequence, "
        f"object scale 2): {'; '.join(describe_train_data(p.get('train_data', [])))}.",
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
    notes = []  # bullets after "Training:", before the cycle table
    promoted = p.get(PROMOTED_FROM)
    if promoted:  # scripts/promote_candidate.py: a probe's weights under this model's name
        recipes = recipes_of(ckpt.spec.name) if ckpt.spec.name in SHIPPED_MODELS else ()
        source = promoted["file"]
        where = (f"`git log --all -- {source}` finds it if it is gone from the tree" if source.startswith("models/")
                 else "a training run's own file, not kept: this file holds the same weights")
        notes.append(f"- Promoted, not retrained: the weights of `{source}` (trained as "
                     f"{promoted['spec_name']}; {where}), written under this name by `scripts/promote_candidate.py`; "
                     f"weights SHA-256 {promoted['weights_sha256'][:16]}... The commands below that name config/probes "
                     f"are the runs that made these weights"
                     + (f"; to retrain it from the shipped chain: "
                        f"{', then '.join(f'`config/train/{r}.yaml`' for r in recipes)}." if recipes else "."))
    start = p.get(INIT_SOURCE)
    if start and len(cycles) > 1:  # the carried cycles are the source's; say where the last one started
        own = start.get("checkpoint") == f"models/{path.stem}.pt"  # this card's own path, then holding earlier weights
        notes.append(f"- The last cycle started from `{start.get('checkpoint')}` "
                     f"({'the file this one replaced: ' if own else ''}{start.get('model')}, weights "
                     f"SHA-256 {str(start.get('weights_sha256'))[:16]}...), "
                     + (f"{', '.join(start['frozen'])} frozen." if start.get("frozen") else "every module learning."))
    lines[5:5] = notes  # after the "Training:" bullet (index 4)
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
    parser.add_argument("--no-embed", action="store_true", help="do not write the metrics or the walked training history into the checkpoints")
    args = parser.parse_args()
    models_dir = Path(args.models_dir)
    results = json.loads(Path(args.results).read_text()) if Path(args.results).is_file() else {"rows": []}
    paths = sorted(models_dir.glob("*.pt"), key=lambda p: (ORDER.index(p.stem) if p.stem in ORDER else 99, p.stem))
    cards = []
    for path in paths:
        model, ckpt = load_model(path, "cpu")  # one read per file: the card and the re-save both use it
        cycles, shared_from = training_cycles(path, ckpt)
        provenance = with_history(ckpt.provenance, cycles, path)
        metrics = metrics_for(results["rows"], ckpt.spec.name)
        if metrics:
            meta = {"data": results.get("data"), "command": results.get("command", "uwdet results")}
            stored_metrics = {"test_split": meta["data"], "command": meta["command"], **metrics}
        else:
            metrics, meta = embedded_metrics(ckpt)
            stored_metrics = ckpt.metrics
        if not args.no_embed and (provenance is not ckpt.provenance or stored_metrics is not ckpt.metrics):
            save_checkpoint(path, model, ckpt.spec, ckpt.class_names, provenance=provenance, metrics=stored_metrics)
        cards.append(card(path, ckpt, cycles, shared_from, metrics, meta))
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
