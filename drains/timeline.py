"""One execution's history as the drain's timeline.

Each state entered is a step; what it changed in the drain's state document is said in words
(tasks alive, a heartbeat recorded, the action completed, the outcome), read from the history's
own input and output documents. A long drain polls hundreds of times with nothing new: those
quiet stretches fold into one line, so a 48-hour drain reads in a screen.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from drains.executions import parse_json

HISTORY_PAGE = 1000  # get_execution_history's largest page
AWAIT_STATE = "Await task stops"  # statemachine/build.py AWAIT
FOLD_AT = 3  # this many quiet steps in a row fold into one line
CAUSE_CHARACTERS = 300
VERDICTS = {  # a poll's verdict, when it is news (a plain "wait" is not)
    "ceiling": "maximum drain time reached",
    "heartbeat": "heartbeat due",
    "stop-standalone": "standalone tasks' grace over",
}
ENDINGS = {  # how a step decided the drain ends (progress.ending, an outcome word)
    "drained": "every task stopped",
    "spot-drained": "every task stopped",
    "instance-gone": "the container instance left ECS",
    "spot-interrupted": "the Spot interruption came first",
    "action-ended-externally": "the lifecycle action has ended",
}
EXECUTION_ENDS = {
    "ExecutionFailed": "executionFailedEventDetails",
    "ExecutionAborted": "executionAbortedEventDetails",
    "ExecutionTimedOut": "executionTimedOutEventDetails",
}


@dataclass
class Step:
    """A state entered, or a run of quiet ones folded (`states` counts them by name)."""

    at: datetime
    state: str
    kind: str  # Task, Wait, Choice, Succeed, Fail, Execution (how the execution ended)
    notes: list[str] = field(default_factory=list)
    waited: float | None = None  # a Wait state's seconds
    until: datetime | None = None  # a folded run's last step
    states: Counter[str] = field(default_factory=Counter)
    waits: list[float] = field(default_factory=list)

    @property
    def quiet(self) -> bool:
        return not self.notes and self.kind in ("Task", "Wait", "Choice")


def read_history(sfn: Any, arn: str) -> list[dict[str, Any]]:
    """Every history event of one execution, oldest first."""
    events: list[dict[str, Any]] = []
    token = None
    while True:
        page = sfn.get_execution_history(
            executionArn=arn,
            maxResults=HISTORY_PAGE,
            **({"nextToken": token} if token else {}),
        )
        events.extend(page["events"])
        token = page.get("nextToken")
        if not token:
            return sorted(events, key=lambda event: event["id"])


def steps(history: Iterable[dict[str, Any]]) -> list[Step]:
    """Every state entered, with what it changed, its errors and the execution's end."""
    found: list[Step] = []
    document: dict[str, Any] = {}
    current: Step | None = None
    for event in history:
        kind = event["type"]
        if kind == "ExecutionStarted":
            document = {}
        elif kind.endswith("StateEntered"):
            details = event["stateEnteredEventDetails"]
            current = Step(event["timestamp"], details["name"], kind[: -len("StateEntered")])
            found.append(current)
        elif kind.endswith("StateExited") and current is not None:
            output = parse_json(event["stateExitedEventDetails"].get("output"))
            if isinstance(output, dict):
                current.notes += changes(document, output)
                if current.state == AWAIT_STATE and isinstance(output.get("wake"), dict):
                    current.notes.append(_wake_text(output["wake"]))  # even the same as before
                document = output
            if current.kind == "Wait":
                current.waited = (event["timestamp"] - current.at).total_seconds()
        elif kind in EXECUTION_ENDS:
            details = event.get(EXECUTION_ENDS[kind]) or {}
            ended = Step(event["timestamp"], kind, "Execution")
            ended.notes.append(_error_text(details.get("error"), details.get("cause")))
            found.append(ended)
        elif kind == "TaskTimedOut" and current is not None and current.state == AWAIT_STATE:
            pass  # the awaited wait's fallback poll, not an error: its `wake` note says so
        elif kind.endswith(("Failed", "TimedOut")) and current is not None:
            # A task's failure inside a state: retried, or caught into the rescue path.
            details = next((v for k, v in event.items() if k.endswith("EventDetails")), {})
            current.notes.append(_error_text(details.get("error"), details.get("cause")))
    return found


