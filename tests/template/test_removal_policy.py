"""What `cdk destroy` keeps, on the synthesized template: `removal_policy` decides the log groups'
and the claims table's DeletionPolicy and UpdateReplacePolicy; the topic's key and the published
function versions are always retained; everything else is always deleted (README, "Upgrading
while drains run")."""

from __future__ import annotations

from typing import Any

import pytest

from stacks.config import load_config, validate
from stacks.functions import ALL_FUNCTIONS
from tests.conftest import ROOT
from tests.template.synthesis import synth

# removal_policy -> the DeletionPolicy (= UpdateReplacePolicy) CloudFormation applies.
POLICY = {"destroy": "Delete", "retain": "Retain"}
FOLLOWS_THE_SETTING = ("AWS::Logs::LogGroup", "AWS::DynamoDB::GlobalTable")
# Retained whatever the setting: the key (CDK's default for a key: deleting one is irreversible
# once its waiting period ends), and the versions running executions still call.
ALWAYS_RETAINED = ("AWS::KMS::Key", "AWS::Lambda::Version")


@pytest.fixture(scope="module", params=sorted(POLICY))
def synthesized(request) -> tuple[str, dict[str, dict[str, Any]]]:
    config = validate(
        {**load_config(ROOT / "drainer.toml").model_dump(), "removal_policy": request.param}
    )
    _, template = synth(config)
    return request.param, template.to_json()["Resources"]


def _policies(resource: dict[str, Any]) -> tuple[str, str]:
    """(DeletionPolicy, UpdateReplacePolicy); CloudFormation deletes where none is written."""
    return resource.get("DeletionPolicy", "Delete"), resource.get("UpdateReplacePolicy", "Delete")


def test_the_setting_decides_every_log_group_and_the_claims_table(synthesized) -> None:
    setting, resources = synthesized
    expected = (POLICY[setting],) * 2
    groups = [r for r in resources.values() if r["Type"] == "AWS::Logs::LogGroup"]
    # every function's, and the state machine's
    assert len(groups) == len(ALL_FUNCTIONS) + 1
    (table,) = [r for r in resources.values() if r["Type"] == "AWS::DynamoDB::GlobalTable"]
    for resource in [*groups, table]:
        assert _policies(resource) == expected, resource


def test_what_the_setting_keeps_has_no_fixed_name(synthesized) -> None:
    """CloudFormation names them: a retained group or table never blocks the next deploy of the
    same stack_name with "already exists"."""
    _, resources = synthesized
    for resource in resources.values():
        if resource["Type"] in FOLLOWS_THE_SETTING:
            assert not {"LogGroupName", "TableName"} & set(resource["Properties"]), resource


def test_the_key_and_versions_are_kept_and_nothing_else(synthesized) -> None:
    _, resources = synthesized
    kept = {r["Type"] for r in resources.values() if "Retain" in _policies(r)}
    assert set(ALWAYS_RETAINED) <= kept
    for resource in resources.values():
        kind = resource["Type"]
        if kind in ALWAYS_RETAINED:
            assert _policies(resource) == ("Retain", "Retain"), kind
        elif kind not in FOLLOWS_THE_SETTING:
            # the state machine, functions, queue, topic, hooks, rules, roles, alarms, dashboard
            assert _policies(resource) == ("Delete", "Delete"), kind
