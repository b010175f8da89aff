"""`make demo` and `make sandbox`, through the interfaces a user has: the AWS CLI and the
Step Functions API of a local endpoint (a real socket on 127.0.0.1, moto in server mode)."""

from __future__ import annotations

import io
import json
import re
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from sandbox import endpoint
from sandbox.demo import ServerProcess, environment, run_demo
from sandbox.deployment import INSTANCE_DRAINING_RULE, REACTIVATE_RULE
from sandbox.server import BUS_LOG_GROUP, commands
from stacks import ROOT
from stacks.config import load_config


def test_demo_drains_each_event_file_as_documented():
    out = io.StringIO()
    result = run_demo(headless=True, speed=0, port=endpoint.free_port(), out=out)
    log = out.getvalue()

    assert result.ok, log
    assert result.outcomes == {
        "lifecycle": "drained",
        "spot": result.outcomes["spot"],
        "rebalance": "rebalance-ignored",
    }, log
    assert result.outcomes["spot"] in {"spot-drained", "spot-interrupted"}
    (lifecycle,) = [view for view in result.drains if view.kind == "lifecycle"]
    assert lifecycle.heartbeats >= 1  # the drain outlasted heartbeat_timeout / 3
    assert all(view.status == "SUCCEEDED" for view in result.drains)
    # Each drain is listed by its name, made from what it drains.
    for view in result.drains:
        assert view.name.startswith(f"{view.instance}-{view.kind}-"), view.name
        assert view.name in log
    # PutEvents refuses aws.* sources as AWS does: the call succeeds, the entry fails.
    assert result.refused["FailedEntryCount"] == 1
    assert result.refused["Entries"][0]["ErrorCode"] == "NotAuthorizedForSourceException"


README_PLACEHOLDER_INSTANCE = "i-0abc123"
READ_AN_EXECUTION = "--- README: Read an execution ---"


def oversized_entry() -> dict:
    detail = json.dumps({"instance-id": "i-0aaaaaaaaaaaaaaa1", "pad": "x" * 300 * 1024})
    return {"Source": "ecs-drainer.test", "DetailType": "Rebalance", "Detail": detail}


def readme_block(section: str) -> str:
    """The first shell block of a README section, as a user would paste it."""
    text = (ROOT / "README.md").read_text()
    after = text.split(f"\n## {section}\n", 1)[1]
    return re.search(r"```sh\n(.*?)```", after, flags=re.DOTALL).group(1)


def test_commands_the_sandbox_prints_work_as_printed():
    """Then the README's "find a drain by instance id" loop, pasted after them in the same
    shell, finds the lifecycle drain of events/lifecycle-terminate.json."""
    port = endpoint.free_port()
    url = endpoint.url(port)
    instance = json.loads(
        json.loads((ROOT / "events/lifecycle-terminate.json").read_text())[0]["Detail"]
    )["EC2InstanceId"]
    find_a_drain = readme_block("Read an execution").replace(README_PLACEHOLDER_INSTANCE, instance)
    with ServerProcess(port, speed=0) as server:
        sfn = endpoint.client("stepfunctions", url)
        arn = server.wait_ready(sfn)
        script = "\n".join(
            [
                "set -euo pipefail",
                *commands(url, arn, cwd=ROOT),
                f"echo '{READ_AN_EXECUTION}'",
                find_a_drain,
            ]
        )
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=ROOT,
            env=environment(),  # no credentials: the printed export provides them
            capture_output=True,
            text=True,
            timeout=120,
        )
        # The endpoint refuses what AWS refuses: a PutEvents request over 256 KB.
        with pytest.raises(ClientError, match="ValidationException"):
            endpoint.client("events", url).put_events(Entries=[oversized_entry()])
        inputs = {
            execution["executionArn"]: sfn.describe_execution(
                executionArn=execution["executionArn"]
            )["input"]
            for execution in sfn.list_executions(stateMachineArn=arn)["executions"]
        }
    assert done.returncode == 0, done.stderr
    printed, found = done.stdout.split(READ_AN_EXECUTION)
    assert printed.count('"FailedEntryCount": 0') == 3, done.stdout
    assert "ListExecutions" in printed
    assert "ExecutionStarted" in printed  # the history of the newest execution
    assert found.split() == [arn for arn, given in inputs.items() if instance in given]
    assert len(found.split()) == 1, done.stdout


def test_stopping_a_drain_in_the_sandbox_lets_the_rescue_function_give_the_grace():
    """docs/SANDBOX.md's `stop-execution` while the lifecycle drain runs, through the endpoint:
    the status-change event reaches the rescue function, which records a heartbeat, lets ECS
    move the tasks for rescue_grace_seconds of virtual time, completes, and reports the drain's
    cluster and duration (its log is the user's view)."""
    port = endpoint.free_port()
    url = endpoint.url(port)
    config = load_config(ROOT / "drainer.toml")
    with ServerProcess(port, speed=60) as server:
        sfn = endpoint.client("stepfunctions", url)
        machine = server.wait_ready(sfn)
        entries = json.loads((ROOT / "events" / "lifecycle-terminate.json").read_text())
        assert endpoint.client("events", url).put_events(Entries=entries)["FailedEntryCount"] == 0
        arn = _when(lambda: _executions(sfn, machine), "no execution started")[0]
        _when(lambda: _entered(sfn, arn, "Wait before polling"), "the drain never started")
        sfn.stop_execution(executionArn=arn, cause="operator")
        lines = _when(
            lambda: _finished_line(endpoint.client("logs", url)), "the rescue function never ran"
        )
    finished = json.loads(lines[-1])
    assert any("recorded lifecycle heartbeat" in line for line in lines)
    assert (finished["outcome"], finished["actionCompleted"]) == ("failed", True)
    assert finished["error"]["Error"] == "ExecutionAborted"
    assert finished["cluster"] == "demo"
    assert finished["durationSeconds"] >= config.rescue_grace_seconds
    assert finished["tasksAtStart"] >= 1


