"""`EC2 Instance-terminate Lifecycle Action` → DrainRequest.

Source: Auto Scaling event reference (EventBridge); warm-pool events add Origin/Destination.
A terminate toward `WarmPool` stops the instance instead of terminating it: it still needs draining.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from drainer.clock import iso
from drainer.parsers.fields import (
    GROUP_NAME,
    HOOK_NAME,
    INSTANCE_ID,
    TOKEN,
    checked,
    optional_text,
    text_field,
)
from drainer.request import LIFECYCLE, DrainRequest, EventError

DETAIL_TYPE = "EC2 Instance-terminate Lifecycle Action"
SOURCE = "aws.autoscaling"
TERMINATING = "autoscaling:EC2_INSTANCE_TERMINATING"


def parse(event: Mapping[str, Any], when: datetime) -> DrainRequest:
    detail = event["detail"]
    where = "detail."
    transition = text_field(detail, "LifecycleTransition", where=where)
    if transition != TERMINATING:
        raise EventError(
            f"{where}LifecycleTransition",
            f"{transition!r} is not a termination",
            f"Only {TERMINATING} events are drained; launch hooks need no drain",
        )
    instance_id = checked(detail, "EC2InstanceId", INSTANCE_ID, "an EC2 instance id like i-0abc…")
    group = checked(detail, "AutoScalingGroupName", GROUP_NAME, "an Auto Scaling group name")
    hook = checked(detail, "LifecycleHookName", HOOK_NAME, "a lifecycle hook name")
    token = checked(detail, "LifecycleActionToken", TOKEN, "the 36-character token AWS sent")
    destination = optional_text(detail, "Destination", where=where)
    return DrainRequest(
        kind=LIFECYCLE,
        instance_id=instance_id,
        reason="warm-pool" if destination == "WarmPool" else "auto-scaling-termination",
        event_id=optional_text(event, "id"),
        event_time=iso(when),
        source=text_field(event, "source"),
        detail_type=DETAIL_TYPE,
        auto_scaling_group_name=group,
        lifecycle_hook_name=hook,
        lifecycle_action_token=token,
        origin=optional_text(detail, "Origin", where=where),
        destination=destination,
    )
