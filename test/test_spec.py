"""Model specs: every shipped YAML loads (and, except VGG16, builds and runs); bad configs fail naming the problem."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from underwater_detection.models.detectors import ARCHITECTURES
from underwater_detection.models.temporal import TemporalRefinementNet
from underwater_detection.models.registry import build_model, priors_for
from underwater_detection.models.spec import ModelSpec, available_model_specs, load_model_spec
from underwater_detection.ops.outputs import HeadOutputs
from underwater_detection.ops.priors import num_priors

CONFIG_DIR = Path(__file__).resolve().parents[1] / "config" / "models"
CONFIG_NAMES = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
BUILDABLE = [n for n in CONFIG_NAMES if not n.endswith("_vgg16")]  # VGG16 is too slow to build in unit tests
NUM_CLASSES = 4
# 320x320 with strides 8/16/32/64 and 3 anchors per cell: 3 * (40*40 + 20*20 + 10*10 + 5*5) = 3 * 2125
ANCHORS_320 = 6375
OWN_INPUT_SIZE = {"tdrnet_lite_tcb_r384": (384, 512),  # every other config is 320x320
                  "tdrnet_lite_tcb_480_videos_r384": (384, 512)}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _base_cfg(name: str = "ssd4s_lite") -> dict:
    return yaml.safe_load((CONFIG_DIR / f"{name}.yaml").read_text())


def _write(tmp_path: Path, cfg: dict, name: str = "custom.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_shipped_configs_are_all_listed():
    static = {f"{a}_{b}" for a in ARCHITECTURES for b in ("lite", "effnet", "vgg16")}
    temporal = {f"{a}_{b}" for a in ("trnet", "tdrnet") for b in ("lite", "effnet", "vgg16")}
    variants = {"tdrnet_lite_tcb",  # the paper's TDRNet with RefineDet's TCB neck before RD's head
                "tdrnet_lite_tcb_r384",  # the same at 384x512 input
                "tdrnet_lite_tcb_more_data",  # the same network, its own name for the weights trained on more videos
                "tdrnet_lite_tcb_480_videos",  # and for those trained on 480 videos
                "tdrnet_lite_tcb_480_videos_r384"}  # and those given a cycle at 384x512
    assert static | temporal | variants == set(CONFIG_NAMES)
    assert set(CONFIG_NAMES) <= set(available_model_specs())


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_every_config_loads(name):
    spec = load_model_spec(name)
    assert spec.name == name  # the file's name field agrees with its file name
    assert spec.architecture == name.split("_")[0]
    assert spec.input_size == OWN_INPUT_SIZE.get(name, (320, 320))
    assert spec.anchors.anchors_per_cell == 3
    if spec.input_size == (320, 320):
        assert num_priors(*spec.input_size, spec.anchors) == ANCHORS_320
    else:  # 384x512: 3 * (48*64 + 24*32 + 12*16 + 6*8)
        assert num_priors(*spec.input_size, spec.anchors) == 3 * 4080
    # by path as well as by name, and the dict form round-trips
    assert load_model_spec(CONFIG_DIR / f"{name}.yaml").to_dict() == spec.to_dict()
    assert ModelSpec.from_dict(spec.to_dict()).to_dict() == spec.to_dict()


@pytest.mark.parametrize("name", BUILDABLE)
def test_config_builds_and_runs_at_its_input_size(name):
    spec = load_model_spec(name)
    torch.manual_seed(0)
    model = build_model(spec, NUM_CLASSES, pretrained_backbone=False).eval()
    if spec.is_temporal:
        assert isinstance(model, TemporalRefinementNet)
        assert model.rd.deformable == (spec.architecture == "tdrnet")
    else:
        assert type(model) is ARCHITECTURES[spec.architecture]
    assert model.num_classes == NUM_CLASSES
    assert model.naf_threshold == spec.head.get("naf_threshold")
    anchors = num_priors(*spec.input_size, spec.anchors)  # ANCHORS_320 for every config but the 384x512 one
    with torch.no_grad():
        out = model(torch.randn(1, 3, *spec.input_size))
    assert isinstance(out, HeadOutputs)
    assert out.loc.shape == (1, anchors, 4)
    assert out.conf.shape == (1, anchors, NUM_CLASSES + 1)
    assert priors_for(spec).shape == (anchors, 4)
    if spec.architecture == "ssd4s":
        assert out.arm_loc is None and out.arm_conf is None and not out.two_step
    else:
        assert out.arm_loc.shape == (1, anchors, 4)
        # objectness exists only where negative anchor filtering reads it (RefineDet; DRNet/RG without NAF)
        if spec.head.get("naf_threshold") is not None:
            assert out.arm_conf.shape == (1, anchors, 2)
        else:
            assert out.arm_conf is None
        assert out.two_step
    for t in out:
        if t is not None:
            assert torch.isfinite(t).all()


def test_paper_temporal_models_have_no_rd_neck():
    """The neck is opt-in (the paper's RD has none), so tdrnet_lite / trnet_lite checkpoints, saved without one,
    keep loading unchanged."""
    for name in ("tdrnet_lite", "trnet_lite"):
        model = build_model(name, NUM_CLASSES, pretrained_backbone=False)
        assert model.rd.neck is None
        assert not any(key.startswith("rd.neck.") for key in model.state_dict())


@pytest.mark.parametrize("arch", ["tdrnet", "trnet"])
def test_rd_neck_puts_tcbs_between_rd_backbone_and_head(arch):
    cfg = _base_cfg(f"{arch}_lite")
    cfg["head"] = dict(cfg.get("head") or {}, rd_neck_channels=48)
    torch.manual_seed(0)
    model = build_model(ModelSpec.from_dict(cfg), NUM_CLASSES, pretrained_backbone=False).eval()
    assert model.rd.neck is not None and model.rd.neck.out_channels == (48, 48, 48, 48)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.rd.neck.modules())  # batch norm by default
    x = torch.randn(1, 3, 320, 320)
    with torch.no_grad():
        refs = model.reference(x)
        before = model.detect(x, refs)
        assert before.loc.shape == (1, ANCHORS_320, 4) and before.conf.shape == (1, ANCHORS_320, NUM_CLASSES + 1)
        # top-down context: the coarsest block's output reaches the finest level's predictions
        for param in model.rd.neck.blocks[-1].parameters():
            param.add_(0.5)
        after = model.detect(x, refs)
    finest = 3 * 40 * 40
    assert not torch.allclose(before.conf[:, :finest], after.conf[:, :finest])
    assert torch.equal(model.reference(x).arm_loc, refs.arm_loc)  # RG does not read RD's neck


def test_tdrnet_with_rd_neck_builds_runs_and_round_trips_a_checkpoint(tmp_path):
    from underwater_detection.models.checkpoint import load_model, save_checkpoint

    spec = load_model_spec("tdrnet_lite_tcb")
    torch.manual_seed(0)
    model = build_model(spec, NUM_CLASSES, pretrained_backbone=False).eval()
    assert model.rd.neck.out_channels == (64,) * 4 and model.rd.deformable
    x = torch.randn(1, 3, 320, 320)
    with torch.no_grad():
        out = model(x)
    assert out.conf.shape == (1, ANCHORS_320, NUM_CLASSES + 1) and torch.isfinite(out.conf).all()
    path = save_checkpoint(tmp_path / "tcb.pt", model, spec, ["a", "b", "c", "d"])
    loaded, _ = load_model(path)  # the spec stored in the file rebuilds the neck
    assert loaded.rd.neck is not None
    with torch.no_grad():
        assert torch.equal(loaded(x).conf, out.conf)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"rd_neck_channels": 0}, "rd_neck_channels must be a positive integer or null, got 0"),
        ({"rd_neck_channels": -64}, "rd_neck_channels must be a positive integer or null, got -64"),
        ({"rd_neck_channels": "64"}, "rd_neck_channels must be a positive integer or null, got '64'"),
        ({"rd_neck_channels": True}, "rd_neck_channels must be a positive integer or null, got True"),
        ({"rd_neck_channels": 64, "rd_neck_batch_norm": "yes"}, "rd_neck_batch_norm must be true or false, got 'yes'"),
        ({"rd_neck_chanels": 64}, r"unknown head options \['rd_neck_chanels'\]"),
    ],
)
def test_bad_rd_neck_options_are_clear_errors(options, message):
    cfg = _base_cfg("tdrnet_lite")
    cfg["head"] = dict(cfg["head"], **options)
    with pytest.raises(ValueError, match=message):
        build_model(ModelSpec.from_dict(cfg), NUM_CLASSES, pretrained_backbone=False)


def test_with_input_size_non_square():
    spec = load_model_spec("refinedet_lite")
    tall = spec.with_input_size(512, 384)
    assert tall.input_size == (512, 384)
    assert spec.input_size == (320, 320), "with_input_size must not modify the original"
    # (height, width) = (512, 384): levels (512/s) x (384/s) for s in 8, 16, 32, 64, 3 anchors per cell
    expected = 3 * (64 * 48 + 32 * 24 + 16 * 12 + 8 * 6)
    assert expected == 12240
    assert priors_for(tall).shape == (expected, 4)
    torch.manual_seed(0)
    model = build_model(tall, NUM_CLASSES).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 512, 384))
    assert out.loc.shape == (1, expected, 4)
    assert out.conf.shape == (1, expected, NUM_CLASSES + 1)
    assert out.arm_conf.shape == (1, expected, 2)


@pytest.mark.parametrize("hw", [(500, 384), (512, 0), (-64, 64)])
def test_with_input_size_rejects_bad_sizes(hw):
    with pytest.raises(ValueError, match="multiples of 64"):
        load_model_spec("ssd4s_lite").with_input_size(*hw)


# ---------------------------------------------------------------------------------------------- bad configs


def test_unknown_top_level_key_names_key_and_file(tmp_path):
    cfg = _base_cfg()
    cfg["anchor"] = cfg.pop("anchors")  # a typo
    path = _write(tmp_path, cfg)
    with pytest.raises(ValueError) as info:
        load_model_spec(path)
    msg = str(info.value)
    assert "unknown model config keys ['anchor']" in msg and str(path) in msg


def test_missing_required_key(tmp_path):
    cfg = _base_cfg()
    del cfg["backbone"]
    with pytest.raises(ValueError, match=r"missing \['backbone'\]"):
        load_model_spec(_write(tmp_path, cfg))


@pytest.mark.parametrize("arch", ["ssd4s_lite", "refinedet_lite", "drnet_lite"])
def test_unknown_head_option(arch):
    cfg = _base_cfg(arch)
    cfg["head"] = dict(cfg.get("head") or {}, chanels=64)
    spec = ModelSpec.from_dict(cfg)  # the head is validated by the architecture when it is built
    with pytest.raises(ValueError, match=r"unknown head options \['chanels'\]"):
        build_model(spec, NUM_CLASSES)


def test_bad_head_value():
    cfg = _base_cfg("drnet_lite")
    cfg["head"]["deform_kernels"] = [3, 4]
    with pytest.raises(ValueError, match="deform_kernels must be odd"):
        build_model(ModelSpec.from_dict(cfg), NUM_CLASSES)


def test_unknown_architecture(tmp_path):
    cfg = dict(_base_cfg(), architecture="yolo")
    with pytest.raises(ValueError, match="unknown architecture 'yolo'.*ssd4s, refinedet, drnet"):
        load_model_spec(_write(tmp_path, cfg))


def test_unknown_backbone_name():
    cfg = _base_cfg()
    cfg["backbone"] = {"name": "resnet50"}
    spec = ModelSpec.from_dict(cfg)
    with pytest.raises(ValueError, match="unknown backbone 'resnet50'.*lite"):
        build_model(spec, NUM_CLASSES)


def test_unknown_backbone_option():
    cfg = _base_cfg()
    cfg["backbone"] = {"name": "lite", "width_mul": 0.5}
    with pytest.raises(ValueError, match="bad options for backbone 'lite'.*width_mul"):
        build_model(ModelSpec.from_dict(cfg), NUM_CLASSES)


def test_backbone_without_name():
    cfg = _base_cfg()
    cfg["backbone"] = {"width_mult": 1.0}
    with pytest.raises(ValueError, match="backbone needs a 'name'"):
        ModelSpec.from_dict(cfg)


@pytest.mark.parametrize("size", [[300, 320], [320, 330], [0, 320]])
def test_input_size_not_multiple_of_64(tmp_path, size):
    cfg = dict(_base_cfg(), input_size=size)
    with pytest.raises(ValueError, match=f"input size {size[0]}x{size[1]}.*multiples of 64"):
        load_model_spec(_write(tmp_path, cfg))


def test_input_size_needs_two_values():
    with pytest.raises(ValueError, match=r"input_size must be \[height, width\]"):
        ModelSpec.from_dict(dict(_base_cfg(), input_size=[320, 320, 3]))


@pytest.mark.parametrize(
    "preprocess, fragment",
    [
        ({"mean": [0, 0, 0], "std": [1, 1, 1], "color": "hsv"}, "color must be one of"),
        ({"mean": [0, 0, 0], "std": [1, 0, 1]}, "3 positive stds"),
        ({"mean": [0, 0], "std": [1, 1, 1]}, "3 means"),
        ({"mean": [0, 0, 0], "std": [1, 1, 1], "order": "rgb"}, "unknown preprocess keys ['order']"),
    ],
)
def test_bad_preprocess(tmp_path, preprocess, fragment):
    cfg = dict(_base_cfg(), preprocess=preprocess)
    with pytest.raises(ValueError) as info:
        load_model_spec(_write(tmp_path, cfg))
    assert fragment in str(info.value)


def test_good_preprocess_is_normalised():
    cfg = dict(_base_cfg(), preprocess={"mean": [1, 2, 3], "std": [4, 5, 6], "color": "BGR"})
    assert ModelSpec.from_dict(cfg).preprocess == {"mean": [1.0, 2.0, 3.0], "std": [4.0, 5.0, 6.0], "color": "bgr"}


@pytest.mark.parametrize(
    "section, value, fragment",
    [
        ("anchors", {"strides": [8, 16, 32, 64], "scale": 4}, "unknown anchor config keys ['scale']"),
        ("postprocess", {"nms_threshold": 0.5}, "unknown postprocess keys ['nms_threshold']"),
        ("postprocess", {"nms_iou": 0.0}, "nms_iou must be in (0, 1]"),
        ("variances", [0.1, 0.0], "variances must be two positive numbers"),
    ],
)
def test_bad_nested_sections(section, value, fragment):
    with pytest.raises(ValueError) as info:
        ModelSpec.from_dict(dict(_base_cfg(), **{section: value}))
    assert fragment in str(info.value)


def test_unknown_name_lists_known_configs():
    with pytest.raises(FileNotFoundError) as info:
        load_model_spec("nope")
    msg = str(info.value)
    assert "no model config named 'nope'" in msg
    for name in CONFIG_NAMES:
        assert name in msg


def test_missing_yaml_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="model config file not found"):
        load_model_spec(tmp_path / "absent.yaml")


def test_invalid_yaml(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\narchitecture: [ssd4s\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_model_spec(path)


def test_not_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- ssd4s\n- lite\n")
    with pytest.raises(ValueError, match="must be a mapping"):
        load_model_spec(path)


def test_anchor_strides_must_match_the_model():
    cfg = _base_cfg()
    cfg["anchors"]["strides"] = [8, 16, 32]
    try:
        spec = ModelSpec.from_dict(cfg)
        model = build_model(spec, NUM_CLASSES).eval()
    except ValueError:
        return
    with torch.no_grad():
        out = model(torch.randn(1, 3, 320, 320))
    assert out.loc.shape[1] == priors_for(spec).shape[0]


def test_one_size_parser_reads_height_first_and_refuses_half_sizes():
    from underwater_detection.models.spec import parse_size_hw

    assert parse_size_hw("320x448") == (320, 448) and parse_size_hw(" 384X512 ") == (384, 512)
    assert parse_size_hw("320") == (320, 320)
    for bad in ("320x", "x448", "320x448x3", "320,448", "-320x448", "big", ""):
        with pytest.raises(ValueError, match="N or HxW"):
            parse_size_hw(bad)


def test_an_aspect_change_is_flagged_and_a_pure_scale_change_is_not():
    from underwater_detection.models.spec import aspect_change_warning

    assert aspect_change_warning((384, 512), (384, 512)) is None
    assert aspect_change_warning((384, 512), (192, 256)) is None  # same shape, smaller: only resolution changes
    assert aspect_change_warning((384, 512), (320, 448)) is None  # 1.40 vs 1.33: within 10 %
    warning = aspect_change_warning((320, 320), (320, 448))
    assert warning is not None and "1.40x as wide" in warning and "320x320" in warning
    assert "0.71x as wide" in aspect_change_warning((320, 448), (320, 320))
