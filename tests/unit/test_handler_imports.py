"""What each handler compiles on a cold start: no module it never runs on its common path.

Lambda's /var/task is read-only, so every drainer module a handler imports is compiled from
source on each cold start (bench/coldstart.py measures it against boto3's import). Type-only
shapes, the synth-time cost model and rare paths stay out of the handlers' imports.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

LAMBDAS = ROOT / "lambdas"
HANDLERS = sorted(path.stem for path in LAMBDAS.glob("*.py"))

# Modules no handler imports: type hints only, and configuration validation's cost model.
NEVER = {"drainer.state", "drainer.history"}
# Modules a handler imports only where its rare path runs.
RARE = {
    "complete_action": {"drainer.parsers"},  # the rescue path's raw event
    "report_outcome": {"drainer.parsers"},  # the rescue path's raw event
    "start_drain": {"drainer.parking", "drainer.tasks"},  # Spot drains only; no task reads
    "resolve": {"drainer.tasks"},  # it finds the instance, never reads its tasks
    "poll_tasks": {"drainer.claims"},  # it never claims a drain
    "record_heartbeat": {"drainer.claims", "drainer.ecs"},
    "await_stops": {"drainer.claims"},  # the watch needs the claims' retention only
    "wake_drain": {"drainer.claims"},
}


def imported(handler: str) -> set[str]:
    """The drainer modules importing `handler` loads, in a fresh interpreter (-B: no bytecode
    written into the tree)."""
    script = (
        f"import sys, json, {handler}; "
        "print(json.dumps([m for m in sys.modules if m.split('.')[0] == 'drainer']))"
    )
    result = subprocess.run(
        [sys.executable, "-B", "-c", script], cwd=LAMBDAS, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout))


@pytest.mark.parametrize("handler", HANDLERS)
def test_a_handler_imports_only_what_its_common_path_runs(handler: str) -> None:
    loaded = imported(handler)
    assert "drainer.log" in loaded  # the walk sees the handler's imports
    assert loaded & (NEVER | RARE.get(handler, set())) == set()
