"""ECS on EC2, simulated: what it keeps (resources.py), what it does (model.py: the control plane
and its service scheduler) and how its API shows it (api.py)."""

from simulated_aws.ecs.api import EcsApi
from simulated_aws.ecs.model import EcsModel
from simulated_aws.ecs.resources import ContainerInstance, Service, Task

__all__ = ["ContainerInstance", "EcsApi", "EcsModel", "Service", "Task"]
