"""`make demo`: the whole product on this machine, through the interfaces a user has in AWS.

Starts the sandbox endpoint (python -m sandbox.server) on a free port, fires the three
events/*.json files with the project's AWS CLI (`aws --endpoint-url … events put-events`), shows
the drains live from the Step Functions API, prints the outcomes and exits 0 when they are the
documented ones. Also shows that PutEvents refuses an `aws.*` source.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console

from drains.executions import DrainView, duration
from sandbox import EVENT_FILES, endpoint
from sandbox.view import DrainWatch, summary_lines, summary_table, watch_lines, watch_live
from stacks import ROOT

AWS_CLI = ROOT / ".venv" / "bin" / "aws"
# The documented outcome of each events file (README, "Outcomes"), by drain kind.
EXPECTED = {
    "lifecycle": {"drained"},
    "spot": {"spot-drained", "spot-interrupted"},
    "rebalance": {"rebalance-ignored"},
}
REFUSED_ENTRY = {
    "Source": "aws.autoscaling",
    "DetailType": "EC2 Instance-terminate Lifecycle Action",
    "Detail": "{}",
}
# The drain loop's callback wait and the step after the last poll (statemachine/build.py).
AWAIT_STATE, COMPLETE_STATE = "Await task stops", "Complete lifecycle action"
READY_TIMEOUT = 60.0  # wall seconds for the endpoint to come up
DRAINS_TIMEOUT = 150.0  # wall seconds for the drains, at the slowest pace
SERVER_LIFETIME = 600.0  # the server stops itself even if this process dies


@dataclass
class DemoResult:
    drains: list[DrainView] = field(default_factory=list)
    refused: dict[str, Any] = field(default_factory=dict)  # the aws.* PutEvents answer
    problems: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)  # wall seconds of each step
    woken: dict[str, str] = field(default_factory=dict)  # kind -> what ended its last wait

    @property
    def outcomes(self) -> dict[str, str | None]:
        return {view.kind: view.outcome for view in self.drains}

    @property
    def ok(self) -> bool:
        return not self.problems


def run_demo(
    headless: bool, speed: float, port: int | None = None, out: TextIO | None = None
) -> DemoResult:
    out = out or sys.stdout
    console = Console(file=out)
    port = port or endpoint.free_port()
    url = endpoint.url(port)
    result = DemoResult()
    started = last = time.monotonic()

    def say(line: str) -> None:
        if headless:
            print(line, file=out, flush=True)
        else:
            console.print(line, markup=False)

    def step_done(name: str) -> None:
        nonlocal last
        now = time.monotonic()
        result.phases[name], last = now - last, now

    with ServerProcess(port, speed) as server:
        say(f"demo: local AWS endpoint {url} (moto + simulated ECS/Auto Scaling), log {server.log}")
        sfn = endpoint.client("stepfunctions", url)
        state_machine_arn = server.wait_ready(sfn)
        say(f"demo: state machine {state_machine_arn}")
        step_done("endpoint up")
        result.refused = _fire_events(url, say)
        step_done("events put")
        watch = DrainWatch(sfn, state_machine_arn)
        if headless:
            result.drains = watch_lines(watch, len(EVENT_FILES), DRAINS_TIMEOUT, out)
        else:
            result.drains = watch_live(watch, len(EVENT_FILES), DRAINS_TIMEOUT, console)
        step_done("drains")
        rows = [_summary_row(sfn, view) for view in result.drains]
        result.woken = {row["kind"]: row["last wait ended by"] for row in rows}
        listing = ["stepfunctions", "list-executions", "--state-machine-arn", state_machine_arn]
        listing += ["--query", "executions[].[name,status]"]
        say(f"demo: aws {' '.join(listing[:2])} (the CLI sees the same executions)")
        say(_aws(url, *listing, output="table").rstrip())
    result.wall_seconds = time.monotonic() - started
    result.problems = _problems(result)
    if headless:
        say("demo: outcomes")
        for line in summary_lines(rows):
            say(line)
    else:
        console.print(summary_table(rows))
    for problem in result.problems:
        say(f"demo: PROBLEM: {problem}")
    verdict = "as documented" if result.ok else "NOT as documented"
    steps = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in result.phases.items())
    say(f"demo: outcomes {verdict}; {result.wall_seconds:.1f} s wall ({steps})")
    say("demo: `make sandbox` keeps an endpoint running for you (README.md, docs/SANDBOX.md)")
    return result


def _fire_events(url: str, say: Callable[[str], object]) -> dict[str, Any]:
    """Put the events files with the AWS CLI, and one `aws.*` entry; the latter's answer.

    The CLI calls run side by side: each spends most of its second starting the CLI.
    """
    calls = {"refused": ["--entries", json.dumps([REFUSED_ENTRY])]}
    calls.update({stem: ["--entries", f"file://events/{stem}.json"] for stem in EVENT_FILES})
    with ThreadPoolExecutor(len(calls)) as pool:
        pending = {
            name: pool.submit(_aws, url, "events", "put-events", *a) for name, a in calls.items()
        }
        answers = {name: future.result() for name, future in pending.items()}
    refused = answers.pop("refused")
    (entry,) = refused.get("Entries") or [{}]
    say(
        "demo: put-events with Source aws.autoscaling → "
        f"FailedEntryCount {refused.get('FailedEntryCount')}, {entry.get('ErrorCode')} "
        "(AWS's own sources; the events files use the test source)"
    )
    for stem, answer in answers.items():
        (entry,) = answer.get("Entries") or [{}]
        outcome = entry.get("EventId") or entry.get("ErrorCode")
        say(f"demo: aws events put-events --entries file://events/{stem}.json → {outcome}")
    return refused


def _summary_row(sfn: Any, view: DrainView) -> dict[str, Any]:
    history = sfn.get_execution_history(executionArn=view.arn, maxResults=1000)["events"]
    expected = EXPECTED.get(view.kind, set())
    return {
        "execution": view.name,  # named after what it drains: <instance>-<kind>-<event id>
        "instance": view.instance,
        "kind": view.kind,
        "status": view.status,
        "outcome": view.outcome or "-",
        "expected": "yes" if view.outcome in expected else f"no ({'|'.join(sorted(expected))})",
        "virtual time": duration(view.elapsed),
        "heartbeats": view.heartbeats,
        "transitions": sum(1 for e in history if e["type"].endswith("StateEntered")),
        "last wait ended by": _last_wait(history),
    }


def _last_wait(history: list[dict[str, Any]]) -> str:
    """What ended the drain's last awaited wait (README, "How a drain ends"): a task event,
    and how long after that task stopped the action was completed; or the fallback poll."""
    exits = [
        json.loads(e["stateExitedEventDetails"]["output"]).get("wake") or {}
        for e in history
        if e.get("stateExitedEventDetails", {}).get("name") == AWAIT_STATE
    ]
    if not exits:
        return "timer"
    wake = exits[-1]
    if "wokenBy" not in wake:
        return "fallback poll"
    completed = [
        e["timestamp"]
        for e in history
        if e.get("stateEnteredEventDetails", {}).get("name") == COMPLETE_STATE
    ]
    stopped_at = wake.get("taskStoppedAt")  # the task event's stoppedAt
    if not completed or not stopped_at:
        return "event"
    after = (completed[-1] - datetime.fromisoformat(stopped_at)).total_seconds()
    return f"event ({after:.1f} s from last stop to completion)"


def _problems(result: DemoResult) -> list[str]:
    problems = []
    error_codes = [e.get("ErrorCode") for e in result.refused.get("Entries", [])]
    if result.refused.get("FailedEntryCount", 0) < 1 or error_codes != [
        "NotAuthorizedForSourceException"
    ]:
        problems.append(f"PutEvents accepted an aws.* source: {result.refused}")
    kinds = [view.kind for view in result.drains]
    for kind, allowed in EXPECTED.items():
        if kinds.count(kind) != 1:
            problems.append(f"{kinds.count(kind)} {kind} executions, expected 1")
        elif result.outcomes[kind] not in allowed:
            problems.append(f"{kind}: outcome {result.outcomes[kind]}, expected one of {allowed}")
    lifecycle = [view for view in result.drains if view.kind == "lifecycle"]
    if lifecycle and lifecycle[0].heartbeats < 1:
        problems.append("lifecycle drain recorded no heartbeat")
    ended_by = result.woken.get("lifecycle", "")
    if lifecycle and not ended_by.startswith("event ("):
        problems.append(f"lifecycle drain's last wait ended by {ended_by!r}, not a task event")
    return problems


# --- the pieces a user would run by hand -------------------------------------------------
def environment() -> dict[str, str]:
    """For the server and the CLI: none of the user's AWS or drainer settings."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DRAINER_", "MOTO_"))}
    return {**endpoint.aws_environment(None, base), "PYTHONUNBUFFERED": "1"}


