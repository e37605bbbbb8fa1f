"""scripts/write_model_cards.py: a shipped model trained in cycles gets every cycle on its card, read from the
checkpoints themselves: each checkpoint carries its earlier cycles (engine.lineage); older ones are walked
through each cycle's recipe, which names the one before it."""
import shutil
from pathlib import Path

import pytest

from script_loading import load_script
from test_shipped_recipes import PROMOTED_PROBES
from test_trainer import coco, recipe  # noqa: F401 - fixture
from underwater_detection.engine.lineage import EARLIER_CYCLES, INIT_SOURCE, PROMOTED_FROM, cycles_of, weights_sha256
from underwater_detection.engine.train_config import InitConfig, load_train_config
from underwater_detection.engine.trainer import train
from underwater_detection.models.checkpoint import load_model, read_checkpoint, save_checkpoint
from underwater_detection.models.shipped import CONTINUATION_CYCLES, CONTINUES, SHIPPED_MODELS, recipes_of
from underwater_detection.models.spec import load_model_spec

REPO = Path(__file__).resolve().parents[1]
MODULES = ["backbone", "loc_head", "conf_head"]


@pytest.fixture(scope="module")
def cards():
    return load_script("write_model_cards")


def cycle(tmp_path, data, model, iterations, seed, init=None):
    cfg = recipe(tmp_path, data, model=model, iterations=iterations)
    cfg.seed, cfg.init = seed, init
    return train(cfg, device="cpu", show_progress=False)


def as_legacy(path: Path) -> Path:
    """Rewrite ``path`` as a checkpoint from before session 12, which carried no history of its own."""
    model, ckpt = load_model(path, "cpu")
    provenance = {k: v for k, v in ckpt.provenance.items() if k not in (EARLIER_CYCLES, INIT_SOURCE)}
    save_checkpoint(path, model, ckpt.spec, ckpt.class_names, provenance=provenance, metrics=ckpt.metrics)
    return path


def test_three_cycles_are_listed_first_to_last_with_their_budgets(tmp_path, coco, cards):  # noqa: F811
    modules = MODULES
    first = cycle(tmp_path / "c1", coco, "ssd4s_lite", 2, seed=0)
    second = cycle(tmp_path / "c2", coco, "ssd4s_lite", 1, seed=1, init=InitConfig(str(first), modules, freeze=False))
    third = cycle(tmp_path / "c3", coco, "ssd4s_lite", 3, seed=2, init=InitConfig(str(second), modules, freeze=False))
    shipped = tmp_path / "models" / "ssd4s_lite.pt"
    shipped.parent.mkdir()
    shutil.copy(third, shipped)
    ckpt = read_checkpoint(shipped)
    cycles, shared = cards.training_cycles(shipped, ckpt)
    assert [(c["iterations"], c["seed"]) for c in cycles] == [(2, 0), (1, 1), (3, 2)] and shared is None
    text = cards.card(shipped, ckpt, cycles, shared, {}, {})
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
    second = as_legacy(cycle(tmp_path / "c2", coco, "ssd4s_lite", 1, seed=1,
                             init=InitConfig(str(first), modules, freeze=False)))
    first.unlink()
    ckpt = read_checkpoint(second)
    cycles, shared = cards.training_cycles(second, ckpt)
    assert cycles[0] == {"missing": str(first), "why": "file not on this machine"} and len(cycles) == 2
    assert "file not on this machine" in cards.card(second, ckpt, cycles, shared, {}, {})


def test_a_start_point_overwritten_by_its_own_result_is_not_walked_in_a_circle(tmp_path, coco, cards):  # noqa: F811
    """Cycle 2 started from a file that now holds cycle 2 itself (a models/ path reused): say so and stop."""
    modules = ["backbone", "loc_head", "conf_head"]
    shipped = tmp_path / "ssd4s_lite.pt"
    shutil.copy(cycle(tmp_path / "c1", coco, "ssd4s_lite", 1, seed=0), shipped)
    second = as_legacy(cycle(tmp_path / "c2", coco, "ssd4s_lite", 1, seed=1,
                             init=InitConfig(str(shipped), modules, freeze=False)))
    shutil.copy(second, shipped)
    cycles, _ = cards.training_cycles(shipped, read_checkpoint(shipped))
    assert cycles[0]["why"].startswith("already listed") and len(cycles) == 2


