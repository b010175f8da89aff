"""Publishing a drain's start and outcome: metrics (embedded metric format), SNS, the drainer's
own EventBridge events, claim release.

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

from drainer import claims, log, notices, watch
from drainer.aws import call
from drainer.clock import iso
from drainer.outcome import summarise
from drainer.request import ROUTE_LIFECYCLE
from drainer.settings import EVENTS, Settings

DRY_RUN_MEANING = (
    "DRY RUN: nothing was changed in ECS (no DRAINING, no StopTask); the tasks counted are "
    "those a real drain would have moved"
)
NO_VALUE = "none"  # a dimension's value where the drain knows none (an instance in no group)

# Each directive: metrics × dimension sets. Every unique combination of a metric and its
# dimension values is a custom metric CloudWatch bills monthly (README, "Cost and quotas"):
# outcome and kind for everything, cluster and group only for the counts worth comparing.
FINISHED_METRICS: tuple[tuple[tuple[str, ...], tuple[tuple[str, ...], ...]], ...] = (
    (("Drains", "DrainDurationSeconds", "TasksCutShort"), (("Outcome",), ("Kind", "Outcome"))),
    (
        ("Drains", "TasksCutShort", "Heartbeats", "ThrottledPolls", "OtherTerminateHooks"),
        (("Cluster",), ("AutoScalingGroup",)),
    ),
)
STARTED_METRICS = ((("DrainsStarted",), (("Kind",), ("Cluster",))),)
UNITS = {"DrainDurationSeconds": "Seconds"}


def report(
    state: dict[str, Any], execution_arn: str | None, config: Settings, now: datetime
) -> dict[str, Any]:
    summary = summarise(state, execution_arn, now)
    summary.setdefault("throttledPolls", (state.get("progress") or {}).get("throttledPolls", 0))
    # A request rebuilt from the raw event (the rescue function's) does not know the mode.
    summary["dryRun"] = summary["dryRun"] or config.dry_run
    if summary["dryRun"]:
        summary["meaning"] = f"{DRY_RUN_MEANING}; as a real drain: {summary['meaning']}"
    emit_metrics(summary, config.metrics_namespace)
    if notices.notifies(summary, config.notify_outcomes):
        publish(config.outcome_topic_arn, summary)
    else:
        log.info("outcome not notified (notify_outcomes)", outcome=summary["outcome"])
    put_event(notices.event_entry(summary))
    claim = (state.get("progress") or {}).get("claim") or {}
    if claim.get("key") and not claim.get("duplicate") and execution_arn:
        claims.release(config.claims_table, claim["key"], execution_arn, summary["outcome"])
    close_watch(state, execution_arn, config)
    level = "ERROR" if summary["outcome"] == "failed" else "INFO"
    log.log(level, "drain finished", **summary)
    return summary


def close_watch(state: dict[str, Any], execution_arn: str | None, config: Settings) -> None:
    """events mode: stop recording the instance's task stops (drainer/watch.py). Best effort:
    the watch's TTL removes it a day after the drain's ceiling anyway."""
    instance = (state.get("target") or {}).get("containerInstanceArn")
    if config.drain_end_detection != EVENTS or not instance or not execution_arn:
        return
    if (state.get("request") or {}).get("route") != ROUTE_LIFECYCLE:
        return
    try:
        watch.close_watch(config.claims_table, instance, execution_arn)
    except Exception as error:  # the outcome is published; the TTL cleans up
        log.warning("watch not closed", error=f"{type(error).__name__}: {error}")


def drain_started(
    state: dict[str, Any], execution_arn: str | None, config: Settings, now: datetime
) -> None:
    """The drain has set its instance DRAINING: a metric, the "ECS Drain Started" event and,
    when notify_outcomes asks for it, an SNS notice. Best effort: a failure here is logged and
    never fails (or repeats) the step that set DRAINING or claimed the drain."""
    request = state.get("request") or {}
    progress = state.get("progress") or {}
    if (progress.get("drain") or {}).get("gone"):
        return  # the instance had left ECS: nothing started (the drain ends as instance-gone)
    summary = {
        "event": "started",
        "instanceId": request.get("instanceId"),
        "kind": request.get("kind"),
        "reason": request.get("reason"),
        "autoScalingGroupName": request.get("autoScalingGroupName"),
        "cluster": (state.get("target") or {}).get("cluster"),
        "startedAt": progress.get("startedAt") or iso(now),
        "dryRun": bool(request.get("dryRun")) or config.dry_run,
        "executionArn": execution_arn,
    }
    _emit(STARTED_METRICS, {"DrainsStarted": 1}, summary, config.metrics_namespace)
    try:
        if notices.STARTED in config.notify_outcomes:
            publish(config.outcome_topic_arn, summary, started=True)
        put_event(notices.event_entry(summary, started=True))
    except Exception as error:  # the drain goes on: the notice is not worth a retry of DRAINING
        log.warning("drain-started notice not sent", error=f"{type(error).__name__}: {error}")
    log.info("drain started", **summary)


def publish(topic_arn: str, summary: dict[str, Any], started: bool = False) -> None:
    """The summary to the topic, with a subject and attributes subscribers can filter on."""
    call(
        "sns",
        "publish",
        TopicArn=topic_arn,
        Subject=notices.subject(summary, started),
        Message=json.dumps(summary, default=str, indent=1),
        MessageAttributes=notices.attributes(summary, started),
    )


def put_event(entry: dict[str, Any]) -> None:
    """One event on the default bus. PutEvents reports a refused entry in its answer, not as an
    error: a refusal is logged (the failures query finds it), a throttled call raised."""
    answer = call("events", "put_events", Entries=[entry])
    if answer.get("FailedEntryCount"):
        failed = (answer.get("Entries") or [{}])[0]
        log.error(
            "drain event refused by EventBridge",
            detailType=entry["DetailType"],
            error=f"{failed.get('ErrorCode')}: {failed.get('ErrorMessage')}",
        )


def emit_metrics(summary: dict[str, Any], namespace: str) -> None:
    """The outcome's metrics: one embedded-metric-format log line, no PutMetricData call."""
    values = {
        "Drains": 1,
        "DrainDurationSeconds": summary["durationSeconds"],
        "TasksCutShort": summary["tasksCutShort"],
        "Heartbeats": summary.get("heartbeats") or 0,
        "ThrottledPolls": summary.get("throttledPolls") or 0,
        # Drains whose instance also waits for another terminate hook (e.g. ECS managed draining).
        "OtherTerminateHooks": len(summary.get("otherTerminateHooks") or []),
    }
    _emit(FINISHED_METRICS, values, summary, namespace, Outcome=summary["outcome"])


