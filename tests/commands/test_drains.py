"""`python -m drains`: what happened to my drains.

Against the sandbox through its real entry point (a subprocess, `--endpoint-url`), then fast
checks of the windows, the table, the outcome column and the timeline's folding on a fake
Step Functions client that counts its calls.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from drains import render
from drains.cli import execution_arn, find_executions, parse_since
from drains.executions import DrainView, duration, list_window, read
from drains.timeline import FOLD_AT, fold, steps
from sandbox import EVENT_FILES, endpoint
from sandbox.demo import EXPECTED, ServerProcess
from stacks import ROOT

MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:ecs-drainer"
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def _drains(url: str, *args: str, machine: str | None = MACHINE) -> subprocess.CompletedProcess:
    """The command as a user runs it: fake credentials and a region, nothing else of AWS's."""
    command = [sys.executable, "-m", "drains", *args, "--endpoint-url", url]
    command += ["--state-machine-arn", machine] if machine else []
    return subprocess.run(
        command,
        cwd=ROOT,
        env=endpoint.aws_environment(None),
        capture_output=True,
        text=True,
        timeout=60,
    )


def _columns(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


def test_the_drains_of_the_three_events_files_are_listed_and_shown_from_the_sandbox():
    port = endpoint.free_port()
    url = endpoint.url(port)
    with ServerProcess(port, speed=0) as server:
        sfn = endpoint.client("stepfunctions", url)
        machine = server.wait_ready(sfn)
        events = endpoint.client("events", url)
        for stem in EVENT_FILES:
            entries = json.loads((ROOT / "events" / f"{stem}.json").read_text())
            assert events.put_events(Entries=entries)["FailedEntryCount"] == 0
        deadline = time.monotonic() + 120
        while True:
            listed = sfn.list_executions(stateMachineArn=machine)["executions"]
            if len(listed) == len(EVENT_FILES) and all(e["status"] != "RUNNING" for e in listed):
                break
            assert time.monotonic() < deadline, f"drains still running: {listed}"
            time.sleep(0.5)
        outcomes = {
            e["executionArn"]: json.loads(
                sfn.describe_execution(executionArn=e["executionArn"])["output"]
            )["outcome"]
            for e in listed
        }
        table = _drains(url, "list", "--since", "24h", machine=machine)
        as_json = _drains(url, "list", "--json", machine=machine)
        (lifecycle_arn,) = [a for a, o in outcomes.items() if o["kind"] == "lifecycle"]
        lifecycle = outcomes[lifecycle_arn]
        by_instance = _drains(url, "show", lifecycle["instanceId"], machine=machine)
        by_arn = _drains(url, "show", lifecycle_arn, machine=machine)
        by_name = _drains(url, "show", lifecycle_arn.rsplit(":", 1)[1], machine=machine)
        every_state = _drains(url, "show", lifecycle_arn, "--all", machine=machine)
        no_machine = _drains(url, "list", machine=None)

    assert table.returncode == 0, table.stderr
    header, *rows, caption = table.stdout.splitlines()
    assert _columns(header) == list(render.COLUMNS)
    assert caption.startswith("3 drain(s) started since 2026-01-04 ")  # the sandbox's clock
    listed_rows = {
        cells[0]: dict(zip(render.COLUMNS, cells, strict=True)) for cells in map(_columns, rows)
    }
    assert {row["kind"]: row["outcome"] for row in listed_rows.values()} == {
        "lifecycle": "drained",
        "spot": listed_rows[outcomes_by_kind(outcomes)["spot"]["instanceId"]]["outcome"],
        "rebalance": "rebalance-ignored",
    }
    for outcome in outcomes.values():
        row = listed_rows[outcome["instanceId"]]
        assert outcome["outcome"] in EXPECTED[row["kind"]]
        assert (row["outcome"], row["heartbeats"], row["cut short"]) == (
            outcome["outcome"],
            str(outcome["heartbeats"]),
            str(outcome["tasksCutShort"]),
        )
    # Virtual time: the report task stops after 25 minutes and the daemon task after it; the
    # task events end the drain's wait within seconds (the bus delivers each up to 1.5 s late;
    # durations show whole seconds), not at the next 30-s poll (25m30s).
    minutes, seconds = listed_rows[lifecycle["instanceId"]]["duration"].rstrip("s").split("m")
    assert 25 * 60 + 15 <= int(minutes) * 60 + int(seconds) <= 25 * 60 + 25
    assert int(listed_rows[lifecycle["instanceId"]]["heartbeats"]) >= 1

    assert as_json.returncode == 0, as_json.stderr
    assert {
        d["executionArn"]: (d["outcome"], d["heartbeats"]) for d in json.loads(as_json.stdout)
    } == {arn: (o["outcome"], o["heartbeats"]) for arn, o in outcomes.items()}

    assert by_instance.returncode == 0, by_instance.stderr
    shown = by_instance.stdout
    assert shown == by_arn.stdout == by_name.stdout
    assert shown.startswith(f"{lifecycle['instanceId']}  lifecycle  drained\n")
    # The polls record the heartbeats that fall due at them (no "Record heartbeat" step).
    for state in ("Resolve drain request", "Start draining", "Poll tasks"):
        assert f"  {state}  " in shown, shown
    assert re.search(r"Complete lifecycle action +lifecycle action completed \(CONTINUE\)", shown)
    assert "set DRAINING (was ACTIVE)" in shown
    for number in range(1, lifecycle["heartbeats"] + 1):
        assert f"heartbeat {number} recorded" in shown
    assert "Record heartbeat" not in shown  # each heartbeat recorded by the poll it fell due at
    # events mode: each awaited wait says what ended it
    assert "no task event: the fallback poll" in shown  # cut to the heartbeat due
    assert "woken: task " in shown
    assert "outcome drained" in shown
    assert every_state.stdout.count("Poll tasks") == lifecycle["polls"]
    assert "nothing new" not in every_state.stdout

    assert no_machine.returncode == 2
    assert "--state-machine-arn" in no_machine.stderr

    # The README's sample is this output: the same columns, the same lifecycle timeline.
    sample = readme_sample()
    assert header in sample
    assert timeline_of(shown) == timeline_of(sample)


def readme_sample() -> str:
    text = (ROOT / "README.md").read_text()
    after = text.split("\n### What happened to my drains\n", 1)[1]
    return re.search(r"\n```\n(\$ .*?)```", after, flags=re.DOTALL).group(1)


def timeline_of(output: str) -> list[str]:
    lines = output.split("timeline (UTC, time since the start):\n", 1)[1].splitlines()
    return [line for line in lines if line.startswith("  ")]


def outcomes_by_kind(outcomes: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {outcome["kind"]: outcome for outcome in outcomes.values()}


# --- windows, columns, timelines: no endpoint ------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24h", timedelta(hours=24)),
        ("90m", timedelta(minutes=90)),
        ("1h30m", timedelta(minutes=90)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(days=14)),
        ("45s", timedelta(seconds=45)),
        ("2026-01-05T09:00:00Z", START),
        ("2026-01-05T10:00:00+01:00", START),
        ("2026-01-05T09:00", START),  # no offset: UTC
        ("2026-01-05", START.replace(hour=0)),
    ],
)
def test_a_window_is_a_span_before_now_or_a_moment(text, expected):
    assert parse_since(text) == expected