def fold(found: list[Step]) -> list[Step]:
    """Choice states dropped (the next state shows the branch taken); runs of FOLD_AT or more
    quiet steps (nothing changed, no error) become one step naming how many of each."""
    shown = [step for step in found if step.kind != "Choice" or step.notes]
    folded: list[Step] = []
    run: list[Step] = []

    def close_run() -> None:
        if len(run) < FOLD_AT:
            folded.extend(run)
        else:
            folded.append(
                Step(
                    run[0].at,
                    "",
                    "Quiet",
                    until=run[-1].at,
                    states=Counter(step.state for step in run),
                    waits=[step.waited for step in run if step.waited is not None],
                )
            )
        run.clear()

    for step in shown:
        if step.quiet:
            run.append(step)
            continue
        close_run()
        folded.append(step)
    close_run()
    return folded


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What one state changed in the drain's state document, in words."""
    notes: list[str] = []
    request, target = after.get("request"), after.get("target")
    if isinstance(request, dict) and not isinstance(before.get("request"), dict):
        notes.append(
            f"{request.get('kind')} drain of {request.get('instanceId')} "
            f"({request.get('reason')}), route {request.get('route')}"
        )
        if request.get("problem"):
            notes.append(f"problem: {request['problem']}")
    if isinstance(target, dict) and not isinstance(before.get("target"), dict):
        running = target.get("runningTasksCount")  # None when found by a list alone
        counted = "" if running is None else f", {running} tasks running"
        notes.append(f"in cluster {target.get('cluster')} ({target.get('status')}{counted})")
    # The claim is part of the drain's progress (resolve or start_drain writes it).
    notes += _claim_changes(
        _part(_part(before, "progress"), "claim"), _part(_part(after, "progress"), "claim")
    )
    notes += _progress_changes(_part(before, "progress"), _part(after, "progress"))
    completion = _part(after, "completion")
    if completion and completion != _part(before, "completion"):
        if completion.get("completed"):
            notes.append(f"lifecycle action completed ({completion.get('result')})")
        elif completion.get("alreadyEnded"):
            notes.append("lifecycle action had already ended")
        if completion.get("leftTo"):
            notes.append(f"action left to {completion['leftTo']}")
    outcome = _part(after, "outcome")
    if outcome.get("outcome") and outcome != _part(before, "outcome"):
        notes.append(f"outcome {outcome['outcome']}")
    error = _part(after, "error")
    if error and error != _part(before, "error"):
        notes.append(_error_text(error.get("Error"), error.get("Cause")))
    return notes


def _wake_text(wake: dict[str, Any]) -> str:
    """What ended an awaited wait (lambdas/drainer/watch.py; README, "How a drain ends")."""
    if wake.get("wokenBy") == "task-stopped":
        return f"woken: task {str(wake.get('taskArn')).rsplit('/', 1)[-1]} stopped"
    if wake.get("wokenBy"):
        return "woken at once: the tasks had stopped before the wait was armed"
    if wake.get("Error") == "States.Timeout":
        return "no task event: the fallback poll"
    return f"awaiting failed, timer wait instead: {_error_text(wake.get('Error'), '')}"


def _claim_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    if not after or after == before:
        return []
    if after.get("duplicate"):
        return [f"duplicate: the drain is owned by {after.get('owner')}"]
    notes = ["claimed"] if after.get("key") and not before.get("key") else []
    if after.get("parked") and not before.get("parked"):
        notes.append("instance noted as parked (Spot stop/hibernate)")
    return notes


def _progress_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    notes: list[str] = []
    drain = after.get("drain")
    if isinstance(drain, dict) and drain != before.get("drain"):
        if drain.get("changed"):
            notes.append(f"set DRAINING (was {drain.get('previousStatus')})")
        elif drain.get("dryRun"):
            notes.append(f"dry run: not set DRAINING (is {drain.get('previousStatus')})")
        elif drain.get("gone") or drain.get("failure"):
            notes.append(f"not set DRAINING: {drain.get('gone') or drain.get('failure')}")
        else:
            notes.append(f"already {drain.get('previousStatus')}")
    tasks = after.get("tasks")
    if isinstance(tasks, dict) and tasks != before.get("tasks"):
        kinds = ", ".join(
            f"{name} {count}" for name, count in tasks.items() if name != "alive" and count
        )
        notes.append(f"{tasks.get('alive')} tasks alive" + (f" ({kinds})" if kinds else ""))
    verdict = after.get("verdict")
    if verdict != before.get("verdict") and verdict in VERDICTS:
        notes.append(VERDICTS[verdict])
    ending = after.get("ending")
    if ending != before.get("ending") and ending in ENDINGS:
        notes.append(ENDINGS[ending])
    for key, words in (
        ("heartbeats", "heartbeat {} recorded"),
        ("tasksStopped", "{} tasks stopped in all"),
        ("tasksCutShort", "{} tasks cut short in all"),
    ):
        if (after.get(key) or 0) > (before.get(key) or 0):
            notes.append(words.format(after[key]))
    wait = after.get("nextWaitSeconds")
    if before.get("nextWaitSeconds") not in (None, wait) and wait is not None:
        notes.append(f"next wait {wait} s")
    if after.get("replaced") and not before.get("replaced"):
        notes.append("replacement requested")
    return notes


def _part(document: dict[str, Any], key: str) -> dict[str, Any]:
    value = document.get(key)
    return value if isinstance(value, dict) else {}


def _error_text(error: Any, cause: Any) -> str:
    cause_text = str(cause or "")
    if len(cause_text) > CAUSE_CHARACTERS:
        cause_text = cause_text[:CAUSE_CHARACTERS] + "…"
    return "error " + ": ".join(str(part) for part in (error, cause_text) if part)
