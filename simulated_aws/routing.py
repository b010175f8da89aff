"""Route botocore calls for ECS, Auto Scaling and EC2 into the installed world.

botocore's `BaseClient._make_api_call` (botocore/client.py) emits
`before-parameter-build.{service-id}.{Operation}` with the caller's params, then
`before-call.{service-id}.{Operation}` with the serialized request; when a before-call handler
returns `(http_response, parsed)`, botocore skips the HTTP request (and its retry loop) and
raises `ClientError` from `parsed["Error"]` when `http_response.status_code >= 300`.
The handlers are appended to `botocore.handlers.BUILTIN_HANDLERS`, which every botocore Session
registers when it is created (as moto does with its stubber), so any client created after this
module is imported reaches the current world, or moto when no world is installed.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

from botocore.awsrequest import AWSResponse
from botocore.handlers import BUILTIN_HANDLERS
from botocore.model import OperationModel

# botocore service ids (hyphenized) -> the service name the world uses.
ROUTED_SERVICES = {"ecs": "ecs", "auto-scaling": "autoscaling", "ec2": "ec2"}
_PARAMS_KEY = "simulated_aws.api_params"


class Router(Protocol):
    def handle_api_call(
        self, service: str, operation: str, params: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]: ...


_lock = threading.Lock()
_current: Router | None = None


def install(world: Router) -> None:
    global _current
    with _lock:
        if _current is not None and _current is not world:
            raise RuntimeError("another world is already installed")
        _current = world


def uninstall(world: Router) -> None:
    global _current
    with _lock:
        if _current is world:
            _current = None


def current() -> Router | None:
    return _current


def _capture_params(
    params: dict[str, Any], model: OperationModel, context: dict[str, Any], **_: Any
) -> None:
    if _current is not None:
        context[_PARAMS_KEY] = dict(params)


def _answer(
    model: OperationModel, context: dict[str, Any], **_: Any
) -> tuple[AWSResponse, dict[str, Any]] | None:
    world = _current
    if world is None:
        return None  # fall through to moto (or the network)
    service = ROUTED_SERVICES[model.service_model.service_id.hyphenize()]
    status, parsed = world.handle_api_call(service, model.name, context.get(_PARAMS_KEY, {}))
    metadata = parsed.setdefault("ResponseMetadata", {})
    metadata.setdefault("HTTPStatusCode", status)
    metadata.setdefault("HTTPHeaders", {})
    metadata.setdefault("RetryAttempts", 0)
    url = f"https://{model.service_model.endpoint_prefix}.world.invalid/"
    return AWSResponse(url, status, {}, None), parsed


def _register() -> None:
    for service_id in ROUTED_SERVICES:
        BUILTIN_HANDLERS.append((f"before-parameter-build.{service_id}", _capture_params))
        BUILTIN_HANDLERS.append((f"before-call.{service_id}", _answer))


def route_client(client: Any) -> None:
    """Route a client created before this module was imported (its session missed the hooks)."""
    for service_id in ROUTED_SERVICES:
        client.meta.events.register(f"before-parameter-build.{service_id}", _capture_params)
        client.meta.events.register(f"before-call.{service_id}", _answer)


if not any(spec[1] is _answer for spec in BUILTIN_HANDLERS):
    _register()
