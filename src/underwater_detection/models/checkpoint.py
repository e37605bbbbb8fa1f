"""Checkpoints that carry everything needed to run a model correctly, loaded without executing pickles.

A checkpoint is one ``torch.save`` file holding plain data only:

    format          "underwater_detection.checkpoint"
    format_version  1
    spec            ModelSpec.to_dict(): architecture, backbone, head, anchors, input size, variances,
                    pre/post-processing
    class_names     ["sea_cucumber", ...]   (label i <-> class_names[i]; background is not listed)
    preprocess      resolved mean/std/colour order (so a node never guesses the normalisation)
    provenance      free-form: command, git commit, seed, data, wall time, torch version, ...
    metrics         free-form: mAP etc.
    state_dict      the weights

Loading uses ``torch.load(weights_only=True)``, so a malicious file cannot run code, and every failure
(missing, truncated, not a torch file, a bare state dict from elsewhere, a newer format, weights that do
not fit the architecture or the class list) raises :class:`CheckpointError` with one message naming the
file and the problem.
"""
from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .registry import build_model, preprocess_config
from .spec import ModelSpec, validate_preprocess

FORMAT = "underwater_detection.checkpoint"
FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be used, with the reason in the message."""


@dataclass
class Checkpoint:
    spec: ModelSpec
    class_names: list[str]
    preprocess: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    provenance: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def _validate_class_names(class_names: Any, where: str) -> list[str]:
    if not isinstance(class_names, (list, tuple)) or not class_names:
        raise CheckpointError(f"{where}: class_names must be a non-empty list, got {class_names!r}")
    names = [str(n) for n in class_names]
    if len(set(names)) != len(names):
        raise CheckpointError(f"{where}: duplicate class names {names}")
    return names


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    spec: ModelSpec,
    class_names: list[str] | tuple[str, ...],
    provenance: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
) -> Path:
    """Write atomically (temp file + rename): a crash mid-save never leaves a truncated checkpoint behind."""
    path = Path(path)
    names = _validate_class_names(class_names, str(path))
    head_classes = getattr(model, "num_classes", len(names))
    if head_classes != len(names):
        raise CheckpointError(f"{path}: model predicts {head_classes} classes but {len(names)} class names were given")
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "spec": spec.to_dict(),
        "class_names": names,
        "preprocess": preprocess_config(spec, model),
        "provenance": dict(provenance or {}),
        "metrics": dict(metrics or {}),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read and validate the file's metadata (no model is built)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path}: refused to load: it contains objects other than tensors and plain data "
            f"(only weights_only-safe checkpoints are accepted): {str(exc).splitlines()[0]}"
        ) from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint (corrupt or truncated?): {exc}") from exc

    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        hint = ""
        if isinstance(payload, dict) and payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
            hint = " It looks like a bare state_dict; wrap it with save_checkpoint() and its model config."
        raise CheckpointError(f"{path}: not an underwater_detection checkpoint (no '{FORMAT}' header).{hint}")
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version!r} is newer than this software supports ({FORMAT_VERSION}); "
            "update underwater_detection"
        )
    for key in ("spec", "class_names", "state_dict", "preprocess"):
        if key not in payload:
            raise CheckpointError(f"{path}: checkpoint is missing '{key}'")
    try:
        spec = ModelSpec.from_dict(payload["spec"])
        preprocess = validate_preprocess(payload["preprocess"], spec.name)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: invalid model config inside checkpoint: {exc}") from exc
    state = payload["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: state_dict is not a mapping of tensors")
    return Checkpoint(
        spec=spec,
        class_names=_validate_class_names(payload["class_names"], str(path)),
        preprocess=preprocess,
        state_dict=state,
        provenance=dict(payload.get("provenance") or {}),
        metrics=dict(payload.get("metrics") or {}),
        path=path,
    )


def _describe_mismatch(model: nn.Module, state: dict[str, torch.Tensor], limit: int = 5) -> str:
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
        if items:
            more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
            parts.append(f"{label}: {', '.join(items[:limit])}{more}")
    return "; ".join(parts)


def load_model(
    path: str | Path, device: torch.device | str = "cpu"
) -> tuple[nn.Module, Checkpoint]:
    """Build the architecture from the checkpoint's own spec and load its weights (strict), in eval mode."""
    ckpt = read_checkpoint(path)
    try:
        model = build_model(ckpt.spec, ckpt.num_classes, pretrained_backbone=False)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{ckpt.path}: cannot build the model it describes: {exc}") from exc
    mismatch = _describe_mismatch(model, ckpt.state_dict)
    if mismatch:
        raise CheckpointError(
            f"{ckpt.path}: weights do not match the '{ckpt.spec.name}' architecture with "
            f"{ckpt.num_classes} classes ({mismatch})"
        )
    model.load_state_dict(ckpt.state_dict, strict=True)
    model.to(device).eval()
    return model, ckpt