def test_relative_start_points_are_read_from_the_repository_root(tmp_path, coco, cards, monkeypatch):  # noqa: F811
    modules = ["backbone", "loc_head", "conf_head"]
    monkeypatch.setattr(cards, "REPO", tmp_path)
    first = cycle(tmp_path / "c1", coco, "ssd4s_lite", 1, seed=0)
    relative = first.relative_to(tmp_path)
    second = as_legacy(cycle(tmp_path / "c2", coco, "ssd4s_lite", 1, seed=1,
                             init=InitConfig(str(first), modules, freeze=False)))
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


def test_each_cycle_carries_its_history_so_a_card_needs_no_earlier_files(tmp_path, coco, cards):  # noqa: F811
    first = cycle(tmp_path / "c1", coco, "ssd4s_lite", 2, seed=0)
    second = cycle(tmp_path / "c2", coco, "ssd4s_lite", 1, seed=1, init=InitConfig(str(first), MODULES, freeze=False))
    second_sha = weights_sha256(read_checkpoint(second).state_dict)
    third = cycle(tmp_path / "c3", coco, "ssd4s_lite", 3, seed=2, init=InitConfig(str(second), MODULES, freeze=False))
    first.unlink()
    second.unlink()
    ckpt = read_checkpoint(third)
    assert [c["seed"] for c in ckpt.provenance[EARLIER_CYCLES]] == [0, 1]
    assert all(EARLIER_CYCLES not in c for c in ckpt.provenance[EARLIER_CYCLES])  # flat, not nested
    source = ckpt.provenance[INIT_SOURCE]
    assert source == {"checkpoint": str(second), "weights_sha256": second_sha, "model": "ssd4s_lite",
                      "modules": MODULES, "frozen": []}
    cycles, shared = cards.training_cycles(third, ckpt)
    assert [(c["iterations"], c["seed"]) for c in cycles] == [(2, 0), (1, 1), (3, 2)] and shared is None
    assert "3 cycles, 6 iterations" in cards.card(third, ckpt, cycles, shared, {}, {})


def test_a_start_from_another_model_records_the_source_but_not_its_history(tmp_path, coco, cards):  # noqa: F811
    tdrnet = cycle(tmp_path / "tdr", coco, "tdrnet_lite", 1, seed=0)
    trnet = cycle(tmp_path / "tr", coco, "trnet_lite", 1, seed=0, init=InitConfig(str(tdrnet), ["rg"], freeze=True))
    tdrnet.unlink()  # the card still names where the frozen RG came from
    ckpt = read_checkpoint(trnet)
    assert EARLIER_CYCLES not in ckpt.provenance
    assert ckpt.provenance[INIT_SOURCE]["model"] == "tdrnet_lite" and ckpt.provenance[INIT_SOURCE]["frozen"] == ["rg"]
    cycles, shared = cards.training_cycles(trnet, ckpt)
    assert len(cycles) == 1 and shared == f"rg from `{tdrnet}` (tdrnet_lite), frozen"


def shipped_alone(checkpoint: Path, tmp_path: Path, monkeypatch) -> Path:
    """A models/ folder holding only ``checkpoint`` as ssd4s_lite.pt, with write_model_cards.py's argv set to
    write its card without a results file."""
    import sys

    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(checkpoint, models / "ssd4s_lite.pt")
    monkeypatch.setattr(sys, "argv", ["write_model_cards.py", "--models-dir", str(models),
                                      "--results", str(tmp_path / "none.json")])
    return models


