"""Every Lambda of the drainer, declared once: handler, timeout, and what it may do in AWS.

A declaration is plain data. The stack (stacks/permissions.py) turns its grants into the
statements of the function's own role and acknowledges the cdk-nag findings their wildcards
raise, with the reasons written here; the sandbox provisions the same functions. No other
place names what a function may do.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stacks.config import DrainerConfig

ECS_IDS = (
    "Task, service and container-instance ids are unknown at deploy time; the wildcard stays "
    "inside one configured cluster's ARN path."
)
NOT_RESOURCE_SCOPED = "read-only and supports no resource-level permissions"


class On(Enum):
    """What a grant's actions act on; the stack turns each kind into the ARNs of this stack's
    configuration (every configured cluster or group by its own ARN)."""

    CLUSTERS = "the configured clusters"
    CONTAINER_INSTANCES = "the configured clusters' container instances"
    TASKS = "the configured clusters' tasks"
    SERVICES = "the configured clusters' services"
    GROUPS = "the configured Auto Scaling groups"
    CLAIMS_TABLE = "the claims table"
    OUTCOME_TOPIC = "the outcome topic (and the KMS key that encrypts it)"
    OWN_EXECUTIONS = "this state machine's executions"
    DRAIN_EVENTS = "the default event bus, for the drainer's own source only"
    STATE_MACHINE = "this state machine"
    DEAD_LETTERS = "the dead-letter queue (failed asynchronous invocations)"
    ANYTHING = "*"


# Why the wildcard in a kind's ARNs is acknowledged (cdk-nag AwsSolutions-IAM5); a kind
# without an entry has no wildcard. ANYTHING has none on purpose: each grant on `*` says why.
WILDCARD_REASONS: dict[On, str] = {
    On.CONTAINER_INSTANCES: ECS_IDS,
    On.TASKS: ECS_IDS,
    On.SERVICES: ECS_IDS,
    On.GROUPS: (
        "An Auto Scaling group ARN embeds a generated id; the wildcard stands for that id only, "
        "the group name is fixed."
    ),
    On.OWN_EXECUTIONS: (
        "Reads this drainer's own executions only; each execution's name is made from its event "
        "at run time."
    ),
    On.OUTCOME_TOPIC: (
        "CDK's topic grant: publishing to the KMS-encrypted topic needs GenerateDataKey* on "
        "that one key."
    ),
}


@dataclass(frozen=True)
class Grant:
    """Some actions on one kind of resource. `why` is required on `*` (it becomes the cdk-nag
    acknowledgment). `only_if` names a configuration setting (or a property of the configuration):
    the grant exists only when it is set (truthy)."""

    actions: tuple[str, ...]
    on: On
    why: str = ""
    only_if: str | None = None

    def __post_init__(self) -> None:
        if self.on is On.ANYTHING and not self.why:
            raise ValueError(f"{self.actions} on *: say why no resource can be named")
        if self.on is On.OUTCOME_TOPIC and self.actions != ("sns:Publish",):
            raise ValueError("the outcome topic is granted as CDK's grant_publish: sns:Publish")
        if self.on is On.DEAD_LETTERS and self.actions != ("sqs:SendMessage",):
            raise ValueError("Lambda sends failed asynchronous invocations with sqs:SendMessage")

    def applies(self, config: DrainerConfig) -> bool:
        return self.only_if is None or bool(getattr(config, self.only_if))

    @property
    def wildcard_reason(self) -> str | None:
        if self.on is On.ANYTHING:
            return f"{', '.join(self.actions)}: {self.why}"
        return WILDCARD_REASONS.get(self.on)


def allow(*actions: str, on: On, why: str = "", only_if: str | None = None) -> Grant:
    return Grant(actions, on, why, only_if)


@dataclass(frozen=True)
class Function:
    """One Lambda: its placeholder stem in the ASL file, its handler, what it does, how long it
    may run, and what its role may do.

    `invoked_by_events`: an EventBridge rule invokes it, asynchronously. Lambda then owns the
    event: it retries a function error twice and otherwise drops the event, unless the function
    has a dead-letter queue ("How Lambda handles errors and retries with asynchronous
    invocation", https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html;
    "Capturing records of Lambda asynchronous invocations",
    https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html). The stack
    gives such a function the alarmed dead-letter queue; its role sends there (SEND_UNDELIVERED),
    as Lambda sends with the function's own role."""

    name: str
    handler: str
    description: str
    grants: tuple[Grant, ...] = ()
    timeout_seconds: int = 60
    invoked_by_events: bool = False

    def __post_init__(self) -> None:
        sends = any(grant.on is On.DEAD_LETTERS for grant in self.grants)
        if sends != self.invoked_by_events:
            raise ValueError(
                f"{self.name}: exactly the functions EventBridge invokes send what Lambda gives "
                "up on to the dead-letter queue (grant SEND_UNDELIVERED, invoked_by_events=True)"
            )

    @property
    def placeholder(self) -> str:
        return f"{self.name}FunctionArn"

    def grants_for(self, config: DrainerConfig) -> tuple[Grant, ...]:
        """The grants this configuration switches on."""
        return tuple(grant for grant in self.grants if grant.applies(config))


