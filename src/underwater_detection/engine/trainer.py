"""``uwdet train``: the training loop for every detector in the project.

What it does, and why:
* SGD with momentum 0.9 and weight decay 5e-4, linear warm-up, step decay (the papers' recipe); Adam is
  available for quick experiments. The learning rate is set every iteration from the recipe, so a resumed run
  continues on exactly the same schedule.
* The loss is ``MultiBoxLoss.for_model``: the model's own negative anchor filtering and its spec's variances.
  Temporal models apply the spec's soft coefficient ``e`` during training, as at test time. ``objective:
  two-stage`` trains RG first and then RD with RG frozen; joint training measured better on our sequences
  (README), so it is the default.
* Every ``checkpoint_every`` iterations ``train_state.pt`` (weights, optimizer, iteration, RNG, recipe) is
  written atomically; ``--resume`` continues from it, so a stopped 90-minute run loses minutes, not the run.
  The final ``model.pt`` is a normal model checkpoint with provenance (command, recipe, seed, data, wall time,
  git commit) for the model card, plus what ``init`` started from and, for a run continuing an earlier cycle of
  the same model, that cycle's history (``engine.lineage``), so the card does not need the earlier files.
* Augmentation randomness is derived from (seed, epoch, sample index), not from worker state, so a run is
  reproducible whatever ``data.workers`` is (up to floating-point non-associativity on multiple threads).
* Multi-machine/multi-process: launched by ``torchrun``, it uses DistributedDataParallel (gloo on CPU, NCCL on
  CUDA) with a DistributedSampler; ``batch_size`` is per process; only rank 0 writes files.
* AMP (fp16 autocast + GradScaler) on CUDA when ``amp: true``; the loss and box coding stay in fp32.
"""
from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ..models.checkpoint import read_checkpoint, save_checkpoint
from ..models.registry import build_model, preprocess_config, priors_for
from ..models.spec import ModelSpec, load_model_spec
from ..models.temporal import TemporalRefinementNet
from ..ops.losses import MultiBoxLoss
from .lineage import init_lineage
from .temporal import resolve_device
from .train_config import InitConfig, TrainConfig
from .training import clip_gradients, detection_step, freeze, objective_loss

STATE_FILE = "train_state.pt"
MODEL_FILE = "model.pt"
LOG_FILE = "log.csv"


class _EpochSampler(torch.utils.data.Sampler[int]):
    """A seeded permutation per epoch that can start part-way, so a resumed run sees exactly the batches an
    uninterrupted run would have seen."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.seed = seed
        self.epoch = 0
        self.start = 0  # samples to skip in the current epoch

    def __len__(self) -> int:
        return self.size - self.start

    def __iter__(self) -> Iterator[int]:
        order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch))
        return iter(order[self.start :].tolist())


class _Augmented(Dataset):
    """Applies the training transform with a generator seeded by (seed, epoch, index): reproducible with
    any number of workers, different every epoch."""

    def __init__(self, dataset: Any, transform: Any, seed: int) -> None:
        self.dataset = dataset
        self.transform = transform
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        return self.transform(self.dataset[index], rng=rng)


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group torchrun set up (WORLD_SIZE > 1), else run single-process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def _csv_header(path: Path) -> list[str]:
    with open(path, newline="") as f:
        return next(csv.reader(f), [])


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _atomic_torch_save(obj: Any, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def initialise_from_checkpoint(
    model: nn.Module, init: InitConfig, class_names: Sequence[str], model_name: str
) -> tuple[list[str], dict[str, Any]]:
    """Copy ``init.modules`` (top-level children such as ``rg``) from ``init.checkpoint`` into ``model``.

    Every parameter and buffer of those modules must exist in the checkpoint with the same shape (extra keys
    there are fine: TDRNet's RG carries feature-offset predictors that TRNet's RG lacks). Returns the names of
    the modules it froze, and the lineage (``engine.lineage``) the new checkpoint records: the start file and,
    for a start from the same model, that file's training history, so the model card does not need it on disk."""
    ckpt = read_checkpoint(init.checkpoint)
    if list(ckpt.class_names) != list(class_names):
        raise ValueError(f"init: {init.checkpoint} predicts {ckpt.class_names}, the recipe trains {list(class_names)}")
    children = dict(model.named_children())
    frozen: list[str] = []
    for name in init.modules:
        if name not in children:
            raise ValueError(f"init: model has no module {name!r}; it has {sorted(children)}")
        target = children[name].state_dict()
        prefix = name + "."
        source = {k[len(prefix):]: v for k, v in ckpt.state_dict.items() if k.startswith(prefix)}
        missing = [k for k in target if k not in source]
        wrong = [k for k in target if k in source and tuple(source[k].shape) != tuple(target[k].shape)]
        if missing or wrong:
            raise ValueError(
                f"init: {init.checkpoint} does not fit module {name!r}: missing {missing[:5]}, shape mismatch {wrong[:5]}"
            )
        children[name].load_state_dict({k: source[k] for k in target})
        if init.frozen(name):
            freeze(children[name])
            frozen.append(name)
    lineage = init_lineage(init.checkpoint, ckpt, model_name, list(init.modules), frozen)
    return frozen, lineage


