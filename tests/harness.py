"""The real orchestrator on moto and the simulated world, on the world's virtual clock.

Provisioned from the stack's own sources: the ASL file with the stack's substitutions, the
stack's event patterns, the Lambda code and the settings the stack writes. moto runs the state
machine (its ASL interpreter) and DynamoDB/SNS; the world answers ECS and Auto Scaling; each
Lambda invocation reaches the real handler in-process through moto's Lambda seam.
"""

from __future__ import annotations

import importlib
import io
import json
import threading
import traceback
import uuid
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import boto3
from moto import mock_aws
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.events.models import EventPattern
from moto.stepfunctions.parser.models import stepfunctions_parser_backends

from stacks.config import DrainerConfig
from stacks.definition import FUNCTIONS, render, substitutions
from stacks.event_patterns import event_patterns
from tests.conftest import install_settings

ACCOUNT = "123456789012"
REGION = "us-east-1"
CLAIMS_TABLE = "ecs-drainer-claims"
HANDLERS = {function.name: function.handler for function in FUNCTIONS}


@dataclass
class Delivery:
    """One event EventBridge delivered to the state machine."""

    rule: str
    event: dict[str, Any]
    execution_arn: str


@dataclass
class Harness:
    world: Any
    config: DrainerConfig
    invocations: Counter = field(default_factory=Counter)
    deliveries: list[Delivery] = field(default_factory=list)
    lambda_errors: list[str] = field(default_factory=list)
    # function name -> faults for its next invocations: an exception the handler raises, or
    # the name of a Lambda service error (e.g. "Lambda.ServiceException")
    lambda_faults: dict[str, list[BaseException | str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight = 0  # events accepted by EventBridge, not yet delivered
        self._outcomes: list[dict[str, Any]] = []
        self._patterns = {
            name: EventPattern.load(json.dumps(pattern))
            for name, pattern in event_patterns(self.config).items()
        }

    # --- set-up ------------------------------------------------------------------------
    def __enter__(self) -> Harness:
        self._mock = mock_aws(
            config={
                "stepfunctions": {"execute_state_machine": True},
                "lambda": {"use_docker": False},
            }
        )
        self._mock.start()
        self._world_ctx = self.world.install()
        self._world_ctx.__enter__()
        self._original_invoke = LambdaSimpleBackend.invoke
        harness = self

        def invoke(backend, function_name, qualifier, body, headers, response_headers):
            return harness._invoke(function_name, body, response_headers)

        LambdaSimpleBackend.invoke = invoke
        self._provision()
        self.world.subscribe(self.deliver)
        return self

    def __exit__(self, *exc: object) -> None:
        LambdaSimpleBackend.invoke = self._original_invoke
        self._world_ctx.__exit__(*exc)
        self._mock.stop()

    def _provision(self) -> None:
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        dynamodb.create_table(
            TableName=CLAIMS_TABLE,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        )
        self.topic_arn = boto3.client("sns", region_name=REGION).create_topic(
            Name="ecs-drainer-outcomes"
        )["TopicArn"]
        self.outcomes_queue = self._subscribe_queue()
        install_settings(self.config, CLAIMS_TABLE, self.topic_arn)
        role = boto3.client("iam", region_name=REGION).create_role(
            RoleName="ecs-drainer", AssumeRolePolicyDocument="{}"
        )["Role"]["Arn"]
        lambdas = boto3.client("lambda", region_name=REGION)
        arns = {}
        for function in FUNCTIONS:
            arns[function.name] = lambdas.create_function(
                FunctionName=f"ecs-drainer-{function.name}",
                Runtime="python3.13",
                Role=role,
                Handler=function.handler,
                Code={"ZipFile": _empty_zip()},
                Environment={
                    "Variables": {
                        "DRAINER_SETTINGS": self.config.lambda_settings(
                            CLAIMS_TABLE, self.topic_arn
                        )
                    }
                },
            )["FunctionArn"]
        self._function_names = {f"ecs-drainer-{name}": name for name in arns}
        self.sfn = boto3.client("stepfunctions", region_name=REGION)
        self.state_machine_arn = self.sfn.create_state_machine(
            name="ecs-drainer",
            roleArn=role,
            type="STANDARD",
            definition=json.dumps(render(substitutions(arns))),
        )["stateMachineArn"]

    def _subscribe_queue(self) -> str:
        sqs = boto3.client("sqs", region_name=REGION)
        url = sqs.create_queue(QueueName="outcomes")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        boto3.client("sns", region_name=REGION).subscribe(
            TopicArn=self.topic_arn,
            Protocol="sqs",
            Endpoint=arn,
            Attributes={"RawMessageDelivery": "true"},
        )
        return url

    # --- the Lambda seam -----------------------------------------------------------------
    def _invoke(self, function_name: str, body: Any, response_headers: dict[str, str]) -> bytes:
        name = self._function_names[function_name.rsplit(":", 1)[-1]]
        with self._lock:
            self.invocations[name] += 1
            faults = self.lambda_faults.get(name)
            fault = faults.pop(0) if faults else None
        try:
            if isinstance(fault, str):  # a Lambda service error, by its error name
                response_headers["x-amz-function-error"] = "Unhandled"
                return json.dumps({"errorType": fault, "errorMessage": "injected"}).encode()
            if fault is not None:
                raise fault
            module_name, attribute = HANDLERS[name].rsplit(".", 1)
            handler = getattr(importlib.import_module(module_name), attribute)
            result = handler(json.loads(body), None)
            return json.dumps(result).encode()
        except Exception as error:  # what Lambda does with an unhandled exception
            response_headers["x-amz-function-error"] = "Unhandled"
            with self._lock:
                self.lambda_errors.append(f"{name}: {type(error).__name__}: {error}")
            return json.dumps(
                {
                    "errorType": type(error).__name__,
                    "errorMessage": str(error),
                    "stackTrace": traceback.format_exception(error)[-3:],
                }
            ).encode()

    # --- EventBridge -----------------------------------------------------------------------
    def deliver(self, event: dict[str, Any]) -> None:
        """EventBridge: asynchronous, so an event emitted inside an API call (a Lambda's
        TerminateInstanceInAutoScalingGroup starting a lifecycle action) is delivered after it."""
        with self._lock:
            self._in_flight += 1
        self.world.clock.call_later(0, lambda: self._start_executions(event), "EventBridge")

    def _start_executions(self, event: dict[str, Any]) -> None:
        """Every rule whose pattern matches starts an execution with the event."""
        for name, pattern in self._patterns.items():
            if pattern.matches_event(event):
                # A classic rule target cannot name executions: AWS names them at random
                # (moto would name them all "None" and refuse the second one).
                arn = self.sfn.start_execution(
                    stateMachineArn=self.state_machine_arn,
                    name=str(uuid.uuid4()),
                    input=json.dumps(event),
                )["executionArn"]
                self.deliveries.append(Delivery(name, event, arn))
        with self._lock:
            self._in_flight -= 1

    def put_events(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """PutEvents as AWS does it: `aws.*` sources refused, envelope filled in."""
        results = []
        for entry in entries:
            if entry["Source"].startswith("aws."):
                results.append(
                    {
                        "ErrorCode": "NotAuthorizedForSourceException",
                        "ErrorMessage": "Not authorized for the source.",
                    }
                )
                continue
            event = {
                "version": "0",
                "id": str(uuid.uuid4()),
                "detail-type": entry["DetailType"],
                "source": entry["Source"],
                "account": ACCOUNT,
                "time": self.world.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
                "region": REGION,
                "resources": entry.get("Resources", []),
                "detail": json.loads(entry["Detail"]),
            }
            self.deliver(event)
            results.append({"EventId": event["id"]})
        return results

    # --- running -----------------------------------------------------------------------------
    def _executions(self) -> list[Any]:
        return stepfunctions_parser_backends[ACCOUNT][REGION]._get_executions()

    def running(self) -> int:
        return sum(1 for execution in self._executions() if execution.status == "RUNNING")

    def run(self, max_virtual_seconds: float = 3 * 86400, wall_timeout: float = 60.0) -> None:
        """Drive the clock until every execution has ended."""
        done = self.world.clock.run(
            until=lambda: self.running() == 0 and self._in_flight == 0,
            active=self.running,
            max_virtual_seconds=max_virtual_seconds,
            wall_timeout=wall_timeout,
        )
        assert done, f"executions still running: clock stopped ({self.world.clock.stop_reason})"

    def execution(self, arn: str) -> dict[str, Any]:
        described = self.sfn.describe_execution(executionArn=arn)
        history = self.history(arn)
        output = json.loads(described["output"]) if described.get("output") else None
        # A failed execution has no output: its outcome is in SNS (see outcomes()).
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
        """Every outcome published to SNS so far, in order."""
        sqs = boto3.client("sqs", region_name=REGION)
        while True:
            batch = sqs.receive_message(QueueUrl=self.outcomes_queue, MaxNumberOfMessages=10)
            if not batch.get("Messages"):
                return list(self._outcomes)
            for message in batch["Messages"]:
                self._outcomes.append(json.loads(message["Body"]))
                sqs.delete_message(
                    QueueUrl=self.outcomes_queue, ReceiptHandle=message["ReceiptHandle"]
                )

    def record(self) -> ScenarioRecord:
        """What a scenario measured: per execution, and for the world as a whole."""
        by_arn = {outcome["executionArn"]: outcome for outcome in self.outcomes()}
        drains = []
        for delivery in self.deliveries:
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


def _empty_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("placeholder.py", "# the harness runs the real handlers in-process\n")
    return buffer.getvalue()