# The ECS reads a drain makes on an instance's tasks (poll_tasks and stop_tasks list them alike).
TASK_READS = (
    allow("ecs:ListTasks", on=On.CONTAINER_INSTANCES),
    allow("ecs:DescribeTasks", on=On.TASKS),
    allow("ecs:DescribeServices", on=On.SERVICES),
)
# Resolve claims lifecycle and rebalance drains; StartDrain claims (and parks) Spot drains.
CLAIM_WRITES = allow("dynamodb:PutItem", "dynamodb:GetItem", on=On.CLAIMS_TABLE)
# The drainer's own "ECS Drain Started/Finished" events (drainer/notices.py), and the optional
# drain-started notice on the topic.
PUT_DRAIN_EVENTS = allow("events:PutEvents", on=On.DRAIN_EVENTS)
STARTED_NOTICE = allow("sns:Publish", on=On.OUTCOME_TOPIC, only_if="notifies_drain_started")
# What Lambda gives up on, sent to the dead-letter queue with the function's role.
SEND_UNDELIVERED = allow("sqs:SendMessage", on=On.DEAD_LETTERS)
# Event-woken drains (drain_end_detection = "events", lambdas/drainer/watch.py): the watch item's
# one UpdateItem, and the callback's wake-up. SendTaskSuccess names no resource: a task token
# is its only scope (Service Authorization Reference, AWS Step Functions,
# https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsstepfunctions.html).
WATCH_WRITE = allow("dynamodb:UpdateItem", on=On.CLAIMS_TABLE, only_if="ends_drains_on_events")
SEND_WAKE_UP = allow(
    "states:SendTaskSuccess",
    on=On.ANYTHING,
    why="takes no resource (Service Authorization Reference, AWS Step Functions): the task "
    'token is its only scope; granted only with drain_end_detection = "events".',
    only_if="ends_drains_on_events",
)
# The report (and the rescue's) deletes the drain's watch.
WATCH_CLOSE = allow("dynamodb:DeleteItem", on=On.CLAIMS_TABLE, only_if="ends_drains_on_events")
DESCRIBE_AUTO_SCALING_INSTANCES = allow(
    "autoscaling:DescribeAutoScalingInstances",
    on=On.ANYTHING,
    why=f"{NOT_RESOURCE_SCOPED} (Service Authorization Reference, Amazon EC2 Auto Scaling).",
)

