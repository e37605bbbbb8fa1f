"""``detector_node``: a lifecycle node around ``engine.TemporalDetector``.

    ros2 run underwater_detection detector_node --ros-args --params-file config/detector.yaml
    python -m underwater_detection.ros.detector_node --ros-args -p model_path:=models/tdrnet_lite_tcb_480_videos.pt

Lifecycle (``autostart: true`` runs configure + activate at start-up):

* configure  - load the checkpoint (clear error and FAILURE for a missing/corrupt file, the node stays
  unconfigured and alive), warm it up, create publishers and the diagnostics timer;
* activate   - subscribe to the camera, start the worker thread, publish ``~/label_info``;
* deactivate - unsubscribe and stop the worker (outputs stop);
* cleanup    - drop publishers and the model (frees its memory).

Data path: the subscription callback only stores the newest message per stream (camera ``frame_id``,
:mod:`.latest_frames`); a worker thread decodes and detects the newest frame of each waiting stream in one
batch and publishes ``~/detections`` (one ``Detection2DArray`` per image, empty arrays included), the debug
image when someone watches, and counts everything for ``/diagnostics``. Nothing in the data path raises out
of the worker: bad images, failed forwards and publishing errors are logged (throttled) and counted.

Topics, QoS and parameters: see :mod:`.qos`, :mod:`.detector_parameters` and ``config/detector.yaml``.
"""
from __future__ import annotations

import dataclasses
import faulthandler
import gc
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
try:  # Iron and newer
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble: the same class lives in rclpy.qos_event (renamed in Iron)
    from rclpy.qos_event import SubscriptionEventCallbacks  # type: ignore[no-redef]
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import qos_policy_name_from_kind
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray, LabelInfo

from ..engine.temporal import Detections, TemporalDetector, resolve_device
from ..models.checkpoint import CheckpointError, load_model
from ..models.inference import prepare_for_inference
from ..models.random_weights import is_untrained
from ..models.spec import aspect_change_warning
from ..ops.postprocess import PostprocessConfig
from .class_filter import keep_mask, parse_class_filter
from .debug_drawing import draw_detections
from .detection_messages import detections_to_msg, label_info_msg
from .detector_parameters import PARAMETERS, RUNTIME, check_value, declare_all, parse_input_size, phase_refusal
from .diagnostics import NodeStatistics, diagnostic_array, diagnostic_level
from .error_throttle import ErrorThrottle
from .image_conversion import ImageDecodeError, bgr_to_image_msg, decode_image_msg, image_encoding_name
from .latest_frames import LatestFrames, PendingFrame
from .qos import debug_image_qos, detections_qos, diagnostics_qos, image_qos, label_info_qos

NODE_NAME = "detector_node"
PACKAGE = "underwater_detection"


class ConfigureError(RuntimeError):
    """Configure cannot succeed; the message says why and what to do."""


def resolve_model_path(text: str) -> Path:
    """An absolute path, or a relative one found in the working directory or the package's share directory.

    Why the share directory: ``ros2 run`` starts the node in whatever directory the user is in, while
    ``colcon build`` installs ``models/*.pt`` to ``share/underwater_detection/models``.
    """
    path = Path(os.path.expanduser(str(text).strip()))
    candidates = [path] if path.is_absolute() else [Path.cwd() / path]
    if not path.is_absolute():
        try:
            from ament_index_python.packages import get_package_share_directory

            candidates.append(Path(get_package_share_directory(PACKAGE)) / path)
        except (ImportError, LookupError, OSError, ValueError):
            pass  # not installed as a ROS package (pip/dev checkout) or AMENT_PREFIX_PATH unset: cwd only
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ConfigureError(
        f"model file not found: {text!r} (looked in: {', '.join(str(c) for c in candidates)}). Set the "
        "model_path parameter to a checkpoint; trained models go to models/ (scripts/train_shipped_models.sh), "
        "and `make demo` writes a random-weights one to out/demo/ for trying the pipeline"
    )


def stamp_seconds(stamp: Any) -> float:
    return int(stamp.sec) + int(stamp.nanosec) * 1e-9


