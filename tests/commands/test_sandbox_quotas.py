"""The offline world refuses what AWS refuses: oversized PutEvents entries and execution input.

Through the harness (sandbox/harness.py), which is the sandbox's EventBridge and moto's Step
Functions, as `make sandbox` runs them.
"""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError
from moto.events.exceptions import ValidationException

from sandbox.eventbridge import MAX_ENTRIES_BYTES, entry_size
from sandbox.harness import Harness
from sandbox.quotas import MAX_EXECUTION_INPUT_BYTES
from tests.worlds import with_settings, world_for

SOURCE = "ecs-drainer.test"
DETAIL_TYPE = "EC2 Spot Instance Interruption Warning"


@pytest.fixture
def config(config):
    """Rules that match the test source, whatever drainer.toml ships."""
    return with_settings(config, test_event_source=SOURCE)


def spot_entry(instance_id: str, padding: int) -> dict:
    """A Spot warning the rules match, padded to make it as large as wanted."""
    detail = {"instance-id": instance_id, "instance-action": "terminate", "pad": "x" * padding}
    return {"Source": SOURCE, "DetailType": DETAIL_TYPE, "Detail": json.dumps(detail)}


def test_entry_size_is_computed_as_aws_documents():
    entry = {
        "Source": "s",
        "DetailType": "dé",  # UTF-8 bytes, not characters
        "Detail": "{}",
        "Resources": ["arn:a", "arn:b"],
        "Time": 0,
    }
    assert entry_size(entry) == 1 + 3 + 2 + 5 + 5 + 14


def test_put_events_refuses_a_request_over_256_kb_and_starts_nothing(config):
    world, (victim, *_) = world_for(config, instances=1)
    with Harness(world, config) as harness:
        big = spot_entry(victim, 300 * 1024)
        with pytest.raises(ValidationException, match="Total size of the entries"):
            harness.put_events([big])
        # The request as a whole: two entries of 150 KB each are refused together.
        halves = [spot_entry(victim, 150 * 1024), spot_entry(victim, 150 * 1024)]
        with pytest.raises(ValidationException):
            harness.put_events(halves)
        harness.run()
    assert harness.deliveries == []


def test_an_entry_just_under_the_limit_is_accepted():
    entry = spot_entry("i-0aaaaaaaaaaaaaaa1", 0)
    entry = spot_entry("i-0aaaaaaaaaaaaaaa1", MAX_ENTRIES_BYTES - entry_size(entry))
    assert entry_size(entry) == MAX_ENTRIES_BYTES


def test_start_execution_refuses_input_over_256_kib(config):
    world, _ = world_for(config, instances=1)
    with Harness(world, config) as harness:
        too_big = json.dumps({"pad": "x" * MAX_EXECUTION_INPUT_BYTES})
        with pytest.raises(ClientError) as refused:
            harness.sfn.start_execution(
                stateMachineArn=harness.state_machine_arn, name="too-big", input=too_big
            )
        executions = harness.sfn.list_executions(stateMachineArn=harness.state_machine_arn)
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "262144" in refused.value.response["Error"]["Message"]
    assert executions["executions"] == []


def test_an_accepted_event_too_large_for_an_execution_is_not_delivered(config):
    """The envelope makes the event larger than the entry: PutEvents accepts it, but
    StartExecution refuses it; EventBridge then gives the event to the rule's dead-letter queue
    (the stack's undelivered-events alarm watches it) instead of starting a drain."""
    world, (victim, *_) = world_for(config, instances=1)
    with Harness(world, config) as harness:
        entry = spot_entry(victim, 0)
        entry = spot_entry(victim, MAX_ENTRIES_BYTES - entry_size(entry))
        (accepted,) = harness.put_events([entry])
        harness.run()
        executions = harness.sfn.list_executions(stateMachineArn=harness.state_machine_arn)
    assert "EventId" in accepted
    assert executions["executions"] == []
    ((rule, error),) = [(d.rule, d.error) for d in harness.eventbridge.undelivered]
    assert rule == "SpotInterruption"
    assert "ValidationException" in error
