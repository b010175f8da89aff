"""Every log line names its drain: `instanceId` and `executionArn` (README, "Read an execution").

Real drains through the real state machine and handlers (sandbox/harness.py), their output
captured: the lines of the shared modules (ECS calls, heartbeats, CompleteLifecycleAction, the
metrics line) must carry both keys too, not only the handlers' own lines.
"""

from __future__ import annotations

import json
from typing import Any

import complete_action
import rescue_execution

from drainer import log
from sandbox.harness import Harness
from tests.executions import log_lines, status_change
from tests.worlds import CLUSTER, GROUP, world_for


def test_every_line_of_a_drain_names_its_instance_and_execution(config, capsys):
    world, (long_drain, spot, aborted) = world_for(config, instances=3)
    # Deregistration outlasts a third of the heartbeat timeout: the drain records a heartbeat.
    world.add_service(CLUSTER, "web", desired=6, deregistration_delay_seconds=900)
    for _ in range(2):
        world.add_instance(cluster=CLUSTER, group=GROUP)
    with Harness(world, config) as harness:
        world.asg.scale_in(GROUP, long_drain)
        world.spot_interrupt(spot)
        world.asg.scale_in(GROUP, aborted)

        def abort() -> None:
            (delivery,) = [d for d in harness.deliveries if aborted in json.dumps(d.event)]
            harness.sfn.stop_execution(executionArn=delivery.execution_arn, cause="operator")

        world.call_later(40, abort)
        harness.run()
        executions = {
            delivery.event["detail"].get("EC2InstanceId")
            or delivery.event["detail"]["instance-id"]: delivery.execution_arn
            for delivery in harness.deliveries
        }
        rescue_execution.handler(status_change(harness, executions[aborted]), None)
        outcomes = {outcome["instanceId"]: outcome for outcome in harness.outcomes()}

    assert outcomes[long_drain]["heartbeats"] >= 1
    assert outcomes[aborted]["outcome"] == "failed"
    lines = list(log_lines(capsys.readouterr().out))
    messages = {line["message"] for line in lines if "message" in line}
    for expected in ("set DRAINING", "recorded lifecycle heartbeat", "completed lifecycle action"):
        assert expected in messages
    unnamed = [
        line
        for line in lines
        if line.get("instanceId") not in executions
        or line.get("executionArn") != executions[line["instanceId"]]
    ]
    assert unnamed == []


def test_a_rescue_before_the_request_was_resolved_names_the_instance(config, capsys):
    """The rescue path's CompleteAction gets the raw event again (`executionInput`)."""
    world, (victim, *_) = world_for(config, instances=1)
    arn = "arn:aws:states:us-east-1:123456789012:execution:ecs-drainer:rescued"
    with Harness(world, config):
        action = world.asg.scale_in(GROUP, victim)
        complete_action.handler(
            {
                "state": {"error": {"Error": "Boom"}},
                "executionInput": action.event,
                "executionArn": arn,
            },
            None,
        )
    lines = list(log_lines(capsys.readouterr().out))
    assert lines
    assert all((line["instanceId"], line["executionArn"]) == (victim, arn) for line in lines)


def test_bound_fields_end_with_the_invocation():
    """A warm Lambda's next invocation must not carry the last one's ids."""

    @log.per_invocation
    def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        return log.bound_fields()

    inside = handler(
        {"executionArn": "arn:x", "state": {"request": {"instanceId": "i-0abc1234"}}}, None
    )
    assert inside == {"instanceId": "i-0abc1234", "executionArn": "arn:x"}
    assert log.bound_fields() == {}
    forged = handler({"event": {"detail": {"instance-id": "i-0abc1234; drop table"}}}, None)
    assert forged == {"instanceId": None, "executionArn": None}
