"""`make demo` and `make sandbox`, through the interfaces a user has: the AWS CLI and the
Step Functions API of a local endpoint (a real socket on 127.0.0.1, moto in server mode)."""

from __future__ import annotations

import io
import subprocess

from sandbox import endpoint
from sandbox.demo import ServerProcess, environment, run_demo
from sandbox.server import commands
from stacks import ROOT


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
    # PutEvents refuses aws.* sources as AWS does: the call succeeds, the entry fails.
    assert result.refused["FailedEntryCount"] == 1
    assert result.refused["Entries"][0]["ErrorCode"] == "NotAuthorizedForSourceException"


def test_commands_the_sandbox_prints_work_as_printed():
    port = endpoint.free_port()
    url = endpoint.url(port)
    with ServerProcess(port, speed=0) as server:
        arn = server.wait_ready(endpoint.client("stepfunctions", url))
        script = "\n".join(["set -euo pipefail", *commands(url, arn, cwd=ROOT)])
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=ROOT,
            env=environment(),  # no credentials: the printed export provides them
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count('"FailedEntryCount": 0') == 3, done.stdout
    assert "ListExecutions" in done.stdout
    assert "ExecutionStarted" in done.stdout  # the history of the newest execution
