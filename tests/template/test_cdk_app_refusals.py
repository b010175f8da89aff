"""`cdk synth` itself (app.py in a subprocess, as the CLI runs it) refuses a bad configuration
file and settings given as CDK context, naming what to fix and synthesizing nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import ROOT
from tests.reliability import tally


def run_app(tmp_path: Path, context: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """What `cdk synth -c key=value …` runs: the CLI hands context to the app through the
    CDK_CONTEXT_JSON environment variable, which aws-cdk's App reads."""
    env = {
        **os.environ,
        "CDK_CONTEXT_JSON": json.dumps(context),
        "CDK_OUTDIR": str(tmp_path / "cdk.out"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    return subprocess.run(
        [sys.executable, "app.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cdk_app_refuses_a_bad_config_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[drainer]\ncluster_names = ["demo"]\nauto_scaling_group_names = ["demo-asg"]\n'
        "heartbeat_timeout_seconds = 10\n"
    )
    done = run_app(tmp_path, {"config": str(bad)})
    tally.case("invalid configurations")
    assert done.returncode != 0
    assert f"ecs-drainer: {bad}: invalid configuration" in done.stderr
    assert "heartbeat_timeout_seconds = 10" in done.stderr
    assert "allowed: 30 to 7200" in done.stderr
    written = list((tmp_path / "cdk.out").glob("*.template.json"))
    assert written == [], "nothing may be synthesized from a bad file"


def test_cdk_app_refuses_settings_given_as_context(tmp_path: Path) -> None:
    """`cdk deploy -c dry_run=true -c cluster_names=a,b`: refused, naming each key and the fix."""
    done = run_app(tmp_path, {"dry_run": "true", "cluster_names": "a,b"})
    tally.case("invalid configurations")
    assert done.returncode != 0
    assert "ecs-drainer: CDK context: refused (2 problem(s)):" in done.stderr
    assert "-c dry_run=true: settings are not read from CDK context" in done.stderr
    assert "write dry_run = … below [drainer] in drainer.toml" in done.stderr
    assert "-c cluster_names=a,b" in done.stderr
    assert list((tmp_path / "cdk.out").glob("*.template.json")) == []
