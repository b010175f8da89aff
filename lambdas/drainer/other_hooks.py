"""The group's other terminate lifecycle hooks (ECS managed instance draining adds one).

Auto Scaling keeps a terminating instance until every hook's action is complete, so a second
hook means a second drain: ours completes our action, the instance goes only when the other one
ends too. Resolve notes them for the log and the outcome. Source: Auto Scaling API reference,
DescribeLifecycleHooks
(https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_DescribeLifecycleHooks.html).
"""

from __future__ import annotations

from drainer import log
from drainer.aws import call
from drainer.request import DrainRequest

TERMINATING = "autoscaling:EC2_INSTANCE_TERMINATING"


def other_terminate_hooks(request: DrainRequest) -> list[str] | None:
    """The names of the group's terminate hooks other than the request's, or None when Auto
    Scaling could not say. Best effort: any failure (throttling, AccessDenied) is logged and
    the drain goes on, never retried and never failed for it."""
    try:
        found = call(
            "autoscaling",
            "describe_lifecycle_hooks",
            AutoScalingGroupName=request.auto_scaling_group_name,
        )
    except Exception as error:  # the drain must not depend on this look-up
        log.warning(
            "could not list the group's other terminate hooks",
            instanceId=request.instance_id,
            autoScalingGroupName=request.auto_scaling_group_name,
            error=f"{type(error).__name__}: {error}",
        )
        return None
    others = sorted(
        hook["LifecycleHookName"]
        for hook in found.get("LifecycleHooks", [])
        if hook.get("LifecycleTransition") == TERMINATING
        and hook.get("LifecycleHookName") != request.lifecycle_hook_name
    )
    if others:
        log.info(
            f"other terminate hooks on the group: {', '.join(others)} — the instance goes only "
            "when each is complete",
            instanceId=request.instance_id,
            autoScalingGroupName=request.auto_scaling_group_name,
            otherTerminateHooks=others,
        )
    return others
