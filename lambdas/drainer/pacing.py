"""Lifecycle drains start, and in poll mode poll, at a steady rate, however many instances
leave at once.

An instance refresh or a scale-in of hundreds of instances starts as many executions within
seconds; each one's first ECS calls (find the container instance, set it DRAINING, the first
snapshot) would otherwise meet ECS's token buckets at once and be throttled for minutes. Each
lifecycle drain instead reserves the next free start slot on one pacing item in the claims
table and waits for it ("Wait for a drain start slot") before its first ECS call. Slots are
1/rate apart; the reservation is one atomic UpdateItem (DynamoDB serialises updates of one
item, so no two drains get the same slot). Spot drains never take a slot: DRAINING comes first
in their two minutes.

In poll mode the polls are paced the same way, on a second item (POLL_KEY): every drain in
flight polls each interval, so a thousand of them would otherwise make ~33 calls a second
however slowly they started (lambdas/poll_tasks.py). A poll takes one slot per ECS call it
expects to make, so the item bounds ECS calls, not polls.
"""

from __future__ import annotations

import math
from datetime import datetime

from botocore.exceptions import ClientError

from drainer import log
from drainer.aws import AWS_FAILURES, call, error_code

PACING_KEY = "pacing#lifecycle-start"
POLL_KEY = "pacing#lifecycle-poll"
KEEP_SECONDS = 86_400  # the item expires (TTL) a day after the last slot
TAKE_NEXT = ("nextSlot >= :now", "SET nextSlot = nextSlot + :step, expiresAt = :expires")
START_AT_NOW = (
    "attribute_not_exists(nextSlot) OR nextSlot < :now",
    "SET nextSlot = :now + :step, expiresAt = :expires",
)


def reserve(
    table: str, rate_per_second: float, now: datetime, key: str = PACING_KEY, slots: int = 1
) -> float:
    """Seconds until the first of `slots` consecutive slots reserved on the pacing item `key`
    (0: go now); the next reservation begins after them, first come first served, and none
    before now. Any trouble with the table answers 0: pacing protects ECS, it must never hold
    a drain back."""
    step = max(1, slots) / rate_per_second
    moment = now.timestamp()
    try:
        # Usually one call: slots are being handed out, take the next. When none was handed
        # out lately (the condition fails), start the slots at now; a drain that raced us to
        # that leaves the first form again.
        for condition, update in (TAKE_NEXT, START_AT_NOW, TAKE_NEXT):
            try:
                answer = call(
                    "dynamodb",
                    "update_item",
                    TableName=table,
                    Key={"pk": {"S": key}},
                    UpdateExpression=update,
                    ConditionExpression=condition,
                    ExpressionAttributeValues={
                        ":now": {"N": repr(moment)},
                        ":step": {"N": repr(step)},
                        ":expires": {"N": str(math.ceil(moment) + KEEP_SECONDS)},
                    },
                    ReturnValues="UPDATED_NEW",
                )
            except ClientError as error:
                if error_code(error) != "ConditionalCheckFailedException":
                    raise
                continue
            slot = float(answer["Attributes"]["nextSlot"]["N"]) - step
            return max(0.0, slot - moment)
    except AWS_FAILURES as error:
        log.warning("no slot reserved; going now", key=key, error=str(error))
    return 0.0
