"""Tests for the pure-PyTorch deformable convolution.

The oracle is a literal transcription of torchvision's formula in nested Python loops
(float64, tiny sizes): it shares no code and no tensor-layout tricks with the
grid_sample + strided-conv implementation, so agreement to 1e-10 pins down the offset
channel order, the group splits, the block layout and the out-of-image rule.
"""

from __future__ import annotations

import math
import sys
import zlib

import pytest
import torch
import torch.nn.functional as F

from underwater_detection.ops import deform_conv as dc
from underwater_detection.ops.deform_conv import (
    DeformConv2d,
    deform_conv2d,
    torchvision_deform_conv2d_available,
)


def _bilinear(img: list[list[float]], y: float, x: float) -> float:
    """torchvision's bilinear_interpolate: each corner outside the image contributes 0."""
    height, width = len(img), len(img[0])
    if y <= -1 or y >= height or x <= -1 or x >= width:
        return 0.0
    y0, x0 = math.floor(y), math.floor(x)
    ly, lx = y - y0, x - x0
    value = 0.0
    for yy, wy in ((y0, 1.0 - ly), (y0 + 1, ly)):
        for xx, wx in ((x0, 1.0 - lx), (x0 + 1, lx)):
            if 0 <= yy < height and 0 <= xx < width:
                value += wy * wx * img[yy][xx]
    return value


def _reference(input, offset, weight, bias, stride, padding, dilation, mask):
    """Nested-loop deformable convolution straight from the definition."""
    sh, sw = stride
    ph, pw = padding
    dh, dw = dilation
    batch, c_in, _, _ = input.shape
    c_out, c_in_g, kh, kw = weight.shape
    groups = c_in // c_in_g
    c_out_g = c_out // groups
    k = kh * kw
    offset_groups = offset.shape[1] // (2 * k)
    c_per_og = c_in // offset_groups
    h_out, w_out = offset.shape[2], offset.shape[3]
    x, off, w = input.tolist(), offset.tolist(), weight.tolist()
    m = mask.tolist() if mask is not None else None
    bs = bias.tolist() if bias is not None else [0.0] * c_out
    out = torch.zeros(batch, c_out, h_out, w_out, dtype=torch.float64)
    for b in range(batch):
        for oc in range(c_out):
            g = oc // c_out_g
            for oy in range(h_out):
                for ox in range(w_out):
                    acc = bs[oc]
                    for icg in range(c_in_g):
                        ic = g * c_in_g + icg
                        og = ic // c_per_og
                        for i in range(kh):
                            for j in range(kw):
                                kk = i * kw + j
                                ch = 2 * (og * k + kk)
                                y = oy * sh - ph + i * dh + off[b][ch][oy][ox]
                                xx = ox * sw - pw + j * dw + off[b][ch + 1][oy][ox]
                                v = _bilinear(x[b][ic], y, xx)
                                if m is not None:
                                    v *= m[b][og * k + kk][oy][ox]
                                acc += w[oc][icg][i][j] * v
                    out[b, oc, oy, ox] = acc
    return out


