"""The tree's layout rules: what the user-facing commands run never depends on the test folder."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

NOT_PROJECT = {".venv", "node_modules", "cdk.out", "tests"}


def _project_modules() -> list[Path]:
    return sorted(
        path
        for path in ROOT.rglob("*.py")
        if not {part for part in path.relative_to(ROOT).parts if part in NOT_PROJECT}
        and not any(part.startswith(".") for part in path.relative_to(ROOT).parts)
    )


def _imports_tests(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        else:
            continue
        if any(name == "tests" or name.startswith("tests.") for name in names):
            return True
    return False


def test_nothing_outside_tests_imports_tests() -> None:
    modules = _project_modules()
    assert ROOT / "sandbox" / "harness.py" in modules  # the walk sees the project
    offenders = [
        str(path.relative_to(ROOT))
        for path in modules
        if _imports_tests(ast.parse(path.read_text(), str(path)))
    ]
    assert offenders == [], "the simulated world lives in simulated_aws/, the harness in sandbox/"


LONGEST_MODULE_LINES = 600  # past this a module does more than one job: split it by job


def test_no_python_file_is_longer_than_it_can_be_read() -> None:
    modules = [
        path
        for path in ROOT.rglob("*.py")
        if not NOT_PROJECT.difference({"tests"}) & set(path.relative_to(ROOT).parts)
        and not any(part.startswith(".") for part in path.relative_to(ROOT).parts)
    ]
    assert ROOT / "tests" / "conftest.py" in modules  # the walk sees the tests too
    long = {
        str(path.relative_to(ROOT)): lines
        for path in modules
        if (lines := len(path.read_text().splitlines())) > LONGEST_MODULE_LINES
    }
    assert long == {}
