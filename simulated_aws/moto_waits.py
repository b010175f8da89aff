"""moto's Step Functions Wait states, Retry back-offs and callback Tasks, on the virtual clock.

The one place the simulated world reaches into another library's internals, and why: everything
else takes the clock as an argument (the world's models and throttling buckets, the sandbox's
EventBridge and clock driver), and time-machine, a library made for it, moves what `time.time()`
and `datetime.now()` read. But how long a thread *blocks* is not time that time-machine moves, and
moto's ASL interpreter takes no clock and offers no setting for it: a Wait state blocks on a
`threading.Event` for real seconds (`WaitFunction._wait_interval`) and a Retry back-off calls
`time.sleep` (`RetrierDecl._eval_body`); a `.waitForTaskToken` Task waits for SendTaskSuccess
(or its TimeoutSeconds) on the `threading.Event` of its `CallbackEndpoint` (`wait`). Without this
patch a 48-hour Wait would take 48 hours and a callback Task's timeout would pass in real time.

So `on_clock(clock)` swaps the first two for the clock's `sleep`, makes the callback module's
events `ClockEvent`s (a drop-in `threading.Event` whose `set()`, from SendTaskSuccess, wakes a
clock waiter at once) and has `CallbackEndpoint.wait` wait on its event with the clock's `wait`;
only while a world is installed. StopExecution ends the execution at once, whatever it waits
in (https://docs.aws.amazon.com/step-functions/latest/apireference/API_StopExecution.html);
moto ends a Wait only by a real-time event and a callback Task only at its timeout, so a stop
here sets the stopped environment's `ClockEvent` (a Wait waits on it) and interrupts its
callback endpoints, and an ExecuteState whose program was stopped meanwhile ends without the
failure its interrupted wait raises (AWS records nothing after ExecutionAborted).
It also answers SendTaskSuccess for a closed Task as Step Functions does (moto 5.2.5 accepts it
silently, or fails building its error). And every state's outer
wait for its own thread (`ExecutionState._evaluate_with_timeout`, a real `threading.Event` with
TimeoutSeconds in real seconds) waits without that limit: the Task's time is virtual, kept by the
callback wait's own timeout (a Lambda Task takes no virtual time here), and a refresh of
thousands of drains runs at about real speed, where a callback Task with a few seconds left
would otherwise time out early in real time, and more often the busier the machine.
`check_seams()` says what all this relies on (moto 5.2.5, pinned in requirements.txt) and runs
before every patch, so a moto upgrade that moves them fails at once with what to fix rather
than quietly waiting in real time; tests/simulated_aws/test_world_moto_sfn.py checks it too.
"""

from __future__ import annotations

import inspect
import threading
import time
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from simulated_aws.clock import ClockEvent

MOTO_VERSION = "5.2.5"  # the version whose internals are named below
_on_clock = False  # whether the patch is in place
_STOP_EVENT = "_stopped_on_clock"  # the ClockEvent a stop sets, kept on moto's Environment
_stop_event_lock = threading.Lock()
TASK_CLOSED = (
    "The task token has either expired or the task associated with the token has already "
    "been closed."
)


class Sleeper(Protocol):
    def sleep(self, seconds: float) -> None: ...

    def wait(self, event: ClockEvent, seconds: float | None) -> bool: ...


class MotoSeamsMoved(RuntimeError):
    """moto no longer has the internals this patch replaces."""


def _internals() -> tuple[Any, Any, Any]:
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function import wait_function
    from moto.stepfunctions.parser.asl.eval.callback import callback

    return wait_function.WaitFunction, retrier_decl, callback


def _stop_internals() -> tuple[Any, Any, Any]:
    from moto.stepfunctions.parser.asl.component.state.exec.execute_state import ExecutionState
    from moto.stepfunctions.parser.asl.eval.environment import Environment
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramStopped

    return Environment, ExecutionState, ProgramStopped


class _UntimedEvent(threading.Event):
    """A state's wait for its own thread: as long as the thread takes (see the module's doc)."""

    def wait(self, timeout: float | None = None) -> bool:
        return super().wait()


def _takes(function: Any, *parameters: str) -> bool:
    """Whether `function` exists and takes exactly these parameters."""
    return function is not None and tuple(inspect.signature(function).parameters) == parameters


