"""The rebalance policy in one place: what a rebalance recommendation does to its instance.

`rebalance_policy` (drainer.toml, validated in stacks/config.py) picks a route in Resolve:
"ignore" ends at once (`rebalance-ignored`), "drain" sets DRAINING and ends
(`rebalance-draining`, lambdas/start_drain.py), "replace" asks Auto Scaling for a replacement
(below; `replacement-requested` or `replacement-skipped`). Resolve claims the last two, so a
duplicate recommendation ends as `duplicate`.

Replacing: TerminateInstanceInAutoScalingGroup without decrementing the desired capacity
launches a replacement and runs the terminate lifecycle hook, so the lifecycle branch then drains
the instance (the stack grants the call on the configured groups only).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from drainer import log, outcome
from drainer.aws import call, error_code, error_message
from drainer.request import ROUTE_IGNORE, ROUTE_REBALANCE_DRAIN, ROUTE_REBALANCE_REPLACE
from drainer.settings import Settings

if TYPE_CHECKING:  # type hints only: no cold start compiles these
    from drainer.state import Replacement

POLICY_ROUTES = {
    "ignore": ROUTE_IGNORE,
    "drain": ROUTE_REBALANCE_DRAIN,
    "replace": ROUTE_REBALANCE_REPLACE,
}
# Routes Resolve claims (the Spot route claims after DRAINING, in Start draining).
CLAIMED_ROUTES = frozenset({ROUTE_REBALANCE_DRAIN, ROUTE_REBALANCE_REPLACE})


def route(policy: str) -> str:
    return POLICY_ROUTES[policy]


def replace(instance_id: str, config: Settings, dry_run: bool) -> Replacement:
    found = call("autoscaling", "describe_auto_scaling_instances", InstanceIds=[instance_id])
    groups = [item["AutoScalingGroupName"] for item in found.get("AutoScalingInstances", [])]
    if not groups or groups[0] not in config.auto_scaling_group_names:
        reason = f"instance is in no configured Auto Scaling group (found: {groups or 'none'})"
        log.info("replacement skipped", instanceId=instance_id, reason=reason)
        return _skipped(reason)
    if dry_run:
        log.info("DRY RUN: would replace instance", instanceId=instance_id, group=groups[0])
        return _skipped("dry run")
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
        return _skipped(error_message(error))
    log.info("replacement requested", instanceId=instance_id, group=groups[0])
    return {"replaced": True, "problem": None, "ending": outcome.REPLACEMENT_REQUESTED}


def _skipped(problem: str) -> Replacement:
    return {"replaced": False, "problem": problem, "ending": outcome.REPLACEMENT_SKIPPED}
