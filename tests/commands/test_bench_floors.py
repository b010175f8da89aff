"""The benchmark's floors: named, per mode, judged against their limits; a mode the build lacks
is n/a. Built from hand-made results, no simulation (the end-to-end run is test_bench.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import bench  # noqa: F401  (prepares the process: sys.path, fake credentials)
from bench import floors, modes
from bench.__main__ import stored_refreshes
from bench.coldstart import ColdStart, ImportTime
from bench.detection import PRESETS, DetectionRun, UnrelatedRun, detection_lengths
from bench.dispatch import model
from bench.refresh import RefreshResult, calls_naming_no_instance, calls_per_drain
from bench.result import BenchResult, LatencySummary, product
from bench.scenarios import DrainMeasure, LatencySample
from stacks.config import DrainerConfig


def refresh(
    instances: int, mode: str, notice: list[float], throttled_late: int = 0
) -> RefreshResult:
    return RefreshResult(
        instances=instances,
        rate_per_s=20,
        burst=50,
        deregistration_seconds=120,
        drained=instances,
        outcomes={"drained": instances},
        failed_executions=0,
        actions_completed=instances,
        tasks_killed=0,
        virtual_seconds=200,
        wall_seconds=1,
        lambda_invocations={},
        api_calls={},
        throttled={"ListTasks": 5},
        peak_attempts_per_s={},
        peak_accepted_per_s={},
        mode=mode,
        ecs_calls=1000,
        throttled_after_first_minute=throttled_late,
        ecs_calls_per_drain=[5.0, 6.0, 9.0],
        notice_seconds=notice,
    )


def result(measured_modes: dict[str, str]) -> BenchResult:
    handler = ImportTime("dispatch", 1000.0, [1000.0] * 3, 1.1)
    cold = ColdStart(ImportTime("boto3", 900.0, [900.0] * 3), [handler], 3, 1, 1, 1, [])
    drains, latency, detection, unrelated, refreshes = [], [], [], [], []
    for mode in (m for m, status in measured_modes.items() if status == "measured"):
        for kind, transitions, events in (
            ("5 min", 14, 40),
            ("1 h", 60, 200),
            ("48 h ceiling", 900, 4000),
        ):
            drains.append(
                DrainMeasure(product(mode), kind, "drained", transitions, events, 1, 1, 1)
            )
        sample = LatencySample(600, 3.0, "completed", 0)
        latency.append(LatencySummary(product(mode), [sample]))
        detection.append(
            DetectionRun(
                mode,
                "default",
                PRESETS["default"].max_delay_seconds,
                [sample, LatencySample(60, 7.0, "completed", 0)],
            )
        )
        unrelated.append(UnrelatedRun(mode, 10_000, 0, 0, 0))
        refreshes += [refresh(500, mode, [10.0, 20.0]), refresh(5000, mode, [30.0, 50.0], 2)]
    return BenchResult(
        mode="full",
        configuration={},
        assumptions=[],
        simulation=[],
        drains=drains,
        latency=latency,
        refreshes=refreshes,
        coldstart=cold,
        dispatch=model(cold),
        five_minute_transitions={m: [14, 15] for m, s in measured_modes.items() if s == "measured"},
        modes=measured_modes,
        detection=detection,
        unrelated=unrelated,
    )


def by(floor_list: list, name: str, mode: str) -> floors.Floor:
    return next(f for f in floor_list if f.name == name and f.mode == mode)


def test_each_mode_is_judged_against_its_own_limit() -> None:
    judged = floors.judge(result({"events": "measured", "poll": "measured"}))
    assert by(judged, "drain_5min_transitions", "events").verdict == "PASS"  # 15 ≤ 15
    assert by(judged, "drain_1h_transitions", "events").verdict == "FAIL"  # 60 > 50
    poll_hour = by(judged, "drain_1h_transitions", "poll")
    assert (poll_hour.limit, poll_hour.verdict, poll_hour.measured) == (None, "n/a", 60)
    # default delays: at most 1.5 s, so p95 ≤ 6.5 s; the sample's p95 is 6.8 s
    default = by(judged, "detection_p95_seconds", "events")
    assert default.limit == 6.5 and default.verdict == "FAIL"
    assert by(judged, "refresh_5000_throttled_after_first_minute", "events").verdict == "FAIL"
    assert by(judged, "refresh_5000_ecs_calls_per_drain_median", "events").measured == 6.0
    ratio = by(judged, "refresh_notice_p95_ratio_5000_to_500", "events")
    assert ratio.verdict == "FAIL" and ratio.measured == pytest.approx(49.0 / 19.5)
    assert "make bench-refresh-2000" in by(judged, "refresh_2000_failed", "events").why
    assert by(judged, "unrelated_events_ecs_calls", "poll").verdict == "PASS"


def test_a_mode_the_build_lacks_is_not_available_not_measured() -> None:
    missing = modes.unavailable_reason("events")
    judged = floors.judge(result({"events": missing, "poll": "measured"}))
    events = [f for f in judged if f.mode == "events"]
    assert events and all(f.verdict == "n/a" and f.measured is None for f in events)
    assert all(f.why == missing for f in events)
    assert by(judged, "drain_48h_transitions", "poll").verdict == "PASS"


def test_the_mode_is_passed_through_the_configuration(config: DrainerConfig) -> None:
    assert modes.available("poll")
    if not modes.supported():
        with pytest.raises(ValueError, match="not available"):
            modes.config_for(config, "events")
        assert modes.config_for(config, "poll") == config
    else:
        for mode in modes.MODES:
            assert getattr(modes.config_for(config, mode), modes.SETTING) == mode


def test_a_refresh_the_run_did_not_include_is_read_from_its_file(tmp_path: Path) -> None:
    from dataclasses import asdict

    stored = [{**asdict(refresh(5000, "poll", [1.0])), "source": "refresh-5000.json (commit x)"}]
    (tmp_path / "refresh-5000.json").write_text(json.dumps(stored))
    (found,) = stored_refreshes(tmp_path, (500, 2000), {"poll"})
    assert (found.instances, found.source) == (5000, "refresh-5000.json (commit x)")
    assert stored_refreshes(tmp_path, (500, 2000), {"events"}) == []
    assert stored_refreshes(tmp_path, (5000,), {"poll"}) == []


def test_detection_lengths_span_a_minute_to_47_hours() -> None:
    lengths = detection_lengths(16, 1)
    assert lengths == sorted(lengths) and 60 <= lengths[0] < 100
    assert 100_000 < lengths[-1] <= 47 * 3600


class _Task:
    def __init__(self, arn: str, instance_arn: str) -> None:
        self.arn = arn
        self.instance = type("CI", (), {"arn": instance_arn})()


class _World:
    def tasks_on(self, instance: str) -> list[_Task]:
        return [_Task(f"task/{instance}", f"ci/{instance}")]


class _Call:
    def __init__(self, **params: object) -> None:
        self.params = params


def test_ecs_calls_are_attributed_to_the_drain_they_name() -> None:
    calls = [
        _Call(filter="ec2InstanceId == i-1"),
        _Call(containerInstance="ci/i-1"),
        _Call(tasks=["task/i-2"]),
        _Call(containerInstances=["ci/i-2"]),
        _Call(services=["web"]),  # names no instance: counted apart
        _Call(containerInstance="ci/other"),  # another instance: nobody's
    ]
    assert calls_per_drain(_World(), ["i-1", "i-2"], calls) == [2.0, 2.0]
    assert calls_naming_no_instance(calls) == 1
