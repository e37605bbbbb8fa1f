"""Training recipes (``config/train/*.yaml``) as validated dataclasses.

A recipe names a model config, the data, and the solver. Defaults follow the papers (SGD, momentum 0.9,
weight decay 5e-4, linear warm-up, step decay by 0.1); every unknown key is an error naming the key, because a
silently ignored typo in a 90-minute CPU run costs 90 minutes.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

OBJECTIVE_CHOICES = ("joint", "two-stage")
OPTIMIZERS = ("sgd", "adam")


def _from_dict(cls: type, cfg: dict[str, Any] | None, where: str) -> Any:
    cfg = dict(cfg or {})
    known = {f.name for f in fields(cls)}
    unknown = set(cfg) - known
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
    return cls(**cfg)


@dataclass
class DataConfig:
    train: list[str] = field(default_factory=list)  # COCO json files or VOC folders
    val: list[str] = field(default_factory=list)
    class_names: list[str] | None = None  # default: the training set's categories
    augment: bool = True
    drop_difficult: bool = True
    workers: int = 2

    def __post_init__(self) -> None:
        if isinstance(self.train, str):
            self.train = [self.train]
        if isinstance(self.val, str):
            self.val = [self.val]
        if not self.train:
            raise ValueError("data.train: at least one dataset (COCO json or VOC folder) is required")
        if self.workers < 0:
            raise ValueError(f"data.workers must be >= 0, got {self.workers}")


@dataclass
class SolverConfig:
    batch_size: int = 16
    iterations: int = 6000
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_iterations: int = 300
    warmup_factor: float = 0.1
    steps: list[int] = field(default_factory=lambda: [4000, 5200])
    gamma: float = 0.1
    grad_clip: float | None = 10.0
    objective: str = "joint"  # temporal models: joint, or two-stage (RG first, then RD with RG frozen)
    min_negatives_per_image: int = 0

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.iterations < 1:
            raise ValueError(f"solver: batch_size and iterations must be >= 1, got {self.batch_size}, {self.iterations}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"solver.optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.objective not in OBJECTIVE_CHOICES:
            raise ValueError(f"solver.objective must be one of {OBJECTIVE_CHOICES}, got {self.objective!r}")
        if not self.lr > 0:
            raise ValueError(f"solver.lr must be > 0, got {self.lr}")
        if sorted(self.steps) != list(self.steps) or any(x < 0 for x in self.steps):
            raise ValueError(f"solver.steps must be increasing iteration numbers >= 0, got {self.steps}")
        if not 0 < self.gamma <= 1 or self.warmup_iterations < 0 or not 0 < self.warmup_factor <= 1:
            raise ValueError(
                f"solver: need 0 < gamma <= 1, warmup_iterations >= 0, 0 < warmup_factor <= 1; got {self.gamma}, "
                f"{self.warmup_iterations}, {self.warmup_factor}"
            )

    def lr_at(self, iteration: int) -> float:
        """Learning rate for 0-based ``iteration``: linear warm-up from ``warmup_factor * lr``, then steps."""
        lr = self.lr * self.gamma ** sum(1 for s in self.steps if iteration >= s)
        if iteration < self.warmup_iterations:
            alpha = iteration / max(1, self.warmup_iterations)
            lr *= self.warmup_factor * (1 - alpha) + alpha
        return lr


@dataclass
class InitConfig:
    """Start some sub-networks from another checkpoint's weights, e.g. TRNet's RG from the shipped TDRNet so
    both share one reference generator (the paper trains TRNet and TDRNet from one RG)."""

    checkpoint: str
    modules: list[str] = field(default_factory=lambda: ["rg"])  # top-level child modules to copy
    # frozen modules do not learn; a frozen RG makes the objective RD-only (refinement). true/false applies to
    # every copied module; a list freezes just those (a later TRNet cycle: copy rg and rd, keep rg frozen)
    freeze: bool | list[str] = True

    def __post_init__(self) -> None:
        if isinstance(self.modules, str):
            self.modules = [self.modules]
        if not self.checkpoint or not self.modules:
            raise ValueError("init: needs a checkpoint path and at least one module name")
        if isinstance(self.freeze, str):
            self.freeze = [self.freeze]
        if isinstance(self.freeze, list):
            stray = [m for m in self.freeze if m not in self.modules]
            if stray:
                raise ValueError(f"init.freeze names {stray}, which init.modules {self.modules} does not copy")

    def frozen(self, module: str) -> bool:
        return module in self.freeze if isinstance(self.freeze, list) else bool(self.freeze)

    def frozen_modules(self) -> list[str]:
        return [m for m in self.modules if self.frozen(m)]


@dataclass
class TrainConfig:
    name: str
    model: str  # a config/models name or a YAML path
    data: DataConfig
    solver: SolverConfig = field(default_factory=SolverConfig)
    input_size: list[int] | None = None  # [height, width] override of the model config
    seed: int = 0
    output_dir: str = ""
    checkpoint_every: int = 500
    log_every: int = 20
    amp: bool = True  # only takes effect on CUDA
    description: str = ""
    init: InitConfig | None = None

    def __post_init__(self) -> None:
        if self.checkpoint_every < 1 or self.log_every < 1:
            raise ValueError(f"checkpoint_every and log_every must be >= 1, got {self.checkpoint_every}, {self.log_every}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.input_size is not None and (len(self.input_size) != 2 or min(self.input_size) < 64):
            raise ValueError(f"input_size must be [height, width] (multiples of 64), got {self.input_size}")

    @classmethod
    def from_dict(cls, cfg: dict[str, Any], where: str = "train config") -> "TrainConfig":
        if not isinstance(cfg, dict):
            raise ValueError(f"{where}: must be a mapping")
        cfg = dict(cfg)
        known = {f.name for f in fields(cls)}
        unknown = set(cfg) - known
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
        for key in ("name", "model", "data"):
            if key not in cfg:
                raise ValueError(f"{where}: missing '{key}'")
        cfg["data"] = _from_dict(DataConfig, cfg["data"], f"{where}: data")
        cfg["solver"] = _from_dict(SolverConfig, cfg.get("solver"), f"{where}: solver")
        if cfg.get("init") is not None:
            cfg["init"] = _from_dict(InitConfig, cfg["init"], f"{where}: init")
        out = cls(**cfg)
        if not out.output_dir:
            out.output_dir = str(Path("runs") / out.name)
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_train_config(path: str | Path) -> TrainConfig:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training config not found: {path}")
    try:
        cfg = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return TrainConfig.from_dict(cfg, str(path))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from exc
