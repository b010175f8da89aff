"""Plumbing for running the real orchestrator on the simulated world, fast enough to benchmark.

The environment (fake credentials, sys.path) is set by the package's __init__, first.
"""

from __future__ import annotations

import copy
import functools
import linecache
import logging
import os
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from typing import Any

from moto.stepfunctions.parser.asl.component.common.path import result_path
from moto.stepfunctions.parser.asl.component.state.exec.state_task import (
    lambda_eval_utils,
)
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.asl.utils import json_path
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

from bench import ROOT
from sandbox.harness import Harness
from simulated_aws import World

SEED = 20261121  # moto's full-jitter retries draw from `random`: seed it for repeatable runs

__all__ = ["ROOT", "SEED", "Harness", "World", "quiet", "speedups"]


@contextmanager
def quiet() -> Iterator[None]:
    """The handlers log a JSON line per step to stdout, and moto's ASL interpreter logs every
    failed step (each throttled attempt) as an error: a benchmark reads neither."""
    interpreter = logging.getLogger("moto.stepfunctions")
    level = interpreter.level
    interpreter.setLevel(logging.CRITICAL)
    try:
        with open(os.devnull, "w") as sink, redirect_stdout(sink):
            yield
    finally:
        interpreter.setLevel(level)


Patch = tuple[Any, str, Any]  # (owner, attribute, replacement)


@contextmanager
def speedups() -> Iterator[None]:
    """Make the simulation cheap in wall time without changing what it simulates.

    On this 2-core machine a 500-instance refresh took 366 s of wall time without these and
    about 80 s with them and the virtual clock's one-sleeper wake-ups (unloaded). Each is a
    cache; see the functions below.
    """
    patches = [_parse_once(), _one_lambda_client(), *_memoised_jsonpath()]
    patches.append((linecache, "checkcache", _no_checkcache))
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    for owner, name, replacement in patches:
        setattr(owner, name, replacement)
    try:
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


def _parse_once() -> Patch:
    """moto parses the ASL definition with ANTLR for every execution (~0.15 s): parse once per
    definition and deep-copy the component tree per execution (~0.01 s); a run's state lives
    in its Environment, so a copy is as fresh as a parse."""
    lock = threading.Lock()
    programs: dict[str, Any] = {}

    def entrypoint(self: ExecutionWorker) -> Any:
        definition = self._evaluation_details.state_machine_details.definition
        with lock:
            if definition not in programs:
                programs[definition] = AmazonStateLanguageParser.parse(definition)[0]
            return copy.deepcopy(programs[definition])

    return (ExecutionWorker, "_get_evaluation_entrypoint", entrypoint)


def _one_lambda_client() -> Patch:
    """moto builds a new boto3 client for every Lambda Task state (~20 ms): keep one per region
    (botocore clients are thread-safe)."""
    lock = threading.Lock()
    clients: dict[tuple[str, str], Any] = {}
    original = lambda_eval_utils.boto_client_for

    def client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        with lock:
            if (region, service) not in clients:
                clients[(region, service)] = original(region, service, state_credentials)
            return clients[(region, service)]

    return (lambda_eval_utils, "boto_client_for", client_for)


def _memoised_jsonpath() -> list[Patch]:
    """moto re-parses every JSONPath with a freshly generated parser: memoise by path text
    (parsed paths are immutable)."""
    return [
        (json_path, "parse", functools.cache(json_path.parse)),
        (result_path, "parse", functools.cache(result_path.parse)),
    ]


def _no_checkcache(filename: str | None = None) -> None:
    """The Lambda seam formats a traceback per failed invocation (each throttled attempt) and
    linecache.checkcache stats every source file each time; the sources do not change."""


def reseed() -> None:
    """Same jitter draws for every run of a scenario."""
    random.seed(SEED)
