"""A simulated AWS world (ECS, Auto Scaling, EC2 Spot) on a virtual clock, for tests.

Importing this package appends botocore handlers (routing.py), so import it before any boto3
Session is created (moto's mock_aws resets boto3's default session, which is enough), or
pass older clients to `route_client`. Everything except ECS and Auto Scaling stays on moto.

    world = World()
    world.add_cluster("demo")
    world.add_group("demo-asg", "drain-hook", heartbeat_timeout=1800)
    old = world.add_instance(cluster="demo", group="demo-asg")
    world.add_service("demo", "web", desired=2)
    world.add_instance(cluster="demo", group="demo-asg")
    with mock_aws(config=...), world.install():
        world.subscribe(deliver)            # EventBridge events, e.g. to start executions
        world.asg.scale_in("demo-asg", old)
        world.clock.run(until=done, active=running_executions, max_virtual_seconds=...)
    assert world.terminations[0].tasks_killed == []
"""

from tests.world.autoscaling import LifecycleAction
from tests.world.clock import ClockTimeout, Timer, VirtualClock
from tests.world.ecs import Task
from tests.world.faults import ApiError, Fault
from tests.world.routing import route_client
from tests.world.world import DEFAULT_START, ApiCall, Termination, World

__all__ = [
    "DEFAULT_START",
    "ApiCall",
    "ApiError",
    "ClockTimeout",
    "Fault",
    "LifecycleAction",
    "Task",
    "Termination",
    "Timer",
    "VirtualClock",
    "World",
    "route_client",
]
