"""Publishing a drain's outcome: metrics (embedded metric format), SNS, claim release.

A dry run is marked everywhere it is published, so a trial week cannot read as real drains: its
metrics carry the `DryRun` dimension in every dimension set (real drains keep theirs, so
`Drains` by `Outcome` counts real drains only), its SNS message the `dryRun` attribute, and its
summary says so in `meaning` and the subject.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

from drainer import claims, log
from drainer.aws import call
from drainer.outcome import summarise
from drainer.settings import Settings

DRY_RUN_MEANING = (
    "DRY RUN: nothing was changed in ECS (no DRAINING, no StopTask); the tasks counted are "
    "those a real drain would have moved"
)


def report(
    state: dict[str, Any], execution_arn: str | None, config: Settings, now: datetime
) -> dict[str, Any]:
    summary = summarise(state, execution_arn, now)
    # A request rebuilt from the raw event (the rescue function's) does not know the mode.
    summary["dryRun"] = summary["dryRun"] or config.dry_run
    if summary["dryRun"]:
        summary["meaning"] = f"{DRY_RUN_MEANING}; as a real drain: {summary['meaning']}"
    emit_metrics(summary, config.metrics_namespace)
    dry_run = " (dry run)" if summary["dryRun"] else ""
    instance = summary["instanceId"] or "unknown instance"
    subject = f"ECS drain {summary['outcome']}{dry_run}: {instance}"
    call(
        "sns",
        "publish",
        TopicArn=config.outcome_topic_arn,
        Subject=subject[:100],
        Message=json.dumps(summary, default=str, indent=1),
        MessageAttributes={
            "outcome": {"DataType": "String", "StringValue": summary["outcome"]},
            # Always present, so a subscription filter policy can keep real drains only.
            "dryRun": {"DataType": "String", "StringValue": str(summary["dryRun"]).lower()},
        },
    )
    claim = (state.get("progress") or {}).get("claim") or {}
    if claim.get("key") and not claim.get("duplicate") and execution_arn:
        claims.release(config.claims_table, claim["key"], execution_arn, summary["outcome"])
    level = "ERROR" if summary["outcome"] == "failed" else "INFO"
    log.log(level, "drain finished", **summary)
    return summary


def emit_metrics(summary: dict[str, Any], namespace: str) -> None:
    """CloudWatch embedded metric format: one log line, no PutMetricData call."""
    dimensions = [["Outcome"], ["Kind", "Outcome"]]
    marker: dict[str, str] = {}
    if summary["dryRun"]:
        dimensions = [["DryRun", *names] for names in dimensions]
        marker = {"DryRun": "true"}
    print(
        json.dumps(
            {
                "_aws": {
                    "Timestamp": int(time.time() * 1000),
                    "CloudWatchMetrics": [
                        {
                            "Namespace": namespace,
                            "Dimensions": dimensions,
                            "Metrics": [
                                {"Name": "Drains", "Unit": "Count"},
                                {"Name": "DrainDurationSeconds", "Unit": "Seconds"},
                                {"Name": "TasksCutShort", "Unit": "Count"},
                            ],
                        }
                    ],
                },
                "Outcome": summary["outcome"],
                "Kind": summary["kind"] or "unknown",
                "Drains": 1,
                "DrainDurationSeconds": summary["durationSeconds"],
                "TasksCutShort": summary["tasksCutShort"],
                **marker,
                **log.bound_fields(),
                "instanceId": summary["instanceId"],
                "executionArn": summary["executionArn"],
            },
            separators=(",", ":"),
        )
    )
