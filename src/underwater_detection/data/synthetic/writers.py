"""Writers for generated sequences: COCO JSON (with video fields), Pascal VOC XML, and rosbag2 (MCAP).

Layout under an output folder (one split per folder; it is also a COCO dataset folder as the project's
``data.datasets`` and the training recipes expect, e.g. ``data/synth/train/annotations.json``):

    annotations.json                       COCO; file_name = "images/<video>/<frame:06d>.jpg", relative to it
    images/<video>/<frame:06d>.jpg
    voc/Annotations/<video>_<frame:06d>.xml   (with <video_id>/<frame_id> for the video-aware VOC reader)
    voc/JPEGImages/<video>_<frame:06d>.jpg
    voc/ImageSets/Main/<split>.txt
    bags/<video>/                          rosbag2 folder: metadata.yaml + <video>_0.mcap

Box conventions: frames carry pixel-edge boxes ``(x1, y1, x2, y2)`` (x2 = last column + 1). COCO gets
``[x1, y1, x2 - x1, y2 - y1]``; VOC gets the classic 1-based inclusive ``xmin = x1 + 1, xmax = x2`` (so the
usual "subtract 1" of VOC readers gives 0-based inclusive pixels); bags get centre + size in pixels.
Everything is deterministic: same frames in, byte-identical files out (no wall-clock times anywhere).

Difficult objects (visible fraction below the threshold) are kept and flagged: COCO ``"ignore": 1`` and
``"difficult": 1`` (``iscrowd`` stays 0: crowd regions mean something else to pycocotools), VOC
``<difficult>1</difficult>``. A ``Detection2D`` has no such field, so bags carry all boxes unflagged; use
the COCO/VOC files when evaluation needs the flags.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence
from xml.etree import ElementTree as ET

import cv2
import numpy as np

from .sequence import Frame
from .sprites import CLASS_NAMES

JPEG_QUALITY = 90
BAG_EPOCH_NS = 1_700_000_000 * 1_000_000_000  # fixed, plausible start time of every bag (deterministic)
FRAME_ID = "camera_optical_frame"
IMAGE_TOPIC = "/camera/image_raw"
INFO_TOPIC = "/camera/camera_info"
GT_TOPIC = "/ground_truth"
IMAGE_ENCODING = "rgb8"  # frames are RGB; rgb8 keeps the bytes as generated (cv_bridge converts on demand)
HFOV_DEG = 70.0  # plausible wide-angle ROV camera; only used to fill CameraInfo


def frame_name(index: int) -> str:
    return f"{index:06d}"


def stamp_ns(frame: Frame) -> int:
    """Absolute time of a frame in the bag header (and COCO ``stamp``): fixed epoch + frame time."""
    return BAG_EPOCH_NS + int(round(frame.stamp_s * 1e9))


def encode_jpeg(image_rgb: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def camera_matrix(width: int, height: int, hfov_deg: float = HFOV_DEG) -> np.ndarray:
    """A pinhole K for the frame size: square pixels, principal point at the centre."""
    f = (width / 2.0) / np.tan(np.deg2rad(hfov_deg) / 2.0)
    return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])


# --------------------------------------------------------------------------------------------- records
@dataclass
class FrameRecord:
    """What the COCO builder needs from one frame (plain data: cheap to send between processes)."""

    file_name: str
    index: int
    stamp: float
    boxes: list[list[float]]
    labels: list[int]
    track_ids: list[int]
    visible: list[float]
    difficult: list[bool]
    truncated: list[bool]

    @classmethod
    def from_frame(cls, frame: Frame, file_name: str) -> "FrameRecord":
        return cls(file_name, int(frame.index), stamp_ns(frame) / 1e9, frame.boxes.astype(float).tolist(),
                   frame.labels.tolist(), frame.track_ids.tolist(), [round(float(v), 4) for v in frame.visible],
                   frame.difficult.tolist(), frame.truncated.tolist())


@dataclass
class VideoRecord:
    name: str
    seed: int
    preset: str
    fps: float
    width: int
    height: int
    frames: list[FrameRecord] = field(default_factory=list)


def coco_dict(videos: Sequence[VideoRecord], split: str, class_names: Sequence[str] = CLASS_NAMES,
              description: str = "underwater_detection synthetic ROV video") -> dict:
    """COCO detection JSON with video fields (``videos``; per image ``video_id``, ``frame_id``, ``stamp``)."""
    from ... import __version__

    out: dict = {
        "info": {"description": description, "version": __version__, "split": split},
        "licenses": [],
        "categories": [{"id": i + 1, "name": n, "supercategory": "marine"} for i, n in enumerate(class_names)],
        "videos": [],
        "images": [],
        "annotations": [],
    }
    image_id = ann_id = 0
    for vid, video in enumerate(videos, start=1):
        out["videos"].append({"id": vid, "name": video.name, "seed": video.seed, "preset": video.preset,
                              "fps": video.fps, "width": video.width, "height": video.height,
                              "num_frames": len(video.frames)})
        for rec in video.frames:
            image_id += 1
            out["images"].append({"id": image_id, "file_name": rec.file_name, "width": video.width,
                                  "height": video.height, "video_id": vid, "frame_id": rec.index,
                                  "stamp": rec.stamp})
            for box, label, tid, vis, diff, trunc in zip(rec.boxes, rec.labels, rec.track_ids, rec.visible,
                                                         rec.difficult, rec.truncated):
                ann_id += 1
                x1, y1, x2, y2 = box
                w, h = x2 - x1, y2 - y1
                out["annotations"].append({
                    "id": ann_id, "image_id": image_id, "category_id": int(label) + 1,
                    "bbox": [x1, y1, w, h], "area": w * h, "iscrowd": 0,
                    "ignore": int(diff), "difficult": int(diff), "truncated": int(trunc),
                    "track_id": int(tid), "instance_id": vid * 100_000 + int(tid), "visibility": vis,
                })
    return out


def write_coco(path: str | Path, videos: Sequence[VideoRecord], split: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(coco_dict(videos, split), fh, separators=(",", ":"))
    return path


# --------------------------------------------------------------------------------------------- VOC
def voc_xml(frame: Frame, filename: str, width: int, height: int, video: str | None = None,
            folder: str = "JPEGImages", class_names: Sequence[str] = CLASS_NAMES) -> bytes:
    """One Pascal VOC annotation (with ``difficult``/``truncated``, extra ``track_id``/``visibility`` per object
    and ``video_id``/``frame_id`` for video-aware readers)."""
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = folder
    ET.SubElement(root, "filename").text = filename
    if video is not None:
        ET.SubElement(root, "video_id").text = video
        ET.SubElement(root, "frame_id").text = str(int(frame.index))
    src = ET.SubElement(root, "source")
    ET.SubElement(src, "database").text = "underwater_detection synthetic"
    size = ET.SubElement(root, "size")
    ET.SubElement(size, "width").text = str(width)
    ET.SubElement(size, "height").text = str(height)
    ET.SubElement(size, "depth").text = "3"
    ET.SubElement(root, "segmented").text = "0"
    for box, label, tid, vis, diff, trunc in zip(frame.boxes, frame.labels, frame.track_ids, frame.visible,
                                                 frame.difficult, frame.truncated):
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = class_names[int(label)]
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = str(int(trunc))
        ET.SubElement(obj, "difficult").text = str(int(diff))
        ET.SubElement(obj, "track_id").text = str(int(tid))
        ET.SubElement(obj, "visibility").text = f"{float(vis):.4f}"
        bb = ET.SubElement(obj, "bndbox")
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        ET.SubElement(bb, "xmin").text = str(x1 + 1)
        ET.SubElement(bb, "ymin").text = str(y1 + 1)
        ET.SubElement(bb, "xmax").text = str(x2)
        ET.SubElement(bb, "ymax").text = str(y2)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8")


# --------------------------------------------------------------------------------------------- bags
class BagWriter:
    """A rosbag2 folder (MCAP storage) with camera images, camera info and ground-truth detections.

    Use as a context manager; ``write(frame)`` per frame. Message log times equal the header stamps.
    """

    def __init__(self, path: str | Path, width: int, height: int, distro: str | None = None) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        from .ros_types import DEFAULT_DISTRO, get_typestore

        self.path = Path(path)
        self.width, self.height = int(width), int(height)
        self.ts = get_typestore(distro or DEFAULT_DISTRO)
        self._writer = Writer(self.path, version=9, storage_plugin=StoragePlugin.MCAP)
        self._k = camera_matrix(self.width, self.height)

    def __enter__(self) -> "BagWriter":
        self._writer.open()
        ts = self._writer, self.ts
        self._image = ts[0].add_connection(IMAGE_TOPIC, "sensor_msgs/msg/Image", typestore=self.ts)
        self._info = ts[0].add_connection(INFO_TOPIC, "sensor_msgs/msg/CameraInfo", typestore=self.ts)
        self._gt = ts[0].add_connection(GT_TOPIC, "vision_msgs/msg/Detection2DArray", typestore=self.ts)
        return self

    def __exit__(self, *exc) -> None:
        self._writer.close()

    def _header(self, ns: int):
        t = self.ts.types
        return t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=ns // 1_000_000_000,
                                                                             nanosec=ns % 1_000_000_000),
                                        frame_id=FRAME_ID)

    def messages(self, frame: Frame) -> tuple[object, object, object]:
        """The Image, CameraInfo and Detection2DArray messages of one frame."""
        t = self.ts.types
        ns = stamp_ns(frame)
        header = self._header(ns)
        h, w = frame.image.shape[:2]
        image = t["sensor_msgs/msg/Image"](header=header, height=h, width=w, encoding=IMAGE_ENCODING,
                                           is_bigendian=0, step=w * 3,
                                           data=np.ascontiguousarray(frame.image).reshape(-1))
        k = self._k
        p = np.hstack([k, np.zeros((3, 1))])
        info = t["sensor_msgs/msg/CameraInfo"](
            header=header, height=h, width=w, distortion_model="plumb_bob", d=np.zeros(5), k=k.reshape(-1),
            r=np.eye(3).reshape(-1), p=p.reshape(-1), binning_x=0, binning_y=0,
            roi=t["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))
        dets = []
        for box, label, tid in zip(frame.boxes, frame.labels, frame.track_ids):
            x1, y1, x2, y2 = (float(v) for v in box)
            hyp = t["vision_msgs/msg/ObjectHypothesisWithPose"](
                hypothesis=t["vision_msgs/msg/ObjectHypothesis"](class_id=CLASS_NAMES[int(label)], score=1.0),
                pose=t["geometry_msgs/msg/PoseWithCovariance"](
                    pose=t["geometry_msgs/msg/Pose"](position=t["geometry_msgs/msg/Point"](x=0.0, y=0.0, z=0.0),
                                                     orientation=t["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0)),
                    covariance=np.zeros(36)))
            bbox = t["vision_msgs/msg/BoundingBox2D"](
                center=t["vision_msgs/msg/Pose2D"](position=t["vision_msgs/msg/Point2D"](x=(x1 + x2) / 2, y=(y1 + y2) / 2),
                                                   theta=0.0),
                size_x=x2 - x1, size_y=y2 - y1)
            dets.append(t["vision_msgs/msg/Detection2D"](header=header, results=[hyp], bbox=bbox, id=str(int(tid))))
        gt = t["vision_msgs/msg/Detection2DArray"](header=header, detections=dets)
        return image, info, gt

    def write(self, frame: Frame) -> None:
        ns = stamp_ns(frame)
        image, info, gt = self.messages(frame)
        self._writer.write(self._image, ns, self.ts.serialize_cdr(image, "sensor_msgs/msg/Image"))
        self._writer.write(self._info, ns, self.ts.serialize_cdr(info, "sensor_msgs/msg/CameraInfo"))
        self._writer.write(self._gt, ns, self.ts.serialize_cdr(gt, "vision_msgs/msg/Detection2DArray"))


# --------------------------------------------------------------------------------------------- sequences
FORMATS: tuple[str, ...] = ("coco", "voc", "bag")
COCO_FILE = "annotations.json"


@dataclass
class SequenceResult:
    """What one written sequence hands back: its COCO records and VOC image ids (and a frame to preview)."""

    video: VideoRecord
    voc_ids: list[str]
    preview: Frame | None = None


def write_sequence(out: str | Path, seq, formats: Iterable[str] = ("coco",), jpeg_quality: int = JPEG_QUALITY,
                   progress=None, keep_preview: bool = False) -> SequenceResult:
    """Render ``seq`` (a ``SyntheticSequence``) once and write it in every requested format under ``out``.

    COCO JSON and the VOC image list need every sequence, so they are assembled afterwards by
    ``finish_split`` from the returned records; images, VOC XML files and bags are written here.
    """
    formats = set(formats)
    unknown = formats - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown formats {sorted(unknown)}; expected some of {FORMATS}")
    out = Path(out)
    cfg = seq.config
    video = VideoRecord(seq.name, seq.seed, seq.preset, cfg.fps, cfg.width, cfg.height)
    voc_ids: list[str] = []
    preview = None
    coco_dir = out / "images" / seq.name
    voc_dir = out / "voc"
    if "coco" in formats:
        coco_dir.mkdir(parents=True, exist_ok=True)
    if "voc" in formats:
        (voc_dir / "Annotations").mkdir(parents=True, exist_ok=True)
        (voc_dir / "JPEGImages").mkdir(parents=True, exist_ok=True)
    bag = None
    if "bag" in formats:
        (out / "bags").mkdir(parents=True, exist_ok=True)
        bag = BagWriter(out / "bags" / seq.name, cfg.width, cfg.height).__enter__()
    try:
        for frame in seq:
            name = frame_name(frame.index)
            jpeg = encode_jpeg(frame.image, jpeg_quality) if formats & {"coco", "voc"} else b""
            if "coco" in formats:
                (coco_dir / f"{name}.jpg").write_bytes(jpeg)
                video.frames.append(FrameRecord.from_frame(frame, f"images/{seq.name}/{name}.jpg"))
            if "voc" in formats:
                image_id = f"{seq.name}_{name}"
                (voc_dir / "JPEGImages" / f"{image_id}.jpg").write_bytes(jpeg)
                (voc_dir / "Annotations" / f"{image_id}.xml").write_bytes(
                    voc_xml(frame, f"{image_id}.jpg", cfg.width, cfg.height, video=seq.name))
                voc_ids.append(image_id)
            if bag is not None:
                bag.write(frame)
            if keep_preview and frame.index == len(seq) // 2:
                preview = frame
            if progress is not None:
                progress(1)
    finally:
        if bag is not None:
            bag.__exit__(None, None, None)
    return SequenceResult(video, voc_ids, preview)


def finish_split(out: str | Path, split: str, results: Sequence[SequenceResult], formats: Iterable[str]) -> list[Path]:
    """Write the files that cover the whole split: the COCO JSON and the VOC image list."""
    out = Path(out)
    formats = set(formats)
    written = []
    if "coco" in formats:
        written.append(write_coco(out / COCO_FILE, [r.video for r in results], split))
    if "voc" in formats:
        path = out / "voc" / "ImageSets" / "Main" / f"{split}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{i}\n" for r in results for i in r.voc_ids), encoding="utf-8")
        written.append(path)
    return written
