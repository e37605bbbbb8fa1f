"""Deterministic synthetic underwater ROV video with exact ground truth (``uwdet synth``).

Small modules, one concern each:

- ``sprites``   procedural sea cucumbers, urchins, scallops, starfish and look-alike distractors
- ``seabed``    the per-sequence world texture (sand, ripples, gravel, rock, weed, debris)
- ``camera``    the ROV trajectory and the world-to-image similarity transform
- ``scene``     placement, motion, pasting and pixel-exact ground truth (boxes, visibility, occlusion)
- ``water``     attenuation, colour cast, backscatter, caustics, lamps, snow, noise, blur, JPEG; presets
- ``sequence``  ``SequenceConfig``, ``Frame``, ``SyntheticSequence``, ``generate_sequence``
- ``splits``    fixed train / val / test seed ranges
- ``writers``   COCO JSON, VOC XML and rosbag2 (MCAP) output; ``ros_types`` registers vision_msgs
- ``preview``   a picture grid of frames with boxes; ``cli`` the ``uwdet synth`` command

Nothing here imports rclpy or ROS message packages; bags are written with the pure-Python ``rosbags``.
"""
from .sequence import Frame, SequenceConfig, SyntheticSequence, generate_sequence
from .splits import SPLITS, TEST_FRAMES, TEST_SEQUENCES, split_seeds
from .sprites import CLASS_NAMES
from .water import PRESETS

__all__ = [
    "CLASS_NAMES", "Frame", "PRESETS", "SPLITS", "SequenceConfig", "SyntheticSequence", "TEST_FRAMES",
    "TEST_SEQUENCES", "generate_sequence", "split_seeds",
]
