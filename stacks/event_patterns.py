"""The EventBridge patterns: one definition serves the stack, the tests and the local sandbox."""

from __future__ import annotations

from typing import Any

from drainer.parsers import lifecycle, rebalance, spot
from drainer.watch import INSTANCE_STATE_CHANGE as INSTANCE_STATE_DETAIL_TYPE
from drainer.watch import TASK_STATE_CHANGE as TASK_STATE_DETAIL_TYPE
from stacks.config import DrainerConfig

INSTANCE_STATE_SOURCE = "aws.ecs"


def _sources(aws_source: str, config: DrainerConfig) -> list[str]:
    # AWS refuses `aws.*` sources in PutEvents, so test events come from a custom source.
    return [aws_source, config.test_event_source] if config.test_event_source else [aws_source]


def event_patterns(config: DrainerConfig) -> dict[str, dict[str, Any]]:
    """Rule name suffix → event pattern."""
    return {
        "LifecycleTerminate": {
            "source": _sources(lifecycle.SOURCE, config),
            "detail-type": [lifecycle.DETAIL_TYPE],
            "detail": {
                "LifecycleTransition": [lifecycle.TERMINATING],
                "AutoScalingGroupName": list(config.auto_scaling_group_names),
                "LifecycleHookName": [config.lifecycle_hook_name],
            },
        },
        # Spot and rebalance events are account-wide: the state machine ends the ones for
        # instances outside the configured clusters as "not-ours".
        "SpotInterruption": {
            "source": _sources(spot.SOURCE, config),
            "detail-type": [spot.DETAIL_TYPE],
        },
        "RebalanceRecommendation": {
            "source": _sources(rebalance.SOURCE, config),
            "detail-type": [rebalance.DETAIL_TYPE],
        },
    }


def instance_return_pattern(config: DrainerConfig) -> dict[str, Any]:
    """Container instances of the configured clusters that are connected and DRAINING: among
    them, a Spot instance the drainer parked (stop/hibernate) coming back (lambdas/drainer/
    parking.py). Only `aws.ecs`: nobody can put such an event (a forged "it is back" would
    otherwise make a parked instance take tasks). Event reference: ECS developer guide,
    https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_container_instance_events.html
    """
    return {
        "source": [INSTANCE_STATE_SOURCE],
        "detail-type": [INSTANCE_STATE_DETAIL_TYPE],
        "detail": {
            "status": ["DRAINING"],
            "agentConnected": [True],
            "clusterArn": _configured_clusters(config),
        },
    }


def _configured_clusters(config: DrainerConfig) -> list[dict[str, str]]:
    # The default bus is regional and per account: the cluster name ends the ARN.
    return [{"suffix": f":cluster/{name}"} for name in config.cluster_names]


def task_stopped_pattern(config: DrainerConfig) -> dict[str, Any]:
    """Tasks of the configured clusters that reached STOPPED on a container instance (Fargate
    tasks have none): the wake function records each against a draining instance's watch
    (lambdas/drainer/watch.py). Only `aws.ecs`: a forged stop could end a wait early, which the
    poll after it would catch, but nobody needs to send one. Event reference: ECS developer
    guide, https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_task_events.html
    """
    return {
        "source": [INSTANCE_STATE_SOURCE],
        "detail-type": [TASK_STATE_DETAIL_TYPE],
        "detail": {
            "lastStatus": ["STOPPED"],
            "clusterArn": _configured_clusters(config),
            "containerInstanceArn": [{"exists": True}],
        },
    }


def instance_draining_pattern(config: DrainerConfig) -> dict[str, Any]:
    """Container instances of the configured clusters that are DRAINING (ECS sends one such
    event for the status change and one for each later change of the instance, such as a task
    stopping): the wake function keeps the earliest `updatedAt` in a draining instance's watch
    (lambdas/drainer/watch.py). Only `aws.ecs`: an early forged moment could make a drain skip
    its last listing. Event reference: ECS developer guide,
    https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_container_instance_events.html
    """
    return {
        "source": [INSTANCE_STATE_SOURCE],
        "detail-type": [INSTANCE_STATE_DETAIL_TYPE],
        "detail": {"status": ["DRAINING"], "clusterArn": _configured_clusters(config)},
    }


def execution_failure_pattern(state_machine_arn: str) -> dict[str, Any]:
    """Drain executions that ended without succeeding: the rescue function completes them."""
    return {
        "source": ["aws.states"],
        "detail-type": ["Step Functions Execution Status Change"],
        "detail": {
            "status": ["FAILED", "TIMED_OUT", "ABORTED"],
            "stateMachineArn": [state_machine_arn],
        },
    }
