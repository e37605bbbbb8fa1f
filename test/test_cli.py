"""The ``uwdet`` command line, run as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from underwater_detection.models.checkpoint import CheckpointError, save_checkpoint
from underwater_detection.models.registry import build_model
from underwater_detection.models.spec import available_model_specs, load_model_spec

REPO = Path(__file__).resolve().parents[1]
CLASSES = ["sea_cucumber", "sea_urchin", "scallop", "starfish"]


def uwdet(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "underwater_detection.cli", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("uwdet: error:")]
    assert len(errors) == 1, proc.stderr
    for frag in fragments:
        assert frag in errors[0], errors[0]
    assert proc.stdout == ""
    return errors[0]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    spec = load_model_spec("ssd4s_lite")
    model = build_model(spec, len(CLASSES))
    path = tmp_path_factory.mktemp("ckpt") / "ssd4s_lite.pt"
    return save_checkpoint(path, model, spec, CLASSES, provenance={"seed": 0}, metrics={"mAP": 0.25})


def test_models_lists_every_config():
    proc = uwdet("models")
    assert proc.returncode == 0, proc.stderr
    names = [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]
    assert names == available_model_specs()
    assert {p.stem for p in (REPO / "config" / "models").glob("*.yaml")} <= set(names)
    line = next(line for line in proc.stdout.splitlines() if line.startswith("drnet_lite "))
    assert "drnet" in line.split()[1] and "backbone=lite" in line


def test_bench_models_table_and_json(tmp_path):
    out = tmp_path / "bench" / "rows.json"
    proc = uwdet(
        "bench-models", "--models", "ssd4s_lite", "--backbones", "lite", "--temporal", "--repeats", "2", "--warmup", "1",
        "--size", "128", "--threads", "1", "--json", str(out),
    )
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[0].split("|")[1].strip() == "name"
    body = [[cell.strip() for cell in r.split("|")[1:-1]] for r in rows[1:]]
    assert [(r[0], r[1]) for r in body] == [("ssd4s_lite", "model"), ("lite", "backbone")]
    assert "128x128" in proc.stdout and "median of 2 after 1 warm-up" in proc.stdout
    assert f"wrote {out}" in proc.stdout

    payload = json.loads(out.read_text())
    assert payload["environment"]["threads"] == 1
    assert payload["environment"]["torch"] == torch.__version__
    assert [(r["name"], r["kind"]) for r in payload["rows"]] == [("ssd4s_lite", "model"), ("lite", "backbone")]
    for row in payload["rows"]:
        assert row["params_m"] > 0 and row["gflops"] > 0
        assert 0 < row["forward_ms_median"] <= row["forward_ms_p90"]
        assert row["input_size"] == [128, 128] and row["repeats"] == 2
    # the model contains the backbone, so it is bigger on both counts
    model, backbone = payload["rows"]
    assert model["params_m"] > backbone["params_m"] and model["gflops"] > backbone["gflops"]
    # the table shows the same numbers as the JSON
    assert float(body[0][2]) == pytest.approx(model["params_m"], abs=0.006)


def test_bench_models_temporal_rows_have_k_and_ratio_to_drnet(tmp_path):
    out = tmp_path / "rows.json"
    proc = uwdet(
        "bench-models", "--models", "--backbones", "--temporal", "trnet_lite", "-k", "1", "4", "--repeats", "4",
        "--warmup", "1", "--size", "128", "--threads", "1", "--sequence-length", "8", "--json", str(out),
    )
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(out.read_text())["rows"]
    assert [(r["name"], r["kind"], r["key_interval"]) for r in rows] == [
        ("drnet_lite", "model", None), ("trnet_lite", "temporal", 1), ("trnet_lite", "temporal", 4)
    ]
    drnet = rows[0]["forward_ms_median"]
    for r in rows[1:]:
        assert r["speedup_vs_drnet"] == pytest.approx(drnet / r["forward_ms_median"])
        assert 0 < r["reference_ms"] and 0 < r["refinement_ms"]
    assert "trnet_lite k=4" in proc.stdout


def test_bench_models_times_a_probe_config_by_path_against_its_familys_drnet(tmp_path):
    out = tmp_path / "rows.json"
    probe = Path(__file__).resolve().parents[1] / "config" / "probes" / "tdrnet_lite_a3.yaml"  # not a config name
    proc = uwdet(
        "bench-models", "--models", "--backbones", "--temporal", str(probe), "-k", "4", "--repeats", "2",
        "--warmup", "0", "--size", "128", "--threads", "1", "--sequence-length", "4", "--json", str(out),
    )
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(out.read_text())["rows"]
    assert [(r["name"], r["key_interval"]) for r in rows] == [("drnet_lite", None), ("tdrnet_lite_a3", 4)]


def test_bench_models_times_a_config_at_its_own_input_size_unless_size_is_given(tmp_path):
    """A probe trained at another resolution must be timed at it, with its DRNet reference at the same size;
    --size overrides every config."""
    spec = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "models" / "tdrnet_lite.yaml").read_text())
    probe = tmp_path / "tdrnet_lite_small.yaml"
    probe.write_text(yaml.safe_dump(dict(spec, name="tdrnet_lite_small", input_size=[128, 192])))
    common = ("--backbones", "lite", "--temporal", str(probe), "-k", "4", "--repeats", "2", "--warmup", "0",
              "--threads", "1", "--sequence-length", "4")
    out = tmp_path / "own.json"
    proc = uwdet("bench-models", "--models", "ssd4s_lite", *common, "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(out.read_text())["rows"]
    assert [(r["name"], r["input_size"]) for r in rows] == [
        ("ssd4s_lite", [320, 320]), ("drnet_lite", [128, 192]), ("tdrnet_lite_small", [128, 192]), ("lite", [320, 320])]
    assert "each config's own input size" in proc.stdout and "128x192 |" in proc.stdout

    out = tmp_path / "given.json"
    proc = uwdet("bench-models", "--models", "drnet_lite", *common, "--size", "128", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(out.read_text())["rows"]
    # drnet_lite was already timed at 128x128 as a model row, so it is the reference and not timed twice
    assert [(r["name"], r["input_size"]) for r in rows] == [
        ("drnet_lite", [128, 128]), ("tdrnet_lite_small", [128, 128]), ("lite", [128, 128])]
    assert rows[1]["speedup_vs_drnet"] == pytest.approx(rows[0]["forward_ms_median"] / rows[1]["forward_ms_median"])


def test_bench_models_temporal_config_without_a_drnet_family_is_a_clear_error(tmp_path):
    spec = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "models" / "tdrnet_lite.yaml").read_text())
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(dict(spec, name="mine")))
    assert_one_line_error(
        uwdet("bench-models", "--models", "--backbones", "--temporal", str(path), "--size", "128"),
        "no per-frame DRNet config to compare 'mine' with",
    )


def test_bench_models_rejects_bad_size():
    line = assert_one_line_error(uwdet("bench-models", "--size", "100"), "100x100", "multiples of 64")
    assert "320x320" in line  # says what would work


def test_bench_models_unknown_model():
    assert_one_line_error(uwdet("bench-models", "--models", "nope", "--backbones"), "'nope'", "ssd4s_lite")


def test_inspect_prints_the_model_card(checkpoint):
    proc = uwdet("inspect", str(checkpoint))
    assert proc.returncode == 0, proc.stderr
    card = json.loads(proc.stdout)
    assert card["class_names"] == CLASSES
    assert card["spec"]["name"] == "ssd4s_lite" and card["spec"]["input_size"] == [320, 320]
    assert card["provenance"]["seed"] == 0 and card["metrics"] == {"mAP": 0.25}
    assert set(card["preprocess"]) == {"mean", "std", "color"}
    assert card["tensors"] > 0 and card["parameters"] > 100_000


@pytest.mark.parametrize("kind", ["random", "truncated", "missing"])
def test_inspect_bad_file_is_one_line_error(tmp_path, checkpoint, kind):
    path = tmp_path / f"{kind}.pt"
    if kind == "random":
        path.write_bytes(np.random.default_rng(1234).bytes(4096))
    elif kind == "truncated":
        data = checkpoint.read_bytes()
        path.write_bytes(data[: len(data) // 3])
    assert_one_line_error(uwdet("inspect", str(path)), str(path))


def test_bad_arguments_exit_2():
    proc = uwdet("bench-models", "--size", "big")
    assert proc.returncode == 2 and "size must be N or HxW" in proc.stderr and "Traceback" not in proc.stderr


def test_inspect_checkpoint_with_tensor_metric(tmp_path):
    torch.manual_seed(0)
    spec = load_model_spec("ssd4s_lite")
    model = build_model(spec, len(CLASSES))
    path = tmp_path / "t.pt"
    try:
        save_checkpoint(path, model, spec, CLASSES, metrics={"mAP": torch.tensor(0.5)})
    except (TypeError, ValueError, CheckpointError):
        return  # refusing at save time would fix it too
    proc = uwdet("inspect", str(path))
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in (0, 2)


def test_train_into_a_folder_holding_a_run_is_a_one_line_error_and_keeps_the_run(tmp_path):
    import yaml

    run = tmp_path / "run"
    run.mkdir()
    (run / "model.pt").write_bytes(b"an earlier run's model")
    recipe = tmp_path / "mine.yaml"
    recipe.write_text(yaml.safe_dump({"name": "mine", "model": "ssd4s_lite", "output_dir": str(run),
                                      "data": {"train": [str(tmp_path / "data")], "class_names": CLASSES}}))
    error = assert_one_line_error(uwdet("train", "--config", str(recipe)), str(run), "model.pt", "--overwrite")
    assert "--resume" not in error  # a finished run without its training state cannot be resumed
    assert (run / "model.pt").read_bytes() == b"an earlier run's model"
    (run / "train_state.pt").write_bytes(b"an earlier run's state")
    assert_one_line_error(uwdet("train", "--config", str(recipe)), "train_state.pt", "--resume", "--overwrite")
    both = uwdet("train", "--config", str(recipe), "--resume", "--overwrite")
    assert both.returncode == 2 and "not allowed with argument" in both.stderr


def _bench_temporal_rows(tmp_path, *temporal: str, size: str | None = None):
    """A minimal bench-models run of temporal entries only; returns the process and its JSON rows."""
    out = tmp_path / "bench.json"
    sized = ("--size", size) if size else ()
    proc = uwdet("bench-models", "--models", "--backbones", *sized, "--temporal", *temporal, "-k", "4",
                 "--repeats", "1", "--warmup", "0", "--threads", "1", "--sequence-length", "4", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    return proc, json.loads(out.read_text())["rows"]


def test_bench_models_times_one_config_at_several_sizes_in_one_run(tmp_path):
    """NAME@HxW: the same config at two sizes, each with its DRNet reference at that size, in one run."""
    _, rows = _bench_temporal_rows(tmp_path, "tdrnet_lite@128x128", "tdrnet_lite@128x192")
    assert [(r["name"], r["input_size"]) for r in rows] == [
        ("drnet_lite", [128, 128]), ("tdrnet_lite", [128, 128]), ("drnet_lite", [128, 192]), ("tdrnet_lite", [128, 192])]
    assert rows[3]["speedup_vs_drnet"] == pytest.approx(rows[2]["forward_ms_median"] / rows[3]["forward_ms_median"])
    assert_one_line_error(uwdet("bench-models", "--models", "--backbones", "--temporal", "tdrnet_lite@100x100"),
                          "100x100", "multiples of 64")


def test_bench_models_sized_entries_keep_their_size_when_size_is_given(tmp_path):
    proc, rows = _bench_temporal_rows(tmp_path, "tdrnet_lite", "tdrnet_lite@192", size="128")
    assert [(r["name"], r["input_size"]) for r in rows] == [
        ("drnet_lite", [128, 128]), ("tdrnet_lite", [128, 128]), ("drnet_lite", [192, 192]), ("tdrnet_lite", [192, 192])]
    assert "NAME@HxW entries at their own" in proc.stdout
