"""The state machine definition file and what the stack substitutes into it.

The ASL file in statemachine/ is the one definition: the stack, the tests and the sandbox load
it and fill the same `${…}` placeholders; nothing rebuilds it in code.
"""

from __future__ import annotations

import json
import re
from typing import Any

from stacks import ROOT

# The functions are declared in stacks/functions.py; their names stay importable from here,
# where their placeholders are filled.
from stacks.functions import FUNCTIONS as FUNCTIONS
from stacks.functions import REACTIVATE_FUNCTION as REACTIVATE_FUNCTION
from stacks.functions import RESCUE_FUNCTION as RESCUE_FUNCTION
from stacks.functions import Function as Function

DEFINITION_FILE = ROOT / "statemachine" / "drainer.asl.json"
PLACEHOLDER = re.compile(r"\$\{(\w+)\}")
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


def definition_text() -> str:
    return DEFINITION_FILE.read_text()


def placeholders(text: str | None = None) -> set[str]:
    return set(PLACEHOLDER.findall(text if text is not None else definition_text()))


def substitutions(function_arns: dict[str, str]) -> dict[str, str]:
    """Placeholder → value, from function name → the ARN the state machine invokes (the stack
    passes each function's published version, so an execution keeps the code it started with)."""
    return {function.placeholder: function_arns[function.name] for function in FUNCTIONS}


def render(values: dict[str, str]) -> dict[str, Any]:
    """The definition with every placeholder filled, as Step Functions receives it."""
    text = definition_text()
    missing = placeholders(text) - values.keys()
    if missing:
        raise KeyError(f"no value for placeholders {sorted(missing)} in {DEFINITION_FILE.name}")
    return json.loads(PLACEHOLDER.sub(lambda match: values[match.group(1)], text))