def test_a_walked_history_is_stored_so_the_next_machine_without_runs_keeps_it(tmp_path, coco, cards, monkeypatch):  # noqa: F811
    """A pre-session-12 chain: write_model_cards.py walks the files once and stores what it read in the shipped
    checkpoint; after the earlier files are gone the card is the same."""
    first = as_legacy(cycle(tmp_path / "c1", coco, "ssd4s_lite", 1, seed=0))
    second = as_legacy(cycle(tmp_path / "c2", coco, "ssd4s_lite", 2, seed=1,
                             init=InitConfig(str(first), MODULES, freeze=False)))
    models = shipped_alone(second, tmp_path, monkeypatch)
    assert cards.main() == 0
    before = (models / "README.md").read_text()
    assert "2 cycles, 3 iterations" in before
    stored = read_checkpoint(models / "ssd4s_lite.pt").provenance
    assert [c["seed"] for c in cycles_of(stored)] == [0, 1]
    first.unlink()
    assert cards.main() == 0
    assert (models / "README.md").read_text() == before


def test_a_file_that_carries_part_of_its_history_gets_the_rest_stored(tmp_path, coco, cards, monkeypatch):  # noqa: F811
    """The first cycle trained with lineage on top of older files carries only its start point's record; the
    walk finds the cycles before that, and they are stored so that they survive the files."""
    first = as_legacy(cycle(tmp_path / "c1", coco, "ssd4s_lite", 1, seed=0))
    second = as_legacy(cycle(tmp_path / "c2", coco, "ssd4s_lite", 1, seed=1,
                             init=InitConfig(str(first), MODULES, freeze=False)))
    third = cycle(tmp_path / "c3", coco, "ssd4s_lite", 1, seed=2, init=InitConfig(str(second), MODULES, freeze=False))
    assert [c["seed"] for c in read_checkpoint(third).provenance[EARLIER_CYCLES]] == [1]
    models = shipped_alone(third, tmp_path, monkeypatch)
    assert cards.main() == 0
    first.unlink()
    second.unlink()
    stored = read_checkpoint(models / "ssd4s_lite.pt")
    assert [c["seed"] for c in cycles_of(stored.provenance)] == [0, 1, 2]
    cycles, _ = cards.training_cycles(models / "ssd4s_lite.pt", stored)
    assert not any("missing" in c for c in cycles) and len(cycles) == 3


def test_the_weights_digest_survives_a_resave_and_changes_with_the_weights(tmp_path, coco):  # noqa: F811
    path = cycle(tmp_path / "c1", coco, "ssd4s_lite", 1, seed=0)
    model, ckpt = load_model(path, "cpu")
    before = weights_sha256(ckpt.state_dict)
    save_checkpoint(path, model, ckpt.spec, ckpt.class_names, provenance=ckpt.provenance, metrics={"x": {"y": 1}})
    assert weights_sha256(read_checkpoint(path).state_dict) == before
    other = cycle(tmp_path / "c2", coco, "ssd4s_lite", 1, seed=5)
    assert weights_sha256(read_checkpoint(other).state_dict) != before


def test_a_resumed_run_records_its_start_file_as_it_was_when_the_run_began(tmp_path, coco):  # noqa: F811
    start = cycle(tmp_path / "c1", coco, "ssd4s_lite", 1, seed=0)
    original = weights_sha256(read_checkpoint(start).state_dict)
    half = recipe(tmp_path / "c2", coco, model="ssd4s_lite", iterations=2)
    half.seed, half.init = 1, InitConfig(str(start), MODULES, freeze=False)
    train(half, device="cpu", show_progress=False)
    shutil.copy(cycle(tmp_path / "other", coco, "ssd4s_lite", 1, seed=7), start)  # start file replaced meanwhile
    full = recipe(tmp_path / "c2", coco, model="ssd4s_lite", iterations=3)
    full.seed, full.init = 1, InitConfig(str(start), MODULES, freeze=False)
    resumed = train(full, device="cpu", resume=True, show_progress=False)
    provenance = read_checkpoint(resumed).provenance
    assert provenance["iterations"] == 3 and provenance[INIT_SOURCE]["weights_sha256"] == original
    assert [c["seed"] for c in provenance[EARLIER_CYCLES]] == [0]


