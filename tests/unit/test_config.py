"""Configuration: defaults valid, every kind of bad value named with its field and range; a value of
the wrong type is refused (never coerced), and every cross-field rule names the fields it joins."""

from __future__ import annotations

import json
from typing import Any

import pytest

from drainer.history import HISTORY_EVENT_QUOTA, drain_cost
from stacks.config import ConfigError, DrainerConfig, environment_bytes, load_config, validate
from tests.conftest import ROOT
from tests.reliability import tally


def test_shipped_file_is_valid_and_fits_the_history_quota(config: DrainerConfig):
    cost = drain_cost(
        config.poll_schedule,
        config.max_drain_seconds,
        config.heartbeat_timeout_seconds // 3,
        to_ceiling=True,
    )
    assert cost.history_events < HISTORY_EVENT_QUOTA / 2
    assert config.rebalance_policy == "ignore"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"heartbeat_timeout_seconds": 10}, ["heartbeat_timeout_seconds = 10", "30 to 7200"]),
        ({"poll_interval_seconds": 1000}, ["poll_interval_seconds = 1000", "5 to 300"]),
        ({"heartbeat_timeout_seconds": 600}, ["max_drain_seconds=172800", "60000", "≥ 1728"]),
        ({"cluster_names": []}, ["cluster_names"]),
        ({"cluster_names": ["bad name!"]}, ["cluster_names.0"]),
        ({"rebalance_policy": "panic"}, ["rebalance_policy", "'ignore'", "'drain'", "'replace'"]),
        ({"test_event_source": "aws.autoscaling"}, ["test_event_source", "aws."]),
        ({"log_retention_days": 2}, ["log_retention_days = 2"]),
        ({"poll_intervall_seconds": 30}, ["poll_intervall_seconds: unknown setting"]),
        (
            {"poll_interval_seconds": 5, "backoff_after_seconds": 172800},
            ["history events", "budget"],
        ),
        ({"max_poll_interval_seconds": 900}, ["max_poll_interval_seconds=900", "a third"]),
    ],
)
def test_invalid_values_name_field_value_and_range(config, override, expected):
    with pytest.raises(ConfigError) as raised:
        validate({**config.model_dump(), **override}, "drainer.toml")
    message = str(raised.value)
    assert message.startswith("drainer.toml: invalid configuration")
    for fragment in expected:
        assert fragment in message


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "absent.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[drainer\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken)


def test_empty_test_source_switches_test_events_off(config):
    assert validate({**config.model_dump(), "test_event_source": ""}).test_event_source is None


# --- The file's layout: everything outside [drainer] is refused, never dropped -------------------

MINIMAL = '[drainer]\ncluster_names = ["demo"]\nauto_scaling_group_names = ["demo-asg"]\n'


def refusal(tmp_path, text: str) -> str:
    path = tmp_path / "drainer.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    return str(raised.value)


def test_a_key_above_the_drainer_table_is_refused(tmp_path):
    message = refusal(tmp_path, "dry_run = true\n" + MINIMAL)
    assert "dry_run = true: written above the [drainer] line" in message
    assert "move it below [drainer]" in message


def test_a_misspelt_key_above_the_table_gets_a_suggestion(tmp_path):
    message = refusal(tmp_path, "dry_rn = true\n" + MINIMAL)
    assert "dry_rn = true: written above the [drainer] line" in message
    assert "did you mean dry_run?" in message


def test_unknown_tables_are_refused(tmp_path):
    message = refusal(tmp_path, MINIMAL + "[alarms]\nemail = 'ops@example.com'\n")
    assert "[alarms]: unknown table" in message
    message = refusal(tmp_path, MINIMAL + "[drainer.hooks]\nname = 'x'\n")
    assert "[drainer.hooks]: unknown table" in message


def test_settings_without_the_drainer_table_are_refused(tmp_path):
    message = refusal(tmp_path, MINIMAL.removeprefix("[drainer]\n"))
    assert "[drainer]: the table is missing" in message
    assert "auto_scaling_group_names, cluster_names" in message


def test_every_layout_and_value_problem_is_named_at_once(tmp_path):
    message = refusal(tmp_path, "dry_run = true\n" + MINIMAL + "poll_interval_seconds = 1\n")
    assert "(2 problem(s))" in message
    assert "poll_interval_seconds = 1" in message