FUNCTIONS: tuple[Function, ...] = (
    Function(
        "Resolve",
        "resolve.handler",
        "Parse an event into a drain request; find the instance; claim a lifecycle/rebalance drain",
        grants=(
            allow("ecs:ListContainerInstances", on=On.CLUSTERS),
            allow("ecs:DescribeContainerInstances", on=On.CONTAINER_INSTANCES),
            DESCRIBE_AUTO_SCALING_INSTANCES,
            allow(
                "autoscaling:DescribeLifecycleHooks",
                on=On.ANYTHING,
                why=f"{NOT_RESOURCE_SCOPED} (Service Authorization Reference, Amazon EC2 Auto "
                "Scaling); a lifecycle drain lists its group's other terminate hooks.",
            ),
            # Test-source Spot/rebalance events act only on instances tagged to opt in.
            allow(
                "ec2:DescribeTags",
                on=On.ANYTHING,
                why=f"{NOT_RESOURCE_SCOPED} (Service Authorization Reference, Amazon EC2); "
                "granted only while test events are on, to read an instance's opt-in tag.",
                only_if="test_event_source",
            ),
            CLAIM_WRITES,
            # A lifecycle drain's start slot (drainer/pacing.py).
            allow("dynamodb:UpdateItem", on=On.CLAIMS_TABLE),
        ),
    ),
    Function(
        "StartDrain",
        "start_drain.handler",
        "Set the container instance to DRAINING; then claim a Spot drain",
        grants=(
            # A lifecycle drain finds its container instance here, after its start slot.
            allow("ecs:ListContainerInstances", on=On.CLUSTERS),
            allow("ecs:DescribeContainerInstances", on=On.CONTAINER_INSTANCES),
            allow("ecs:UpdateContainerInstancesState", on=On.CONTAINER_INSTANCES),
            CLAIM_WRITES,
            PUT_DRAIN_EVENTS,
            STARTED_NOTICE,
        ),
    ),
    Function(
        "PollTasks",
        "poll_tasks.handler",
        "Count tasks still alive; decide the next step",
        # The per-cluster cache of daemon service names (drainer/services.py); the heartbeat
        # that falls due at a poll is recorded there.
        grants=(
            *TASK_READS,
            allow("autoscaling:RecordLifecycleActionHeartbeat", on=On.GROUPS),
            allow(
                "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", on=On.CLAIMS_TABLE
            ),
        ),
    ),
    Function(
        "RecordHeartbeat",
        "record_heartbeat.handler",
        "Record a lifecycle heartbeat",
        grants=(allow("autoscaling:RecordLifecycleActionHeartbeat", on=On.GROUPS),),
    ),
    Function(
        "StopTasks",
        "stop_tasks.handler",
        "Stop standalone tasks or stragglers",
        grants=(*TASK_READS, allow("ecs:StopTask", on=On.TASKS)),
    ),
    Function(
        "CompleteAction",
        "complete_action.handler",
        "Complete the lifecycle action",
        grants=(allow("autoscaling:CompleteLifecycleAction", on=On.GROUPS),),
    ),
    Function(
        "ReplaceInstance",
        "replace_instance.handler",
        "Ask Auto Scaling to replace an instance",
        grants=(
            allow("autoscaling:TerminateInstanceInAutoScalingGroup", on=On.GROUPS),
            DESCRIBE_AUTO_SCALING_INSTANCES,
        ),
    ),
    Function(
        "ReportOutcome",
        "report_outcome.handler",
        "Publish the outcome: metrics, SNS",
        grants=(
            allow("dynamodb:UpdateItem", on=On.CLAIMS_TABLE),  # releases the claim
            WATCH_CLOSE,
            allow("sns:Publish", on=On.OUTCOME_TOPIC),
            PUT_DRAIN_EVENTS,
        ),
    ),
    Function(
        "AwaitStops",
        "await_stops.handler",
        "Arm an event-woken wait: store its task token in the instance's watch",
        grants=(WATCH_WRITE, SEND_WAKE_UP),
        # One UpdateItem and perhaps one SendTaskSuccess.
        timeout_seconds=30,
    ),
)

