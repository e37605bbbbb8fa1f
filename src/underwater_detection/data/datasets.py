"""Detection datasets: COCO JSON and Pascal VOC XML, still images and video sequences.

Everything a dataset returns uses one convention (DESIGN.md, "boundary" side):

* ``image``: ``HxWx3`` uint8 **RGB** (decoded with OpenCV, converted from BGR).
* ``boxes``: ``(N, 4)`` float32 pixel corners ``(x1, y1, x2, y2)`` in *continuous* coordinates: pixel
  column ``i`` covers ``[i, i + 1)``, so a box that covers pixels ``0..9`` is ``(0, 10)`` and its width is 10.
  COCO's ``[x, y, w, h]`` is already in this convention (``x2 = x + w``). VOC stores 1-based *inclusive*
  pixel indices (``xmin = 1`` is the first column, ``xmax`` is the last covered column), so VOC boxes become
  ``(xmin - 1, ymin - 1, xmax, ymax)`` and keep VOC's width ``xmax - xmin + 1``.
* ``labels``: ``(N,)`` int64 indices into ``dataset.class_names`` (0-based, no background class).
* ``difficult``: ``(N,)`` bool. VOC ``<difficult>1``, COCO ``iscrowd`` / ``ignore`` / ``difficult``: such
  boxes are ignored by evaluation and (by default) dropped by the training transform.

Annotations are parsed and checked when the dataset is built (malformed files, unknown classes, degenerate
boxes, boxes more than 1 px outside the image size the annotation declares); images are read lazily. Every
problem raises :class:`AnnotationError` naming the file (and the box or class). ``validate()`` checks all
image files up front (exists, decodes, size matches the annotation, boxes inside).

Class names are matched case-insensitively with spaces and hyphens treated as underscores, so a file that
says ``"Sea cucumber"`` matches ``sea_cucumber``; anything else that is not in ``class_names`` is an error.

Video: ``sequences()`` groups dataset indices by video in frame order. COCO images carry ``video_id`` and
``frame_id`` (or ``frame_index``), as in COCO-VID / TAO / mmtracking files. VOC images may carry
``<video_id>`` and ``<frame_id>`` (or ``<frame_index>``) elements in the XML; otherwise an image id with a
folder part (``ImageSets`` line ``dive_03/000120``, i.e. ``Annotations/dive_03/000120.xml``) belongs to
video ``"dive_03"`` with the frame index taken from the trailing digits of its name. An image that belongs
to no video is a one-frame sequence of its own, keyed ``(None, image_id)``, so a temporal detector is reset
before it and nothing is carried across unrelated stills.
"""
from __future__ import annotations

import bisect
import functools
import gc
import json
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Hashable, Iterable, Sequence

import cv2
import numpy as np
from torch.utils.data import Dataset

from .class_names import normalize_class_name  # noqa: F401  (re-exported: part of this module's API)

BOX_TOLERANCE_PX = 1.0  # a box may stick out of the image by this much (rounding in annotation tools); it is clipped
_MAX_LISTED_PROBLEMS = 20


class AnnotationError(ValueError):
    """A broken annotation or image. The message starts with the offending file; ``path`` holds it."""

    def __init__(self, path: str | Path, message: str) -> None:
        self.path = str(path)
        super().__init__(f"{path}: {message}")


@dataclass
class Sample:
    """One image and its ground truth; see the module docstring for the conventions."""

    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    difficult: np.ndarray
    image_id: int
    video_id: int | str | None = None
    frame_index: int | None = None
    path: str = ""


@dataclass
class ImageAnnotation:
    """The ground truth of one image without its pixels (for evaluation). ``width``/``height`` are the
    annotation's declared size (``None`` if it declares none)."""

    boxes: np.ndarray
    labels: np.ndarray
    difficult: np.ndarray
    image_id: int
    video_id: int | str | None
    frame_index: int | None
    path: str
    width: int | None
    height: int | None
    track_ids: np.ndarray | None = None  # (N,) int64 object identity across frames, -1 where unknown (COCO ``track_id``)


@dataclass
class _Record:
    path: str  # image file
    source: str  # the annotation file that lists the image (named in errors)
    boxes: np.ndarray
    labels: np.ndarray
    difficult: np.ndarray
    image_id: int
    width: int | None = None
    height: int | None = None
    video_id: int | str | None = None
    frame_index: int | None = None
    # Only for records whose annotation declares no image size: boxes are checked when the image is read,
    # and these strings say which box is which in that error.
    box_refs: Sequence[Any] | None = None
    checked: bool = True
    track_ids: np.ndarray | None = None


