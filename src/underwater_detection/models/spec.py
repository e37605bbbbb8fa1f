"""Model specification: the architecture YAML (``config/models/*.yaml``) as a validated object.

One source of truth (DESIGN.md): the spec travels inside every checkpoint, so the anchors, input size and
normalisation a model was trained with are the ones it runs with. A typo in a YAML key is an error naming
the key, not a silently ignored setting.
"""
from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..ops.box_coding import DEFAULT_VARIANCES
from ..ops.postprocess import PostprocessConfig
from ..ops.priors import PriorConfig, check_input_size

STATIC_ARCHITECTURES = ("ssd4s", "refinedet", "drnet")
TEMPORAL_ARCHITECTURES = ("trnet", "tdrnet")
ARCHITECTURE_NAMES = STATIC_ARCHITECTURES + TEMPORAL_ARCHITECTURES
BACKBONE_STRIDES = (8, 16, 32, 64)
_TOP_LEVEL_KEYS = {
    "name", "architecture", "input_size", "backbone", "head", "anchors", "variances", "preprocess",
    "postprocess", "description", "reference_backbone", "temporal",
}
_TEMPORAL_KEYS = {"key_interval", "soft_coefficient", "max_gap_s"}


def validate_temporal(cfg: dict[str, Any] | None, model_name: str = "?") -> dict[str, Any]:
    """Default key-frame interval k, soft coefficient e and max stamp gap for a temporal model."""
    cfg = dict(cfg or {})
    unknown = set(cfg) - _TEMPORAL_KEYS
    if unknown:
        raise ValueError(f"model '{model_name}': unknown temporal keys {sorted(unknown)}; known: {sorted(_TEMPORAL_KEYS)}")
    out = {"key_interval": cfg.get("key_interval", 4), "soft_coefficient": cfg.get("soft_coefficient", 1.0),
           "max_gap_s": cfg.get("max_gap_s", 1.0)}
    validate_key_interval(out["key_interval"])
    validate_soft_coefficient(out["soft_coefficient"])
    gap = out["max_gap_s"]
    if not isinstance(gap, (int, float)) or isinstance(gap, bool) or not (math.isfinite(gap) and gap > 0):
        raise ValueError(f"model '{model_name}': temporal.max_gap_s must be a positive number, got {out['max_gap_s']!r}")
    out["soft_coefficient"] = float(out["soft_coefficient"])
    out["max_gap_s"] = float(out["max_gap_s"])
    return out


def parse_size_hw(text: str) -> tuple[int, int]:
    """``"320x448"`` -> (320, 448), height first as in the model configs; ``"320"`` -> (320, 320).

    One parser for every place a network input size is typed (eval, bench-models, bag-eval, the node), so the
    same text means the same size everywhere and a slip such as ``320x`` is an error, not a guess.
    """
    match = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?", str(text))
    if match is None:
        raise ValueError(f"size must be N or HxW (height first, e.g. 320x448), got {text!r}")
    h = int(match.group(1))
    return h, int(match.group(2) or h)


def parse_input_size(text: str) -> tuple[int, int] | None:
    """The node's ``input_size`` (and ``uwdet run --input-size``): ``""`` -> None (the checkpoint's own size);
    ``"320x448"`` -> (320, 448), height first as the model configs.

    Only the form is checked here; whether the model's anchors tile that size is checked at configure, where the
    model is known (a refused size fails the transition with the reason and leaves the node unconfigured).
    """
    text = str(text).strip()
    if not text:
        return None
    if "x" not in text.lower():  # the node wants both sides spelled out: a camera topic is rarely square
        raise ValueError(f"input_size must be HxW (height first, e.g. 320x448) or empty, got {text!r}")
    try:
        h, w = parse_size_hw(text)
    except ValueError:
        raise ValueError(f"input_size must be HxW (height first, e.g. 320x448) or empty, got {text!r}") from None
    if h < 64 or w < 64 or h > 4096 or w > 4096:
        raise ValueError(f"input_size must be between 64 and 4096 on each side, got {text!r}")
    return h, w


def aspect_change_warning(trained: tuple[int, int], used: tuple[int, int]) -> str | None:
    """Why running at ``used`` may cost more than its pixel count suggests, or None.

    Frames are stretched to the input size (no letterbox), so a model learned objects with the aspect its
    trained size imposed; another aspect distorts them differently. Anchors are fixed pixel sizes, so the
    object-to-anchor scale moves with the size too, but that is what a size change is for.
    """
    (th, tw), (uh, uw) = trained, used
    ratio = (uw / uh) / (tw / th)
    if abs(ratio - 1.0) <= 0.1:
        return None
    return (f"input {uh}x{uw} has width/height {uw / uh:.2f}, the model was trained at {th}x{tw} ({tw / th:.2f}): "
            f"frames are stretched to the input, so objects look {ratio:.2f}x as wide to it as in training; "
            "expect a loss beyond the resolution change (measure it with uwdet eval --input-size)")


