"""`uwdet train` end to end on a tiny COCO dataset written to disk: real PyTorch training on the CPU.

Covers the recipe loader, the data pipeline (COCO reader + SSD augmentation + collate), the loop (SGD,
warm-up, steps), CSV log, the resumable state, the final model checkpoint, and DDP with two processes over
gloo launched by torchrun, as a user who outgrows one machine would run it.
"""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
import torch
import yaml

from underwater_detection.data.toy_scenes import MARINE_CLASSES, make_scenes, make_sequence
from underwater_detection.engine.train_config import InitConfig, SolverConfig, TrainConfig, load_train_config
from underwater_detection.engine.trainer import train
from underwater_detection.models.checkpoint import load_model

SRC = Path(__file__).resolve().parents[1] / "src"


def write_coco(root: Path, count: int = 8, size: int = 128) -> Path:
    """Toy scenes plus one short video, as a COCO file with video/frame ids."""
    images, annotations = [], []
    frames = [(s, None, None) for s in make_scenes(count, seed=1, height=size, width=size)]
    frames += [(f, 7, i) for i, f in enumerate(make_sequence(5, 4, size, size))]
    (root / "images").mkdir(parents=True, exist_ok=True)
    for image_id, (scene, video, frame) in enumerate(frames, start=1):
        name = f"images/{image_id:04d}.png"
        cv2.imwrite(str(root / name), scene.image[..., ::-1])
        entry = {"id": image_id, "file_name": name, "width": size, "height": size}
        if video is not None:
            entry.update(video_id=video, frame_id=frame)
        images.append(entry)
        for box, label in zip(scene.boxes, scene.labels):
            x1, y1, x2, y2 = (float(v) for v in box)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": int(label) + 1,
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
    path = root / "annotations.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [{"id": i + 1, "name": n} for i, n in enumerate(MARINE_CLASSES)]}))
    return path


def recipe(tmp_path: Path, data: Path, model: str = "ssd4s_lite", iterations: int = 6, **solver) -> TrainConfig:
    return TrainConfig.from_dict({
        "name": f"test_{model}", "model": model, "input_size": [128, 128],
        "data": {"train": [str(data)], "workers": 0},
        "solver": {"batch_size": 4, "iterations": iterations, "warmup_iterations": 2, "steps": [4], **solver},
        "seed": 3, "output_dir": str(tmp_path / "run"), "checkpoint_every": 3, "log_every": 1,
    })


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    return write_coco(tmp_path_factory.mktemp("coco"))


def test_learning_rate_schedule_warmup_and_steps():
    s = SolverConfig(lr=0.1, warmup_iterations=10, warmup_factor=0.1, steps=[20, 30], gamma=0.1)
    assert s.lr_at(0) == pytest.approx(0.01)
    assert s.lr_at(5) == pytest.approx(0.1 * (0.1 * 0.5 + 0.5))
    assert s.lr_at(10) == pytest.approx(0.1)
    assert s.lr_at(25) == pytest.approx(0.01)
    assert s.lr_at(35) == pytest.approx(0.001)


def test_recipe_errors_name_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"name": "x", "model": "ssd4s_lite", "data": {"train": ["a"]}, "solver": {"lr0": 1}}))
    with pytest.raises(ValueError, match="lr0"):
        load_train_config(bad)
    with pytest.raises(ValueError, match="objective"):
        SolverConfig(objective="alternate")


def test_shipped_recipes_load():
    for path in sorted((Path(__file__).resolve().parents[1] / "config" / "train").glob("*.yaml")):
        cfg = load_train_config(path)
        assert cfg.data.class_names == list(MARINE_CLASSES)


