"""Hear what matters: which outcomes reach the topic (notify_outcomes), what a message carries
for subscription filter policies, and the drainer's own events on the default bus, which teams
route with their own rules and which never start a drain themselves.

Drains run on the real state machine and handlers (sandbox/harness.py), each handler as its role
from the synthesized stack.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from moto.events.models import EventPattern

from drainer import notices
from sandbox.deployed_roles import deployed_authorizer
from sandbox.endpoint import ACCOUNT
from sandbox.harness import REGION, Harness
from simulated_aws.iam.calls import touches
from simulated_aws.iam.evaluation import Decision
from stacks.config import ConfigError, DrainerConfig
from stacks.event_patterns import (
    event_patterns,
    execution_failure_pattern,
    instance_return_pattern,
)
from tests.worlds import CLUSTER, GROUP, drain_world, with_settings

SUMMARY = {
    "outcome": "drained",
    "instanceId": "i-0123456789abcdef0",
    "kind": "lifecycle",
    "cluster": CLUSTER,
    "autoScalingGroupName": GROUP,
    "tasksCutShort": 0,
    "dryRun": False,
    "executionArn": "arn:aws:states:us-east-1:123456789012:execution:ecs-drainer:x",
}


# --- which outcomes reach the topic -----------------------------------------------------------
@pytest.mark.parametrize(
    ("outcome", "cut_short", "notify", "expected"),
    [
        ("failed", 0, notices.DEFAULT_NOTIFY, True),
        ("ceiling", 0, notices.DEFAULT_NOTIFY, True),
        ("spot-interrupted", 2, notices.DEFAULT_NOTIFY, True),  # tasks cut short
        ("ceiling", 3, notices.DEFAULT_NOTIFY, True),
        ("drained", 0, notices.DEFAULT_NOTIFY, False),
        ("spot-drained", 0, notices.DEFAULT_NOTIFY, False),
        ("not-ours", 0, notices.DEFAULT_NOTIFY, False),
        ("rebalance-ignored", 0, notices.DEFAULT_NOTIFY, False),
        ("not-ours", 0, ["all"], True),
        ("drained", 0, ["drained"], True),
        ("failed", 0, [], False),
        ("spot-interrupted", 2, ["failed"], False),
    ],
)
def test_notify_outcomes_decides_what_reaches_the_topic(outcome, cut_short, notify, expected):
    summary = {**SUMMARY, "outcome": outcome, "tasksCutShort": cut_short}
    assert notices.notifies(summary, notify) is expected


def test_the_default_is_failures_ceilings_and_tasks_cut_short(config: DrainerConfig):
    assert config.notify_outcomes == ["failed", "ceiling", "tasks-cut-short"]
    assert not config.notifies_drain_started


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (["drainned"], "'drainned' is neither an outcome nor one of"),
        (["failed", "failed"], "'failed' is given twice"),
        (["all", "failed"], "'failed' is already among 'all'"),
        ("failed", "valid list"),
    ],
)
def test_a_bad_notify_outcomes_is_refused_with_the_fix(config, value, message):
    with pytest.raises(ConfigError, match="notify_outcomes") as refused:
        with_settings(config, notify_outcomes=value)
    assert message in str(refused.value)


@pytest.mark.parametrize("value", [[], ["all"], ["all", "drain-started"], ["spot-interrupted"]])
def test_accepted_notify_outcomes(config, value):
    assert with_settings(config, notify_outcomes=value).notify_outcomes == value


def test_the_test_source_cannot_be_the_drainers_own_event_source(config):
    with pytest.raises(ConfigError, match="source of the drainer's own drain events"):
        with_settings(config, test_event_source=notices.EVENT_SOURCE)


# --- what a message carries -------------------------------------------------------------------
def test_the_subject_names_instance_and_outcome_as_sns_accepts_it():
    assert notices.subject(SUMMARY) == f"ECS drain drained: i-0123456789abcdef0 ({CLUSTER})"
    dry = notices.subject({**SUMMARY, "dryRun": True}, started=True)
    assert dry == f"ECS drain started (dry run): i-0123456789abcdef0 ({CLUSTER})"
    # A salvaged event's text: SNS takes ASCII without control characters, under 100 chars.
    odd = notices.subject({**SUMMARY, "instanceId": "i-ünïcode\nline" + "x" * 200})
    assert odd.isascii() and odd.isprintable() and len(odd) < 100
    assert odd.startswith("ECS drain drained: i-?n?code?line")
    assert notices.subject({**SUMMARY, "instanceId": None, "cluster": None}) == (
        "ECS drain drained: unknown instance"
    )


def test_every_attribute_is_always_sent_so_filter_policies_can_match_it():
    attributes = notices.attributes({**SUMMARY, "cluster": None, "autoScalingGroupName": None})
    assert {name: value["StringValue"] for name, value in attributes.items()} == {
        "outcome": "drained",
        "kind": "lifecycle",
        "cluster": "none",
        "autoScalingGroup": "none",
        "dryRun": "false",
    }
    assert all(value["DataType"] == "String" for value in attributes.values())
    assert notices.attributes(SUMMARY, started=True)["outcome"]["StringValue"] == "drain-started"


# --- the drainer's own events never start a drain -----------------------------------------------
def _enveloped(entry: dict[str, Any]) -> dict[str, Any]:
    """A PutEvents entry as EventBridge delivers it to rules."""
    return {
        "version": "0",
        "id": "1",
        "detail-type": entry["DetailType"],
        "source": entry["Source"],
        "account": ACCOUNT,
        "time": "2026-01-05T09:00:00Z",
        "region": REGION,
        "resources": entry["Resources"],
        "detail": json.loads(entry["Detail"]),
    }


@pytest.mark.parametrize("test_source", [None, "ecs-drainer.test", "ecs-drainer.other"])
def test_the_drainers_events_match_none_of_its_rules(config, test_source):
    config = with_settings(config, test_event_source=test_source)
    patterns = [
        *event_patterns(config).values(),
        instance_return_pattern(config),
        execution_failure_pattern("arn:aws:states:us-east-1:123456789012:stateMachine:x"),
    ]
    for started in (True, False):
        event = _enveloped(notices.event_entry(SUMMARY, started=started))
        for pattern in patterns:
            assert not EventPattern.load(json.dumps(pattern)).matches_event(event), pattern
        # ...while a team's rule on them does match.
        team_rule = {"source": [notices.EVENT_SOURCE], "detail": {"kind": ["lifecycle"]}}
        assert EventPattern.load(json.dumps(team_rule)).matches_event(event)


def _event_queue() -> str:
    """A queue behind a rule on every event of the drainer's own source, as a team would add."""
    sqs = boto3.client("sqs", region_name=REGION)
    events = boto3.client("events", region_name=REGION)
    url = sqs.create_queue(QueueName="team-drain-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(Name="team", EventPattern=json.dumps({"source": [notices.EVENT_SOURCE]}))
    events.put_targets(Rule="team", Targets=[{"Id": "queue", "Arn": arn}])
    return url


def _events(url: str) -> list[dict[str, Any]]:
    sqs, found = boto3.client("sqs", region_name=REGION), []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        for message in batch:
            found.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return found


def test_a_drain_puts_its_start_and_outcome_on_the_bus_and_is_notified_only_if_it_matters(config):
    world, (victim,) = drain_world(config)
    with Harness(world, config) as harness:
        url = _event_queue()
        world.asg.scale_in(GROUP, victim)
        harness.run()
        started, finished = _events(url)
        notified = harness.notifications()
        (outcome,) = harness.outcomes()
        (delivery,) = harness.deliveries  # the drainer's own events started nothing

    assert (started["detail-type"], finished["detail-type"]) == (
        notices.DRAIN_STARTED,
        notices.DRAIN_FINISHED,
    )
    assert started["source"] == finished["source"] == notices.EVENT_SOURCE
    assert started["resources"] == finished["resources"] == [delivery.execution_arn]
    assert (
        started["detail"].items()
        >= {
            "event": "started",
            "instanceId": victim,
            "kind": "lifecycle",
            "cluster": CLUSTER,
            "autoScalingGroupName": GROUP,
            "dryRun": False,
            "executionArn": delivery.execution_arn,
        }.items()
    )
    assert finished["detail"]["outcome"] == "drained"
    assert finished["detail"] == outcome  # the fields of the SNS message
    assert notified == []  # drained: not among the default notify_outcomes


def test_a_spot_drain_that_cut_tasks_short_is_notified_and_announced_after_draining(config):
    world, (victim,) = drain_world(config)
    world.run_task(CLUSTER, victim, "batch")  # outlives the two minutes
    notify = with_settings(config, notify_outcomes=["tasks-cut-short", "drain-started"])
    with Harness(world, notify) as harness:
        url = _event_queue()
        world.spot_interrupt(victim)
        harness.run()
        world.clock.run_for(180, active=harness.running)
        started, finished = _events(url)
        notices_sent = harness.notifications()
        (delivery,) = harness.deliveries
        states = [
            event["stateEnteredEventDetails"]["name"]
            for event in harness.history(delivery.execution_arn)
            if "stateEnteredEventDetails" in event
        ]

    # Nothing new stands before DRAINING on the two-minute path: "Start draining" sets DRAINING,
    # then claims the drain, then tells of its start, all in the one step.
    assert states[:4] == [
        "Resolve drain request",
        "Route by event kind",
        "Start draining",
        "Check drain progress",
    ]
    assert started["detail"]["kind"] == "spot"
    assert finished["detail"]["outcome"] == "spot-interrupted"
    assert finished["detail"]["tasksCutShort"] >= 1
    assert [notice.get("event") or notice["outcome"] for notice in notices_sent] == [
        "started",
        "spot-interrupted",
    ]


def test_subscribers_filter_on_the_message_attributes(config):
    """An SQS subscription with a filter policy on `cluster` and `outcome` gets only those."""
    world, (victim,) = drain_world(config)
    everything = with_settings(config, notify_outcomes=["all", "drain-started"])
    with Harness(world, everything) as harness:
        sqs, sns = boto3.client("sqs", region_name=REGION), boto3.client("sns", region_name=REGION)
        url = sqs.create_queue(QueueName="filtered")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        policy = {"cluster": [CLUSTER], "outcome": ["drained", "failed"], "dryRun": ["false"]}
        sns.subscribe(
            TopicArn=harness.topic_arn,
            Protocol="sqs",
            Endpoint=arn,
            Attributes={"RawMessageDelivery": "true", "FilterPolicy": json.dumps(policy)},
        )
        world.asg.scale_in(GROUP, victim)
        harness.run()
        everything_sent = harness.notifications()
        filtered = [
            json.loads(message["Body"])
            for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        ]
    assert len(everything_sent) == 2  # the started notice and the outcome
    assert [message["outcome"] for message in filtered] == ["drained"]


# --- IAM: the drainer's own source only ---------------------------------------------------------
def test_put_events_is_allowed_for_the_drainers_source_only(config):
    iam = deployed_authorizer(config)
    for handler in (
        "start_drain.handler",
        "report_outcome.handler",
        "rescue_execution.handler",
    ):
        role = iam.roles[handler]
        for source, decision in (
            (notices.EVENT_SOURCE, Decision.ALLOW),
            ("aws.ec2", Decision.IMPLICIT_DENY),
            ("ecs-drainer.test", Decision.IMPLICIT_DENY),
        ):
            entry = {**notices.event_entry(SUMMARY), "Source": source}
            (touch,) = touches(iam, "events", "PutEvents", {"Entries": [entry]})
            assert iam.decide(role, touch) is decision, (handler, source)
    (touch,) = touches(iam, "events", "PutEvents", {"Entries": [notices.event_entry(SUMMARY)]})
    assert iam.decide(iam.roles["poll_tasks.handler"], touch) is Decision.IMPLICIT_DENY
