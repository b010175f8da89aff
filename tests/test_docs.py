"""The README stays the user's manual: its picture and its configuration table match the code."""

from __future__ import annotations

import json
import re

from stacks.config import DrainerConfig
from tests.conftest import ROOT
from tools import diagram

README = (ROOT / "README.md").read_text()


def test_state_machine_picture_is_generated_from_the_asl_file():
    definition = json.loads(diagram.ASL_FILE.read_text())
    assert diagram.readme_block(definition) in README, "run `make diagram`"
    for name in definition["States"]:
        assert f'"{name}"' in diagram.mermaid(definition)


def test_every_setting_is_documented_with_its_default():
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]+) \|", README, flags=re.MULTILINE))
    for name, field in DrainerConfig.model_fields.items():
        assert name in rows, f"README configuration table lacks {name}"
        if field.is_required():
            assert "required" in rows[name]
            continue
        default = field.get_default(call_default_factory=True)
        shown = json.dumps(default) if isinstance(default, bool | list) else str(default)
        if default is None:  # an optional feature, absent from the configuration: off
            shown = "off"
        assert shown.strip('"') in rows[name], f"{name}: README shows {rows[name]!r}"


def test_every_outcome_is_documented():
    from drainer.outcome import OUTCOMES

    for name in OUTCOMES:
        assert f"`{name}`" in README, name