def test_train_writes_log_state_and_a_loadable_checkpoint(tmp_path, coco):
    cfg = recipe(tmp_path, coco)
    path = train(cfg, device="cpu", show_progress=False, command=["uwdet", "train", "--config", "test.yaml"])
    assert path == tmp_path / "run" / "model.pt"
    model, ckpt = load_model(path)
    assert ckpt.class_names == list(MARINE_CLASSES)
    assert ckpt.spec.input_size == (128, 128)
    assert ckpt.provenance["iterations"] == 6 and ckpt.provenance["seed"] == 3
    assert ckpt.provenance["command"] == "uwdet train --config test.yaml"
    assert ckpt.provenance["recipe"]["solver"]["batch_size"] == 4
    rows = list(csv.DictReader(open(tmp_path / "run" / "log.csv")))
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert float(rows[0]["lr"]) == pytest.approx(0.001) and float(rows[4]["lr"]) == pytest.approx(0.001)
    assert all(float(r["loss"]) > 0 for r in rows)



def test_the_checkpoint_names_the_commit_training_started_from(tmp_path, coco, monkeypatch):
    """A model's card says which code trained it; HEAD moving during a long run (a commit beside it) must not
    change that."""
    from underwater_detection.engine import trainer as trainer_module

    started = []
    step = trainer_module.detection_step
    monkeypatch.setattr(trainer_module, "_git_commit", lambda: "after-a-commit" if started else "at-start")
    monkeypatch.setattr(trainer_module, "detection_step", lambda *a, **k: started.append(1) or step(*a, **k))
    path = train(recipe(tmp_path, coco), device="cpu", show_progress=False)
    assert started and load_model(path)[1].provenance["git_commit"] == "at-start"

def test_resume_continues_exactly_where_it_stopped(tmp_path, coco):
    """Six iterations in one go == four, stop (mid-epoch), resume two more: same batches, same weights."""
    full = recipe(tmp_path / "a", coco)
    train(full, device="cpu", show_progress=False)
    ref, _ = load_model(tmp_path / "a" / "run" / "model.pt")

    half = recipe(tmp_path / "b", coco, iterations=4)  # 12 images / batch 4 = 3 batches per epoch: mid-epoch
    half.checkpoint_every = 100  # the state saved at the end of the run is what resume reads
    train(half, device="cpu", show_progress=False)
    resumed = recipe(tmp_path / "b", coco)  # same output_dir, the full budget
    train(resumed, device="cpu", resume=True, show_progress=False)
    got, ckpt = load_model(tmp_path / "b" / "run" / "model.pt")
    assert ckpt.provenance["iterations"] == 6
    rows = list(csv.DictReader(open(tmp_path / "b" / "run" / "log.csv")))
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    for (name, a), b in zip(ref.state_dict().items(), got.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-5), name


def test_the_log_shows_the_gradient_norm_before_clipping_and_how_often_the_clip_bound(tmp_path, coco):
    """Whether grad_clip shapes a run must be readable from its log: a clip far below the norm binds on every
    step, no clip never does, and the logged norm is the unclipped one in both cases."""
    def log(name: str, clip: float | None) -> list[dict]:
        train(recipe(tmp_path / name, coco, iterations=3, grad_clip=clip), device="cpu", show_progress=False)
        return list(csv.DictReader(open(tmp_path / name / "run" / "log.csv")))

    tight, free = log("tight", 1e-3), log("free", None)
    assert [float(r["clipped_frac"]) for r in tight] == [1.0, 1.0, 1.0]
    assert [float(r["clipped_frac"]) for r in free] == [0.0, 0.0, 0.0]
    # same seed, same first batch, same initial weights: the first step's norm is the same whether clipped or not
    assert float(tight[0]["grad_norm"]) == pytest.approx(float(free[0]["grad_norm"]), rel=1e-4)
    assert float(tight[0]["grad_norm"]) > 1e-3


