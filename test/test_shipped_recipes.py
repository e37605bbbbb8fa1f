"""The shipped models' recipes (config/train) form the chains scripts/train_shipped_models.sh trains: three
cycles per model (or cycles on top of another's: models.shipped.CONTINUES), each starting from the one before, every
module carried over, nothing read from models/ (which the chain's result overwrites), and TRNet's RG taken from
TDRNet's last cycle and kept frozen."""
from pathlib import Path

import pytest

from underwater_detection.engine.train_config import load_train_config
from underwater_detection.models.registry import build_model
from underwater_detection.models.shipped import (
    CONTINUATION_CYCLES, CONTINUES, SHIPPED_MODELS, VEHICLE_MODEL, recipes_of,
)
from underwater_detection.models.spec import load_model_spec

RECIPES = Path(__file__).resolve().parents[1] / "config" / "train"
SHIPPED = tuple(name for name in SHIPPED_MODELS if name not in CONTINUES)  # the three-cycle models


def chain(name: str):
    return [load_train_config(RECIPES / f"{recipe}.yaml") for recipe in recipes_of(name)]


@pytest.mark.parametrize("name", SHIPPED)
def test_each_cycle_continues_the_previous_one_with_every_module(name):
    first, *later = chain(name)
    children = sorted(n for n, _ in build_model(load_model_spec(name), 4).named_children())
    assert all(c.model == name for c in (first, *later))
    assert len({c.seed for c in (first, *later)}) == 3  # each cycle draws its own image order
    assert all(c.solver.iterations == 2000 and c.solver.batch_size == 16 for c in (first, *later))
    for previous, cycle in zip((first, *later), later):
        assert cycle.init is not None
        assert Path(cycle.init.checkpoint) == Path(previous.output_dir) / "model.pt"
        assert sorted(cycle.init.modules) == children
        assert [m for m in children if cycle.init.frozen(m)] == (["rg"] if name == "trnet_lite" else [])
    for cycle in (first, *later):
        assert not (cycle.init and Path(cycle.init.checkpoint).parts[0] == "models"), cycle.name
        assert Path(cycle.output_dir).parts[0] == "runs"


def test_the_training_script_trains_every_shipped_model_and_tdrnet_before_trnet():
    """scripts/train_shipped_models.sh keeps its own list (TRNet's first cycle needs TDRNet's last), so it must
    name exactly the shipped models, in an order that trains tdrnet_lite first."""
    script = (RECIPES.parents[1] / "scripts" / "train_shipped_models.sh").read_text()
    line = next(l for l in script.splitlines() if "|| MODELS=(" in l)
    names = line.split("MODELS=(", 1)[1].rstrip(")").split()
    assert sorted(names) == sorted(SHIPPED_MODELS) and len(names) == len(set(names))
    assert names.index("tdrnet_lite") < names.index("trnet_lite") and VEHICLE_MODEL in names
    for name, source in CONTINUES.items():
        assert names.index(source) < names.index(name)