def test_an_incomplete_walk_is_not_stored_as_if_it_were_the_whole_history(tmp_path, coco, cards):  # noqa: F811
    first = cycle(tmp_path / "c1", coco, "ssd4s_lite", 1, seed=0)
    second = as_legacy(cycle(tmp_path / "c2", coco, "ssd4s_lite", 1, seed=1,
                             init=InitConfig(str(first), MODULES, freeze=False)))
    first.unlink()
    ckpt = read_checkpoint(second)
    cycles, _ = cards.training_cycles(second, ckpt)
    assert cards.with_history(ckpt.provenance, cycles, second) is ckpt.provenance


def test_the_restore_reads_every_cycle_row_of_a_card_in_order():
    restore = load_script("restore_cycle_history")
    readme = "\n".join([
        "# Shipped models", "", "## a_model", "", "| cycle | command | iterations | lr, warm-up, steps | seed | wall time | git |",
        "|---|---|---|---|---|---|---|",
        "| 1 | `uwdet train --config config/train/a.yaml` | 2000 | sgd 0.04, 200, [1400, 1800] | 0 | 74 min | 9bfb5cc |",
        "| 2 | `uwdet train --config config/train/a2.yaml --resume` | 1500 | sgd 0.02, 100, [1400, 1800] | 1 | 5 min | ccbbd87 |",
        "", "## b_model", "", "| 1 | `uwdet train --config b.yaml` | 1 | sgd 0.1, 1, [1] | 7 | 1 min | abcdef1 |", "",
    ])
    rows = restore.card_rows(readme, "a_model")
    assert [(r["cycle"], r["iterations"], r["seed"], r["minutes"], r["git"]) for r in rows] == [
        ("1", "2000", "0", "74", "9bfb5cc"), ("2", "1500", "1", "5", "ccbbd87")]
    assert rows[1]["command"] == "uwdet train --config config/train/a2.yaml --resume"
    with pytest.raises(SystemExit, match="no card for c_model"):
        restore.card_rows(readme, "c_model")


@pytest.mark.parametrize("name", [n for n in SHIPPED_MODELS if n not in CONTINUES])
def test_every_shipped_model_carries_its_whole_training_history(name):
    """What the cards are written from travels with the weights: every cycle, first to last, inside the file."""
    path = REPO / "models" / f"{name}.pt"
    assert path.is_file(), f"{path} is missing: every shipped model is committed"
    provenance = read_checkpoint(path).provenance
    cycles = cycles_of(provenance)
    assert len(cycles) == 3 and sum(int(c["iterations"]) for c in cycles) == 6000
    assert [c["seed"] for c in cycles] == [0, 1, 2]
    first_init = cycles[0]["recipe"].get("init")
    assert first_init is None or cycles[0][INIT_SOURCE]["model"] != name  # cycle 1 starts from nothing of its own
    for earlier, later in zip(cycles, cycles[1:]):
        assert later["recipe"]["init"]["checkpoint"] == earlier["recipe"]["output_dir"] + "/model.pt"


@pytest.mark.parametrize("name", sorted(CONTINUES))
def test_a_continuing_model_records_the_shipped_weights_it_started_from(name):
    """A continuing model is cycles on top of its source (CONTINUES): the first of them names the source as its
    start and holds the digest of the weights it read, which must be the shipped file's (else the card would credit
    the wrong model), and each later one starts from the one before. A run started from a file of the same spec name
    also carries that file's cycles (engine.lineage): the promoted probes trained as tdrnet_lite_tcb (or, after an
    earlier promotion, as the model itself from its shipped file, which carries the same), so a promoted file must
    carry exactly the shipped source's; r384, and any model retrained from its own recipes, trained under
    its own spec and carries none."""
    path = REPO / "models" / f"{name}.pt"
    assert path.is_file(), f"{path} is missing: every shipped model is committed"
    provenance = read_checkpoint(path).provenance
    cycles = cycles_of(provenance)
    split = len(cycles) - CONTINUATION_CYCLES.get(name, 1)
    carried, own = cycles[:split], cycles[split:]
    assert [int(c["iterations"]) for c in own] == [2000] * len(own)
    source_path = REPO / "models" / f"{CONTINUES[name]}.pt"
    source_cycles = cycles_of(read_checkpoint(source_path).provenance)
    assert carried == (source_cycles if PROMOTED_FROM in provenance else [])
    first = own[0][INIT_SOURCE]
    assert first["model"] == CONTINUES[name] and sorted(first["modules"]) == ["rd", "rg"] and first["frozen"] == []
    assert first["weights_sha256"] == weights_sha256(read_checkpoint(source_path).state_dict)
    from_shipped = []
    for earlier, later in zip(own, own[1:]):
        start = later[INIT_SOURCE]["checkpoint"]
        if start == f"models/{name}.pt":
            from_shipped.append(later[INIT_SOURCE]["weights_sha256"])
        else:
            assert start == earlier["recipe"]["output_dir"] + "/model.pt"
    # probes (promoted, or shipped as their own runs) started from the model's shipped file of their day: exactly
    # SHIPPED_BEFORE's weights, in order; a retrain by the recipes starts each cycle from the one before
    assert from_shipped in ([], list(SHIPPED_BEFORE.get(name, ())))