def _out_size(size: int, k: int, s: int, p: int, d: int) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def _make_case(
    *, batch=1, c_in=2, c_out=2, hw=(5, 6), kernel=(3, 3), stride=(1, 1), padding=(1, 1),
    dilation=(1, 1), groups=1, offset_groups=1, use_mask=False, offset_scale=1.0,
    use_bias=True, dtype=torch.float64, seed=0,
):
    gen = torch.Generator().manual_seed(seed)
    kh, kw = kernel
    h_out = _out_size(hw[0], kh, stride[0], padding[0], dilation[0])
    w_out = _out_size(hw[1], kw, stride[1], padding[1], dilation[1])
    x = torch.randn(batch, c_in, *hw, generator=gen, dtype=dtype)
    weight = torch.randn(c_out, c_in // groups, kh, kw, generator=gen, dtype=dtype)
    bias = torch.randn(c_out, generator=gen, dtype=dtype) if use_bias else None
    offset = offset_scale * torch.randn(
        batch, 2 * offset_groups * kh * kw, h_out, w_out, generator=gen, dtype=dtype
    )
    mask = (
        torch.rand(batch, offset_groups * kh * kw, h_out, w_out, generator=gen, dtype=dtype)
        if use_mask
        else None
    )
    return x, offset, weight, bias, mask


REFERENCE_CASES = {
    "3x3_pad1": dict(),
    "3x3_stride2_mask": dict(stride=(2, 2), use_mask=True, batch=2),
    "3x3_dil2_pad2": dict(dilation=(2, 2), padding=(2, 2), hw=(6, 7)),
    "5x5_pad2_nonsquare": dict(kernel=(5, 5), padding=(2, 2), hw=(6, 4)),
    "1x3_mixed_stride": dict(kernel=(1, 3), padding=(0, 1), stride=(1, 2), hw=(4, 7)),
    "groups2": dict(c_in=4, c_out=4, groups=2, use_mask=True),
    "offset_groups2": dict(c_in=4, c_out=3, offset_groups=2, use_mask=True),
    "groups2_offset_groups4": dict(c_in=4, c_out=2, groups=2, offset_groups=4),
    "far_outside": dict(offset_scale=4.0, use_mask=True, hw=(4, 5)),
    "no_pad_no_bias": dict(padding=(0, 0), use_bias=False, hw=(5, 5)),
    "asym_everything": dict(
        kernel=(2, 3), stride=(2, 1), padding=(1, 0), dilation=(1, 2), hw=(5, 8),
        offset_scale=2.5, use_mask=True, c_in=4, offset_groups=2, groups=2, c_out=2,
    ),
    "single_column": dict(hw=(5, 1), kernel=(3, 1), padding=(1, 0), offset_scale=0.7),
    # fewer outputs than inputs at stride 1, as in every prediction head: the projected order is the default
    "head_like": dict(c_in=6, c_out=2, use_mask=True, offset_scale=2.0),
    "head_like_offset_groups2": dict(c_in=6, c_out=2, offset_groups=2, hw=(4, 7), padding=(2, 1)),
    # a kernel that is not square, two images and two offset groups with a mask: catches a kh / kw or batch /
    # group mix-up in the projected order's reshapes
    "head_like_2x3_batch2": dict(
        kernel=(2, 3), padding=(1, 1), c_in=6, c_out=2, offset_groups=2, batch=2, use_mask=True, hw=(5, 7),
    ),
}

# The two evaluation orders (module docstring): "auto" is what deform_conv2d picks, the others are forced.
# The projected order only exists for conv groups == 1.
PATHS = {
    "auto": None,
    "blocks": lambda *args: False,
    "projected": lambda c_in, c_out, groups, *sizes: groups == 1,
}


@pytest.fixture(params=sorted(PATHS))
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if PATHS[request.param] is not None:
        monkeypatch.setattr(dc, "_projection_is_cheaper", PATHS[request.param])
    return request.param


def test_the_cheaper_order_is_picked_where_it_is_exact_and_cheaper() -> None:
    # a TDRNet head at 384x512: level 0 is 48x64, 64 channels in, 3 anchors x (4 + 5) = 27 out, same padding
    cells = 48 * 64
    assert dc._projection_is_cheaper(64, 27, 1, 1, cells, cells)
    assert not dc._projection_is_cheaper(64, 27, 1, 1, cells, 24 * 32)  # stride 2: projects 4x the pixels
    assert dc._projection_is_cheaper(64, 27, 1, 1, cells, 46 * 62)  # valid 3x3: 7 % more pixels than cells
    assert not dc._projection_is_cheaper(64, 64, 1, 1, cells, cells)  # no fewer channels to sample
    assert not dc._projection_is_cheaper(64, 27, 1, 4, cells, cells)  # 4 offset groups sample 4 x 27 > 64
    assert not dc._projection_is_cheaper(64, 16, 2, 1, cells, cells)  # grouped conv: blocks only


def test_block_order_only_forces_the_old_order_and_restores_the_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    taken = []
    monkeypatch.setattr(dc, "_deform_conv2d_projected", lambda *a: taken.append("projected") or torch.zeros(1, 2, 5, 6))
    x, offset, weight, bias, _ = _make_case(c_in=6, c_out=2, dtype=torch.float32)
    with dc.block_order_only():
        deform_conv2d(x, offset, weight, bias, padding=1)
    assert taken == []
    deform_conv2d(x, offset, weight, bias, padding=1)
    assert taken == ["projected"]


def test_both_orders_agree_on_a_head_sized_layer_with_channels_last_input() -> None:
    """The real head's shapes (batch 2, 64 -> 27, 3x3, same padding), in the memory layout some runtimes use."""
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(2, 64, 12, 16, generator=gen).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(27, 64, 3, 3, generator=gen) / 24.0
    bias = torch.randn(27, generator=gen)
    offset = 3.0 * torch.randn(2, 18, 12, 16, generator=gen)
    grid = dc._tap_grid(offset, (12, 16), (3, 3), (12, 16), (1, 1), (1, 1), (1, 1), 1, torch.float32)
    blocks = dc._deform_conv2d_blocks(x, grid, weight, bias, None, 1, 1)
    projected = dc._deform_conv2d_projected(x, grid, weight, bias, None, 1)
    torch.testing.assert_close(projected, blocks, rtol=0, atol=1e-4)
    assert deform_conv2d(x, offset, weight, bias, padding=1).shape == (2, 27, 12, 16)


@pytest.mark.parametrize("name", sorted(REFERENCE_CASES))
def test_matches_loop_reference(name: str, path: str) -> None:
    cfg = dict(REFERENCE_CASES[name])
    if path == "projected" and cfg.get("groups", 1) != 1:
        pytest.skip("the projected order is only defined for groups == 1")
    x, offset, weight, bias, mask = _make_case(**cfg, seed=zlib.crc32(name.encode()) % 1000)
    kwargs = dict(
        stride=cfg.get("stride", (1, 1)),
        padding=cfg.get("padding", (1, 1)),
        dilation=cfg.get("dilation", (1, 1)),
    )
    got = deform_conv2d(x, offset, weight, bias, mask=mask, **kwargs)
    want = _reference(x, offset, weight, bias, kwargs["stride"], kwargs["padding"],
                      kwargs["dilation"], mask)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=0, atol=1e-10)


