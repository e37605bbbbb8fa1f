"""Deformable convolution (DCNv1, plus the DCNv2 modulation mask) in pure PyTorch.

Why this exists: the temporal refinement heads need deformable convolution, but the
robot's CPU images and the CI machines have no torchvision (and a torchvision wheel
that does not match the pinned torch is worse than none: it imports, then fails on the
first custom op). So the op is written against plain ``torch`` with exactly
``torchvision.ops.deform_conv2d``'s semantics and tensor layouts, so that checkpoints and
offset-predicting heads are interchangeable between the two, and the compiled
torchvision kernel is used only as an opt-in-by-availability fast path on CUDA.

Why it is built this way: instead of an im2col loop, every output cell's ``kh x kw``
sampling points are written into *one* grid so that a single ``F.grid_sample`` call
produces a tensor in which each output cell owns a ``kh x kw`` block. A convolution with
``stride == kernel_size`` over that tensor is then exactly the deformable convolution:
each block is seen by the kernel once, at the matching kernel position. Both calls are
stock ATen kernels (vectorised, autograd-aware, available on every backend), so there is
no Python loop and no custom backward to get wrong. ``grid_sample`` with
``padding_mode='zeros'`` zeroes each out-of-image corner individually, which is the same
rule torchvision's bilinear sampler uses, so the result matches to rounding error.

Where the layer has no groups, fewer output channels than input channels (times the
offset groups) and as many output cells as input pixels (every TDRNet / DRNet prediction
head: 64 channels in, 27 out, same padding), the same two kernels run in the other order
(``_projection_is_cheaper``): a 1x1 convolution projects the input onto every tap's
output channels, then grid_sample reads each tap's projection at that tap's positions and
the taps are summed. Bilinear sampling is linear in the values it reads, so this is the
same function; it samples ``C_out`` instead of ``C_in`` channels per tap. Measured by
``make bench-rewrites`` (median per-frame time of a k = 4 sequence on 2 cores, settings
alternating in one process; session 19): 40.4 -> 35.5 ms for tdrnet_lite_tcb_480_videos_r384
at 384x512, 21.2 -> 18.7 ms for the 320x320 vehicle default, and a training step of the
384x512 model (batch 8, forward + backward) 1.33 -> 0.72 s.

Sampling convention (torchvision's): for output ``(oy, ox)`` and kernel position
``(i, j)`` the sample is taken at ``y = oy*stride_h - pad_h + i*dil_h + dy`` and
``x = ox*stride_w - pad_w + j*dil_w + dx`` in pixel units, where pixel ``p``'s centre is
at integer coordinate ``p``.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from typing import Callable, Iterator, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "DeformConv2d",
    "block_order_only",
    "deform_conv2d",
    "torchvision_deform_conv2d_available",
]

IntPair = Union[int, tuple[int, int]]

#: Setting this environment variable to "1" forces the pure-PyTorch path even on CUDA,
#: e.g. to rule the compiled kernel out when chasing a numerical difference.
DISABLE_TORCHVISION_ENV = "UWDET_DISABLE_TORCHVISION_DCN"


def _pair(value: IntPair, name: str) -> tuple[int, int]:
    """Normalise int-or-pair arguments the way ``nn.Conv2d`` accepts them."""
    if isinstance(value, int):
        return (value, value)
    pair = tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) for v in pair):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return (pair[0], pair[1])


@functools.lru_cache(maxsize=1)
def _load_torchvision_deform_conv2d() -> Optional[Callable[..., Tensor]]:
    """Import torchvision's kernel once, tolerating every way an install can be broken.

    A torchvision built against another torch either fails to import (ImportError /
    OSError from the shared library loader / RuntimeError from its version check) or
    imports but has not registered its custom ops; both must degrade to the pure-PyTorch
    path instead of breaking the package import, hence the lazy, cached, defensive load.
    """
    try:
        from torchvision.ops import deform_conv2d as tv_deform_conv2d  # type: ignore[import-not-found]

        # Import can succeed while the C++ op library failed to load; touching the op
        # surfaces that here rather than on the first forward pass.
        _ = torch.ops.torchvision.deform_conv2d
    except (ImportError, OSError, RuntimeError, AttributeError):
        return None
    return tv_deform_conv2d


def torchvision_deform_conv2d_available() -> bool:
    """Whether the compiled torchvision kernel can be used (CUDA inputs only use it)."""
    return _load_torchvision_deform_conv2d() is not None


def _use_fast_path(input: Tensor) -> bool:
    """Only CUDA gains from the compiled kernel; on CPU the grid_sample path is as fast."""
    if not input.is_cuda or os.environ.get(DISABLE_TORCHVISION_ENV) == "1":
        return False
    return torchvision_deform_conv2d_available()


def _check_shape(name: str, tensor: Tensor, expected: tuple[int, ...]) -> None:
    if tuple(tensor.shape) != expected:
        raise ValueError(
            f"deform_conv2d: {name} has shape {tuple(tensor.shape)}, expected {expected}"
        )


def _validate(
    input: Tensor,
    offset: Tensor,
    weight: Tensor,
    bias: Optional[Tensor],
    mask: Optional[Tensor],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
) -> tuple[int, int, int, int]:
    """Check every layout assumption up front and return (groups, offset_groups, H_out, W_out).

    Why so thorough: a wrong channel count would otherwise surface as an opaque
    reshape or conv2d error deep inside, or worse, silently broadcast.
    """
    for name, t in (("input", input), ("offset", offset), ("weight", weight)):
        if t.dim() != 4:
            raise ValueError(f"deform_conv2d: {name} must be 4-D, got shape {tuple(t.shape)}")
    if min(stride) < 1 or min(dilation) < 1 or min(padding) < 0:
        raise ValueError(
            f"deform_conv2d: need stride >= 1, dilation >= 1, padding >= 0; got "
            f"stride={stride}, dilation={dilation}, padding={padding}"
        )
    batch, c_in, height, width = input.shape
    c_out, c_in_per_group, kh, kw = weight.shape
    if c_in_per_group == 0 or c_in % c_in_per_group != 0:
        raise ValueError(
            f"deform_conv2d: weight has shape {tuple(weight.shape)}; its dim 1 "
            f"({c_in_per_group}) must divide the input channels ({c_in})"
        )
    groups = c_in // c_in_per_group
    if c_out % groups != 0:
        raise ValueError(
            f"deform_conv2d: weight has {c_out} output channels, not divisible by the "
            f"{groups} groups implied by input channels {c_in} / weight dim 1 {c_in_per_group}"
        )
    h_out = (height + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    w_out = (width + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    if h_out < 1 or w_out < 1:
        raise ValueError(
            f"deform_conv2d: input of spatial size {(height, width)} is too small for a "
            f"{kh}x{kw} kernel with padding={padding}, dilation={dilation}"
        )
    k = kh * kw
    offset_channels = offset.shape[1]
    offset_groups = offset_channels // (2 * k)
    if offset_channels % (2 * k) != 0 or offset_groups == 0 or c_in % offset_groups != 0:
        raise ValueError(
            f"deform_conv2d: offset has shape {tuple(offset.shape)}, expected "
            f"({batch}, 2*offset_groups*{kh}*{kw}, {h_out}, {w_out}) with offset_groups "
            f"dividing the {c_in} input channels, e.g. ({batch}, {2 * k}, {h_out}, {w_out})"
        )
    _check_shape("offset", offset, (batch, 2 * offset_groups * k, h_out, w_out))
    if mask is not None:
        if mask.dim() != 4:
            raise ValueError(f"deform_conv2d: mask must be 4-D, got shape {tuple(mask.shape)}")
        _check_shape("mask", mask, (batch, offset_groups * k, h_out, w_out))
    if bias is not None:
        _check_shape("bias", bias, (c_out,))
    return groups, offset_groups, h_out, w_out


def _tap_grid(
    offset: Tensor,
    in_size: tuple[int, int],
    kernel: tuple[int, int],
    out_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    offset_groups: int,
    dtype: torch.dtype,
) -> Tensor:
    """Sampling positions of shape (B, G, kh, kw, H_out, W_out, 2) in grid_sample's normalised units.

    Tap-major: ``[b, g, i, j, oy, ox]`` is where kernel tap ``(i, j)`` of output cell ``(oy, ox)`` reads offset
    group ``g``. Both evaluation orders below are views or one permute of this.
    """
    height, width = in_size
    kh, kw = kernel
    h_out, w_out = out_size
    batch = offset.shape[0]
    device = offset.device
    off = offset.to(dtype).view(batch, offset_groups, kh, kw, 2, h_out, w_out)

    # Undeformed tap positions, laid out to broadcast against (B, G, kh, kw, H_out, W_out).
    base_y = (
        torch.arange(h_out, device=device, dtype=dtype).view(1, h_out) * stride[0]
        - padding[0]
        + torch.arange(kh, device=device, dtype=dtype).view(kh, 1) * dilation[0]
    ).view(1, 1, kh, 1, h_out, 1)
    base_x = (
        torch.arange(w_out, device=device, dtype=dtype).view(1, w_out) * stride[1]
        - padding[1]
        + torch.arange(kw, device=device, dtype=dtype).view(kw, 1) * dilation[1]
    ).view(1, 1, 1, kw, 1, w_out)
    y = base_y + off[:, :, :, :, 0]
    x = base_x + off[:, :, :, :, 1]

    # align_corners=False maps pixel p to (2p + 1)/size - 1; unlike the align_corners=True
    # form it has no division by (size - 1), so a 1-pixel-wide map needs no special case.
    return torch.stack(((2.0 * x + 1.0) / width - 1.0, (2.0 * y + 1.0) / height - 1.0), dim=-1)


def _projection_is_cheaper(
    c_in: int, c_out: int, groups: int, offset_groups: int, in_pixels: int, out_pixels: int
) -> bool:
    """Whether to project the channels before sampling (see ``_deform_conv2d_projected``).

    Bilinear sampling dominates the block order on a CPU and touches ``C_in`` channels per tap; projecting
    first samples ``G * C_out`` instead. The multiply-adds stay the same when the 1x1 projection runs on no more
    pixels than there are output cells, i.e. a same-padded stride-1 layer (allowed: 10 % more, a valid 3x3 on a
    map of 44 pixels or more a side). A prediction head (64 channels in, A * (4 + classes) = 27 out, same padding)
    samples 2.4x less. Grouped convolutions keep the block order, the only one written for them.
    """
    return groups == 1 and offset_groups * c_out < c_in and in_pixels <= 1.1 * out_pixels


_block_order_forced = False


@contextlib.contextmanager
def block_order_only() -> Iterator[None]:
    """Within this block every call takes the block order, as before session 19: for A/B timings
    (``scripts/bench_inference_rewrites.py``) and for ruling the projected order out when chasing a difference."""
    global _block_order_forced
    before, _block_order_forced = _block_order_forced, True
    try:
        yield
    finally:
        _block_order_forced = before


def _deform_conv2d_blocks(
    input: Tensor, grid: Tensor, weight: Tensor, bias: Optional[Tensor], mask: Optional[Tensor],
    groups: int, offset_groups: int,
) -> Tensor:
    """Sample every tap of every output cell into a ``kh x kw`` block, then one strided conv2d.

    A convolution with ``stride == kernel_size`` over the block tensor sees each block once, at the matching
    kernel position, so it is exactly the deformable convolution; works for every group layout.
    """
    batch, c_in, height, width = input.shape
    _, _, kh, kw, h_out, w_out, _ = grid.shape
    # (B, G, kh, kw, H_out, W_out, 2) -> (B*G, H_out*kh, W_out*kw, 2): row oy*kh + i, column ox*kw + j
    blocks = grid.permute(0, 1, 4, 2, 5, 3, 6).reshape(batch * offset_groups, h_out * kh, w_out * kw, 2)
    # Folding the offset groups into the batch lets one grid_sample call give every
    # channel chunk its own sampling positions.
    grouped = input.reshape(batch * offset_groups, c_in // offset_groups, height, width)
    sampled = F.grid_sample(
        grouped, blocks.to(input.dtype), mode="bilinear", padding_mode="zeros", align_corners=False
    )
    if mask is not None:
        # (B, G*kh*kw, H_out, W_out) -> (B*G, 1, H_out, kh, W_out, kw) to match the blocks.
        m = mask.to(sampled.dtype).view(batch, offset_groups, kh, kw, h_out, w_out)
        m = m.permute(0, 1, 4, 2, 5, 3).reshape(batch * offset_groups, 1, h_out * kh, w_out * kw)
        sampled = sampled * m
    sampled = sampled.reshape(batch, c_in, h_out * kh, w_out * kw)
    return F.conv2d(sampled, weight, bias, stride=(kh, kw), groups=groups)


def _deform_conv2d_projected(
    input: Tensor, grid: Tensor, weight: Tensor, bias: Optional[Tensor], mask: Optional[Tensor],
    offset_groups: int,
) -> Tensor:
    """Project the input onto every tap's output channels with a 1x1 conv, then sample the projections.

    Exact because bilinear sampling with zero padding is linear in the sampled values:
    ``sum_c W[o, c, i, j] * sample(F_c, p_ij) = sample(sum_c W[o, c, i, j] * F_c, p_ij)``. Only for conv
    groups == 1; offset group ``g`` projects its own input-channel chunk and follows its own taps.
    """
    batch, c_in, height, width = input.shape
    c_out, _, kh, kw = weight.shape
    _, _, _, _, h_out, w_out, _ = grid.shape
    taps = offset_groups * kh * kw
    chunk = c_in // offset_groups
    # (C_out, G*chunk, kh, kw) -> (G*kh*kw*C_out, chunk, 1, 1): output channel (g*kh*kw + i*kw + j)*C_out + o
    projection = (
        weight.reshape(c_out, offset_groups, chunk, kh, kw).permute(1, 3, 4, 0, 2).reshape(taps * c_out, chunk, 1, 1)
    )
    projected = F.conv2d(input, projection, groups=offset_groups).reshape(batch * taps, c_out, height, width)
    sampled = F.grid_sample(
        projected, grid.reshape(batch * taps, h_out, w_out, 2).to(projected.dtype),
        mode="bilinear", padding_mode="zeros", align_corners=False,
    ).reshape(batch, taps, c_out, h_out, w_out)
    if mask is not None:
        sampled = sampled * mask.to(sampled.dtype).reshape(batch, taps, 1, h_out, w_out)
    # The taps are summed in float32 at least (the block order's conv accumulates in float32 too), and the result
    # comes back in the projection's dtype, so both orders return the same dtype under autocast and in half
    # precision.
    acc = torch.float64 if projected.dtype == torch.float64 else torch.float32
    out = sampled.sum(dim=1, dtype=acc)
    if bias is not None:
        out = out + bias.to(acc).view(1, c_out, 1, 1)
    return out.to(projected.dtype)


def deform_conv2d(
    input: Tensor,
    offset: Tensor,
    weight: Tensor,
    bias: Optional[Tensor] = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    mask: Optional[Tensor] = None,
) -> Tensor:
    """Deformable 2-D convolution with ``torchvision.ops.deform_conv2d``'s contract.

    Shapes: input (B, C_in, H, W); weight (C_out, C_in/groups, kh, kw), with ``groups``
    inferred as ``C_in // weight.shape[1]``; offset (B, 2*G*kh*kw, H_out, W_out), where
    for offset group ``g`` and row-major kernel position ``k`` channel ``2*(g*kh*kw + k)``
    is the row (y) displacement and the next one the column (x) displacement; mask
    (B, G*kh*kw, H_out, W_out) for DCNv2 modulation. The G offset groups split the input
    channels into equal consecutive chunks that each follow their own offsets.

    Sampling coordinates are computed in float32 (float64 for float64 inputs) even when
    the features are half precision: offsets are sub-pixel quantities added to pixel
    positions that can be in the hundreds, where fp16 resolves only 0.25-0.5 px. The
    finished grid is cast to the input dtype only because ``grid_sample`` requires
    matching dtypes; in the normalised [-1, 1] range fp16 keeps about ``W * 2.4e-4`` px.
    """
    stride_ = _pair(stride, "stride")
    padding_ = _pair(padding, "padding")
    dilation_ = _pair(dilation, "dilation")
    groups, offset_groups, h_out, w_out = _validate(
        input, offset, weight, bias, mask, stride_, padding_, dilation_
    )

    if _use_fast_path(input):
        tv_op = _load_torchvision_deform_conv2d()
        assert tv_op is not None  # guaranteed by _use_fast_path
        # the compiled kernel needs one dtype for all operands (the pure path keeps offsets in fp32)
        offset = offset.to(input.dtype)
        mask = None if mask is None else mask.to(input.dtype)
        return tv_op(
            input, offset, weight, bias,
            stride=stride_, padding=padding_, dilation=dilation_, mask=mask,
        )

    batch, c_in, height, width = input.shape
    kh, kw = weight.shape[2], weight.shape[3]
    grid_dtype = torch.float64 if input.dtype == torch.float64 else torch.float32
    grid = _tap_grid(
        offset, (height, width), (kh, kw), (h_out, w_out),
        stride_, padding_, dilation_, offset_groups, grid_dtype,
    )
    if not _block_order_forced and _projection_is_cheaper(
        c_in, weight.shape[0], groups, offset_groups, height * width, h_out * w_out
    ):
        return _deform_conv2d_projected(input, grid, weight, bias, mask, offset_groups)
    return _deform_conv2d_blocks(input, grid, weight, bias, mask, groups, offset_groups)


class DeformConv2d(nn.Module):
    """``nn.Conv2d``-like layer whose sampling grid is deformed by caller-supplied offsets.

    The offsets (and optional DCNv2 mask) are forward arguments rather than an internal
    predictor so that the caller decides what drives them, e.g. features from a
    neighbouring frame in the temporal refinement heads. The offset group count is taken
    from the offset tensor, exactly as in torchvision.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair,
        stride: IntPair = 1,
        padding: IntPair = 0,
        dilation: IntPair = 1,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if groups < 1 or in_channels % groups != 0 or out_channels % groups != 0:
            raise ValueError(
                f"DeformConv2d: in_channels ({in_channels}) and out_channels ({out_channels}) "
                f"must both be divisible by groups ({groups})"
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = _pair(stride, "stride")
        self.padding = _pair(padding, "padding")
        self.dilation = _pair(dilation, "dilation")
        self.groups = groups
        self.weight = nn.Parameter(
            torch.empty(out_channels, in_channels // groups, *self.kernel_size)
        )
        if bias:
            self.bias: Optional[nn.Parameter] = nn.Parameter(torch.empty(out_channels))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Same init as ``nn.Conv2d`` so swapping a plain conv for this one keeps its scale."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * self.weight.shape[2] * self.weight.shape[3]
            bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor, offset: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """Apply the deformable convolution; see :func:`deform_conv2d` for layouts."""
        return deform_conv2d(
            x, offset, self.weight, self.bias,
            stride=self.stride, padding=self.padding, dilation=self.dilation, mask=mask,
        )

    def extra_repr(self) -> str:
        s = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}"
        )
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s
