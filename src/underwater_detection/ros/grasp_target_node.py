"""``grasp_target_node``: turns the detector's ``Detection2DArray`` stream into one grasp target.

``ros2 run underwater_detection grasp_target_node --ros-args --params-file config/grasp_target.yaml``
(or ``python -m underwater_detection.ros.grasp_target_node``). The choice itself is
:class:`engine.grasp_selection.GraspSelector` (rule, hysteresis and timeout documented there); this node only
moves messages in and out.

Subscribes
    ``detections_topic`` (``vision_msgs/Detection2DArray``, default ``detector_node/detections``)
    ``camera_info_topic`` (``sensor_msgs/CameraInfo``): K and D for the bearing, image size for the utility
    ``label_info_topic`` (``vision_msgs/LabelInfo``, transient local): maps numeric class ids to names when the
    detector runs with ``class_id_mode: index``

Publishes (all with the header of the detection message they come from, i.e. the image's stamp and frame)
    ``~/target``          ``vision_msgs/Detection2D``   the chosen detection, exactly as the detector sent it
    ``~/target_point``    ``geometry_msgs/PointStamped``  its box centre in pixels (x = u, y = v, z = 0)
    ``~/target_bearing``  ``geometry_msgs/Vector3Stamped``  unit ray to that centre in the camera optical frame
                          (only once CameraInfo is known)
    ``~/target_active``   ``std_msgs/Bool`` (reliable, transient local) whenever it changes: true while a target
                          is held, false when none is (e.g. after ``target_timeout_s`` without a fresh detection)

A target message is published only for a detection message that contains the target: while the target is
momentarily unseen (the lock is held) nothing is published, and after the timeout ``target_active`` turns
false. Consumers therefore never receive an old detection as if it were new.
"""
from __future__ import annotations

import math
import sys
from dataclasses import fields
from typing import Any

import numpy as np
import rclpy
import rclpy.executors
from geometry_msgs.msg import PointStamped, Vector3Stamped
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Bool
from vision_msgs.msg import Detection2D, Detection2DArray, LabelInfo

from ..bags.detection_messages import parse_detection_array
from ..engine.grasp_selection import GraspCandidate, GraspConfig, GraspSelector, bearing_ray

SELECTION_PARAMETERS = tuple(f.name for f in fields(GraspConfig))
DEFAULTS = GraspConfig()


def _unit(lo: float, hi: float) -> FloatingPointRange:
    return FloatingPointRange(from_value=lo, to_value=hi, step=0.0)


class GraspTargetNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("grasp_target_node", **kwargs)
        d = DEFAULTS
        self._declare("detections_topic", "detector_node/detections", "vision_msgs/Detection2DArray input", read_only=True)
        self._declare("label_info_topic", "detector_node/label_info", "vision_msgs/LabelInfo input", read_only=True)
        self._declare("camera_info_topic", "/camera/camera_info", "sensor_msgs/CameraInfo input", read_only=True)
        self._declare("detections_reliability", "reliable", "reliable or best_effort", read_only=True)
        self._declare("image_width", 0, "image width until CameraInfo arrives (0 = unknown)")
        self._declare("image_height", 0, "image height until CameraInfo arrives (0 = unknown)")
        self._declare("graspable_classes", list(d.graspable_classes), "graspable class names, highest priority first")
        self._declare("min_score", d.min_score, "ignore detections scoring below this", _unit(0.0, 1.0))
        self._declare("min_size_px", d.min_size_px, "ignore boxes whose shorter side is below this (pixels)")
        self._declare("reach_area", list(d.reach_area), "manipulator reach area, normalised [x1, y1, x2, y2]")
        self._declare("reach_falloff", d.reach_falloff, "distance (fraction of diagonal) where the reach term hits 0")
        self._declare("size_saturation", d.size_saturation, "relative size at which the size term saturates")
        for w in ("weight_priority", "weight_score", "weight_size", "weight_reach"):
            self._declare(w, float(getattr(d, w)), f"utility weight ({w[7:]} term)")
        self._declare("switch_margin", d.switch_margin, "utility margin a rival needs to take over", _unit(0.0, 1.0))
        self._declare("switch_frames", d.switch_frames, "consecutive messages a rival needs to take over",
                      IntegerRange(from_value=1, to_value=1000, step=1))
        self._declare("iou_match", d.iou_match, "IoU that keeps an untracked target", _unit(0.0, 1.0))
        self._declare("target_timeout_s", d.target_timeout_s, "drop the target after this long unseen (s)")
        self._declare("check_rate_hz", 20.0, "timeout check rate (Hz)", read_only=True)

        self.selector = GraspSelector(self._config_from({}))
        self._labels: dict[str, str] = {}
        self._k: Any = None
        self._d: Any = None
        self._image_size: tuple[int, int] | None = None
        self._active: bool | None = None
        self._warned: set[str] = set()
        self.add_on_set_parameters_callback(self._on_set_parameters)

        reliability = self.get_parameter("detections_reliability").value
        if reliability not in ("reliable", "best_effort"):
            raise ValueError(f"detections_reliability must be reliable or best_effort, got {reliability!r}")
        det_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                             reliability=ReliabilityPolicy.RELIABLE if reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT)
        latched = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        out_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.pub_target = self.create_publisher(Detection2D, "~/target", out_qos)
        self.pub_point = self.create_publisher(PointStamped, "~/target_point", out_qos)
        self.pub_bearing = self.create_publisher(Vector3Stamped, "~/target_bearing", out_qos)
        self.pub_active = self.create_publisher(Bool, "~/target_active", latched)
        self.create_subscription(Detection2DArray, self.get_parameter("detections_topic").value, self._on_detections, det_qos)
        self.create_subscription(LabelInfo, self.get_parameter("label_info_topic").value, self._on_label_info, latched)
        # camera info: best effort matches every camera driver (reliable ones too)
        self.create_subscription(CameraInfo, self.get_parameter("camera_info_topic").value, self._on_camera_info,
                                 QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
        rate = float(self.get_parameter("check_rate_hz").value)
        self.create_timer(1.0 / rate if rate > 0 else 0.05, self._check_timeout)
        self._set_active(False)
        cfg = self.selector.config
        self.get_logger().info(
            f"grasp target from {self.resolve_topic_name(self.get_parameter('detections_topic').value)}: classes "
            f"{list(cfg.graspable_classes)}, min score {cfg.min_score}, timeout {cfg.target_timeout_s} s")

    # ------------------------------------------------------------------ parameters
    def _declare(self, name: str, default: Any, text: str, value_range: Any = None, read_only: bool = False) -> None:
        desc = ParameterDescriptor(description=text, read_only=read_only)
        if isinstance(value_range, FloatingPointRange):
            desc.floating_point_range = [value_range]
        elif isinstance(value_range, IntegerRange):
            desc.integer_range = [value_range]
        self.declare_parameter(name, default, desc)

    def _config_from(self, overrides: dict[str, Any]) -> GraspConfig:
        values = {n: overrides.get(n, self.get_parameter(n).value) for n in SELECTION_PARAMETERS}
        values["graspable_classes"] = tuple(values["graspable_classes"])
        values["reach_area"] = tuple(float(v) for v in values["reach_area"])
        return GraspConfig(**values)

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        overrides = {p.name: p.value for p in params if p.name in SELECTION_PARAMETERS}
        if not overrides:
            return SetParametersResult(successful=True)
        try:
            config = self._config_from(overrides)
        except (ValueError, TypeError) as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        self.selector.config = config
        self.get_logger().info(f"selection parameters updated: {overrides}")
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------ inputs
    def _on_label_info(self, msg: LabelInfo) -> None:
        self._labels = {str(c.class_id): str(c.class_name) for c in msg.class_map}

    def _on_camera_info(self, msg: CameraInfo) -> None:
        k = list(msg.k)
        if len(k) == 9 and k[0] > 0 and k[4] > 0:
            self._k, self._d = k, list(msg.d)
        if msg.width > 0 and msg.height > 0:
            self._image_size = (int(msg.width), int(msg.height))

    def _image_size_for(self, boxes: Any) -> tuple[int, int]:
        if self._image_size is not None:
            return self._image_size
        w, h = int(self.get_parameter("image_width").value), int(self.get_parameter("image_height").value)
        if w > 0 and h > 0:
            return w, h
        self._warn_once("size", "no CameraInfo and no image_width/image_height: assuming the image spans the boxes")
        if len(boxes):
            return max(1, int(math.ceil(float(boxes[:, 2].max())))), max(1, int(math.ceil(float(boxes[:, 3].max()))))
        return 1, 1

    def _warn_once(self, key: str, text: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.get_logger().warning(text)

    def _on_detections(self, msg: Detection2DArray) -> None:
        try:
            parsed = parse_detection_array(msg)
        except (AttributeError, TypeError, ValueError) as exc:  # a malformed message must not kill the node
            self._warn_once("parse", f"ignoring a detection message that cannot be read: {exc}")
            return
        # NaN/inf boxes or scores (a broken publisher) are skipped: they cannot be ranked, drawn or aimed at
        finite = np.isfinite(parsed.boxes).all(axis=1) & np.isfinite(parsed.scores)
        if not finite.all():
            self._warn_once("finite", "ignoring detections with non-finite (NaN/inf) boxes or scores")
        candidates = [
            GraspCandidate(tuple(float(v) for v in box), self._labels.get(cls, cls), float(score), tid, payload=det)
            for box, cls, score, tid, det, ok in zip(parsed.boxes, parsed.class_ids, parsed.scores, parsed.track_ids,
                                                     msg.detections, finite)
            if ok
        ]
        now = self.get_clock().now().nanoseconds / 1e9
        before = self.selector.target
        decision = self.selector.update(candidates, now, self._image_size_for(parsed.boxes[finite]))
        if decision.event in ("acquired", "switched", "lost"):
            who = decision.target
            self.get_logger().info(
                f"target {decision.event}" + ("" if who is None else
                                              f": {who.class_name} track {who.track_id or '-'} score {who.score:.2f}")
                + ("" if before is None or decision.event != "switched" else f" (was track {before.track_id or '-'})"))
        if decision.target is not None:
            self._publish_target(decision.target, msg.header)
        self._set_active(self.selector.target is not None)

    # ------------------------------------------------------------------ outputs
    def _publish_target(self, target: GraspCandidate, header: Any) -> None:
        det = target.payload
        if det is not None:
            self.pub_target.publish(det)
        u, v = target.center
        point = PointStamped()
        point.header = header
        point.point.x, point.point.y, point.point.z = float(u), float(v), 0.0
        self.pub_point.publish(point)
        if self._k is None:
            self._warn_once("k", "no CameraInfo received yet: target_bearing is not published until it arrives")
            return
        try:
            ray = bearing_ray(u, v, self._k, self._d)
        except ValueError as exc:
            self._warn_once("bearing", f"cannot compute a bearing: {exc}")
            return
        vec = Vector3Stamped()
        vec.header = header
        vec.vector.x, vec.vector.y, vec.vector.z = (float(c) for c in ray)
        self.pub_bearing.publish(vec)

    def _set_active(self, active: bool) -> None:
        if active != self._active:
            self._active = active
            self.pub_active.publish(Bool(data=active))

    def _check_timeout(self) -> None:
        had = self.selector.target is not None
        now = self.get_clock().now().nanoseconds / 1e9
        if had and self.selector.current(now) is None:
            self.get_logger().info(f"target lost: not seen for {self.selector.config.target_timeout_s} s")
        self._set_active(self.selector.target is not None)


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args if args is not None else sys.argv)
    node = None
    try:
        node = GraspTargetNode()
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    except ValueError as exc:  # bad read-only parameters: one clear line, not a traceback
        print(f"grasp_target_node: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