@pytest.mark.parametrize("text", ["24", "h", "yesterday", "24 h", "-1h", "1y"])
def test_a_window_that_is_neither_says_what_to_give(text):
    with pytest.raises(argparse.ArgumentTypeError, match="24h"):
        parse_since(text)


def test_durations_read_as_minutes_then_hours():
    assert duration(timedelta(0)) == "0m00s"
    assert duration(timedelta(seconds=1530)) == "25m30s"
    assert duration(timedelta(hours=48)) == "48h00m00s"
    assert duration(timedelta(seconds=-5)) == "0m00s"


def view(status: str = "SUCCEEDED", **changes: Any) -> DrainView:
    fields: dict[str, Any] = {
        "arn": f"{MACHINE.replace('stateMachine', 'execution')}:run",
        "name": "run",
        "status": status,
        "kind": "lifecycle",
        "instance": "i-0aaaaaaaaaaaaaaa1",
        "state": "",
        "started": START,
        "latest": START + timedelta(seconds=1530),
        "tasks_left": 0,
        "heartbeats": 2,
        "outcome": "drained",
        "tasks_cut_short": 0,
    }
    return DrainView(**{**fields, **changes})


def test_the_outcome_column_says_running_and_where_or_failed():
    assert render.outcome_text(view()) == "drained"
    assert render.outcome_text(view("RUNNING", outcome=None, state="Poll tasks")) == (
        "running: Poll tasks"
    )
    assert render.outcome_text(view("RUNNING", outcome=None)) == "running"
    assert render.outcome_text(view("FAILED", outcome="failed")) == "failed"
    assert render.outcome_text(view("FAILED", outcome=None)) == "failed"
    assert render.outcome_text(view("ABORTED", outcome=None)) == "failed (aborted)"
    assert render.outcome_text(view("TIMED_OUT", outcome=None)) == "failed (timed out)"