# The continuing models that ship a probe chain's measured weights (scripts/promote_candidate.py): the number of
# training images and the SHA-256 of the weights `uwdet results` measured. The probes themselves (one per added
# cycle, whose seeds and training files the file must record) are test_shipped_recipes.PROMOTED_PROBES, held there
# to the shipped recipes. After a retrain by `make train-shipped` a model is its recipes' own run instead.
PROMOTED = {
    "tdrnet_lite_tcb_more_data": (24000, "058aeb6ff37893a24e955ea5092065a6933de4cc0ce81811301374f90e216e0a"),
    "tdrnet_lite_tcb_480_videos": (48000, "787ba79359979a3fa86d021a89174041af482a03b686f5f1224ead547d1fa188"),
}
# The weights a promoted model shipped before its latest probe, which trained from models/NAME.pt (not from the
# probe before it): that probe must have started from exactly these. Session 17 shipped tdrnet_lite_tcb_480_videos
# after three probes (this digest was PROMOTED's at commit ee09309, whose models/tdrnet_lite_tcb_480_videos.pt holds
# those weights); the fourth (session 18) trained from that file. tdrnet_lite_tcb_480_videos_r384 ships its third
# cycle's own run (session 20), which trained from session 19's file (commit d71c4be), the second cycle's run, which
# had trained from session 18's file (commit f80473b), the first cycle's run. Oldest first.
SHIPPED_BEFORE: dict[str, tuple[str, ...]] = {
    "tdrnet_lite_tcb_480_videos": ("f1f50e701f9781552568c6ab9b56b46731058db86ac506e97e59bf28f6e64645",),
    "tdrnet_lite_tcb_480_videos_r384": (
        "c0ff8f048f27f312c455d2c16cb1071ceaef94cfaab68b0f0763d3243d0802b8",
        "228ffab0081471979aa9c8907102d3ac602f1e788192982b9b5fb3adf6428bb4",
    ),
}


# Continuing models that ship a probe's own run (not promoted: trained under the model's own spec, from its earlier
# shipped file): the probe whose run the last cycle is, and the SHA-256 of the weights `uwdet results` measured.
SHIPPED_PROBE_RUNS = {
    "tdrnet_lite_tcb_480_videos_r384": (
        "config/probes/tdrnet_lite_tcb_480_videos_r384_synth_cycle3.yaml",
        "8e0596bb188a47791083b4d7c902b80da90db8adbdf397006e14f2419dc72a0e",
    ),
}


