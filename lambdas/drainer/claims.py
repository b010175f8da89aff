"""One drain per event, whatever EventBridge delivers twice.

A conditional write in DynamoDB claims the drain: the key names the instance and what is being
done to it; a second execution for the same key finds the claim and ends as a duplicate.
EventBridge delivers at least once, and classic rule targets cannot name executions, so
StartExecution's idempotency by name cannot do this job.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from drainer import log
from drainer.aws import call, error_code
from drainer.clock import parse_iso
from drainer.request import LIFECYCLE, DrainRequest
from drainer.schedule import KEEP_AFTER_DEADLINE_SECONDS

if TYPE_CHECKING:  # type hints only: no cold start compiles these
    from drainer.state import Claim


def claim_key(request: DrainRequest) -> str:
    if request.kind == LIFECYCLE:
        return f"{request.kind}#{request.instance_id}#{request.lifecycle_hook_name}"
    return f"{request.kind}#{request.instance_id}"


def claim(table: str, request: DrainRequest, execution_arn: str, now: datetime) -> Claim:
    """Claim the drain. A claim may be taken over once it expired, or once it is done and the
    new event is a different lifecycle action (a warm-pool instance that comes back later)."""
    key = claim_key(request)
    token = request.lifecycle_action_token or request.event_id or ""
    horizon = parse_iso(request.deadline or request.event_time)
    expires = int(horizon.timestamp()) + KEEP_AFTER_DEADLINE_SECONDS
    try:
        call(
            "dynamodb",
            "put_item",
            TableName=table,
            Item={
                "pk": {"S": key},
                "owner": {"S": execution_arn},
                "token": {"S": token},
                "state": {"S": "active"},
                "expiresAt": {"N": str(expires)},
            },
            ConditionExpression=(
                "attribute_not_exists(pk) OR expiresAt < :now OR #owner = :owner"
                " OR (#state = :done AND #token <> :token)"
            ),
            ExpressionAttributeNames={"#owner": "owner", "#state": "state", "#token": "token"},
            ExpressionAttributeValues={
                ":now": {"N": str(int(now.timestamp()))},
                ":owner": {"S": execution_arn},
                ":done": {"S": "done"},
                ":token": {"S": token},
            },
        )
    except ClientError as error:
        if error_code(error) != "ConditionalCheckFailedException":
            raise
        held = call(
            "dynamodb", "get_item", TableName=table, Key={"pk": {"S": key}}, ConsistentRead=True
        ).get("Item", {})
        owner = held.get("owner", {}).get("S")
        log.info("duplicate drain request", claim=key, owner=owner, instanceId=request.instance_id)
        return {"duplicate": True, "key": key, "owner": owner}
    return {"duplicate": False, "key": key, "owner": execution_arn}


def owner_elsewhere(table: str, request: DrainRequest, execution_arn: str | None) -> str | None:
    """The execution that holds this request's drain, if it is active and not `execution_arn`.

    A rescue asks this before it completes a lifecycle action: a failed duplicate must leave
    the action to the execution that is draining (completing would cut its tasks short); that
    execution completes it, or its own rescue does. Any doubt (no claim, the table
    unreachable) answers None, so the rescue completes: an open action is the worse failure.
    """
    try:
        held = call(
            "dynamodb",
            "get_item",
            TableName=table,
            Key={"pk": {"S": claim_key(request)}},
            ConsistentRead=True,
        ).get("Item", {})
    except Exception as error:  # the rescue must go on whatever the lookup did
        log.error("claim lookup failed; completing anyway", error=str(error))
        return None
    owner = held.get("owner", {}).get("S")
    active = held.get("state", {}).get("S") == "active"
    return owner if active and owner and owner != execution_arn else None


def release(table: str, key: str, execution_arn: str, outcome: str) -> None:
    """Mark the claim done (kept until it expires, so late duplicates still find it)."""
    try:
        call(
            "dynamodb",
            "update_item",
            TableName=table,
            Key={"pk": {"S": key}},
            UpdateExpression="SET #state = :done, outcome = :outcome",
            ConditionExpression="#owner = :owner",
            ExpressionAttributeNames={"#state": "state", "#owner": "owner"},
            ExpressionAttributeValues={
                ":done": {"S": "done"},
                ":outcome": {"S": outcome},
                ":owner": {"S": execution_arn},
            },
        )
    except ClientError as error:
        if error_code(error) != "ConditionalCheckFailedException":
            raise