def validate_key_interval(k: Any) -> int:
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"key-frame interval k must be an integer >= 1, got {k!r}")
    return k


def validate_soft_coefficient(e: Any) -> float:
    if not isinstance(e, (int, float)) or isinstance(e, bool) or not 0.0 <= float(e) <= 1.0:  # NaN fails too
        raise ValueError(f"soft refinement coefficient e must be a number in [0, 1], got {e!r}")
    return float(e)
_COLOR_ORDERS = ("rgb", "bgr")


def _repo_config_dir() -> Path:
    # src/underwater_detection/models/spec.py -> repository root
    return Path(__file__).resolve().parents[3] / "config" / "models"


def model_config_dirs() -> list[Path]:
    """Where named model configs are looked up: the source tree, then an installed ament share dir."""
    import sys

    dirs = [_repo_config_dir(), Path(sys.prefix) / "share" / "underwater_detection" / "config" / "models"]
    try:  # on a ROS machine the package may be installed into a colcon workspace
        from ament_index_python.packages import get_package_share_directory  # type: ignore[import-not-found]

        dirs.append(Path(get_package_share_directory("underwater_detection")) / "config" / "models")
    except (ImportError, LookupError, ValueError, OSError):  # no ROS here, not in an ament index, or no AMENT_PREFIX_PATH
        pass
    return dirs


