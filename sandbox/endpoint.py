"""Where the local AWS endpoint listens, and how anything talks to it without reaching AWS.

Kept free of moto and the world so the demo's client side starts fast.
"""

from __future__ import annotations

import functools
import os
import socket
import threading
from typing import Any

import boto3

ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"
HOST = "127.0.0.1"
DEFAULT_PORT = 4599
PORT_VARIABLE = "SANDBOX_PORT"
READY_LINE = "sandbox: ready."  # the server prints it once everything is up
STATE_MACHINE_NAME = "ecs-drainer"  # what sandbox.deployment names the state machine
# Fake credentials: moto accepts any; real AWS would refuse these.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}


def url(port: int) -> str:
    return f"http://{HOST}:{port}"


def default_port() -> int:
    return int(os.environ.get(PORT_VARIABLE) or DEFAULT_PORT)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            return True
        return False


def aws_environment(endpoint: str | None, base: dict[str, str] | None = None) -> dict[str, str]:
    """`base` (default: os.environ) without any AWS setting of the user's, plus fake
    credentials, the region and (if given) the endpoint. No profile, config or credentials file
    is read, so nothing can point a call at a real account."""
    env = {
        k: v for k, v in (os.environ if base is None else base).items() if not k.startswith("AWS_")
    }
    env.update(
        CREDENTIALS,
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    if endpoint:
        env["AWS_ENDPOINT_URL"] = endpoint
    return env


_session_lock = threading.Lock()


@functools.cache
def _session() -> boto3.session.Session:
    # One session: its loader caches the service models (a new one per client costs ~0.2 s).
    return boto3.session.Session(
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=REGION,
    )


def client(service: str, endpoint: str) -> Any:
    """A boto3 client for the sandbox: explicit endpoint, fake credentials, one region."""
    with _session_lock:  # creating clients from one session is not thread-safe
        return _session().client(service, endpoint_url=endpoint)
