"""scripts/write_model_cards.py: a shipped model trained in cycles gets every cycle on its card, read from the
checkpoints themselves (each cycle's recipe names the one before it)."""
import importlib.util
import shutil
from pathlib import Path

import pytest

from test_trainer import coco, recipe  # noqa: F401 - fixture
from underwater_detection.engine.train_config import InitConfig
from underwater_detection.engine.trainer import train
from underwater_detection.models.checkpoint import read_checkpoint

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "write_model_cards.py"


@pytest.fixture(scope="module")
def cards():
    spec = importlib.util.spec_from_file_location("write_model_cards", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cycle(tmp_path, data, model, iterations, seed, init=None):
    cfg = recipe(tmp_path, data, model=model, iterations=iterations)
    cfg.seed, cfg.init = seed, init
    return train(cfg, device="cpu", show_progress=False)


def test_three_cycles_are_listed_first_to_last_with_their_budgets(tmp_path, coco, cards):  # noqa: F811
    modules = ["backbone", "loc_head", "conf_head"]
    first = cycle(tmp_path / "c1", coco, "ssd4s_lite", 2, seed=0)
    second = cycle(tmp_path / "c2", coco, "ssd4s_lite", 1, seed=1, init=InitConfig(str(first), modules, freeze=False))
    third = cycle(tmp_path / "c3", coco, "ssd4s_lite", 3, seed=2, init=InitConfig(str(second), modules, freeze=False))
    shipped = tmp_path / "models" / "ssd4s_lite.pt"
    shipped.parent.mkdir()
    shutil.copy(third, shipped)
    ckpt = read_checkpoint(shipped)
    cycles, shared = cards.training_cycles(shipped, ckpt)
    assert [(c["iterations"], c["seed"]) for c in cycles] == [(2, 0), (1, 1), (3, 2)] and shared is None
    text = cards.card(shipped, ckpt, {}, {})
    assert "3 cycles, 6 iterations x batch 4" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [r.split(" | ")[0] for r in rows] == ["| 1", "| 2", "| 3"]


def test_a_frozen_rg_from_another_model_ends_the_walk_and_is_named(tmp_path, coco, cards):  # noqa: F811
    tdrnet = cycle(tmp_path / "tdr", coco, "tdrnet_lite", 1, seed=0)
    trnet = cycle(tmp_path / "tr", coco, "trnet_lite", 1, seed=0, init=InitConfig(str(tdrnet), ["rg"], freeze=True))
    cycles, shared = cards.training_cycles(trnet, read_checkpoint(trnet))
    assert len(cycles) == 1 and shared == f"rg from `{tdrnet}` (tdrnet_lite), frozen"


def test_an_earlier_cycle_no_longer_on_disk_is_said_not_guessed(tmp_path, coco, cards):  # noqa: F811
    modules = ["backbone", "loc_head", "conf_head"]
    first = cycle(tmp_path / "c1", coco, "ssd4s_lite", 1, seed=0)
    second = cycle(tmp_path / "c2", coco, "ssd4s_lite", 1, seed=1, init=InitConfig(str(first), modules, freeze=False))
    first.unlink()
    ckpt = read_checkpoint(second)
    cycles, _ = cards.training_cycles(second, ckpt)
    assert cycles[0] == {"missing": str(first), "why": "file not on this machine"} and len(cycles) == 2
    assert "file not on this machine" in cards.card(second, ckpt, {}, {})


def test_a_start_point_overwritten_by_its_own_result_is_not_walked_in_a_circle(tmp_path, coco, cards):  # noqa: F811
    """Cycle 2 started from a file that now holds cycle 2 itself (a models/ path reused): say so and stop."""
    modules = ["backbone", "loc_head", "conf_head"]
    shipped = tmp_path / "ssd4s_lite.pt"
    shutil.copy(cycle(tmp_path / "c1", coco, "ssd4s_lite", 1, seed=0), shipped)
    second = cycle(tmp_path / "c2", coco, "ssd4s_lite", 1, seed=1, init=InitConfig(str(shipped), modules, freeze=False))
    shutil.copy(second, shipped)
    cycles, _ = cards.training_cycles(shipped, read_checkpoint(shipped))
    assert cycles[0]["why"].startswith("already listed") and len(cycles) == 2


def test_relative_start_points_are_read_from_the_repository_root(tmp_path, coco, cards, monkeypatch):  # noqa: F811
    modules = ["backbone", "loc_head", "conf_head"]
    monkeypatch.setattr(cards, "REPO", tmp_path)
    first = cycle(tmp_path / "c1", coco, "ssd4s_lite", 1, seed=0)
    relative = first.relative_to(tmp_path)
    second = cycle(tmp_path / "c2", coco, "ssd4s_lite", 1, seed=1, init=InitConfig(str(first), modules, freeze=False))
    ckpt = read_checkpoint(second)
    ckpt.provenance["recipe"]["init"]["checkpoint"] = str(relative)  # as a recipe under config/train writes it
    monkeypatch.chdir(tmp_path.parent)  # not where the relative path starts
    cycles, _ = cards.training_cycles(second, ckpt)
    assert [c.get("seed") for c in cycles] == [0, 1]


def test_a_model_the_results_file_does_not_cover_keeps_its_embedded_metrics(tmp_path, coco, cards, monkeypatch):  # noqa: F811
    """`uwdet results --models A` then write_model_cards.py: A's card and file get the new figures, every other
    model keeps the figures an earlier run stored in its checkpoint (not "Not evaluated yet")."""
    import json
    import sys

    from underwater_detection.models.checkpoint import load_model, save_checkpoint

    models = tmp_path / "models"
    models.mkdir()
    for name in ("ssd4s_lite", "drnet_lite"):
        shutil.copy(cycle(tmp_path / name, coco, name, 1, seed=0), models / f"{name}.pt")
    old = {"voc_map50": 0.4321, "coco_ap": 0.2, "coco_ap50": 0.43, "forward_fps": 12.5, "ap50_per_class": {}}
    model, ckpt = load_model(models / "drnet_lite.pt", "cpu")
    save_checkpoint(models / "drnet_lite.pt", model, ckpt.spec, ckpt.class_names, provenance=ckpt.provenance,
                    metrics={"test_split": "old/test.json", "per_frame": old})
    row = {"model": "ssd4s_lite", "key_interval": None, "soft_coefficient": None, "voc_map50": 0.1234,
           "coco": {"AP": 0.05, "AP50": 0.12}, "forward_fps": 99.0, "ap50_per_class": {}}
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"data": "new/test.json", "command": "uwdet results --models ssd4s_lite",
                                   "rows": [row]}))
    monkeypatch.setattr(sys, "argv", ["write_model_cards.py", "--models-dir", str(models), "--results", str(results)])
    assert cards.main() == 0
    text = (models / "README.md").read_text()
    drnet_card = text[text.index("## drnet_lite"):]
    assert "| per_frame | 43.2 |" in drnet_card and "old/test.json" in drnet_card and "Not evaluated" not in text
    assert "| per_frame | 12.3 |" in text[text.index("## ssd4s_lite"):text.index("## drnet_lite")]
    assert read_checkpoint(models / "drnet_lite.pt").metrics["per_frame"]["voc_map50"] == 0.4321
    new = read_checkpoint(models / "ssd4s_lite.pt").metrics
    assert new["command"] == "uwdet results --models ssd4s_lite" and new["per_frame"]["voc_map50"] == 0.1234
