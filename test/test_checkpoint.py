"""Checkpoints: round trip through real files, plain-data format, and one clear error per kind of bad file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

from underwater_detection.models.checkpoint import (
    FORMAT,
    FORMAT_VERSION,
    Checkpoint,
    CheckpointError,
    load_model,
    read_checkpoint,
    save_checkpoint,
)
from underwater_detection.models.registry import build_model, preprocess_config
from underwater_detection.models.spec import load_model_spec

CLASSES = ["sea_cucumber", "sea_urchin", "scallop", "starfish"]
PROVENANCE = {"command": "uwdet train --model x", "seed": 7, "git": "abc123", "data": ["a.bag", "b.bag"]}
METRICS = {"mAP": 0.5, "ap_per_class": [0.25, 0.5, 0.75, 0.5], "epochs": 3}
SIZE = 128  # any multiple of 64 runs; small keeps the forwards fast


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class _NotPlainData:
    """A custom object: pickling it into a checkpoint must make ``weights_only`` loading refuse the file."""

    def __init__(self) -> None:
        self.payload = [1, 2, 3]


def _trained_like(name: str, seed: int = 0):
    """A model whose weights *and* BN statistics are not the constructor defaults (so a lost buffer shows)."""
    torch.manual_seed(seed)
    spec = load_model_spec(name)
    model = build_model(spec, len(CLASSES), pretrained_backbone=False)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
        model.train()
        model(torch.randn(2, 3, SIZE, SIZE))  # moves BN running stats away from 0 / 1
    return spec, model.eval()


def _forward(model, x):
    with torch.no_grad():
        return model(x)


def _assert_same_outputs(a, b) -> None:
    assert type(a) is type(b)
    for fa, fb in zip(a, b):
        assert (fa is None) == (fb is None)
        if fa is not None:
            assert torch.equal(fa, fb)


@pytest.fixture(scope="module")
def ssd_saved(tmp_path_factory):
    spec, model = _trained_like("ssd4s_lite")
    path = save_checkpoint(tmp_path_factory.mktemp("ssd") / "ssd.pt", model, spec, CLASSES, PROVENANCE, METRICS)
    return path, spec, model


def _payload(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _expect(fn, path, *fragments) -> str:
    with pytest.raises(CheckpointError) as info:
        fn(path)
    msg = str(info.value)
    assert str(path) in msg, msg  # every message names the file
    for frag in fragments:
        assert frag in msg, f"{frag!r} not in {msg!r}"
    return msg


# ---------------------------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("name", ["ssd4s_lite", "drnet_lite"])
def test_round_trip_preserves_outputs_and_metadata(tmp_path, name):
    spec, model = _trained_like(name)
    x = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    before = _forward(model, x)

    path = save_checkpoint(tmp_path / "sub" / "model.pt", model, spec, CLASSES, PROVENANCE, METRICS)
    assert path == tmp_path / "sub" / "model.pt" and path.is_file()

    loaded, ckpt = load_model(path)
    assert isinstance(ckpt, Checkpoint)
    assert type(loaded) is type(model)
    assert not loaded.training, "load_model must return the model in eval mode"
    assert loaded.num_classes == len(CLASSES) == ckpt.num_classes
    _assert_same_outputs(before, _forward(loaded, x))

    assert ckpt.class_names == CLASSES
    # the file stores one normalisation: the resolved one, also written into the spec
    assert {**ckpt.spec.to_dict(), "preprocess": None} == {**spec.to_dict(), "preprocess": None}
    assert ckpt.spec.preprocess == ckpt.preprocess
    assert ckpt.spec.name == name
    assert ckpt.preprocess == preprocess_config(spec, model)
    assert set(ckpt.preprocess) == {"mean", "std", "color"}
    assert {k: ckpt.provenance[k] for k in PROVENANCE} == PROVENANCE
    assert {"saved_at", "torch", "underwater_detection"} <= set(ckpt.provenance)
    assert ckpt.metrics == METRICS
    assert ckpt.path == path

    # The weights matter: a freshly initialised model of the same config predicts something else.
    _, other = _trained_like(name, seed=1)
    assert not torch.equal(_forward(other, x).conf, before.conf)


def test_file_is_plain_data_for_weights_only_torch_load(ssd_saved):
    path, spec, model = ssd_saved
    payload = torch.load(path, weights_only=True)  # raises if anything but tensors and plain data is inside
    assert payload["format"] == FORMAT
    assert payload["format_version"] == FORMAT_VERSION
    assert payload["class_names"] == CLASSES
    assert {**payload["spec"], "preprocess": None} == {**spec.to_dict(), "preprocess": None}
    assert payload["spec"]["preprocess"] == payload["preprocess"]
    assert {k: payload["provenance"][k] for k in PROVENANCE} == PROVENANCE and payload["metrics"] == METRICS
    state = payload["state_dict"]
    assert set(state) == set(model.state_dict())
    for key, value in model.state_dict().items():
        assert torch.equal(state[key], value)


def test_read_checkpoint_does_not_need_a_model(ssd_saved):
    path, spec, _ = ssd_saved
    ckpt = read_checkpoint(str(path))  # str paths work too
    assert ckpt.spec.architecture == "ssd4s" and ckpt.spec.input_size == spec.input_size
    assert ckpt.class_names == CLASSES


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path, ssd_saved):
    _, spec, model = ssd_saved
    path = tmp_path / "model.pt"
    save_checkpoint(path, model, spec, CLASSES)
    assert os.listdir(tmp_path) == ["model.pt"]
    save_checkpoint(path, model, spec, CLASSES, metrics={"mAP": 0.9})  # overwrite in place
    assert os.listdir(tmp_path) == ["model.pt"]
    assert read_checkpoint(path).metrics == {"mAP": 0.9}

    # A save that fails half-way (an unpicklable object) keeps the previous file intact and cleans up.
    good = path.read_bytes()
    with pytest.raises(Exception):
        save_checkpoint(path, model, spec, CLASSES, provenance={"callback": lambda: 0})
    assert os.listdir(tmp_path) == ["model.pt"]
    assert path.read_bytes() == good


# ---------------------------------------------------------------------------------------------- save refusals


def test_save_refuses_class_count_different_from_model(tmp_path, ssd_saved):
    _, spec, model = ssd_saved
    path = tmp_path / "model.pt"
    with pytest.raises(CheckpointError) as info:
        save_checkpoint(path, model, spec, CLASSES[:3])
    assert "4 classes" in str(info.value) and "3 class names" in str(info.value)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("names", [["a", "a", "b", "c"], [], "abcd"])
def test_save_refuses_bad_class_lists(tmp_path, ssd_saved, names):
    _, spec, model = ssd_saved
    with pytest.raises(CheckpointError, match="duplicate|non-empty list"):
        save_checkpoint(tmp_path / "model.pt", model, spec, names)
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------------------------- bad files


@pytest.mark.parametrize("reader", [read_checkpoint, load_model], ids=["read", "load"])
def test_missing_file(tmp_path, reader):
    _expect(reader, tmp_path / "nope.pt", "not found")


def test_directory_is_not_a_checkpoint(tmp_path):
    _expect(read_checkpoint, tmp_path, "not found")


@pytest.mark.parametrize("reader", [read_checkpoint, load_model], ids=["read", "load"])
def test_empty_file(tmp_path, reader):
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    _expect(reader, path, "empty file")


@pytest.mark.parametrize("reader", [read_checkpoint, load_model], ids=["read", "load"])
def test_truncated_file(tmp_path, ssd_saved, reader):
    data = ssd_saved[0].read_bytes()
    path = tmp_path / "half.pt"
    path.write_bytes(data[: len(data) // 2])
    _expect(reader, path, "truncated or corrupt PyTorch checkpoint")


def test_random_bytes(tmp_path):
    path = tmp_path / "random.pt"
    path.write_bytes(np.random.default_rng(1234).bytes(4096))
    _expect(read_checkpoint, path, "not a PyTorch checkpoint")


@pytest.mark.parametrize("text", [b"hello world\n", b"this is not a checkpoint\n"])
def test_text_file_gives_checkpoint_error(tmp_path, text):
    path = tmp_path / "notes.pt"
    path.write_bytes(text)
    _expect(read_checkpoint, path, "not a PyTorch checkpoint")


@pytest.mark.parametrize("reader", [read_checkpoint, load_model], ids=["read", "load"])
def test_bare_state_dict(tmp_path, ssd_saved, reader):
    path = tmp_path / "bare.pt"
    torch.save(ssd_saved[2].state_dict(), path)
    _expect(reader, path, "not an underwater_detection checkpoint", "bare state_dict")


def test_pickled_custom_object_is_refused_not_executed(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "obj": _NotPlainData()}, path)
    assert isinstance(torch.load(path, weights_only=False)["obj"], _NotPlainData)  # the file itself is fine
    msg = _expect(read_checkpoint, path, "refused to load", "weights_only")
    assert len(msg.splitlines()) == 1


def test_plain_dict_without_header(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"epoch": 3, "lr": 0.1}, path)
    msg = _expect(read_checkpoint, path, "not an underwater_detection checkpoint")
    assert "state_dict" not in msg  # not mistaken for a bare state dict


def _rewrite(src: Path, dst: Path, **changes) -> Path:
    payload = _payload(src)
    for key, value in changes.items():
        if value is None:
            del payload[key]
        else:
            payload[key] = value
    torch.save(payload, dst)
    return dst


def test_newer_format_version(tmp_path, ssd_saved):
    path = _rewrite(ssd_saved[0], tmp_path / "future.pt", format_version=FORMAT_VERSION + 1)
    _expect(read_checkpoint, path, f"format version {FORMAT_VERSION + 1}", "newer")


@pytest.mark.parametrize("key", ["spec", "class_names", "state_dict", "preprocess"])
def test_missing_section(tmp_path, ssd_saved, key):
    path = _rewrite(ssd_saved[0], tmp_path / "partial.pt", **{key: None})
    _expect(read_checkpoint, path, f"missing '{key}'")


def test_invalid_spec_inside(tmp_path, ssd_saved):
    spec = dict(_payload(ssd_saved[0])["spec"], architecture="yolo")
    path = _rewrite(ssd_saved[0], tmp_path / "badspec.pt", spec=spec)
    _expect(read_checkpoint, path, "invalid model config", "yolo")


def test_spec_of_another_architecture(tmp_path, ssd_saved):
    path = _rewrite(ssd_saved[0], tmp_path / "mixed.pt", spec=load_model_spec("drnet_lite").to_dict())
    assert read_checkpoint(path).spec.name == "drnet_lite"  # metadata alone is consistent
    _expect(load_model, path, "weights do not match", "'drnet_lite'", "missing", "unexpected")


def test_class_names_count_different_from_head(tmp_path, ssd_saved):
    path = _rewrite(ssd_saved[0], tmp_path / "fewer.pt", class_names=CLASSES[:3])
    _expect(load_model, path, "weights do not match", "3 classes", "shape mismatch", "conf_head")


def test_duplicate_class_names_in_file(tmp_path, ssd_saved):
    path = _rewrite(ssd_saved[0], tmp_path / "dup.pt", class_names=["a", "b", "a", "c"])
    _expect(read_checkpoint, path, "duplicate class names")


def test_state_dict_not_tensors(tmp_path, ssd_saved):
    path = _rewrite(ssd_saved[0], tmp_path / "st.pt", state_dict={"w": [1.0, 2.0]})
    _expect(read_checkpoint, path, "state_dict is not a mapping of tensors")


# ---------------------------------------------------------------------------------------------- known bugs


@pytest.mark.parametrize(
    "extra",
    [{"metrics": {"mAP": np.float64(0.5)}}, {"provenance": {"data": Path("/data/train")}}],
    ids=["numpy-metric", "path-provenance"],
)
def test_save_never_writes_an_unreadable_checkpoint(tmp_path, ssd_saved, extra):
    _, spec, model = ssd_saved
    path = tmp_path / "model.pt"
    try:
        save_checkpoint(path, model, spec, CLASSES, **extra)
    except (TypeError, ValueError, CheckpointError):  # refusing at save time would be fine too
        assert not path.exists()
        return
    read_checkpoint(path)


def test_saved_file_permissions_follow_umask(tmp_path, ssd_saved):
    _, spec, model = ssd_saved
    umask = os.umask(0)
    os.umask(umask)
    path = save_checkpoint(tmp_path / "model.pt", model, spec, CLASSES)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
