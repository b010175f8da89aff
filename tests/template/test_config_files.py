"""A configuration file per environment: `make synth CONFIG=FILE` puts any file through the same
validation, cdk-nag and cfn-lint as drainer.toml (README, "Deploy").

Each test runs the real target (cdk synth, then cfn-lint), about 10-20 s, into its own folder
(CDK_OUT) so the project's cdk.out stays as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


def make_synth(config_file: str, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "synth", f"CONFIG={config_file}", f"CDK_OUT={out}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def environment_file(path: Path, **settings: str) -> Path:
    """The shipped drainer.toml with some lines changed, as a team copies it per environment."""
    lines = (ROOT / "drainer.toml").read_text().splitlines()
    for name, value in settings.items():
        (at,) = [i for i, line in enumerate(lines) if line.startswith(f"{name} =")]
        lines[at] = f"{name} = {value}"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_make_synth_reads_the_file_named_by_config(tmp_path):
    staging = environment_file(
        tmp_path / "staging.toml",
        stack_name='"DrainerStaging"',
        cluster_names='["staging"]',
        auto_scaling_group_names='["staging-asg"]',
    )
    # A relative CONFIG is relative to the project root, where cdk runs app.py.
    relative = os.path.relpath(staging, ROOT)
    result = make_synth(relative, tmp_path / "out")
    assert result.returncode == 0, result.stdout + result.stderr

    written = sorted(path.name for path in (tmp_path / "out").glob("*.template.json"))
    assert written == ["DrainerStaging.template.json"]
    template = json.loads((tmp_path / "out" / written[0]).read_text())
    hooks = [
        resource["Properties"]
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::AutoScaling::LifecycleHook"
    ]
    assert [hook["AutoScalingGroupName"] for hook in hooks] == ["staging-asg"]
    text = json.dumps(template)
    assert ":cluster/staging" in text
    assert ":cluster/demo" not in text and "demo-asg" not in text


def test_make_synth_refuses_an_invalid_file_naming_it_and_the_field(tmp_path):
    broken = environment_file(tmp_path / "production.toml", heartbeat_timeout_seconds="5")
    result = make_synth(str(broken), tmp_path / "out")
    assert result.returncode != 0
    assert f"ecs-drainer: {broken}: invalid configuration" in result.stderr
    assert "heartbeat_timeout_seconds = 5" in result.stderr
    assert not list((tmp_path / "out").glob("*.template.json"))
