"""Step Functions quotas and rules that moto does not enforce, enforced as AWS does.

StartExecution's `input` is at most 262,144 bytes of UTF-8 (Step Functions API reference,
https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html, and
the quota "Maximum input or output size for a task, state, or execution",
https://docs.aws.amazon.com/step-functions/latest/dg/limits-overview.html). A value over a
member's length constraint fails the request with ValidationException, in AWS's wording.
An execution name is 1–80 characters without whitespace, brackets, wildcards, control characters
or any of `"#%\\^|~`$&,;:/` (the same StartExecution reference); AWS refuses another with
InvalidName.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from moto.stepfunctions.exceptions import InvalidName, ValidationException
from moto.stepfunctions.models import StepFunctionBackend
from moto.stepfunctions.parser.models import StepFunctionsParserBackend

MAX_EXECUTION_INPUT_BYTES = 262_144
MAX_EXECUTION_NAME = 80
FORBIDDEN_IN_NAMES = re.compile(r'[\s<>{}\[\]?*"#%\\^|~`$&,;:/\x00-\x1f\x7f-\x9f]')


def check_execution_name(name: str | None) -> None:
    """Raise AWS's InvalidName for a name StartExecution refuses (None: AWS makes one up)."""
    if name is None:
        return
    if not 1 <= len(name) <= MAX_EXECUTION_NAME or FORBIDDEN_IN_NAMES.search(name):
        raise InvalidName(f"Invalid Name: '{name}'")


def check_execution_input(execution_input: str | None) -> None:
    """Raise AWS's ValidationException for an execution input over the quota."""
    if execution_input is not None and len(execution_input.encode()) > MAX_EXECUTION_INPUT_BYTES:
        raise ValidationException(
            "1 validation error detected: Value at 'input' failed to satisfy constraint: "
            f"Member must have length less than or equal to {MAX_EXECUTION_INPUT_BYTES}"
        )


@contextmanager
def enforced() -> Iterator[None]:
    """moto's StartExecution (both its backends: with and without the interpreter) refuses an
    input AWS would refuse, whoever calls it: EventBridge delivery, a test, the AWS CLI."""
    originals = {
        backend: backend.start_execution
        for backend in (StepFunctionBackend, StepFunctionsParserBackend)
    }

    def guarded(original: Any) -> Any:
        def start_execution(
            backend: Any,
            state_machine_arn: str,
            name: Any = None,
            execution_input: Any = None,
            *args: Any,
            **kwargs: Any,
        ) -> Any:
            check_execution_name(name)
            check_execution_input(execution_input)
            return original(backend, state_machine_arn, name, execution_input, *args, **kwargs)

        return start_execution

    for backend, original in originals.items():
        backend.start_execution = guarded(original)  # type: ignore[method-assign]
    try:
        yield
    finally:
        for backend, original in originals.items():
            backend.start_execution = original  # type: ignore[method-assign]
