"""The resources ECS on EC2 keeps: clusters, container instances, services and tasks, with
their states. What ECS does with them is model.py; how its API shows them, api.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from simulated_aws.clock import Timer

ACTIVE, DRAINING, INACTIVE = "ACTIVE", "DRAINING", "INACTIVE"
PENDING, RUNNING, DEACTIVATING, STOPPING, STOPPED = (
    "PENDING",
    "RUNNING",
    "DEACTIVATING",
    "STOPPING",
    "STOPPED",
)


@dataclass(eq=False)
class Cluster:
    name: str
    arn: str
    seq: int
    status: str = ACTIVE
    instances: list[ContainerInstance] = field(default_factory=list)
    services: dict[str, Service] = field(default_factory=dict)
    tasks: list[Task] = field(default_factory=list)


@dataclass(eq=False)
class ContainerInstance:
    id: str
    arn: str
    cluster: Cluster
    ec2_instance_id: str
    max_tasks: int
    registered_at: datetime
    seq: int
    status: str = ACTIVE
    agent_connected: bool = True
    version: int = 1
    tasks: list[Task] = field(default_factory=list)

    @property
    def placeable(self) -> bool:
        return self.status == ACTIVE and self.agent_connected

    @property
    def running_tasks_count(self) -> int:
        # API reference: "tasks … that have a desired status (desiredStatus) of RUNNING";
        # a task already told to stop is not counted although it still runs (aws/aws-cdk#13506).
        return sum(
            1 for t in self.tasks if t.desired_status == RUNNING and t.last_status == RUNNING
        )

    @property
    def pending_tasks_count(self) -> int:
        return sum(
            1 for t in self.tasks if t.desired_status == RUNNING and t.last_status == PENDING
        )

    @property
    def replica_load(self) -> int:
        # Capacity model: every live non-daemon task uses one of `max_tasks` slots.
        return sum(1 for t in self.tasks if t.live and not t.is_daemon)


@dataclass(eq=False)
class Service:
    cluster: Cluster
    name: str
    arn: str
    desired: int
    min_healthy: int
    max_percent: int
    start_seconds: float
    stop_seconds: float
    deregistration_delay_seconds: float
    daemon: bool
    deployment_id: str
    created_at: datetime
    tasks: list[Task] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def family(self) -> str:
        return self.name


@dataclass(eq=False)
class Task:
    id: str
    arn: str
    cluster: Cluster
    instance: ContainerInstance
    service: Service | None
    family: str
    group: str
    started_by: str | None
    created_at: datetime
    seq: int
    start_seconds: float
    stop_seconds: float
    deregistration_delay_seconds: float
    runs_for_seconds: float | None = None
    last_status: str = PENDING
    desired_status: str = RUNNING
    started_at: datetime | None = None
    stopping_at: datetime | None = None
    stopped_at: datetime | None = None
    stop_code: str | None = None
    stopped_reason: str | None = None
    version: int = 1
    killed: bool = False
    timer: Timer | None = None

    @property
    def live(self) -> bool:
        return self.last_status != STOPPED

    @property
    def is_daemon(self) -> bool:
        return self.service is not None and self.service.daemon


SLOT_CPU, SLOT_MEMORY = 256, 512  # what one task (one slot) reserves

VERSION_INFO = {"agentVersion": "1.89.0", "agentHash": "0a1b2c3d", "dockerVersion": "25.0.8"}


def resources(slots: int) -> list[dict[str, Any]]:
    # Tasks are modelled as slots; CPU/MEMORY scale with them only to look plausible.
    return [
        {"name": "CPU", "type": "INTEGER", "integerValue": SLOT_CPU * slots},
        {"name": "MEMORY", "type": "INTEGER", "integerValue": SLOT_MEMORY * slots},
    ]
