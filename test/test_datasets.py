"""COCO JSON and VOC XML readers: boxes, labels, difficult, video order, negatives, errors that name the file."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from underwater_detection.data.datasets import (
    AnnotationError,
    CocoDataset,
    ConcatDetectionDataset,
    DetectionDataset,
    Sample,
    VocDataset,
    load_dataset,
)

CLASSES = ("sea_cucumber", "sea_urchin", "scallop", "starfish")


def _write_image(path: Path, width: int, height: int, rects=()) -> None:
    """``rects``: ``[(x1, y1, x2, y2, rgb)]`` in continuous pixel corners, filled exactly."""
    image = np.full((height, width, 3), 30, np.uint8)
    for x1, y1, x2, y2, rgb in rects:
        image[y1:y2, x1:x2] = rgb
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))  # PNG: lossless


# ---------------------------------------------------------------------------------------------------------
# COCO
# ---------------------------------------------------------------------------------------------------------
def _coco_dict() -> dict:
    return {
        "images": [
            # video frames listed out of order; a still; a negative still
            {"id": 10, "file_name": "dive/f1.png", "width": 64, "height": 48, "video_id": 7, "frame_id": 1},
            {"id": 11, "file_name": "dive/f0.png", "width": 64, "height": 48, "video_id": 7, "frame_id": 0},
            {"id": 12, "file_name": "still.png", "width": 80, "height": 60},
            {"id": 13, "file_name": "empty.png", "width": 32, "height": 32},
        ],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 5, "bbox": [10, 8, 20, 12]},
            {"id": 2, "image_id": 10, "category_id": 2, "bbox": [40, 20, 10, 10], "iscrowd": 1},
            {"id": 3, "image_id": 11, "category_id": 2, "bbox": [5, 5, 10, 10]},
            {"id": 4, "image_id": 12, "category_id": 5, "bbox": [0, 0, 80, 60], "ignore": 1},
            {"id": 5, "image_id": 12, "category_id": 2, "bbox": [30, 20, 5, 5]},
        ],
        # ids deliberately not contiguous; names spelled the way other tools write them
        "categories": [{"id": 5, "name": "Starfish"}, {"id": 2, "name": "sea urchin"}],
    }


def _write_coco(root: Path, data: dict | None = None, images: bool = True) -> Path:
    data = data or _coco_dict()
    root.mkdir(parents=True, exist_ok=True)
    if images:
        for im in data["images"]:
            rects = [
                (int(a["bbox"][0]), int(a["bbox"][1]), int(a["bbox"][0] + a["bbox"][2]), int(a["bbox"][1] + a["bbox"][3]), (250, 40, 10))
                for a in data["annotations"]
                if a["image_id"] == im["id"]
            ]
            _write_image(root / im["file_name"], im["width"], im["height"], rects[:1])
    path = root / "annotations.json"
    path.write_text(json.dumps(data))
    return path


def test_coco_reads_boxes_labels_difficult_and_negatives(tmp_path):
    path = _write_coco(tmp_path)
    ds = CocoDataset(path)
    assert isinstance(ds, DetectionDataset) and len(ds) == 4
    assert ds.class_names == ("sea urchin", "Starfish")  # sorted by category id
    s = ds[0]
    assert isinstance(s, Sample) and s.image_id == 10 and s.video_id == 7 and s.frame_index == 1
    assert s.image.shape == (48, 64, 3) and s.image.dtype == np.uint8
    np.testing.assert_array_equal(s.boxes, [[10, 8, 30, 20], [40, 20, 50, 30]])  # [x, y, w, h] -> corners
    assert s.boxes.dtype == np.float32 and s.labels.dtype == np.int64 and s.difficult.dtype == bool
    np.testing.assert_array_equal(s.labels, [1, 0])
    np.testing.assert_array_equal(s.difficult, [False, True])  # iscrowd
    np.testing.assert_array_equal(ds[2].difficult, [True, False])  # ignore
    # RGB, and the box covers exactly the drawn pixels
    assert tuple(s.image[8, 10]) == (250, 40, 10) and tuple(s.image[19, 29]) == (250, 40, 10)
    assert tuple(s.image[20, 30]) == (30, 30, 30) and tuple(s.image[7, 9]) == (30, 30, 30)
    negative = ds[3]
    assert negative.boxes.shape == (0, 4) and negative.labels.shape == (0,) and negative.difficult.shape == (0,)
    assert s.path.endswith("f1.png")


def test_coco_maps_categories_by_name(tmp_path):
    ds = CocoDataset(_write_coco(tmp_path), class_names=CLASSES)
    assert ds.class_names == CLASSES
    np.testing.assert_array_equal(ds.annotations(0).labels, [3, 1])  # Starfish -> starfish, sea urchin -> sea_urchin


def test_coco_sequences_in_frame_order_and_stills_alone(tmp_path):
    ds = CocoDataset(_write_coco(tmp_path))
    seqs = ds.sequences()
    assert seqs == {7: [1, 0], (None, 12): [2], (None, 13): [3]}


def test_coco_video_conditions_from_the_video_records(tmp_path):
    """The synthetic writer's ``preset`` (or another tool's ``condition``) per video, keyed like sequences();
    videos without one, with a non-string one, or without frames in this file are left out."""
    data = _coco_dict()
    for im, video in zip(data["images"], (7, 8, 9)):
        im["video_id"], im["frame_id"] = video, 0
    data["videos"] = [{"id": 7, "preset": "turbid"}, {"id": 8, "condition": "dark"}, {"id": 9, "preset": 3},
                      {"id": 99, "preset": "clear"}, "not a record", {"preset": "clear"}, {"id": [7], "preset": "clear"}]
    data["images"].append({"id": 14, "file_name": "still2.png", "width": 32, "height": 32})  # a still: video None
    ds = CocoDataset(_write_coco(tmp_path, data, images=False))
    assert ds.video_conditions() == {7: "turbid", 8: "dark"}
    assert set(ds.video_conditions()) <= set(ds.sequences())
    assert CocoDataset(_write_coco(tmp_path / "plain", images=False)).video_conditions() == {}


def test_coco_frame_index_alias_and_string_video(tmp_path):
    data = _coco_dict()
    for im in data["images"][:2]:
        im["frame_index"] = im.pop("frame_id")
        im["video_id"] = "dive-a"
    ds = CocoDataset(_write_coco(tmp_path, data, images=False))
    assert ds.sequences()["dive-a"] == [1, 0]


def test_coco_annotations_do_not_read_images(tmp_path):
    ds = CocoDataset(_write_coco(tmp_path, images=False), image_root=tmp_path / "nowhere")
    ann = ds.annotations(0)
    np.testing.assert_array_equal(ann.boxes, [[10, 8, 30, 20], [40, 20, 50, 30]])
    assert ann.width == 64 and ann.height == 48 and ann.image_id == 10
    with pytest.raises(AnnotationError, match=r"f1\.png.*not found.*annotations\.json"):
        ds[0]


def test_coco_unknown_class_names_file_and_class(tmp_path):
    path = _write_coco(tmp_path, images=False)
    with pytest.raises(AnnotationError, match=r"annotations\.json.*unknown class 'Starfish'") as info:
        CocoDataset(path, class_names=("sea_urchin", "scallop"))
    assert info.value.path == str(path) and isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "bbox, message",
    [
        ([60, 8, 10, 10], r"annotation id 1 .*outside the 64x48 image"),
        ([-2, 8, 10, 10], r"annotation id 1 .*outside"),
        ([10, 8, 0, 10], r"annotation id 1 .*degenerate"),
        ([10, 8, 5, -3], r"annotation id 1 .*degenerate"),
        ([10, 8, 5], r"annotation id 1: bbox must be"),
    ],
)
def test_coco_bad_boxes_name_file_and_box(tmp_path, bbox, message):
    data = _coco_dict()
    data["annotations"][0]["bbox"] = bbox
    path = _write_coco(tmp_path, data, images=False)
    with pytest.raises(AnnotationError, match=message) as info:
        CocoDataset(path)
    assert str(path) in str(info.value)


def test_coco_box_within_one_pixel_is_clipped(tmp_path):
    data = _coco_dict()
    data["annotations"][0]["bbox"] = [-0.8, 8, 64.6, 10]  # x2 = 63.8
    data["annotations"][2]["bbox"] = [50, 40, 14.9, 8.9]  # x2 = 64.9 (< 64 + 1), y2 = 48.9
    ds = CocoDataset(_write_coco(tmp_path, data, images=False))
    np.testing.assert_allclose(ds.annotations(0).boxes[0], [0, 8, 63.8, 18], atol=1e-5)
    np.testing.assert_allclose(ds.annotations(1).boxes[0], [50, 40, 64, 48], atol=1e-5)


def test_coco_malformed_json_names_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"images": [')
    with pytest.raises(AnnotationError, match=r"broken\.json: not valid JSON"):
        CocoDataset(path)
    path.write_text('[1, 2]')
    with pytest.raises(AnnotationError, match=r"broken\.json: not a COCO"):
        CocoDataset(path)


def test_coco_dangling_references_name_file(tmp_path):
    data = _coco_dict()
    data["annotations"][1]["image_id"] = 99
    with pytest.raises(AnnotationError, match=r"annotations\.json: annotation id 2 refers to image id 99"):
        CocoDataset(_write_coco(tmp_path, data, images=False))
    data = _coco_dict()
    data["annotations"][1]["category_id"] = 42
    with pytest.raises(AnnotationError, match=r"annotation id 2 has category_id 42"):
        CocoDataset(_write_coco(tmp_path, data, images=False))


def test_coco_duplicate_frame_is_an_error(tmp_path):
    data = _coco_dict()
    data["images"][1]["frame_id"] = 1
    with pytest.raises(AnnotationError, match=r"annotations\.json: video 7 has two images with frame index 1"):
        CocoDataset(_write_coco(tmp_path, data, images=False))


def test_validate_reports_missing_undecodable_and_wrong_size_images(tmp_path):
    path = _write_coco(tmp_path)
    ds = CocoDataset(path)
    ds.validate()  # all fine
    (tmp_path / "still.png").unlink()
    (tmp_path / "empty.png").write_bytes(b"not an image at all")
    _write_image(tmp_path / "dive" / "f0.png", 32, 48)  # annotation says 64x48
    with pytest.raises(AnnotationError) as info:
        ds.validate(check_images=True)
    text = str(info.value)
    assert "3 of 4 images" in text
    assert "still.png: image file not found (listed in" in text and str(path) in text
    assert "empty.png: cannot decode the image" in text
    assert "f0.png: image is 32x48 but" in text
    with pytest.raises(AnnotationError, match=r"still\.png: image file not found"):
        ds[2]
    with pytest.raises(AnnotationError, match=r"empty\.png: cannot decode"):
        ds[3]
    with pytest.raises(AnnotationError, match=r"1 of 4 images") as info:
        ds.validate(decode=False)  # existence only
    assert "still.png" in str(info.value)


def test_coco_without_image_size_checks_boxes_when_read(tmp_path):
    _write_coco(tmp_path)  # the images
    data = _coco_dict()
    for im in data["images"]:
        del im["width"], im["height"]
    data["annotations"][0]["bbox"] = [60, 8, 10, 10]  # outside the real 64x48 image
    ds = CocoDataset(_write_coco(tmp_path, data, images=False))
    with pytest.raises(AnnotationError, match=r"annotations\.json: annotation id 1 .*outside the 64x48 image"):
        ds[0]
    assert ds[1].boxes.shape == (1, 4)


# ---------------------------------------------------------------------------------------------------------
# VOC
# ---------------------------------------------------------------------------------------------------------
def _voc_xml(filename: str, width: int | None, height: int | None, objects, extra: str = "") -> str:
    objs = "".join(
        f"<object><name>{name}</name><difficult>{int(diff)}</difficult><bndbox><xmin>{b[0]}</xmin>"
        f"<ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for name, b, diff in objects
    )
    size = "" if width is None else f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>"
    return f"<annotation><filename>{filename}</filename>{size}{extra}{objs}</annotation>"


def _write_voc(root: Path) -> Path:
    # VOC 1-based inclusive: xmin=11..xmax=30 covers 0-based pixel columns 10..29 -> corners (10, 30)
    entries = {
        "000001": (64, 48, [("starfish", (11, 6, 30, 20), False), ("Sea Urchin", (41, 21, 50, 30), True)]),
        "000002": (40, 40, [("scallop", (1, 1, 40, 40), False)]),
        "000003": (40, 40, []),
    }
    for image_id, (w, h, objects) in entries.items():
        (root / "Annotations").mkdir(parents=True, exist_ok=True)
        (root / "Annotations" / f"{image_id}.xml").write_text(_voc_xml(f"{image_id}.jpg", w, h, objects))
        rects = [(b[0] - 1, b[1] - 1, b[2], b[3], (20, 240, 60)) for _, b, _ in objects[:1]]
        image = np.full((h, w, 3), 30, np.uint8)
        for x1, y1, x2, y2, rgb in rects:
            image[y1:y2, x1:x2] = rgb
        (root / "JPEGImages").mkdir(exist_ok=True)
        cv2.imwrite(str(root / "JPEGImages" / f"{image_id}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 100])
    sets = root / "ImageSets" / "Main"
    sets.mkdir(parents=True)
    (sets / "trainval.txt").write_text("000001\n000002\n\n")
    (sets / "test.txt").write_text("000003\n")
    return root


def test_voc_reads_boxes_with_one_based_conversion(tmp_path):
    ds = VocDataset(_write_voc(tmp_path / "voc"), class_names=CLASSES)
    assert len(ds) == 2 and ds.class_names == CLASSES
    s = ds[0]
    np.testing.assert_array_equal(s.boxes, [[10, 5, 30, 20], [40, 20, 50, 30]])
    np.testing.assert_array_equal(s.labels, [3, 1])
    np.testing.assert_array_equal(s.difficult, [False, True])
    assert s.image_id == 0 and s.video_id is None and s.frame_index is None
    # the converted box covers exactly the drawn (green) pixels
    green = (s.image[..., 1] > 150) & (s.image[..., 0] < 100)
    ys, xs = np.nonzero(green)
    assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (10, 5, 30, 20)
    # a full-image VOC box (1, 1, W, H) is exactly the image
    np.testing.assert_array_equal(ds[1].boxes, [[0, 0, 40, 40]])
    assert ds.sequences() == {(None, 0): [0], (None, 1): [1]}


def test_voc_splits(tmp_path):
    root = _write_voc(tmp_path / "voc")
    assert len(VocDataset(root, split="test", class_names=CLASSES)) == 1
    assert len(VocDataset(root, split=["000003", "000001"], class_names=CLASSES)) == 2
    assert len(VocDataset(root, split=root / "ImageSets" / "Main" / "test.txt", class_names=CLASSES)) == 1
    every = VocDataset(root, split=None)
    assert len(every) == 3 and every.class_names == ("scallop", "sea_urchin", "starfish")  # found, normalised
    assert every[2].boxes.shape == (0, 4)  # negative
    with pytest.raises(FileNotFoundError, match=r"val\.txt.*known splits: \['test', 'trainval'\]"):
        VocDataset(root, split="val")


def test_voc_errors_name_the_xml(tmp_path):
    root = _write_voc(tmp_path / "voc")
    with pytest.raises(AnnotationError, match=r"000001\.xml: object 1 \('starfish'\): unknown class 'starfish'"):
        VocDataset(root, class_names=("sea_urchin",))
    xml = root / "Annotations" / "000002.xml"
    xml.write_text(_voc_xml("000002.jpg", 40, 40, [("scallop", (5, 5, 45, 20), False)]))
    with pytest.raises(AnnotationError, match=r"000002\.xml: object 1 \('scallop'\): box .*outside the 40x40"):
        VocDataset(root, class_names=CLASSES)
    xml.write_text(_voc_xml("000002.jpg", 40, 40, [("scallop", (5, 5, 20, 20), False), ("scallop", (20, 5, 10, 20), False)]))
    with pytest.raises(AnnotationError, match=r"000002\.xml: object 2 \('scallop'\): degenerate box"):
        VocDataset(root, class_names=CLASSES)
    xml.write_text("<annotation><object><name>scallop</name>")
    with pytest.raises(AnnotationError, match=r"000002\.xml: malformed XML"):
        VocDataset(root, class_names=CLASSES)
    xml.write_text("<annotation><object><name>scallop</name><bndbox><xmin>1</xmin></bndbox></object></annotation>")
    with pytest.raises(AnnotationError, match=r"000002\.xml: object 1 \('scallop'\) needs <bndbox>"):
        VocDataset(root, class_names=CLASSES)
    xml.unlink()
    with pytest.raises(AnnotationError, match=r"000002\.xml: annotation file not found"):
        VocDataset(root, class_names=CLASSES)


def test_voc_missing_image_named_lazily(tmp_path):
    root = _write_voc(tmp_path / "voc")
    (root / "JPEGImages" / "000002.jpg").unlink()
    ds = VocDataset(root, class_names=CLASSES)  # building does not read images
    assert ds.annotations(1).boxes.shape == (1, 4)
    with pytest.raises(AnnotationError, match=r"000002\.jpg: image file not found \(listed in .*000002\.xml\)"):
        ds[1]
    with pytest.raises(AnnotationError, match=r"000002\.jpg"):
        ds.validate(check_images=True)


def test_voc_video_from_subfolders_and_tags(tmp_path):
    root = tmp_path / "vid"
    for video, frames in (("dive_b", (12, 3, 7)), ("dive_a", (1,))):
        for f in frames:
            name = f"{video}/frame_{f:04d}"
            (root / "Annotations" / video).mkdir(parents=True, exist_ok=True)
            (root / "Annotations" / f"{name}.xml").write_text(_voc_xml(f"frame_{f:04d}.jpg", 32, 32, [("scallop", (2, 2, 10, 10), False)]))
    (root / "Annotations" / "still.xml").write_text(
        _voc_xml("still.jpg", 32, 32, [], extra="<video_id>9</video_id><frame_id>4</frame_id>")
    )
    ds = VocDataset(root, split=None, class_names=CLASSES)
    names = [Path(ds.image_path(i)).relative_to(root / "JPEGImages").as_posix() for i in range(len(ds))]
    seqs = {k: [names[i] for i in v] for k, v in ds.sequences().items()}
    assert seqs == {
        "dive_a": ["dive_a/frame_0001.jpg"],
        "dive_b": ["dive_b/frame_0003.jpg", "dive_b/frame_0007.jpg", "dive_b/frame_0012.jpg"],
        9: ["still.jpg"],
    }
    assert ds.annotations(names.index("dive_b/frame_0007.jpg")).frame_index == 7


# ---------------------------------------------------------------------------------------------------------
# dispatch and concatenation
# ---------------------------------------------------------------------------------------------------------
def test_load_dataset_dispatch(tmp_path):
    coco_json = _write_coco(tmp_path / "coco")
    voc_root = _write_voc(tmp_path / "voc")
    assert isinstance(load_dataset(coco_json), CocoDataset)
    folder = load_dataset(tmp_path / "coco", class_names=CLASSES)
    assert isinstance(folder, CocoDataset) and folder.class_names == CLASSES and len(folder[0].boxes) == 2
    voc = load_dataset(voc_root, class_names=CLASSES)
    assert isinstance(voc, VocDataset) and len(voc) == 2  # trainval by default
    assert len(load_dataset(voc_root, class_names=CLASSES, split="test")) == 1
    (tmp_path / "other").mkdir()
    with pytest.raises(ValueError, match=r"other: not a dataset folder"):
        load_dataset(tmp_path / "other")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match=r"notes\.txt: not a dataset"):
        load_dataset(tmp_path / "notes.txt")
    with pytest.raises(FileNotFoundError, match=r"missing"):
        load_dataset(tmp_path / "missing")
    with pytest.raises(ValueError, match=r"one split"):
        load_dataset(coco_json, split="train")


def test_concat_datasets(tmp_path):
    coco = CocoDataset(_write_coco(tmp_path / "coco"), class_names=CLASSES)
    voc = VocDataset(_write_voc(tmp_path / "voc"), class_names=CLASSES)
    both = ConcatDetectionDataset([coco, voc])
    assert len(both) == 6 and both.class_names == CLASSES
    assert both[4].image_id == 4 and both[4].path == voc[0].path
    np.testing.assert_array_equal(both[-1].boxes, voc[1].boxes)
    np.testing.assert_array_equal(both.annotations(5).labels, voc.annotations(1).labels)
    seqs = both.sequences()
    assert seqs[(0, 7)] == [1, 0] and seqs[(1, (None, 0))] == [4] and seqs[(1, (None, 1))] == [5]
    assert both.video_conditions() == {} and voc.video_conditions() == {}
    with pytest.raises(IndexError):
        both[6]
    other = VocDataset(tmp_path / "voc", split=None)
    with pytest.raises(ValueError, match=r"different class names: \['sea_cucumber'.*\['scallop', 'sea_urchin', 'starfish'\]"):
        ConcatDetectionDataset([coco, other])
