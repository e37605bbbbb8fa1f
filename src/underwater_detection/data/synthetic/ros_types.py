"""vision_msgs types for ``rosbags``, registered from the ``.msg`` files in ``third_party/vision_msgs``.

vision_msgs is not on PyPI and the core must not import ROS message packages, yet the ground-truth topic
of our bags has to be a real ``vision_msgs/msg/Detection2DArray`` that ``ros2 bag play`` and the vehicle's
nodes accept. ``rosbags`` parses ``.msg`` text at run time, so we keep the upstream 4.1.x definitions
(field for field; their RIHS01 type hashes match upstream's, see ``test_synthetic_writers``) in
``third_party/vision_msgs/msg`` and register them into a rosbags typestore here.

The folder is looked up, in order: ``$UWDET_VISION_MSGS_DIR``; the repository checkout (``third_party/``
next to ``src/``); ``share/underwater_detection/vision_msgs/msg`` and ``share/vision_msgs/msg`` under the
Python prefix and every ``$AMENT_PREFIX_PATH`` entry (an installed package, or vision_msgs from apt).
"""
from __future__ import annotations

import os
import sys
from functools import lru_cache
from pathlib import Path

from rosbags.typesys import Stores, get_typestore as _rosbags_typestore, get_types_from_msg
from rosbags.typesys.store import Typestore

VISION_MSGS_TYPES: tuple[str, ...] = (
    "BoundingBox2D", "BoundingBox2DArray", "BoundingBox3D", "BoundingBox3DArray", "Classification",
    "Detection2D", "Detection2DArray", "Detection3D", "Detection3DArray", "LabelInfo", "ObjectHypothesis",
    "ObjectHypothesisWithPose", "Point2D", "Pose2D", "VisionClass", "VisionInfo",
)
ENV_VAR = "UWDET_VISION_MSGS_DIR"
DISTROS: dict[str, Stores] = {"humble": Stores.ROS2_HUMBLE, "jazzy": Stores.ROS2_JAZZY, "kilted": Stores.ROS2_KILTED}
DEFAULT_DISTRO = "kilted"  # the distribution of the project's pip ROS (DESIGN.md); 4.1.x layout is the same


def candidate_dirs() -> list[Path]:
    """Every place a ``vision_msgs/msg`` folder is looked for, in priority order."""
    out: list[Path] = []
    env = os.environ.get(ENV_VAR)
    if env:
        out.append(Path(env))
    here = Path(__file__).resolve()
    if len(here.parents) > 4:
        out.append(here.parents[4] / "third_party" / "vision_msgs" / "msg")  # <repo>/src/underwater_detection/...
    prefixes = [Path(sys.prefix)] + [Path(p) for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    for prefix in prefixes:
        out.append(prefix / "share" / "underwater_detection" / "vision_msgs" / "msg")
        out.append(prefix / "share" / "vision_msgs" / "msg")
    return out


def vision_msgs_dir() -> Path:
    """The first candidate folder that holds ``Detection2DArray.msg``; a clear error if there is none."""
    tried = candidate_dirs()
    for d in tried:
        if (d / "Detection2DArray.msg").is_file():
            return d
    raise FileNotFoundError(
        "vision_msgs message definitions not found; looked in:\n  " + "\n  ".join(str(d) for d in tried)
        + f"\nSet {ENV_VAR} to a folder with the vision_msgs 4.1.x .msg files (the repository ships them in "
        "third_party/vision_msgs/msg)."
    )


def load_vision_msgs(directory: str | Path | None = None) -> dict:
    """Parse every vision_msgs ``.msg`` file into a rosbags types dict (name -> definition)."""
    folder = Path(directory) if directory is not None else vision_msgs_dir()
    types: dict = {}
    for name in VISION_MSGS_TYPES:
        path = folder / f"{name}.msg"
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing (expected all of {', '.join(VISION_MSGS_TYPES)})")
        types.update(get_types_from_msg(path.read_text(encoding="utf-8"), f"vision_msgs/msg/{name}"))
    return types


@lru_cache(maxsize=None)
def get_typestore(distro: str = DEFAULT_DISTRO) -> Typestore:
    """A rosbags typestore for ``distro`` (humble, jazzy, kilted) with vision_msgs registered."""
    if distro not in DISTROS:
        raise ValueError(f"unknown ROS distribution {distro!r}; expected one of {sorted(DISTROS)}")
    store = _rosbags_typestore(DISTROS[distro])
    store.register(load_vision_msgs())
    return store
