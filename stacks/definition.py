"""The state machine definition file and what the stack substitutes into it.

The ASL file in statemachine/ is the one definition, written by statemachine/build.py: the
stack, the tests and the sandbox load the file and fill the same `${…}` placeholders.
"""

from __future__ import annotations

import json
import re
from typing import Any

# The functions are declared in stacks/functions.py; their names stay importable from here,
# where their placeholders are filled.
from stacks.functions import FUNCTIONS as FUNCTIONS
from stacks.functions import REACTIVATE_FUNCTION as REACTIVATE_FUNCTION
from stacks.functions import RESCUE_FUNCTION as RESCUE_FUNCTION
from stacks.functions import Function as Function
from statemachine.build import DEFINITION_FILE

PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


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
