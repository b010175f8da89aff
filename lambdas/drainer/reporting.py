"""Publishing a drain's outcome: metrics (embedded metric format), SNS, claim release."""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

from drainer import claims, log
from drainer.aws import call
from drainer.outcome import summarise
from drainer.settings import Settings


def report(
    state: dict[str, Any], execution_arn: str | None, config: Settings, now: datetime
) -> dict[str, Any]:
    summary = summarise(state, execution_arn, now)
    emit_metrics(summary, config.metrics_namespace)
    subject = f"ECS drain {summary['outcome']}: {summary['instanceId'] or 'unknown instance'}"
    call(
        "sns",
        "publish",
        TopicArn=config.outcome_topic_arn,
        Subject=subject[:100],
        Message=json.dumps(summary, default=str, indent=1),
        MessageAttributes={"outcome": {"DataType": "String", "StringValue": summary["outcome"]}},
    )
    claim = state.get("claim") or {}
    if claim.get("key") and not claim.get("duplicate") and execution_arn:
        claims.release(config.claims_table, claim["key"], execution_arn, summary["outcome"])
    level = "ERROR" if summary["outcome"] == "failed" else "INFO"
    log.log(level, "drain finished", **summary)
    return summary


def emit_metrics(summary: dict[str, Any], namespace: str) -> None:
    """CloudWatch embedded metric format: one log line, no PutMetricData call."""
    print(
        json.dumps(
            {
                "_aws": {
                    "Timestamp": int(time.time() * 1000),
                    "CloudWatchMetrics": [
                        {
                            "Namespace": namespace,
                            "Dimensions": [["Outcome"], ["Kind", "Outcome"]],
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
                "instanceId": summary["instanceId"],
            },
            separators=(",", ":"),
        )
    )
