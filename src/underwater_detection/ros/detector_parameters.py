"""The detector node's parameters: one table with defaults, ranges, descriptions and *when* each may change.

Why a table: the descriptors (what ``ros2 param describe`` shows), the defaults (mirrored by
``config/detector.yaml``, a test keeps them equal) and the run-time rules come from one place.

When a parameter may change (``phase``):

* ``runtime``  - any time; applied to the next frame (k and e at the stream's next key frame, see
  ``engine.temporal``).
* ``activate`` - the subscription's settings: refused while the node is active (deactivate, set, activate).
* ``configure`` - used when the model is loaded: refused unless the node is unconfigured (deactivate,
  cleanup, set, configure).
* ``startup``  - read-only after the node started (``autostart``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType

from ..models.shipped import DEFAULT_CHECKPOINT
from ..models.spec import parse_input_size, validate_key_interval, validate_soft_coefficient
from .qos import RELIABILITY_CHOICES

RUNTIME, ACTIVATE, CONFIGURE, STARTUP = "runtime", "activate", "configure", "startup"

DEVICE_HINT = "auto (CUDA if available, else CPU), cpu, cuda or cuda:N"
IMAGE_TRANSPORTS = ("raw", "compressed")
CLASS_ID_MODES = ("name", "index")


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any
    description: str
    phase: str
    int_range: tuple[int, int] | None = None
    float_range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None

    def descriptor(self) -> ParameterDescriptor:
        kinds = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
                 float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING}
        constraints = {RUNTIME: "changeable at run time",
                       ACTIVATE: "changeable while the node is not active",
                       CONFIGURE: "changeable while the node is unconfigured (applied at configure)",
                       STARTUP: "read-only after start-up"}[self.phase]
        if self.choices:
            constraints = f"one of {', '.join(self.choices)}; {constraints}"
        d = ParameterDescriptor(
            name=self.name, type=kinds[type(self.default)], description=self.description,
            additional_constraints=constraints, read_only=self.phase == STARTUP,
        )
        if self.int_range is not None:
            d.integer_range = [IntegerRange(from_value=self.int_range[0], to_value=self.int_range[1], step=1)]
        if self.float_range is not None:
            d.floating_point_range = [
                FloatingPointRange(from_value=self.float_range[0], to_value=self.float_range[1], step=0.0)
            ]
        return d


PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("autostart", True, "configure and activate on start-up (false: wait for lifecycle transitions)",
              STARTUP),
    ParamSpec("model_path", DEFAULT_CHECKPOINT,
              "checkpoint file (absolute, or relative to the working directory or the package's share dir)",
              CONFIGURE),
    ParamSpec("device", "auto", f"inference device: {DEVICE_HINT}", CONFIGURE),
    ParamSpec("threads", 0, "PyTorch CPU threads (0 = PyTorch's default)", CONFIGURE, int_range=(0, 256)),
    ParamSpec("input_size", "",
              "network input HxW, e.g. 320x448 (multiples of 64; empty = the size the checkpoint was trained at): "
              "trades speed for accuracy without retraining; warns if its aspect differs from training's", CONFIGURE),
    ParamSpec("tracking", True, "assign temporal track ids (Detection2D.id)", CONFIGURE),
    ParamSpec("diagnostics_period_s", 1.0, "period of /diagnostics messages", CONFIGURE,
              float_range=(0.1, 60.0)),
    ParamSpec("image_topic", "/camera/image_raw",
              "camera topic; with image_transport=compressed the node subscribes to <image_topic>/compressed",
              ACTIVATE),
    ParamSpec("image_transport", "raw", "raw (sensor_msgs/Image) or compressed (sensor_msgs/CompressedImage)",
              ACTIVATE, choices=IMAGE_TRANSPORTS),
    ParamSpec("qos_reliability", "best_effort",
              "image subscription reliability (best_effort matches any camera; reliable for lossless replays)",
              ACTIVATE, choices=tuple(RELIABILITY_CHOICES)),
    ParamSpec("key_interval", 4, "k: run the reference generator every k-th frame (1 = every frame)", RUNTIME,
              int_range=(1, 1000)),
    ParamSpec("soft_coefficient", 1.0, "e: soft refinement coefficient for propagated references", RUNTIME,
              float_range=(0.0, 1.0)),
    ParamSpec("max_gap_s", 1.0, "a longer gap between frame stamps of a stream resets it (new key frame)",
              RUNTIME, float_range=(0.001, 3600.0)),
    ParamSpec("score_threshold", 0.3, "minimum detection score published (must be < 1)", RUNTIME,
              float_range=(0.0, 1.0)),
    ParamSpec("nms_iou", 0.45, "per-class non-maximum suppression IoU (must be > 0)", RUNTIME,
              float_range=(0.0, 1.0)),
    ParamSpec("max_detections", 100, "maximum detections per image", RUNTIME, int_range=(1, 1000)),
    ParamSpec("class_filter", "",
              "publish only these classes, names separated by commas or spaces (empty = all)", RUNTIME),
    ParamSpec("class_id_mode", "name", "ObjectHypothesis.class_id: the class name or the label index",
              RUNTIME, choices=CLASS_ID_MODES),
    ParamSpec("publish_debug_image", True,
              "publish ~/debug_image with drawn boxes (rendered only while someone subscribes)", RUNTIME),
)
BY_NAME: dict[str, ParamSpec] = {p.name: p for p in PARAMETERS}


def declare_all(node: Any) -> None:
    """Declare every parameter on ``node`` with its descriptor (values from a params file override defaults)."""
    for spec in PARAMETERS:
        node.declare_parameter(spec.name, spec.default, spec.descriptor())


def check_value(name: str, value: Any) -> str | None:
    """Checks beyond the descriptor's type and range; returns the reason a value is refused, or None."""
    spec = BY_NAME.get(name)
    if spec is None:
        return None
    if spec.choices is not None and value not in spec.choices:
        return f"{name} must be one of {', '.join(spec.choices)}, got {value!r}"
    try:
        if name == "key_interval":
            validate_key_interval(value)
        elif name == "soft_coefficient":
            validate_soft_coefficient(value)
        elif name == "input_size":
            parse_input_size(value)
    except ValueError as exc:
        return str(exc)
    if name == "score_threshold" and not (0.0 <= value < 1.0):
        return f"score_threshold must be in [0, 1), got {value}"
    if name == "nms_iou" and not (0.0 < value <= 1.0):
        return f"nms_iou must be in (0, 1], got {value}"
    if name in ("max_gap_s", "soft_coefficient", "score_threshold", "nms_iou") and not math.isfinite(value):
        return f"{name} must be a finite number, got {value}"
    if name == "device":
        text = str(value).strip().lower()
        if not (text in ("auto", "cpu", "cuda") or (text.startswith("cuda:") and text[5:].isdigit())):
            return f"device must be {DEVICE_HINT}, got {value!r}"
    if name in ("model_path", "image_topic") and not str(value).strip():
        return f"{name} must not be empty"
    return None


def phase_refusal(name: str, state: str) -> str | None:
    """Why ``name`` cannot change in lifecycle ``state`` (``unconfigured``/``inactive``/``active``), or None."""
    spec = BY_NAME.get(name)
    if spec is None:
        return None
    if spec.phase == CONFIGURE and state != "unconfigured":
        return (f"{name} is used when the model is loaded: change it while the node is unconfigured "
                f"(it is {state}: deactivate and clean up first), then configure")
    if spec.phase == ACTIVATE and state == "active":
        return f"{name} sets up the image subscription: deactivate the node, change it, then activate"
    return None
