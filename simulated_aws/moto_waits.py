"""moto's Step Functions Wait states and Retry back-offs, on the virtual clock.

The one place the simulated world reaches into another library's internals, and why: everything
else takes the clock as an argument (the world's models and throttling buckets, the sandbox's
EventBridge and clock driver), and time-machine, a library made for it, moves what `time.time()`
and `datetime.now()` read. But how long a thread *blocks* is not time that time-machine moves, and
moto's ASL interpreter takes no clock and offers no setting for it: a Wait state blocks on a
`threading.Event` for real seconds (`WaitFunction._wait_interval`) and a Retry back-off calls
`time.sleep` (`RetrierDecl._eval_body`). Without this patch a 48-hour Wait would take 48 hours.

So `on_clock(clock)` swaps exactly those two for the clock's `sleep`, and only while a world is
installed. `check_seams()` says what it relies on (moto 5.2.5, pinned in requirements.txt) and
runs before every patch, so a moto upgrade that moves them fails at once with what to fix rather
than quietly waiting in real time; tests/simulated_aws/test_world_moto_sfn.py checks it too.
"""

from __future__ import annotations

import inspect
import time
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

MOTO_VERSION = "5.2.5"  # the version whose internals are named below
_on_clock = False  # whether the patch is in place


class Sleeper(Protocol):
    def sleep(self, seconds: float) -> None: ...


class MotoSeamsMoved(RuntimeError):
    """moto no longer has the internals this patch replaces."""


def _internals() -> tuple[Any, Any]:
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function import wait_function

    return wait_function.WaitFunction, retrier_decl


def check_seams() -> None:
    """Raise MotoSeamsMoved, naming what changed, unless moto still waits where we patch."""
    import moto

    try:
        wait_function, retrier_decl = _internals()
    except ImportError as error:
        problems = [f"cannot import {error.name}"]
    else:
        problems = []
        wait = getattr(wait_function, "_wait_interval", None)
        if wait is None or list(inspect.signature(wait).parameters) != [
            "self",
            "env",
            "wait_seconds",
        ]:
            problems.append("WaitFunction._wait_interval(self, env, wait_seconds) is gone")
        if getattr(retrier_decl, "time", None) is not time:
            problems.append("retrier_decl no longer imports the `time` module")
        elif "time.sleep(" not in inspect.getsource(retrier_decl.RetrierDecl._eval_body):
            problems.append("RetrierDecl._eval_body no longer calls time.sleep")
    if problems:
        raise MotoSeamsMoved(
            f"moto {moto.__version__} (this patch was written for {MOTO_VERSION}): "
            + "; ".join(problems)
            + ". Wait states and Retry back-offs would run in real time: find where moto now "
            "waits and update simulated_aws/moto_waits.py."
        )


@contextmanager
def on_clock(clock: Sleeper) -> Iterator[None]:
    """While inside, moto's Wait states and Retry back-offs sleep on `clock`."""
    global _on_clock
    if _on_clock:
        raise RuntimeError("moto's waits are already on a virtual clock (one world at a time)")
    check_seams()
    wait_function, retrier_decl = _internals()

    def wait_interval(self: Any, env: Any, wait_seconds: int) -> None:
        if wait_seconds > 0:
            clock.sleep(wait_seconds)

    original_wait, original_time = wait_function._wait_interval, retrier_decl.time
    # Only the retrier module sees this `time`: the real module stays untouched for everyone.
    retrier_time = types.SimpleNamespace(
        **{name: getattr(time, name) for name in dir(time) if not name.startswith("_")}
    )
    retrier_time.sleep = clock.sleep
    wait_function._wait_interval = wait_interval
    retrier_decl.time = retrier_time
    _on_clock = True
    try:
        yield
    finally:
        wait_function._wait_interval = original_wait
        retrier_decl.time = original_time
        _on_clock = False