# --- Types are checked, not coerced --------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            'dry_run = "yes"',
            "dry_run = 'yes': Input should be a valid boolean; write true or false",
        ),
        ('dry_run = "true"', "e.g. dry_run = true"),
        (
            'heartbeat_timeout_seconds = "900"',
            "heartbeat_timeout_seconds = '900': Input should be a valid integer; write a whole "
            "number without quotes, e.g. heartbeat_timeout_seconds = 900",
        ),
        ("max_drain_seconds = 3600.0", "e.g. max_drain_seconds = 3600"),
        ('backoff_rate = "1.5"', "e.g. backoff_rate = 1.5"),
        ("lifecycle_hook_name = 5", "lifecycle_hook_name = 5: Input should be a valid string"),
        ('notification_emails = "ops@example.com"', 'notification_emails = ["ops@example.com"]'),
    ],
)
def test_wrong_types_are_refused_with_the_right_spelling(tmp_path, line, expected):
    message = refusal(tmp_path, MINIMAL + line + "\n")
    assert expected in message


def test_an_int_for_a_float_setting_is_fine(tmp_path):
    path = tmp_path / "drainer.toml"
    path.write_text(MINIMAL + "backoff_rate = 2\n")
    assert load_config(path).backoff_rate == 2.0


# --- Names: the project's own words --------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            {"cluster_names": []},
            "cluster_names = []: name at least one ECS cluster whose container instances the "
            'drainer should drain, e.g. cluster_names = ["prod"]',
        ),
        (
            {"auto_scaling_group_names": []},
            "name at least one Auto Scaling group whose terminations",
        ),
        (
            {"cluster_names": ["demo", "arn:aws:ecs:us-east-1:123456789012:cluster/prod"]},
            "cluster_names.1 = 'arn:aws:ecs:us-east-1:123456789012:cluster/prod': give the "
            "cluster name, e.g. 'prod', not its ARN",
        ),
        (
            {
                "auto_scaling_group_names": [
                    "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:"
                    "0a1b2c3d-0000-1111-2222-333344445555:autoScalingGroupName/prod-asg"
                ]
            },
            "give the Auto Scaling group name, e.g. 'prod-asg', not its ARN",
        ),
        ({"cluster_names": ["demo", "demo"]}, "must not repeat an entry: remove the second 'demo'"),
        (
            {"notification_emails": ["ops@example.com", "ops@example.com"]},
            "notification_emails = ['ops@example.com', 'ops@example.com']: must not repeat",
        ),
        (
            {"metrics_namespace": "AWS/ECS"},
            "metrics_namespace = 'AWS/ECS': must not start with 'AWS/'",
        ),
    ],
)
def test_names_are_refused_in_the_projects_words(config, override, expected):
    with pytest.raises(ConfigError) as raised:
        validate({**config.model_dump(), **override}, "drainer.toml")
    assert expected in str(raised.value)


@pytest.mark.parametrize("manage_lifecycle_hooks", [True, False])
@pytest.mark.parametrize(
    "name", ["ecs-managed-draining-termination-hook", "ECS-Managed-Draining-Termination-Hook"]
)
def test_a_hook_name_another_party_creates_is_refused(config, name, manage_lifecycle_hooks):
    # ECS managed instance draining puts its own terminate hook, of this name, on the group.
    override = {"lifecycle_hook_name": name, "manage_lifecycle_hooks": manage_lifecycle_hooks}
    with pytest.raises(ConfigError) as raised:
        validate({**config.model_dump(), **override}, "drainer.toml")
    message = str(raised.value)
    assert message.startswith("drainer.toml: invalid configuration (1 problem(s))")
    assert f"lifecycle_hook_name = {name!r}: ECS managed instance draining" in message
    assert "choose a name of your own, e.g. 'ecs-drainer'" in message


def test_more_than_twenty_clusters_says_how_to_split(config):
    with pytest.raises(ConfigError) as raised:
        validate({**config.model_dump(), "cluster_names": [f"c{i}" for i in range(21)]})
    assert "21 names; at most 20: split them over two stacks" in str(raised.value)


# --- The Lambda environment: what validates fits in 4 KB ----------------------------------------


def _names(prefix: str, length: int) -> list[str]:
    return [f"{prefix}{index:02d}".ljust(length, "x") for index in range(20)]


def _longest(base: dict, length: int) -> dict:
    """20 clusters and 20 groups of `length` characters; every other string at its longest."""
    return {
        **base,
        "cluster_names": _names("c", length),
        "auto_scaling_group_names": _names("g", length),
        "lifecycle_hook_name": "h" * 255,
        "test_event_source": "s" * 256,
        "metrics_namespace": "n" * 255,
        "backoff_rate": 1.2345678901234567,
    }


def _accepted(values: dict) -> bool:
    try:
        validate(values)
    except ConfigError:
        return False
    return True