def test_reference_sees_samples_outside_image() -> None:
    """Guard the 'far_outside' case: it must really push taps off the image."""
    x, offset, weight, bias, _ = _make_case(offset_scale=4.0, hw=(4, 5))
    assert offset.abs().max() > 5  # several pixels beyond a 4x5 map
    out = deform_conv2d(x, offset, weight, None, padding=1)
    # Offsets far beyond the border give exactly zero (bias-free) responses.
    huge = torch.full_like(offset, 100.0)
    assert deform_conv2d(x, huge, weight, None, padding=1).abs().max() == 0
    assert out.abs().max() > 0


@pytest.mark.parametrize(
    "dtype,atol", [(torch.float32, 1e-5), (torch.float64, 1e-12)], ids=["fp32", "fp64"]
)
@pytest.mark.parametrize(
    "cfg",
    [
        dict(kernel=(3, 3), stride=(1, 1), padding=(1, 1), dilation=(1, 1), groups=1),
        dict(kernel=(3, 3), stride=(2, 2), padding=(1, 1), dilation=(1, 1), groups=2),
        dict(kernel=(3, 3), stride=(1, 1), padding=(2, 2), dilation=(2, 2), groups=1),
        dict(kernel=(1, 3), stride=(2, 1), padding=(0, 1), dilation=(1, 1), groups=4),
        dict(kernel=(5, 5), stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1),
    ],
    ids=["3x3", "3x3_s2_g2", "3x3_d2", "1x3_g4", "5x5_valid"],
)
def test_zero_offset_equals_conv2d(cfg: dict, dtype: torch.dtype, atol: float, path: str) -> None:
    if path == "projected" and cfg["groups"] != 1:
        pytest.skip("the projected order is only defined for groups == 1")
    gen = torch.Generator().manual_seed(1)
    kh, kw = cfg["kernel"]
    x = torch.randn(2, 8, 9, 11, generator=gen, dtype=dtype)
    # Weights at nn.Conv2d's scale keep outputs O(1), so the absolute tolerance means
    # the same thing in both dtypes. (In fp32 the grid's normalise/unnormalise round
    # trip moves taps by ~W * 6e-8 px, which is what the 1e-5 budget absorbs.)
    fan_in = (8 // cfg["groups"]) * kh * kw
    weight = torch.randn(8, 8 // cfg["groups"], kh, kw, generator=gen, dtype=dtype)
    weight /= math.sqrt(fan_in)
    bias = torch.randn(8, generator=gen, dtype=dtype)
    want = F.conv2d(x, weight, bias, stride=cfg["stride"], padding=cfg["padding"],
                    dilation=cfg["dilation"], groups=cfg["groups"])
    h_out, w_out = want.shape[2:]
    offset = torch.zeros(2, 2 * 2 * kh * kw, h_out, w_out, dtype=dtype)  # 2 offset groups
    mask = torch.ones(2, 2 * kh * kw, h_out, w_out, dtype=dtype)
    common = dict(stride=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"])
    torch.testing.assert_close(deform_conv2d(x, offset, weight, bias, **common), want,
                               rtol=0, atol=atol)
    torch.testing.assert_close(deform_conv2d(x, offset, weight, bias, mask=mask, **common),
                               want, rtol=0, atol=atol)


@pytest.mark.parametrize("offset_groups,use_mask", [(1, True), (2, True), (1, False)])
def test_gradcheck(offset_groups: int, use_mask: bool, path: str) -> None:
    gen = torch.Generator().manual_seed(3)
    x, _, weight, bias, mask = _make_case(
        c_in=4, c_out=1, hw=(4, 5), offset_groups=offset_groups, use_mask=use_mask, seed=3
    )
    # Integer sample positions are kinks of bilinear interpolation, where finite
    # differences disagree with the one-sided analytic gradient; keep fractions in
    # [0.15, 0.85] so every tap sits strictly between pixels.
    ints = torch.randint(-2, 3, (1, 2 * offset_groups * 9, 4, 5), generator=gen)
    frac = 0.15 + 0.7 * torch.rand(ints.shape, generator=gen, dtype=torch.float64)
    offset = ints.to(torch.float64) + frac
    tensors = [t.requires_grad_() for t in (x, offset, weight, bias)]
    if mask is not None:
        mask.requires_grad_()

    def fn(x, offset, weight, bias, *maybe_mask):
        return deform_conv2d(x, offset, weight, bias, padding=1,
                             mask=maybe_mask[0] if maybe_mask else None)

    args = tuple(tensors) + ((mask,) if mask is not None else ())
    assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-6, rtol=1e-4)


def test_module_matches_functional_and_init() -> None:
    torch.manual_seed(0)
    layer = DeformConv2d(4, 6, (3, 3), stride=1, padding=1, dilation=1, groups=2)
    assert layer.weight.shape == (6, 2, 3, 3) and layer.bias is not None
    # nn.Conv2d's init: kaiming_uniform(a=sqrt(5)) gives bound 1/sqrt(fan_in).
    bound = 1 / math.sqrt(2 * 3 * 3)
    assert layer.weight.abs().max() <= bound and layer.bias.abs().max() <= bound
    x = torch.randn(2, 4, 6, 7)
    offset = torch.randn(2, 18, 6, 7)
    mask = torch.rand(2, 9, 6, 7)
    torch.testing.assert_close(
        layer(x, offset, mask),
        deform_conv2d(x, offset, layer.weight, layer.bias, padding=1, mask=mask),
        rtol=0, atol=0,
    )
    assert "kernel_size=(3, 3)" in repr(layer) and "groups=2" in repr(layer)
    assert "bias=False" in repr(DeformConv2d(2, 2, 3, bias=False))
    with pytest.raises(ValueError, match="divisible by groups"):
        DeformConv2d(3, 4, 3, groups=2)


def test_module_backward_reaches_all_inputs() -> None:
    layer = DeformConv2d(2, 3, 3, padding=1)
    x = torch.randn(1, 2, 5, 5, requires_grad=True)
    offset = (0.3 * torch.randn(1, 18, 5, 5)).requires_grad_()
    mask = torch.rand(1, 9, 5, 5, requires_grad=True)
    layer(x, offset, mask).square().sum().backward()
    for t in (x, offset, mask, layer.weight, layer.bias):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


@pytest.mark.parametrize("dtype,atol", [(torch.float16, 0.05), (torch.bfloat16, 0.3)], ids=["fp16", "bf16"])
def test_half_precision_runs_and_is_close(path: str, dtype: torch.dtype, atol: float) -> None:
    """Against the float64 oracle; outputs reach about 5 here, so fp16 is good to ~1 % and bf16 to ~6 %."""
    x, offset, weight, bias, mask = _make_case(dtype=torch.float64, c_in=4, use_mask=True, seed=5)
    want = _reference(x, offset, weight, bias, (1, 1), (1, 1), (1, 1), mask)
    got = deform_conv2d(x.to(dtype), offset.float(), weight.to(dtype), bias.to(dtype), padding=1, mask=mask.float())
    assert got.dtype == dtype
    torch.testing.assert_close(got.double(), want, rtol=0, atol=atol)


def test_wrong_offset_channels_raise_clear_error() -> None:
    x = torch.randn(1, 4, 6, 6)
    weight = torch.randn(4, 4, 3, 3)
    with pytest.raises(ValueError, match=r"offset has shape \(1, 17, 6, 6\).*expected"):
        deform_conv2d(x, torch.zeros(1, 17, 6, 6), weight, padding=1)
    # 3 offset groups do not divide 4 input channels.
    with pytest.raises(ValueError, match="offset"):
        deform_conv2d(x, torch.zeros(1, 54, 6, 6), weight, padding=1)
    # Right channel count, wrong spatial size.
    with pytest.raises(ValueError, match=r"offset has shape \(1, 18, 5, 6\), expected \(1, 18, 6, 6\)"):
        deform_conv2d(x, torch.zeros(1, 18, 5, 6), weight, padding=1)
    with pytest.raises(ValueError, match=r"mask has shape .* expected \(1, 9, 6, 6\)"):
        deform_conv2d(x, torch.zeros(1, 18, 6, 6), weight, padding=1,
                      mask=torch.ones(1, 18, 6, 6))
    with pytest.raises(ValueError, match="weight"):
        deform_conv2d(x, torch.zeros(1, 18, 6, 6), torch.randn(4, 3, 3, 3), padding=1)
    with pytest.raises(ValueError, match="bias"):
        deform_conv2d(x, torch.zeros(1, 18, 6, 6), weight, torch.zeros(5), padding=1)


def test_broken_torchvision_does_not_break_module(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes `import torchvision` raise ImportError.
    monkeypatch.setitem(sys.modules, "torchvision", None)
    monkeypatch.setitem(sys.modules, "torchvision.ops", None)
    dc._load_torchvision_deform_conv2d.cache_clear()
    try:
        assert torchvision_deform_conv2d_available() is False
        x, offset, weight, bias, _ = _make_case()
        assert deform_conv2d(x, offset, weight, bias, padding=1).shape == (1, 2, 5, 6)
    finally:
        dc._load_torchvision_deform_conv2d.cache_clear()


def _cuda_tv_skip_reason() -> str:
    if not torch.cuda.is_available():
        return "needs a CUDA device: the torchvision fast path is only taken for CUDA inputs"
    if not torchvision_deform_conv2d_available():
        return "torchvision.ops.deform_conv2d is not importable (torchvision missing or broken)"
    return ""


@pytest.mark.skipif(bool(_cuda_tv_skip_reason()), reason=_cuda_tv_skip_reason() or "n/a")
def test_torchvision_fast_path_matches_pure_pytorch(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 8, 13, 17, device="cuda")
    weight = torch.randn(6, 4, 3, 3, device="cuda")
    bias = torch.randn(6, device="cuda")
    offset = 2.0 * torch.randn(2, 2 * 2 * 9, 7, 9, device="cuda")
    mask = torch.rand(2, 2 * 9, 7, 9, device="cuda")
    kwargs = dict(stride=2, padding=1, dilation=1, mask=mask)
    monkeypatch.delenv(dc.DISABLE_TORCHVISION_ENV, raising=False)
    assert dc._use_fast_path(x)
    fast = deform_conv2d(x, offset, weight, bias, **kwargs)
    monkeypatch.setenv(dc.DISABLE_TORCHVISION_ENV, "1")
    assert not dc._use_fast_path(x)
    slow = deform_conv2d(x, offset, weight, bias, **kwargs)
    torch.testing.assert_close(fast, slow, rtol=0, atol=1e-4)
