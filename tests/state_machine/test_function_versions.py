"""Executions pinned to the code they started with: the definition calls published Lambda
versions, and a deploy during a drain (new versions, new definition) leaves that drain on its
own versions while new drains take the new ones (Step Functions, UpdateStateMachine: "Running
executions will continue to use the previous definition and roleArn",
https://docs.aws.amazon.com/step-functions/latest/apireference/API_UpdateStateMachine.html)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from sandbox.deployment import REGION, function_name
from sandbox.harness import Harness
from stacks.config import DrainerConfig
from stacks.definition import render, substitutions
from stacks.functions import FUNCTIONS
from tests.worlds import GROUP, drain_world


def function_names(node: Any) -> Iterator[str]:
    """Every Task's FunctionName in a definition, at any depth."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "FunctionName":
                yield value
            else:
                yield from function_names(value)
    elif isinstance(node, list):
        for item in node:
            yield from function_names(item)


def deploy_new_code(harness: Harness) -> dict[str, str]:
    """What a `cdk deploy` of changed code does: each function changes and publishes its next
    version, and the state machine's definition is updated to call those versions."""
    lambdas = boto3.client("lambda", region_name=REGION)
    versions = {}
    for function in FUNCTIONS:
        name = function_name(function)
        lambdas.update_function_configuration(FunctionName=name, Description="the next release")
        versions[function.name] = lambdas.publish_version(FunctionName=name)["FunctionArn"]
    harness.sfn.update_state_machine(
        stateMachineArn=harness.state_machine_arn,
        definition=json.dumps(render(substitutions(versions))),
    )
    return versions


def versions_invoked(invoked: Counter) -> set[str]:
    """The versions the state machine invoked (EventBridge's targets, the rescue and reactivate
    functions, are the functions themselves, as in the stack)."""
    in_definition = {function.name for function in FUNCTIONS}
    return {
        version for (name, version), count in invoked.items() if count and name in in_definition
    }


def test_a_deploy_during_a_drain_leaves_it_on_the_versions_it_started_with(
    config: DrainerConfig,
) -> None:
    world, (first, second) = drain_world(config, victims=2)
    with Harness(world, config) as harness:
        described = harness.sfn.describe_state_machine(stateMachineArn=harness.state_machine_arn)
        called = set(function_names(json.loads(described["definition"])))
        assert called == set(harness.deployment.version_arns.values())
        assert all(arn.endswith(":1") for arn in called), called

        world.asg.scale_in(GROUP, first)
        polled = world.clock.run(
            until=lambda: harness.invoked_versions[("PollTasks", "1")] > 0,
            active=harness.running,
            max_virtual_seconds=3600,
            wall_timeout=60.0,
        )
        assert polled, world.clock.stop_reason
        new_versions = deploy_new_code(harness)
        assert all(arn.endswith(":2") for arn in new_versions.values()), new_versions
        before = Counter(harness.invoked_versions)
        harness.run()
        first_drain = harness.invoked_versions - before
        assert first_drain[("CompleteAction", "1")] == 1
        assert versions_invoked(first_drain) == {"1"}, first_drain

        before = Counter(harness.invoked_versions)
        world.asg.scale_in(GROUP, second)
        harness.run()
        second_drain = harness.invoked_versions - before
        assert second_drain[("CompleteAction", "2")] == 1
        assert versions_invoked(second_drain) == {"2"}, second_drain
        assert [outcome["outcome"] for outcome in harness.outcomes()] == ["drained", "drained"]


def test_a_version_never_published_is_not_found_and_runs_no_handler(config: DrainerConfig) -> None:
    world, _ = drain_world(config)
    with Harness(world, config) as harness:
        published = harness.deployment.version_arns["Resolve"]
        unpublished = published.rsplit(":", 1)[0] + ":99"
        with pytest.raises(ClientError) as refused:
            boto3.client("lambda", region_name=REGION).invoke(FunctionName=unpublished)
    assert refused.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert harness.invocations["Resolve"] == 0
