"""Inference rewrites (models.inference): BatchNorm folding (same outputs, fewer layers, never saved, never in
training) and channels-last weights (same outputs, another memory layout, CPU only).

The shipped-model case runs the real vehicle-default file through both paths the detector can take.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from underwater_detection.data.synthetic.sequence import SequenceConfig, SyntheticSequence
from underwater_detection.engine.temporal import TemporalDetector
from underwater_detection.models.checkpoint import CheckpointError, load_model, save_checkpoint
from underwater_detection.models.inference import (
    channels_last_pays,
    fold_batch_norm,
    is_channels_last,
    is_folded,
    prepare_for_inference,
    to_channels_last,
)
from underwater_detection.models import inference
from underwater_detection.models.registry import build_model
from underwater_detection.models.spec import load_model_spec
from underwater_detection.ops import deform_conv

CLASSES = ["sea_cucumber", "sea_urchin", "scallop", "starfish"]
MODELS = Path(__file__).resolve().parents[1] / "models"


def _randomise_batch_norms(model: nn.Module, seed: int = 0) -> None:
    """Fresh BatchNorms are the identity (mean 0, var 1, gamma 1, beta 0); folding those proves nothing."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(0.5 * torch.randn(n, generator=gen))
            m.running_var.copy_(0.2 + torch.rand(n, generator=gen))
            m.weight.data.copy_(1.0 + 0.3 * torch.randn(n, generator=gen))
            m.bias.data.copy_(0.3 * torch.randn(n, generator=gen))


def _tdrnet(size: int = 128) -> nn.Module:
    spec = load_model_spec("tdrnet_lite_tcb").with_input_size(size, size)
    model = build_model(spec, len(CLASSES), pretrained_backbone=False)
    _randomise_batch_norms(model)
    return model.eval()


def _outputs(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        out = model(x)
    return [out.loc, out.conf, out.arm_loc]


def test_folding_keeps_the_outputs_and_removes_every_lite_batch_norm() -> None:
    model = _tdrnet()
    norms = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    x = torch.randn(2, 3, 128, 128)
    before = _outputs(model, x)
    assert fold_batch_norm(model) == norms > 40  # two lite backbones and the TCB neck
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules()) and is_folded(model)
    for want, got in zip(before, _outputs(model, x), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_folding_refuses_a_model_in_training_mode() -> None:
    model = _tdrnet().train()
    with pytest.raises(ValueError, match="training mode"):
        fold_batch_norm(model)
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules()) and not is_folded(model)


def test_one_part_in_training_mode_stops_folding_before_anything_changes() -> None:
    model = _tdrnet()
    model.rd.neck.train()
    norms = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    with pytest.raises(ValueError, match="rd.neck is in training mode"):
        fold_batch_norm(model)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == norms and not is_folded(model)


def test_folding_a_part_marks_the_whole_model_as_unsaveable(tmp_path: Path) -> None:
    model = _tdrnet()
    assert fold_batch_norm(model.rd) > 0
    assert is_folded(model)
    spec = load_model_spec("tdrnet_lite_tcb").with_input_size(128, 128)
    with pytest.raises(CheckpointError, match="folded for inference"):
        save_checkpoint(tmp_path / "m.pt", model, spec, CLASSES)