class ServerProcess:
    """`python -m sandbox.server` in the background, its output in a log file."""

    def __init__(self, port: int, speed: float) -> None:
        self.log = Path(tempfile.gettempdir()) / f"ecs-drainer-sandbox-{port}.log"
        self.command = [sys.executable, "-m", "sandbox.server", "--port", str(port)]
        self.command += ["--speed", str(speed), "--lifetime", str(SERVER_LIFETIME)]

    def __enter__(self) -> ServerProcess:
        with self.log.open("w") as sink:
            self.process = subprocess.Popen(
                self.command, cwd=ROOT, env=environment(), stdout=sink, stderr=subprocess.STDOUT
            )
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()  # SIGTERM: the server stops its threads and the endpoint
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def wait_ready(self, sfn: Any) -> str:
        """The state machine's ARN, once the server says it is ready."""
        deadline = time.monotonic() + READY_TIMEOUT
        while endpoint.READY_LINE not in self.log.read_text():
            if self.process.poll() is not None:
                raise SystemExit(
                    f"demo: the sandbox server exited:\n{self.log.read_text()[-3000:]}"
                )
            if time.monotonic() > deadline:
                raise SystemExit(f"demo: no sandbox after {READY_TIMEOUT:.0f} s; see {self.log}")
            time.sleep(0.1)
        (machine,) = [
            m
            for m in sfn.list_state_machines()["stateMachines"]
            if m["name"] == endpoint.STATE_MACHINE_NAME
        ]
        return str(machine["stateMachineArn"])


def _aws(url: str, *args: str, output: str = "json") -> Any:
    """The project's AWS CLI against the local endpoint: its JSON answer (or text output)."""
    command = [str(AWS_CLI), "--endpoint-url", url, *args, "--output", output]
    done = subprocess.run(
        command, cwd=ROOT, env=environment(), capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        raise SystemExit(f"demo: {' '.join(command)} failed:\n{done.stderr}")
    return json.loads(done.stdout or "{}") if output == "json" else done.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox.demo", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--headless", action="store_true", help="plain lines, no live view")
    parser.add_argument(
        "--speed",
        type=float,
        default=None,
        help="virtual seconds per wall second (default: 60 live, 0 = flat out headless)",
    )
    parser.add_argument("--port", type=int, default=None, help="default: a free port")
    args = parser.parse_args(argv)
    headless = args.headless or not sys.stdout.isatty()
    speed = args.speed if args.speed is not None else (0.0 if headless else 60.0)
    try:
        return 0 if run_demo(headless, speed, args.port).ok else 1
    except KeyboardInterrupt:  # the server got the same Ctrl-C and has stopped too
        return 130


if __name__ == "__main__":
    sys.exit(main())