class Trainer:
    def __init__(
        self,
        config: TrainConfig,
        device: str | torch.device = "auto",
        resume: bool = False,
        show_progress: bool = True,
        command: Sequence[str] | None = None,
        overwrite: bool = False,
    ) -> None:
        # imported here: the dataset layer is only needed for training, not for building a Trainer's config
        from ..data.augment import TrainTransform, collate
        from ..data.datasets import ConcatDetectionDataset, load_dataset

        self.cfg = config
        self.device = resolve_device(device)
        self.dist = init_distributed(self.device)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        self.out_dir = Path(config.output_dir)
        self._replaced = self._claim_output_dir(resume, overwrite)
        self.show_progress = show_progress and self.dist.is_main
        self.command = list(command) if command is not None else list(sys.argv)
        # Read at start: a commit made while a long run trains must not be credited with the weights.
        self.git_commit = _git_commit()

        torch.manual_seed(config.seed + self.dist.rank)
        np.random.seed(config.seed + self.dist.rank)

        datasets = [load_dataset(p, class_names=config.data.class_names) for p in config.data.train]
        self.train_set = datasets[0] if len(datasets) == 1 else ConcatDetectionDataset(datasets)
        self.class_names = list(config.data.class_names or self.train_set.class_names)

        spec = load_model_spec(config.model)
        if config.input_size is not None:
            spec = spec.with_input_size(*config.input_size)
        self.spec: ModelSpec = spec
        self.model = build_model(spec, len(self.class_names)).to(self.device)
        self.frozen_modules: list[str] = []
        self.lineage: dict[str, Any] = {}
        if config.init is not None:
            self.frozen_modules, self.lineage = initialise_from_checkpoint(
                self.model, config.init, self.class_names, spec.name
            )
        self.preprocess = preprocess_config(spec, self.model)
        self.priors = priors_for(spec, self.device)
        self.criterion = MultiBoxLoss.for_model(
            self.model, spec.variances, min_negatives_per_image=config.solver.min_negatives_per_image
        )
        self.soft_coefficient = (spec.temporal or {}).get("soft_coefficient", 1.0)

        transform = TrainTransform(
            spec.input_size, self.preprocess, augment=config.data.augment, drop_difficult=config.data.drop_difficult
        )
        self.augmented = _Augmented(self.train_set, transform, config.seed)
        sampler: Any
        if self.dist.enabled:
            sampler = DistributedSampler(self.augmented, self.dist.world_size, self.dist.rank, seed=config.seed, drop_last=True)
        else:
            sampler = _EpochSampler(len(self.augmented), config.seed)
        self.sampler = sampler
        self.loader = DataLoader(
            self.augmented, batch_size=config.solver.batch_size, sampler=sampler, num_workers=config.data.workers,
            collate_fn=collate, drop_last=len(self.augmented) >= config.solver.batch_size,
            persistent_workers=False, pin_memory=self.device.type == "cuda",
        )
        if len(self.loader) == 0:
            raise ValueError(f"training set has {len(self.train_set)} images: fewer than one batch")

        self.net: nn.Module = self.model
        if self.dist.enabled and config.solver.objective != "joint":
            raise ValueError("solver.objective two-stage is not supported with torchrun/DDP; use joint")
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(self.model, device_ids=ids, find_unused_parameters=True)
        params = [p for p in self.model.parameters() if p.requires_grad]
        s = config.solver
        if s.optimizer == "sgd":
            self.optimizer: torch.optim.Optimizer = torch.optim.SGD(params, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)
        else:
            self.optimizer = torch.optim.Adam(params, lr=s.lr, weight_decay=s.weight_decay)
        self.use_amp = config.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda") if self.use_amp else None
        self.iteration = 0
        self.elapsed_s = 0.0
        if resume:
            self._load_state()

    # ------------------------------------------------------------------ state
    def _claim_output_dir(self, resume: bool, overwrite: bool) -> list[Path]:
        """A fresh run never silently replaces another run's results: a copied recipe that still names the
        original's output_dir would otherwise overwrite a model.pt that a later recipe starts from. Returns
        the files ``--overwrite`` replaces; they are deleted only when the new run starts (``run``), so a
        run that fails to set up (bad data path, an init that does not fit) leaves the old one intact."""
        if resume:
            return []
        existing = [self.out_dir / name for name in (MODEL_FILE, STATE_FILE) if (self.out_dir / name).exists()]
        if existing and not overwrite:
            resumable = (self.out_dir / STATE_FILE).exists()
            raise FileExistsError(
                f"{self.out_dir} already holds a training run ({', '.join(p.name for p in existing)}): "
                + ("pass --resume to continue it, " if resumable else "")
                + "set another output_dir (and name) in the recipe or with --output-dir, or pass --overwrite "
                "to start again and replace it"
            )
        return existing

    def _state_path(self) -> Path:
        return self.out_dir / STATE_FILE

    def _save_state(self) -> None:
        if not self.dist.is_main:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        _atomic_torch_save(
            {
                "iteration": self.iteration,
                "elapsed_s": self.elapsed_s,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scaler": None if self.scaler is None else self.scaler.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "config": self.cfg.to_dict(),
                "class_names": self.class_names,
                "lineage": self.lineage,  # the start file as it was when the run began, not at a resume
            },
            self._state_path(),
        )

    def _load_state(self) -> None:
        path = self._state_path()
        if not path.is_file():
            raise FileNotFoundError(f"--resume: no {STATE_FILE} in {self.out_dir} (nothing to resume)")
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as exc:  # noqa: BLE001 - corrupt state: say so, do not guess
            raise ValueError(f"--resume: {path} is not a readable training state: {exc}") from exc
        if state.get("config", {}).get("model") != self.cfg.model or state.get("class_names") != self.class_names:
            raise ValueError(
                f"--resume: {path} was written for model {state.get('config', {}).get('model')!r} with classes "
                f"{state.get('class_names')}, not {self.cfg.model!r} with {self.class_names}"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and state.get("scaler") is not None:
            self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"].cpu())
        self.iteration = int(state["iteration"])
        self.elapsed_s = float(state.get("elapsed_s", 0.0))
        self.lineage = state.get("lineage", self.lineage)  # states written before session 12 have none

    # ------------------------------------------------------------------ loop
    def _batches(self) -> Iterator[tuple[torch.Tensor, list]]:
        """Endless batches. Single-process resumes continue mid-epoch exactly; DDP restarts the epoch."""
        # per process: a DDP rank sees len / world_size samples an epoch
        per_rank = len(self.sampler) if isinstance(self.sampler, DistributedSampler) else len(self.augmented)
        batches_per_epoch = per_rank // self.cfg.solver.batch_size or 1
        epoch, skip = divmod(self.iteration, batches_per_epoch)
        while True:
            self.augmented.epoch = epoch
            if isinstance(self.sampler, DistributedSampler):
                self.sampler.set_epoch(epoch)
            else:
                self.sampler.epoch = epoch
                self.sampler.start = skip * self.cfg.solver.batch_size
            yield from self.loader
            epoch, skip = epoch + 1, 0

    def _two_stage(self) -> bool:
        return self.cfg.solver.objective == "two-stage" and isinstance(self.model, TemporalRefinementNet)

    def _objective(self) -> str:
        if "rg" in self.frozen_modules and isinstance(self.model, TemporalRefinementNet):
            return "refinement"  # RG comes frozen from another checkpoint: only RD learns
        if not self._two_stage():
            return "joint"
        half = self.cfg.solver.iterations // 2
        if self.iteration < half:
            return "reference"
        if not getattr(self.model.rg, "_uwdet_frozen", False):
            freeze(self.model.rg)  # type: ignore[union-attr]
        if self.iteration == half:
            self.optimizer.state.clear()  # RD starts fresh: no momentum carried over from the RG stage
        return "refinement"

    def _lr(self) -> float:
        """The recipe's schedule; in two-stage training each stage runs the whole schedule (warm-up and steps
        scaled to the stage's length), so RD does not start at full rate after RG's stage."""
        s = self.cfg.solver
        if not self._two_stage():
            return s.lr_at(self.iteration)
        half = s.iterations // 2
        start, length = (0, half) if self.iteration < half else (half, s.iterations - half)
        scale = length / s.iterations
        stage = type(s)(**{**s.__dict__, "warmup_iterations": int(s.warmup_iterations * scale),
                          "steps": [int(x * scale) for x in s.steps]})
        return stage.lr_at(self.iteration - start)

    def run(self) -> Path | None:
        s = self.cfg.solver
        if self.dist.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            # --overwrite: the old run's files go now that the new run is set up; a stale train_state.pt must
            # not outlive it (a --resume after an early stop would continue the old run)
            for path in self._replaced:
                path.unlink(missing_ok=True)
        log_path = self.out_dir / LOG_FILE
        new_log = not log_path.exists() or self.iteration == 0
        log_file = open(log_path, "w" if new_log else "a", newline="") if self.dist.is_main else None
        writer = None
        progress = None
        if self.show_progress:
            from tqdm import tqdm

            progress = tqdm(total=s.iterations, initial=self.iteration, desc=self.cfg.name, unit="it", dynamic_ncols=True)
        window_start, window_images, window_steps, window_clipped = time.perf_counter(), 0, 0, 0
        run_start = time.perf_counter() - self.elapsed_s
        try:
            batches = self._batches()
            while self.iteration < s.iterations:
                images, targets = next(batches)
                lr = self._lr()
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                terms = self._step(images.to(self.device, non_blocking=True), targets)
                self.iteration += 1
                window_images += images.shape[0] * self.dist.world_size
                window_steps += 1
                window_clipped += s.grad_clip is not None and terms["grad_norm"] > s.grad_clip
                if progress is not None:
                    progress.update(1)
                    progress.set_postfix(loss=f"{terms['loss']:.3f}", lr=f"{lr:.2g}")
                if self.iteration % self.cfg.log_every == 0 or self.iteration == s.iterations:
                    now = time.perf_counter()
                    row = {"iteration": self.iteration, "lr": float(f"{lr:.6g}"), **{k: round(v, 5) for k, v in terms.items()},
                           "clipped_frac": round(window_clipped / window_steps, 3),
                           "img_per_s": round(window_images / max(now - window_start, 1e-9), 2),
                           "elapsed_s": round(now - run_start, 1)}
                    window_start, window_images, window_steps, window_clipped = now, 0, 0, 0
                    if log_file is not None:
                        if writer is None:
                            # a resumed run appends under the header already there (which an older version
                            # may have written with fewer columns), so every row lines up with its header
                            fields = list(row) if new_log else _csv_header(log_path) or list(row)
                            writer = csv.DictWriter(log_file, fieldnames=fields)
                            if new_log:
                                writer.writeheader()
                        writer.writerow({k: row.get(k) for k in writer.fieldnames})
                        log_file.flush()
                if self.iteration % self.cfg.checkpoint_every == 0 and self.iteration < s.iterations:
                    self.elapsed_s = time.perf_counter() - run_start
                    self._save_state()
        finally:
            if progress is not None:
                progress.close()
            if log_file is not None:
                log_file.close()
        self.elapsed_s = time.perf_counter() - run_start
        self._save_state()
        return self._save_model() if self.dist.is_main else None

    def _step(self, images: torch.Tensor, targets: list) -> dict[str, float]:
        targets = [type(t)(t.boxes.to(self.device), t.labels.to(self.device)) for t in targets]
        objective = self._objective()
        if self.scaler is None:
            terms = detection_step(
                self.net, self.criterion, self.priors, images, targets, self.optimizer,
                soft_coefficient=self.soft_coefficient, max_grad_norm=self.cfg.solver.grad_clip, objective=objective,
            )
        else:
            terms = self._amp_step(images, targets, objective)
        return terms

    def _amp_step(self, images: torch.Tensor, targets: list, objective: str) -> dict[str, float]:
        from .training import _train_mode, forward_at, objective_loss

        assert self.scaler is not None
        _train_mode(self.net)
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type="cuda", dtype=torch.float16):
            outputs = forward_at(self.net, images, self.soft_coefficient)
        terms = self.criterion(outputs, self.priors, targets, soft_coefficient=self.soft_coefficient)
        loss = objective_loss(terms, objective)
        terms["objective_loss"] = loss
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"non-finite loss at iteration {self.iteration}")
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)  # the norm is logged unscaled whether or not it is clipped
        terms["grad_norm"] = clip_gradients(self.net, self.cfg.solver.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return {k: float(v.detach()) for k, v in terms.items()}

    def _save_model(self) -> Path:
        provenance = {
            "command": " ".join(self.command),
            "recipe": self.cfg.to_dict(),
            "seed": self.cfg.seed,
            "iterations": self.iteration,
            "wall_time_s": round(self.elapsed_s, 1),
            "world_size": self.dist.world_size,
            "device": str(self.device),
            "train_data": list(self.cfg.data.train),
            "train_images": len(self.train_set),
            "git_commit": self.git_commit,
            "threads": torch.get_num_threads(),
            **self.lineage,
        }
        return save_checkpoint(self.out_dir / MODEL_FILE, self.model, self.spec, self.class_names, provenance=provenance)


def train(config: TrainConfig, **kwargs: Any) -> Path | None:
    trainer = Trainer(config, **kwargs)
    try:
        return trainer.run()
    finally:
        if trainer.dist.enabled and dist.is_initialized():
            dist.destroy_process_group()
