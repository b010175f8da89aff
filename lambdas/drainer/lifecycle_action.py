"""Heartbeat and completion of an Auto Scaling lifecycle action.

Source: Auto Scaling API reference, CompleteLifecycleAction / RecordLifecycleActionHeartbeat.
An action already completed or expired answers ValidationError "No active Lifecycle Action
found …": that means the work is done, and retrying it forever is a known bug of other drainers
(Spacelift PR #197, NTH #1172).
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from drainer import log
from drainer.aws import call, error_code, error_message
from drainer.request import DrainRequest

NO_ACTIVE_ACTION = "No active Lifecycle Action found"


class ActionNotFound(Exception):
    """The lifecycle action was already completed, abandoned or timed out."""


def _action_params(request: DrainRequest) -> dict[str, Any]:
    params: dict[str, Any] = {
        "AutoScalingGroupName": request.auto_scaling_group_name,
        "LifecycleHookName": request.lifecycle_hook_name,
    }
    if request.lifecycle_action_token:
        params["LifecycleActionToken"] = request.lifecycle_action_token
    else:  # a salvaged event without its token: the instance id identifies the action too
        params["InstanceId"] = request.instance_id
    return params


def _call(operation: str, params: dict[str, Any]) -> None:
    try:
        call("autoscaling", operation, **params)
    except ClientError as error:
        if error_code(error) == "ValidationError" and NO_ACTIVE_ACTION in error_message(error):
            raise ActionNotFound(error_message(error)) from error
        raise


def record_heartbeat(request: DrainRequest) -> None:
    _call("record_lifecycle_action_heartbeat", _action_params(request))
    log.info("recorded lifecycle heartbeat", instanceId=request.instance_id)


def complete(request: DrainRequest, result: str = "CONTINUE") -> dict[str, Any]:
    """Complete the action. CONTINUE: on terminate both results terminate, and ABANDON would also
    skip the group's other hooks."""
    params = {**_action_params(request), "LifecycleActionResult": result}
    try:
        _call("complete_lifecycle_action", params)
    except ActionNotFound as gone:
        log.info("lifecycle action already ended", instanceId=request.instance_id, detail=str(gone))
        return {"completed": False, "alreadyEnded": True, "result": None}
    log.info("completed lifecycle action", instanceId=request.instance_id, result=result)
    return {"completed": True, "alreadyEnded": False, "result": result}


def not_ours_because(request: DrainRequest, groups: tuple[str, ...], hook: str) -> str | None:
    """Why this drainer must not touch the request's lifecycle action, or None if it may.

    Only actions of the configured groups and hook are ever completed (defence in depth: the
    rules' patterns filter already, but a test-source event is written by hand).
    """
    if not request.has_lifecycle_action:
        return "the event names no complete lifecycle action (group, hook, token or instance)"
    if request.auto_scaling_group_name not in groups or request.lifecycle_hook_name != hook:
        return (
            f"group {request.auto_scaling_group_name!r} / hook {request.lifecycle_hook_name!r} "
            "is not configured: add it to auto_scaling_group_names / lifecycle_hook_name"
        )
    return None


def complete_if_ours(
    request: DrainRequest, groups: tuple[str, ...], hook: str, execution_arn: str | None = None
) -> dict[str, Any]:
    """Complete the request's action if it belongs to the configured groups and hook.

    Dry run completes too: the hooks exist, and an unfinished action would only delay the
    termination that would have happened without the drainer.
    """
    problem = not_ours_because(request, groups, hook)
    if problem:
        log.info(
            "no lifecycle action to complete",
            reason=problem,
            instanceId=request.instance_id,
            executionArn=execution_arn,
        )
        return {"completed": False, "alreadyEnded": False, "result": None}
    return complete(request)


def left_to(owner: str | None) -> dict[str, Any]:
    """The completion of a rescue that leaves the action to the execution owning the drain."""
    return {"completed": False, "alreadyEnded": False, "result": None, "leftTo": owner}


def lifecycle_state(instance_id: str | None) -> str | None:
    """The instance's Auto Scaling lifecycle state (e.g. InService, Terminating:Wait), or None
    when Auto Scaling does not know it."""
    if not instance_id:
        return None
    found = call("autoscaling", "describe_auto_scaling_instances", InstanceIds=[instance_id])
    instances = found.get("AutoScalingInstances", [])
    return instances[0].get("LifecycleState") if instances else None


# What a terminate lifecycle action's instance reports while the action is open, and after.
# EC2 Auto Scaling user guide: "Amazon EC2 Auto Scaling instance lifecycle"
# (https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-lifecycle.html) and
# "Use lifecycle hooks with a warm pool"
# (https://docs.aws.amazon.com/autoscaling/ec2/userguide/warm-pool-instance-lifecycle.html):
# a terminating instance waits in Terminating:Wait, a warm-pool instance being terminated in
# Warmed:Terminating:Wait, and an instance returned to the warm pool on scale-in pauses in
# Warmed:Pending:Wait for the EC2_INSTANCE_TERMINATING hook. An instance stays in its wait state
# until every hook on it is complete, so any other state means no terminate action is open.
LIVE_TERMINATE_WAITS = frozenset({"Terminating:Wait", "Warmed:Terminating:Wait"})
# Also the wait of a launch hook for an instance entering the warm pool: live for a terminate
# action only when the event says the instance goes back to the pool.
WARM_POOL_RETURN_WAIT = "Warmed:Pending:Wait"
# Past the wait (or gone from Auto Scaling): the action this event named has ended.
AFTER_TERMINATE_WAIT = frozenset(
    {
        "Terminating:Proceed",
        "Terminating:Retained",
        "Terminated",
        "Warmed:Terminating:Proceed",
        "Warmed:Terminating:Retained",
        "Warmed:Terminated",
    }
)
# Back in the warm pool after a return on scale-in.
IN_WARM_POOL = frozenset(
    {"Warmed:Pending:Proceed", "Warmed:Stopped", "Warmed:Running", "Warmed:Hibernated"}
)
LIVE, ENDED, NEVER = "live", "ended", "never"


def action_standing(request: DrainRequest, state: str | None) -> str:
    """Whether the terminate action a lifecycle event names can be open, given the instance's
    lifecycle state: LIVE (in a terminate wait), ENDED (past it, or gone from Auto Scaling), or
    NEVER (in service, standby, launching: no terminate action was ever open for it)."""
    to_warm_pool = request.destination == "WarmPool"
    if state in LIVE_TERMINATE_WAITS or (state == WARM_POOL_RETURN_WAIT and to_warm_pool):
        return LIVE
    if state is None or state in AFTER_TERMINATE_WAIT or (to_warm_pool and state in IN_WARM_POOL):
        return ENDED
    return NEVER