def test_the_table_aligns_its_columns_and_right_aligns_the_counts():
    rows = [
        render.row(view()),
        render.row(
            view(
                "RUNNING",
                instance="i-0bbbbbbbbbbbbbbb2",
                kind="spot",
                outcome=None,
                state="Wait before polling",
                heartbeats=12,
                tasks_cut_short=None,
                latest=START + timedelta(hours=3),
            )
        ),
    ]
    header, first, second = render.table(rows)
    assert first.index("lifecycle") == second.index("spot") == header.index("kind")
    assert header.index("outcome") == first.index("drained") == second.index("running")
    # Counts end under the end of their header; an unknown count is a dash.
    assert first[: header.index("heartbeats") + len("heartbeats")].endswith("  2")
    assert second[: header.index("heartbeats") + len("heartbeats")].endswith(" 12")
    assert second[: header.index("cut short") + len("cut short")].endswith(" -")
    assert "3h00m00s" in second and "25m30s" in first
    assert all(line == line.rstrip() for line in (header, first, second))


class FakeStepFunctions:
    """list_executions newest first in pages, as Step Functions answers; every call counted."""

    def __init__(self, executions: list[dict[str, Any]], now: datetime, page: int = 2) -> None:
        self.executions = sorted(executions, key=lambda e: e["startDate"], reverse=True)
        self.now = now
        self.page = page
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.described: dict[str, dict[str, Any]] = {}
        self.histories: dict[str, list[dict[str, Any]]] = {}

    def _answer(self, body: dict[str, Any]) -> dict[str, Any]:
        date = self.now.strftime("%a, %d %b %Y %H:%M:%S GMT")
        return {**body, "ResponseMetadata": {"HTTPHeaders": {"date": date}}}

    def list_executions(self, **params: Any) -> dict[str, Any]:
        self.calls.append(("list_executions", params))
        first = int(params.get("nextToken") or 0)
        chunk = self.executions[first : first + self.page]
        more = first + self.page < len(self.executions)
        return self._answer(
            {"executions": chunk, **({"nextToken": str(first + self.page)} if more else {})}
        )

    def describe_execution(self, executionArn: str) -> dict[str, Any]:
        self.calls.append(("describe_execution", {"executionArn": executionArn}))
        return self._answer(self.described[executionArn])

    def get_execution_history(self, executionArn: str, **params: Any) -> dict[str, Any]:
        self.calls.append(("get_execution_history", {"executionArn": executionArn, **params}))
        return self._answer({"events": self.histories[executionArn]})

    def count(self, operation: str) -> int:
        return sum(1 for name, _ in self.calls if name == operation)


def execution(name: str, started: datetime, status: str = "SUCCEEDED") -> dict[str, Any]:
    return {
        "executionArn": execution_arn(MACHINE, name),
        "name": name,
        "status": status,
        "startDate": started,
    }


def test_a_window_stops_paging_at_the_first_page_that_reaches_past_it():
    """Step Functions lists the newest first: a day's drains do not page through 90 days."""
    now = START + timedelta(days=30)
    executions = [execution(f"e{hours}", now - timedelta(hours=hours)) for hours in range(0, 60, 6)]
    sfn = FakeStepFunctions(executions, now, page=2)

    listing = list_window(sfn, MACHINE, timedelta(hours=24))

    # Oldest first; one started exactly 24 hours ago is in the window.
    assert [e["name"] for e in listing.executions] == ["e24", "e18", "e12", "e6", "e0"]
    assert listing.now == now  # the API's clock, not this machine's
    assert sfn.count("list_executions") == 3  # the third page reached past the window
    everything = list_window(sfn, MACHINE, None).executions
    assert len(everything) == len(executions)


def _event(detail_type: str, detail: dict[str, Any]) -> str:
    return json.dumps({"detail-type": detail_type, "source": "aws.ec2", "detail": detail})


