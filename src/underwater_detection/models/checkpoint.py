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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import __version__
from .inference import fold_batch_norm as fold_batch_norm_layers
from .inference import is_folded
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


def to_plain_data(value: Any, where: str) -> Any:
    """Convert metadata to the plain types ``weights_only`` loading accepts (numpy/torch scalars, paths, tuples)
    and reject anything else at save time, so a saved checkpoint can always be read back."""
    if value is None:
        return None
    for plain in (bool, int, float, str):  # also unwraps subclasses such as numpy.float64 (a float subclass)
        if isinstance(value, plain):
            return plain(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if hasattr(value, "item") and hasattr(value, "dtype") and getattr(value, "ndim", None) == 0:  # numpy scalar
        return value.item()
    if isinstance(value, dict):
        return {str(k): to_plain_data(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain_data(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise CheckpointError(f"{where}: {type(value).__name__} is not plain data (str/int/float/bool/None/list/dict)")


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
    if is_folded(model):
        raise CheckpointError(
            f"{path}: this model's BatchNorms were folded for inference (load_model(..., fold_batch_norm=True)); "
            "its layers no longer match the architecture, so it cannot be saved. Load it without folding to save it."
        )
    names = _validate_class_names(class_names, str(path))
    head_classes = getattr(model, "num_classes", len(names))
    if head_classes != len(names):
        raise CheckpointError(f"{path}: model predicts {head_classes} classes but {len(names)} class names were given")
    preprocess = preprocess_config(spec, model)
    spec_dict = spec.to_dict()
    spec_dict["preprocess"] = preprocess  # one value in the file: the one the weights were trained with
    base_provenance = {
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "torch": torch.__version__,
        "underwater_detection": __version__,
    }
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "spec": spec_dict,
        "class_names": names,
        "preprocess": preprocess,
        "provenance": to_plain_data({**base_provenance, **dict(provenance or {})}, "provenance"),
        "metrics": to_plain_data(dict(metrics or {}), "metrics"),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        torch.save(payload, tmp)
        # mkstemp creates 0600; a node running as another user must be able to read the model
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
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
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint is an empty file: {path}")
    with open(path, "rb") as f:
        is_zip = f.read(4) == b"PK\x03\x04"  # torch.save archives are zip files; a truncated one keeps its head
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not is_zip:  # torch falls back to its legacy pickle reader, whose errors say nothing useful
            raise CheckpointError(f"{path}: not a PyTorch checkpoint (not a torch.save zip archive)") from exc
        first = next((line for line in str(exc).splitlines() if "Unsupported global" in line), "")
        raise CheckpointError(
            f"{path}: refused to load: it contains Python objects other than tensors and plain data, and only "
            f"weights_only-safe checkpoints are accepted. {first.strip()}"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - torch raises many types for corrupt archives; all mean the same
        kind = "truncated or corrupt PyTorch checkpoint" if is_zip else "not a PyTorch checkpoint"
        raise CheckpointError(f"{path}: {kind} ({type(exc).__name__}: {exc})") from exc

    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        hint = ""
        if isinstance(payload, dict) and payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
            hint = " It looks like a bare state_dict; wrap it with save_checkpoint() and its model config."
        raise CheckpointError(f"{path}: not an underwater_detection checkpoint (no '{FORMAT}' header).{hint}")
    version = payload.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"{path}: invalid checkpoint format_version {version!r}")
    if version > FORMAT_VERSION:
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
    path: str | Path, device: torch.device | str = "cpu", fold_batch_norm: bool = False
) -> tuple[nn.Module, Checkpoint]:
    """Build the architecture from the checkpoint's own spec and load its weights (strict), in eval mode.

    ``fold_batch_norm`` merges each BatchNorm into the convolution before it (``models.inference``): the same
    outputs to float rounding, about 10 % less time per frame on the lite models. The inference paths (the
    ``TemporalDetector``, the node) ask for it; anything that saves, compares or trains the weights must not,
    since the folded network no longer has the checkpoint's layers (``save_checkpoint`` refuses it).
    The inference paths load plain and call ``models.inference.prepare_for_inference``, which also stores the
    weights channels-last where that is faster (the CPU).
    """
    ckpt = read_checkpoint(path)
    try:
        model = build_model(ckpt.spec, ckpt.num_classes, pretrained_backbone=False)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"{ckpt.path}: cannot build the model it describes: {exc}") from exc
    mismatch = _describe_mismatch(model, ckpt.state_dict)
    if mismatch:
        raise CheckpointError(
            f"{ckpt.path}: weights do not match the '{ckpt.spec.name}' architecture with "
            f"{ckpt.num_classes} classes ({mismatch})"
        )
    model.load_state_dict(ckpt.state_dict, strict=True)
    model.to(device).eval()
    if fold_batch_norm:
        fold_batch_norm_layers(model)
    return model, ckpt
