#!/usr/bin/env python3
"""One-time migration (session 12): store the earlier training cycles of checkpoints trained before
`engine.lineage` existed inside the checkpoints themselves, so `write_model_cards.py` can rebuild every card on a
machine without `runs/`.

Those cycles' own files are gone; what survives is the cycle table of each model's card in `models/README.md`
(written by `write_model_cards.py` while the files existed) and the recipes in git. For each model whose file
does not yet carry `earlier_cycles`, this reads its card's table rows for every cycle before the last (command,
iterations, seed, wall time in whole minutes, git commit), loads the recipe the command names as it was at that
commit (`git show COMMIT:PATH`, through the current `TrainConfig`, so it has the same form as a trainer-written
record), and marks each record `restored_from`. A first cycle initialised from another model gets its
`init_source` from the recipe whose `output_dir` holds that start file. The last cycle is the file's own
provenance and is not touched; neither are the weights or the metrics, except that metrics embedded before
`write_model_cards.py` stored the `uwdet results` command with them get the command their card names.

    .venv/bin/python scripts/restore_cycle_history.py            # prints what it would store
    .venv/bin/python scripts/restore_cycle_history.py --write    # stores it
"""
from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path

import yaml

from underwater_detection.engine.lineage import EARLIER_CYCLES, INIT_SOURCE
from underwater_detection.engine.train_config import InitConfig, TrainConfig
from underwater_detection.models.checkpoint import load_model, save_checkpoint

REPO = Path(__file__).resolve().parents[1]
ROW = re.compile(
    r"^\| (?P<cycle>\d+) \| `(?P<command>[^`]+)` \| (?P<iterations>\d+) \| [^|]+ \| (?P<seed>\d+) \| "
    r"(?P<minutes>\d+) min \| (?P<git>[0-9a-f]{7,40}) \|$"
)


def card_section(readme: str, model: str) -> str:
    section = readme.split(f"\n## {model}\n", 1)
    if len(section) != 2:
        raise SystemExit(f"models/README.md has no card for {model}")
    return section[1].split("\n## ", 1)[0]


def card_rows(readme: str, model: str) -> list[dict]:
    """The cycle-table rows of ``model``'s card, in cycle order."""
    body = card_section(readme, model)
    rows = [m.groupdict() for m in map(ROW.match, body.splitlines()) if m]
    if [int(r["cycle"]) for r in rows] != list(range(1, len(rows) + 1)):
        raise SystemExit(f"{model}: the card's cycle table is not cycles 1..n: {rows}")
    return rows


def card_results_command(readme: str, model: str) -> str | None:
    """The `uwdet results` command ``model``'s card names for its test-split table, if it names one."""
    body = card_section(readme, model)
    found = re.search(r"^Test split \([^)]*\), `([^`]+)`:$", body, re.MULTILINE)
    return found.group(1) if found else None


def git_show(commit: str, path: str) -> str:
    out = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=REPO, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"git show {commit}:{path}: {out.stderr.strip()}")
    return out.stdout


def recipe_at(commit: str, recipe_path: str) -> dict:
    text = git_show(commit, recipe_path)
    return TrainConfig.from_dict(yaml.safe_load(text), f"{recipe_path} at {commit}").to_dict()


def model_trained_into(output_file: str, commit: str) -> str:
    """The model of the recipe (as of ``commit``) whose output_dir holds ``output_file``."""
    listing = subprocess.run(["git", "ls-tree", "--name-only", commit, "config/train/"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout.split()
    for path in listing:
        if not path.endswith(".yaml"):
            continue
        cfg = TrainConfig.from_dict(yaml.safe_load(git_show(commit, path)), f"{path} at {commit}")
        if Path(cfg.output_dir) == Path(output_file).parent:
            return cfg.model
    raise SystemExit(f"no recipe in config/train at {commit} writes {output_file}")


def restored_cycles(model: str, rows: list[dict]) -> list[dict]:
    cycles = []
    for row in rows[:-1]:
        config = re.search(r"--config (\S+)", row["command"])
        if not config:
            raise SystemExit(f"{model} cycle {row['cycle']}: no --config in {row['command']!r}")
        recipe = recipe_at(row["git"], config.group(1))
        record = {
            "command": row["command"], "recipe": recipe, "seed": int(row["seed"]),
            "iterations": int(row["iterations"]), "wall_time_s": 60.0 * int(row["minutes"]),
            "git_commit": row["git"],
            "restored_from": "models/README.md card (session 7; wall time to the minute) and the recipe via git show "
                             "at git_commit, loaded through the TrainConfig of session 12 (its defaults fill keys "
                             "the recipe did not set)",
        }
        init = recipe.get("init")
        if init:
            source_model = model_trained_into(init["checkpoint"], row["git"])
            if source_model != model:
                recipe_init = InitConfig(**init)
                record[INIT_SOURCE] = {"checkpoint": init["checkpoint"], "model": source_model,
                                       "modules": list(recipe_init.modules), "frozen": recipe_init.frozen_modules()}
        cycles.append(record)
    return cycles


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", default=str(REPO / "models"))
    parser.add_argument("--write", action="store_true", help="store the history (default: only print it)")
    parser.add_argument("--models", nargs="*", help="only these (file stems); default: every checkpoint there")
    args = parser.parse_args()
    models_dir = Path(args.models_dir)
    readme = (models_dir / "README.md").read_text()
    for path in sorted(models_dir.glob("*.pt")):
        if args.models and path.stem not in args.models:
            continue
        model, ckpt = load_model(path, "cpu")
        metrics = dict(ckpt.metrics)
        if metrics and metrics.get("command") is None:  # metrics embedded before their command was recorded
            metrics["command"] = card_results_command(readme, path.stem)
        if EARLIER_CYCLES in ckpt.provenance:
            print(f"{path.name}: already carries {len(ckpt.provenance[EARLIER_CYCLES])} earlier cycle(s)")
            if args.write and metrics != ckpt.metrics:
                print(f"{path.name}: storing the results command {metrics['command']!r} with its metrics")
                save_checkpoint(path, model, ckpt.spec, ckpt.class_names, provenance=ckpt.provenance, metrics=metrics)
            continue
        rows = card_rows(readme, path.stem)
        if int(rows[-1]["seed"]) != ckpt.provenance.get("seed") or rows[-1]["command"] != ckpt.provenance.get("command"):
            raise SystemExit(f"{path.name}: the card's last cycle is not this file's own training run")
        cycles = restored_cycles(ckpt.spec.name, rows)
        print(f"{path.name}: {len(cycles)} earlier cycle(s): "
              + "; ".join(f"{c['recipe']['name']} @ {c['git_commit']}" for c in cycles))
        if args.write:
            save_checkpoint(path, model, ckpt.spec, ckpt.class_names,
                            provenance={**ckpt.provenance, EARLIER_CYCLES: cycles}, metrics=metrics)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
