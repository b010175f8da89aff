"""What a drain tells the world: which outcomes reach the topic, the SNS message's subject and
attributes, and the drainer's own EventBridge events.

Pure functions: the configuration (stacks/config.py) validates `notify_outcomes` against the same
vocabulary the Lambdas filter with, and reporting.py does the publishing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from drainer.outcome import FAILED, OUTCOMES

# The drainer's own events on the default bus: a source no AWS service uses (PutEvents refuses
# `aws.*`) and detail-types no rule of the drainer matches (stacks/event_patterns.py).
EVENT_SOURCE = "ecs-drainer"
DRAIN_STARTED = "ECS Drain Started"
DRAIN_FINISHED = "ECS Drain Finished"

# notify_outcomes values beyond the outcome names themselves.
ALL_OUTCOMES = "all"  # every outcome, not-ours and rebalance-ignored included
TASKS_CUT_SHORT = "tasks-cut-short"  # any outcome whose drain cut tasks short (spot-interrupted…)
STARTED = "drain-started"  # a notice when a drain sets its instance DRAINING
NOTIFY_CHOICES: tuple[str, ...] = (*OUTCOMES, TASKS_CUT_SHORT, ALL_OUTCOMES, STARTED)
DEFAULT_NOTIFY: tuple[str, ...] = (FAILED, "ceiling", TASKS_CUT_SHORT)

# SNS Publish: "Subjects must be ASCII text that begins with a letter, number, or punctuation
# mark; must not include line breaks or control characters; and must be less than 100
# characters long" (https://docs.aws.amazon.com/sns/latest/api/API_Publish.html).
SUBJECT_LIMIT = 99
NOT_PRINTABLE_ASCII = re.compile(r"[^\x20-\x7e]")


def notify_problems(values: Iterable[str]) -> list[str]:
    """What is wrong with a notify_outcomes list (empty when nothing is)."""
    values = list(values)
    problems = [
        f"{value!r} is neither an outcome nor one of {TASKS_CUT_SHORT!r}, {ALL_OUTCOMES!r}, "
        f"{STARTED!r}"
        for value in values
        if value not in NOTIFY_CHOICES
    ]
    repeated = sorted({value for value in values if values.count(value) > 1})
    problems += [f"{value!r} is given twice: remove the second" for value in repeated]
    if ALL_OUTCOMES in values:
        implied = [value for value in values if value not in (ALL_OUTCOMES, STARTED)]
        problems += [
            f"{value!r} is already among {ALL_OUTCOMES!r} (every outcome): remove it"
            for value in implied
            if value in NOTIFY_CHOICES
        ]
    return problems


def notifies(summary: Mapping[str, Any], notify: Iterable[str]) -> bool:
    """Does this outcome reach the topic under `notify` (the notify_outcomes setting)?"""
    notify = set(notify)
    return (
        ALL_OUTCOMES in notify
        or summary.get("outcome") in notify
        or (TASKS_CUT_SHORT in notify and (summary.get("tasksCutShort") or 0) > 0)
    )


def subject(summary: Mapping[str, Any], started: bool = False) -> str:
    """`ECS drain <outcome>: <instance> (<cluster>)`, as SNS accepts it."""
    instance = summary.get("instanceId") or "unknown instance"
    what = "started" if started else summary.get("outcome")
    dry_run = " (dry run)" if summary.get("dryRun") else ""
    text = f"ECS drain {what}{dry_run}: {instance}"
    if summary.get("cluster"):
        text += f" ({summary['cluster']})"
    return NOT_PRINTABLE_ASCII.sub("?", text)[:SUBJECT_LIMIT]


def attributes(summary: Mapping[str, Any], started: bool = False) -> dict[str, dict[str, str]]:
    """SNS message attributes for subscription filter policies. A subscription filter policy
    matches only attributes that are present, so every one is always sent ("none" when the
    drain does not know it): `{"cluster": ["none"]}` then finds the drains of no cluster."""
    values = {
        "outcome": STARTED if started else summary.get("outcome"),
        "kind": summary.get("kind"),
        "cluster": summary.get("cluster"),
        "autoScalingGroup": summary.get("autoScalingGroupName"),
        "dryRun": str(bool(summary.get("dryRun"))).lower(),
    }
    return {
        name: {"DataType": "String", "StringValue": str(value) if value else "none"}
        for name, value in values.items()
    }


def event_entry(summary: Mapping[str, Any], started: bool = False) -> dict[str, Any]:
    """One PutEvents entry on the default bus: the SNS message's fields as the detail."""
    execution = summary.get("executionArn")
    return {
        "Source": EVENT_SOURCE,
        "DetailType": DRAIN_STARTED if started else DRAIN_FINISHED,
        "Detail": json.dumps(summary, default=str, separators=(",", ":")),
        "Resources": [execution] if execution else [],
    }
