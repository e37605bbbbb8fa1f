"""Writers of the synthetic benchmark (COCO, VOC, rosbag2) and the vision_msgs definitions they rely on."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from xml.etree import ElementTree as ET

import cv2
import numpy as np
import pytest

from underwater_detection.data.synthetic import CLASS_NAMES, SequenceConfig, SyntheticSequence, split_seeds
from underwater_detection.data.synthetic.cli import add_synth_arguments, synth_main
from underwater_detection.data.synthetic.preview import save_preview_grid
from underwater_detection.data.synthetic.ros_types import (
    VISION_MSGS_TYPES, get_typestore, load_vision_msgs, vision_msgs_dir,
)
from underwater_detection.data.synthetic.writers import BAG_EPOCH_NS, FRAME_ID

REPO = Path(__file__).resolve().parents[1]
W, H, FRAMES, SEQS = 160, 120, 4, 2


def _run(out: Path, *extra: str) -> int:
    parser = add_synth_arguments(argparse.ArgumentParser())
    args = parser.parse_args(["--out", str(out), "--split", "val", "--sequences", str(SEQS), "--frames", str(FRAMES),
                              "--size", f"{W}x{H}", "--formats", "coco", "voc", "bag", *extra])
    return synth_main(args)


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    assert _run(out, "--preview", str(out / "preview.png")) == 0
    return out


@pytest.fixture(scope="module")
def frames() -> dict[str, list]:
    """The same sequences rendered in memory (the writers must agree with these)."""
    cfg = SequenceConfig(width=W, height=H, num_frames=FRAMES)
    return {f"seq_{s:06d}": list(SyntheticSequence(s, cfg)) for s in split_seeds("val", SEQS)}


# ------------------------------------------------------------------------------------------------ COCO
def test_coco_loads_with_pycocotools_and_matches_frames(written, frames):
    from pycocotools.coco import COCO

    coco = COCO(str(written / "annotations.json"))
    cats = coco.loadCats(coco.getCatIds())
    assert [(c["id"], c["name"]) for c in cats] == [(i + 1, n) for i, n in enumerate(CLASS_NAMES)]
    data = coco.dataset
    assert [v["name"] for v in data["videos"]] == list(frames)
    assert len(coco.getImgIds()) == SEQS * FRAMES
    n_ann = 0
    for img in coco.loadImgs(coco.getImgIds()):
        video = data["videos"][img["video_id"] - 1]["name"]
        frame = frames[video][img["frame_id"]]
        assert img["file_name"] == f"images/{video}/{img['frame_id']:06d}.jpg"
        assert (img["width"], img["height"]) == (W, H)
        assert img["stamp"] == pytest.approx(BAG_EPOCH_NS / 1e9 + frame.stamp_s)
        pixels = cv2.imread(str(written / img["file_name"]))
        assert pixels.shape == (H, W, 3)
        assert np.abs(pixels[..., ::-1].astype(int) - frame.image.astype(int)).mean() < 6  # JPEG q90
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[img["id"]], iscrowd=None))
        assert len(anns) == len(frame.boxes)
        for ann, box, label, tid, vis, diff in zip(anns, frame.boxes, frame.labels, frame.track_ids, frame.visible,
                                                   frame.difficult):
            x1, y1, x2, y2 = box.tolist()
            assert ann["bbox"] == [x1, y1, x2 - x1, y2 - y1]
            assert ann["area"] == (x2 - x1) * (y2 - y1)
            assert ann["category_id"] == int(label) + 1 and ann["iscrowd"] == 0
            assert ann["ignore"] == ann["difficult"] == int(diff)
            assert ann["track_id"] == int(tid) and ann["visibility"] == pytest.approx(float(vis), abs=1e-4)
            n_ann += 1
    assert n_ann > 0


# ------------------------------------------------------------------------------------------------ VOC
def test_voc_xml_parses_and_matches_frames(written, frames):
    ids = (written / "voc" / "ImageSets" / "Main" / "val.txt").read_text().split()
    assert ids == [f"{v}_{i:06d}" for v in frames for i in range(FRAMES)]
    for image_id in ids:
        video, index = image_id.rsplit("_", 1)
        frame = frames[video][int(index)]
        root = ET.parse(written / "voc" / "Annotations" / f"{image_id}.xml").getroot()
        assert root.findtext("filename") == f"{image_id}.jpg"
        assert (root.findtext("video_id"), int(root.findtext("frame_id"))) == (video, int(index))
        assert (int(root.findtext("size/width")), int(root.findtext("size/height"))) == (W, H)
        assert (written / "voc" / "JPEGImages" / f"{image_id}.jpg").is_file()
        objs = root.findall("object")
        assert len(objs) == len(frame.boxes)
        for obj, box, label, diff, trunc in zip(objs, frame.boxes, frame.labels, frame.difficult, frame.truncated):
            assert obj.findtext("name") == CLASS_NAMES[int(label)]
            assert int(obj.findtext("difficult")) == int(diff) and int(obj.findtext("truncated")) == int(trunc)
            bb = [int(obj.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")]
            x1, y1, x2, y2 = (int(v) for v in box)
            assert bb == [x1 + 1, y1 + 1, x2, y2]  # VOC: 1-based inclusive pixels


# ------------------------------------------------------------------------------------------------ bags
def test_bag_rereads_with_rosbags(written, frames):
    from rosbags.highlevel import AnyReader

    store = get_typestore()
    for video, frs in frames.items():
        with AnyReader([written / "bags" / video], default_typestore=store) as reader:
            by_topic = {c.topic: c for c in reader.connections}
            assert {t: (c.msgtype, c.msgcount) for t, c in by_topic.items()} == {
                "/camera/image_raw": ("sensor_msgs/msg/Image", FRAMES),
                "/camera/camera_info": ("sensor_msgs/msg/CameraInfo", FRAMES),
                "/ground_truth": ("vision_msgs/msg/Detection2DArray", FRAMES),
            }
            seen = {"/camera/image_raw": 0, "/camera/camera_info": 0, "/ground_truth": 0}
            for conn, log_ns, raw in reader.messages():
                msg = reader.deserialize(raw, conn.msgtype)
                i = seen[conn.topic]
                seen[conn.topic] += 1
                frame = frs[i]
                stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
                assert stamp == log_ns == BAG_EPOCH_NS + round(frame.stamp_s * 1e9)
                assert msg.header.frame_id == FRAME_ID
                if conn.topic == "/camera/image_raw":
                    assert (msg.width, msg.height, msg.encoding, msg.step) == (W, H, "rgb8", W * 3)
                    np.testing.assert_array_equal(np.asarray(msg.data).reshape(H, W, 3), frame.image)
                elif conn.topic == "/camera/camera_info":
                    k = np.asarray(msg.k).reshape(3, 3)
                    assert k[0, 2] == W / 2 and k[1, 2] == H / 2 and k[0, 0] == k[1, 1] > 0
                    assert (msg.width, msg.height) == (W, H)
                else:
                    assert len(msg.detections) == len(frame.boxes)
                    for det, box, label, tid in zip(msg.detections, frame.boxes, frame.labels, frame.track_ids):
                        x1, y1, x2, y2 = box.tolist()
                        assert det.bbox.center.position.x == (x1 + x2) / 2
                        assert det.bbox.center.position.y == (y1 + y2) / 2
                        assert (det.bbox.size_x, det.bbox.size_y) == (x2 - x1, y2 - y1)
                        assert det.results[0].hypothesis.class_id == CLASS_NAMES[int(label)]
                        assert det.results[0].hypothesis.score == 1.0
                        assert det.id == str(int(tid))
            assert all(v == FRAMES for v in seen.values())


# ------------------------------------------------------------------------------------------------ CLI
def test_output_is_deterministic_and_independent_of_workers(written, tmp_path):
    assert _run(tmp_path, "--workers", "2") == 0
    for rel in ("annotations.json", "voc/ImageSets/Main/val.txt",
                "voc/Annotations/seq_100001_000002.xml", "images/seq_100000/000003.jpg",
                "bags/seq_100001/seq_100001.mcap", "bags/seq_100001/metadata.yaml"):
        assert (tmp_path / rel).read_bytes() == (written / rel).read_bytes(), rel
    info = json.loads((written / "synth_info.json").read_text())
    assert info["seeds"] == [100000, 100001] and info["split"] == "val"


def test_refuses_non_empty_output_unless_overwrite(written, tmp_path):
    (tmp_path / "keep.txt").write_text("user file")
    with pytest.raises(ValueError, match="not empty"):
        _run(tmp_path)
    assert _run(tmp_path, "--overwrite") == 0
    assert _run(tmp_path, "--overwrite") == 0
    assert (tmp_path / "keep.txt").read_text() == "user file"  # only synth's own outputs are replaced
    assert len(list((tmp_path / "images").iterdir())) == SEQS


def test_preview_grid(written, frames, tmp_path):
    img = cv2.imread(str(written / "preview.png"))
    assert img is not None and img.shape[0] >= H and img.shape[1] >= 2 * W
    path = save_preview_grid(tmp_path / "grid.png", [f for frs in frames.values() for f in frs[:2]], CLASS_NAMES,
                             cols=2)
    assert cv2.imread(str(path)).shape == (2 * H + 4, 2 * W + 4, 3)


# ------------------------------------------------------------------------------------------------ vision_msgs
def _fields(store, name: str) -> list[str]:
    return [f for f, _ in store.fielddefs[f"vision_msgs/msg/{name}"][1]]


def test_vision_msgs_field_layout_matches_upstream_4_1():
    store = get_typestore()
    expected = {
        "BoundingBox2D": ["center", "size_x", "size_y"],
        "BoundingBox2DArray": ["header", "boxes"],
        "BoundingBox3D": ["center", "size"],
        "BoundingBox3DArray": ["header", "boxes"],
        "Classification": ["header", "results"],
        "Detection2D": ["header", "results", "bbox", "id"],
        "Detection2DArray": ["header", "detections"],
        "Detection3D": ["header", "results", "bbox", "id"],
        "Detection3DArray": ["header", "detections"],
        "LabelInfo": ["header", "class_map", "threshold"],
        "ObjectHypothesis": ["class_id", "score"],
        "ObjectHypothesisWithPose": ["hypothesis", "pose"],
        "Point2D": ["x", "y"],
        "Pose2D": ["position", "theta"],
        "VisionClass": ["class_id", "class_name"],
        "VisionInfo": ["header", "method", "database_location", "database_version"],
    }
    assert sorted(expected) == sorted(VISION_MSGS_TYPES)
    for name, fields in expected.items():
        assert _fields(store, name) == fields, name
        assert store.fielddefs[f"vision_msgs/msg/{name}"][0] == [], f"{name} has no constants upstream"
    fd = dict(store.fielddefs["vision_msgs/msg/Detection2D"][1])
    assert fd["id"][1] == ("string", 0)
    assert dict(store.fielddefs["vision_msgs/msg/ObjectHypothesis"][1])["score"][1] == ("float64", 0)
    assert dict(store.fielddefs["vision_msgs/msg/LabelInfo"][1])["threshold"][1] == ("float32", 0)
    assert dict(store.fielddefs["vision_msgs/msg/VisionClass"][1])["class_id"][1] == ("uint16", 0)


# RIHS01 type hashes of vision_msgs 4.1.x as generated upstream (rosidl *__description.c of a Jazzy build).
# A hash covers every field name, type and order of the type and of everything it references, so equality
# proves our .msg files describe exactly the upstream types.
UPSTREAM_RIHS01 = {
    "BoundingBox2D": "008eacbb0cf8f26e83795547bed013eec3675485ef386ec056d80eaaf1c1ce2f",
    "BoundingBox3D": "bbb73a65c163d7f9bb29009c7bde9f7faa576bd2d23299c4511d19230dab4698",
    "Classification": "f74db28d0eaef3afb78f48bf2161cd709a1383a0309d3454383b25be11345143",
    "Detection2D": "0d12b69df5c593b3455b7346fac8205437a7d4bcb09b9e0e0b2dde787ded38ea",
    "Detection2DArray": "214274120007f4a683866481336b70310268cfa107aebe9d594a6acf75bda968",
    "Detection3D": "ddd703be132ab0b69d33121f1bb034132bfbb3b0ac5f9fb1516005ba1c8a265b",
    "Detection3DArray": "793f5eab9595ac1c0da07873cc859db42eae51f0ee76056db8562515d830e018",
    "LabelInfo": "3d37df4015cdf660cc851c51897f2acd957e1ca6205ba0a99aebffb9406b0783",
    "ObjectHypothesis": "51da43cec11c01957a64d1e05a24acd18aae7745ec30b74348ad5f6d634f7f90",
    "ObjectHypothesisWithPose": "41c12344c0396c48b81df12467c192d99b2a0eb1463c5c37194e4223251c80bc",
    "Point2D": "eab0e83f44ab4de92ceaf76dd7d0e7638f2bdd1d16ffbe16c7a136c48e407247",
    "Pose2D": "b0b5d1d7b4c20dd4fcde3ed1d4b289a919290572007d67a97043814db25d3648",
    "VisionClass": "1e4a11f0fed50b5623cb8ff26ca0e37952a48a9c074d16f804b44e9164c2037a",
    "VisionInfo": "95d3116a17484ad91c9a2686e1d54890bbfc3ff6c6a2de137738c4950d45d284",
}


def test_vision_msgs_type_hashes_match_upstream():
    store = get_typestore("jazzy")
    for name, digest in UPSTREAM_RIHS01.items():
        assert store.hash_rihs01(f"vision_msgs/msg/{name}") == f"RIHS01_{digest}", name


def test_each_msg_file_parses_and_package_is_complete():
    from rosbags.typesys import get_types_from_msg

    folder = REPO / "third_party" / "vision_msgs"
    assert vision_msgs_dir() == folder / "msg"
    assert sorted(p.stem for p in (folder / "msg").glob("*.msg")) == sorted(VISION_MSGS_TYPES)
    for p in (folder / "msg").glob("*.msg"):
        assert f"vision_msgs/msg/{p.stem}" in get_types_from_msg(p.read_text(), f"vision_msgs/msg/{p.stem}")
    assert (folder / "COLCON_IGNORE").is_file()
    pkg = ET.parse(folder / "package.xml").getroot()
    assert pkg.findtext("name") == "vision_msgs" and pkg.findtext("version").startswith("4.1.")
    cmake = (folder / "CMakeLists.txt").read_text()
    assert "rosidl_generate_interfaces" in cmake
    assert all(f"msg/{n}.msg" in cmake for n in VISION_MSGS_TYPES)


def test_missing_definitions_give_a_clear_error(tmp_path, monkeypatch):
    from underwater_detection.data.synthetic import ros_types

    (tmp_path / "Detection2DArray.msg").write_text("std_msgs/Header header\n")
    with pytest.raises(FileNotFoundError, match="BoundingBox2D.msg is missing"):
        load_vision_msgs(tmp_path)
    monkeypatch.setenv("UWDET_VISION_MSGS_DIR", str(tmp_path))
    assert vision_msgs_dir() == tmp_path  # the environment variable takes priority
    monkeypatch.setattr(ros_types, "candidate_dirs", lambda: [tmp_path / "nowhere"])
    with pytest.raises(FileNotFoundError, match="UWDET_VISION_MSGS_DIR"):
        vision_msgs_dir()


def test_project_dataset_readers_round_trip(written, frames):
    """The project's COCO and VOC readers load what synth writes, with boxes, flags and video order intact."""
    datasets = pytest.importorskip("underwater_detection.data.datasets")
    for ds in (datasets.load_dataset(written, class_names=CLASS_NAMES),
               datasets.load_dataset(written / "voc", class_names=CLASS_NAMES, split="val")):
        ds.validate()
        seqs = ds.sequences()
        assert len(seqs) == SEQS and all(len(v) == FRAMES for v in seqs.values())
        for (video, index), i in zip([(v, j) for v in frames for j in range(FRAMES)],
                                     [i for k in sorted(seqs, key=str) for i in seqs[k]]):
            ann = ds.annotations(i)
            frame = frames[video][index]
            np.testing.assert_array_equal(ann.boxes, frame.boxes)
            np.testing.assert_array_equal(ann.labels, frame.labels)
            np.testing.assert_array_equal(ann.difficult, frame.difficult)
