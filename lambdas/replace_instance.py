"""Lambda: ask Auto Scaling to replace an instance (rebalance policy "replace").

TerminateInstanceInAutoScalingGroup without decrementing the desired capacity launches a
replacement and runs the terminate lifecycle hook, so the lifecycle branch drains the instance.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from drainer import log
from drainer.aws import call, error_code, error_message
from drainer.settings import Settings, settings


@log.per_invocation
def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    state = event["state"]
    return {
        **state,
        "progress": replace(
            state["request"]["instanceId"],
            state["progress"],
            settings(),
            state["request"]["dryRun"],
        ),
    }


def replace(
    instance_id: str, progress: dict[str, Any], config: Settings, dry_run: bool
) -> dict[str, Any]:
    found = call("autoscaling", "describe_auto_scaling_instances", InstanceIds=[instance_id])
    groups = [item["AutoScalingGroupName"] for item in found.get("AutoScalingInstances", [])]
    if not groups or groups[0] not in config.auto_scaling_group_names:
        reason = f"instance is in no configured Auto Scaling group (found: {groups or 'none'})"
        log.info("replacement skipped", instanceId=instance_id, reason=reason)
        return {**progress, "replaced": False, "replaceProblem": reason}
    if dry_run:
        log.info("DRY RUN: would replace instance", instanceId=instance_id, group=groups[0])
        return {**progress, "replaced": False, "replaceProblem": "dry run"}
    try:
        call(
            "autoscaling",
            "terminate_instance_in_auto_scaling_group",
            InstanceId=instance_id,
            ShouldDecrementDesiredCapacity=False,
        )
    except ClientError as error:
        if error_code(error) != "ValidationError":
            raise
        # Already terminating (Capacity Rebalancing got there first) or already gone.
        log.info("replacement skipped", instanceId=instance_id, reason=error_message(error))
        return {**progress, "replaced": False, "replaceProblem": error_message(error)}
    log.info("replacement requested", instanceId=instance_id, group=groups[0])
    return {**progress, "replaced": True, "replaceProblem": None}
