"""The launch file, ``uwdet run`` and ``uwdet demo``.

``launch``/``launch_ros`` are not installable here, so the launch file is checked statically (it compiles,
defines ``generate_launch_description``, declares the same arguments as ``uwdet run`` with the same defaults,
and setup.py installs it); ``uwdet run`` is run for real: both nodes come up over DDS in the requested
namespace and stop cleanly on Ctrl-C; ``uwdet demo`` runs end to end on a short bag.
"""
from __future__ import annotations

import ast
import json
import py_compile
import runpy
import signal
from pathlib import Path

import pytest
import setuptools

from underwater_detection.models.random_weights import write_random_checkpoint
from underwater_detection.models.shipped import DEFAULT_CHECKPOINT
from underwater_detection.ros.node_runner import LAUNCH_ARGUMENTS, RunOptions, node_commands

from ros_process_utils import RosProcess, TestPeer, fresh_domain_id, ros_env, uwdet, wait_until

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch" / "underwater_detection.launch.py"


def _declared_arguments(tree: ast.AST) -> dict[str, ast.expr]:
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "DeclareLaunchArgument":
            name = node.args[0].value  # type: ignore[attr-defined]
            out[name] = next(k.value for k in node.keywords if k.arg == "default_value")
    return out


def test_launch_file_compiles_and_declares_the_run_arguments(tmp_path):
    py_compile.compile(str(LAUNCH), cfile=str(tmp_path / "launch.pyc"), doraise=True)
    tree = ast.parse(LAUNCH.read_text())
    functions = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert "generate_launch_description" in functions
    declared = _declared_arguments(tree)
    assert set(declared) == set(LAUNCH_ARGUMENTS)
    for name, (default, _) in LAUNCH_ARGUMENTS.items():
        value = declared[name]
        if isinstance(value, ast.Constant):
            assert value.value == default, name
        else:  # the parameter files: share/underwater_detection/config/<file>
            assert ast.unparse(value).endswith(f"'config', '{default}'])"), (name, ast.unparse(value))
    source = LAUNCH.read_text()
    for executable in ("detector_node", "grasp_target_node"):
        assert f'executable="{executable}"' in source
    for name in LAUNCH_ARGUMENTS:  # declared and also used: an unused argument would be silently ignored
        assert source.count(f'LaunchConfiguration("{name}")') >= 1, name
    assert '"camera_info_topic": LaunchConfiguration("camera_info_topic")' in source


def test_setup_py_installs_launch_config_and_both_node_executables(monkeypatch):
    captured = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kw: captured.update(kw))
    monkeypatch.chdir(REPO)
    runpy.run_path(str(REPO / "setup.py"), run_name="__main__")
    data = dict(captured["data_files"])
    assert "launch/underwater_detection.launch.py" in data["share/underwater_detection/launch"]
    assert "config/grasp_target.yaml" in data["share/underwater_detection/config"]
    assert "config/detector.yaml" in data["share/underwater_detection/config"]
    scripts = captured["entry_points"]["console_scripts"]
    assert "grasp_target_node = underwater_detection.ros.grasp_target_node:main" in scripts
    assert any(s.startswith("detector_node = ") for s in scripts)


def test_run_builds_the_node_command_lines_from_the_launch_arguments():
    cmds = node_commands(RunOptions(model="m.pt", image_topic="/cam", camera_info_topic="/cam_info", compressed=True,
                                    k=2, e=0.5, input_size="320x448", namespace="rov", use_sim_time=True))
    det, grasp = cmds["detector_node"], cmds["grasp_target_node"]
    assert det[det.index("--params-file") + 1] == str(REPO / "config" / "detector.yaml")
    assert grasp[grasp.index("--params-file") + 1] == str(REPO / "config" / "grasp_target.yaml")
    for item in ("model_path:=m.pt", "image_topic:=/cam", "image_transport:=compressed", "key_interval:=2",
                 "soft_coefficient:=0.5", "input_size:=320x448", "use_sim_time:=true"):
        assert item in det
    assert "camera_info_topic:=/cam_info" in grasp and "camera_info_topic:=/cam_info" not in det
    assert "use_sim_time:=true" in grasp and "__ns:=/rov" in det and "__ns:=/rov" in grasp
    with pytest.raises(ValueError, match="e must be in"):
        node_commands(RunOptions(e=1.5))
    # unset: the checkpoint's own size, spelled as YAML's empty string (a bare "input_size:=" would be null)
    assert "input_size:=''" in node_commands(RunOptions())["detector_node"]
    with pytest.raises(ValueError, match=r"input_size must be HxW \(height first"):
        node_commands(RunOptions(input_size="320"))
    with pytest.raises(FileNotFoundError, match="parameter file nope.yaml not found"):
        node_commands(RunOptions(params_file="nope.yaml"))


