"""The README stays the user's manual: its picture and its configuration table match the code."""

from __future__ import annotations

import json
import re
import subprocess

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


# Paths of the machine this was built on, and its workspace notes, which a user's clone lacks.
# Spelled in pieces so that this file does not name them itself.
OUTSIDE_THE_REPOSITORY = re.compile(
    "|".join(
        re.escape(piece)
        for piece in ("/" + "work/", "shared" + "/", "AWS" + "-FACTS", "TOOL" + "ING.md")
    )
)


def _tracked_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return [name for name in listed.stdout.split("\0") if name]


def test_the_repository_names_nothing_outside_it():
    """A clone must build, test and read on its own: cite public sources, use tests/fixtures."""
    named = [
        f"{name}:{number}: {line.strip()}"
        for name in _tracked_files()
        if (ROOT / name).is_file()
        for number, line in enumerate(
            (ROOT / name).read_bytes().decode("utf-8", "replace").splitlines(), start=1
        )
        if OUTSIDE_THE_REPOSITORY.search(line)
    ]
    assert named == []