def _stop_problems() -> list[str]:
    try:
        environment, execution_state, _ = _stop_internals()
    except ImportError as error:
        return [f"cannot import {error.name}"]
    problems = []
    stop = getattr(environment, "set_stop", None)
    if not _takes(stop, "self", "stop_date", "cause", "error"):
        problems.append("Environment.set_stop(self, stop_date, cause, error) is gone")
    elif "for frame in self._frames" not in inspect.getsource(stop):
        problems.append("Environment.set_stop no longer stops its frames")
    timeout = getattr(execution_state, "_evaluate_with_timeout", None)
    if not _takes(timeout, "self", "env"):
        problems.append("ExecutionState._evaluate_with_timeout(self, env) is gone")
    else:
        source = inspect.getsource(timeout)
        if not all(
            line in source
            for line in (
                "terminated_event = threading.Event()",
                "terminated_event.wait(timeout_seconds)",
            )
        ):
            problems.append(
                "ExecutionState._evaluate_with_timeout no longer waits on a threading.Event "
                "with timeout_seconds"
            )
    if "self._evaluate_with_timeout(env)" not in inspect.getsource(execution_state._eval_state):
        problems.append("ExecutionState._eval_state no longer calls _evaluate_with_timeout")
    return problems


def _callback_problems(callback: Any) -> list[str]:
    try:
        from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
            state_task_service_callback as service_callback,
        )
    except ImportError as error:
        return [f"cannot import {error.name}"]
    problems = []
    if getattr(callback, "Event", None) is not threading.Event:
        problems.append("callback.py no longer imports threading's `Event`")
    endpoint = getattr(callback, "CallbackEndpoint", None)
    wait = getattr(endpoint, "wait", None)
    if not _takes(wait, "self", "timeout"):
        problems.append("CallbackEndpoint.wait(self, timeout) is gone")
    elif "self._notify_event = Event()" not in inspect.getsource(endpoint.__init__):
        problems.append("CallbackEndpoint no longer makes its _notify_event with Event()")
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend as backend

    if not all(hasattr(backend, name) for name in ("_get_executions", "send_task_success")):
        problems.append("StepFunctionsParserBackend lost _get_executions or send_task_success")
    if "_pool" not in inspect.getsource(callback.CallbackPoolManager.notify):
        problems.append("CallbackPoolManager no longer keeps its endpoints in _pool")
    task = service_callback.StateTaskServiceCallback._wait_for_task_token_timeout
    if "callback_endpoint.wait(" not in inspect.getsource(task):
        problems.append(
            "StateTaskServiceCallback._wait_for_task_token_timeout no longer calls "
            "CallbackEndpoint.wait"
        )
    return problems


def check_seams() -> None:
    """Raise MotoSeamsMoved, naming what changed, unless moto still waits where we patch."""
    import moto

    try:
        wait_function, retrier_decl, callback = _internals()
    except ImportError as error:
        problems = [f"cannot import {error.name}"]
    else:
        problems = _callback_problems(callback) + _stop_problems()
        wait = getattr(wait_function, "_wait_interval", None)
        if not _takes(wait, "self", "env", "wait_seconds"):
            problems.append("WaitFunction._wait_interval(self, env, wait_seconds) is gone")
        if getattr(retrier_decl, "time", None) is not time:
            problems.append("retrier_decl no longer imports the `time` module")
        elif "time.sleep(" not in inspect.getsource(retrier_decl.RetrierDecl._eval_body):
            problems.append("RetrierDecl._eval_body no longer calls time.sleep")
    if problems:
        raise MotoSeamsMoved(
            f"moto {moto.__version__} (this patch was written for {MOTO_VERSION}): "
            + "; ".join(problems)
            + ". Wait states, Retry back-offs or callback Tasks would run in real time: find "
            "where moto now waits and update simulated_aws/moto_waits.py."
        )


def _stop_event(env: Any) -> ClockEvent:
    """The environment's stop event, made on first use (by a Wait or by the stop itself)."""
    with _stop_event_lock:
        event = env.__dict__.get(_STOP_EVENT)
        if event is None:
            event = ClockEvent()
            setattr(env, _STOP_EVENT, event)
        return event


