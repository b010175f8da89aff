"""Step Functions size quotas that moto does not enforce, enforced as AWS does.

StartExecution's `input` is at most 262,144 bytes of UTF-8 (Step Functions API reference,
https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html, and
the quota "Maximum input or output size for a task, state, or execution",
https://docs.aws.amazon.com/step-functions/latest/dg/limits-overview.html). A value over a
member's length constraint fails the request with ValidationException, in AWS's wording.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from moto.stepfunctions.exceptions import ValidationException
from moto.stepfunctions.models import StepFunctionBackend
from moto.stepfunctions.parser.models import StepFunctionsParserBackend

MAX_EXECUTION_INPUT_BYTES = 262_144


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
