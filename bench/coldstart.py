"""Cold start: each handler module's import time against boto3's, and the deployment package.

Lambda's /var/task is read-only and the stack's asset excludes __pycache__, so a cold start
compiles the handler modules from source while boto3 (part of the runtime) comes precompiled.
The measurement copies lambdas/ without bytecode and imports with -B, in a fresh interpreter
each time, reading `python -X importtime`'s cumulative time for the imported module.
"""

from __future__ import annotations

import ast
import fnmatch
import io
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from bench import ROOT

LAMBDA_DIR = ROOT / "lambdas"
STACK_FILE = ROOT / "stacks" / "drainer_stack.py"
BASELINE_MODULE = "boto3"


@dataclass
class ImportTime:
    module: str
    median_us: float
    samples_us: list[float]
    ratio: float | None = None  # median to boto3's median


@dataclass
class ColdStart:
    boto3: ImportTime
    handlers: list[ImportTime]
    repetitions: int
    package_bytes: int
    package_files: int
    unpacked_bytes: int
    exclude: list[str]


def handler_modules() -> list[str]:
    """One handler module per Lambda: lambdas/*.py."""
    return sorted(path.stem for path in LAMBDA_DIR.glob("*.py") if path.stem != "__init__")


def asset_excludes() -> list[str]:
    """The exclude globs of the stack's Code.from_asset(LAMBDA_DIR, …), read from its source."""
    match = re.search(
        r"from_asset\(\s*str\(LAMBDA_DIR\),\s*exclude=(\[[^\]]*\])", STACK_FILE.read_text()
    )
    if match is None:
        raise RuntimeError(f"{STACK_FILE}: Code.from_asset(str(LAMBDA_DIR), exclude=[…]) not found")
    return list(ast.literal_eval(match.group(1)))


def excluded(relative: Path, patterns: list[str]) -> bool:
    """CDK asset globs: '**/name' matches that name at any depth, a file or any directory."""
    for pattern in patterns:
        tail = pattern.removeprefix("**/")
        if any(fnmatch.fnmatch(part, tail) for part in relative.parts):
            return True
    return False


def package_files(patterns: list[str]) -> list[Path]:
    return sorted(
        path
        for path in LAMBDA_DIR.rglob("*")
        if path.is_file() and not excluded(path.relative_to(LAMBDA_DIR), patterns)
    )


def package_size(patterns: list[str]) -> tuple[int, int, int]:
    """(zip bytes, files, unpacked bytes) of lambdas/ zipped as the asset is (deflate)."""
    files = package_files(patterns)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in files:
            archive.write(path, path.relative_to(LAMBDA_DIR).as_posix())
    return len(buffer.getvalue()), len(files), sum(path.stat().st_size for path in files)


def import_time_us(module: str, workdir: Path) -> float:
    """Cumulative import time of `module` (µs) in a fresh interpreter, nothing precompiled."""
    result = subprocess.run(
        [sys.executable, "-B", "-X", "importtime", "-c", f"import {module}"],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=True,
    )
    for line in result.stderr.splitlines():
        # "import time: self [us] | cumulative | imported package"; top level has no indent
        parts = line.split("|")
        if len(parts) == 3 and parts[2].rstrip() == f" {module}":
            return float(parts[1])
    raise RuntimeError(f"no import time reported for {module}: {result.stderr[-500:]}")


def measure(repetitions: int) -> ColdStart:
    patterns = asset_excludes()
    modules = handler_modules()
    with tempfile.TemporaryDirectory(prefix="bench-lambdas-") as tmp:
        workdir = Path(tmp)
        for path in package_files(patterns):
            target = workdir / path.relative_to(LAMBDA_DIR)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        if repetitions > 1:  # warm the OS file cache once (not worth it for a smoke run)
            for module in (BASELINE_MODULE, *modules):
                import_time_us(module, workdir)
        samples: dict[str, list[float]] = {m: [] for m in (BASELINE_MODULE, *modules)}
        for _ in range(repetitions):  # interleaved, so machine load drifts over all alike
            for module in samples:
                samples[module].append(import_time_us(module, workdir))
    boto3 = ImportTime(
        BASELINE_MODULE, statistics.median(samples[BASELINE_MODULE]), samples["boto3"]
    )
    handlers = [
        ImportTime(
            module,
            statistics.median(samples[module]),
            samples[module],
            statistics.median(samples[module]) / boto3.median_us,
        )
        for module in modules
    ]
    zipped, count, unpacked = package_size(patterns)
    return ColdStart(boto3, handlers, repetitions, zipped, count, unpacked, patterns)
