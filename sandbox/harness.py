"""The real orchestrator on moto and the simulated world, on the world's virtual clock.

Provisioned from the stack's own sources by sandbox.deployment (the ASL file with the stack's
substitutions, the stack's event patterns, the Lambda code and the settings the stack writes),
the same code that provisions the local sandbox (`make demo`). moto runs the state machine (its
ASL interpreter) and DynamoDB/SNS; the world answers ECS and Auto Scaling; each Lambda invocation
reaches the real handler in-process through moto's Lambda seam (sandbox.lambda_seam), running as
its function's role from the synthesized stack (simulated_aws/iam/authorization.py: a call the
role does not allow fails as AccessDenied would, and fails the test); EventBridge delivery is
sandbox.eventbridge's. The tests and the benchmark drive it; it lives here, beside the sandbox
it shares its provisioning with, so that neither imports from tests/.
"""

from __future__ import annotations

import json
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import boto3
from moto import mock_aws

from drainer import notices
from sandbox import quotas
from sandbox.deployed_roles import deployed_authorizer
from sandbox.deployment import (
    ACCOUNT,
    CLAIMS_TABLE,
    DEPLOYED_FUNCTIONS,
    MOTO_CONFIG,
    REGION,
    activate,
    counting_executions,
    deploy,
    running_executions,
)
from sandbox.eventbridge import Delivery, DeliveryModel, EventBridge
from sandbox.lambda_seam import LambdaSeam
from simulated_aws.iam import authorization
from simulated_aws.iam.authorization import Authorizer
from stacks.config import DrainerConfig

__all__ = ["ACCOUNT", "CLAIMS_TABLE", "REGION", "Delivery", "Harness", "ScenarioRecord"]


def _client(service: str) -> Any:
    return boto3.client(service, region_name=REGION)


