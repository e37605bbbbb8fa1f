"""Class-name matching shared by datasets, bags and ROS messages (light: no torch import, so the grasp-target
node and bag tools can use it without loading PyTorch)."""
from __future__ import annotations

import re


def normalize_class_name(name: str) -> str:
    """``"Sea cucumber"``, ``"sea-cucumber"`` and ``"sea_cucumber"`` are the same class."""
    return re.sub(r"[\s\-]+", "_", str(name).strip().lower())