@dataclass
class ModelSpec:
    name: str
    architecture: str
    input_size: tuple[int, int]  # (height, width)
    backbone: dict[str, Any]
    head: dict[str, Any] = field(default_factory=dict)
    anchors: PriorConfig = field(default_factory=PriorConfig)
    variances: tuple[float, float] = DEFAULT_VARIANCES
    preprocess: dict[str, Any] | None = None  # None -> the backbone's default normalisation
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)
    description: str = ""
    reference_backbone: dict[str, Any] | None = None  # TRNet/TDRNet: the RG's own backbone
    temporal: dict[str, Any] | None = None  # TRNet/TDRNet: default k, e, max_gap_s

    @property
    def is_temporal(self) -> bool:
        return self.architecture in TEMPORAL_ARCHITECTURES

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURE_NAMES:
            raise ValueError(
                f"model '{self.name}': unknown architecture '{self.architecture}'; known: {', '.join(ARCHITECTURE_NAMES)}"
            )
        if len(self.input_size) != 2:
            raise ValueError(f"model '{self.name}': input_size must be [height, width], got {self.input_size}")
        self.input_size = (int(self.input_size[0]), int(self.input_size[1]))
        if tuple(self.anchors.strides) != BACKBONE_STRIDES:
            raise ValueError(
                f"model '{self.name}': anchors.strides must be {list(BACKBONE_STRIDES)}, the output strides of every "
                f"backbone, got {list(self.anchors.strides)} (anchors and head outputs would not line up)"
            )
        check_input_size(*self.input_size, self.anchors)
        if "name" not in self.backbone:
            raise ValueError(f"model '{self.name}': backbone needs a 'name'")
        if self.is_temporal:
            if not self.reference_backbone or "name" not in self.reference_backbone:
                raise ValueError(
                    f"model '{self.name}': {self.architecture} needs a 'reference_backbone' with a 'name' (the RG's backbone)"
                )
            self.temporal = validate_temporal(self.temporal, self.name)
        elif self.reference_backbone is not None or self.temporal is not None:
            raise ValueError(
                f"model '{self.name}': 'reference_backbone' and 'temporal' only apply to {TEMPORAL_ARCHITECTURES}"
            )
        if len(self.variances) != 2 or min(self.variances) <= 0:
            raise ValueError(f"model '{self.name}': variances must be two positive numbers, got {self.variances}")
        self.variances = (float(self.variances[0]), float(self.variances[1]))
        if self.preprocess is not None:
            self.preprocess = validate_preprocess(self.preprocess, self.name)

    @classmethod
    def from_dict(cls, cfg: dict[str, Any]) -> "ModelSpec":
        if not isinstance(cfg, dict):
            raise ValueError(f"a model config must be a mapping, got {type(cfg).__name__}")
        unknown = set(cfg) - _TOP_LEVEL_KEYS
        if unknown:
            raise ValueError(f"unknown model config keys {sorted(unknown)}; known: {sorted(_TOP_LEVEL_KEYS)}")
        missing = {"name", "architecture", "input_size", "backbone"} - set(cfg)
        if missing:
            raise ValueError(f"model config is missing {sorted(missing)}")
        cfg = copy.deepcopy(cfg)
        size = cfg["input_size"]
        if (
            not isinstance(size, (list, tuple))
            or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in size)
        ):
            raise ValueError(f"input_size must be [height, width] integers, got {size!r}")
        for key in ("backbone", "head", "anchors", "postprocess", "preprocess", "reference_backbone", "temporal"):
            if cfg.get(key) is not None and not isinstance(cfg[key], dict):
                raise ValueError(f"'{key}' must be a mapping of options, got {cfg[key]!r}")
        return cls(
            name=str(cfg["name"]),
            architecture=str(cfg["architecture"]),
            input_size=tuple(cfg["input_size"]),  # type: ignore[arg-type]
            backbone=dict(cfg["backbone"]),
            head=dict(cfg.get("head") or {}),
            anchors=PriorConfig.from_dict(cfg.get("anchors")),
            variances=tuple(cfg.get("variances", DEFAULT_VARIANCES)),  # type: ignore[arg-type]
            preprocess=cfg.get("preprocess"),
            postprocess=PostprocessConfig.from_dict(cfg.get("postprocess")),
            description=str(cfg.get("description", "")),
            reference_backbone=None if cfg.get("reference_backbone") is None else dict(cfg["reference_backbone"]),
            temporal=None if cfg.get("temporal") is None else dict(cfg["temporal"]),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (str/int/float/bool/list/dict/None), so ``torch.load(weights_only=True)`` reads it."""
        return {
            "name": self.name,
            "architecture": self.architecture,
            "input_size": list(self.input_size),
            "backbone": copy.deepcopy(self.backbone),
            "head": copy.deepcopy(self.head),
            "anchors": self.anchors.to_dict(),
            "variances": list(self.variances),
            "preprocess": copy.deepcopy(self.preprocess),
            "postprocess": self.postprocess.to_dict(),
            "description": self.description,
            "reference_backbone": copy.deepcopy(self.reference_backbone),
            "temporal": copy.deepcopy(self.temporal),
        }

    def with_input_size(self, height: int, width: int) -> "ModelSpec":
        spec = ModelSpec.from_dict(self.to_dict())
        check_input_size(height, width, spec.anchors)
        spec.input_size = (int(height), int(width))
        return spec


def validate_preprocess(cfg: dict[str, Any], model_name: str = "?") -> dict[str, Any]:
    unknown = set(cfg) - {"mean", "std", "color"}
    if unknown:
        raise ValueError(f"model '{model_name}': unknown preprocess keys {sorted(unknown)}")
    mean, std = list(cfg.get("mean", [])), list(cfg.get("std", []))
    if len(mean) != 3 or len(std) != 3 or any(float(s) <= 0 for s in std):
        raise ValueError(f"model '{model_name}': preprocess needs 3 means and 3 positive stds, got {cfg}")
    color = str(cfg.get("color", "rgb")).lower()
    if color not in _COLOR_ORDERS:
        raise ValueError(f"model '{model_name}': preprocess color must be one of {_COLOR_ORDERS}, got {color!r}")
    return {"mean": [float(m) for m in mean], "std": [float(s) for s in std], "color": color}


def load_model_spec(name_or_path: str | Path) -> ModelSpec:
    """A YAML path, or a config name such as ``drnet_lite`` looked up in :func:`model_config_dirs`."""
    path = Path(name_or_path)
    if not path.suffix:
        for directory in model_config_dirs():
            candidate = directory / f"{name_or_path}.yaml"
            if candidate.is_file():
                path = candidate
                break
        else:
            known = sorted({p.stem for d in model_config_dirs() if d.is_dir() for p in d.glob("*.yaml")})
            raise FileNotFoundError(f"no model config named '{name_or_path}'; known: {', '.join(known) or 'none'}")
    if not path.is_file():
        raise FileNotFoundError(f"model config file not found: {path}")
    with open(path, encoding="utf-8") as f:
        try:
            cfg = yaml.safe_load(f)
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return ModelSpec.from_dict(cfg)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def available_model_specs() -> list[str]:
    return sorted({p.stem for d in model_config_dirs() if d.is_dir() for p in d.glob("*.yaml")})
