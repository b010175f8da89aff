"""A dry run must not count as a real drain: metrics, SNS and the outcome text say it was one.

A trial week in dry run would otherwise show 100 % `drained` in the very metrics a real drain
counts in. Real drains through the real state machine (sandbox/harness.py), output captured.
"""

from __future__ import annotations

import json
from typing import Any

import boto3

from drainer.clock import utcnow
from drainer.parsers import parse_or_salvage
from drainer.reporting import report
from drainer.settings import settings
from sandbox.harness import REGION, Harness
from tests.executions import log_lines
from tests.worlds import CLUSTER, GROUP, drain_world, with_settings


def _attribute_queue(topic_arn: str) -> str:
    """An SQS queue subscribed to the outcome topic that keeps SNS message attributes."""
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="outcome-attributes")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    boto3.client("sns", region_name=REGION).subscribe(
        TopicArn=topic_arn, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"}
    )
    return url


def _published(url: str) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """(message, attributes) of every outcome published so far."""
    sqs = boto3.client("sqs", region_name=REGION)
    batch = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    ).get("Messages", [])
    return [
        (
            json.loads(message["Body"]),
            {name: value["StringValue"] for name, value in message["MessageAttributes"].items()},
        )
        for message in batch
    ]


def _drain(config, capsys) -> tuple[dict[str, Any], dict[str, str], list[dict[str, Any]]]:
    """One lifecycle drain, every outcome notified: its SNS message, the message's attributes,
    its outcome's metric line."""
    config = with_settings(config, notify_outcomes=["all"])
    world, (victim,) = drain_world(config)
    with Harness(world, config) as harness:
        url = _attribute_queue(harness.topic_arn)
        world.asg.scale_in(GROUP, victim)
        harness.run()
        ((message, attributes),) = _published(url)
    metrics = [line for line in log_lines(capsys.readouterr().out) if "Drains" in line]
    return message, attributes, metrics


def _dimension_sets(metric_line: dict[str, Any]) -> list[list[str]]:
    return [
        dimensions
        for directive in metric_line["_aws"]["CloudWatchMetrics"]
        for dimensions in directive["Dimensions"]
    ]


def test_a_dry_run_is_marked_in_metrics_sns_and_outcome_text(config, capsys):
    message, attributes, (metric,) = _drain(with_settings(config, dry_run=True), capsys)

    assert message["outcome"] == "drained"
    assert message["dryRun"] is True
    assert message["meaning"].startswith("DRY RUN")
    assert (attributes["outcome"], attributes["dryRun"]) == ("drained", "true")
    # Every metric a dry run counts in carries DryRun: none is one a real drain counts in.
    assert all("DryRun" in dimensions for dimensions in _dimension_sets(metric))
    assert metric["DryRun"] == "true"


def test_a_real_drain_keeps_its_metrics(config, capsys):
    message, attributes, (metric,) = _drain(config, capsys)

    assert (message["outcome"], message["dryRun"]) == ("drained", False)
    assert "DRY RUN" not in message["meaning"]
    assert attributes == {
        "outcome": "drained",
        "kind": "lifecycle",
        "cluster": CLUSTER,
        "autoScalingGroup": GROUP,
        "dryRun": "false",
    }
    # Dashboards and alarms on Drains by Outcome count real drains only; per cluster and group,
    # the counts worth comparing (each combination is a billed custom metric).
    assert _dimension_sets(metric) == [
        ["Outcome"],
        ["Kind", "Outcome"],
        ["Cluster"],
        ["AutoScalingGroup"],
    ]
    assert (metric["Cluster"], metric["AutoScalingGroup"]) == (CLUSTER, GROUP)
    assert (metric["Heartbeats"], metric["ThrottledPolls"]) == (0, 0)
    assert metric["OtherTerminateHooks"] == 0  # the group has only our terminate hook
    assert "DryRun" not in metric


def test_a_rescued_dry_run_is_still_a_dry_run(config, capsys):
    """The rescue function rebuilds the request from the raw event, which knows no mode."""
    world, (victim,) = drain_world(config)
    dry = with_settings(config, dry_run=True, notify_outcomes=["all"])
    with Harness(world, dry) as harness:
        url = _attribute_queue(harness.topic_arn)
        action = world.asg.scale_in(GROUP, victim)
        request = parse_or_salvage(action.event, dry.test_event_source)
        state = {"request": request.to_state(), "error": {"Error": "ExecutionAborted"}}
        summary = report(state, "arn:aws:states:::execution:x", settings(), utcnow())
        ((_, attributes),) = _published(url)
    (metric,) = [line for line in log_lines(capsys.readouterr().out) if "Drains" in line]
    assert (summary["outcome"], summary["dryRun"]) == ("failed", True)
    assert attributes["dryRun"] == "true"
    assert metric["DryRun"] == "true"
