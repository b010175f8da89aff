"""The two baselines. They live only here: the product has no baseline code.

(a) A fixed 30-second poll: the real state machine and handlers with a configuration that never
    backs off (and polls Spot drains every 30 s too).
(b) The AWS blog sample aws-samples/ecs-cid-sample: one Lambda subscribed to the lifecycle
    hook's SNS topic that, while tasks run, sleeps 5 s and re-publishes the message to the
    topic, so SNS invokes it again. Its code, as of the repository's last commit (0d60dd5,
    2018-08-01), is embedded in cform/ecs.yaml (LambdaFunctionForASG); simulated here call for
    call against the world, on the virtual clock, without Step Functions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import ClientError
from moto import mock_aws

from bench import prices
from bench.scenarios import (
    CLUSTER,
    GROUP,
    DrainMeasure,
    Kind,
    LatencySample,
    action_of,
    api_totals,
    kind_world,
    latency_world,
    lifecycle_latency,
    new_world,
    start_drain,
)
from bench.sim import World
from drainer.history import HISTORY_EVENT_QUOTA, drain_cost
from drainer.schedule import MAX_LIFECYCLE_SECONDS, ceiling_seconds
from stacks.config import ConfigError, DrainerConfig, validate

FIXED_POLL_SECONDS = 30


# --- (a) fixed 30-second poll ----------------------------------------------------------------
def fixed_poll_config(product: DrainerConfig) -> tuple[DrainerConfig, str | None]:
    """The product's configuration with a poll that never backs off, and why validation refuses
    it (None if it does not). Built without validation so it can still run the shorter drains."""
    values = {
        **product.model_dump(),
        "poll_interval_seconds": FIXED_POLL_SECONDS,
        "max_poll_interval_seconds": FIXED_POLL_SECONDS,
        "backoff_after_seconds": MAX_LIFECYCLE_SECONDS,
        "backoff_rate": 1.0,
        "spot_poll_interval_seconds": FIXED_POLL_SECONDS,
    }
    try:
        validate(values, "fixed 30-s poll baseline")
        refusal = None
    except ConfigError as error:
        problems = str(error).split("\n")[1:]  # the first line only names the origin
        refusal = " ".join(p.strip(" -").removeprefix("(whole configuration): ") for p in problems)
    return DrainerConfig.model_construct(**values), refusal


def computed_ceiling_drain(drainer: str, config: DrainerConfig) -> DrainMeasure:
    """A drain to the 48-hour ceiling, from the same per-poll counts configuration validation
    uses (drainer.history.drain_cost). Marked as failing if it would exceed the quota."""
    heartbeat_every = config.heartbeat_timeout_seconds // 3
    seconds = ceiling_seconds(config.max_drain_seconds, config.heartbeat_timeout_seconds)
    cost = drain_cost(config.poll_schedule, seconds, heartbeat_every, to_ceiling=True)
    measure = DrainMeasure(
        drainer=drainer,
        kind="48 h ceiling",
        outcome=None,
        transitions=cost.state_transitions,
        history_events=cost.history_events,
        lambda_invocations=cost.polls + cost.heartbeats + 6,  # + resolve … report, stragglers
        # three per poll and one more snapshot before StopTask; locate (2), DRAINING,
        # DescribeServices, StopTask
        ecs_calls=3 * (cost.polls + 1) + 5,
        asg_calls=cost.heartbeats + 1,
        status="computed",
    )
    if cost.history_events > HISTORY_EVENT_QUOTA:
        hours = seconds_until_quota(config, heartbeat_every) / 3600
        measure.status = "fails: history quota"
        measure.note = (
            f"needs {cost.history_events:,} history events (quota {HISTORY_EVENT_QUOTA:,}): the "
            f"execution would fail after about {hours:.1f} h, past its own Catch; only the "
            "ExecutionFailed rule's rescue function would complete the action, tasks still running"
        )
    return measure


def seconds_until_quota(config: DrainerConfig, heartbeat_every: int) -> float:
    """Seconds of draining after which the execution's history reaches the quota."""
    low, high = 0, MAX_LIFECYCLE_SECONDS
    while high - low > 1:
        middle = (low + high) // 2
        events = drain_cost(config.poll_schedule, middle, heartbeat_every, True).history_events
        low, high = (middle, high) if events <= HISTORY_EVENT_QUOTA else (low, middle)
    return float(low)


