"""The detector node on ROS 2 Humble's rclpy (vehicles run Humble or Jazzy; the venv has Kilted).

Humble's rclpy differs from Iron+ in two APIs the node uses: ``SubscriptionEventCallbacks`` lives in
``rclpy.qos_event`` (``rclpy.event_handler`` does not exist), and ``Node`` has no
``add_post_set_parameters_callback``. Both are simulated here on the installed rclpy.
"""
from __future__ import annotations

import importlib.util
import sys
import types

import pytest
import rclpy
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.parameter import Parameter

from underwater_detection.models.inference import is_channels_last, is_folded
from underwater_detection.models.random_weights import write_random_checkpoint
from underwater_detection.ros import detector_node as detector_module
from underwater_detection.ros.detector_node import DetectorNode

from detector_harness import fresh_domain_id


def test_detector_node_module_imports_without_rclpy_event_handler(monkeypatch):
    """Humble: ``import rclpy.event_handler`` fails; the class comes from ``rclpy.qos_event`` instead."""
    humble_qos_event = types.ModuleType("rclpy.qos_event")
    humble_qos_event.SubscriptionEventCallbacks = SubscriptionEventCallbacks
    monkeypatch.setitem(sys.modules, "rclpy.event_handler", None)  # None in sys.modules = ImportError
    monkeypatch.setitem(sys.modules, "rclpy.qos_event", humble_qos_event)
    name = "underwater_detection.ros._detector_node_as_on_humble"
    spec = importlib.util.spec_from_file_location(name, detector_module.__file__)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    assert module.SubscriptionEventCallbacks is SubscriptionEventCallbacks


class HumbleDetectorNode(DetectorNode):
    """Humble's Node has no add_post_set_parameters_callback (added in Iron)."""

    @property
    def add_post_set_parameters_callback(self):  # noqa: D102
        raise AttributeError("add_post_set_parameters_callback (not in Humble)")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_random_checkpoint(tmp_path_factory.mktemp("ckpt") / "ssd4s_lite_random.pt", "ssd4s_lite",
                                   input_size=(64, 64))


@pytest.fixture(scope="module")
def context():
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=fresh_domain_id())
    yield ctx
    rclpy.try_shutdown(context=ctx)


@pytest.mark.parametrize("node_class", [DetectorNode, HumbleDetectorNode], ids=["iron+", "humble"])
def test_runtime_parameter_updates_reach_the_detector(node_class, checkpoint, context):
    node = node_class(context=context, parameter_overrides=[
        Parameter("model_path", value=str(checkpoint)), Parameter("threads", value=1),
        Parameter("device", value="cpu"),
    ])
    try:
        assert not hasattr(node, "add_post_set_parameters_callback") or node_class is DetectorNode
        node.trigger_configure()
        assert node._state == "inactive"
        detector = node._detector
        # the node runs the inference rewrites on the CPU: BatchNorms folded, weights channels-last
        assert is_folded(detector.model) and is_channels_last(detector.model)
        results = node.set_parameters([
            Parameter("key_interval", value=7), Parameter("score_threshold", value=0.6),
            Parameter("max_detections", value=12), Parameter("class_filter", value="scallop"),
        ])
        assert all(r.successful for r in results), [r.reason for r in results]
        assert detector.key_interval == 7
        assert detector.postprocess_config.score_threshold == pytest.approx(0.6)
        assert detector.postprocess_config.max_detections == 12
        assert node._keep == frozenset({list(detector.class_names).index("scallop")})
        refused = node.set_parameters([Parameter("key_interval", value=0)])[0]
        assert not refused.successful and refused.reason
        assert detector.key_interval == 7 and node.get_parameter("key_interval").value == 7
    finally:
        node.stop()
        node.destroy_node()
