"""Event-woken drains: what ends the wait between two polls (drain_end_detection = "events").

One item per draining container instance in the claims table, `watch#<containerInstanceArn>`
(task events name the container instance, not the EC2 instance):

- `open_watch` (start_drain) creates it before the first snapshot, so that every task stop
  after that snapshot is recorded;
- `arm` (the await function, invoked by the state machine's callback Task with its task token)
  stores the token and the ARNs the last poll found alive;
- `record_stop` (the wake function, one call per "ECS Task State Change" STOPPED event) adds
  the task to `stopped`;
- `record_draining` (the wake function, for "ECS Container Instance State Change" events with
  status DRAINING) keeps the earliest `updatedAt` of those: the moment ECS set DRAINING, by
  ECS's own clock, which tells the first snapshot which stopping tasks ECS counted then
  (drainer/tasks.py `snapshot`, `listed_all`);
- `close_watch` (the report) deletes it; its TTL backs that up.

Each of `arm` and `record_stop` is ONE UpdateItem returning the item as written. DynamoDB
applies the writes to one item one after the other, so whichever of the two comes second sees
both the token and the stop, and sends SendTaskSuccess when every task alive at the last poll
has stopped: a stop between the snapshot and the arming is not missed. `stopped` only grows
(a set), so duplicated and reordered events change nothing. A wake-up is a hint: the poll after
it asks ECS before anything completes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from drainer import log
from drainer.aws import call, error_code
from drainer.clock import iso, parse_iso
from drainer.schedule import KEEP_AFTER_DEADLINE_SECONDS

PREFIX = "watch#"
# The ECS events the wake function records (their patterns: stacks/event_patterns.py).
# ECS developer guide, https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_cwe_events.html
TASK_STATE_CHANGE = "ECS Task State Change"
INSTANCE_STATE_CHANGE = "ECS Container Instance State Change"
# SendTaskSuccess refusals that mean the execution has moved on (its wait timed out, the token
# is stale, the execution ended): the wake-up is no longer wanted (Step Functions API
# reference, SendTaskSuccess, Errors).
MOVED_ON = frozenset({"TaskTimedOut", "InvalidToken", "TaskDoesNotExist"})
# What `record_stop` did with one event.
NOT_WATCHED, RECORDED, WOKE = "not-watched", "recorded", "woke"
TASK_STOPPED, ALREADY_STOPPED = "task-stopped", "stopped-before-arming"  # wokenBy values


def watch_key(container_instance_arn: str) -> str:
    return PREFIX + container_instance_arn


def expires_at(deadline: str | None, now: datetime) -> int:
    """The watch's TTL: a day past the drain's ceiling (or past now, without one)."""
    horizon = parse_iso(deadline) if deadline else now
    return int(horizon.timestamp()) + KEEP_AFTER_DEADLINE_SECONDS


def open_watch(
    table: str,
    container_instance_arn: str,
    *,
    execution_arn: str,
    instance_id: str | None,
    cluster: str,
    expires_at: int,
    opened_at: datetime,
) -> None:
    """Start recording the instance's task stops (replaces a watch left by an earlier drain).
    `opened_at`, before DRAINING is set: a DRAINING event from before it belongs to an earlier
    drain of the instance and is not recorded."""
    call(
        "dynamodb",
        "put_item",
        TableName=table,
        Item={
            "pk": {"S": watch_key(container_instance_arn)},
            "executionArn": {"S": execution_arn},
            "instanceId": {"S": instance_id or ""},
            "cluster": {"S": cluster},
            "expiresAt": {"N": str(expires_at)},
            "openedAt": {"N": repr(opened_at.timestamp())},
        },
    )


def arm(
    table: str,
    container_instance_arn: str,
    *,
    execution_arn: str,
    token: str,
    alive: Iterable[str],
    expires_at: int,
    now: datetime,
) -> bool:
    """Store the callback's token and the tasks alive at the last poll; if they have all
    stopped already, send the success at once. True when it did. A watch another execution
    holds is left alone: the callback then ends at its timeout, as a timer wait would."""
    alive = sorted(set(alive))
    values: dict[str, Any] = {
        ":token": {"S": token},
        ":execution": {"S": execution_arn},
        ":expires": {"N": str(expires_at)},
    }
    # A watch that was never opened (its drain started before events mode) is created here.
    update = (
        "SET #token = :token, executionArn = if_not_exists(executionArn, :execution),"
        " expiresAt = if_not_exists(expiresAt, :expires)"
    )
    if alive:
        update += ", alive = :alive"
        values[":alive"] = {"SS": alive}
    else:
        update += " REMOVE alive"
    item = _update(
        table,
        container_instance_arn,
        update,
        values,
        condition="attribute_not_exists(pk) OR executionArn = :execution",
        ExpressionAttributeNames={"#token": "token"},
    )
    if item is None:
        log.warning("watch held by another execution; waiting for the timeout")
        return False
    if not _all_stopped(item):
        return False
    # The poll before this arming found these tasks alive although their stops were recorded
    # (an event ahead of what DescribeTasks shows): wake once, not again for the same tasks, or
    # arm → wake → poll → arm would spin without a pause. The fallback poll settles it.
    awaited = hashlib.sha256("\n".join(alive).encode()).hexdigest()
    if item.get("wokeAtArmingFor", {}).get("S") == awaited:
        log.warning("stops recorded but the poll found the tasks alive; waiting for the fallback")
        return False
    _update(
        table,
        container_instance_arn,
        "SET wokeAtArmingFor = :awaited",
        {":awaited": {"S": awaited}},
    )
    return _wake(token, {"wokenBy": ALREADY_STOPPED, "at": iso(now)})


def record_stop(
    table: str,
    container_instance_arn: str,
    task_arn: str,
    now: datetime,
    stopped_at: str | None = None,
) -> str:
    """Record one STOPPED event (`stopped_at`: the event's, for the wake-up's output).
    NOT_WATCHED: the instance is not draining (one DynamoDB call, nothing else); WOKE: it was
    the last task the armed wait waited for."""
    item = _update(
        table,
        container_instance_arn,
        "ADD stopped :task",
        {":task": {"SS": [task_arn]}},
        condition="attribute_exists(pk)",
    )
    if item is None:
        return NOT_WATCHED
    # The drain's own ids on these lines, as on every line of its execution.
    ids = {key: item.get(key, {}).get("S") or None for key in ("instanceId", "executionArn")}
    with log.bound(**ids):
        log.info("task stop recorded", taskArn=task_arn)
        token = item.get("token", {}).get("S")
        if not token or not _all_stopped(item):
            return RECORDED
        output = {"wokenBy": TASK_STOPPED, "taskArn": task_arn, "at": iso(now)}
        if stopped_at:
            output["taskStoppedAt"] = stopped_at
        woke = _wake(token, output)
    return WOKE if woke else RECORDED


def record_draining(table: str, container_instance_arn: str, updated_at: datetime) -> str:
    """Record one container instance event with status DRAINING: keep the earliest `updatedAt`.

    Every such event describes the instance after ECS set it DRAINING, so the earliest is never
    before that moment, and is that moment once the status change's own event has come (events
    can come late, twice or out of order: the minimum settles them). NOT_WATCHED: the instance
    has no watch, the event is older than it, or an earlier one is already recorded."""
    at = updated_at.timestamp()
    written = _update(
        table,
        container_instance_arn,
        "SET drainingSince = :at",
        {":at": {"N": repr(at)}},
        condition="openedAt <= :at AND "
        "(attribute_not_exists(drainingSince) OR drainingSince > :at)",
    )
    return NOT_WATCHED if written is None else RECORDED


def draining_since(table: str, container_instance_arn: str) -> datetime | None:
    """When ECS set the instance DRAINING, as its events said (None: no event recorded yet)."""
    item = call(
        "dynamodb",
        "get_item",
        TableName=table,
        Key={"pk": {"S": watch_key(container_instance_arn)}},
        ProjectionExpression="drainingSince",
        ConsistentRead=True,
    ).get("Item", {})
    since = item.get("drainingSince", {}).get("N")
    return datetime.fromtimestamp(float(since), UTC) if since else None


def close_watch(table: str, container_instance_arn: str, execution_arn: str | None) -> None:
    """Stop recording: the drain has ended. Only this execution's watch (a later drain of the
    same container instance may have opened its own)."""
    key: dict[str, Any] = {"pk": {"S": watch_key(container_instance_arn)}}
    try:
        call(
            "dynamodb",
            "delete_item",
            TableName=table,
            Key=key,
            ConditionExpression="attribute_not_exists(pk) OR executionArn = :execution",
            ExpressionAttributeValues={":execution": {"S": execution_arn or ""}},
        )
    except ClientError as error:
        if error_code(error) != "ConditionalCheckFailedException":
            raise


def _update(
    table: str,
    container_instance_arn: str,
    update: str,
    values: dict[str, Any],
    condition: str | None = None,
    **extra: Any,
) -> dict[str, Any] | None:
    """One UpdateItem of the watch item, returning the item as written; None when `condition`
    failed."""
    params: dict[str, Any] = {"ConditionExpression": condition} if condition else {}
    try:
        answer = call(
            "dynamodb",
            "update_item",
            TableName=table,
            Key={"pk": {"S": watch_key(container_instance_arn)}},
            UpdateExpression=update,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
            **params,
            **extra,
        )
    except ClientError as error:
        if error_code(error) != "ConditionalCheckFailedException":
            raise
        return None
    return answer.get("Attributes", {})


def _all_stopped(item: dict[str, Any]) -> bool:
    alive = set(item.get("alive", {}).get("SS", []))
    return alive <= set(item.get("stopped", {}).get("SS", []))


def _wake(token: str, output: dict[str, Any]) -> bool:
    try:
        call("stepfunctions", "send_task_success", taskToken=token, output=json.dumps(output))
    except ClientError as error:
        if error_code(error) not in MOVED_ON:
            raise
        log.info("wake-up not needed: the execution moved on", error=error_code(error))
        return False
    log.info("drain woken", **output)
    return True