def _emit(
    directives: tuple[tuple[tuple[str, ...], tuple[tuple[str, ...], ...]], ...],
    values: dict[str, int],
    summary: dict[str, Any],
    namespace: str,
    **dimensions: str,
) -> None:
    """CloudWatch embedded metric format (https://docs.aws.amazon.com/AmazonCloudWatch/latest/
    monitoring/CloudWatch_Embedded_Metric_Format_Specification.html): the dimensions and the
    values are the line's own keys; each directive names which metrics get which sets."""
    prefix: tuple[str, ...] = ()
    marker: dict[str, str] = {}
    if summary["dryRun"]:
        prefix, marker = ("DryRun",), {"DryRun": "true"}
    print(
        json.dumps(
            {
                "_aws": {
                    "Timestamp": int(time.time() * 1000),
                    "CloudWatchMetrics": [
                        {
                            "Namespace": namespace,
                            "Dimensions": [[*prefix, *names] for names in sets],
                            "Metrics": [
                                {"Name": name, "Unit": UNITS.get(name, "Count")} for name in metrics
                            ],
                        }
                        for metrics, sets in directives
                    ],
                },
                **dimensions,
                "Kind": summary["kind"] or "unknown",
                "Cluster": summary.get("cluster") or NO_VALUE,
                "AutoScalingGroup": summary.get("autoScalingGroupName") or NO_VALUE,
                **values,
                **marker,
                **log.bound_fields(),
                "instanceId": summary["instanceId"],
                "executionArn": summary["executionArn"],
            },
            separators=(",", ":"),
        )
    )
