"""Field checks shared by the parsers: every refusal names the field and the fix."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from drainer.request import EventError

MAX_TEXT = 1024  # longer strings are not AWS ids: refuse them before they reach a log or an API

INSTANCE_ID = re.compile(r"i-[0-9a-f]{8}(?:[0-9a-f]{9})?")
TOKEN = re.compile(r"[0-9A-Za-z-]{36}")  # botocore: LifecycleActionToken is 36 characters
GROUP_NAME = re.compile(r"[^\x00-\x1f:]{1,255}")  # botocore XmlStringMaxLen255; ':' only in ARNs
HOOK_NAME = re.compile(r"[A-Za-z0-9\-_/]{1,255}")  # botocore AsciiStringMaxLen255 pattern


def text_field(mapping: Mapping[str, Any], key: str, *, where: str = "") -> str:
    name = f"{where}{key}"
    value = mapping.get(key)
    if value is None or value == "":
        raise EventError(name, "missing", f"Set '{name}' as in the AWS event reference")
    if not isinstance(value, str):
        raise EventError(
            name, f"expected a string, got {type(value).__name__}", f"Send '{name}' as a string"
        )
    if len(value) > MAX_TEXT:
        raise EventError(
            name, f"{len(value)} characters is longer than any AWS value", f"Send the real '{name}'"
        )
    return value


def optional_text(mapping: Mapping[str, Any], key: str, *, where: str = "") -> str | None:
    if mapping.get(key) in (None, ""):
        return None
    return text_field(mapping, key, where=where)


def checked(detail: Mapping[str, Any], key: str, pattern: re.Pattern[str], what: str) -> str:
    value = text_field(detail, key, where="detail.")
    if not pattern.fullmatch(value):
        raise EventError(
            f"detail.{key}", f"{value[:80]!r} is not {what}", f"Send {what} in detail.{key}"
        )
    return value
