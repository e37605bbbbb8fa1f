"""scripts/bench_inference_rewrites.py: times the four inference settings of a real (tiny) checkpoint.

Only the shape of the report and the outputs' agreement are asserted; timings belong to the benchmark, not to tests.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from script_loading import load_script
from underwater_detection.models.checkpoint import save_checkpoint
from underwater_detection.models.registry import build_model
from underwater_detection.models.spec import load_model_spec

CLASSES = ["sea_cucumber", "sea_urchin", "scallop", "starfish"]


@pytest.fixture(scope="module")
def bench():
    return load_script("bench_inference_rewrites")


def _checkpoint(tmp_path: Path, name: str) -> Path:
    """Fresh BatchNorms are the identity and fresh feature offsets zero; randomise both so agreement means something."""
    spec = load_model_spec(name).with_input_size(128, 128)
    model = build_model(spec, len(CLASSES), pretrained_backbone=False).eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(0.5 * torch.randn(m.num_features, generator=gen))
                m.running_var.copy_(0.2 + torch.rand(m.num_features, generator=gen))
                m.weight.copy_(1.0 + 0.3 * torch.randn(m.num_features, generator=gen))
        for conv in getattr(getattr(model, "rg", None), "feature_offsets", nn.Module()).modules():
            if isinstance(conv, nn.Conv2d):
                conv.weight.copy_(0.05 * torch.randn(conv.weight.shape, generator=gen))
    return save_checkpoint(tmp_path / f"{name}.pt", model, spec, CLASSES)


def _threads() -> list[str]:
    return ["--threads", str(torch.get_num_threads())]  # main() sets torch's threads: keep this process's


def test_reports_every_setting_and_the_outputs_agree(tmp_path, bench, capsys):
    path = _checkpoint(tmp_path, "tdrnet_lite_tcb")
    out = tmp_path / "rewrites.json"
    assert bench.main([str(path), "-k", "2", "--rounds", "2", "--warmup", "0", "--json", str(out), *_threads()]) == 0
    report = json.loads(out.read_text())
    (row,) = report["rows"]
    assert row["model"] == "tdrnet_lite_tcb" and row["input_size"] == [128, 128] and row["key_interval"] == 2
    assert set(row["per_frame_ms_median"]) == set(bench.SETTINGS)
    assert all(ms > 0 for ms in row["per_frame_ms_median"].values())
    assert row["speedup_vs_before"]["before"] == pytest.approx(1.0)
    assert row["max_abs_output_difference"] < 1e-3
    assert report["environment"]["threads"] == torch.get_num_threads()
    assert "| tdrnet_lite_tcb | 128x128 | 2 |" in capsys.readouterr().out


def test_a_per_frame_model_is_refused_with_a_reason(tmp_path, bench):
    path = _checkpoint(tmp_path, "drnet_lite")
    with pytest.raises(SystemExit, match="not a TRNet/TDRNet"):
        bench.main([str(path), "--rounds", "1", "--warmup", "0", *_threads()])


def test_the_block_order_is_only_forced_while_timing(tmp_path, bench):
    from underwater_detection.ops import deform_conv

    bench.main([str(_checkpoint(tmp_path, "tdrnet_lite_tcb")), "-k", "1", "--rounds", "1", "--warmup", "0", *_threads()])
    assert deform_conv._block_order_forced is False
