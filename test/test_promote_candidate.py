"""scripts/promote_candidate.py: a probe's weights ship under another model's name only when that model is the same
network at the same input size, and the written file says where its weights came from."""
from pathlib import Path

import pytest
import torch
import yaml

from script_loading import load_script
from test_trainer import coco, recipe  # noqa: F401 - fixture
from underwater_detection.engine.lineage import weights_sha256
from underwater_detection.engine.trainer import train
from underwater_detection.models.checkpoint import CheckpointError, load_model, read_checkpoint


@pytest.fixture(scope="module")
def promote():
    return load_script("promote_candidate")


@pytest.fixture(scope="module")
def candidate(tmp_path_factory, coco):  # noqa: F811
    tmp = tmp_path_factory.mktemp("candidate")
    return train(recipe(tmp, coco, iterations=1), device="cpu", show_progress=False)


def spec_file(tmp_path: Path, candidate: Path, name: str, **changes) -> Path:
    spec = read_checkpoint(candidate).spec.to_dict()
    spec.pop("preprocess")  # the backbone's default, as in config/models
    spec.update(name=name, description="a test copy", **changes)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_the_same_network_is_written_under_the_new_name_with_the_same_weights(tmp_path, candidate, promote):
    target = spec_file(tmp_path, candidate, "ssd4s_lite_renamed")
    out = promote.promote(candidate, str(target), tmp_path / "models" / "ssd4s_lite_renamed.pt")
    before, after = read_checkpoint(candidate), read_checkpoint(out)
    assert after.spec.name == "ssd4s_lite_renamed" and before.spec.name == "ssd4s_lite"
    assert weights_sha256(after.state_dict) == weights_sha256(before.state_dict)
    assert after.provenance["promoted_from"] == {
        "file": str(candidate), "spec_name": "ssd4s_lite", "weights_sha256": weights_sha256(before.state_dict)}
    assert after.provenance["command"] == before.provenance["command"]  # the run that trained it, kept
    assert after.preprocess == before.preprocess and after.class_names == before.class_names
    model_a, _ = load_model(candidate, "cpu")
    model_b, _ = load_model(out, "cpu")
    image = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        a, b = model_a.eval()(image), model_b.eval()(image)
    leaves_a, leaves_b = (torch.utils._pytree.tree_leaves(out) for out in (a, b))
    tensors = [(x, y) for x, y in zip(leaves_a, leaves_b, strict=True) if isinstance(x, torch.Tensor)]
    assert tensors and all(torch.equal(x, y) for x, y in tensors)


def test_a_different_input_size_is_refused_and_nothing_is_written(tmp_path, candidate, promote):
    target = spec_file(tmp_path, candidate, "ssd4s_lite_bigger", input_size=[192, 256])
    out = tmp_path / "out.pt"
    with pytest.raises(CheckpointError, match="differ in input_size"):
        promote.promote(candidate, str(target), out)
    assert not out.exists()


def test_the_command_line_refuses_overwriting_its_source_and_says_why(tmp_path, candidate, promote, capsys):
    target = spec_file(tmp_path, candidate, "ssd4s_lite_renamed")
    size = candidate.stat().st_size
    assert promote.main([str(candidate), "--as", str(target), "--out", str(candidate)]) == 1
    assert "would overwrite the candidate" in capsys.readouterr().err
    assert candidate.stat().st_size == size and read_checkpoint(candidate).spec.name == "ssd4s_lite"


def test_an_unknown_model_name_is_an_error_not_a_traceback(tmp_path, candidate, promote, capsys):
    assert promote.main([str(candidate), "--as", "no_such_model", "--out", str(tmp_path / "x.pt")]) == 1
    assert "no model config named 'no_such_model'" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()


def test_another_normalisation_is_refused(tmp_path, candidate, promote):
    """The weights were trained on images normalised one way; a spec that feeds them another is another model."""
    target = spec_file(tmp_path, candidate, "ssd4s_lite_bgr",
                       preprocess={"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "color": "bgr"})
    with pytest.raises(CheckpointError, match="differ in preprocess"):
        promote.promote(candidate, str(target), tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()


def test_an_existing_file_is_kept_unless_forced(tmp_path, candidate, promote):
    target = spec_file(tmp_path, candidate, "ssd4s_lite_renamed")
    out = tmp_path / "shipped.pt"
    out.write_bytes(b"the shipped model")
    with pytest.raises(CheckpointError, match="exists .*--force"):
        promote.promote(candidate, str(target), out)
    assert out.read_bytes() == b"the shipped model"
    promote.promote(candidate, str(target), out, force=True)
    assert read_checkpoint(out).spec.name == "ssd4s_lite_renamed"
    assert not list(tmp_path.glob(".*promoting*"))  # the staged file does not linger


def test_the_default_output_is_named_after_the_spec_not_the_argument(tmp_path, candidate, promote, monkeypatch):
    """--as may be a YAML path; the file goes to models/<spec name>.pt either way."""
    monkeypatch.setattr(promote, "REPO", tmp_path)
    target = spec_file(tmp_path, candidate, "ssd4s_lite_renamed")
    assert promote.main([str(candidate), "--as", str(target)]) == 0
    assert read_checkpoint(tmp_path / "models" / "ssd4s_lite_renamed.pt").spec.name == "ssd4s_lite_renamed"