def test_a_succeeded_drain_costs_one_call_a_failed_one_two():
    sfn = FakeStepFunctions([], START)
    done, failed = execution_arn(MACHINE, "done"), execution_arn(MACHINE, "failed")
    sfn.described[done] = {
        "executionArn": done,
        "name": "done",
        "status": "SUCCEEDED",
        "startDate": START,
        "stopDate": START + timedelta(seconds=70),
        "input": _event("EC2 Spot Instance Interruption Warning", {"instance-id": "i-0abc12345"}),
        "output": json.dumps(
            {"outcome": {"outcome": "spot-interrupted", "heartbeats": 0, "tasksCutShort": 2}}
        ),
    }
    rescued = {
        "progress": {"heartbeats": 3, "tasksCutShort": 0},
        "outcome": {"outcome": "failed", "heartbeats": 3, "tasksCutShort": 0},
        "error": {"Error": "Lambda.ServiceException", "Cause": "boom"},
    }
    sfn.described[failed] = {
        "executionArn": failed,
        "name": "failed",
        "status": "FAILED",
        "startDate": START,
        "stopDate": START + timedelta(minutes=40),
        "input": _event("EC2 Instance-terminate Lifecycle Action", {"EC2InstanceId": "i-0def4567"}),
        "error": "DrainFailed",
        "cause": "A step failed",
    }
    sfn.histories[failed] = [
        _entered(1, START, "Rescue: report failure", "Task", rescued),
        _exited(2, START, "Rescue: report failure", "Task", rescued),
        _entered(3, START, "Drain failed", "Fail", rescued),
    ]

    spot = read(sfn, done, state_of_succeeded=False)
    assert (spot.instance, spot.kind, spot.outcome, spot.tasks_cut_short) == (
        "i-0abc12345",
        "spot",
        "spot-interrupted",
        2,
    )
    assert sfn.count("get_execution_history") == 0
    lifecycle = read(sfn, failed, state_of_succeeded=False)
    assert sfn.count("get_execution_history") == 1
    assert (lifecycle.instance, lifecycle.kind, lifecycle.state) == (
        "i-0def4567",
        "lifecycle",
        "Drain failed",
    )
    assert (lifecycle.heartbeats, lifecycle.error) == (3, "Lambda.ServiceException: boom")
    assert render.outcome_text(lifecycle) == "failed"


def test_show_finds_a_drain_by_arn_name_or_instance():
    sfn = FakeStepFunctions(
        [execution("a", START), execution("b", START + timedelta(minutes=1))],
        START + timedelta(hours=1),
    )
    for name, instance in (("a", "i-0aaaaaaaaaaaaaaa1"), ("b", "i-0bbbbbbbbbbbbbbb2")):
        sfn.described[execution_arn(MACHINE, name)] = {
            "input": _event("EC2 Instance Rebalance Recommendation", {"instance-id": instance})
        }
    arn_b = execution_arn(MACHINE, "b")
    assert arn_b == "arn:aws:states:us-east-1:123456789012:execution:ecs-drainer:b"
    window = timedelta(hours=24)
    assert find_executions(sfn, MACHINE, arn_b, window) == [arn_b]
    assert find_executions(sfn, MACHINE, "b", window) == [arn_b]
    assert sfn.calls == []  # an ARN or a name costs no look-up
    assert find_executions(sfn, MACHINE, "i-0bbbbbbbbbbbbbbb2", window) == [arn_b]
    assert find_executions(sfn, MACHINE, "i-0ccccccccccccccc3", window) == []
    # Executions named after their instance are found by name, with no describe at all.
    named = FakeStepFunctions(
        [execution("i-0bbbbbbbbbbbbbbb2-spot-1a2b", START)], START + timedelta(hours=1)
    )
    assert find_executions(named, MACHINE, "i-0bbbbbbbbbbbbbbb2", window) == [
        execution_arn(MACHINE, "i-0bbbbbbbbbbbbbbb2-spot-1a2b")
    ]
    assert named.count("describe_execution") == 0
    # A shorter id that begins the same is another instance.
    named.described[execution_arn(MACHINE, "i-0bbbbbbbbbbbbbbb2-spot-1a2b")] = {
        "input": _event(
            "EC2 Spot Instance Interruption Warning", {"instance-id": "i-0bbbbbbbbbbbbbbb2"}
        )
    }
    assert find_executions(named, MACHINE, "i-0bbbbbbb", window) == []


