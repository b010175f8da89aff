"""Test events (events/*.json, README "Fire test events"): shipped off, switched on by one
line, and when on the Resolve function may read the opt-in tag and nothing more."""

from __future__ import annotations

import json
import re

import pytest

from drainer.opt_in import TEST_EVENTS_ALLOWED, TEST_EVENTS_TAG
from sandbox.world_setup import demo_world, events_source, sandbox_config
from stacks.config import load_config, validate
from tests.conftest import ROOT
from tests.template.synthesis import synth

TOML = ROOT / "drainer.toml"
SWITCH_ON = re.compile(r'^# (test_event_source = "ecs-drainer\.test")$', re.MULTILINE)


def test_the_shipped_configuration_has_test_events_off():
    defaults = validate({"cluster_names": ["c"], "auto_scaling_group_names": ["g"]})
    assert defaults.test_event_source is None
    assert load_config(TOML).test_event_source is None


def test_one_uncommented_line_switches_them_on(tmp_path):
    text = TOML.read_text()
    (line,) = SWITCH_ON.findall(text)
    switched = tmp_path / "drainer.toml"
    switched.write_text(SWITCH_ON.sub(r"\1", text))
    assert load_config(switched).test_event_source == "ecs-drainer.test"
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Fire test events", 1)[1].split("\n## ", 1)[0]
    assert line in section and TEST_EVENTS_TAG in section


def test_the_sandbox_turns_on_the_source_its_events_files_carry(config):
    on = sandbox_config(config)
    assert on.test_event_source == events_source() == "ecs-drainer.test"
    world = demo_world(on)
    assert world.instances, "the demo has instances"
    for instance in world.instances.values():
        assert instance.tags[TEST_EVENTS_TAG] == TEST_EVENTS_ALLOWED


def _policies_with(template, action: str) -> list[dict]:
    found = []
    for policy in template.find_resources("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"]
            if action in (actions if isinstance(actions, list) else [actions]):
                found.append({"roles": policy["Properties"]["Roles"], "statement": statement})
    return found


@pytest.mark.parametrize("source", ["", "ecs-drainer.test"])
def test_only_resolve_may_read_tags_and_only_with_test_events_on(source):
    config = validate({**load_config(TOML).model_dump(), "test_event_source": source})
    _, template = synth(config)  # cdk-nag runs: every finding acknowledged
    grants = _policies_with(template, "ec2:DescribeTags")
    if not source:
        assert grants == []
        return
    (grant,) = grants
    assert grant["statement"]["Resource"] == "*"
    (role,) = grant["roles"]
    assert "Resolve" in json.dumps(role)


def test_test_event_source_can_be_switched_off():
    config = validate({**load_config(ROOT / "drainer.toml").model_dump(), "test_event_source": ""})
    _, template = synth(config)
    for rule in template.find_resources("AWS::Events::Rule").values():
        assert all(
            source.startswith("aws.") for source in rule["Properties"]["EventPattern"]["source"]
        )
