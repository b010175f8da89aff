"""The simulated AWS world: ECS, Auto Scaling and EC2 Spot on one virtual clock."""

from __future__ import annotations

import copy
import random
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from simulated_aws import routing
from simulated_aws.autoscaling import AutoScalingModel, LifecycleAction
from simulated_aws.clock import Timer, VirtualClock
from simulated_aws.ec2 import Ec2Model
from simulated_aws.ecs import EcsApi, EcsModel, Task
from simulated_aws.faults import ApiError, Fault
from simulated_aws.moto_waits import on_clock as moto_waits_on_clock

DEFAULT_START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
# Interrupted two minutes after the warning (EC2 user guide, "Spot Instance interruption notices")
SPOT_NOTICE_SECONDS = 120


@dataclass
class Ec2Instance:
    instance_id: str
    cluster: str | None
    group: str | None
    max_tasks: int
    launched_at: datetime
    state: str = "running"
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Termination:
    instance_id: str
    time: datetime
    cause: str
    tasks_killed: list[tuple[str, str]]  # (taskArn, lastStatus when the host went away)


@dataclass(frozen=True)
class ApiCall:
    service: str  # "ecs" | "autoscaling" | "ec2"
    operation: str
    time: datetime
    outcome: str  # "ok" or the error code
    params: dict[str, Any] = field(compare=False, repr=False)


