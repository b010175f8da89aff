"""docs/RUNBOOK.md covers every outcome and both alarms, under headings the code names."""

from __future__ import annotations

import re

from drainer.outcome import OUTCOMES
from tests.conftest import ROOT

RUNBOOK = ROOT / "docs" / "RUNBOOK.md"


def test_runbook_has_a_section_per_outcome_and_alarm() -> None:
    text = RUNBOOK.read_text()
    headings = re.findall(r"^### (.+)$", text, flags=re.MULTILINE)
    outcomes = [h.strip("`") for h in headings if h.startswith("`")]
    assert outcomes == list(OUTCOMES), "one section per outcome, in OUTCOMES order"
    for alarm in ("DrainFailedAlarm", "UndeliveredEventsAlarm"):
        assert any(f"(`{alarm}`)" in heading for heading in headings), alarm
    for section in re.split(r"^### ", text, flags=re.MULTILINE)[1:]:
        assert "- **Do:**" in section, section.splitlines()[0]
