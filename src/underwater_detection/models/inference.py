"""Inference-only rewrites of a trained network that keep its outputs (to float rounding) and cut its cost.

Why: in eval mode a BatchNorm is a fixed per-channel affine map, so the convolution in front of it can absorb
it (``w' = w * g / s``, ``b' = (b - mean) * g / s + beta``) and the BatchNorm pass over the whole feature map
disappears. On the lite backbones and the TCB neck that is one pass per convolution; ``make bench-rewrites``
(median per-frame time of a k = 4 sequence on 2 cores, settings alternating in one process, session 19) measured
35.5 -> 30.2 ms for tdrnet_lite_tcb_480_videos_r384 at 384x512 and 18.7 -> 16.0 ms for the 320x320 vehicle default,
on top of the projected deformable heads. Training never sees these rewrites: checkpoints hold the unfolded layers,
and ``models.checkpoint.load_model`` folds only when asked for an inference model.

The second rewrite changes where numbers sit in memory, not what is computed (the same outputs to float rounding:
a convolution may sum in another order): on the CPU the convolutions (oneDNN) work in channels-last (NHWC) layout,
and a network whose weights are stored that way keeps its backbone and neck feature maps in it instead of
reordering them in and out of every convolution. An A/B probe in session 20 (the folded model against a
channels-last copy, k = 4 sequences, 8 alternating rounds, 2 threads, training paused) gave 1.06-1.26x faster
frames across the seven shipped lite TRNet/TDRNet/DRNet/RefineDet/SSD4s files; ``make bench-rewrites`` times it for
the two 480-video TDRNets. It is applied on the CPU only: nothing here has measured it on a GPU.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


#: Set on a model whose BatchNorms were folded: its layers no longer match its checkpoint.
FOLDED_MARKER = "_uwdet_batch_norm_folded"


def is_folded(model: nn.Module) -> bool:
    """Whether ``model`` or any part of it was folded: such a model must never be saved as a checkpoint."""
    return any(getattr(m, FOLDED_MARKER, False) for m in model.modules())


def fold_batch_norm(model: nn.Module) -> int:
    """Fold every BatchNorm2d that directly follows a Conv2d inside an ``nn.Sequential`` into that conv.

    Only ``nn.Sequential`` containers are rewritten: there the conv's output provably feeds the BatchNorm and
    nothing else, whereas in other modules the registration order of children says nothing about the data flow.
    The BatchNorm's slot becomes ``nn.Identity`` so indices and names of later layers stay valid. Returns how
    many pairs were folded. Refuses a model in training mode, where BatchNorm still normalises by batch
    statistics and must stay a separate layer.
    """
    # every part, checked before anything changes: a half-folded model would pass for an unfolded one
    training = [name or "the model" for name, m in model.named_modules() if m.training]
    if training:
        raise ValueError(
            f"fold_batch_norm: {training[0]} is in training mode; call .eval() first (folding is for inference)"
        )
    folded = 0
    for container in model.modules():
        if not isinstance(container, nn.Sequential):
            continue
        names = list(container._modules)
        for first, second in zip(names, names[1:]):
            conv, norm = container._modules[first], container._modules[second]
            if (
                type(conv) is nn.Conv2d
                and type(norm) is nn.BatchNorm2d
                and norm.track_running_stats
                and norm.running_mean is not None
                and conv.out_channels == norm.num_features
            ):
                container._modules[first] = fuse_conv_bn_eval(conv, norm)
                container._modules[second] = nn.Identity()
                folded += 1
    setattr(model, FOLDED_MARKER, True)
    return folded


def channels_last_pays(device: torch.device | str) -> bool:
    """Whether the inference paths store a model channels-last on ``device`` (a resolved device, not "auto"):
    measured faster on the CPU only."""
    return torch.device(device).type == "cpu"


def to_channels_last(model: nn.Module) -> nn.Module:
    """Store every 4-D weight of ``model`` channels-last (in place; returns the model).

    The inputs need no change: a convolution whose weight is channels-last returns a channels-last output, so
    the layout spreads from the first layer through the backbone and neck (the projected deformable head returns
    NCHW; it is the last layer). The outputs are the same numbers to float rounding (the order of the sums inside
    a convolution may differ).
    """
    return model.to(memory_format=torch.channels_last)


def is_channels_last(model: nn.Module) -> bool:
    """Whether every 4-D parameter of ``model`` is stored channels-last.

    A 1x1 or depthwise weight is contiguous in both layouts, so "all channels-last" alone would hold for a model
    never converted; at least one weight must also have left the NCHW layout. False for a model with no 4-D
    weights.
    """
    weights = [p for p in model.parameters() if p.dim() == 4]
    return (
        all(p.is_contiguous(memory_format=torch.channels_last) for p in weights)
        and any(not p.is_contiguous() for p in weights)
    )


def prepare_for_inference(model: nn.Module, device: torch.device | str) -> nn.Module:
    """Every rewrite the inference paths run, in one place (in place; returns the model): BatchNorms folded, and
    the weights channels-last where :func:`channels_last_pays` on ``device`` (a resolved device)."""
    fold_batch_norm(model)
    if channels_last_pays(device):
        to_channels_last(model)
    return model
