"""bags.replay_analysis on real rosbag2 folders: which of the detector's /diagnostics reports a replay's
summary quotes. Its window rates must come from a report sent while frames were still being answered; after
playback the sliding window takes in idle seconds and a 10 FPS replay reads as a fraction of that."""
from __future__ import annotations

import json

from test_bags import EPOCH, NAMES, T, detection_array, header, image_msg, write_bag, RGB

from underwater_detection.bags.replay_analysis import analyze_replay
from underwater_detection.ros.demo import format_summary

S = 10**9


def diagnostics(ns: int, input_rate: float, received: int, name: str = "detector_node"):
    values = [T["diagnostic_msgs/msg/KeyValue"](key=k, value=v) for k, v in
              (("input_rate_hz", f"{input_rate:.3f}"), ("key_frame_ratio", "0.250"),
               ("received_total", str(received)), ("dropped_total", "0"), ("device", "cpu"))]
    status = T["diagnostic_msgs/msg/DiagnosticStatus"](level=0, name=f"/{name}: detector", message="ok",
                                                        hardware_id="cpu", values=values)
    return T["diagnostic_msgs/msg/DiagnosticArray"](header=header(ns), status=[status])


def demo_summary(summary: dict) -> dict:
    return {**summary, "model_name": "tdrnet_lite", "model": "models/tdrnet_lite.pt", "untrained": False}


def bags(tmp_path, reports, answer=True):
    frames = [EPOCH + i * S // 10 for i in range(20)]  # 2 s at 10 FPS; published at these wall times
    source = write_bag(tmp_path / "source", [("/camera/image_raw", "sensor_msgs/msg/Image", t, image_msg(t, "rgb8", RGB))
                                             for t in frames])
    log = tmp_path / "published.jsonl"
    log.write_text("".join(json.dumps({"topic": "/camera/image_raw", "log_time_ns": t, "wall_ns": t}) + "\n"
                           for t in frames))
    answered = [("/detector_node/detections", "vision_msgs/msg/Detection2DArray", t + S // 50,
                 detection_array(t, [(1, 1, 4, 4)], [NAMES[0]], ["1"])) for t in frames] if answer else []
    diag = [("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray", t, msg) for t, msg in reports]
    recorded = write_bag(tmp_path / "recorded", sorted(answered + diag, key=lambda m: m[2]))
    return analyze_replay(source, recorded, NAMES, publish_log=log)


def test_window_rates_come_from_the_last_report_during_playback_and_totals_from_the_last_report(tmp_path):
    during = EPOCH + 15 * S // 10
    after = EPOCH + 8 * S
    analysis = bags(tmp_path, [(EPOCH + S // 2, diagnostics(EPOCH, 5.0, 5)), (during, diagnostics(during, 10.0, 16)),
                               (after, diagnostics(after, 0.8, 20))])
    assert analysis.diagnostics_while_playing["input_rate_hz"] == "10.000"
    assert analysis.diagnostics["input_rate_hz"] == "0.800" and analysis.diagnostics["received_total"] == "20"
    summary = analysis.to_dict()
    assert summary["detector_diagnostics_while_playing"]["received_total"] == "16"
    line = next(x for x in format_summary(demo_summary(summary)).splitlines() if x.startswith("detector diagnostics"))
    assert "input_rate_hz=10.000" in line and "0.800" not in line and "dropped_total=0" in line


def test_a_replay_whose_reports_all_come_after_playback_quotes_no_window_rate(tmp_path):
    after = EPOCH + 8 * S
    analysis = bags(tmp_path, [(after, diagnostics(after, 0.8, 20)),
                               (after, diagnostics(after, 3.0, 20, name="someone_else"))])
    assert analysis.diagnostics_while_playing == {} and analysis.diagnostics["input_rate_hz"] == "0.800"
    line = next(x for x in format_summary(demo_summary(analysis.to_dict())).splitlines() if x.startswith("detector diagnostics"))
    assert "input_rate_hz" not in line and "dropped_total=0" in line


def test_a_node_that_answered_nothing_still_gets_its_playback_rates_quoted(tmp_path):
    """Every inference failed: no detections, but the frames' publish times still bound the playback."""
    during, after = EPOCH + 15 * S // 10, EPOCH + 8 * S
    analysis = bags(tmp_path, [(during, diagnostics(during, 10.0, 16)), (after, diagnostics(after, 0.8, 20))],
                    answer=False)
    assert analysis.processed == 0
    assert analysis.diagnostics_while_playing["input_rate_hz"] == "10.000"
    assert analysis.diagnostics["received_total"] == "20"