def _class_index(class_names: Sequence[str], where: str | Path) -> dict[str, int]:
    index: dict[str, int] = {}
    for i, name in enumerate(class_names):
        key = normalize_class_name(name)
        if key in index:
            raise ValueError(
                f"{where}: class names {class_names[index[key]]!r} and {name!r} are the same class after "
                "normalisation (case, spaces, hyphens)"
            )
        index[key] = i
    return index


def check_boxes(
    boxes: np.ndarray, width: int | None, height: int | None, source: str | Path, refs: Sequence[Any]
) -> np.ndarray:
    """Validate pixel boxes against an image size; returns them clipped to the image.

    Raises :class:`AnnotationError` naming ``source`` and the box (``refs[k]`` describes box ``k``) for a
    non-finite or degenerate box (width or height <= 0) or one more than ``BOX_TOLERANCE_PX`` outside.
    With no size (``None``) only the first two are checked and the boxes come back unclipped.
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    if boxes.shape[0] == 0:
        return boxes
    finite = np.isfinite(boxes).all(axis=1)
    degenerate = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    tol = BOX_TOLERANCE_PX
    if width is None or height is None:
        outside = np.zeros(len(boxes), bool)
    else:
        outside = (
            (boxes[:, 0] < -tol) | (boxes[:, 1] < -tol) | (boxes[:, 2] > width + tol) | (boxes[:, 3] > height + tol)
        )
    bad = ~finite | degenerate | outside
    for k in np.flatnonzero(bad)[:1].tolist():  # report the first bad box
        corners = ", ".join(f"{v:g}" for v in boxes[k].tolist())
        if not finite[k]:
            raise AnnotationError(source, f"{refs[k]}: non-finite coordinates (x1, y1, x2, y2) = ({corners})")
        if degenerate[k]:
            raise AnnotationError(
                source, f"{refs[k]}: degenerate box (x1, y1, x2, y2) = ({corners}): width or height <= 0"
            )
        if outside[k]:
            raise AnnotationError(
                source,
                f"{refs[k]}: box (x1, y1, x2, y2) = ({corners}) lies outside the {width}x{height} image "
                f"(by more than {tol:g} px)",
            )
    if width is None or height is None:
        return boxes
    clipped = np.clip(boxes, 0, np.array([width, height, width, height], np.float32))
    empty = (clipped[:, 2] <= clipped[:, 0]) | (clipped[:, 3] <= clipped[:, 1])
    if empty.any():
        k = int(np.flatnonzero(empty)[0])
        corners = ", ".join(f"{v:g}" for v in boxes[k].tolist())
        raise AnnotationError(source, f"{refs[k]}: box ({corners}) has no area inside the {width}x{height} image")
    return clipped


def read_image_rgb(path: str | Path, listed_in: str | Path | None = None) -> np.ndarray:
    """Decode an image file to ``HxWx3`` uint8 RGB, or raise :class:`AnnotationError` naming it."""
    where = f" (listed in {listed_in})" if listed_in is not None else ""
    p = Path(path)
    if not p.is_file():
        raise AnnotationError(p, f"image file not found{where}")
    data = np.fromfile(str(p), np.uint8)  # fromfile + imdecode also copes with non-ASCII paths
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise AnnotationError(p, f"cannot decode the image{where}: corrupt, empty or not an image format OpenCV reads")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _sequence_order(keys_frames: Iterable[tuple[Hashable, int | None]]) -> dict[Hashable, list[int]]:
    groups: dict[Hashable, list[tuple[float, int]]] = {}
    for i, (video, frame) in enumerate(keys_frames):
        groups.setdefault(video, []).append((math.inf if frame is None else frame, i))
    return {k: [i for _, i in sorted(v)] for k, v in groups.items()}


class DetectionDataset(Dataset):
    """Base class: a list of annotated images, read lazily. Subclasses fill ``class_names`` and ``_records``."""

    class_names: tuple[str, ...] = ()

    def __init__(self) -> None:
        self._records: list[_Record] = []
        self.source = ""  # the annotation file or folder, named in dataset-level errors

    # -- indexing -------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._records)

    def _index(self, i: int) -> int:
        n = len(self)
        j = int(i)
        if j < 0:
            j += n
        if not 0 <= j < n:
            raise IndexError(f"index {i} out of range for a dataset of {n} images")
        return j

    def image_path(self, i: int) -> str:
        return self._records[self._index(i)].path

    # -- access ---------------------------------------------------------------------------------------
    def __getitem__(self, i: int) -> Sample:
        rec = self._records[self._index(i)]
        image = read_image_rgb(rec.path, rec.source)
        boxes = self._checked_boxes(rec, image.shape[0], image.shape[1])
        return Sample(
            image=image,
            boxes=boxes.copy(),
            labels=rec.labels.copy(),
            difficult=rec.difficult.copy(),
            image_id=rec.image_id,
            video_id=rec.video_id,
            frame_index=rec.frame_index,
            path=rec.path,
        )

    def annotations(self, i: int) -> ImageAnnotation:
        """Ground truth of image ``i`` without decoding it. If the annotation declared no image size, the
        boxes are checked against the real size only once the image is read (``[i]`` or ``validate()``)."""
        rec = self._records[self._index(i)]
        return ImageAnnotation(
            boxes=rec.boxes.copy(),
            labels=rec.labels.copy(),
            difficult=rec.difficult.copy(),
            image_id=rec.image_id,
            video_id=rec.video_id,
            frame_index=rec.frame_index,
            path=rec.path,
            width=rec.width,
            height=rec.height,
            track_ids=None if rec.track_ids is None else rec.track_ids.copy(),
        )

    def frame_rate(self) -> float | None:
        """The camera frame rate the annotation declares for its videos (one rate for all), else ``None``."""
        return None

    def video_conditions(self) -> dict[Hashable, str]:
        """``{video key (as in sequences()): water condition}`` for videos whose annotation names one (the
        synthetic generator's ``preset``: clear, turbid, dark), so evaluation can say how a detector degrades
        in bad water instead of one average over all dives. Empty when the annotation names none."""
        return {}

    def sequences(self) -> dict[Hashable, list[int]]:
        """``{video key: dataset indices in frame order}``, videos in order of first appearance.

        The key is the ``video_id``; a still image (no video) is its own one-frame sequence keyed
        ``(None, image_id)``. Frames without a frame index come after the indexed ones, in dataset order.
        """
        return _sequence_order(
            (rec.video_id if rec.video_id is not None else (None, rec.image_id), rec.frame_index)
            for rec in self._records
        )

    def validate(self, check_images: bool = True, decode: bool = True) -> None:
        """Check every image up front; raise one :class:`AnnotationError` listing all problems.

        ``check_images``: the image files exist; with ``decode`` also that OpenCV decodes them, their size
        matches the annotation and the boxes lie inside (slow on a big dataset: it reads every image).
        Annotation-level problems were already raised when the dataset was built.
        """
        if not check_images:
            return
        problems: list[AnnotationError] = []
        for rec in self._records:
            try:
                if decode:
                    image = read_image_rgb(rec.path, rec.source)
                    self._checked_boxes(rec, image.shape[0], image.shape[1])
                elif not Path(rec.path).is_file():
                    raise AnnotationError(rec.path, f"image file not found (listed in {rec.source})")
            except AnnotationError as exc:
                problems.append(exc)
        if problems:
            listed = "\n  ".join(str(p) for p in problems[:_MAX_LISTED_PROBLEMS])
            more = len(problems) - _MAX_LISTED_PROBLEMS
            tail = f"\n  ... and {more} more" if more > 0 else ""
            raise AnnotationError(
                self.source or problems[0].path,
                f"{len(problems)} of {len(self)} images have problems:\n  {listed}{tail}",
            )

    def _checked_boxes(self, rec: _Record, height: int, width: int) -> np.ndarray:
        if rec.width is not None and rec.height is not None and (rec.width, rec.height) != (width, height):
            raise AnnotationError(
                rec.path,
                f"image is {width}x{height} but {rec.source} declares {rec.width}x{rec.height} "
                "(wrong image, or an EXIF rotation the annotation tool ignored?)",
            )
        if not rec.checked:
            refs = rec.box_refs or [f"box {k}" for k in range(len(rec.boxes))]
            rec.boxes = check_boxes(rec.boxes, width, height, rec.source, refs)
            rec.width, rec.height, rec.checked, rec.box_refs = width, height, True, None
        return rec.boxes

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} images, classes={list(self.class_names)})"


def _make_record(
    *,
    path: str,
    source: str,
    boxes: list[list[float]],
    labels: list[int],
    difficult: list[bool],
    refs: Sequence[Any],
    image_id: int,
    width: int | None,
    height: int | None,
    video_id: int | str | None,
    frame_index: int | None,
    track_ids: list[int] | None = None,
) -> _Record:
    arr = np.asarray(boxes, np.float32).reshape(-1, 4)
    rec = _Record(
        path=path,
        source=source,
        boxes=arr,
        labels=np.asarray(labels, np.int64).reshape(-1),
        difficult=np.asarray(difficult, bool).reshape(-1),
        image_id=image_id,
        width=width,
        height=height,
        video_id=video_id,
        frame_index=frame_index,
        track_ids=None if track_ids is None else np.asarray(track_ids, np.int64).reshape(-1),
    )
    if width is not None and height is not None:
        rec.boxes = check_boxes(arr, width, height, source, refs)
    else:
        # No declared size: the degenerate / non-finite checks run now, the outside check when it is read.
        check_boxes(arr, None, None, source, refs)
        rec.checked, rec.box_refs = False, refs
    return rec


def _check_unique_frames(records: Sequence[_Record], source: str | Path) -> None:
    seen: dict[tuple[Any, int], str] = {}
    for rec in records:
        if rec.video_id is None or rec.frame_index is None:
            continue
        key = (rec.video_id, rec.frame_index)
        if key in seen:
            raise AnnotationError(
                source,
                f"video {rec.video_id!r} has two images with frame index {rec.frame_index}: {seen[key]} and {rec.path}",
            )
        seen[key] = rec.path


def _optional_int(value: Any, what: str, source: str | Path) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise AnnotationError(source, f"{what} must be an integer, got {value!r}")
    try:
        as_float = float(value)
    except (TypeError, ValueError):
        raise AnnotationError(source, f"{what} must be an integer, got {value!r}") from None
    if not math.isfinite(as_float) or as_float != int(as_float):
        raise AnnotationError(source, f"{what} must be an integer, got {value!r}")
    return int(as_float)


def _positive_size(w: Any, h: Any, what: str, source: str | Path) -> tuple[int | None, int | None]:
    width, height = _optional_int(w, f"{what} width", source), _optional_int(h, f"{what} height", source)
    if width is None or height is None or width <= 0 or height <= 0:
        return None, None  # no (usable) declared size: checked against the decoded image instead
    return width, height


def _gc_paused(fn: Callable[..., None]) -> Callable[..., None]:
    """Parsing a big annotation file allocates millions of small containers that all stay alive; the cyclic
    garbage collector would scan them again and again (~30% of the load time) for nothing."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            fn(*args, **kwargs)
        finally:
            if was_enabled:
                gc.enable()

    return wrapper


# ---------------------------------------------------------------------------------------------------------
# COCO
# ---------------------------------------------------------------------------------------------------------
class CocoDataset(DetectionDataset):
    """A COCO-format JSON file (``images``, ``annotations``, ``categories``).

    Args:
        json_path: the annotation file.
        image_root: folder that ``images[*].file_name`` is relative to; default: the JSON file's folder.
        class_names: the model's classes. Categories are mapped *by name* (normalised, see the module
            docstring); an annotation whose category is not among them is an error. Categories listed in the
            file but used by no annotation are ignored. Default: the file's categories sorted by id.

    ``image_id`` is the file's image id. ``iscrowd`` / ``ignore`` / ``difficult`` annotations are kept with
    ``difficult=True``. Images without annotations are kept (negatives). Video fields on images:
    ``video_id`` and ``frame_id`` (or ``frame_index``).
    """

    @_gc_paused
    def __init__(
        self,
        json_path: str | Path,
        image_root: str | Path | None = None,
        class_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        self.json_path = Path(json_path)
        self.image_root = Path(image_root) if image_root is not None else self.json_path.parent
        src = self.source = str(self.json_path)
        if not self.json_path.is_file():
            raise FileNotFoundError(f"COCO annotation file not found: {self.json_path}")
        try:
            with open(self.json_path, "rb") as f:
                data = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise AnnotationError(src, f"not valid JSON: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("images"), list):
            raise AnnotationError(src, "not a COCO detection file: expected an object with an 'images' list")
        annotations = data.get("annotations") or []
        categories = data.get("categories") or []
        if not isinstance(annotations, list) or not isinstance(categories, list):
            raise AnnotationError(src, "'annotations' and 'categories' must be lists")

        # categories: id -> name
        cat_names: dict[Any, str] = {}
        for c in categories:
            if not isinstance(c, dict) or "id" not in c or "name" not in c:
                raise AnnotationError(src, f"category entry without 'id' and 'name': {c!r}")
            if c["id"] in cat_names:
                raise AnnotationError(src, f"category id {c['id']!r} is listed twice")
            cat_names[c["id"]] = str(c["name"])
        if class_names is None:
            ordered = sorted(cat_names.items(), key=lambda kv: (str(type(kv[0])), kv[0]))
            class_names = [name for _, name in ordered]
        self.class_names = tuple(str(n) for n in class_names)
        name_index = _class_index(self.class_names, src)
        cat_to_label: dict[Any, int] = {}
        for cid, name in cat_names.items():
            label = name_index.get(normalize_class_name(name))
            if label is not None:
                cat_to_label[cid] = label

        # images
        image_index: dict[int, int] = {}
        metas: list[dict[str, Any]] = []
        for pos, im in enumerate(data["images"]):
            if not isinstance(im, dict) or "id" not in im or "file_name" not in im:
                raise AnnotationError(src, f"images[{pos}] needs an 'id' and a 'file_name', got {im!r}")
            image_id = _optional_int(im["id"], f"images[{pos}].id", src)
            assert image_id is not None
            if image_id in image_index:
                raise AnnotationError(src, f"image id {image_id} is listed twice")
            image_index[image_id] = pos
            frame = im.get("frame_id", im.get("frame_index"))
            width, height = _positive_size(im.get("width"), im.get("height"), f"image {image_id}", src)
            metas.append(
                {
                    "id": image_id,
                    "path": str(self.image_root / str(im["file_name"])),
                    "file_name": str(im["file_name"]),
                    "width": width,
                    "height": height,
                    "video_id": im.get("video_id"),
                    "frame_index": _optional_int(frame, f"image {image_id} frame_id", src),
                    "boxes": [],
                    "labels": [],
                    "difficult": [],
                    "track_ids": [],
                    "refs": [],
                }
            )

        # annotations
        for pos, ann in enumerate(annotations):
            if not isinstance(ann, dict):
                raise AnnotationError(src, f"annotations[{pos}] is not an object: {ann!r}")
            if "image_id" not in ann or "bbox" not in ann or "category_id" not in ann:
                raise AnnotationError(src, f"{_coco_ref(ann, pos)} needs 'image_id', 'category_id' and 'bbox'")
            ref = _CocoRef(ann, pos)
            raw_id = ann["image_id"]
            image_pos = image_index.get(raw_id if type(raw_id) is int else _optional_int(raw_id, f"{ref} image_id", src))  # type: ignore[arg-type]
            if image_pos is None:
                raise AnnotationError(src, f"{ref} refers to image id {ann['image_id']!r}, which is not in 'images'")
            cid = ann["category_id"]
            if cid not in cat_names:
                raise AnnotationError(src, f"{ref} has category_id {cid!r}, which is not in 'categories'")
            label = cat_to_label.get(cid)
            if label is None:
                raise AnnotationError(
                    src,
                    f"{ref}: unknown class {cat_names[cid]!r} (category_id {cid!r}); known classes: "
                    f"{list(self.class_names)}",
                )
            bbox = ann["bbox"]
            if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
                raise AnnotationError(src, f"{ref}: bbox must be [x, y, width, height], got {bbox!r}")
            try:
                x, y, w, h = (float(v) for v in bbox)
            except (TypeError, ValueError):
                raise AnnotationError(src, f"{ref}: bbox must hold numbers, got {bbox!r}") from None
            meta = metas[image_pos]
            meta["boxes"].append([x, y, x + w, y + h])
            meta["labels"].append(label)
            meta["difficult"].append(
                bool(ann.get("iscrowd", 0)) or bool(ann.get("ignore", 0)) or bool(ann.get("difficult", 0))
            )
            track = ann.get("track_id")
            meta["track_ids"].append(track if isinstance(track, int) and not isinstance(track, bool) else -1)
            ref.file_name = meta["file_name"]
            meta["refs"].append(ref)

        for meta in metas:
            self._records.append(
                _make_record(
                    path=meta["path"],
                    source=src,
                    boxes=meta["boxes"],
                    labels=meta["labels"],
                    difficult=meta["difficult"],
                    refs=meta["refs"],
                    image_id=meta["id"],
                    width=meta["width"],
                    height=meta["height"],
                    video_id=meta["video_id"],
                    frame_index=meta["frame_index"],
                    track_ids=meta["track_ids"],
                )
            )
        _check_unique_frames(self._records, src)
        videos = data.get("videos")
        rates = {v.get("fps") for v in videos if isinstance(v, dict)} if isinstance(videos, list) else set()
        # one number for the whole file, or nothing: a mix of rates has no single stamp spacing to quote
        only = rates.pop() if len(rates) == 1 else None
        self._frame_rate = float(only) if isinstance(only, (int, float)) and not isinstance(only, bool) and only > 0 else None
        # a video's condition: the synthetic writer's "preset"; other tools' COCO files may say "condition"
        present = {rec.video_id for rec in self._records}
        self._video_conditions: dict[Hashable, str] = {}
        for video in videos if isinstance(videos, list) else []:
            vid = video.get("id") if isinstance(video, dict) else None
            try:
                known = vid is not None and vid in present
            except TypeError:  # an unhashable id (a list): a malformed record
                known = False
            if not known:
                continue  # a malformed or foreign record names no video of this file: nothing to group
            condition = video.get("preset", video.get("condition"))
            if isinstance(condition, str) and condition:
                self._video_conditions[vid] = condition

    def frame_rate(self) -> float | None:
        return self._frame_rate

    def video_conditions(self) -> dict[Hashable, str]:
        return dict(self._video_conditions)


# ---------------------------------------------------------------------------------------------------------
# Pascal VOC
# ---------------------------------------------------------------------------------------------------------
_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".JPG", ".JPEG", ".PNG")


def _coco_ref(ann: dict[str, Any], pos: int) -> str:
    return f"annotation id {ann['id']}" if "id" in ann else f"annotations[{pos}]"


class _CocoRef:
    """Names an annotation in an error message; formatted only when there is an error (big files)."""

    __slots__ = ("ann", "pos", "file_name")

    def __init__(self, ann: dict[str, Any], pos: int) -> None:
        self.ann, self.pos, self.file_name = ann, pos, None

    def __format__(self, spec: str) -> str:
        return str(self)

    def __str__(self) -> str:
        if self.file_name is None:
            return _coco_ref(self.ann, self.pos)
        return f"{_coco_ref(self.ann, self.pos)} (bbox {self.ann.get('bbox')!r}, image {self.file_name!r})"


def _text(elem: ET.Element | None, tag: str) -> str | None:
    if elem is None:
        return None
    child = elem.find(tag)
    if child is None or child.text is None:
        return None
    return child.text.strip()


class VocDataset(DetectionDataset):
    """A Pascal VOC folder: ``Annotations/<id>.xml``, ``JPEGImages/<id>.jpg``, ``ImageSets/Main/<split>.txt``.

    Args:
        root: the folder holding ``Annotations/`` and ``JPEGImages/``.
        split: a split name (``ImageSets/Main/<split>.txt``), a path to an ImageSets-style file (one id per
            line; extra columns such as VOC's per-class ``1``/``-1`` are ignored), an explicit list of ids,
            or ``None`` for every ``Annotations/**/*.xml``.
        class_names: the model's classes (names matched as in the module docstring). Default: the sorted
            names found in the split; pass them explicitly for training so the label indices do not depend
            on which classes a split happens to contain.

    Boxes: VOC's 1-based inclusive pixel indices become ``(xmin - 1, ymin - 1, xmax, ymax)`` (module
    docstring). ``image_id`` is the position in the split. The image is ``JPEGImages/<id>.jpg``, else the
    XML's ``<filename>``, else ``JPEGImages/<id>`` with another common extension.
    """

    @_gc_paused
    def __init__(
        self,
        root: str | Path,
        split: str | Path | Sequence[str] | None = "trainval",
        class_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        self.root = Path(root)
        self.source = str(self.root)
        ann_dir = self.root / "Annotations"
        if not ann_dir.is_dir():
            raise FileNotFoundError(f"{self.root}: not a VOC dataset (no Annotations/ folder)")
        self.split = split
        ids = self._split_ids(split)

        parsed = [self._parse(image_id) for image_id in ids]
        if class_names is None:
            class_names = sorted({normalize_class_name(o[0]) for p in parsed for o in p["objects"]})
        self.class_names = tuple(str(n) for n in class_names)
        name_index = _class_index(self.class_names, self.root)

        for index, p in enumerate(parsed):
            boxes, labels, difficult, refs = [], [], [], []
            for k, (name, box, diff) in enumerate(p["objects"]):
                ref = f"object {k + 1} ({name!r})"
                label = name_index.get(normalize_class_name(name))
                if label is None:
                    raise AnnotationError(
                        p["xml"], f"{ref}: unknown class {name!r}; known classes: {list(self.class_names)}"
                    )
                boxes.append(box)
                labels.append(label)
                difficult.append(diff)
                refs.append(ref)
            self._records.append(
                _make_record(
                    path=p["image"],
                    source=p["xml"],
                    boxes=boxes,
                    labels=labels,
                    difficult=difficult,
                    refs=refs,
                    image_id=index,
                    width=p["width"],
                    height=p["height"],
                    video_id=p["video_id"],
                    frame_index=p["frame_index"],
                )
            )
        _check_unique_frames(self._records, self.root)

    def _split_ids(self, split: str | Path | Sequence[str] | None) -> list[str]:
        ann_dir = self.root / "Annotations"
        if split is None:
            return sorted(p.relative_to(ann_dir).with_suffix("").as_posix() for p in ann_dir.rglob("*.xml"))
        if isinstance(split, (list, tuple)):
            return [str(s) for s in split]
        split_file = Path(split)
        if not split_file.is_file():
            split_file = self.root / "ImageSets" / "Main" / f"{split}.txt"
            if not split_file.is_file():
                sets = self.root / "ImageSets" / "Main"
                known = sorted(p.stem for p in sets.glob("*.txt")) if sets.is_dir() else []
                raise FileNotFoundError(
                    f"{split_file}: no such VOC split file (known splits: {known or 'none'}; "
                    "split=None uses every annotation)"
                )
        with open(split_file, encoding="utf-8") as f:
            return [line.split()[0] for line in f if line.strip()]

    def _find_image(self, image_id: str, filename: str | None) -> str:
        jpeg_dir = self.root / "JPEGImages"
        default = jpeg_dir / f"{image_id}.jpg"
        if default.is_file():
            return str(default)
        if filename:
            candidate = jpeg_dir / Path(image_id).parent / filename
            if candidate.is_file():
                return str(candidate)
        for ext in _IMAGE_EXTENSIONS:
            candidate = jpeg_dir / f"{image_id}{ext}"
            if candidate.is_file():
                return str(candidate)
        return str(default)  # missing: reported (naming the file) when read or by validate()

    def _parse(self, image_id: str) -> dict[str, Any]:
        xml_path = self.root / "Annotations" / f"{image_id}.xml"
        src = str(xml_path)
        if not xml_path.is_file():
            raise AnnotationError(src, f"annotation file not found (image id {image_id!r} of split {self.split!r})")
        try:
            tree = ET.parse(xml_path)
        except ET.ParseError as exc:
            raise AnnotationError(src, f"malformed XML: {exc}") from None
        root = tree.getroot()
        size = root.find("size")
        width, height = _positive_size(_text(size, "width"), _text(size, "height"), "<size>", src)
        objects = []
        for k, obj in enumerate(root.findall("object")):
            name = _text(obj, "name")
            if not name:
                raise AnnotationError(src, f"object {k + 1} has no <name>")
            bnd = obj.find("bndbox")
            values = [_text(bnd, t) for t in ("xmin", "ymin", "xmax", "ymax")]
            if any(v is None for v in values):
                raise AnnotationError(src, f"object {k + 1} ({name!r}) needs <bndbox> with xmin, ymin, xmax, ymax")
            try:
                xmin, ymin, xmax, ymax = (float(v) for v in values)  # type: ignore[arg-type]
            except ValueError:
                raise AnnotationError(src, f"object {k + 1} ({name!r}): non-numeric <bndbox> {values}") from None
            diff_text = _text(obj, "difficult") or "0"
            try:
                diff = bool(int(float(diff_text)))
            except ValueError:
                raise AnnotationError(src, f"object {k + 1} ({name!r}): <difficult> must be 0 or 1, got {diff_text!r}") from None
            objects.append((name, [xmin - 1.0, ymin - 1.0, xmax, ymax], diff))

        video: int | str | None = _text(root, "video_id")
        frame = _optional_int(_text(root, "frame_id") or _text(root, "frame_index"), "<frame_id>", src)
        if video is not None and re.fullmatch(r"-?\d+", video):
            video = int(video)
        if video is None and "/" in image_id:
            video = image_id.rsplit("/", 1)[0]
            if frame is None:
                digits = re.search(r"(\d+)$", image_id.rsplit("/", 1)[1])
                frame = int(digits.group(1)) if digits else None
        return {
            "xml": src,
            "image": self._find_image(image_id, _text(root, "filename")),
            "width": width,
            "height": height,
            "objects": objects,
            "video_id": video,
            "frame_index": frame,
        }


# ---------------------------------------------------------------------------------------------------------
# Several datasets, dispatch
# ---------------------------------------------------------------------------------------------------------
class ConcatDetectionDataset(DetectionDataset):
    """Several datasets with the same class names, one after the other.

    ``image_id`` becomes the global index (ids of different files may collide); ``sequences()`` keys are
    ``(dataset position, key in that dataset)``.
    """

    def __init__(self, datasets: Sequence[DetectionDataset]) -> None:
        super().__init__()
        if not datasets:
            raise ValueError("ConcatDetectionDataset needs at least one dataset")
        first = datasets[0]
        for d in datasets[1:]:
            if tuple(d.class_names) != tuple(first.class_names):
                raise ValueError(
                    f"cannot concatenate datasets with different class names: {list(first.class_names)} ({first!r}) "
                    f"vs {list(d.class_names)} ({d!r}); pass the same class_names when loading them"
                )
        self.datasets = list(datasets)
        self.class_names = tuple(first.class_names)
        self._ends: list[int] = []
        total = 0
        for d in self.datasets:
            total += len(d)
            self._ends.append(total)

    def __len__(self) -> int:
        return self._ends[-1]

    def _locate(self, i: int) -> tuple[int, int]:
        j = self._index(i)
        d = bisect.bisect_right(self._ends, j)
        start = self._ends[d - 1] if d else 0
        return d, j - start

    def image_path(self, i: int) -> str:
        d, j = self._locate(i)
        return self.datasets[d].image_path(j)

    def __getitem__(self, i: int) -> Sample:
        d, j = self._locate(i)
        sample = self.datasets[d][j]
        sample.image_id = self._index(i)
        return sample

    def annotations(self, i: int) -> ImageAnnotation:
        d, j = self._locate(i)
        ann = self.datasets[d].annotations(j)
        ann.image_id = self._index(i)
        return ann

    def sequences(self) -> dict[Hashable, list[int]]:
        out: dict[Hashable, list[int]] = {}
        start = 0
        for d, dataset in enumerate(self.datasets):
            for key, indices in dataset.sequences().items():
                out[(d, key)] = [start + i for i in indices]
            start += len(dataset)
        return out

    def video_conditions(self) -> dict[Hashable, str]:
        return {(d, key): c for d, dataset in enumerate(self.datasets) for key, c in dataset.video_conditions().items()}

    def validate(self, check_images: bool = True, decode: bool = True) -> None:
        problems: list[str] = []
        first_path = ""
        for d in self.datasets:
            try:
                d.validate(check_images=check_images, decode=decode)
            except AnnotationError as exc:
                first_path = first_path or exc.path
                problems.append(str(exc))
        if problems:
            raise AnnotationError(first_path, "problems in the concatenated datasets:\n" + "\n".join(problems))


def load_dataset(
    path: str | Path,
    class_names: Sequence[str] | None = None,
    split: str | Path | Sequence[str] | None = None,
) -> DetectionDataset:
    """Open a dataset by its layout.

    * a ``.json`` file -> :class:`CocoDataset` (images relative to the file's folder);
    * a folder with ``Annotations/`` -> :class:`VocDataset` (``split=None``: ``trainval`` if that split
      file exists, else every annotation);
    * a folder with ``annotations.json`` -> :class:`CocoDataset` with images relative to the folder.

    A COCO file holds one split: pass that split's file instead of ``split``.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"dataset not found: {p}")
    if p.is_file():
        if p.suffix.lower() != ".json":
            raise ValueError(
                f"{p}: not a dataset: expected a COCO .json file, a VOC folder (with Annotations/) or a folder "
                "with annotations.json"
            )
        if split is not None:
            raise ValueError(f"{p}: a COCO file holds one split; pass that split's JSON file instead of split={split!r}")
        return CocoDataset(p, class_names=class_names)
    if (p / "Annotations").is_dir():
        if split is None:
            split = "trainval" if (p / "ImageSets" / "Main" / "trainval.txt").is_file() else None
        return VocDataset(p, split=split, class_names=class_names)
    if (p / "annotations.json").is_file():
        if split is not None:
            raise ValueError(f"{p}: a COCO folder holds one split (annotations.json); split={split!r} does not apply")
        return CocoDataset(p / "annotations.json", image_root=p, class_names=class_names)
    raise ValueError(
        f"{p}: not a dataset folder: expected Annotations/ (VOC) or annotations.json (COCO), found "
        f"{sorted(q.name for q in p.iterdir())[:10]}"
    )