# --- (b) aws-samples/ecs-cid-sample --------------------------------------------------------------
SAMPLE = "ecs-cid-sample (SNS loop)"
SAMPLE_HOOK = "ecs-cid-sample"
# Its lifecycle hook (cform/ecs.yaml ASGTerminateHook): HeartbeatTimeout 900, DefaultResult
# ABANDON. The function never records a heartbeat.
SAMPLE_HEARTBEAT_TIMEOUT = 900
SAMPLE_DEFAULT_RESULT = "ABANDON"
SAMPLE_PROFILE = prices.LambdaProfile(memory_mb=128, architecture="x86_64")  # MemorySize: 128
# One loop turn: ~100 ms of API calls, time.sleep(5), Publish; SNS delivery assumed instant.
LOOP_PERIOD_SECONDS = (prices.SAMPLE_API_MS + prices.SAMPLE_SLEEP_MS) / 1000
# Lambda's recursive loop detection (default since July 2023) stops an SNS → Lambda → SNS chain
# after 16 invocations (Lambda developer guide, "Recursive loop detection";
# aws-samples/ecs-cid-sample#30; boto/boto3#3899).
LOOP_DETECTION_LIMIT = 16
# Asynchronous invocation: a failed invocation is retried twice, after about 1 and 2 minutes
# (Lambda developer guide, "Asynchronous invocation").
ASYNC_RETRY_DELAYS = (60, 120)


@dataclass
class SampleLoop:
    """The sample's function, driven by SNS deliveries on the world's virtual clock."""

    world: World
    loop_detection: bool
    invocations: int = 0
    publishes: int = 0
    billed_ms: float = 0.0
    stopped_by_loop_detection: int = 0
    errors: list[str] = field(default_factory=list)
    pending: int = 0

    def __post_init__(self) -> None:
        self.ecs = boto3.client("ecs", region_name="us-east-1")
        self.asg = boto3.client("autoscaling", region_name="us-east-1")

    def on_event(self, event: dict[str, Any]) -> None:
        """The hook notifies its SNS topic; SNS invokes the function (chain depth 1)."""
        if event.get("detail-type") == "EC2 Instance-terminate Lifecycle Action":
            self._schedule(0, json.dumps(event["detail"]), depth=1, attempt=1)

    def _schedule(self, delay: float, message: str, depth: int, attempt: int) -> None:
        self.pending += 1

        def fire() -> None:
            self.pending -= 1
            self.invoke(message, depth, attempt)

        self.world.call_later(delay, fire, "ecs-cid-sample invocation")

    def invoke(self, message: str, depth: int, attempt: int) -> None:
        """lambda_handler(event, context), transcribed from cform/ecs.yaml."""
        self.invocations += 1
        msg = json.loads(message)
        if "TERMINATING" not in msg.get("LifecycleTransition", ""):
            self.billed_ms += prices.SAMPLE_API_MS
            return
        try:
            if self.instance_has_running_tasks(msg["EC2InstanceId"]):
                self.billed_ms += prices.SAMPLE_API_MS + prices.SAMPLE_SLEEP_MS
                self.publishes += 1  # SNS.publish(TopicArn=…, Message=json.dumps(msg))
                if self.loop_detection and depth >= LOOP_DETECTION_LIMIT:
                    self.stopped_by_loop_detection += 1
                else:
                    self._schedule(LOOP_PERIOD_SECONDS, json.dumps(msg), depth + 1, attempt=1)
            else:
                self.billed_ms += prices.SAMPLE_API_MS
                self.asg.complete_lifecycle_action(
                    LifecycleHookName=msg["LifecycleHookName"],
                    AutoScalingGroupName=msg["AutoScalingGroupName"],
                    LifecycleActionResult="CONTINUE",
                    InstanceId=msg["EC2InstanceId"],
                )
        except ClientError as error:  # unhandled in the sample: the invocation fails
            self.errors.append(str(error))
            if attempt <= len(ASYNC_RETRY_DELAYS):
                self._schedule(ASYNC_RETRY_DELAYS[attempt - 1], message, depth, attempt + 1)

    def instance_has_running_tasks(self, instance_id: str) -> bool:
        arn, status, running = self.find_ecs_instance_info(instance_id)
        if arn is None:
            return False  # "Letting autoscaling kill the instance."
        if status != "DRAINING":
            self.ecs.update_container_instances_state(
                cluster=CLUSTER, containerInstances=[arn], status="DRAINING"
            )
        # runningTasksCount counts neither DEACTIVATING nor STOPPING tasks (aws/aws-cdk#13506).
        return running > 0

    def find_ecs_instance_info(self, instance_id: str) -> tuple[str | None, str | None, int]:
        for page in self.ecs.get_paginator("list_container_instances").paginate(cluster=CLUSTER):
            arns = page["containerInstanceArns"]
            if not arns:
                continue
            described = self.ecs.describe_container_instances(
                cluster=CLUSTER, containerInstances=arns
            )
            for instance in described["containerInstances"]:
                if instance["ec2InstanceId"] == instance_id:
                    return (
                        instance["containerInstanceArn"],
                        instance["status"],
                        instance["runningTasksCount"],
                    )
        return None, None, 0

    @property
    def cost(self) -> float:
        return (
            self.invocations * prices.LAMBDA_PER_REQUEST
            + SAMPLE_PROFILE.duration_cost(self.billed_ms)
            + self.publishes * prices.SNS_PER_PUBLISH
        )