def test_detection_step_reports_the_norm_before_it_clips():
    from underwater_detection.engine.training import detection_step
    from underwater_detection.models.registry import build_model, priors_for
    from underwater_detection.models.spec import load_model_spec
    from underwater_detection.ops.losses import MultiBoxLoss, Targets

    spec = load_model_spec("ssd4s_lite").with_input_size(128, 128)
    torch.manual_seed(0)
    model = build_model(spec, 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: the step leaves the clipped gradients to inspect
    targets = [Targets(torch.tensor([[0.2, 0.2, 0.6, 0.7]]), torch.tensor([1]))] * 2
    terms = detection_step(model, MultiBoxLoss(), priors_for(spec), torch.randn(2, 3, 128, 128), targets, opt,
                           max_grad_norm=0.5)
    after = torch.nn.utils.get_total_norm([p.grad for p in model.parameters() if p.grad is not None])
    assert terms["grad_norm"] > 0.5 and float(after) == pytest.approx(0.5, rel=1e-3)


def test_a_resumed_run_appends_under_the_header_its_log_already_has(tmp_path, coco):
    """A run started by an older version (fewer log columns) and resumed by this one must not shift its
    columns: every row keeps the header's width and the shared columns keep their meaning."""
    train(recipe(tmp_path, coco, iterations=4), device="cpu", show_progress=False)
    path = tmp_path / "run" / "log.csv"
    old = [{k: v for k, v in r.items() if k not in ("grad_norm", "clipped_frac")} for r in csv.DictReader(open(path))]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(old[0]))
        writer.writeheader()
        writer.writerows(old)
    train(recipe(tmp_path, coco), device="cpu", resume=True, show_progress=False)
    lines = list(csv.reader(open(path)))
    assert lines[0] == list(old[0]) and all(len(line) == len(lines[0]) for line in lines)
    rows = list(csv.DictReader(open(path)))
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert all(float(r["img_per_s"]) > 0 and float(r["elapsed_s"]) >= 0 for r in rows)


def test_a_fresh_run_refuses_to_replace_an_existing_run(tmp_path, coco):
    """A copied recipe that still names the original's output_dir must not overwrite the original's model."""
    first = train(recipe(tmp_path, coco, iterations=1), device="cpu", show_progress=False)
    before = first.read_bytes()
    with pytest.raises(FileExistsError, match="already holds a training run.*--resume.*--overwrite"):
        train(recipe(tmp_path, coco, iterations=2), device="cpu", show_progress=False)
    assert first.read_bytes() == before
    # --overwrite replaces the run only once the new one is set up: a broken recipe leaves the old run intact
    broken = recipe(tmp_path, coco, iterations=2)
    broken.data.train = [str(tmp_path / "no_such_data.json")]
    with pytest.raises(FileNotFoundError):
        train(broken, device="cpu", show_progress=False, overwrite=True)
    assert first.read_bytes() == before and (tmp_path / "run" / "train_state.pt").exists()
    again = train(recipe(tmp_path, coco, iterations=2), device="cpu", show_progress=False, overwrite=True)
    _, ckpt = load_model(again)
    assert ckpt.provenance["iterations"] == 2


def test_resume_without_state_is_a_clear_error(tmp_path, coco):
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train(recipe(tmp_path, coco), device="cpu", resume=True, show_progress=False)


def test_temporal_two_stage_freezes_the_reference_generator(tmp_path, coco):
    cfg = recipe(tmp_path, coco, model="trnet_lite", iterations=4, objective="two-stage", steps=[])
    path = train(cfg, device="cpu", show_progress=False)
    model, _ = load_model(path)
    rows = list(csv.DictReader(open(tmp_path / "run" / "log.csv")))
    # first half: only RG terms are optimised; the RD terms are still reported
    assert float(rows[0]["objective_loss"]) == pytest.approx(float(rows[0]["arm_loc"]) + float(rows[0]["arm_conf"]), rel=1e-4)
    assert float(rows[3]["objective_loss"]) == pytest.approx(float(rows[3]["odm_loc"]) + float(rows[3]["odm_conf"]), rel=1e-4)


