"""Draw the state machine from the ASL file as a Mermaid flowchart, into the README.

`make diagram` rewrites the block between the README's state-machine markers (GitHub renders
Mermaid as a picture) and docs/state-machine.mmd; tests/project/test_docs.py fails when the README
is out of date.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ASL_FILE = ROOT / "statemachine" / "drainer.asl.json"
README = ROOT / "README.md"
BEGIN, END = "<!-- state-machine:begin -->", "<!-- state-machine:end -->"
RESCUE = "Rescue: was the instance draining?"  # where every step's Catch leads
# The drain loop lifecycle and Spot drains share.
LOOP = ("Check drain progress", "Wait before polling", "Await task stops", "Poll tasks")
SHAPES = {
    "Task": ('["', '"]'),
    "Choice": ('{"', '"}'),
    "Wait": ('(["', '"])'),
    "Succeed": ('(("', '"))'),
    "Fail": ('(("', '"))'),
    "Pass": ('["', '"]'),
}


def node_id(name: str) -> str:
    return re.sub(r"\W+", "_", name).strip("_")


def mermaid(definition: dict[str, Any]) -> str:
    states = definition["States"]
    lines = ["flowchart TD"]
    for name, state in states.items():
        opening, closing = SHAPES[state["Type"]]
        label = name.replace('"', "'")
        lines.append(f"    {node_id(name)}{opening}{label}{closing}")
    lines.append(f'    start((" ")) --> {node_id(definition["StartAt"])}')
    caught = []
    for name, state in states.items():
        source = node_id(name)
        for choice in state.get("Choices", []):
            lines.append(f'    {source} -->|"{_condition(choice)}"| {node_id(choice["Next"])}')
        if "Default" in state:
            lines.append(f'    {source} -->|"otherwise"| {node_id(state["Default"])}')
        if "Next" in state:
            lines.append(f"    {source} --> {node_id(state['Next'])}")
        for catch in state.get("Catch", []):
            if catch["Next"] == RESCUE:
                caught.append(source)
            else:
                what = "timeout" if catch["ErrorEquals"] == ["States.Timeout"] else "on error"
                lines.append(f'    {source} -.->|"{what}"| {node_id(catch["Next"])}')
    # One dotted edge per caught state would bury the picture: draw one from a shared note.
    if caught:
        lines.append('    anyError>"any error in a step above"] -.-> ' + node_id(RESCUE))
    lines.append("    classDef rescue fill:#fde2e1,stroke:#c0392b")
    lines.append("    classDef loop fill:#e1effd,stroke:#2471a3")
    lines.append("    classDef rebalance fill:#eafaf1,stroke:#1e8449")
    for name in states:
        group = (
            "rescue"
            if name.startswith("Rescue") or name == "Drain failed"
            else "loop"
            if name in LOOP
            else "rebalance"
            if name.startswith("Rebalance")
            else None
        )
        if group:
            lines.append(f"    class {node_id(name)} {group}")
    return "\n".join(lines) + "\n"


def _condition(rule: dict[str, Any]) -> str:
    """A Choice rule as a short label: `progress.verdict = drained`, `not …`, `… and …`."""
    if "Not" in rule:
        return f"not {_condition(rule['Not'])}"
    if "And" in rule:
        return " and ".join(_condition(part) for part in rule["And"])
    if "Or" in rule:
        return " or ".join(_condition(part) for part in rule["Or"])
    variable = rule["Variable"].removeprefix("$.")
    operator, value = next((k, v) for k, v in rule.items() if k not in ("Variable", "Next"))
    if operator.startswith("Is"):  # IsPresent, IsNull, IsNumeric…
        return (
            f"{variable} {operator[2:].lower()}"
            if value
            else f"{variable} not {operator[2:].lower()}"
        )
    return f"{variable} = {json.dumps(value) if isinstance(value, bool) else value}"


def readme_block(definition: dict[str, Any]) -> str:
    return f"{BEGIN}\n```mermaid\n{mermaid(definition)}```\n{END}"


def update_readme(readme: str, definition: dict[str, Any]) -> str:
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(readme):
        raise SystemExit(f"README.md has no {BEGIN} … {END} block to fill")
    return pattern.sub(lambda _: readme_block(definition), readme)


def main() -> None:
    definition = json.loads(ASL_FILE.read_text())
    README.write_text(update_readme(README.read_text(), definition))
    (ROOT / "docs" / "state-machine.mmd").write_text(mermaid(definition))
    print("state machine diagram written to README.md and docs/state-machine.mmd", file=sys.stderr)


if __name__ == "__main__":
    main()