@dataclass
class Harness:
    world: Any
    config: DrainerConfig
    invocations: Counter = field(default_factory=Counter)
    # (function name, version invoked) -> invocations: the state machine calls published versions
    invoked_versions: Counter = field(default_factory=Counter)
    deliveries: list[Delivery] = field(default_factory=list)
    lambda_errors: list[str] = field(default_factory=list)
    # function name -> faults for its next invocations: an exception the handler raises, or
    # the name of a Lambda service error (e.g. "Lambda.ServiceException")
    lambda_faults: dict[str, list[BaseException | str]] = field(default_factory=dict)
    # IAM as the synthesized stack grants it for `config`; a test may give its own (a stack
    # with a grant removed) and set `expect_denials`, else any denied call fails the test
    authorizer: Authorizer | None = None
    expect_denials: bool = False
    # how the bus delivers events (delay, loss, duplicates, order); None: the default model
    delivery: DeliveryModel | None = None
    # False: no queue collects outcomes and notifications (outcomes() then has none). moto's
    # SQS recounts a queue's messages on every send: thousands of drains make that quadratic.
    outcome_queue: bool = True

    def __post_init__(self) -> None:
        self._outcomes: list[dict[str, Any]] = []
        self._notifications: list[dict[str, Any]] = []

    # --- set-up ------------------------------------------------------------------------
    def __enter__(self) -> Harness:
        self._stack = ExitStack()
        try:
            self._set_up()
        except BaseException:
            self._stack.close()  # leave no mock or patch behind
            raise
        return self

    def _set_up(self) -> None:
        self._stack.enter_context(mock_aws(config=MOTO_CONFIG))
        self._stack.enter_context(counting_executions())
        self._stack.enter_context(quotas.enforced())  # what moto accepts and AWS refuses
        self._stack.enter_context(self.world.install())
        if self.authorizer is None:
            self.authorizer = deployed_authorizer(self.config)
        self._stack.enter_context(authorization.installed(self.authorizer))
        seam = LambdaSeam(
            DEPLOYED_FUNCTIONS,
            self.invocations,
            self.lambda_faults,
            self.lambda_errors,
            run_as=self.authorizer.acting_as,
            versions=self.invoked_versions,
        )
        self._stack.enter_context(seam.installed())
        self.deployment = deploy(self.config, _client)
        activate(self.deployment)
        self.topic_arn = self.deployment.topic_arn
        self.state_machine_arn = self.deployment.state_machine_arn
        self.outcomes_queue = self._subscribe_queue() if self.outcome_queue else None
        self.sfn = _client("stepfunctions")
        self.eventbridge = EventBridge(
            self.world.clock,
            self.deployment.rules,
            self.sfn,
            _client("lambda"),
            ACCOUNT,
            REGION,
            deliveries=self.deliveries,
            delivery=self.delivery,
        )
        self.world.subscribe(self.deliver)

    def __exit__(self, *exc: object) -> None:
        self._stack.__exit__(*exc)
        denied = self.access_denied
        if exc[0] is None and denied and not self.expect_denials:
            raise AssertionError(
                "calls the stack's IAM would deny (fix the grant in stacks/functions.py):\n"
                + "\n".join(denied)
            )

    @property
    def access_denied(self) -> list[str]:
        """Every call a role was denied (or could not be authorized), in order."""
        return self.authorizer.denials if self.authorizer is not None else []

    def _subscribe_queue(self) -> str:
        """Every drain's outcome: a queue behind a rule on the drainer's own "ECS Drain
        Finished" events, which carry every outcome (the topic only those notify_outcomes
        names: notifications())."""
        url, arn = _queue("outcomes")
        events = _client("events")
        events.put_rule(
            Name="harness-drain-outcomes",
            EventPattern=json.dumps(
                {"source": [notices.EVENT_SOURCE], "detail-type": [notices.DRAIN_FINISHED]}
            ),
        )
        events.put_targets(Rule="harness-drain-outcomes", Targets=[{"Id": "queue", "Arn": arn}])
        self.notifications_queue, topic_queue = _queue("notifications")
        _client("sns").subscribe(
            TopicArn=self.topic_arn,
            Protocol="sqs",
            Endpoint=topic_queue,
            Attributes={"RawMessageDelivery": "true"},
        )
        return url

    # --- EventBridge -----------------------------------------------------------------------
    def deliver(self, event: dict[str, Any]) -> None:
        """EventBridge: asynchronous, so an event emitted inside an API call (a Lambda's
        TerminateInstanceInAutoScalingGroup starting a lifecycle action) is delivered after it."""
        self.eventbridge.deliver(event)

    def put_events(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """PutEvents as AWS does it: `aws.*` sources refused, envelope filled in."""
        return self.eventbridge.put_events(entries)

    # --- running -----------------------------------------------------------------------------
    def running(self) -> int:
        """The clock's actors: running executions and Lambda targets still at work (else the
        clock could find nothing to do while a target thread is about to act, and stop)."""
        return running_executions() + self.eventbridge.functions_running

    def run(self, max_virtual_seconds: float = 3 * 86400, wall_timeout: float = 60.0) -> None:
        """Drive the clock until every execution has ended."""
        done = self.world.clock.run(
            until=lambda: self.running() == 0 and self.eventbridge.in_flight == 0,
            active=self.running,
            max_virtual_seconds=max_virtual_seconds,
            wall_timeout=wall_timeout,
        )
        assert done, f"executions still running: clock stopped ({self.world.clock.stop_reason})"

    def execution(self, arn: str) -> dict[str, Any]:
        described = self.sfn.describe_execution(executionArn=arn)
        history = self.history(arn)
        output = json.loads(described["output"]) if described.get("output") else None
        # A failed execution has no output: its outcome is in its event (see outcomes()).
        return {
            "status": described["status"],
            "output": output,
            "history": history,
            "outcome": (output or {}).get("outcome"),
        }

    def history(self, arn: str) -> list[dict[str, Any]]:
        events, token = [], None
        while True:
            page = self.sfn.get_execution_history(
                executionArn=arn, maxResults=1000, **({"nextToken": token} if token else {})
            )
            events.extend(page["events"])
            token = page.get("nextToken")
            if not token:
                return events

    def outcomes(self) -> list[dict[str, Any]]:
        """Every outcome put on the bus so far ("ECS Drain Finished" details), in order."""
        if self.outcomes_queue is not None:
            self._outcomes += [json.loads(body)["detail"] for body in _drained(self.outcomes_queue)]
        return list(self._outcomes)

    def notifications(self) -> list[dict[str, Any]]:
        """Every message published to the topic so far, in order."""
        if self.outcomes_queue is not None:
            self._notifications += [json.loads(body) for body in _drained(self.notifications_queue)]
        return list(self._notifications)

    def drain_deliveries(self) -> list[Delivery]:
        """The first delivery of each drain execution, in order: an event delivered again finds
        the execution its first delivery started (the same name) and starts none."""
        first: dict[str, Delivery] = {}
        for delivery in self.deliveries:
            first.setdefault(delivery.execution_arn, delivery)
        return list(first.values())

    def record(self) -> ScenarioRecord:
        """What a scenario measured: per execution, and for the world as a whole."""
        by_arn = {outcome["executionArn"]: outcome for outcome in self.outcomes()}
        drains = []
        for delivery in self.drain_deliveries():
            history = self.history(delivery.execution_arn)
            outcome = by_arn.get(delivery.execution_arn, {})
            drains.append(
                DrainRecord(
                    instance_id=outcome.get("instanceId"),
                    kind=delivery.rule,
                    status=self.sfn.describe_execution(executionArn=delivery.execution_arn)[
                        "status"
                    ],
                    outcome=outcome.get("outcome"),
                    virtual_seconds=(
                        history[-1]["timestamp"] - history[0]["timestamp"]
                    ).total_seconds(),
                    state_transitions=sum(1 for e in history if e["type"].endswith("StateEntered")),
                    history_events=len(history),
                )
            )
        killed = [
            (termination.instance_id, task, status)
            for termination in self.world.terminations
            for task, status in termination.tasks_killed
            if status != "STOPPED"
        ]
        return ScenarioRecord(
            drains=drains,
            lambda_invocations=dict(self.invocations),
            api_calls=self.world.api_call_counts(),
            tasks_killed=killed,
        )


def _queue(name: str) -> tuple[str, str]:
    """A new SQS queue's URL and ARN."""
    sqs = _client("sqs")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def _drained(url: str) -> list[str]:
    """The bodies of every message in the queue, which is left empty."""
    sqs, bodies = _client("sqs"), []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        for message in batch:
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


@dataclass
class DrainRecord:
    instance_id: str | None
    kind: str
    status: str
    outcome: str | None
    virtual_seconds: float
    state_transitions: int
    history_events: int


@dataclass
class ScenarioRecord:
    drains: list[DrainRecord]
    lambda_invocations: dict[str, int]
    api_calls: dict[str, int]
    tasks_killed: list[tuple[str, str, str]]  # (instance, task ARN, lastStatus when killed)

    def __str__(self) -> str:
        lines = [
            f"{d.kind:<24} {d.instance_id} {d.status:<9} {d.outcome!s:<24} "
            f"{d.virtual_seconds:>9.0f}s {d.state_transitions:>5} transitions "
            f"{d.history_events:>6} history events"
            for d in self.drains
        ]
        lines.append(f"lambda invocations: {self.lambda_invocations}")
        lines.append(f"AWS API calls: {self.api_calls}")
        lines.append(f"tasks killed while running: {len(self.tasks_killed)}")
        return "\n".join(lines)