def test_trnet_shares_a_frozen_reference_generator_from_a_tdrnet_checkpoint(tmp_path, coco):
    """The shipped TRNet reuses the shipped TDRNet's RG: copied exactly, never updated, only RD learns."""
    source = train(recipe(tmp_path / "tdrnet", coco, model="tdrnet_lite", iterations=2), device="cpu", show_progress=False)
    tdrnet, _ = load_model(source)
    cfg = recipe(tmp_path, coco, model="trnet_lite", iterations=3)
    cfg.init = InitConfig(checkpoint=str(source), modules=["rg"], freeze=True)
    trnet, _ = load_model(train(cfg, device="cpu", show_progress=False))
    tdr_state = tdrnet.state_dict()
    for key, value in trnet.state_dict().items():
        if key.startswith("rg."):
            # weights and BN statistics: copied from the (trained) TDRNet, then unchanged by TRNet's 3 steps
            assert torch.equal(value, tdr_state[key]), key
    rows = list(csv.DictReader(open(tmp_path / "run" / "log.csv")))
    assert all(float(r["objective_loss"]) == pytest.approx(float(r["odm_loc"]) + float(r["odm_conf"]), rel=1e-4) for r in rows)


def test_a_later_trnet_cycle_keeps_the_shared_rg_frozen_and_continues_rd(tmp_path, coco):
    """TRNet's second and third cycles copy both networks but freeze only RG (init.freeze as a list)."""
    first = train(recipe(tmp_path / "first", coco, model="trnet_lite", iterations=2), device="cpu", show_progress=False)
    source, _ = load_model(first)
    cfg = recipe(tmp_path, coco, model="trnet_lite", iterations=2)
    cfg.init = InitConfig(checkpoint=str(first), modules=["rg", "rd"], freeze=["rg"])
    trained, _ = load_model(train(cfg, device="cpu", show_progress=False))
    before, after = source.state_dict(), trained.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in after if k.startswith("rg."))
    learned = [k for k in after if k.startswith("rd.") and after[k].is_floating_point() and not torch.equal(after[k], before[k])]
    assert learned, "RD did not learn"
    rows = list(csv.DictReader(open(tmp_path / "run" / "log.csv")))
    assert all(float(r["objective_loss"]) == pytest.approx(float(r["odm_loc"]) + float(r["odm_conf"]), rel=1e-4) for r in rows)
    # the recipe round-trips through YAML with the list intact
    assert TrainConfig.from_dict(yaml.safe_load(yaml.safe_dump(cfg.to_dict()))).init.freeze == ["rg"]


def test_init_freeze_must_name_copied_modules():
    with pytest.raises(ValueError, match=r"init.freeze names \['rd'\]"):
        InitConfig(checkpoint="x.pt", modules=["rg"], freeze=["rd"])
    assert InitConfig(checkpoint="x.pt", modules=["rg", "rd"], freeze="rg").frozen("rg")
    assert not InitConfig(checkpoint="x.pt", modules=["rg", "rd"], freeze="rg").frozen("rd")
    assert not InitConfig(checkpoint="x.pt", modules=["rg"], freeze=False).frozen("rg")


def test_init_from_a_checkpoint_that_does_not_fit_is_a_clear_error(tmp_path, coco):
    source = train(recipe(tmp_path / "ssd", coco, iterations=1), device="cpu", show_progress=False)
    cfg = recipe(tmp_path, coco, model="trnet_lite", iterations=1)
    cfg.init = InitConfig(checkpoint=str(source), modules=["rg"])
    with pytest.raises(ValueError, match="does not fit module 'rg'"):
        train(cfg, device="cpu", show_progress=False)
    cfg.init = InitConfig(checkpoint=str(source), modules=["nope"])
    with pytest.raises(ValueError, match="no module 'nope'"):
        train(cfg, device="cpu", show_progress=False)