def sample_world() -> World:
    return new_world(SAMPLE_HOOK, SAMPLE_HEARTBEAT_TIMEOUT, SAMPLE_DEFAULT_RESULT)


def run_sample(
    world: World, start: Callable[[], None], loop_detection: bool, horizon_seconds: float
) -> SampleLoop:
    """Drive the world until every lifecycle action ended and no invocation is pending."""
    with mock_aws(), world.install(moto_waits=False):
        loop = SampleLoop(world, loop_detection)
        world.subscribe(loop.on_event)
        start()

        def done() -> bool:
            actions = world.lifecycle_actions
            return loop.pending == 0 and bool(actions) and all(not a.active for a in actions)

        if not world.clock.run(done, max_virtual_seconds=horizon_seconds, wall_timeout=120):
            raise AssertionError(f"ecs-cid-sample run did not settle ({world.clock.stop_reason})")
    return loop


def run_sample_kind(kind: Kind, loop_detection: bool) -> DrainMeasure:
    drainer = SAMPLE if loop_detection else f"{SAMPLE}, loop detection off"
    if kind.spot:
        return DrainMeasure(
            drainer=drainer,
            kind=kind.name,
            outcome=None,
            transitions=None,
            history_events=None,
            lambda_invocations=0,
            ecs_calls=0,
            asg_calls=0,
            status="not handled",
            note="subscribes to the lifecycle hook only: a Spot warning starts no drain",
        )
    world = sample_world()
    victim = kind_world(kind, world)
    loop = run_sample(world, lambda: start_drain(world, victim, kind), loop_detection, 3 * 86400)
    ecs, asg = api_totals(world.api_call_counts())
    action = action_of(world, victim)
    sample = lifecycle_latency(world, victim, kind.workload_seconds or 0)
    return DrainMeasure(
        drainer=drainer,
        kind=kind.name,
        outcome=describe_end(action.ended_by, sample.tasks_killed if sample else 0),
        transitions=None,
        history_events=None,
        lambda_invocations=loop.invocations,
        ecs_calls=ecs,
        asg_calls=asg,
        sns_publishes=loop.publishes,
        billed_lambda_ms=loop.billed_ms,
        latency_seconds=sample.latency_seconds if sample else None,
        tasks_killed=sample.tasks_killed if sample else 0,
        ended_by=action.ended_by,
        cost_usd=loop.cost,
        note="loop stopped by recursion detection" if loop.stopped_by_loop_detection else "",
    )


def run_sample_latency(lengths: list[float], loop_detection: bool) -> list[LatencySample]:
    world = sample_world()
    victims = latency_world(lengths, world)

    def start() -> None:
        for victim in victims:
            world.asg.scale_in(GROUP, victim)

    run_sample(world, start, loop_detection, 86400)
    samples = [lifecycle_latency(world, v, n) for v, n in zip(victims, lengths, strict=True)]
    return [sample for sample in samples if sample is not None]


def describe_end(ended_by: str | None, killed: int) -> str:
    how = {
        "completed": "completed",
        "heartbeat-timeout": "heartbeat timeout (ABANDON)",
        "global-timeout": "global timeout",
        "instance-terminated": "instance terminated",
    }.get(ended_by or "", str(ended_by))
    return f"{how}, {killed} task(s) killed" if killed else how
