"""The demo cluster, and what AWS does before it sends the events a user puts by hand.

The cluster matches drainer.toml (cluster, group, hook) and the instance ids in events/*.json,
so each events file drains something real. drainer.toml ships with the test source off; the
sandbox switches on the source the events files carry (sandbox_config), and its instances opt
in to test events with the EC2 tag a real instance would need (ecs-drainer:test-events = allow).

Putting an events file stands in for AWS: a lifecycle event finds its instance in
Terminating:Wait with the event's token (Auto Scaling starts the action before it sends the
event), and a Spot warning is followed by the interruption two minutes after the event's time.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from drainer.clock import parse_iso
from drainer.opt_in import TEST_EVENTS_ALLOWED, TEST_EVENTS_TAG
from drainer.parsers import lifecycle, spot
from sandbox import EVENT_FILES
from simulated_aws import Timer, World
from simulated_aws.world import SPOT_NOTICE_SECONDS
from stacks import ROOT
from stacks.config import DrainerConfig, validate

EVENTS_DIR = ROOT / "events"
EXTRA_INSTANCES = ("i-0aaaaaaaaaaaaaaa4", "i-0aaaaaaaaaaaaaaa5")  # room for moved tasks
STANDALONE_SECONDS = 25 * 60  # a drain long enough for heartbeats (every 600 s by default)
# `--other-hook`: the terminate hook ECS managed instance draining adds to a capacity provider's
# group (its name: ECS developer guide, "enable managed instance draining"); its heartbeat
# timeout here is an assumption. Nothing in the sandbox completes it: it times out.
ECS_MANAGED_HOOK = "ecs-managed-draining-termination-hook"
OTHER_HOOK_HEARTBEAT_SECONDS = 3600


def events_files() -> dict[str, Any]:
    """File stem → the PutEvents entries it holds; EVENT_FILES first, then any others."""
    paths = sorted(
        EVENTS_DIR.glob("*.json"),
        key=lambda p: (EVENT_FILES.index(p.stem) if p.stem in EVENT_FILES else 99, p.stem),
    )
    return {path.stem: json.loads(path.read_text()) for path in paths}


def event_instance(entry: dict[str, Any]) -> str | None:
    detail = json.loads(entry.get("Detail") or "{}")
    return detail.get("EC2InstanceId") or detail.get("instance-id")


def events_source() -> str:
    """The one Source every events file carries (EventBridge refuses AWS's own in PutEvents)."""
    (source,) = {entry["Source"] for entries in events_files().values() for entry in entries}
    return source


def sandbox_config(config: DrainerConfig) -> DrainerConfig:
    """What the sandbox deploys: the configuration with the events files' test source on."""
    if config.test_event_source == events_source():
        return config
    return validate({**config.model_dump(), "test_event_source": events_source()}, "sandbox")


def demo_world(config: DrainerConfig, other_hook: str | None = None) -> World:
    """Five instances in the first configured cluster and group, three services, one task that
    runs on its own for 25 minutes on the lifecycle event's instance; `other_hook`: a second
    terminate hook on the group, after the drainer's."""
    cluster, group = config.cluster_names[0], config.auto_scaling_group_names[0]
    world = World()
    for name in config.cluster_names:
        world.add_cluster(name)
    world.add_group(
        group,
        hook_name=config.lifecycle_hook_name,
        heartbeat_timeout=config.heartbeat_timeout_seconds,
    )
    if other_hook:
        world.add_hook(group, other_hook, heartbeat_timeout=OTHER_HOOK_HEARTBEAT_SECONDS)
    named = [event_instance(e) for entries in events_files().values() for e in entries]
    instances = list(dict.fromkeys([i for i in named if i] + list(EXTRA_INSTANCES)))
    for instance_id in instances:
        world.add_instance(
            cluster=cluster,
            group=group,
            instance_id=instance_id,
            max_tasks=8,
            tags={TEST_EVENTS_TAG: TEST_EVENTS_ALLOWED},  # test Spot/rebalance events may act
        )
    # Behind a load balancer: replacements healthy first, then 30 s of deregistration.
    world.add_service(cluster, "web", desired=6, start_seconds=20, deregistration_delay_seconds=30)
    world.add_service(
        cluster,
        "worker",
        desired=4,
        min_healthy=50,
        stop_seconds=20,
        deregistration_delay_seconds=0,
    )
    world.add_service(cluster, "log-router", desired=0, daemon=True, deregistration_delay_seconds=0)
    world.run_task(cluster, instances[0], "nightly-report", runs_for_seconds=STANDALONE_SECONDS)
    return world


def describe(world: World) -> list[str]:
    """The seeded world in a few lines, for the server's banner."""
    lines = []
    for cluster in world.ecs.clusters.values():
        instances = [ci.ec2_instance_id for ci in cluster.instances]
        lines.append(
            f"ECS cluster {cluster.name}: {len(instances)} instances {', '.join(instances)}"
        )
        opted = [i for i in instances if world.instances[i].tags.get(TEST_EVENTS_TAG)]
        if opted:
            lines.append(
                f"  {len(opted)} of them tagged {TEST_EVENTS_TAG} = {TEST_EVENTS_ALLOWED} "
                "(test events may drain them)"
            )
        for service in cluster.services.values():
            size = "daemon" if service.daemon else f"{service.desired} tasks"
            balanced = ", behind a load balancer" if service.deregistration_delay_seconds else ""
            lines.append(f"  service {service.name}: {size}{balanced}")
        for task in cluster.tasks:
            if task.service is None:
                lines.append(
                    f"  task {task.family}: standalone, runs {task.runs_for_seconds or 0:.0f} s "
                    f"on {task.instance.ec2_instance_id}"
                )
    for group in world.asg.groups.values():
        hooks = ", ".join(
            f"{h.name} (heartbeat timeout {h.heartbeat_timeout} s)" for h in group.hooks.values()
        )
        noun = "hooks" if len(group.hooks) > 1 else "hook"
        lines.append(f"Auto Scaling group {group.name}: terminate {noun} {hooks}")
    return lines


class AwsSideOfTestEvents:
    """Makes the world do what AWS does around an event put through PutEvents.

    Call it with each accepted event (EventBridge.on_accepted); pass the world's own events
    through `forward`, which drops the lifecycle event the world emits when it starts an action
    here (the user's event is that event).
    """

    def __init__(self, world: World) -> None:
        self.world = world
        self._suppressed: set[str] = set()
        self._interruptions: set[Timer] = set()
        self._lock = threading.Lock()

    @property
    def pending(self) -> bool:
        """An interruption is still to come (virtual time must move on for it)."""
        with self._lock:
            return bool(self._interruptions)

    def __call__(self, event: dict[str, Any]) -> None:
        detail = event.get("detail") or {}
        if event.get("detail-type") == lifecycle.DETAIL_TYPE:
            self._start_lifecycle_action(detail)
        elif event.get("detail-type") == spot.DETAIL_TYPE:
            self._schedule_interruption(detail.get("instance-id"), event.get("time"))

    def forward(
        self, deliver: Callable[[dict[str, Any]], object]
    ) -> Callable[[dict[str, Any]], None]:
        def subscriber(event: dict[str, Any]) -> None:
            if event["id"] not in self._suppressed:
                deliver(event)

        return subscriber

    def _start_lifecycle_action(self, detail: dict[str, Any]) -> None:
        group = self.world.asg.groups.get(detail.get("AutoScalingGroupName", ""))
        instance = group.instances.get(detail.get("EC2InstanceId", "")) if group else None
        # The drainer's hook is the group's first: scale_in returns its action (and starts one
        # for every other terminate hook too, as Auto Scaling does).
        hooks = group.terminate_hooks() if group else []
        if (
            instance is None
            or not hooks
            or hooks[0].name != detail.get("LifecycleHookName")
            or detail.get("LifecycleTransition") != lifecycle.TERMINATING
            or instance.lifecycle_state != "InService"
        ):
            return  # nothing AWS would have started: the drain finds what is there
        with self.world.op():  # the world's own event is queued until this block ends
            action = self.world.asg.scale_in(group.name, instance.instance_id)
            if action is None:
                return
            action.token = detail.get("LifecycleActionToken") or action.token
            if action.event is not None:
                self._suppressed.add(action.event["id"])

    def _schedule_interruption(self, instance_id: str | None, time: str | None) -> None:
        ec2 = self.world.instances.get(instance_id or "")
        if ec2 is None or ec2.state != "running" or not time:
            return
        when = parse_iso(time) + timedelta(seconds=SPOT_NOTICE_SECONDS)
        timer: Timer | None = None

        def interrupt() -> None:
            with self._lock:
                self._interruptions.discard(timer)  # type: ignore[arg-type]
            self.world.terminate_instance(ec2.instance_id, "spot-interruption")

        with self._lock:
            timer = self.world.call_at(when, interrupt, f"spot {ec2.instance_id}")
            self._interruptions.add(timer)