def test_uwdet_run_starts_both_nodes_in_the_namespace_and_stops_on_ctrl_c(tmp_path):
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from std_msgs.msg import Bool

    ckpt = write_random_checkpoint(tmp_path / "ssd.pt", "ssd4s_lite", input_size=(128, 128))
    domain = fresh_domain_id()
    with RosProcess(uwdet("run", "--model", str(ckpt), "--namespace", "rov", "-k", "2", "--input-size", "128x192"),
                    ros_env(domain),
                    tmp_path / "run.log") as run:
        peer = TestPeer("run_test_peer", domain)
        try:
            peer.subscribe(Bool, "/rov/grasp_target_node/target_active",
                           QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                      durability=DurabilityPolicy.TRANSIENT_LOCAL))
            wait_until(lambda: run.running() and peer.messages("/rov/grasp_target_node/target_active")
                       and peer.node.count_publishers("/rov/detector_node/detections") >= 1,
                       90, "both nodes up in /rov", run.log)
        finally:
            peer.close()
        run.proc.send_signal(signal.SIGINT)
        assert run.wait(timeout=30) == 0, run.log()
    log = run.log()
    assert "started detector_node" in log and "grasp_target_node (pid" in log
    assert "input 128x192 (trained at 128x128)" in log  # --input-size reached the node as a string


def test_uwdet_demo_end_to_end(tmp_path):
    out = tmp_path / "demo"
    args = uwdet("demo", "--out", str(out), "--frames", "16", "--size", "256x192", "--timeout", "120")
    with RosProcess(args, ros_env(fresh_domain_id()), tmp_path / "demo.log", cwd=REPO) as demo:
        assert demo.wait(timeout=240) == 0, demo.log()
    log = demo.log()
    # the vehicle model when it exists, else random weights said loudly -- never one mistaken for the other
    shipped = (REPO / DEFAULT_CHECKPOINT).exists()
    assert ("UNTRAINED WEIGHTS" in log) == (not shipped), log
    if shipped:
        assert f"({DEFAULT_CHECKPOINT})" in log, log
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 16 and summary["processed"] + summary["dropped"] == 16
    assert summary["processed"] >= 8, log
    assert 0 < summary["latency_ms"]["p50"] <= summary["latency_ms"]["p95"] < 5000
    assert 0 <= summary["voc_map50_all_frames"] <= 1
    assert summary["target_active_transitions"][0]["active"] is False
    for name in ("summary.png", Path(summary["video"]).name):
        assert (out / name).stat().st_size > 10_000
    assert "frames played 16" in log and "latency p50" in log


ROS_PACKAGE_MODULES = {"rclpy", "launch", "launch_ros", "ament_index_python"}


def _imported_ros_packages(paths) -> set[str]:
    """Top-level ROS packages (rclpy, *_msgs, *_interfaces, launch, ...) that ``paths`` import."""
    found = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in ROS_PACKAGE_MODULES or top.endswith(("_msgs", "_interfaces")):
                    found.add(top)
    return found


def test_package_xml_declares_every_ros_package_the_nodes_and_launch_file_import():
    """rosdep / a colcon build on the vehicle installs only what package.xml names: a ROS package the nodes or
    the launch file import but package.xml omits is missing on a fresh vehicle (ImportError at start-up)."""
    import xml.etree.ElementTree as ET

    root = ET.parse(REPO / "package.xml").getroot()
    declared = {e.text.strip() for tag in ("depend", "exec_depend") for e in root.iter(tag)}
    imported = _imported_ros_packages([*sorted((REPO / "src" / "underwater_detection").rglob("*.py")), LAUNCH])
    assert {"rclpy", "vision_msgs", "launch", "launch_ros"} <= imported  # the scan works
    assert imported - declared == set()