# Not part of the state machine: EventBridge invokes it when a drain execution itself fails.
RESCUE_FUNCTION = Function(
    "RescueExecution",
    "rescue_execution.handler",
    "Complete the lifecycle action of a drain execution that failed, timed out or was aborted",
    grants=(
        # The heartbeat keeps the action alive through the grace it gives a drain.
        allow(
            "autoscaling:CompleteLifecycleAction",
            "autoscaling:RecordLifecycleActionHeartbeat",
            on=On.GROUPS,
        ),
        allow("states:GetExecutionHistory", on=On.OWN_EXECUTIONS),
        # GetItem: a failed duplicate leaves the action to the claim's owner.
        allow("dynamodb:GetItem", "dynamodb:UpdateItem", on=On.CLAIMS_TABLE),
        WATCH_CLOSE,
        allow("sns:Publish", on=On.OUTCOME_TOPIC),
        PUT_DRAIN_EVENTS,
        SEND_UNDELIVERED,
    ),
    # A rescue that still fails after Lambda's retries must not vanish: the lifecycle action
    # would stay open until its hook times out. It lands in the alarmed dead-letter queue.
    invoked_by_events=True,
    # It may wait up to rescue_grace_seconds (at most 300) before completing, as the state
    # machine's rescue path does, then complete and report: 2 minutes to spare.
    timeout_seconds=420,
)

# Not part of the state machine: EventBridge invokes it when a container instance of a configured
# cluster is connected and DRAINING; it sets a Spot instance the drainer parked ACTIVE again
# (lambdas/drainer/parking.py).
REACTIVATE_FUNCTION = Function(
    "ReactivateInstance",
    "reactivate_instance.handler",
    "Set a Spot instance drained for a stop/hibernate interruption ACTIVE when it comes back",
    grants=(
        allow("ecs:UpdateContainerInstancesState", on=On.CONTAINER_INSTANCES),
        allow("dynamodb:GetItem", "dynamodb:DeleteItem", on=On.CLAIMS_TABLE),
        SEND_UNDELIVERED,
    ),
    invoked_by_events=True,
)

# Not part of the state machine: the three drain rules invoke it with their event; it starts the
# drain execution under a name made from the event (lambdas/dispatch.py). Lambda sends an event
# whose start still fails after its two retries to the dead-letter queue (the stack's undelivered
# events alarm watches it).
DISPATCH_FUNCTION = Function(
    "Dispatch",
    "dispatch.handler",
    "Start the drain execution of an event, named after the instance it drains",
    grants=(
        allow("states:StartExecution", on=On.STATE_MACHINE),
        # A closed execution of the same name: was it this very event?
        allow("states:DescribeExecution", on=On.OWN_EXECUTIONS),
        SEND_UNDELIVERED,
    ),
    invoked_by_events=True,
    # A start is one or two API calls; the SDK's own retries of a throttled one fit easily.
    timeout_seconds=30,
)

# Not part of the state machine: with drain_end_detection = "events", the task-stopped rule
# invokes it for every task of the configured clusters that stops (lambdas/wake_drain.py); it
# records the stop against a draining instance's watch and wakes the drain's wait. The
# instance-draining rule invokes it too: it notes in the watch when DRAINING began.
WAKE_FUNCTION = Function(
    "WakeDrain",
    "wake_drain.handler",
    "Record task stops and the DRAINING moment in a draining instance's watch; wake its drain "
    "when the last task stops",
    grants=(WATCH_WRITE, SEND_WAKE_UP, SEND_UNDELIVERED),
    invoked_by_events=True,
    timeout_seconds=30,
)

ALL_FUNCTIONS: tuple[Function, ...] = (
    *FUNCTIONS,
    RESCUE_FUNCTION,
    REACTIVATE_FUNCTION,
    DISPATCH_FUNCTION,
    WAKE_FUNCTION,
)