@contextmanager
def on_clock(clock: Sleeper) -> Iterator[None]:
    """While inside, moto's Wait states, Retry back-offs and callback Tasks wait on `clock`."""
    global _on_clock
    if _on_clock:
        raise RuntimeError("moto's waits are already on a virtual clock (one world at a time)")
    check_seams()
    wait_function, retrier_decl, callback = _internals()
    environment, execution_state, program_stopped = _stop_internals()

    def wait_interval(self: Any, env: Any, wait_seconds: int) -> None:
        if wait_seconds <= 0:
            return
        stopped = _stop_event(env)  # made before the check: a stop after it sets this event
        if env.is_running():
            clock.wait(stopped, wait_seconds)

    def set_stop(self: Any, stop_date: Any, cause: Any, error: Any) -> None:
        original_set_stop(self, stop_date, cause, error)  # stops the frames too (this, again)
        if isinstance(self.program_state(), program_stopped):
            _stop_event(self).set()
            for endpoint in list(self.callback_pool_manager._pool.values()):
                endpoint.interrupt_all()  # its wait ends with no outcome

    def evaluate_with_timeout(self: Any, env: Any) -> None:
        try:
            original_evaluate(self, env)
        except Exception:
            # The state's wait was interrupted by the stop: the execution just ends.
            if not isinstance(env.program_state(), program_stopped):
                raise

    def callback_wait(self: Any, timeout: float | None = None) -> Any:
        event = self._notify_event
        if not isinstance(event, ClockEvent):
            raise RuntimeError(
                "a Step Functions callback made before the world was installed cannot wait on "
                "its virtual clock"
            )
        # On the timeout, moto's own answer: no outcome (States.Timeout).
        outcome = self._outcome if clock.wait(event, timeout) else None
        # Either way the Task is closed now. Step Functions refuses a later SendTaskSuccess
        # for it ("TaskTimedOut: the task token has either expired or the task associated with
        # the token has already been closed", https://docs.aws.amazon.com/step-functions/latest/apireference/API_SendTaskSuccess.html);
        # moto would accept it silently, so the endpoint is marked as moto marks a closed one.
        self.report(callback.CallbackConsumerTimeout())
        return outcome

    def send_task_success(self: Any, task_token: str, outcome: str) -> None:
        # moto 5.2.5 raises its TaskTimedOut / InvalidToken without the message its error class
        # requires (a TypeError, i.e. a 500), so the answers are given here, as the API
        # reference lists them: a closed Task's token → TaskTimedOut, an unknown one →
        # InvalidToken (https://docs.aws.amazon.com/step-functions/latest/apireference/API_SendTaskSuccess.html).
        from moto.core.exceptions import AWSError
        from moto.stepfunctions.parser.api import ExecutionStatus

        for execution in self._get_executions(ExecutionStatus.RUNNING):
            pool = execution.exec_worker.env.callback_pool_manager
            endpoint = pool._pool.get(task_token)
            if endpoint is None:
                continue
            if endpoint.consumer_error is not None:
                raise AWSError(TASK_CLOSED, "TaskTimedOut")
            endpoint.notify(callback.CallbackOutcomeSuccess(callback_id=task_token, output=outcome))
            return
        raise AWSError("Invalid Token: 'Invalid token'", "InvalidToken")

    from moto.stepfunctions.parser.models import StepFunctionsParserBackend as backend

    original_send = backend.send_task_success
    original_wait, original_time = wait_function._wait_interval, retrier_decl.time
    # Only the retrier module sees this `time`: the real module stays untouched for everyone.
    retrier_time = types.SimpleNamespace(
        **{name: getattr(time, name) for name in dir(time) if not name.startswith("_")}
    )
    retrier_time.sleep = clock.sleep
    original_event, original_callback_wait = callback.Event, callback.CallbackEndpoint.wait
    original_set_stop = environment.set_stop
    original_evaluate = execution_state._evaluate_with_timeout
    state_module = inspect.getmodule(execution_state)
    original_state_threading = state_module.threading
    # Only that module's `threading`: its Event waits without a real-time limit.
    state_threading = types.SimpleNamespace(
        **{name: getattr(threading, name) for name in dir(threading) if not name.startswith("_")}
    )
    state_threading.Event = _UntimedEvent
    wait_function._wait_interval = wait_interval
    retrier_decl.time = retrier_time
    callback.Event = ClockEvent  # only that module's: its endpoints' events wake the clock
    callback.CallbackEndpoint.wait = callback_wait
    backend.send_task_success = send_task_success
    environment.set_stop = set_stop
    execution_state._evaluate_with_timeout = evaluate_with_timeout
    state_module.threading = state_threading
    _on_clock = True
    try:
        yield
    finally:
        wait_function._wait_interval = original_wait
        retrier_decl.time = original_time
        callback.Event = original_event
        callback.CallbackEndpoint.wait = original_callback_wait
        backend.send_task_success = original_send
        environment.set_stop = original_set_stop
        execution_state._evaluate_with_timeout = original_evaluate
        state_module.threading = original_state_threading
        _on_clock = False
