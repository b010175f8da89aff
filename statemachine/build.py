"""Write statemachine/drainer.asl.json, the state machine definition, from this one source.

    python -m statemachine.build     # or: make statemachine

The written file is what the stack deploys and Workflow Studio opens;
tests/unit/test_definition_file.py fails when it differs from what this module writes. Retry and
Catch are defined once here, each kind of Task has one helper, and every Choice string is a
constant the handlers use (routes from drainer/request.py, verdicts from drainer/progress.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "lambdas") not in sys.path:  # the handlers' own constants
    sys.path.insert(0, str(ROOT / "lambdas"))

from drainer import progress, request, state  # noqa: E402

DEFINITION_FILE = ROOT / "statemachine" / "drainer.asl.json"

# Lambda's transient service errors as Step Functions reports them, which every Task retries:
# the four 500s of "Handle transient Lambda service exceptions" (Step Functions developer guide,
# https://docs.aws.amazon.com/step-functions/latest/dg/bp-lambda-serviceexception.html) and,
# from the same page, Lambda.TooManyRequestsException (Lambda throttled the invocation).
TRANSIENT_LAMBDA_ERRORS = (
    "Lambda.ClientExecutionTimeoutException",
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
)
# drainer/aws.py raises these: AWS throttling, and other AWS errors worth another attempt.
THROTTLED, TRANSIENT = "Throttled", "AwsTransientError"
# A Lambda whose runtime ended abnormally (e.g. out of memory), or that outran its timeout (the
# runtime's, then the Task's own).
ABNORMAL_ENDS = ("Lambda.Unknown", "Sandbox.Timedout", "States.Timeout")
TASK_TIMEOUT_SECONDS = 90  # drainer/schedule.py HEARTBEAT_MARGIN_SECONDS counts on it
EXECUTION_TIMEOUT_SECONDS = 180_000  # 50 h: past the 48-hour ceiling and its completion

# State names. The rescue function (lambdas/rescue_execution.py) reads the rescue path's by name.
RESOLVE = "Resolve drain request"
ROUTE = "Route by event kind"
PACE = "Wait for a drain start slot"
START = "Start draining"
CHECK = "Check drain progress"
WAIT = "Wait before polling"
AWAIT = "Await task stops"
POLL = "Poll tasks"
HEARTBEAT = "Record heartbeat"
STOP_STANDALONE = "Stop standalone tasks"
CEILING = "Ceiling: apply straggler policy"
CEILING_WAIT = "Ceiling: let stragglers stop"
COMPLETE = "Complete lifecycle action"
REPLACE = "Rebalance: replace instance"
REPORT = "Report outcome"
RESCUE = "Rescue: was the instance draining?"
RESCUE_WAIT = "Rescue: let ECS move the tasks"
RESCUE_COMPLETE = "Rescue: complete lifecycle action"
RESCUE_REPORT = "Rescue: report failure"
FAILED = "Drain failed"


def retry(throttled_attempts: int, transient_attempts: int) -> list[dict[str, Any]]:
    """Full-jitter exponential back-off: throttling waits up to a minute between attempts
    (waiting costs nothing in a Wait-free retry), transient errors up to 30 s."""
    return [
        {
            "ErrorEquals": [THROTTLED],
            "IntervalSeconds": 2,
            "MaxAttempts": throttled_attempts,
            "BackoffRate": 2,
            "MaxDelaySeconds": 60,
            "JitterStrategy": "FULL",
        },
        {
            "ErrorEquals": [TRANSIENT, *TRANSIENT_LAMBDA_ERRORS, *ABNORMAL_ENDS],
            "IntervalSeconds": 2,
            "MaxAttempts": transient_attempts,
            "BackoffRate": 2,
            "MaxDelaySeconds": 30,
            "JitterStrategy": "FULL",
        },
    ]


STEP_RETRY = retry(10, 5)
# "Await task stops": Lambda's transient errors only, two quick attempts (each retry restarts
# the callback's timeout; tests/unit/test_heartbeat_schedule.py bounds what that can add).
AWAIT_RETRY = [
    {
        "ErrorEquals": list(TRANSIENT_LAMBDA_ERRORS),
        "IntervalSeconds": 1,
        "MaxAttempts": 2,
        "BackoffRate": 2,
        "MaxDelaySeconds": 5,
        "JitterStrategy": "FULL",
    }
]
RESCUE_RETRY = retry(20, 10)  # the rescue path is the last chance to complete the action


def catch(result_path: str, next_state: str) -> list[dict[str, Any]]:
    return [{"ErrorEquals": ["States.ALL"], "ResultPath": result_path, "Next": next_state}]


STEP_CATCH = catch("$.error", RESCUE)  # every step's errors lead to the rescue path


def arn(function: str) -> str:
    """The placeholder the stack fills with the function's ARN (stacks/definition.py)."""
    return f"${{{function}FunctionArn}}"


