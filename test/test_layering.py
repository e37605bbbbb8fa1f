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


# rclpy and message packages, even imported lazily inside a function, belong to ros/ only (the runtime check above
# cannot see a lazy import). ament_index_python is not listed: the core may look up an installed share directory
# with it when it happens to be there (models/spec.py), which needs no ROS at run time.
_ROS_ONLY = ("rclpy", "rosidl", "rmw", "cv_bridge", "launch", "launch_ros")


def _imported_roots(path: Path) -> set[str]:
    import ast

    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_only_the_ros_layer_imports_rclpy_or_messages_even_lazily():
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).parts[0] == "ros":
            continue
        bad = sorted(r for r in _imported_roots(path) if r in _ROS_ONLY or r.endswith("_msgs"))
        if bad:
            offenders[str(path.relative_to(SRC))] = bad
    assert not offenders, f"rclpy/message imports outside ros/: {offenders}"


def test_ros_package_itself_imports_without_rclpy():
    """`uwdet` registers its ROS sub-commands through underwater_detection.ros; importing the package must not
    load rclpy (a laptop without ROS still gets a working CLI)."""
    code = (
        "import sys, underwater_detection.ros\n"
        f"print('LOADED', sorted(k for k in sys.modules if k.split('.')[0] in {ROS_PREFIXES!r}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "LOADED []" in result.stdout, result.stdout
