"""Auto Scaling groups with terminate lifecycle hooks, as the drain orchestrator sees them.

Semantics come from the Auto Scaling user guide, "Amazon EC2 Auto Scaling lifecycle hooks"
(https://docs.aws.amazon.com/autoscaling/ec2/userguide/lifecycle-hooks.html), and the botocore
autoscaling model (botocore/data/autoscaling/2011-01-01/service-2.json).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dateutil.tz import tzutc

from simulated_aws.clock import Timer
from simulated_aws.faults import ApiError, Throttle, not_implemented

if TYPE_CHECKING:
    from simulated_aws.world import World

TERMINATING = "autoscaling:EC2_INSTANCE_TERMINATING"
LAUNCHING = "autoscaling:EC2_INSTANCE_LAUNCHING"
# The global timeout is min(48 h, 100 x HeartbeatTimeout) (API reference, LifecycleHook).
MAX_GLOBAL_TIMEOUT = 172_800
WARM_POOL = "WarmPool"

# Lifecycle states while a terminate action is open, and once it has ended, by where the
# instance goes (EC2 Auto Scaling user guide, "Use lifecycle hooks with a warm pool",
# https://docs.aws.amazon.com/autoscaling/ec2/userguide/warm-pool-instance-lifecycle.html):
# a terminating instance waits in Terminating:Wait; one returned to the warm pool on scale-in
# waits in Warmed:Pending:Wait; a warm-pool instance being terminated in Warmed:Terminating:Wait.
# Returned to the pool, the instance is stopped (pool state Stopped) and stays in the group.
WAIT_STATE = {
    "terminate": "Terminating:Wait",
    "to-pool": "Warmed:Pending:Wait",
    "from-pool": "Warmed:Terminating:Wait",
}
PROCEED_STATE = {
    "terminate": "Terminating:Proceed",
    "to-pool": "Warmed:Pending:Proceed",
    "from-pool": "Warmed:Terminating:Proceed",
}


def _ts(when: datetime | None) -> datetime | None:
    return None if when is None else when.astimezone(tzutc())


@dataclass(eq=False)
class LifecycleHook:
    name: str
    group_name: str
    transition: str
    heartbeat_timeout: int
    default_result: str
    notification_metadata: str | None = None

    @property
    def global_timeout(self) -> int:
        return min(MAX_GLOBAL_TIMEOUT, 100 * self.heartbeat_timeout)


@dataclass(eq=False)
class AsgInstance:
    instance_id: str
    group: Group
    seq: int
    lifecycle_state: str = "InService"
    health_status: str = "HEALTHY"


@dataclass(eq=False)
class Group:
    name: str
    arn: str
    created_at: datetime
    hooks: dict[str, LifecycleHook] = field(default_factory=dict)
    instances: dict[str, AsgInstance] = field(default_factory=dict)
    desired: int = 0
    warm_pool: bool = False
    capacity_rebalance: bool = False
    launch_seconds: float = 0.0

    def terminate_hooks(self) -> list[LifecycleHook]:
        return [h for h in self.hooks.values() if h.transition == TERMINATING]


@dataclass(eq=False)
class LifecycleAction:
    """One terminate lifecycle action and what happened to it."""

    token: str
    group: str
    hook: str
    instance_id: str
    started: datetime
    heartbeat_deadline: datetime
    global_deadline: datetime
    origin: str | None = None
    destination: str | None = None
    heartbeats: list[datetime] = field(default_factory=list)
    completed_at: datetime | None = None
    ended_at: datetime | None = None
    result: str | None = None
    # "completed" | "heartbeat-timeout" | "global-timeout" | "instance-terminated" | "abandoned"
    ended_by: str | None = None
    event: dict[str, Any] | None = None
    _timers: list[Timer] = field(default_factory=list, repr=False)

    @property
    def active(self) -> bool:
        return self.ended_by is None

    @property
    def path(self) -> str:
        """Where the instance goes: "terminate", "to-pool" (back to the warm pool on scale-in)
        or "from-pool" (a warm-pool instance terminated)."""
        if self.destination == WARM_POOL:
            return "to-pool"
        return "from-pool" if self.origin == WARM_POOL else "terminate"


class AutoScalingModel:
    def __init__(self, world: World) -> None:
        self.world = world
        self.groups: dict[str, Group] = {}
        self.lifecycle_actions: list[LifecycleAction] = []
        # Query-protocol throttling code is `Throttling` (botocore/data/_retry.json lists it
        # as the general throttling code; Auto Scaling calls share one bucket per account).
        self.throttle = Throttle(world.clock, "Throttling")
        self._seq = 0

    def set_throttle(
        self, rate_per_s: float | None, burst: float = 0, *, per_operation: bool = False
    ) -> None:
        """One shared bucket by default ("all Amazon EC2 Auto Scaling API calls have a single,
        shared API limit", AWS re:Post knowledge center); None switches it off."""
        with self.world.op():
            self.throttle.configure(rate_per_s, burst, per_operation)

    # ---- builders --------------------------------------------------------------------------
    def add_group(
        self,
        name: str,
        hook_name: str | None,
        *,
        heartbeat_timeout: int,
        default_result: str,
        notification_metadata: str | None,
        warm_pool: bool,
        capacity_rebalance: bool,
        launch_seconds: float,
    ) -> Group:
        if name in self.groups:
            raise ValueError(f"group {name} exists")
        if not 30 <= heartbeat_timeout <= 7200:
            raise ValueError("HeartbeatTimeout must be 30-7200 s (API_LifecycleHook)")
        if default_result not in ("CONTINUE", "ABANDON"):
            raise ValueError("DefaultResult must be CONTINUE or ABANDON")
        group_uuid = uuid.UUID(int=self.world.rng.getrandbits(128), version=4)
        group = Group(
            name=name,
            arn=f"arn:aws:autoscaling:{self.world.region}:{self.world.account}:autoScalingGroup:"
            f"{group_uuid}:autoScalingGroupName/{name}",
            created_at=self.world.clock.now(),
            warm_pool=warm_pool,
            capacity_rebalance=capacity_rebalance,
            launch_seconds=launch_seconds,
        )
        if hook_name:
            group.hooks[hook_name] = LifecycleHook(
                hook_name,
                name,
                TERMINATING,
                heartbeat_timeout,
                default_result,
                notification_metadata,
            )
        self.groups[name] = group
        return group

    def add_hook(
        self, group_name: str, hook_name: str, heartbeat_timeout: int, default_result: str
    ) -> LifecycleHook:
        """Another terminate hook on the group, as a second party (ECS managed draining) puts it."""
        group = self.groups[group_name]
        if hook_name in group.hooks:
            raise ValueError(f"hook {hook_name} exists on {group_name}")
        hook = LifecycleHook(hook_name, group_name, TERMINATING, heartbeat_timeout, default_result)
        group.hooks[hook_name] = hook
        return hook

    def attach(self, group_name: str, instance_id: str) -> None:
        group = self.groups[group_name]
        self._seq += 1
        group.instances[instance_id] = AsgInstance(instance_id, group, self._seq)
        group.desired = sum(1 for i in group.instances.values() if i.lifecycle_state == "InService")

    def group_of(self, instance_id: str) -> Group | None:
        for group in self.groups.values():
            if instance_id in group.instances:
                return group
        return None

    def enter_standby(self, instance_id: str) -> None:
        """EnterStandby: the instance stays in the group, out of service, with no action."""
        with self.world.op():
            group = self.group_of(instance_id)
            if group is None or group.instances[instance_id].lifecycle_state != "InService":
                raise ValueError(f"{instance_id} is not InService")
            group.instances[instance_id].lifecycle_state = "Standby"
            group.desired -= 1

    def terminate_from_warm_pool(self, group_name: str, instance_id: str) -> LifecycleAction | None:
        """The warm pool shrinks: a stopped pool instance is terminated (through the hook)."""
        with self.world.op():
            group = self.groups[group_name]
            instance = group.instances[instance_id]
            if instance.lifecycle_state != "Warmed:Stopped":
                raise ValueError(f"{instance_id} is {instance.lifecycle_state}")
            return self.begin_termination(group, instance, WARM_POOL, "EC2")

    # ---- lifecycle actions -----------------------------------------------------------------
    def scale_in(
        self,
        group_name: str,
        instance_id: str,
        origin: str | None = None,
        destination: str | None = None,
    ) -> LifecycleAction | None:
        """Auto Scaling picks `instance_id` to leave the group (desired capacity - 1)."""
        with self.world.op():
            group = self.groups[group_name]
            instance = group.instances[instance_id]
            if instance.lifecycle_state != "InService":
                raise ValueError(f"{instance_id} is {instance.lifecycle_state}")
            group.desired -= 1
            return self.begin_termination(group, instance, origin, destination)

    def begin_termination(
        self,
        group: Group,
        instance: AsgInstance,
        origin: str | None = None,
        destination: str | None = None,
    ) -> LifecycleAction | None:
        """One action per terminate hook, each with its own token, timeouts and event; the
        first hook's is returned. The instance goes once every action has ended (below)."""
        hooks = group.terminate_hooks()
        if not hooks:
            instance.lifecycle_state = "Terminating"
            self.world.terminate_instance(instance.instance_id, "terminated-without-hook")
            return None
        if group.warm_pool or origin or destination:
            # Origin/Destination only appear for groups with a warm pool (Auto Scaling event
            # reference).
            origin = origin or "AutoScalingGroup"
            destination = destination or "EC2"
        actions = [self._start(group, instance, hook, origin, destination) for hook in hooks]
        return actions[0]

    def _start(
        self,
        group: Group,
        instance: AsgInstance,
        hook: LifecycleHook,
        origin: str | None,
        destination: str | None,
    ) -> LifecycleAction:
        now = self.world.clock.now()
        # LifecycleActionToken: a UUID, 36 characters (botocore min/max 36).
        token = str(uuid.UUID(int=self.world.rng.getrandbits(128), version=4))
        action = LifecycleAction(
            token=token,
            group=group.name,
            hook=hook.name,
            instance_id=instance.instance_id,
            started=now,
            heartbeat_deadline=self.world.after(hook.heartbeat_timeout),
            global_deadline=self.world.after(hook.global_timeout),
            origin=origin,
            destination=destination,
        )
        instance.lifecycle_state = WAIT_STATE[action.path]
        self.lifecycle_actions.append(action)
        action._timers = [
            self.world.call_at(
                action.heartbeat_deadline,
                lambda: self._expire(action, "heartbeat-timeout", action.heartbeat_deadline),
                f"heartbeat timeout {instance.instance_id}",
            ),
            self.world.call_at(
                action.global_deadline,
                lambda: self._expire(action, "global-timeout", action.global_deadline),
                f"global timeout {instance.instance_id}",
            ),
        ]
        detail: dict[str, Any] = {
            "LifecycleActionToken": token,
            "AutoScalingGroupName": group.name,
            "LifecycleHookName": hook.name,
            "EC2InstanceId": instance.instance_id,
            "LifecycleTransition": TERMINATING,
        }
        if hook.notification_metadata is not None:
            # Absent when the hook has none (a real event in aws-node-termination-handler #562).
            detail["NotificationMetadata"] = hook.notification_metadata
        if origin is not None:
            detail["Origin"] = origin
            detail["Destination"] = destination
        action.event = self.world.emit(
            "EC2 Instance-terminate Lifecycle Action", "aws.autoscaling", [group.arn], detail
        )
        return action

    def _expire(self, action: LifecycleAction, cause: str, deadline: datetime) -> None:
        # Timers are never rescheduled in place: a heartbeat cancels and replaces its timer,
        # so a stale one only checks that its deadline still stands.
        if not action.active or deadline > self.world.clock.now():
            return
        self._close(action, cause, self.groups[action.group].hooks[action.hook].default_result)

    def _close(self, action: LifecycleAction, cause: str, result: str) -> None:
        """Completed, or timed out with its hook's default result. The group "waits for all hooks
        to finish before terminating an instance" (ECS guide, managed instance draining); "abandon
        stops any remaining actions, such as other lifecycle hooks" (Auto Scaling user guide,
        lifecycle hooks, considerations)."""
        self._end(action, cause, result)
        others = self._open_actions(action.instance_id)
        if result == "ABANDON":
            for other in others:
                self._end(other, "abandoned", None)
        elif others:
            return
        self._let_go(action, cause)

    def _open_actions(self, instance_id: str) -> list[LifecycleAction]:
        return [a for a in self.lifecycle_actions if a.active and a.instance_id == instance_id]

    def _let_go(self, action: LifecycleAction, cause: str) -> None:
        """After the action: terminated, or stopped back into the warm pool."""
        if action.path == "to-pool":
            self.world.stop_into_warm_pool(action.instance_id, cause)
        else:
            self.world.terminate_instance(action.instance_id, cause)

    def stopped_into_warm_pool(self, instance_id: str) -> None:
        group = self.group_of(instance_id)
        if group is not None:
            group.instances[instance_id].lifecycle_state = "Warmed:Stopped"

    def _end(self, action: LifecycleAction, ended_by: str, result: str | None) -> None:
        action.ended_by = ended_by
        action.ended_at = self.world.clock.now()
        action.result = result
        for timer in action._timers:
            timer.cancel()
        group = self.groups.get(action.group)
        instance = group.instances.get(action.instance_id) if group else None
        if instance is not None and not self._open_actions(action.instance_id):
            instance.lifecycle_state = PROCEED_STATE[action.path]

    def instance_terminated(self, instance_id: str) -> None:
        """The EC2 instance is gone (by whatever cause): leave the group, close its action."""
        for action in self.lifecycle_actions:
            if action.instance_id == instance_id and action.active:
                self._end(action, "instance-terminated", None)
        group = self.group_of(instance_id)
        if group is not None:
            del group.instances[instance_id]

    def _replace(self, group: Group, old_instance_id: str) -> None:
        """Launch a replacement into the same cluster (desired capacity unchanged)."""
        template = self.world.instances.get(old_instance_id)
        cluster = template.cluster if template else None
        max_tasks = template.max_tasks if template else 10

        def launch() -> None:
            self.world.add_instance(cluster=cluster, group=group.name, max_tasks=max_tasks)

        if group.launch_seconds > 0:
            self.world.call_later(group.launch_seconds, launch, f"launch into {group.name}")
        else:
            launch()

    # ---- API -------------------------------------------------------------------------------
    def dispatch(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        handler: Callable[[dict[str, Any]], dict[str, Any]] | None = getattr(
            self, f"api_{operation}", None
        )
        if handler is None:
            raise not_implemented("autoscaling", operation)
        self.throttle.check(operation)
        return handler(params)

    def _api_group(self, name: str) -> Group:
        group = self.groups.get(name)
        if group is None:
            # Assumption: the exact AWS wording for an unknown group here is not documented.
            raise ApiError(
                "ValidationError",
                f"AutoScalingGroup name not found - AutoScalingGroup {name} not found",
            )
        return group

    def _find_action(self, params: dict[str, Any]) -> LifecycleAction:
        group = self._api_group(params.get("AutoScalingGroupName", ""))
        hook = params.get("LifecycleHookName")
        token = params.get("LifecycleActionToken")
        instance_id = params.get("InstanceId")
        if not token and not instance_id:
            raise ApiError(
                "ValidationError", "Either LifecycleActionToken or InstanceId must be specified."
            )
        for action in self.lifecycle_actions:
            if (
                action.active
                and action.group == group.name
                and action.hook == hook
                and (action.token == token if token else action.instance_id == instance_id)
            ):
                return action
        # An action already completed or expired answers exactly this (public report:
        # spacelift-io/terraform-aws-spacelift-workerpool-on-ec2#197).
        if token:
            raise ApiError(
                "ValidationError", f"No active Lifecycle Action found with token {token}"
            )
        raise ApiError(
            "ValidationError", f"No active Lifecycle Action found with instance ID {instance_id}"
        )

    def api_CompleteLifecycleAction(self, params: dict[str, Any]) -> dict[str, Any]:
        result = params.get("LifecycleActionResult")
        if result not in ("CONTINUE", "ABANDON"):
            raise ApiError(
                "ValidationError", "LifecycleActionResult must be either CONTINUE or ABANDON"
            )
        action = self._find_action(params)
        action.completed_at = self.world.clock.now()
        # On terminate, CONTINUE and ABANDON both end in termination (Auto Scaling user guide,
        # "Complete a lifecycle action"), once no other hook's action is open.
        self._close(action, "completed", result)
        return {}

    def api_RecordLifecycleActionHeartbeat(self, params: dict[str, Any]) -> dict[str, Any]:
        action = self._find_action(params)
        hook = self.groups[action.group].hooks[action.hook]
        now = self.world.clock.now()
        action.heartbeats.append(now)
        # A heartbeat restarts the heartbeat timeout only; the global timeout stands.
        action._timers[0].cancel()
        action.heartbeat_deadline = self.world.after(hook.heartbeat_timeout)
        deadline = action.heartbeat_deadline
        action._timers[0] = self.world.call_at(
            deadline,
            lambda: self._expire(action, "heartbeat-timeout", deadline),
            f"heartbeat timeout {action.instance_id}",
        )
        return {}

    def api_DescribeLifecycleHooks(self, params: dict[str, Any]) -> dict[str, Any]:
        """The group's hooks, in the LifecycleHook shape of botocore's model (this world has no
        notification targets or roles: the hooks deliver through EventBridge)."""
        group = self._api_group(params.get("AutoScalingGroupName", ""))
        names = params.get("LifecycleHookNames")
        hooks = []
        for hook in group.hooks.values():
            if names and hook.name not in names:
                continue
            item: dict[str, Any] = {
                "LifecycleHookName": hook.name,
                "AutoScalingGroupName": group.name,
                "LifecycleTransition": hook.transition,
                "HeartbeatTimeout": hook.heartbeat_timeout,
                "GlobalTimeout": hook.global_timeout,
                "DefaultResult": hook.default_result,
            }
            if hook.notification_metadata is not None:
                item["NotificationMetadata"] = hook.notification_metadata
            hooks.append(item)
        return {"LifecycleHooks": hooks}

    def api_DescribeAutoScalingInstances(self, params: dict[str, Any]) -> dict[str, Any]:
        wanted = params.get("InstanceIds")
        instances = sorted(
            (i for g in self.groups.values() for i in g.instances.values()), key=lambda i: i.seq
        )
        if wanted:
            instances = [i for i in instances if i.instance_id in wanted]
        max_records = params.get("MaxRecords") or 50
        after = int(params["NextToken"]) if params.get("NextToken") else 0
        instances = [i for i in instances if i.seq > after]
        page = instances[:max_records]
        body: dict[str, Any] = {
            "AutoScalingInstances": [
                {
                    "InstanceId": i.instance_id,
                    "InstanceType": "m5.large",
                    "AutoScalingGroupName": i.group.name,
                    "AvailabilityZone": f"{self.world.region}a",
                    "LifecycleState": i.lifecycle_state,
                    "HealthStatus": i.health_status,
                    "ProtectedFromScaleIn": False,
                }
                for i in page
            ]
        }
        if len(instances) > max_records:
            body["NextToken"] = str(page[-1].seq)
        return body

    def api_TerminateInstanceInAutoScalingGroup(self, params: dict[str, Any]) -> dict[str, Any]:
        ids = params.get("InstanceIds") or [params.get("InstanceId", "")]
        decrement = bool(params.get("ShouldDecrementDesiredCapacity"))
        activities = [self._terminate_one(instance_id, decrement) for instance_id in ids]
        if params.get("InstanceIds"):
            return {"Activities": activities}
        return {"Activity": activities[0]}

    def _terminate_one(self, instance_id: str, decrement: bool) -> dict[str, Any]:
        group = self.group_of(instance_id)
        if group is None:
            raise ApiError(
                "ValidationError",
                f"Instance Id not found - No managed instance found for instance ID: {instance_id}",
            )
        instance = group.instances[instance_id]
        if instance.lifecycle_state != "InService":
            # Assumption: wording of AWS's refusal for an instance already leaving the group.
            raise ApiError(
                "ValidationError",
                f"The instance {instance_id} is not in InService or Standby "
                f"(it is {instance.lifecycle_state}).",
            )
        now = self.world.clock.now()
        before = group.desired
        cause = (
            f"At {now.strftime('%Y-%m-%dT%H:%M:%SZ')} instance {instance_id} was taken out of "
            "service in response to a user request"
        )
        if decrement:
            group.desired -= 1
            cause += f", shrinking the capacity from {before} to {group.desired}."
        else:
            cause += "."
        activity = {
            "ActivityId": str(uuid.UUID(int=self.world.rng.getrandbits(128), version=4)),
            "AutoScalingGroupName": group.name,
            "AutoScalingGroupARN": group.arn,
            "Description": f"Terminating EC2 instance: {instance_id}",
            "Cause": cause,
            "StartTime": _ts(now),
            "StatusCode": "InProgress",
            "Progress": 0,
            "Details": json.dumps(
                {"Subnet ID": "subnet-world", "Availability Zone": f"{self.world.region}a"}
            ),
        }
        self.begin_termination(group, instance)
        if not decrement:
            self._replace(group, instance_id)
        return activity
