"""Each event kind's parser against AWS's own sample events and against broken ones."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from drainer.parsers import parse_event, salvage
from drainer.request import INVALID, LIFECYCLE, REBALANCE, SPOT, EventError

# Copied verbatim from the AWS documentation (the pages: fixtures/aws-sample-events/README.md).
SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "aws-sample-events"
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
TEST_SOURCE = "ecs-drainer.test"


def sample(name: str) -> dict:
    return json.loads((SAMPLES / name).read_text())


def test_lifecycle_sample_becomes_a_lifecycle_request():
    request = parse_event(sample("asg-terminate-lifecycle-action.json"), TEST_SOURCE, NOW)
    assert request.kind == LIFECYCLE
    assert request.instance_id == "i-1234567890abcdef0"
    assert request.auto_scaling_group_name == "my-asg"
    assert request.lifecycle_hook_name == "my-lifecycle-hook"
    assert request.lifecycle_action_token == "87654321-4321-4321-4321-210987654321"
    assert request.reason == "auto-scaling-termination"
    # The documentation's placeholder time is not a time: the event is taken as arriving now.
    assert request.event_time == "2026-01-05T09:00:00Z"


def test_warm_pool_termination_still_drains():
    request = parse_event(
        sample("asg-terminate-lifecycle-action-warmpool-origin-dest.json"), TEST_SOURCE, NOW
    )
    assert request.kind == LIFECYCLE
    assert (request.origin, request.destination, request.reason) == (
        "AutoScalingGroup",
        "WarmPool",
        "warm-pool",
    )
    assert request.event_time == "2022-03-28T00:12:37Z"


def test_launch_event_is_refused_naming_the_field():
    with pytest.raises(EventError) as raised:
        parse_event(sample("asg-launch-lifecycle-action.json"), TEST_SOURCE, NOW)
    assert raised.value.field == "detail-type"


def test_spot_warning_has_a_two_minute_deadline():
    event = sample("ec2-spot-interruption-warning.json")
    event["time"] = "2026-01-05T08:59:00Z"
    request = parse_event(event, TEST_SOURCE, NOW)
    assert request.kind == SPOT
    assert request.deadline == "2026-01-05T09:01:00Z"


def test_rebalance_recommendation():
    request = parse_event(sample("ec2-rebalance-recommendation.json"), TEST_SOURCE, NOW)
    assert (request.kind, request.instance_id) == (REBALANCE, "i-1234567890abcdef0")


def test_test_source_is_accepted_and_other_sources_refused():
    event = sample("ec2-rebalance-recommendation.json")
    event["source"] = TEST_SOURCE
    assert parse_event(event, TEST_SOURCE, NOW).kind == REBALANCE
    with pytest.raises(EventError) as raised:
        parse_event(event, None, NOW)  # test events switched off
    assert raised.value.field == "source"


def test_future_event_time_cannot_extend_a_deadline():
    event = sample("ec2-spot-interruption-warning.json")
    event["time"] = "2030-01-01T00:00:00Z"
    assert parse_event(event, TEST_SOURCE, NOW).deadline == "2026-01-05T09:02:00Z"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda e: e["detail"].pop("LifecycleActionToken"), "detail.LifecycleActionToken"),
        (lambda e: e["detail"].update(EC2InstanceId="i-; rm -rf /"), "detail.EC2InstanceId"),
        (lambda e: e["detail"].update(AutoScalingGroupName=42), "detail.AutoScalingGroupName"),
        (lambda e: e["detail"].update(LifecycleHookName="x" * 5000), "detail.LifecycleHookName"),
        (
            lambda e: e["detail"].update(LifecycleTransition="autoscaling:EC2_INSTANCE_LAUNCHING"),
            "detail.LifecycleTransition",
        ),
        (lambda e: e.update(detail="not an object"), "detail"),
        (lambda e: e.update(source="evil.source"), "source"),
    ],
)
def test_malformed_lifecycle_events_name_the_field(mutate, field):
    event = copy.deepcopy(sample("asg-terminate-lifecycle-action.json"))
    mutate(event)
    with pytest.raises(EventError) as raised:
        parse_event(event, TEST_SOURCE, NOW)
    assert raised.value.field == field
    assert field in str(raised.value)


def test_salvage_keeps_what_identifies_the_action():
    event = sample("asg-terminate-lifecycle-action.json")
    event["detail"]["LifecycleTransition"] = 7
    request = salvage(event, "bad transition", NOW)
    assert request.kind == INVALID
    assert request.has_lifecycle_action
    assert request.instance_id == "i-1234567890abcdef0"


def test_salvage_drops_hostile_ids():
    request = salvage(
        {"detail": {"EC2InstanceId": "i-$(reboot)", "LifecycleActionToken": "x"}}, "bad", NOW
    )
    assert request.instance_id is None
    assert request.lifecycle_action_token is None
    assert not request.has_lifecycle_action
