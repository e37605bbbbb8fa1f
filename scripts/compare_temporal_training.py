#!/usr/bin/env python3
"""Joint vs two-stage (RG first, then RD with RG frozen) training of TRNet / TDRNet, same budget.

The paper (Fig. 5b) trains RG like DRNet's ARM and RD like its ODM on static images but does not say whether
the two are optimised together; the issue asks to measure it. Both recipes get the same number of optimiser
steps on the same frames (toy drawn sequences, ``data.toy_scenes.make_sequence``) and are evaluated on
*held-out* sequences through ``TemporalDetector`` at several k, so the comparison measures generalisation,
not memorisation. Small and CPU-friendly on purpose: it answers "which recipe", not "how good".

    .venv/bin/python scripts/compare_temporal_training.py --steps 300 --json bench/temporal_training.json
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from underwater_detection.data.toy_scenes import MARINE_CLASSES, make_sequence
from underwater_detection.data.transforms import boxes_to_normalized, images_to_batch
from underwater_detection.engine.runtime import configure_cpu_runtime
from underwater_detection.engine.temporal import TemporalDetector
from underwater_detection.engine.training import detection_step, freeze
from underwater_detection.engine.voc_eval import GroundTruth, Prediction, evaluate_voc
from underwater_detection.models.registry import build_model, preprocess_config, priors_for
from underwater_detection.models.spec import load_model_spec
from underwater_detection.ops.losses import MultiBoxLoss, Targets


def train(config: str, recipe: str, frames, size: int, steps: int, batch: int, seed: int):
    torch.manual_seed(seed)
    spec = load_model_spec(config).with_input_size(size, size)
    model = build_model(spec, len(MARINE_CLASSES))
    images = images_to_batch([f.image for f in frames], spec.input_size, preprocess_config(spec, model), "rgb")
    targets = [Targets(boxes_to_normalized(f.boxes, size, size), torch.from_numpy(f.labels)) for f in frames]
    priors = priors_for(spec)
    criterion = MultiBoxLoss.for_model(model, spec.variances)
    e = spec.temporal["soft_coefficient"]
    gen = torch.Generator().manual_seed(seed)

    def run(params, objective: str, n: int) -> None:
        opt = torch.optim.Adam(params, lr=3e-3)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=n, pct_start=0.15)
        for _ in range(n):
            idx = torch.randperm(len(frames), generator=gen)[:batch]
            detection_step(model, criterion, priors, images[idx], [targets[i] for i in idx], opt,
                           soft_coefficient=e, objective=objective)
            sched.step()

    if recipe == "joint":
        run(model.parameters(), "joint", steps)
    else:
        # two-stage: RG (ARM-like) first, then RD (ODM-like) with RG frozen. "two-stage" splits the step
        # budget (same number of optimiser steps as joint); "two-stage-long" gives each network the full
        # budget (same number of updates per network as joint, twice the steps).
        rg_steps = steps // 2 if recipe == "two-stage" else steps
        run(model.rg.parameters(), "reference", rg_steps)
        freeze(model.rg)
        run(model.rd.parameters(), "refinement", rg_steps if recipe == "two-stage-long" else steps - rg_steps)
    return model.eval(), spec


def evaluate(model, spec, sequences, k: int) -> float:
    preds, gts = [], []
    for s, seq in enumerate(sequences):
        det = TemporalDetector(model, spec, MARINE_CLASSES, key_interval=k, tracking=False)
        for i, frame in enumerate(seq):
            d = det.detect(frame.image, i / 10, f"seq{s}", "rgb")
            preds.append(Prediction(d.boxes, d.scores, d.labels))
            gts.append(GroundTruth(frame.boxes, frame.labels))
    return evaluate_voc(preds, gts, len(MARINE_CLASSES)).mean_ap


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", nargs="+", default=["trnet_lite", "tdrnet_lite"])
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--train-sequences", type=int, default=4)
    ap.add_argument("--test-sequences", type=int, default=3)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--recipes", nargs="+", default=["joint", "two-stage", "two-stage-long"],
                    choices=["joint", "two-stage", "two-stage-long"])
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    configure_cpu_runtime(args.threads)

    mk = lambda s: make_sequence(s, args.frames, args.size, args.size, max_speed=3.0)  # noqa: E731
    train_frames = [f for s in range(args.train_sequences) for f in mk(1000 + s)]
    test_seqs = [mk(2000 + s) for s in range(args.test_sequences)]
    results = []
    print(f"{'config':<12} {'recipe':<14} {'train s':>8} " + " ".join(f"{'mAP k=' + str(k):>9}" for k in (1, 4, 8)))
    for config in args.configs:
        for recipe in args.recipes:
            t0 = time.time()
            model, spec = train(config, recipe, train_frames, args.size, args.steps, args.batch, args.seed)
            wall = time.time() - t0
            maps = {k: evaluate(model, spec, test_seqs, k) for k in (1, 4, 8)}
            results.append({"config": config, "recipe": recipe, "train_s": wall, "map50": maps})
            print(f"{config:<12} {recipe:<14} {wall:>8.0f} " + " ".join(f"{maps[k]:>9.3f}" for k in (1, 4, 8)), flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=2))


if __name__ == "__main__":
    main()
