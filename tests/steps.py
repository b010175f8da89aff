"""Run one Task of the real definition file on a state document, as Step Functions would.

The Task's Parameters build the handler's payload from the document (its parts, the execution
ARN and input), and its ResultSelector and ResultPath place the handler's answer: a unit test
calls the real handler with the payload the deployed state machine sends, and sees the
document the next state would see.
"""

from __future__ import annotations

import copy
import importlib
import json
from typing import Any

from stacks.definition import DEFINITION_FILE, FUNCTIONS

STATES = json.loads(DEFINITION_FILE.read_text())["States"]
ARN = "arn:aws:states:us-east-1:123456789012:execution:ecs-drainer:one"
HANDLERS = {f"${{{function.placeholder}}}": function.handler for function in FUNCTIONS}


def payload(name: str, document: dict[str, Any], execution_arn: str, execution_input: Any) -> Any:
    context = {"$$.Execution.Id": execution_arn, "$$.Execution.Input": execution_input}
    return _fill(STATES[name]["Parameters"]["Payload"], document, context)


def handler_of(name: str) -> Any:
    module, function = HANDLERS[STATES[name]["Parameters"]["FunctionName"]].split(".")
    return getattr(importlib.import_module(module), function)


def step(
    name: str,
    document: dict[str, Any],
    execution_arn: str = ARN,
    execution_input: Any = None,
) -> dict[str, Any]:
    """The document after the Task `name` ran on it (the input is left unchanged)."""
    task = STATES[name]
    answer = handler_of(name)(payload(name, document, execution_arn, execution_input), None)
    answer = json.loads(json.dumps(answer))  # what crosses the wire
    if "ResultSelector" in task:
        answer = _fill(task["ResultSelector"], {"Payload": answer}, {})
    if "ResultPath" not in task:
        return answer  # Resolve: OutputPath $.Payload, the first document
    updated = copy.deepcopy(document)
    updated[task["ResultPath"].removeprefix("$.")] = answer
    return updated


def _fill(template: Any, document: dict[str, Any], context: dict[str, Any]) -> Any:
    if not isinstance(template, dict):
        return template
    filled = {}
    for key, value in template.items():
        if key.endswith(".$"):
            filled[key[:-2]] = context[value] if value in context else _path(document, value)
        else:
            filled[key] = _fill(value, document, context)
    return filled


def _path(document: dict[str, Any], path: str) -> Any:
    """`$` or `$.a.b`: a missing key fails, as it fails the Task in Step Functions."""
    value: Any = document
    for key in path.removeprefix("$").split(".")[1:]:
        if not isinstance(value, dict) or key not in value:
            raise KeyError(f"{path} is not in the document (States.Runtime)")
        value = value[key]
    return copy.deepcopy(value)