def _when(probe: Callable[[], Any], failure: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := probe()):
        assert time.monotonic() < deadline, failure
        time.sleep(0.2)
    return found


def _executions(sfn: Any, machine: str) -> list[str]:
    return [e["executionArn"] for e in sfn.list_executions(stateMachineArn=machine)["executions"]]


def _entered(sfn: Any, arn: str, state: str) -> bool:
    events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    return any((e.get("stateEnteredEventDetails") or {}).get("name") == state for e in events)


def _finished_line(logs: Any) -> list[str]:
    """The rescue function's log lines, once it has logged "drain finished"."""
    try:
        events = logs.filter_log_events(logGroupName="/aws/lambda/ecs-drainer-RescueExecution")
    except logs.exceptions.ResourceNotFoundException:
        return []
    lines = [e["message"] for e in events["events"] if e["message"].startswith("{")]
    done = [line for line in lines if '"drain finished"' in line]
    return [*[line for line in lines if line not in done], *done] if done else []


def test_an_event_delivered_twice_starts_one_execution_named_after_its_instance():
    """Through the sandbox's endpoint with the project's AWS CLI. `aws events put-events` twice
    puts two events (EventBridge gives each its own id): two executions, both named
    `<instance>-rebalance-<id>`. EventBridge delivering one event twice invokes the dispatch
    function twice with that same event, as `aws lambda invoke --invocation-type Event` does
    here: no second execution."""
    port = endpoint.free_port()
    url = endpoint.url(port)
    entries = "file://events/rebalance-recommendation.json"
    instance = json.loads(
        json.loads((ROOT / "events/rebalance-recommendation.json").read_text())[0]["Detail"]
    )["instance-id"]
    with ServerProcess(port, speed=0) as server:
        sfn = endpoint.client("stepfunctions", url)
        machine = server.wait_ready(sfn)
        ids = [
            _cli(url, "events", "put-events", "--entries", entries)["Entries"][0]["EventId"]
            for _ in range(2)
        ]
        started = _when(lambda: len(_executions(sfn, machine)) == 2, "no two executions")
        (first,) = [
            e
            for e in sfn.list_executions(stateMachineArn=machine)["executions"]
            if e["name"].endswith(ids[0][:8])
        ]
        event = sfn.describe_execution(executionArn=first["executionArn"])["input"]
        for _ in range(2):  # the same event again: what an at-least-once redelivery looks like
            _cli(
                url,
                "lambda",
                "invoke",
                "--function-name",
                "ecs-drainer-Dispatch",
                "--invocation-type",
                "Event",
                "--payload",
                event,
                "/dev/null",
            )
        names = sorted(
            e["name"] for e in sfn.list_executions(stateMachineArn=machine)["executions"]
        )
    assert started
    assert names == sorted(f"{instance}-rebalance-{event_id[:8]}" for event_id in ids)


def _cli(url: str, *args: str) -> Any:
    done = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "aws"), "--endpoint-url", url, *args, "--output", "json"],
        cwd=ROOT,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout or "{}")


def test_the_sandbox_bus_carries_the_worlds_ecs_events():
    """The sandbox's world sends ECS task and container instance events to its bus, which hands
    them to the stack's rules: its own log (BUS_LOG_GROUP) shows each with the rules it
    matched; no rule of the stack takes task events."""
    port = endpoint.free_port()
    url = endpoint.url(port)
    with ServerProcess(port, speed=60) as server:
        server.wait_ready(endpoint.client("stepfunctions", url))
        entries = json.loads((ROOT / "events" / "lifecycle-terminate.json").read_text())
        assert endpoint.client("events", url).put_events(Entries=entries)["FailedEntryCount"] == 0
        logs = endpoint.client("logs", url)
        lines = _when(lambda: _bus_log_once_tasks_change(logs), "no task event reached the bus")
    kinds = {line["detail-type"]: line for line in lines}
    assert kinds["ECS Task State Change"]["rules"] == []
    assert kinds["ECS Task State Change"]["source"] == "aws.ecs"
    assert kinds["EC2 Instance-terminate Lifecycle Action"]["rules"] == ["LifecycleTerminate"]
    draining = [
        line
        for line in lines
        if line["detail-type"] == "ECS Container Instance State Change" and line["rules"]
    ]
    # The rule that sets a parked instance ACTIVE again, and the one that notes when DRAINING
    # began (events mode, drainer.toml).
    assert draining and set(draining[0]["rules"]) == {REACTIVATE_RULE, INSTANCE_DRAINING_RULE}


def _bus_log_once_tasks_change(logs: Any) -> list[dict[str, Any]]:
    """The bus log, once a task event is in it."""
    events = logs.filter_log_events(logGroupName=BUS_LOG_GROUP)["events"]
    lines = [json.loads(e["message"]) for e in events]
    tasks = [line for line in lines if line["detail-type"] == "ECS Task State Change"]
    return lines if tasks else []
