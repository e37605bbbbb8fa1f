#!/usr/bin/env python3
"""Ship a probe's checkpoint under a shipped model's name without retraining it.

A probe trains under the config it was testing (``model: tdrnet_lite_tcb``); when its result is good enough to ship
as a model of its own (``tdrnet_lite_tcb_more_data``), retraining it for ~1 h only to change the name in the file
would ship different weights from the ones measured. This writes the same tensors under the shipped model's spec,
after checking that the two specs differ in nothing but name and description (so the network, input size, anchors
and post-processing the probe was measured with are what the vehicle runs), and records in the file what it was:
``promoted_from`` names the source file, its spec name and the weights' SHA-256, which must match the new file's.

    .venv/bin/python scripts/promote_candidate.py models/candidates/tdrnet_lite_tcb_more_data_synth_cycle4.pt \\
        --as tdrnet_lite_tcb_more_data
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from underwater_detection.engine.lineage import PROMOTED_FROM, weights_sha256
from underwater_detection.models.checkpoint import CheckpointError, load_model, read_checkpoint, save_checkpoint
from underwater_detection.models.registry import preprocess_config
from underwater_detection.models.spec import load_model_spec

REPO = Path(__file__).resolve().parents[1]
IGNORED = ("name", "description", "preprocess")  # preprocess: compared as resolved, below


def spec_differences(a: dict, b: dict) -> list[str]:
    """The top-level spec fields (other than name, description and preprocess) whose values differ."""
    keys = (set(a) | set(b)) - set(IGNORED)
    return sorted(k for k in keys if a.get(k) != b.get(k))


def promote(source: Path, name: str, out: Path | None = None, force: bool = False) -> Path:
    """Write ``source``'s weights to ``out`` (default ``models/<spec name>.pt``) under model spec ``name`` (a name
    or a YAML path); raise ``CheckpointError`` with the reason if the specs differ in anything that changes what the
    network computes, if ``out`` is ``source``, or if ``out`` exists and ``force`` is not set. Nothing at ``out`` is
    replaced until the new file has been written and read back with the same weights."""
    model, ckpt = load_model(source, "cpu")
    target = load_model_spec(name)
    out = Path(out) if out is not None else REPO / "models" / f"{target.name}.pt"
    if out.resolve() == Path(source).resolve():
        raise CheckpointError(f"{out}: the output would overwrite the candidate it is read from")
    if out.exists() and not force:
        raise CheckpointError(f"{out} exists (a shipped model?); pass --force to replace it")
    differ = spec_differences(ckpt.spec.to_dict(), target.to_dict())
    if preprocess_config(target, model) != ckpt.preprocess:  # a spec's None means its backbone's normalisation
        differ.append("preprocess")
    if differ:
        raise CheckpointError(f"{source}: its spec ({ckpt.spec.name}) and {target.name}'s differ in "
                              f"{', '.join(differ)}; only a checkpoint of the same network at the same input size "
                              f"can be shipped as {target.name} without retraining")
    sha = weights_sha256(ckpt.state_dict)
    provenance = dict(ckpt.provenance)
    provenance[PROMOTED_FROM] = {"file": _relative(Path(source)), "spec_name": ckpt.spec.name, "weights_sha256": sha}
    out.parent.mkdir(parents=True, exist_ok=True)
    staged = out.with_name(f".{out.name}.promoting")
    try:
        save_checkpoint(staged, model, target, ckpt.class_names, provenance=provenance, metrics=ckpt.metrics)
        if weights_sha256(read_checkpoint(staged).state_dict) != sha:
            raise CheckpointError(f"{out}: the written weights differ from {source}'s; nothing replaced")
        os.replace(staged, out)
    finally:
        staged.unlink(missing_ok=True)
    return out


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("candidate", type=Path, help="the probe's checkpoint (e.g. models/candidates/NAME.pt)")
    parser.add_argument("--as", dest="name", required=True,
                        help="the shipped model's spec: a name (config/models/NAME.yaml) or a YAML path")
    parser.add_argument("--out", type=Path, default=None, help="output file (default models/<spec name>.pt)")
    parser.add_argument("--force", action="store_true", help="replace --out if it exists")
    args = parser.parse_args(argv)
    try:
        written = promote(args.candidate, args.name, args.out, force=args.force)
    except (CheckpointError, OSError, ValueError) as exc:
        print(f"promote_candidate.py: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {written} ({written.stat().st_size / 1e6:.1f} MB): {args.candidate}'s weights as "
          f"{read_checkpoint(written).spec.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