@pytest.mark.parametrize("name", sorted(SHIPPED_PROBE_RUNS))
def test_a_shipped_probe_run_is_the_measured_one_or_its_recipes_own(name):
    """The last cycle must be exactly the probe's run (its config, seed and training files) holding the measured
    weights; after `make train-shipped` the file is the recipes' own run instead."""
    probe, digest = SHIPPED_PROBE_RUNS[name]
    ckpt = read_checkpoint(REPO / "models" / f"{name}.pt")
    last = cycles_of(ckpt.provenance)[-1]
    config = last["command"].split("--config ")[1].split()[0]
    if config == probe:
        probe_config = load_train_config(REPO / probe)
        assert last["seed"] == probe_config.seed and ckpt.provenance["train_data"] == probe_config.data.train
        assert last[INIT_SOURCE]["checkpoint"] == f"models/{name}.pt"
        assert weights_sha256(ckpt.state_dict) == digest
    else:
        assert config == f"config/train/{recipes_of(name)[-1]}.yaml"


def test_every_promoted_model_lists_its_probes():
    assert set(PROMOTED) == set(PROMOTED_PROBES)


@pytest.mark.parametrize("name", sorted(PROMOTED))
def test_a_promoted_model_is_the_measured_probe_run_or_its_recipes_own(name):
    """A promoted model ships the weights its probes trained and were measured with: the file must say so, name
    the probes in order and hold exactly those weights. After a retrain it is the recipes' own run, whose first
    cycle starts from the tcb chain's cycle-3 file."""
    images, digest = PROMOTED[name]
    probes = [f"config/probes/{probe}.yaml" for probe in PROMOTED_PROBES[name]]
    probe_configs = [load_train_config(REPO / probe) for probe in probes]
    path = REPO / "models" / f"{name}.pt"
    ckpt = read_checkpoint(path)
    provenance = ckpt.provenance
    added = cycles_of(provenance)[-len(probes):]
    assert ckpt.spec.name == name
    assert provenance["train_images"] == images and int(provenance["iterations"]) == 2000
    assert provenance["train_data"] == probe_configs[-1].data.train
    if PROMOTED_FROM in provenance:
        assert [c["command"].split("--config ")[1].split()[0] for c in added] == probes
        assert [c["seed"] for c in added] == [c.seed for c in probe_configs]
        from_shipped = [c[INIT_SOURCE]["weights_sha256"] for c in added
                        if c[INIT_SOURCE]["checkpoint"] == f"models/{name}.pt"]
        assert from_shipped == list(SHIPPED_BEFORE.get(name, ()))
        promoted = provenance[PROMOTED_FROM]
        assert promoted["spec_name"] == load_model_spec(probe_configs[-1].model).name
        assert promoted["weights_sha256"] == weights_sha256(ckpt.state_dict)
        assert weights_sha256(ckpt.state_dict) == digest
    else:
        recipes = [f"config/train/{recipe}.yaml" for recipe in recipes_of(name)]
        assert [c["command"].split("--config ")[1].split()[0] for c in added] == recipes
        assert added[0][INIT_SOURCE]["checkpoint"] == "runs/tdrnet_lite_tcb_synth_cycle3/model.pt"
    assert path.stat().st_size < 20 * 2**20


def test_every_shipped_model_has_a_card_with_measured_figures():
    """models/README.md is generated; a model shipped without running scripts/write_model_cards.py would have no card
    (or one saying it was never evaluated), and the vehicle's card comes first."""
    text = (REPO / "models" / "README.md").read_text()
    titles = [line[3:].strip() for line in text.splitlines() if line.startswith("## ")]
    assert sorted(titles) == sorted(SHIPPED_MODELS)
    from underwater_detection.models.shipped import VEHICLE_MODEL
    assert titles[0] == VEHICLE_MODEL
    for name in SHIPPED_MODELS:
        card = text.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]
        assert "Not evaluated yet" not in card and "| mAP@0.5 |" in card, name


@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_a_card_says_when_the_last_cycle_started_from_the_file_it_replaced(name):
    """A probe trained from models/NAME.pt and promoted to the same path: the card's start path then names a file
    that now holds other weights, so the card says it was the file this one replaced (the digest tells which)."""
    start = read_checkpoint(REPO / "models" / f"{name}.pt").provenance.get(INIT_SOURCE) or {}
    text = (REPO / "models" / "README.md").read_text()
    card = text.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]
    replaced = start.get("checkpoint") == f"models/{name}.pt"
    assert ("(the file this one replaced: " in card) == replaced