def largest_accepted(config: DrainerConfig) -> tuple[DrainerConfig, dict]:
    """The largest configuration validation accepts, and the same with names one longer."""
    base = config.model_dump()
    low, high = 3, 255
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if _accepted(_longest(base, middle)) else (low, middle - 1)
    return validate(_longest(base, low)), _longest(base, low + 1)


def _rendered(value, tokens: dict[str, str]) -> str:
    """An environment value from the template, each token at the longest deploy can give."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(_rendered(part, tokens) for part in parts)
    key = json.dumps(value, sort_keys=True)
    assert key in tokens, f"a token nobody measured: {key}"
    return tokens[key]


def test_the_largest_accepted_configuration_fits_every_lambda_environment(config):
    import aws_cdk as cdk
    from aws_cdk.assertions import Template

    from stacks.config import LAMBDA_ENVIRONMENT_LIMIT_BYTES, LONGEST_TABLE_NAME, LONGEST_TOPIC_ARN
    from stacks.drainer_stack import DrainerStack

    largest, one_longer = largest_accepted(config)
    with pytest.raises(ConfigError) as raised:
        validate(one_longer, "drainer.toml")
    message = str(raised.value)
    assert "Lambda allows 4 KB (4096 bytes)" in message
    assert "cluster_names and auto_scaling_group_names (40 names" in message
    assert "split the clusters and groups over two stacks" in message

    stack = DrainerStack(cdk.App(), largest.stack_name, config=largest)
    template = Template.from_stack(stack).to_json()
    tokens = {
        json.dumps({"Ref": stack.get_logical_id(child)}, sort_keys=True): longest
        for child, longest in (
            (stack.claims.node.default_child, LONGEST_TABLE_NAME),
            (stack.topic.node.default_child, LONGEST_TOPIC_ARN),
        )
    }
    functions = template_resources(template, "AWS::Lambda::Function")
    assert len(functions) >= 10
    for name, function in functions.items():
        variables = function["Properties"]["Environment"]["Variables"]
        if "DRAINER_SETTINGS" not in variables:  # the dispatch function: the state machine only
            assert set(variables) == {"DRAINER_STATE_MACHINE_ARN"}, name
            continue
        measured = environment_bytes({key: _rendered(v, tokens) for key, v in variables.items()})
        assert measured == largest.lambda_environment_bytes, name
        assert measured <= LAMBDA_ENVIRONMENT_LIMIT_BYTES, name
    assert largest.lambda_environment_bytes > LAMBDA_ENVIRONMENT_LIMIT_BYTES - 100
    # What the README promises about the room left for names.
    assert len(largest.cluster_names[0]) >= 40
    validate(
        {
            **config.model_dump(),
            "cluster_names": _names("c", 60),
            "auto_scaling_group_names": _names("g", 60),
        }
    )


def template_resources(template: dict, kind: str) -> dict:
    return {
        name: resource
        for name, resource in template["Resources"].items()
        if resource["Type"] == kind
    }


# --- The shipped file says what synth does -------------------------------------------------------


def test_the_shipped_file_states_the_max_drain_rule_synth_applies():
    (line,) = [
        line
        for line in (ROOT / "drainer.toml").read_text().splitlines()
        if line.startswith("max_drain_seconds")
    ]
    comment = line.partition("#")[2]
    assert "capped" not in comment, "synth refuses a larger value; it caps nothing"
    assert "100 × heartbeat_timeout_seconds" in comment
    assert "capped" not in DrainerConfig.model_fields["max_drain_seconds"].description


def test_the_readme_example_is_what_synth_prints(tmp_path, monkeypatch):
    readme = (ROOT / "README.md").read_text()
    block = readme.split("$ cat drainer.toml\n", 1)[1].split("```", 1)[0]
    file_text, printed = block.split("$ make synth\n")
    (tmp_path / "drainer.toml").write_text(file_text)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as raised:
        load_config("drainer.toml")
    assert f"ecs-drainer: {raised.value}" == printed.rstrip("\n")


# --- Every field, every cross-field rule: the message names what to fix ---------------------------

# field -> (an invalid value, what the message must say about the allowed values)
INVALID: dict[str, tuple[Any, str]] = {
    "stack_name": ("1-starts-with-a-digit", "^[A-Za-z][A-Za-z0-9-]{0,63}$"),
    "cluster_names": (["prod", "bad name!"], "^[A-Za-z0-9_-]{1,255}$"),
    "auto_scaling_group_names": (["asg:with-colon"], "{1,255}$"),
    "manage_lifecycle_hooks": ("sometimes", "valid boolean"),
    "lifecycle_hook_name": ("hook name with spaces", "^[A-Za-z0-9\\-_/]{1,255}$"),
    "heartbeat_timeout_seconds": (29, "allowed: 30 to 7200"),
    "max_drain_seconds": (59, "allowed: 60 to 172800"),
    "poll_interval_seconds": (4, "allowed: 5 to 300"),
    "max_poll_interval_seconds": (901, "allowed: 5 to 900"),
    "backoff_after_seconds": (-1, "allowed: 0 to 172800"),
    "backoff_rate": (3.5, "allowed: 1.0 to 3.0"),
    "spot_poll_interval_seconds": (31, "allowed: 1 to 30"),
    "drain_start_rate_per_second": (0.5, "allowed: 1.0 to 100.0"),
    "poll_rate_per_second": (101.0, "allowed: 1.0 to 100.0"),
    "rebalance_policy": ("panic", "'ignore', 'drain' or 'replace'"),
    "standalone_task_policy": ("kill", "'wait' or 'stop'"),
    "standalone_task_grace_seconds": (172_801, "allowed: 0 to 172800"),
    "daemon_task_grace_seconds": (3601, "allowed: 0 to 3600"),
    "straggler_policy": ("sigkill", "'stop-tasks' or 'leave-running'"),
    "straggler_stop_wait_seconds": (121, "allowed: 0 to 120"),
    "rescue_grace_seconds": (301, "allowed: 0 to 300"),
    "drain_end_detection": ("webhooks", "'events' or 'poll'"),
    "fallback_poll_seconds": (59, "allowed: 60 to 3600"),
    "dry_run": ("perhaps", "valid boolean"),
    "test_event_source": ("aws.autoscaling", "must not start with 'aws.'"),
    "log_retention_days": (2, "1, 3, 5, 7, 14, 30"),
    "removal_policy": ("keep", "'destroy' or 'retain'"),
    "notification_emails": (["ops@example.com", "not-an-address"], "@"),
    "notify_outcomes": (["failed", "drainned"], "'drainned' is neither an outcome"),
    "lambda_architecture": ("sparc", "'arm64' or 'x86_64'"),
    "lambda_memory_mb": (127, "allowed: 128 to 3008"),
    "metrics_namespace": ("bad\nnamespace", "{1,255}$"),
}

# field -> a value of the wrong type, as a TOML file can give it; strict validation refuses it.
WRONG_TYPE: dict[str, Any] = {
    "stack_name": 42,
    "cluster_names": "prod",
    "auto_scaling_group_names": "prod-asg",
    "manage_lifecycle_hooks": "true",
    "lifecycle_hook_name": 7,
    "heartbeat_timeout_seconds": "900",
    "max_drain_seconds": 3600.0,
    "poll_interval_seconds": "30",
    "max_poll_interval_seconds": 300.5,
    "backoff_after_seconds": True,
    "backoff_rate": "1.5",
    "spot_poll_interval_seconds": "5",
    "drain_start_rate_per_second": "10",
    "poll_rate_per_second": "10",
    "rebalance_policy": 1,
    "standalone_task_policy": True,
    "standalone_task_grace_seconds": "600",
    "daemon_task_grace_seconds": "120",
    "straggler_policy": 0,
    "straggler_stop_wait_seconds": "30",
    "rescue_grace_seconds": "180",
    "drain_end_detection": True,
    "fallback_poll_seconds": "900",
    "dry_run": "yes",
    "test_event_source": 1,
    "log_retention_days": "30",
    "removal_policy": True,
    "notification_emails": "ops@example.com",
    "notify_outcomes": "failed",
    "lambda_architecture": 64,
    "lambda_memory_mb": "256",
    "metrics_namespace": 3,
}

# Cross-field rules: changes, then what the message must name.
CROSS_FIELD: dict[str, tuple[dict[str, Any], list[str]]] = {
    "ceiling beyond the hook's global timeout": (
        {"heartbeat_timeout_seconds": 600},
        ["max_drain_seconds=172800", "heartbeat_timeout_seconds=600", "60000", "≥ 1728"],
    ),
    "first poll interval above the back-off ceiling": (
        {"poll_interval_seconds": 300, "max_poll_interval_seconds": 120},
        ["poll_interval_seconds=300", "max_poll_interval_seconds=120", "≤ the maximum"],
    ),
    "polls too far apart for the heartbeats": (
        {"heartbeat_timeout_seconds": 1800, "max_poll_interval_seconds": 700},
        ["max_poll_interval_seconds=700", "heartbeat_timeout_seconds", "≤ 600"],
    ),
    "standalone grace as long as the ceiling": (
        {
            "standalone_task_policy": "stop",
            "standalone_task_grace_seconds": 3600,
            "max_drain_seconds": 3600,
        },
        ["standalone_task_grace_seconds=3600", "max_drain_seconds=3600", "never end", "below 3600"],
    ),
    "daemon grace beyond the ceiling": (
        {"daemon_task_grace_seconds": 600, "max_drain_seconds": 300},
        ["daemon_task_grace_seconds=600", "max_drain_seconds=300", "below 300"],
    ),
    "settings beyond Lambda's 4 KB of environment variables": (
        {
            "cluster_names": [f"cluster-{index:02d}".ljust(150, "x") for index in range(20)],
            "auto_scaling_group_names": [f"group-{index:02d}" for index in range(20)],
        },
        ["4 KB (4096 bytes)", "cluster_names and auto_scaling_group_names (40 names", "shorten"],
    ),
    "drain history beyond the quota": (
        {"poll_interval_seconds": 5, "backoff_after_seconds": 172_800},
        ["max_drain_seconds=172800", "history events", "budget 20000"],
    ),
}


@pytest.fixture(scope="module")
def valid() -> dict[str, Any]:
    from stacks.config import load_config

    return load_config(ROOT / "drainer.toml").model_dump()


def test_every_field_has_an_invalid_case() -> None:
    """A new setting without a case here fails this test: the table stays complete."""
    assert set(INVALID) == set(DrainerConfig.model_fields)
    assert set(WRONG_TYPE) == set(DrainerConfig.model_fields)


@pytest.mark.parametrize("field", sorted(DrainerConfig.model_fields))
def test_a_wrong_type_is_refused_not_coerced(valid: dict[str, Any], field: str) -> None:
    value = WRONG_TYPE[field]
    with pytest.raises(ConfigError) as raised:
        validate({**valid, field: value}, "bad.toml")
    message = str(raised.value)
    tally.case("invalid configurations")
    (problem,) = message.splitlines()[1:]
    assert problem.lstrip(" -").startswith(f"{field} = {value!r}: "), problem
    assert "Input should be" in problem, problem


@pytest.mark.parametrize("field", sorted(DrainerConfig.model_fields))
def test_every_invalid_field_names_field_value_and_range(valid: dict[str, Any], field: str) -> None:
    value, allowed = INVALID[field]
    with pytest.raises(ConfigError) as raised:
        validate({**valid, field: value}, "bad.toml")
    message = str(raised.value)
    tally.case("invalid configurations")
    assert message.startswith("bad.toml: invalid configuration (1 problem(s)):")
    (problem,) = message.splitlines()[1:]
    assert problem.lstrip(" -").startswith(field), problem
    shown = value[-1] if isinstance(value, list) else value
    assert repr(shown) in problem, problem
    assert allowed in problem, problem


@pytest.mark.parametrize("rule", sorted(CROSS_FIELD))
def test_cross_field_rule_names_fields_values_and_bound(valid: dict[str, Any], rule: str) -> None:
    changes, expected = CROSS_FIELD[rule]
    with pytest.raises(ConfigError) as raised:
        validate({**valid, **changes}, "bad.toml")
    message = str(raised.value)
    tally.case("invalid configurations")
    for fragment in expected:
        assert fragment in message, (fragment, message)


def test_invalid_and_unknown_fields_are_named_at_once(valid: dict[str, Any]) -> None:
    bad = {**valid, **{field: INVALID[field][0] for field in ("poll_interval_seconds", "dry_run")}}
    with pytest.raises(ConfigError) as raised:
        validate({**bad, "poll_intervall_seconds": 30}, "bad.toml")
    message = str(raised.value)
    assert "(3 problem(s))" in message
    for field in ("poll_interval_seconds = 4", "dry_run = 'perhaps'", "poll_intervall_seconds"):
        assert field in message


def test_poll_mode_budgets_history_for_rounds_waiting_for_poll_slots(config):
    """A poll-mode drain congested the whole way to its ceiling may wait a round for each
    poll's slot: a schedule events mode may use writes about twice the history in poll mode."""
    schedule = {**config.model_dump(), "max_poll_interval_seconds": 150}
    validate({**schedule, "drain_end_detection": "events"}, "drainer.toml")
    with pytest.raises(ConfigError) as raised:
        validate({**schedule, "drain_end_detection": "poll"}, "drainer.toml")
    assert "budget 20000" in str(raised.value)
    assert "wait a round for its poll slot" in str(raised.value)