def test_torchrun_ddp_two_processes_on_cpu(tmp_path, coco):
    cfg = recipe(tmp_path, coco, iterations=3)
    cfg_path = tmp_path / "recipe.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg.to_dict()))
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [str(torchrun), "--standalone", "--nproc-per-node=2", "-m", "underwater_detection.cli", "train",
         "--config", str(cfg_path), "--device", "cpu", "--no-progress"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    model, ckpt = load_model(tmp_path / "run" / "model.pt")
    assert ckpt.provenance["world_size"] == 2 and ckpt.provenance["iterations"] == 3
    rows = list(csv.DictReader(open(tmp_path / "run" / "log.csv")))
    assert len(rows) == 3  # only rank 0 writes


def test_reference_objective_leaves_the_refinement_detector_untouched():
    """Stage 1 of two-stage training: RD gets no gradient at all, so SGD's weight decay/momentum skip it."""
    from underwater_detection.engine.training import detection_step
    from underwater_detection.models.registry import build_model, priors_for
    from underwater_detection.models.spec import load_model_spec
    from underwater_detection.ops.losses import MultiBoxLoss, Targets

    spec = load_model_spec("trnet_lite").with_input_size(128, 128)
    model = build_model(spec, 4)
    rd_before = {k: v.clone() for k, v in model.rd.state_dict().items()}
    rg_before = {k: v.clone() for k, v in model.rg.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    targets = [Targets(torch.tensor([[0.2, 0.2, 0.6, 0.7]]), torch.tensor([1]))] * 2
    for _ in range(2):
        detection_step(model, MultiBoxLoss(), priors_for(spec), torch.randn(2, 3, 128, 128), targets, opt,
                       objective="reference")
    assert all(p.grad is None for p in model.rd.parameters())
    for k, v in model.rd.state_dict().items():
        if v.dtype.is_floating_point and "running" not in k:  # BN running stats move in train mode
            assert torch.equal(v, rd_before[k]), k
    assert any(not torch.equal(v, rg_before[k]) for k, v in model.rg.state_dict().items())


def test_two_stage_runs_the_schedule_once_per_stage(tmp_path, coco):
    cfg = recipe(tmp_path, coco, model="trnet_lite", iterations=8, objective="two-stage", steps=[6])
    cfg.solver.warmup_iterations = 4
    train(cfg, device="cpu", show_progress=False)
    lrs = [float(r["lr"]) for r in csv.DictReader(open(tmp_path / "run" / "log.csv"))]
    # each stage: 4 iterations, warm-up 2 (scaled), step at 3 (scaled) -> identical schedules
    assert lrs[:4] == pytest.approx(lrs[4:])
    assert lrs[0] == pytest.approx(0.001) and lrs[3] == pytest.approx(0.001)


def test_training_at_e_computes_tdrnets_feature_offsets_from_the_soft_anchor_offsets():
    """A TDRNet trained at e < 1 sees the same forward as at test time: Δp from e * ar, not from ar."""
    import copy

    from underwater_detection.engine.training import detection_step
    from underwater_detection.models.registry import build_model, priors_for
    from underwater_detection.models.spec import load_model_spec
    from underwater_detection.ops.losses import MultiBoxLoss, Targets

    spec = load_model_spec("tdrnet_lite").with_input_size(128, 128)
    torch.manual_seed(0)
    model = build_model(spec, 4)
    with torch.no_grad():  # zero-initialised offsets would hide e; give them weight as training would
        for p in model.rg.feature_offsets.parameters():
            p.normal_(0.0, 0.5)
    images = torch.randn(2, 3, 128, 128)
    targets = [Targets(torch.tensor([[0.2, 0.2, 0.6, 0.7]]), torch.tensor([1]))] * 2
    priors, criterion = priors_for(spec), MultiBoxLoss()

    def loss_of(e_features: float) -> float:
        twin = copy.deepcopy(model).train()
        with torch.no_grad():
            return float(criterion(twin(images, soft_coefficient=e_features), priors, targets, soft_coefficient=0.5)["loss"])

    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    terms = detection_step(model, criterion, priors, images, targets, opt, soft_coefficient=0.5)
    assert terms["loss"] == pytest.approx(loss_of(0.5), rel=1e-5)
    assert terms["loss"] != pytest.approx(loss_of(1.0), rel=1e-3)