def invoke(
    function: str,
    comment: str,
    payload: dict[str, Any],
    next_state: str | None,
    *,
    writes: tuple[str, type] | None = None,
    retries: list[dict[str, Any]] = STEP_RETRY,
    catches: list[dict[str, Any]] = STEP_CATCH,
) -> dict[str, Any]:
    """A Task invoking a Lambda with `payload`. The Lambda returns one part of the state
    document, `writes` = (part, its shape in drainer/state.py), placed at $.part; without
    `writes` its answer becomes the whole document (Resolve builds the first one). No
    `next_state`: the execution ends there."""
    task: dict[str, Any] = {
        "Type": "Task",
        "Comment": comment,
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {
            "FunctionName": arn(function),
            "Payload": {**payload, "executionArn.$": "$$.Execution.Id"},
        },
    }
    if writes:
        part, shape = writes
        task["ResultSelector"] = {f"{key}.$": f"$.Payload.{key}" for key in state.keys(shape)}
        task["ResultPath"] = f"$.{part}"
    else:
        task["OutputPath"] = "$.Payload"
    task.update(TimeoutSeconds=TASK_TIMEOUT_SECONDS, Retry=retries, Catch=catches)
    if next_state:
        task["Next"] = next_state
    else:
        task["End"] = True
    return task


def await_stops(function: str, comment: str, next_state: str, timer_wait: str) -> dict[str, Any]:
    """The callback Task of an event-woken wait (drainer/watch.py): the Lambda stores the task
    token; a task event (or the Lambda itself, when the tasks stopped before) sends it back.
    It times out after $.progress.nextWaitSeconds, the fallback poll: States.Timeout is the
    timer wait's end, not an error, and never retried. A retried attempt waits its whole
    timeout again, past the heartbeat that timeout was cut to: only Lambda's own transient
    errors are retried, briefly (AWAIT_RETRY); any other failure falls back to the timer wait
    (a wake-up is only a hint, never worth the rescue path)."""
    return {
        "Type": "Task",
        "Comment": comment,
        "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "Parameters": {
            "FunctionName": arn(function),
            "Payload": {
                "taskToken.$": "$$.Task.Token",
                **parts("request", "target", "progress"),
                "executionArn.$": "$$.Execution.Id",
            },
        },
        "TimeoutSecondsPath": "$.progress.nextWaitSeconds",
        "ResultPath": "$.wake",
        "Retry": AWAIT_RETRY,
        "Catch": [
            {"ErrorEquals": ["States.Timeout"], "ResultPath": "$.wake", "Next": next_state},
            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.wake", "Next": timer_wait},
        ],
        "Next": next_state,
    }


def parts(*names: str) -> dict[str, str]:
    """Parameters passing these parts of the state document to the Lambda."""
    return {f"{name}.$": f"$.{name}" for name in names}


def wait(comment: str, seconds_path: str, next_state: str) -> dict[str, Any]:
    return {"Type": "Wait", "Comment": comment, "SecondsPath": seconds_path, "Next": next_state}


def choice(comment: str, rules: list[dict[str, Any]], default: str) -> dict[str, Any]:
    return {"Type": "Choice", "Comment": comment, "Choices": rules, "Default": default}


