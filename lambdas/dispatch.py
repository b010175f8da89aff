"""Lambda: start the drain execution of one EventBridge event, named after what it drains.

A classic EventBridge target cannot name the executions it starts; this function can. The three
drain rules invoke it (asynchronously, as EventBridge invokes every Lambda target); it starts
the state machine with the raw event as input under the name lambdas/drainer/naming.py makes.

The same event delivered twice makes one execution: StartExecution with the name and input of an
open execution returns that execution; of a closed one, it answers ExecutionAlreadyExists
(Step Functions API reference, StartExecution), and the function then checks that the closed
execution ran this very event. Anything else raises, so Lambda retries the invocation and, once
its retries are spent, sends the event to the stack's dead-letter queue, whose alarm fires.
"""

from __future__ import annotations

import json
import os
from typing import Any

from botocore.exceptions import ClientError

from drainer import log
from drainer.aws import call, error_code
from drainer.naming import UNKNOWN_INSTANCE, execution_name, instance_of
from drainer.settings import STATE_MACHINE_VARIABLE

ALREADY_EXISTS = "ExecutionAlreadyExists"


class NotStarted(Exception):
    """The event's execution could not be started; the invocation fails and is retried."""


@log.per_invocation
def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    return dispatch(event, os.environ[STATE_MACHINE_VARIABLE])


def dispatch(event: dict[str, Any], state_machine_arn: str) -> dict[str, Any]:
    """Start (or find) the execution of `event`: its ARN, its name, and `started`: false when
    the execution had already ended (true also when StartExecution returned the open execution
    of this event: the API answers both alike)."""
    document = json.dumps(event)
    short = execution_name(event)
    started = _start(state_machine_arn, short, event, document)
    if started is None:
        # Another event of the same instance and kind holds the short name: the whole id is
        # this event's own name, every time it is delivered.
        started = _start(state_machine_arn, execution_name(event, full_id=True), event, document)
    if started is None:
        raise NotStarted(f"{short}: the name is taken by an execution of another event")
    instance = instance_of(event)
    log.info(
        "drain execution started" if started["started"] else "drain execution already ended",
        instanceId=None if instance == UNKNOWN_INSTANCE else instance,
        executionArn=started["executionArn"],
        executionName=started["name"],
    )
    return started


def _start(
    state_machine_arn: str, name: str, event: dict[str, Any], document: str
) -> dict[str, Any] | None:
    """The execution named `name` for `event`; None if that name belongs to another event."""
    try:
        answer = call(
            "stepfunctions",
            "start_execution",
            stateMachineArn=state_machine_arn,
            name=name,
            input=document,
        )
    except ClientError as error:
        if error_code(error) != ALREADY_EXISTS:
            raise  # throttled, refused, too large: fail, so the invocation is retried
        arn = _execution_arn(state_machine_arn, name)
        existing = call("stepfunctions", "describe_execution", executionArn=arn)
        if _same_event(existing.get("input"), event):
            return {"executionArn": arn, "name": name, "started": False}
        return None
    return {"executionArn": answer["executionArn"], "name": name, "started": True}


def _same_event(text: str | None, event: dict[str, Any]) -> bool:
    try:
        return bool(text) and json.loads(text) == event
    except ValueError:
        return False


def _execution_arn(state_machine_arn: str, name: str) -> str:
    """A Standard execution's ARN: the state machine's with `execution` and the name."""
    return state_machine_arn.replace(":stateMachine:", ":execution:", 1) + f":{name}"
