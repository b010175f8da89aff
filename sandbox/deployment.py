"""The orchestrator's resources on moto, from the stack's own sources.

What stacks/drainer_stack.py deploys, minus what moto cannot run or nobody here reads (KMS,
alarms, X-Ray, dead-letter queues): the claims table, the outcome topic, one Lambda per
stacks.functions declaration with the DRAINER_SETTINGS the stack writes, a published version of
each function the state machine calls, the state machine from the ASL file with the stack's
substitutions (those version ARNs, as the stack's), and the EventBridge rules from
stacks.event_patterns (they target the functions themselves, as the stack's do: the three drain
rules the dispatch function, which starts each execution under its event's name).
Used by the tests (mock_aws) and by the sandbox server (moto over HTTP) alike.
"""

from __future__ import annotations

import io
import json
import os
import threading
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication
from moto.stepfunctions.parser.models import stepfunctions_parser_backends

from drainer import aws, settings
from drainer.settings import STATE_MACHINE_VARIABLE
from sandbox.endpoint import ACCOUNT, REGION, STATE_MACHINE_NAME
from sandbox.eventbridge import Rule
from stacks.config import DrainerConfig
from stacks.definition import render, substitutions
from stacks.event_patterns import (
    event_patterns,
    execution_failure_pattern,
    instance_draining_pattern,
    instance_return_pattern,
    task_stopped_pattern,
)
from stacks.functions import (
    ALL_FUNCTIONS,
    DISPATCH_FUNCTION,
    FUNCTIONS,
    REACTIVATE_FUNCTION,
    RESCUE_FUNCTION,
    WAKE_FUNCTION,
    Function,
)

CLAIMS_TABLE = "ecs-drainer-claims"
TOPIC_NAME = "ecs-drainer-outcomes"
FUNCTION_PREFIX = "ecs-drainer-"
RESCUE_RULE = "ExecutionFailed"
REACTIVATE_RULE = "InstanceReturned"
TASK_STOPPED_RULE = "TaskStopped"
INSTANCE_DRAINING_RULE = "InstanceDraining"
# moto: run executions (its ASL interpreter) and answer Lambda without Docker.
MOTO_CONFIG = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}

ClientFactory = Callable[[str], Any]  # service name -> boto3 client


def function_name(function: Function) -> str:
    return f"{FUNCTION_PREFIX}{function.name}"


# Deployed function name -> Function, for the Lambda seam.
DEPLOYED_FUNCTIONS = {function_name(f): f for f in ALL_FUNCTIONS}


@dataclass(frozen=True)
class Deployment:
    state_machine_arn: str
    topic_arn: str
    claims_table: str
    settings: str  # the DRAINER_SETTINGS value every function gets
    function_arns: dict[str, str]  # Function.name -> ARN
    version_arns: dict[str, str]  # Function.name -> the published version the definition calls
    rules: list[Rule]


def create_claims_table(dynamodb: Any) -> str:
    """The claims table as the stack declares it: key `pk`, TTL on `expiresAt`."""
    dynamodb.create_table(
        TableName=CLAIMS_TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    )
    dynamodb.update_time_to_live(
        TableName=CLAIMS_TABLE,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiresAt"},
    )
    return CLAIMS_TABLE