def select(detections: Detections, mask: np.ndarray) -> Detections:
    """The detections where ``mask`` is true (all fields kept consistent)."""
    if bool(mask.all()):
        return detections
    return dataclasses.replace(
        detections, boxes=detections.boxes[mask], scores=detections.scores[mask],
        labels=detections.labels[mask], track_ids=detections.track_ids[mask],
    )


class DetectorNode(LifecycleNode):
    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        declare_all(self)
        self._state = "unconfigured"
        self._lock = threading.RLock()  # guards the detector and the settings the worker reads
        self._detector: TemporalDetector | None = None
        self._model_info: dict[str, Any] = {}
        self._keep: frozenset[int] | None = None
        self._frames: LatestFrames | None = None
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        self._subscription = None
        self._pub_detections = self._pub_label_info = self._pub_debug = self._pub_diagnostics = None
        self._diagnostics_timer = None
        self._stats = NodeStatistics()
        self._throttle = ErrorThrottle(period_s=10.0)
        if hasattr(self, "add_post_set_parameters_callback"):  # Iron and newer
            self.add_on_set_parameters_callback(self._check_parameters)
            self.add_post_set_parameters_callback(self._apply_parameters)
        else:  # Humble has no post-set callbacks: apply accepted values from the validation callback
            self.add_on_set_parameters_callback(self._check_and_apply_parameters)

    # ------------------------------------------------------------------ parameters
    def _param(self, name: str, pending: dict[str, Any] | None = None) -> Any:
        """The parameter's value; ``pending`` (name -> value being set) wins over the stored one."""
        if pending is not None and name in pending:
            return pending[name]
        return self.get_parameter(name).value

    def _check_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """Refuse, with the reason, values that are invalid or may not change in the current state."""
        for p in params:
            reason = phase_refusal(p.name, self._state) or check_value(p.name, p.value)
            if reason is None and p.name == "class_filter" and self._detector is not None:
                try:
                    parse_class_filter(p.value, self._detector.class_names)
                except ValueError as exc:
                    reason = str(exc)
            if reason is not None:
                return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    def _check_and_apply_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """Humble: validate, then apply the accepted values (not stored yet, hence passed as ``pending``)."""
        result = self._check_parameters(params)
        if result.successful:
            self._apply_parameters(params, pending={p.name: p.value for p in params})
        return result

    def _apply_parameters(self, params: list[Parameter], pending: dict[str, Any] | None = None) -> None:
        runtime = [p for p in params if p.name in {s.name for s in PARAMETERS if s.phase == RUNTIME}]
        if not runtime:
            return
        with self._lock:
            if self._detector is not None:
                self._apply_runtime_settings(self._detector, pending)
        if any(p.name == "score_threshold" for p in runtime):
            self._publish_label_info(pending)
        self.get_logger().info("parameters updated: " + ", ".join(f"{p.name}={p.value!r}" for p in runtime))

    def _apply_runtime_settings(self, detector: TemporalDetector, pending: dict[str, Any] | None = None) -> None:
        """Copy the run-time parameters into the detector (k and e take effect at the next key frame)."""
        def param(name: str) -> Any:
            return self._param(name, pending)

        detector.key_interval = int(param("key_interval"))
        detector.soft_coefficient = float(param("soft_coefficient"))
        detector.max_gap_s = float(param("max_gap_s"))
        detector.postprocess_config = PostprocessConfig(
            score_threshold=float(param("score_threshold")),
            nms_iou=float(param("nms_iou")),
            pre_nms_top_k=detector.spec.postprocess.pre_nms_top_k,
        ).with_max_detections(int(param("max_detections")))
        self._keep = parse_class_filter(param("class_filter"), detector.class_names)

    # ------------------------------------------------------------------ lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._configure()
        except (ConfigureError, CheckpointError, ValueError, RuntimeError, OSError) as exc:
            self.get_logger().error(f"configure failed: {exc}")
            self._release()
            return TransitionCallbackReturn.FAILURE
        except Exception as exc:  # noqa: BLE001 - rclpy would turn it into a silent ERROR transition
            self.get_logger().error(f"configure failed unexpectedly: {exc!r}")
            self._release()
            return TransitionCallbackReturn.FAILURE
        self._state = "inactive"
        return TransitionCallbackReturn.SUCCESS

    def _configure(self) -> None:
        for spec in PARAMETERS:
            reason = check_value(spec.name, self._param(spec.name))
            if reason is not None:
                raise ConfigureError(f"invalid parameter: {reason}")
        path = resolve_model_path(self._param("model_path"))
        device = resolve_device(str(self._param("device")))
        threads = int(self._param("threads"))
        if device.type == "cpu":
            from ..engine.runtime import configure_cpu_runtime

            configure_cpu_runtime(threads if threads > 0 else None)
        t0 = time.perf_counter()
        model, ckpt = load_model(path, device)
        prepare_for_inference(model, device)  # inference only, never saved: folded, channels-last on the CPU
        size = parse_input_size(self._param("input_size"))
        try:
            spec = ckpt.spec if size is None else ckpt.spec.with_input_size(*size)
        except ValueError as exc:
            raise ConfigureError(f"invalid parameter: input_size for {ckpt.spec.name}: {exc}") from exc
        detector = TemporalDetector(
            model, spec, ckpt.class_names, ckpt.preprocess, tracking=bool(self._param("tracking")),
            trained_input_size=ckpt.spec.input_size,
        )
        self._apply_runtime_settings(detector)  # validates class_filter against the model's classes too
        self._warm_up(detector)
        untrained = is_untrained(ckpt.provenance)
        self._model_info = {
            "model": ckpt.spec.name, "model_path": str(path), "device": str(device),
            "classes": ",".join(ckpt.class_names), "temporal": detector.is_temporal, "untrained": untrained,
            "input_size": "x".join(str(v) for v in spec.input_size),
            "trained_input_size": "x".join(str(v) for v in detector.trained_input_size),
        }
        with self._lock:
            self._detector = detector
        self.get_logger().info(
            f"loaded {ckpt.spec.name} from {path} on {device} in {time.perf_counter() - t0:.1f} s; "
            f"classes {list(ckpt.class_names)}; input {spec.input_size[0]}x{spec.input_size[1]}"
            f"{'' if size is None else f' (trained at {ckpt.spec.input_size[0]}x{ckpt.spec.input_size[1]})'}; "
            f"k={detector.key_interval} e={detector.soft_coefficient}"
        )
        warning = aspect_change_warning(detector.trained_input_size, spec.input_size)
        if warning:
            self.get_logger().warning(f"input_size: {warning}")
        if untrained:
            prov = ckpt.provenance
            self.get_logger().warning(
                "\n" + "!" * 78 + f"\n!! UNTRAINED MODEL: {path} holds random weights "
                f"(provenance: {prov.get('weights', 'no training record')}).\n"
                "!! Its detections are meaningless: use it only to test the pipeline.\n" + "!" * 78
            )
        self._pub_detections = self.create_lifecycle_publisher(Detection2DArray, "~/detections", detections_qos())
        self._pub_label_info = self.create_lifecycle_publisher(LabelInfo, "~/label_info", label_info_qos())
        self._pub_debug = self.create_lifecycle_publisher(Image, "~/debug_image", debug_image_qos())
        self._pub_diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", diagnostics_qos())
        self._stats = NodeStatistics()
        self._throttle.reset()
        self._diagnostics_timer = self.create_timer(float(self._param("diagnostics_period_s")),
                                                    self._publish_diagnostics)

    @staticmethod
    def _warm_up(detector: TemporalDetector) -> None:
        """One forward before the first camera frame, so that frame's latency is not the allocator's and
        (on a GPU) cuDNN's start-up cost. The warm-up stream is forgotten afterwards."""
        h, w = detector.spec.input_size
        detector.detect(np.zeros((h, w, 3), np.uint8), 0.0, stream_id="__warm_up__")
        detector.reset("__warm_up__")

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            transport = self._param("image_transport")
            topic = str(self._param("image_topic")).rstrip("/")
            msg_type = CompressedImage if transport == "compressed" else Image
            if transport == "compressed":
                topic = f"{topic}/compressed"
            self._frames = LatestFrames(max_streams=16)
            self._stop.clear()
            self._worker = threading.Thread(target=self._worker_loop, name="detector_worker", daemon=True)
            self._worker.start()
            self._subscription = self.create_subscription(
                msg_type, topic, self._on_image, image_qos(self._param("qos_reliability")),
                event_callbacks=SubscriptionEventCallbacks(incompatible_qos=self._on_incompatible_qos),
            )
        except Exception as exc:  # noqa: BLE001 - invalid topic name, QoS, ...: say so, stay inactive
            self.get_logger().error(f"activate failed: {exc}")
            self._stop_input()
            return TransitionCallbackReturn.FAILURE
        self._state = "active"
        result = super().on_activate(state)  # enables the lifecycle publishers
        self._publish_label_info()
        self.get_logger().info(
            f"active: {msg_type.__name__} from {self.resolve_topic_name(topic)} "
            f"({self._param('qos_reliability')}), detections on {self._pub_detections.topic_name}"
        )
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_input()
        self._state = "inactive"
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self._state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_input()
        self._release()
        self._state = "finalized"
        return TransitionCallbackReturn.SUCCESS

    def stop(self) -> None:
        """Stop input and free everything, outside the state machine (process exit after Ctrl-C)."""
        self._stop_input()
        self._release()

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f"error while in/after state {state.label}: releasing everything")
        self._stop_input()
        self._release()
        self._state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def _stop_input(self) -> None:
        if self._subscription is not None:
            self.destroy_subscription(self._subscription)
            self._subscription = None
        self._stop.set()
        if self._frames is not None:
            self._frames.close()
        if self._worker is not None:
            self._worker.join(timeout=30.0)
            if self._worker.is_alive():
                self.get_logger().error("the detector worker did not stop within 30 s (a forward pass hung?)")
            self._worker = None
        self._frames = None

    def _release(self) -> None:
        """Drop publishers, timer and the model; return the memory (CUDA cache included)."""
        if self._diagnostics_timer is not None:
            self.destroy_timer(self._diagnostics_timer)
            self._diagnostics_timer = None
        for attr in ("_pub_detections", "_pub_label_info", "_pub_debug"):
            pub = getattr(self, attr)
            if pub is not None:
                self.destroy_lifecycle_publisher(pub)
                setattr(self, attr, None)
        if self._pub_diagnostics is not None:
            self.destroy_publisher(self._pub_diagnostics)
            self._pub_diagnostics = None
        with self._lock:
            detector, self._detector = self._detector, None
        if detector is not None:
            on_cuda = detector.device.type == "cuda"
            del detector
            gc.collect()
            if on_cuda:
                import torch

                torch.cuda.empty_cache()
        self._model_info = {}

    # ------------------------------------------------------------------ data path
    def _on_image(self, msg: Image | CompressedImage) -> None:
        """Executor thread: keep only the newest frame per stream (see latest_frames); never blocks."""
        frames = self._frames
        if frames is None:
            return
        self._stats.record_input()
        dropped_before = frames.dropped
        frames.put(PendingFrame(msg, str(msg.header.frame_id)))
        if frames.dropped > dropped_before:
            self._stats.record_drops(frames.dropped - dropped_before)

    def _on_incompatible_qos(self, event: Any) -> None:
        try:
            policy = qos_policy_name_from_kind(event.last_policy_kind)
        except (ValueError, TypeError):
            policy = str(event.last_policy_kind)
        topic = self._subscription.topic_name if self._subscription is not None else "the image topic"
        self.get_logger().warning(
            f"image subscription QoS is incompatible with a publisher on {topic} "
            f"(policy {policy}, qos_reliability={self._param('qos_reliability')}): no frames will arrive from "
            "it. A best-effort camera needs qos_reliability: best_effort"
        )

    def _worker_loop(self) -> None:
        frames = self._frames
        while frames is not None and not self._stop.is_set():
            batch = frames.take(timeout=0.25)
            if batch and not self._stop.is_set():
                try:
                    self._process(batch)
                except Exception as exc:  # noqa: BLE001 - the worker must survive anything a frame causes
                    self._log_throttled("worker", f"unexpected error while processing a frame: {exc!r}")

    def _log_throttled(self, key: Any, text: str) -> None:
        line = self._throttle.message(key, text)
        if line is not None:
            self.get_logger().error(line)

    def _process(self, batch: list[PendingFrame]) -> None:
        decoded = []
        for frame in batch:
            try:
                decoded.append((frame, decode_image_msg(frame.msg)))
            except ImageDecodeError as exc:
                self._stats.record_error("decode_errors")
                stream = frame.stream_id or "<empty frame_id>"
                self._log_throttled((frame.stream_id, "decode", image_encoding_name(frame.msg)),
                                    f"stream {stream!r}: cannot use image: {exc}")
        if not decoded:
            return
        colors = {img.color for _, img in decoded}
        color = colors.pop() if len(colors) == 1 else "bgr"
        images = [img.image if img.color == color else img.as_bgr() for _, img in decoded]
        stamps = [stamp_seconds(f.msg.header.stamp) for f, _ in decoded]
        with self._lock:
            detector = self._detector
            if detector is None:
                return
            try:
                results = detector.detect_batch(images, stamps, [f.stream_id for f, _ in decoded], color)
            except (RuntimeError, ValueError) as exc:
                self._stats.record_error("inference_errors")
                self._log_throttled("inference", f"detection failed ({len(images)} images): {exc}")
                return
            keep, mode = self._keep, str(self._param("class_id_mode"))
        for (frame, image), dets in zip(decoded, results):
            dets = select(dets, keep_mask(dets.labels, keep))
            header = frame.msg.header
            self._pub_detections.publish(detections_to_msg(dets, header, mode))
            now_ros = self.get_clock().now().nanoseconds * 1e-9
            self._stats.record_output(now_ros - stamp_seconds(header.stamp),
                                      time.monotonic() - frame.received_monotonic, dets.is_key_frame)
            if dets.reset_reason and dets.reset_reason != "first frame of stream":
                self.get_logger().info(f"stream {frame.stream_id!r} reset: {dets.reset_reason}")
            if self._param("publish_debug_image") and self._pub_debug.get_subscription_count() > 0:
                self._pub_debug.publish(bgr_to_image_msg(draw_detections(image.as_bgr(), dets), header))
                self._stats.record_debug_image()

    # ------------------------------------------------------------------ status topics
    def _publish_label_info(self, pending: dict[str, Any] | None = None) -> None:
        with self._lock:
            detector = self._detector
        if detector is None or self._pub_label_info is None or self._state != "active":
            return
        header = Header()
        header.stamp = self.get_clock().now().to_msg()
        threshold = self._param("score_threshold", pending)
        self._pub_label_info.publish(label_info_msg(detector.class_names, threshold, header))

    def _publish_diagnostics(self) -> None:
        if self._pub_diagnostics is None:
            return
        snap = self._stats.snapshot()
        untrained = bool(self._model_info.get("untrained"))
        level, message = diagnostic_level(snap, self._state == "active", untrained)
        with self._lock:
            detector = self._detector
            streams = len(detector.streams) if detector is not None else 0
            k = detector.key_interval if detector is not None else 0
            e = detector.soft_coefficient if detector is not None else 0.0
        values = {
            "state": self._state, **self._model_info, "streams": streams, "key_interval": k,
            "soft_coefficient": e, **snap,
        }
        self._pub_diagnostics.publish(diagnostic_array(
            f"{self.get_fully_qualified_name()}: detector", self._model_info.get("device", ""), level, message,
            values, self.get_clock().now().to_msg(),
        ))


def main(args: list[str] | None = None) -> int:
    """Entry point of ``ros2 run underwater_detection detector_node`` and ``python -m ...detector_node``.

    ``kill -USR1 PID`` prints every thread's Python stack to stderr and the node keeps running: the way to see
    where a node that does not answer, or does not stop on Ctrl-C, is stuck (the test harnesses send it before
    they kill a node that did not stop).
    """
    if hasattr(signal, "SIGUSR1"):
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    rclpy.init(args=sys.argv if args is None else args)
    node = DetectorNode()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        if node.get_parameter("autostart").value:
            node.trigger_configure()
            if node._state == "inactive":
                node.trigger_activate()
            else:
                node.get_logger().error("autostart: configure failed; the node stays unconfigured and waits for "
                                        "a configure transition (fix the parameter, then: ros2 lifecycle set "
                                        f"{node.get_fully_qualified_name()} configure)")
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.stop()
        executor.remove_node(node)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
