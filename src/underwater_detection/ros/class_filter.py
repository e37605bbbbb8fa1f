"""The ``class_filter`` parameter: which classes the node publishes (no rclpy).

A string, not a string array, on purpose: ROS 2 parameter files cannot declare an empty array (its type is
unknown), and "publish everything" must be the easy default. ``""`` = all classes; otherwise names separated
by commas or spaces, matched like everywhere else in the package (``Sea-Urchin`` = ``sea_urchin``).
"""
from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from ..data.class_names import normalize_class_name


def parse_class_filter(text: str, class_names: Sequence[str]) -> frozenset[int] | None:
    """Label indices to keep, or ``None`` for all. ValueError names unknown classes and the valid ones."""
    tokens = [t for t in re.split(r"[,\s]+", str(text).strip()) if t]
    if not tokens:
        return None
    index = {normalize_class_name(name): i for i, name in enumerate(class_names)}
    unknown = [t for t in tokens if normalize_class_name(t) not in index]
    if unknown:
        raise ValueError(f"class_filter names unknown classes {unknown}; the model's classes are {list(class_names)}")
    return frozenset(index[normalize_class_name(t)] for t in tokens)


def keep_mask(labels: np.ndarray, keep: frozenset[int] | None) -> np.ndarray:
    """Boolean mask of detections whose label is kept."""
    labels = np.asarray(labels)
    if keep is None:
        return np.ones(labels.shape[0], dtype=bool)
    return np.isin(labels, np.fromiter(keep, dtype=np.int64, count=len(keep)))