def deploy(config: DrainerConfig, client: ClientFactory) -> Deployment:
    create_claims_table(client("dynamodb"))
    topic_arn = client("sns").create_topic(Name=TOPIC_NAME)["TopicArn"]
    values = config.lambda_settings(CLAIMS_TABLE, topic_arn)
    role = client("iam").create_role(RoleName="ecs-drainer", AssumeRolePolicyDocument="{}")["Role"][
        "Arn"
    ]
    lambdas, logs = client("lambda"), client("logs")
    arns = {}
    for name, function in DEPLOYED_FUNCTIONS.items():
        arns[function.name] = lambdas.create_function(
            FunctionName=name,
            Description=f"ECS drainer: {function.description}",
            Runtime="python3.13",
            Role=role,
            Handler=function.handler,
            Code={"ZipFile": _placeholder_zip()},
            Timeout=function.timeout_seconds,
            MemorySize=config.lambda_memory_mb,
            Environment={"Variables": {"DRAINER_SETTINGS": values}},
        )["FunctionArn"]
        logs.create_log_group(logGroupName=log_group(function))
    versions = {
        function.name: lambdas.publish_version(FunctionName=function_name(function))["FunctionArn"]
        for function in FUNCTIONS
    }
    state_machine_arn = client("stepfunctions").create_state_machine(
        name=STATE_MACHINE_NAME,
        roleArn=role,
        type="STANDARD",
        definition=json.dumps(render(substitutions(versions))),
    )["stateMachineArn"]
    # The dispatch function learns the state machine as the stack's does: from its environment.
    lambdas.update_function_configuration(
        FunctionName=function_name(DISPATCH_FUNCTION),
        Environment={"Variables": {STATE_MACHINE_VARIABLE: state_machine_arn}},
    )
    rules = [
        Rule(name, pattern, arns[DISPATCH_FUNCTION.name], starts_drains=True)
        for name, pattern in event_patterns(config).items()
    ]
    rules.append(
        Rule(RESCUE_RULE, execution_failure_pattern(state_machine_arn), arns[RESCUE_FUNCTION.name])
    )
    rules.append(
        Rule(REACTIVATE_RULE, instance_return_pattern(config), arns[REACTIVATE_FUNCTION.name])
    )
    if config.ends_drains_on_events:
        rules.append(
            Rule(
                TASK_STOPPED_RULE,
                task_stopped_pattern(config),
                arns[WAKE_FUNCTION.name],
                wakes_drains=True,
            )
        )
        rules.append(
            Rule(
                INSTANCE_DRAINING_RULE, instance_draining_pattern(config), arns[WAKE_FUNCTION.name]
            )
        )
    _put_rules(client("events"), config.stack_name, rules, role)
    return Deployment(state_machine_arn, topic_arn, CLAIMS_TABLE, values, arns, versions, rules)


def log_group(function: Function) -> str:
    return f"/aws/lambda/{function_name(function)}"


def _put_rules(events: Any, stack_name: str, rules: list[Rule], role: str) -> None:
    """The rules on moto's default bus too, so `aws events list-rules` shows them."""
    for rule in rules:
        name = f"{stack_name}-{rule.name}Rule"
        events.put_rule(
            Name=name,
            EventPattern=json.dumps(rule.pattern),
            Description=f"ECS drainer: {rule.name}",
        )
        events.put_targets(
            Rule=name, Targets=[{"Id": "Target0", "Arn": rule.target_arn, "RoleArn": role}]
        )


def activate(deployment: Deployment) -> None:
    """Give the in-process handlers the deployment's settings; fresh clients for a new endpoint.

    Every function gets the same DRAINER_SETTINGS, so one process-wide value serves them all;
    only the dispatch function reads the state machine's ARN.
    """
    os.environ["DRAINER_SETTINGS"] = deployment.settings
    os.environ[STATE_MACHINE_VARIABLE] = deployment.state_machine_arn
    settings.settings.cache_clear()
    aws.client.cache_clear()


class _EndedExecutions:
    """Executions that ended since `counting_executions` began, counted as moto ends them, so
    the clock driver's count of actors costs no scan of every execution (it asks for it at each
    step: with thousands of executions that scan was most of a refresh's time)."""

    def __init__(self) -> None:
        self.count: int | None = None  # None: not counting (scan instead)
        self.lock = threading.Lock()


_ENDED = _EndedExecutions()


@contextmanager
def counting_executions() -> Iterator[None]:
    """Count ended executions for running_executions (inside mock_aws, before any starts)."""
    original = BaseExecutionWorkerCommunication.terminated

    def terminated(self: BaseExecutionWorkerCommunication) -> None:
        original(self)  # sets the execution's final status
        with _ENDED.lock:
            if _ENDED.count is not None:
                _ENDED.count += 1

    BaseExecutionWorkerCommunication.terminated = terminated  # type: ignore[method-assign]
    _ENDED.count = 0
    try:
        yield
    finally:
        _ENDED.count = None
        BaseExecutionWorkerCommunication.terminated = original  # type: ignore[method-assign]


def running_executions() -> int:
    """How many executions moto is running (the clock driver's count of actors)."""
    backend = stepfunctions_parser_backends[ACCOUNT][REGION]
    if _ENDED.count is not None:
        # Every execution StartExecution added, less those that ended: one being started (no
        # status yet) counts as running, as in the scan below.
        started = sum(len(machine.executions) for machine in backend.state_machines)
        return started - _ENDED.count
    # An execution being started has no status yet: it counts as running (StartExecution now
    # comes from the dispatch function's thread, while the clock driver counts).
    return sum(
        1
        for execution in backend._get_executions()
        if execution.exec_status is None or execution.status == "RUNNING"
    )


def _placeholder_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("placeholder.py", "# the Lambda seam runs the real handlers in-process\n")
    return buffer.getvalue()
