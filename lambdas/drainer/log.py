"""One-line JSON logs that CloudWatch Logs Insights can filter on (instanceId, executionArn)."""

from __future__ import annotations

import json
import sys
import time
from typing import Any


def log(level: str, message: str, **fields: Any) -> None:
    record = {"level": level, "message": message, "timestamp": round(time.time(), 3), **fields}
    sys.stdout.write(json.dumps(record, default=str, separators=(",", ":")) + "\n")


def info(message: str, **fields: Any) -> None:
    log("INFO", message, **fields)


def warning(message: str, **fields: Any) -> None:
    log("WARNING", message, **fields)


def error(message: str, **fields: Any) -> None:
    log("ERROR", message, **fields)