class _BranchyBlock(nn.Module):
    """conv and norm registered next to each other, but the norm reads the input, not the conv's output."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.norm = nn.BatchNorm2d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.norm(x)


def test_only_sequential_containers_are_rewritten() -> None:
    block = _BranchyBlock()
    _randomise_batch_norms(block)
    block.eval()
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        want = block(x)
        assert fold_batch_norm(block) == 0
        torch.testing.assert_close(block(x), want, rtol=0, atol=0)
    assert isinstance(block.norm, nn.BatchNorm2d)


def test_a_folded_model_cannot_be_saved_but_loads_folded_from_an_ordinary_file(tmp_path: Path) -> None:
    model = _tdrnet()
    spec = load_model_spec("tdrnet_lite_tcb").with_input_size(128, 128)
    path = save_checkpoint(tmp_path / "m.pt", model, spec, CLASSES)
    plain, _ = load_model(path)
    folded, _ = load_model(path, fold_batch_norm=True)
    assert not is_folded(plain) and is_folded(folded)
    x = torch.randn(1, 3, 128, 128)
    for want, got in zip(_outputs(plain, x), _outputs(folded, x), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    with pytest.raises(CheckpointError, match="folded for inference"):
        save_checkpoint(tmp_path / "again.pt", folded, spec, CLASSES)
    assert not (tmp_path / "again.pt").exists()


def test_the_detector_runs_the_shipped_default_folded_with_the_same_detections() -> None:
    path = MODELS / "tdrnet_lite_tcb_480_videos.pt"
    detector = TemporalDetector.from_checkpoint(path, device="cpu", tracking=False)
    assert is_folded(detector.model) and is_channels_last(detector.model)
    plain_model, ckpt = load_model(path)
    plain = TemporalDetector(plain_model, ckpt.spec, ckpt.class_names, ckpt.preprocess, tracking=False)
    seq = SyntheticSequence(3, SequenceConfig(num_frames=3, preset="clear"))
    for i in range(3):  # a key frame and two frames on its references
        frame = seq.frame(i).image
        a = detector.detect(frame, stamp=0.1 * i, color="rgb")
        b = plain.detect(frame, stamp=0.1 * i, color="rgb")
        confident = b.scores > 0.3  # away from the 0.01 floor, where rounding could add or drop a box
        assert confident.sum() > 0, "the scene should hold objects the default finds"
        n = int(confident.sum())
        np.testing.assert_allclose(a.scores[:n], b.scores[:n], atol=1e-4)
        np.testing.assert_array_equal(a.labels[:n], b.labels[:n])
        np.testing.assert_allclose(a.boxes[:n], b.boxes[:n], atol=0.05)


def _randomise_feature_offsets(model: nn.Module, seed: int = 1) -> None:
    """Fresh feature-offset convs are zero, so the deformable head would sample its plain grid; make it deform."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for conv in model.rg.feature_offsets.modules():
            if isinstance(conv, nn.Conv2d):
                conv.weight.copy_(0.05 * torch.randn(conv.weight.shape, generator=gen))


@pytest.mark.parametrize("order", ["auto", "blocks"])
def test_channels_last_keeps_the_outputs_of_a_deforming_key_frame_sequence(order: str) -> None:
    """Both sampling orders of the deformable head (the block one is what larger inputs or other heads take), on
    a batch of two streams."""
    model = _tdrnet()
    _randomise_feature_offsets(model)
    fold_batch_norm(model)
    assert not is_channels_last(model)
    frames = [torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    with torch.no_grad(), (deform_conv.block_order_only() if order == "blocks" else contextlib.nullcontext()):
        refs = model.reference(frames[0])
        want = [model.detect(f, refs) for f in frames]
        to_channels_last(model)
        assert is_channels_last(model)
        refs = model.reference(frames[0])  # plain NCHW input, as the detector feeds it
        got = [model.detect(f, refs) for f in frames]
    assert got[0].loc.abs().max() > 0
    for a, b in zip(want, got, strict=True):
        torch.testing.assert_close(b.loc, a.loc, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(b.conf, a.conf, rtol=1e-4, atol=1e-4)


def test_a_model_of_layout_neutral_weights_is_not_taken_for_channels_last() -> None:
    """1x1 and depthwise weights are contiguous in both layouts: they alone prove no conversion."""
    neutral = nn.Sequential(nn.Conv2d(8, 8, 1), nn.Conv2d(8, 8, 3, groups=8))
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in neutral.parameters() if p.dim() == 4)
    assert not is_channels_last(neutral)
    mixed = nn.Sequential(nn.Conv2d(3, 8, 3), *neutral)
    assert not is_channels_last(mixed) and is_channels_last(to_channels_last(mixed))


def test_prepare_for_inference_folds_and_stores_channels_last_on_the_cpu_only() -> None:
    cpu = prepare_for_inference(_tdrnet(), torch.device("cpu"))
    assert is_folded(cpu) and is_channels_last(cpu)
    elsewhere = _tdrnet()
    with pytest.MonkeyPatch.context() as patch:  # no GPU here: only the layout decision for another device is checked
        patch.setattr(inference, "channels_last_pays", lambda device: False)
        prepare_for_inference(elsewhere, "cpu")
    assert is_folded(elsewhere) and not is_channels_last(elsewhere)


def test_channels_last_is_chosen_for_the_cpu_only() -> None:
    assert channels_last_pays("cpu") and channels_last_pays(torch.device("cpu"))
    assert not channels_last_pays("cuda") and not channels_last_pays(torch.device("cuda", 0))