class World:
    """ECS + Auto Scaling + Spot, answering boto3 calls in-process on a virtual clock.

    All state changes happen under one re-entrant lock; events are handed to subscribers after
    the outermost operation releases it, so a subscriber may call back into the world.
    """

    def __init__(
        self,
        start: datetime = DEFAULT_START,
        account: str = "123456789012",
        region: str = "us-east-1",
        seed: int = 0,
    ) -> None:
        self.clock = VirtualClock(start)
        self.account = account
        self.region = region
        self.rng = random.Random(seed)  # ids, tokens: reproducible runs
        # Event ids apart: however many events the world sends, its other ids stay the same.
        self._event_ids = random.Random(f"events-{seed}")
        self.lock = threading.RLock()
        self.instances: dict[str, Ec2Instance] = {}
        self.terminations: list[Termination] = []
        self.stops: list[Termination] = []  # instances stopped (kept): their tasks died
        self.events: list[dict[str, Any]] = []
        self.api_calls: list[ApiCall] = []
        self.faults: list[Fault] = []
        self._subscribers: list[Callable[[dict[str, Any]], object]] = []
        self._outbox: list[dict[str, Any]] = []
        self._depth = 0
        self.ecs = EcsModel(self)
        self.asg = AutoScalingModel(self)
        self.ec2 = Ec2Model(self)
        # Each routed service's API; ECS keeps its wire format apart from its model.
        self._apis: dict[str, EcsApi | AutoScalingModel | Ec2Model] = {
            "ecs": EcsApi(self.ecs),
            "autoscaling": self.asg,
            "ec2": self.ec2,
        }

    # ---- plumbing --------------------------------------------------------------------------
    @contextmanager
    def op(self) -> Iterator[None]:
        """Hold the world lock; deliver queued events once the outermost operation ends."""
        with self.lock:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                outbox: list[dict[str, Any]] = []
                if self._depth == 0:
                    outbox, self._outbox = self._outbox, []
        for event in outbox:
            for subscriber in list(self._subscribers):
                subscriber(copy.deepcopy(event))

    def after(self, seconds: float) -> datetime:
        return self.clock.now() + timedelta(seconds=seconds)

    def call_at(self, when: datetime, fn: Callable[[], object], label: str = "") -> Timer:
        def fire() -> None:
            with self.op():
                fn()

        return self.clock.call_at(when, fire, label)

    def call_later(self, seconds: float, fn: Callable[[], object], label: str = "") -> Timer:
        return self.call_at(self.after(seconds), fn, label)

    def subscribe(self, fn: Callable[[dict[str, Any]], object]) -> None:
        """`fn(event)` receives every EventBridge event the world emits (a private copy)."""
        self._subscribers.append(fn)

    def emit(
        self, detail_type: str, source: str, resources: list[str], detail: dict[str, Any]
    ) -> dict[str, Any]:
        # Envelope as in aws-sample-events/*.json, with a real `time` (EventBridge writes
        # whole seconds, `%Y-%m-%dT%H:%M:%SZ`) and a fresh id.
        event = {
            "version": "0",
            "id": str(uuid.UUID(int=self._event_ids.getrandbits(128), version=4)),
            "detail-type": detail_type,
            "source": source,
            "account": self.account,
            "time": self.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self.region,
            "resources": list(resources),
            "detail": detail,
        }
        with self.op():
            self.events.append(event)
            self._outbox.append(event)
        return event

    def _new_instance_id(self) -> str:
        return f"i-{self.rng.getrandbits(68):017x}"

    # ---- builders --------------------------------------------------------------------------
    def add_cluster(self, name: str) -> str:
        with self.op():
            return self.ecs.add_cluster(name).arn

    def add_instance(
        self,
        cluster: str | None = None,
        group: str | None = None,
        instance_id: str | None = None,
        max_tasks: int = 10,
        tags: dict[str, str] | None = None,
    ) -> str:
        """An EC2 instance (with EC2 `tags`); registered in `cluster` (ACTIVE) and `group`
        (InService) if given."""
        with self.op():
            instance_id = instance_id or self._new_instance_id()
            if instance_id in self.instances:
                raise ValueError(f"{instance_id} exists")
            self.instances[instance_id] = Ec2Instance(
                instance_id, cluster, group, max_tasks, self.clock.now(), tags=dict(tags or {})
            )
            if group is not None:
                self.asg.attach(group, instance_id)
            if cluster is not None:
                self.ecs.register_instance(cluster, instance_id, max_tasks)
            return instance_id

    def add_service(
        self,
        cluster: str,
        name: str,
        desired: int,
        min_healthy: int = 100,
        max_percent: int = 200,
        start_seconds: float = 30,
        stop_seconds: float = 10,
        deregistration_delay_seconds: float = 30,
        daemon: bool = False,
    ) -> str:
        """A service whose initial tasks are already RUNNING on ACTIVE instances (spread).

        `deregistration_delay_seconds > 0` means the service sits behind a load balancer.
        Daemon services run one task per ACTIVE instance and ignore `desired`.
        """
        with self.op():
            return self.ecs.add_service(
                cluster,
                name,
                desired,
                min_healthy=min_healthy,
                max_percent=max_percent,
                start_seconds=start_seconds,
                stop_seconds=stop_seconds,
                deregistration_delay_seconds=deregistration_delay_seconds,
                daemon=daemon,
            ).arn

    def run_task(
        self,
        cluster: str,
        instance_id: str,
        family: str,
        runs_for_seconds: float | None = None,
        stop_seconds: float = 10,
    ) -> str:
        """A standalone (RunTask) task, RUNNING now; draining never touches it."""
        with self.op():
            return self.ecs.run_task(
                cluster, instance_id, family, runs_for_seconds, stop_seconds
            ).arn

    def add_group(
        self,
        name: str,
        hook_name: str | None = "drain-hook",
        heartbeat_timeout: int = 1800,
        default_result: str = "CONTINUE",
        notification_metadata: str | None = None,
        warm_pool: bool = False,
        capacity_rebalance: bool = False,
        launch_seconds: float = 0.0,
    ) -> str:
        """An Auto Scaling group with (unless hook_name is None) a terminate lifecycle hook."""
        with self.op():
            return self.asg.add_group(
                name,
                hook_name,
                heartbeat_timeout=heartbeat_timeout,
                default_result=default_result,
                notification_metadata=notification_metadata,
                warm_pool=warm_pool,
                capacity_rebalance=capacity_rebalance,
                launch_seconds=launch_seconds,
            ).arn

    def add_hook(
        self,
        group: str,
        hook_name: str,
        heartbeat_timeout: int = 3600,
        default_result: str = "CONTINUE",
    ) -> None:
        """Another terminate hook on the group, that nobody here completes: it ends when the test
        completes it (CompleteLifecycleAction through the world) or when it times out."""
        with self.op():
            self.asg.add_hook(group, hook_name, heartbeat_timeout, default_result)

    # ---- happenings ------------------------------------------------------------------------
    def terminate_instance(self, instance_id: str, cause: str) -> Termination | None:
        """The EC2 instance is gone: its container instance leaves the cluster, every task not
        STOPPED dies with it. Idempotent (None when it was already gone)."""
        with self.op():
            ec2 = self.instances.get(instance_id)
            if ec2 is not None and ec2.state == "terminated":
                return None
            if ec2 is not None:
                ec2.state = "terminated"
            killed = self.ecs.terminate_instance(instance_id)
            self.asg.instance_terminated(instance_id)
            termination = Termination(instance_id, self.clock.now(), cause, killed)
            self.terminations.append(termination)
            return termination

    def stop_instance(self, instance_id: str, cause: str) -> Termination | None:
        """The EC2 instance stops (kept, not terminated): its tasks die, its container instance
        stays registered with its agent disconnected. None when it was not running."""
        with self.op():
            ec2 = self.instances[instance_id]
            if ec2.state != "running":
                return None
            ec2.state = "stopped"
            stop = Termination(
                instance_id, self.clock.now(), cause, self.ecs.stop_instance(instance_id)
            )
            self.stops.append(stop)
            return stop

    def start_instance(self, instance_id: str) -> None:
        """EC2 starts a stopped instance again (a persistent Spot request, once capacity is
        back): its agent reconnects the same container instance, status unchanged."""
        with self.op():
            ec2 = self.instances[instance_id]
            if ec2.state != "stopped":
                raise ValueError(f"{instance_id} is {ec2.state}, not stopped")
            ec2.state = "running"
            self.ecs.start_instance(instance_id)

    def reconnect_agent(self, instance_id: str) -> None:
        """The ECS agent disconnects and reconnects, as it does several times an hour (ECS
        developer guide, container instance state change events): two events, status as is."""
        with self.op():
            for ci in self.ecs._instances_for(instance_id):
                self.ecs._set_agent_connected(ci, False)
                self.ecs._set_agent_connected(ci, True)

    def stop_into_warm_pool(self, instance_id: str, cause: str) -> Termination | None:
        """Back into the warm pool (pool state Stopped): the instance stops, so its tasks die
        and its container instance leaves ECS as on termination; it stays in its group."""
        with self.op():
            ec2 = self.instances.get(instance_id)
            if ec2 is None or ec2.state != "running":
                return None
            ec2.state = "stopped"
            killed = self.ecs.terminate_instance(instance_id)
            self.asg.stopped_into_warm_pool(instance_id)
            termination = Termination(instance_id, self.clock.now(), cause, killed)
            self.terminations.append(termination)
            return termination

    def spot_interrupt(self, instance_id: str, action: str = "terminate") -> dict[str, Any]:
        """EC2 Spot Instance Interruption Warning now; the instance goes 120 s later.

        `action` is the interruption behaviour: `terminate`, or `stop`/`hibernate` (the instance
        is stopped and kept). Stop and hibernate need a persistent Spot request, which Auto
        Scaling never uses (EC2 User Guide, "Behavior of Spot Instance interruptions";
        CloudFormation AWS::EC2::LaunchTemplate SpotOptions: groups use one-time requests), so
        the world refuses them for an instance of a group.
        With Capacity Rebalancing, Auto Scaling also runs the terminate hook (Auto Scaling user
        guide, "Capacity Rebalancing");
        the hook cannot delay the interruption.
        """
        if action not in ("terminate", "stop", "hibernate"):
            raise ValueError(f"unknown interruption action {action}")
        if action != "terminate" and self.asg.group_of(instance_id) is not None:
            raise ValueError("Auto Scaling Spot instances are always terminated")
        with self.op():
            event = self.emit(
                "EC2 Spot Instance Interruption Warning",
                "aws.ec2",
                [self._instance_arn(instance_id)],
                {"instance-id": instance_id, "instance-action": action},
            )
            # Two minutes after the event's `time`, which carries whole seconds.
            warned_at = self.clock.now().replace(microsecond=0)
            interrupt = self.terminate_instance if action == "terminate" else self.stop_instance
            self.call_at(
                warned_at + timedelta(seconds=SPOT_NOTICE_SECONDS),
                lambda: interrupt(instance_id, "spot-interruption"),
                f"spot {instance_id}",
            )
            group = self.asg.group_of(instance_id)
            if group is not None and group.capacity_rebalance:
                instance = group.instances[instance_id]
                if instance.lifecycle_state == "InService":
                    self.asg.begin_termination(group, instance)
                    self.asg._replace(group, instance_id)
            return event

    def rebalance_recommendation(self, instance_id: str) -> dict[str, Any]:
        """EC2 Instance Rebalance Recommendation only: nothing else happens."""
        return self.emit(
            "EC2 Instance Rebalance Recommendation",
            "aws.ec2",
            [self._instance_arn(instance_id)],
            {"instance-id": instance_id},
        )

    def _instance_arn(self, instance_id: str) -> str:
        return f"arn:aws:ec2:{self.region}:{self.account}:instance/{instance_id}"

    # ---- inspection ------------------------------------------------------------------------
    def tasks_on(self, instance_id: str, live: bool = False) -> list[Task]:
        """Every task ever placed on the instance (or only those not STOPPED)."""
        with self.op():
            tasks = self.ecs.tasks_on(instance_id)
            return [t for t in tasks if t.live] if live else tasks

    @property
    def lifecycle_actions(self) -> list[LifecycleAction]:
        return self.asg.lifecycle_actions

    def api_call_counts(self) -> dict[str, int]:
        return dict(Counter(f"{c.service}:{c.operation}" for c in self.api_calls))

    # ---- faults ----------------------------------------------------------------------------
    def inject_faults(
        self,
        service: str,
        operation: str,
        code: str = "ServerException",
        status: int | None = None,
        message: str | None = None,
        count: int | None = 1,
        predicate: Callable[[dict[str, Any]], bool] | None = None,
    ) -> Fault:
        """The next `count` matching calls (None: all) answer `code` instead.

        `operation` may be "*"; `predicate(params)` narrows which calls match. The HTTP
        status defaults to 500 for server-side codes, 400 otherwise.
        """
        if service not in ("ecs", "autoscaling", "ec2"):
            raise ValueError("service must be 'ecs', 'autoscaling' or 'ec2'")
        if status is None:
            server_side = code in ("ServerException", "InternalFailure", "ServiceUnavailable")
            status = 500 if server_side else 400
        fault = Fault(
            service,
            operation,
            code,
            status,
            message or ("Rate exceeded" if "Throttl" in code else f"Injected {code}"),
            count,
            predicate,
        )
        with self.op():
            self.faults.append(fault)
        return fault

    # ---- routing ---------------------------------------------------------------------------
    def handle_api_call(
        self, service: str, operation: str, params: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        with self.op():
            now = self.clock.now()
            try:
                for fault in self.faults:
                    if fault.matches(service, operation, params):
                        fault.hits += 1
                        raise ApiError(fault.code, fault.message, fault.status)
                body = self._apis[service].dispatch(operation, params)
            except ApiError as error:
                self.api_calls.append(ApiCall(service, operation, now, error.code, params))
                body = {"Error": {"Code": error.code, "Message": error.message}}
                if service == "autoscaling":  # query protocol errors carry a Type
                    body["Error"]["Type"] = "Receiver" if error.status >= 500 else "Sender"
                body["ResponseMetadata"] = {"RequestId": self._request_id()}
                return error.status, body
            self.api_calls.append(ApiCall(service, operation, now, "ok", params))
            body["ResponseMetadata"] = {"RequestId": self._request_id()}
            return 200, body

    def _request_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    @contextmanager
    def install(self, moto_waits: bool = True) -> Iterator[World]:
        """Route ECS/Auto Scaling calls here, put every thread on the virtual clock and (by
        default) make moto's Step Functions Wait/Retry sleep on it. Use inside mock_aws()."""
        routing.install(self)
        try:
            with self.clock, moto_waits_on_clock(self.clock) if moto_waits else nullcontext():
                yield self
        finally:
            routing.uninstall(self)