def test_the_training_script_refuses_an_unknown_model_before_training_anything(tmp_path):
    """A misspelt name must stop the script with the list of shipped models, not train nothing and say done."""
    import subprocess
    import sys

    repo = RECIPES.parents[1]
    venv = Path(sys.executable).parents[1]  # the venv running these tests
    proc = subprocess.run(["bash", str(repo / "scripts" / "train_shipped_models.sh"), "tdrnet_lite_tbc"],
                          env={"PATH": "/usr/bin:/bin", "VENV": str(venv), "SHIP": "0"},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "'tdrnet_lite_tbc' is not a shipped model" in proc.stderr and "tdrnet_lite_tcb" in proc.stderr
    assert "== all trained" not in proc.stdout
    with pytest.raises(ValueError, match="not a shipped model"):
        recipes_of("tdrnet_lite_tbc")


# What each continuing model changes from its source, and nothing else: model spec fields, and recipe fields as
# (section, key) -> value.
MORE_DATA_TRAIN = ["data/synth/train/annotations.json", "data/synth/train_more/annotations.json"]
TRAIN_480 = [*MORE_DATA_TRAIN, "data/synth/train_more2/annotations.json"]
CONTINUATION_CHANGES = {
    "tdrnet_lite_tcb_r384": ({"input_size"}, {}),
    "tdrnet_lite_tcb_more_data": (set(), {("data", "train"): MORE_DATA_TRAIN}),
    "tdrnet_lite_tcb_480_videos": (set(), {("data", "train"): TRAIN_480}),
    "tdrnet_lite_tcb_480_videos_r384": ({"input_size"}, {}),
}


def test_every_continuing_model_says_what_it_changes():
    assert set(CONTINUATION_CHANGES) == set(CONTINUES)


def test_only_continuing_models_name_a_cycle_count_and_each_is_at_least_one():
    assert set(CONTINUATION_CYCLES) <= set(CONTINUES)
    assert all(isinstance(n, int) and n >= 1 for n in CONTINUATION_CYCLES.values())


def test_a_continuing_model_with_several_cycles_names_them_in_order():
    assert recipes_of("tdrnet_lite_tcb_480_videos") == (
        "tdrnet_lite_tcb_480_videos_ft_synth", "tdrnet_lite_tcb_480_videos_ft_synth_cycle2",
        "tdrnet_lite_tcb_480_videos_ft_synth_cycle3", "tdrnet_lite_tcb_480_videos_ft_synth_cycle4")
    assert recipes_of("tdrnet_lite_tcb_more_data") == ("tdrnet_lite_tcb_more_data_ft_synth",)


@pytest.mark.parametrize("name", sorted(CONTINUES))
def test_a_continuing_model_is_its_sources_last_cycle_run_again_changing_only_what_it_says(name):
    """A continuing model ships the source's weights after more cycles: the first takes every module from the
    source's last cycle (the chain's own file, not models/), each later one from the cycle before; each is the
    source's last recipe otherwise (r384: the input size; more_data and 480_videos: the training videos) with its
    own seed, so its gain over the source is what that change and those cycles buy."""
    source = CONTINUES[name]
    model_changes, recipe_changes = CONTINUATION_CHANGES[name]
    cycles = chain(name)
    last = chain(source)[-1]
    # every recipe file of the chain is named by recipes_of, and no leftover cycle file lies beside them
    assert sorted(p.stem for p in RECIPES.glob(f"{name}_ft_synth*.yaml")) == sorted(recipes_of(name))
    starts = [Path(last.output_dir) / "model.pt"] + [Path(c.output_dir) / "model.pt" for c in cycles[:-1]]
    children = sorted(n for n, _ in build_model(load_model_spec(name), 4).named_children())
    seeds = {c.seed for c in chain(source)}
    strip = ("name", "model", "output_dir", "description", "seed", "init")
    for got, recipe_name, start in zip(cycles, recipes_of(name), starts):
        assert got.model == name and got.name == recipe_name and Path(got.output_dir) == Path("runs") / got.name
        assert Path(got.init.checkpoint) == start
        assert sorted(got.init.modules) == children and not any(got.init.frozen(m) for m in children)
        assert got.seed not in seeds  # its own image order
        seeds.add(got.seed)
        mine_recipe, theirs_recipe = got.to_dict(), last.to_dict()
        for (section, key), value in recipe_changes.items():
            assert mine_recipe[section][key] == value and theirs_recipe[section][key] != value
            theirs_recipe[section][key] = value
        assert {k: v for k, v in mine_recipe.items() if k not in strip} == {
            k: v for k, v in theirs_recipe.items() if k not in strip}
    mine, theirs = load_model_spec(name).to_dict(), load_model_spec(source).to_dict()
    for key in model_changes:
        assert mine[key] != theirs[key]
    for spec in (mine, theirs):
        for key in ("name", "description", *model_changes):
            spec.pop(key)
    assert mine == theirs


# The probes whose runs were promoted (scripts/promote_candidate.py) to a continuing model, one per cycle of it.
PROMOTED_PROBES = {
    "tdrnet_lite_tcb_more_data": ["tdrnet_lite_tcb_more_data_synth_cycle4"],
    "tdrnet_lite_tcb_480_videos": [f"tdrnet_lite_tcb_480_videos_synth_cycle{n}" for n in (4, 5, 6, 7)],
}


@pytest.mark.parametrize("name", sorted(PROMOTED_PROBES))
def test_a_promoted_probe_chain_is_the_shipped_recipes_but_for_start_points_and_model_name(name):
    """The probes trained under tdrnet_lite_tcb's spec, the first from models/tdrnet_lite_tcb.pt and each later one
    from the probe before; scripts/promote_candidate.py shipped the last one's weights under the continuing model's
    spec, which must be the same network. A probe run after an earlier one was promoted may instead train under the
    continuing model's own spec from its shipped file (then those weights: test_model_cards checks the digest)."""
    probes = [load_train_config(PROBES / f"{probe}.yaml") for probe in PROMOTED_PROBES[name]]
    shipped = chain(name)
    assert len(probes) == len(shipped)
    assert probes[0].init.checkpoint == "models/tdrnet_lite_tcb.pt"
    strip = lambda spec: {k: v for k, v in spec.to_dict().items() if k not in ("name", "description")}  # noqa: E731
    for previous, probe in zip(probes, probes[1:]):
        from_shipped = probe.model == name and probe.init.checkpoint == f"models/{name}.pt"
        assert from_shipped or Path(probe.init.checkpoint) == Path(previous.output_dir) / "model.pt"
    for probe, recipe in zip(probes, shipped):
        # under the model's own spec only when it started from the model's shipped file
        assert probe.model == (name if probe.init.checkpoint == f"models/{name}.pt" else "tdrnet_lite_tcb")
        a, b = probe.to_dict(), recipe.to_dict()
        for part in (a, b):
            for key in ("name", "model", "output_dir"):
                part.pop(key)
            part["init"].pop("checkpoint")
        assert a == b
        assert strip(load_model_spec(probe.model)) == strip(load_model_spec(recipe.model))


@pytest.mark.parametrize("name", ["tdrnet_lite_tcb_r384", "tdrnet_lite_tcb_480_videos_r384"])
def test_an_r384_probe_that_first_ran_is_the_shipped_recipe_but_for_its_start_point(name):
    """The probe read models/SOURCE.pt (the copy of the source's last cycle); the shipped recipe reads that cycle's
    own file. Everything else, the model included, is the same."""
    probe = load_train_config(PROBES / f"{name}_ft_synth.yaml")
    shipped = chain(name)[0]
    assert probe.init.checkpoint == f"models/{CONTINUES[name]}.pt"
    probe_model = load_model_spec(RECIPES.parents[1] / probe.model if "/" in probe.model else probe.model)
    without_description = lambda spec: {k: v for k, v in spec.to_dict().items() if k != "description"}  # noqa: E731
    assert without_description(probe_model) == without_description(load_model_spec(shipped.model))
    a, b = probe.to_dict(), shipped.to_dict()
    for recipe in (a, b):
        recipe.pop("model")
        recipe["init"].pop("checkpoint")
    assert a == b


@pytest.mark.parametrize("cycle", [2, 3])
def test_a_later_384_probe_is_the_shipped_cycle_but_for_its_name_and_start_point(cycle):
    """Each later cycle of tdrnet_lite_tcb_480_videos_r384 first ran as a probe (sessions 19 and 20) that read
    models/NAME.pt, the shipped cycle before it (test_model_cards holds their digests); the recipe reads that
    cycle's own runs/ file. The shipped file is the last probe's run."""
    name = "tdrnet_lite_tcb_480_videos_r384"
    probe = load_train_config(PROBES / f"{name}_synth_cycle{cycle}.yaml")
    recipes = chain(name)
    assert len(recipes) == 3
    previous, recipe = recipes[cycle - 2], recipes[cycle - 1]
    assert probe.model == recipe.model == name and probe.init.checkpoint == f"models/{name}.pt"
    assert Path(recipe.init.checkpoint) == Path(previous.output_dir) / "model.pt"
    a, b = probe.to_dict(), recipe.to_dict()
    for part in (a, b):
        for key in ("name", "output_dir"):
            part.pop(key)
        part["init"].pop("checkpoint")
    assert a == b


def test_trnet_starts_from_tdrnets_last_cycle_with_its_rg_frozen():
    trnet = chain("trnet_lite")[0]
    assert Path(trnet.init.checkpoint) == Path(chain("tdrnet_lite")[-1].output_dir) / "model.pt"
    assert trnet.init.modules == ["rg"] and trnet.init.frozen("rg")


def test_every_model_gets_the_same_schedule():
    def schedule(c):
        s = c.solver
        return (s.lr, s.warmup_iterations, tuple(s.steps), s.momentum, s.weight_decay, c.data.augment, tuple(c.data.train))
    for position in range(3):
        assert len({schedule(chain(name)[position]) for name in SHIPPED}) == 1, f"cycle {position + 1}"


PROBES = RECIPES.parent / "probes"


@pytest.mark.parametrize(
    "probe, baseline, model_changes, recipe_changes",
    [
        ("refinedet_lite_nonaf_synth", "refinedet_lite_synth", {("head", "naf_threshold"): None}, {}),
        ("tdrnet_lite_synth_cycle3_e05", "tdrnet_lite_synth_cycle3", {("temporal", "soft_coefficient"): 0.5}, {}),
        ("tdrnet_lite_w2_synth", "tdrnet_lite_synth",
         {("backbone", "width_mult"): 2.0, ("reference_backbone", "width_mult"): 2.0}, {}),
        ("tdrnet_lite_a3_synth", "tdrnet_lite_synth", {("anchors", "scale_factor"): 3}, {}),
        ("tdrnet_lite_clip30_synth", "tdrnet_lite_synth", {}, {("solver", "grad_clip"): 30.0}),
        ("tdrnet_lite_w2_clip20_synth", "tdrnet_lite_synth",
         {("backbone", "width_mult"): 2.0, ("reference_backbone", "width_mult"): 2.0}, {("solver", "grad_clip"): 20.0}),
        ("tdrnet_lite_r384_synth", "tdrnet_lite_synth", {("input_size",): [384, 512]}, {}),
        ("tdrnet_lite_tcb128_synth", "tdrnet_lite_tcb_synth", {("head", "rd_neck_channels"): 128}, {}),
        ("tdrnet_lite_tcb_r384_synth", "tdrnet_lite_tcb_synth", {("input_size",): [384, 512]}, {}),
        ("tdrnet_lite_tcb_keepdiff_synth", "tdrnet_lite_tcb_synth", {}, {("data", "drop_difficult"): False}),
        ("tdrnet_lite_tcb_r384_synth_cycle2", "tdrnet_lite_tcb_synth_cycle2", {("input_size",): [384, 512]},
         {("init", "checkpoint"): "runs/tdrnet_lite_tcb_r384_synth/model.pt"}),
        ("tdrnet_lite_tcb_r384_synth_cycle3", "tdrnet_lite_tcb_synth_cycle3", {("input_size",): [384, 512]},
         {("init", "checkpoint"): "runs/tdrnet_lite_tcb_r384_synth_cycle2/model.pt"}),
        ("tdrnet_lite_tcb_r384_ft_synth", "tdrnet_lite_tcb_synth_cycle3", {("input_size",): [384, 512]},
         {("init", "checkpoint"): "models/tdrnet_lite_tcb.pt", ("seed",): 3}),
        ("tdrnet_lite_tcb_synth_cycle4", "tdrnet_lite_tcb_synth_cycle3", {},  # the 320x320 control of the one above
         {("init", "checkpoint"): "models/tdrnet_lite_tcb.pt", ("seed",): 3}),
        ("tdrnet_lite_tcb_more_data_synth_cycle4", "tdrnet_lite_tcb_synth_cycle3", {},  # the control above + 180 videos
         {("init", "checkpoint"): "models/tdrnet_lite_tcb.pt", ("seed",): 3,
          ("data", "train"): MORE_DATA_TRAIN}),
        ("tdrnet_lite_tcb_more_data_synth_cycle5", "tdrnet_lite_tcb_synth_cycle3", {},  # one more cycle on them
         {("init", "checkpoint"): "models/tdrnet_lite_tcb_more_data.pt", ("seed",): 4,
          ("data", "train"): MORE_DATA_TRAIN}),
        ("tdrnet_lite_tcb_480_videos_synth_cycle4", "tdrnet_lite_tcb_synth_cycle3", {},  # 240 more videos again
         {("init", "checkpoint"): "models/tdrnet_lite_tcb.pt", ("seed",): 3,
          ("data", "train"): TRAIN_480}),
        ("tdrnet_lite_tcb_480_videos_synth_cycle5", "tdrnet_lite_tcb_synth_cycle3", {},  # one more cycle on them
         {("init", "checkpoint"): "runs/tdrnet_lite_tcb_480_videos_synth_cycle4/model.pt", ("seed",): 4,
          ("data", "train"): TRAIN_480}),
        ("tdrnet_lite_tcb_480_videos_synth_cycle6", "tdrnet_lite_tcb_synth_cycle3", {},  # and a third
         {("init", "checkpoint"): "runs/tdrnet_lite_tcb_480_videos_synth_cycle5/model.pt", ("seed",): 5,
          ("data", "train"): TRAIN_480}),
        ("tdrnet_lite_tcb_480_videos_synth_cycle7", "tdrnet_lite_tcb_synth_cycle3", {},  # a fourth, from the shipped one
         {("init", "checkpoint"): "models/tdrnet_lite_tcb_480_videos.pt", ("seed",): 6,
          ("data", "train"): TRAIN_480}),
        ("tdrnet_lite_tcb_480_videos_r384_ft_synth", "tdrnet_lite_tcb_synth_cycle3",  # the default + a 384x512 cycle
         {("input_size",): [384, 512]},
         {("init", "checkpoint"): "models/tdrnet_lite_tcb_480_videos.pt", ("seed",): 7,
          ("data", "train"): TRAIN_480}),
        ("tdrnet_lite_tcb_480_videos_r384_synth_cycle2", "tdrnet_lite_tcb_synth_cycle3",  # a second 384x512 cycle
         {("input_size",): [384, 512]},
         {("init", "checkpoint"): "models/tdrnet_lite_tcb_480_videos_r384.pt", ("seed",): 8,
          ("data", "train"): TRAIN_480}),
        ("tdrnet_lite_tcb_480_videos_r384_synth_cycle3", "tdrnet_lite_tcb_synth_cycle3",  # a third 384x512 cycle
         {("input_size",): [384, 512]},
         {("init", "checkpoint"): "models/tdrnet_lite_tcb_480_videos_r384.pt", ("seed",): 9,
          ("data", "train"): TRAIN_480}),
    ],
)
def test_a_probe_differs_from_its_shipped_baseline_only_where_it_says(probe, baseline, model_changes, recipe_changes):
    """A probe's figure is quoted against its baseline's, so everything else (data, schedule, seed, start point,
    the rest of the model) must be the baseline's."""
    got, base = load_train_config(PROBES / f"{probe}.yaml"), load_train_config(RECIPES / f"{baseline}.yaml")
    assert Path(got.output_dir) == Path("runs") / probe and got.name == probe
    strip = ("name", "model", "output_dir", "description")
    expected_recipe = base.to_dict()
    got_recipe = got.to_dict()
    for path, value in recipe_changes.items():  # ("section", "key"), or ("key",) for a top-level field
        *sections, key = path
        got_part, expected_part = got_recipe, expected_recipe
        for section in sections:
            got_part, expected_part = got_part[section], expected_part[section]
        assert got_part[key] == value and expected_part[key] != value
        expected_part[key] = value
    assert {k: v for k, v in got_recipe.items() if k not in strip} == {
        k: v for k, v in expected_recipe.items() if k not in strip}
    probe_spec = load_model_spec(RECIPES.parents[1] / got.model if "/" in got.model else got.model).to_dict()
    expected = load_model_spec(base.model).to_dict()
    for path, value in model_changes.items():  # ("section", "key"), or ("key",) for a top-level field
        *sections, key = path
        got_part, expected_part = probe_spec, expected
        for section in sections:
            got_part, expected_part = got_part[section], expected_part[section]
        assert got_part[key] == value and expected_part.get(key) != value
        expected_part[key] = value
    assert {k: v for k, v in probe_spec.items() if k not in ("name", "description")} == {
        k: v for k, v in expected.items() if k not in ("name", "description")}


@pytest.mark.parametrize("cycle", [4, 5])
def test_a_continuation_probe_is_the_shipped_last_cycle_run_again_from_the_cycle_before(cycle):
    """The training-budget curve past 6000 iterations is only comparable with the shipped chain's points if each
    extra cycle is cycle 3's recipe with nothing changed but where it starts, its seed and where it writes."""
    got = load_train_config(PROBES / f"tdrnet_lite_synth_cycle{cycle}.yaml")
    base = chain("tdrnet_lite")[-1]
    previous = base if cycle == 4 else load_train_config(PROBES / f"tdrnet_lite_synth_cycle{cycle - 1}.yaml")
    assert got.name == f"tdrnet_lite_synth_cycle{cycle}" and Path(got.output_dir) == Path("runs") / got.name
    assert Path(got.init.checkpoint) == Path(previous.output_dir) / "model.pt"
    assert got.seed not in {c.seed for c in chain("tdrnet_lite")} | {previous.seed}
    strip = ("name", "output_dir", "description", "seed", "init")
    assert {k: v for k, v in got.to_dict().items() if k not in strip} == {
        k: v for k, v in base.to_dict().items() if k not in strip}
    assert sorted(got.init.modules) == sorted(base.init.modules) and not any(
        got.init.frozen(m) for m in got.init.modules)


def test_the_tcb_chain_is_the_tdrnet_chain_with_only_the_rd_neck_added():
    """tdrnet_lite_tcb is quoted against tdrnet_lite at the same budget, so each of its cycles must be tdrnet_lite's
    recipe with only the model swapped (and its own start point and output folder), and the model must be
    tdrnet_lite with nothing but the RD neck added."""
    strip = ("name", "model", "output_dir", "description", "init")
    for got, base in zip(chain("tdrnet_lite_tcb"), chain("tdrnet_lite")):
        assert {k: v for k, v in got.to_dict().items() if k not in strip} == {
            k: v for k, v in base.to_dict().items() if k not in strip}
    tcb, plain = load_model_spec("tdrnet_lite_tcb").to_dict(), load_model_spec("tdrnet_lite").to_dict()
    assert (tcb["head"].pop("rd_neck_channels"), tcb["head"].pop("rd_neck_batch_norm")) == (64, True)
    assert plain["head"].get("rd_neck_channels") is None
    for key in ("rd_neck_channels", "rd_neck_batch_norm"):
        plain["head"].pop(key, None)
    assert {k: v for k, v in tcb.items() if k not in ("name", "description")} == {
        k: v for k, v in plain.items() if k not in ("name", "description")}


def _make_prerequisites() -> dict[str, set[str]]:
    """Target -> prerequisites of the Makefile's rules (continuation lines joined; recipes and comments ignored)."""
    text = (RECIPES.parents[1] / "Makefile").read_text().replace("\\\n", " ")
    rules: dict[str, set[str]] = {}
    for line in text.splitlines():
        if line.startswith(("\t", "#")) or ":" not in line or "=" in line.split(":", 1)[0]:
            continue
        targets, prerequisites = line.split(":", 1)
        for target in targets.split():
            rules.setdefault(target, set()).update(prerequisites.split())
    return rules


# The `make` target that generates each extra training set, by the annotation file a recipe reads.
EXTRA_DATA_TARGETS = {"data/synth/train_more/annotations.json": "data-synth-more",
                      "data/synth/train_more2/annotations.json": "data-synth-480"}


@pytest.mark.parametrize("recipe", sorted(p.stem for p in RECIPES.glob("*.yaml")))
def test_make_trains_a_recipe_only_after_generating_the_videos_it_reads(recipe):
    """`make train-RECIPE` depends on data-synth (60 videos) only; a recipe that also reads the 240 or 480-video sets
    needs its own Makefile line, or a fresh machine would start training on missing files."""
    needs = {EXTRA_DATA_TARGETS[f] for f in load_train_config(RECIPES / f"{recipe}.yaml").data.train
             if f in EXTRA_DATA_TARGETS}
    if "data-synth-480" in needs:
        needs.discard("data-synth-more")  # data-synth-480 depends on data-synth-more
    assert needs <= _make_prerequisites().get(f"train-{recipe}", set()), recipe