def equals(variable: str, value: str, next_state: str) -> dict[str, Any]:
    return {"Variable": variable, "StringEquals": value, "Next": next_state}


def route(value: str, next_state: str) -> dict[str, Any]:
    assert value in ROUTES, value
    return equals("$.request.route", value, next_state)


def verdict(value: str, next_state: str) -> dict[str, Any]:
    assert value in progress.VERDICTS, value
    return equals("$.progress.verdict", value, next_state)


ROUTES = {value for name, value in vars(request).items() if name.startswith("ROUTE_")}
PROGRESS = ("progress", state.Progress)


def definition() -> dict[str, Any]:
    states: dict[str, Any] = {
        RESOLVE: invoke(
            "Resolve",
            "Parse the event into one drain request, find the instance's container instance "
            "and claim a lifecycle or rebalance drain",
            {"event.$": "$"},
            ROUTE,
        ),
        ROUTE: choice(
            "What Resolve decided: a duplicate or an event with nothing to drain ends here; "
            "otherwise the drain request's route",
            [
                verdict(progress.FINISH, REPORT),
                route(request.ROUTE_LIFECYCLE, PACE),
                route(request.ROUTE_SPOT, START),
                route(request.ROUTE_REBALANCE_DRAIN, START),
                route(request.ROUTE_REBALANCE_REPLACE, REPLACE),
                route(request.ROUTE_COMPLETE_ONLY, COMPLETE),
            ],
            REPORT,
        ),
        PACE: wait(
            "Lifecycle drains start at drain_start_rate_per_second, so a mass refresh's first "
            "ECS calls do not all come at once (Resolve reserved the slot; Spot never waits). "
            "Never past the next heartbeat: a slot further off is waited for in rounds, with a "
            "heartbeat between them",
            "$.progress.nextWaitSeconds",
            START,
        ),
        START: invoke(
            "StartDrain",
            "Find a lifecycle drain's container instance; set it to DRAINING; then claim a Spot "
            "drain (nothing stands before DRAINING in the two minutes). Before a lifecycle "
            "drain's start slot (the heartbeat fell due first): nothing but the heartbeat",
            parts("request", "target", "progress"),
            CHECK,
        ),
        CHECK: choice(
            "What the loop does next, decided by the last step (drainer/progress.py): lifecycle "
            "and Spot drains share this loop",
            [
                verdict(progress.HEARTBEAT, HEARTBEAT),
                verdict(progress.STOP_STANDALONE, STOP_STANDALONE),
                verdict(progress.CEILING, CEILING),
                verdict(progress.COMPLETE, COMPLETE),
                verdict(progress.FINISH, REPORT),
                verdict(progress.AWAIT, AWAIT),
                verdict(progress.PACE, PACE),
            ],
            WAIT,  # progress.WAIT
        ),
        AWAIT: await_stops(
            "AwaitStops",
            "drain_end_detection 'events': wait until the tasks alive at the last poll have "
            "stopped (an ECS task event wakes it) or fallback_poll_seconds, never past the next "
            "heartbeat or the ceiling; then poll, which asks ECS",
            POLL,
            WAIT,
        ),
        WAIT: wait(
            "Interval chosen by the last step: Spot's short one, or fixed then backing off; "
            "never past the next heartbeat or the ceiling",
            "$.progress.nextWaitSeconds",
            POLL,
        ),
        POLL: invoke(
            "PollTasks",
            "Count every task not yet STOPPED, including tasks still stopping",
            parts("request", "target", "progress"),
            CHECK,
            writes=PROGRESS,
        ),
        HEARTBEAT: invoke(
            "RecordHeartbeat",
            "Keep the lifecycle action alive well before the hook's heartbeat timeout; an "
            "action completed or expired elsewhere ends the drain. Before DRAINING, then wait "
            "again for the start slot",
            parts("request", "progress"),
            CHECK,
            writes=PROGRESS,
        ),
        STOP_STANDALONE: invoke(
            "StopTasks",
            "Standalone task policy 'stop': their grace period is over (Spot: at once, SIGTERM "
            "now beats SIGKILL at the interruption)",
            {**parts("request", "target", "progress"), "scope": "standalone"},
            WAIT,
            writes=PROGRESS,
        ),
        CEILING: invoke(
            "StopTasks",
            "Maximum drain time reached: stop what is left (or leave it, per straggler_policy)",
            {**parts("request", "target", "progress"), "scope": "stragglers"},
            CEILING_WAIT,
            writes=PROGRESS,
        ),
        CEILING_WAIT: wait(
            "Give stopped tasks their stop timeout", "$.progress.nextWaitSeconds", COMPLETE
        ),
        COMPLETE: invoke(
            "CompleteAction",
            "CONTINUE: the termination goes ahead",
            parts("request", "progress"),
            REPORT,
            writes=("completion", state.Completion),
        ),
        REPLACE: invoke(
            "ReplaceInstance",
            "Rebalance policy 'replace': Auto Scaling launches a replacement and runs the "
            "terminate hook, which the lifecycle branch drains",
            parts("request"),
            REPORT,
            writes=("replacement", state.Replacement),
        ),
        REPORT: invoke(
            "ReportOutcome",
            "Metrics, SNS notification, claim released; the drain ends here",
            {"state.$": "$"},
            None,
            writes=("outcome", state.Outcome),
        ),
        RESCUE: choice(
            "A step failed mid-drain: the instance is DRAINING and ECS keeps moving its tasks. "
            "Give it rescue_grace_seconds before completing, rather than ending the tasks at "
            "once. The first two rules guard the third: no drain state yet, or already completed",
            [
                {
                    "Not": {"Variable": "$.progress.rescueWaitSeconds", "IsPresent": True},
                    "Next": RESCUE_COMPLETE,
                },
                {"Variable": "$.completion", "IsPresent": True, "Next": RESCUE_COMPLETE},
                {
                    "And": [
                        {
                            "Variable": "$.request.kind",
                            "StringEquals": request.LIFECYCLE,
                        },
                        {"Variable": "$.progress.drain", "IsNull": False},
                    ],
                    "Next": RESCUE_WAIT,
                },
            ],
            RESCUE_COMPLETE,
        ),
        RESCUE_WAIT: wait(
            "rescue_grace_seconds (fits within the hook's heartbeat timeout and the ceiling's "
            "margin)",
            "$.progress.rescueWaitSeconds",
            RESCUE_COMPLETE,
        ),
        # The rescue steps take the whole document: a failure may have come before it had
        # its parts, and then they read the raw event again (the execution input).
        RESCUE_COMPLETE: invoke(
            "CompleteAction",
            "Any failure ends here: the lifecycle action is completed all the same",
            {"state.$": "$", "executionInput.$": "$$.Execution.Input"},
            RESCUE_REPORT,
            writes=("completion", state.Completion),
            retries=RESCUE_RETRY,
            catches=catch("$.rescueError", RESCUE_REPORT),
        ),
        RESCUE_REPORT: invoke(
            "ReportOutcome",
            "Publish the failure (the alarm fires on the failed execution)",
            {"state.$": "$", "executionInput.$": "$$.Execution.Input"},
            FAILED,
            writes=("outcome", state.Outcome),
            retries=RESCUE_RETRY,
            catches=catch("$.reportError", FAILED),
        ),
        FAILED: {
            "Type": "Fail",
            "Error": "DrainFailed",
            "Cause": "A step failed; the rescue path completed the lifecycle action. See the "
            "execution's error.",
        },
    }
    return {
        "Comment": "ECS drain orchestrator: drains an EC2 container instance before it goes "
        "away. Written by statemachine/build.py (make statemachine); substitutions ${...} are "
        "filled by the stack.",
        "StartAt": RESOLVE,
        "TimeoutSeconds": EXECUTION_TIMEOUT_SECONDS,
        "States": states,
    }


def text() -> str:
    return json.dumps(definition(), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    DEFINITION_FILE.write_text(text())
    print(f"written {DEFINITION_FILE.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
