"""Spot `stop` and `hibernate`: an instance the drainer drained comes back, and must take tasks.

An interruption with action `stop` or `hibernate` keeps the instance: EC2 starts it again when
capacity returns (persistent Spot requests, `maintain` fleets; EC2 User Guide, "Behavior of Spot
Instance interruptions", https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/interruption-behavior.html).
Its ECS agent then reconnects the same container instance, whose status is still the DRAINING
the Spot drain set: it would take no task again, ever. So the Spot drain notes the instance as
*parked* in the claims table, and when ECS reports that container instance connected and still
DRAINING after the interruption ("ECS Container Instance State Change"), `reactivate` sets it
ACTIVE and drops the note. Auto Scaling instances never come back this way: groups use one-time
Spot requests, which are terminated on interruption (stop and hibernate need persistent ones).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from drainer import log
from drainer.aws import call, error_code
from drainer.clock import iso, parse_iso
from drainer.request import DrainRequest

PARK_ACTIONS = frozenset({"stop", "hibernate"})
# How long a parked instance is waited for. A persistent Spot request lives until its
# ValidUntil, 7 days by default (EC2 API reference, SpotMarketOptions); 30 days covers four
# times that. An instance back later stays DRAINING: set it ACTIVE by hand (docs/RUNBOOK.md).
KEEP_PARKED_SECONDS = 30 * 86_400
# ECS events while the drain runs, and while the instance shuts down, are DRAINING too and may
# say the agent is connected; only one whose time is this long after the interruption is the
# instance coming back. Restarting takes longer than this (the capacity was just reclaimed);
# if it did not, the agent's next reconnect (several an hour, ECS developer guide, "Amazon ECS
# container instance state change events") brings another event.
RETURN_MARGIN_SECONDS = 300


def park_key(instance_id: str) -> str:
    return f"parked#{instance_id}"


def should_park(request: DrainRequest, drain: Mapping[str, Any] | None) -> bool:
    """A stop/hibernate interruption, and this drain itself set the instance DRAINING (an
    instance someone else drained is left as they wanted it)."""
    return request.spot_action in PARK_ACTIONS and bool((drain or {}).get("changed"))


def park(
    table: str, request: DrainRequest, target: Mapping[str, Any], execution_arn: str
) -> dict[str, Any]:
    """Note the instance as parked by this drain (a repeat overwrites it with the same facts)."""
    interruption = parse_iso(request.deadline or request.event_time)
    until = interruption + timedelta(seconds=KEEP_PARKED_SECONDS)
    key = park_key(str(request.instance_id))
    call(
        "dynamodb",
        "put_item",
        TableName=table,
        Item={
            "pk": {"S": key},
            "instanceId": {"S": str(request.instance_id)},
            "cluster": {"S": target["cluster"]},
            "containerInstanceArn": {"S": target["containerInstanceArn"]},
            "interruptionAt": {"S": iso(interruption)},
            "spotAction": {"S": str(request.spot_action)},
            "owner": {"S": execution_arn},
            "expiresAt": {"N": str(int(until.timestamp()))},
        },
    )
    log.info(
        "parked: set ACTIVE again when it comes back",
        instanceId=request.instance_id,
        spotAction=request.spot_action,
        until=iso(until),
    )
    return {"key": key, "interruptionAt": iso(interruption), "until": iso(until)}


def reactivate(table: str, event: Mapping[str, Any], dry_run: bool, now: datetime) -> dict:
    """An "ECS Container Instance State Change": set a parked instance ACTIVE once it is back.

    Everything that is not a parked instance coming back costs one GetItem and changes nothing.
    """
    detail = event.get("detail") or {}
    instance_id = detail.get("ec2InstanceId")
    if not isinstance(instance_id, str):
        return _left("no ec2InstanceId in the event")
    held = call(
        "dynamodb",
        "get_item",
        TableName=table,
        Key={"pk": {"S": park_key(instance_id)}},
        ConsistentRead=True,
    ).get("Item")
    if not held:
        return _left("not parked by the drainer")
    parked = {name: value.get("S") or value.get("N") for name, value in held.items()}
    if int(parked["expiresAt"]) < now.timestamp():  # TTL deletion lags up to days
        return _left("park note expired", instanceId=instance_id)
    if detail.get("containerInstanceArn") != parked["containerInstanceArn"]:
        return _left("another container instance", instanceId=instance_id)
    if detail.get("status") != "DRAINING" or detail.get("agentConnected") is not True:
        return _left("not connected and DRAINING", instanceId=instance_id)
    seen = parse_iso(event["time"]) if isinstance(event.get("time"), str) else now
    back_after = parse_iso(parked["interruptionAt"]) + timedelta(seconds=RETURN_MARGIN_SECONDS)
    if seen < back_after:
        return _left("an event of the drain itself, not the return", instanceId=instance_id)
    target = {"cluster": parked["cluster"], "containerInstanceArn": parked["containerInstanceArn"]}
    if dry_run:
        log.info("DRY RUN: would set ACTIVE", instanceId=instance_id, **target)
        return {"reactivated": False, "dryRun": True, "instanceId": instance_id, **target}
    answer = call(
        "ecs",
        "update_container_instances_state",
        cluster=target["cluster"],
        containerInstances=[target["containerInstanceArn"]],
        status="ACTIVE",
    )
    failures = answer.get("failures", [])
    if failures:  # MISSING: deregistered meanwhile; nothing left to set ACTIVE
        log.warning("ECS refused ACTIVE", reason=failures[0].get("reason"), **target)
    else:
        log.info("back from a Spot interruption: set ACTIVE", instanceId=instance_id, **target)
    _unpark(table, instance_id, parked["interruptionAt"])
    return {
        "reactivated": not failures,
        "instanceId": instance_id,
        **target,
        **({"failure": failures[0].get("reason")} if failures else {}),
    }


def _unpark(table: str, instance_id: str, interruption_at: str) -> None:
    """Drop the note, unless a newer interruption has parked the instance again meanwhile."""
    try:
        call(
            "dynamodb",
            "delete_item",
            TableName=table,
            Key={"pk": {"S": park_key(instance_id)}},
            ConditionExpression="interruptionAt = :at",
            ExpressionAttributeValues={":at": {"S": interruption_at}},
        )
    except ClientError as error:
        if error_code(error) != "ConditionalCheckFailedException":
            raise


def _left(reason: str, **fields: Any) -> dict[str, Any]:
    if fields:  # a parked instance's event: worth a line; the rest is noise
        log.info(f"left as it is: {reason}", **fields)
    return {"reactivated": False, "reason": reason}
