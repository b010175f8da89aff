"""How a bad configuration file is explained: in our words, naming the field, the value and
the fix (stacks/config.py validates; this module words the refusal)."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

TABLE = "drainer"  # the one table of the configuration file


def layout_problems(raw: dict[str, Any], known: Mapping[str, Any]) -> list[str]:
    """Everything outside the [drainer] table: TOML would hand it over, nothing would read it."""
    if TABLE not in raw:
        found = ", ".join(sorted(raw)) or "nothing"
        return [
            f"[{TABLE}]: the table is missing (found: {found}); write the line [{TABLE}] at the "
            "top of the file, above the settings"
        ]
    problems = []
    if not isinstance(raw[TABLE], dict):
        problems.append(
            f"{TABLE} = {_toml(raw[TABLE])}: write the line [{TABLE}], then the settings below it"
        )
    for key, value in raw.items():
        if key == TABLE:
            continue
        if isinstance(value, dict):
            problems.append(
                f"[{key}]: unknown table; every setting goes in the one table [{TABLE}]: move "
                "its settings there, or remove it"
            )
        else:
            problems.append(
                f"{key} = {_toml(value)}: written above the [{TABLE}] line, where nothing "
                "reads it;"
                f" move it below [{TABLE}]{did_you_mean(key, known)}"
            )
    return problems


def _toml(value: Any) -> str:
    """A value as the file spells it (true, "text", [1, 2]), where JSON spells it the same."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except TypeError:  # dates and times
        return str(value)


# What to write instead of a value of the wrong type, by pydantic error type.
TYPE_FIXES = {
    "bool_type": "write true or false, without quotes",
    "int_type": "write a whole number without quotes",
    "float_type": "write a number without quotes",
    "string_type": "write it in double quotes",
    "list_type": "write a list in brackets",
}


def explain(error: ValidationError, known: Mapping[str, Any]) -> list[str]:
    """pydantic's errors in our words: the field, the value and the fix."""
    problems = []
    for problem in error.errors():
        loc = problem["loc"]
        field = ".".join(str(part) for part in loc) or "(whole configuration)"
        value = problem.get("input")
        if problem["type"] == "extra_forbidden":
            if isinstance(value, dict):
                problems.append(
                    f"[{TABLE}.{field}]: unknown table; write its settings directly below "
                    f"[{TABLE}], or remove it"
                )
                continue
            allowed = ", ".join(sorted(known))
            problems.append(
                f"{field}: unknown setting{did_you_mean(field, known)}. Allowed settings: {allowed}"
            )
            continue
        message = re.sub(r"^Value error, ", "", problem["msg"])
        shown = "" if isinstance(value, dict) else f" = {value!r}"
        fix = _type_fix(problem["type"], field, value)
        limits = _limits(known, str(loc[0])) if loc else ""
        problems.append(f"{field}{shown}: {message}{fix}{limits}")
    return problems


def _type_fix(kind: str, field: str, value: Any) -> str:
    fix = TYPE_FIXES.get(kind)
    if fix is None:
        return ""
    example = _as_toml(kind, value)
    return f"; {fix}" + (f", e.g. {field.split('.')[0]} = {example}" if example else "")


def _as_toml(kind: str, value: Any) -> str | None:
    """The value written with the right TOML type, when it can be."""
    text = str(value).strip()
    if kind == "bool_type" and text.lower() in {"true", "false"}:
        return text.lower()
    if kind == "int_type" and re.fullmatch(r"-?\d+(\.0*)?", text):
        return str(int(float(text)))
    if kind == "float_type" and re.fullmatch(r"-?\d+(\.\d*)?", text):
        return text
    if kind == "list_type" and isinstance(value, str):
        return json.dumps([value])
    return None


def did_you_mean(key: str, known: Mapping[str, Any]) -> str:
    if key in known:
        return ""
    close = difflib.get_close_matches(key, list(known), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _limits(known: Mapping[str, Any], name: str) -> str:
    info = known.get(name)
    if info is None:
        return ""
    bounds = {type(item).__name__: item for item in info.metadata}
    low = getattr(bounds.get("Ge"), "ge", None)
    high = getattr(bounds.get("Le"), "le", None)
    if low is None and high is None:
        return ""
    return f" (allowed: {low if low is not None else '…'} to {high if high is not None else '…'})"