def _entered(number: int, at: datetime, state: str, kind: str, doc: dict[str, Any]) -> dict:
    return {
        "id": number,
        "timestamp": at,
        "type": f"{kind}StateEntered",
        "stateEnteredEventDetails": {"name": state, "input": json.dumps(doc)},
    }


def _exited(number: int, at: datetime, state: str, kind: str, doc: dict[str, Any]) -> dict:
    return {
        "id": number,
        "timestamp": at,
        "type": f"{kind}StateExited",
        "stateExitedEventDetails": {"name": state, "output": json.dumps(doc)},
    }


def polling_history(quiet_polls: int) -> list[dict[str, Any]]:
    """Resolve, a poll that sees tasks, `quiet_polls` polls that see nothing new, a throttled
    poll retried, a heartbeat, then the drain stopped from outside."""
    events: list[dict[str, Any]] = [{"id": 1, "timestamp": START, "type": "ExecutionStarted"}]
    at = START
    doc: dict[str, Any] = {}

    def state(name: str, kind: str, new_doc: dict[str, Any], seconds: int = 0) -> None:
        nonlocal at, doc
        events.append(_entered(len(events) + 1, at, name, kind, doc))
        at += timedelta(seconds=seconds)
        doc = new_doc
        events.append(_exited(len(events) + 1, at, name, kind, doc))

    request = {"kind": "lifecycle", "instanceId": "i-0aaaaaaaaaaaaaaa1", "reason": "scale-in"}
    progress = {"verdict": "wait", "heartbeats": 0, "tasks": None, "nextWaitSeconds": 30}
    state("Resolve drain request", "Task", {"request": request, "progress": progress})
    seen = {**progress, "tasks": {"service": 2, "daemon": 1, "alive": 3}}
    for _ in range(quiet_polls + 1):
        state("Wait before polling", "Wait", doc, seconds=30)
        state("Poll tasks", "Task", {"request": request, "progress": seen})
        state("Check drain progress", "Choice", doc)
    state("Wait before polling", "Wait", doc, seconds=30)
    events.append(_entered(len(events) + 1, at, "Poll tasks", "Task", doc))
    events.append(
        {
            "id": len(events) + 1,
            "timestamp": at,
            "type": "TaskFailed",
            "taskFailedEventDetails": {"error": "Throttled", "cause": "Rate exceeded"},
        }
    )
    doc = {"request": request, "progress": {**seen, "verdict": "heartbeat"}}
    events.append(_exited(len(events) + 1, at, "Poll tasks", "Task", doc))
    state("Record heartbeat", "Task", {**doc, "progress": {**seen, "heartbeats": 1}})
    events.append(
        {
            "id": len(events) + 1,
            "timestamp": at,
            "type": "ExecutionAborted",
            "executionAbortedEventDetails": {"error": "Stopped", "cause": "by an operator"},
        }
    )
    return events


def test_the_timeline_says_what_each_state_changed_and_folds_the_quiet_polls():
    found = steps(polling_history(quiet_polls=10))
    folded = fold(found)
    lines = render.timeline(folded, START)
    text = "\n".join(lines)

    assert [step.state for step in folded if step.kind != "Quiet"] == [
        "Resolve drain request",
        "Wait before polling",
        "Poll tasks",
        "Poll tasks",
        "Record heartbeat",
        "ExecutionAborted",
    ]
    (quiet,) = [step for step in folded if step.kind == "Quiet"]
    assert quiet.states == {"Wait before polling": 11, "Poll tasks": 10}
    assert "Wait before polling ×11, Poll tasks ×10 (waits of 30 s)" in text
    assert "lifecycle drain of i-0aaaaaaaaaaaaaaa1 (scale-in)" in text
    assert "3 tasks alive (service 2, daemon 1)" in text
    assert "error Throttled: Rate exceeded; heartbeat due" in text
    assert "heartbeat 1 recorded" in text
    assert "error Stopped: by an operator" in text
    assert lines[-1].split()[1] == "+6m00s"  # 12 waits of 30 s
    assert "Check drain progress" not in text  # the next state shows the branch taken
    # Fewer quiet steps than FOLD_AT stay as they are; --all folds nothing.
    short = fold(steps(polling_history(quiet_polls=0)))
    assert not any(step.kind == "Quiet" for step in short)
    assert sum(step.state == "Poll tasks" for step in found) == 12
    assert FOLD_AT > 2
