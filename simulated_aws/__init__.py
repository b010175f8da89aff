"""A simulated AWS world (ECS, Auto Scaling, EC2 Spot) on a virtual clock.

moto models neither ECS draining nor lifecycle hooks; this package does, for the tests, the
sandbox (`make demo`) and the benchmark. What lives where:

- world.py          the World: instances, Spot interruptions, events, API routing and faults
- ecs/              ECS: its resources, its model (control plane, service scheduler), its API
- autoscaling.py    Auto Scaling groups, lifecycle hooks and actions, and their API
- ec2.py            EC2 DescribeTags
- clock.py          the virtual clock every thread, timer and wait runs on
- moto_waits.py     the one patch of moto's internals: its Wait/Retry sleeps on that clock
- routing.py        botocore's ECS/Auto Scaling/EC2 calls answered in-process by the world
- faults.py         API errors, throttling buckets, injected faults
- iam/              IAM, which moto does not enforce: each handler runs as its role

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

from simulated_aws.autoscaling import LifecycleAction
from simulated_aws.clock import ClockEvent, ClockTimeout, Timer, VirtualClock
from simulated_aws.ecs import Task
from simulated_aws.faults import ApiError, Fault
from simulated_aws.routing import route_client
from simulated_aws.world import DEFAULT_START, ApiCall, Termination, World

__all__ = [
    "DEFAULT_START",
    "ApiCall",
    "ApiError",
    "ClockEvent",
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
