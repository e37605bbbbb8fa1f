"""The core (ops, models, data, engine, bags, cli) must import and run without ROS: DESIGN.md's layer rule."""
import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "underwater_detection"

# Importing any of these in the core would make it unusable on a laptop or a training server without ROS.
ROS_PREFIXES = ("rclpy", "rosidl", "rmw", "cv_bridge", "ament_index_python", "launch", "launch_ros")


def _core_modules() -> list[str]:
    modules = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(SRC).with_suffix("")
        if "ros" in rel.parts[1:2]:
            continue  # the ros/ layer is the one place allowed to import rclpy
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules.append(".".join(parts))
    return modules


def test_core_modules_import_without_loading_ros():
    modules = _core_modules()
    assert "underwater_detection.ops.losses" in modules and len(modules) > 20
    code = (
        "import sys, importlib\n"
        f"mods = {modules!r}\n"
        "for m in mods: importlib.import_module(m)\n"
        f"bad = sorted(k for k in sys.modules if k.split('.')[0] in {ROS_PREFIXES!r} or k.split('.')[0].endswith('_msgs'))\n"
        "print('LOADED', bad)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "LOADED []" in result.stdout, result.stdout
