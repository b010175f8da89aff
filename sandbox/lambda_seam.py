"""moto's Lambda invocations reach the real handlers, in-process.

With `{"lambda": {"use_docker": False}}` moto answers Invoke with
`LambdaSimpleBackend.invoke` (by default an echo). Replacing that method sends every invocation
of a deployed function to its handler module in lambdas/, whoever invokes it: the Step Functions
interpreter (through boto3, mocked or over HTTP in server mode), an EventBridge target or a user.
"""

from __future__ import annotations

import importlib
import io
import json
import sys
import threading
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from moto.awslambda_simple.models import LambdaSimpleBackend

from stacks.definition import Function

# function name (Function.name), one invocation's captured output
LogSink = Callable[[str, str], None]
# handler ("resolve.handler") -> a context in which the handler's AWS calls run as its role
RunAs = Callable[[str], AbstractContextManager[object]]


class _ThreadStdout(io.TextIOBase):
    """sys.stdout that sends a capturing thread's writes to that thread's buffer.

    Handlers log with print / sys.stdout.write; invocations run in many threads at once, so a
    plain redirect_stdout would mix them (and the server's own output).
    """

    def __init__(self, default: Any) -> None:
        self.default = default
        self.local = threading.local()

    def write(self, text: str) -> int:
        buffer = getattr(self.local, "buffer", None)
        return (buffer or self.default).write(text)

    def flush(self) -> None:
        self.default.flush()


class LambdaSeam:
    """Routes invocations of `functions` (deployed name → Function) to their handlers, whichever
    version is invoked: every version of a function runs this checkout's handler.

    `invocations`, `faults` and `errors` may be objects the caller owns (sandbox/harness.py
    exposes them). A fault is an exception the handler raises instead of running, or the name of
    a Lambda service error (e.g. "Lambda.ServiceException"). With `log_sink`, each invocation's
    output goes there instead of stdout (the server turns it into CloudWatch Logs). With
    `run_as` (simulated_aws/iam/authorization.py's `Authorizer.acting_as`), each handler's AWS calls
    are authorized against its function's role, as IAM would.
    `versions` counts invocations by (Function.name, the version invoked: "$LATEST" or a
    published number).
    """

    def __init__(
        self,
        functions: dict[str, Function],
        invocations: Counter | None = None,
        faults: dict[str, list[BaseException | str]] | None = None,
        errors: list[str] | None = None,
        log_sink: LogSink | None = None,
        run_as: RunAs | None = None,
        versions: Counter[tuple[str, str]] | None = None,
    ) -> None:
        self.functions = functions
        self.invocations = invocations if invocations is not None else Counter()
        self.versions = versions if versions is not None else Counter()
        self.faults = faults if faults is not None else {}
        self.errors = errors if errors is not None else []
        self.log_sink = log_sink
        self.run_as = run_as
        self._lock = threading.Lock()
        self._stdout: _ThreadStdout | None = None

    @contextmanager
    def installed(self) -> Iterator[LambdaSeam]:
        original = LambdaSimpleBackend.invoke
        seam = self

        def invoke(
            backend: LambdaSimpleBackend,
            function_name: str,
            qualifier: str | None,
            body: Any,
            headers: Any,
            response_headers: dict[str, str],
        ) -> bytes | str | None:
            # A name, an ARN, either with a version: resolved as Lambda does, so a version that
            # was never published fails (ResourceNotFoundException) instead of running.
            deployed = backend.get_function(function_name, qualifier)
            function = seam.functions.get(deployed.function_name)
            if function is None:  # not ours: moto's own behaviour
                return original(backend, function_name, qualifier, body, headers, response_headers)
            with seam._lock:
                seam.versions[(function.name, str(deployed.version))] += 1
            return seam.invoke(function, body, response_headers)

        LambdaSimpleBackend.invoke = invoke  # type: ignore[method-assign]
        if self.log_sink is not None:
            self._stdout = _ThreadStdout(sys.stdout)
            sys.stdout = self._stdout
        try:
            yield self
        finally:
            LambdaSimpleBackend.invoke = original  # type: ignore[method-assign]
            if self._stdout is not None and sys.stdout is self._stdout:
                sys.stdout = self._stdout.default
            self._stdout = None

    def invoke(self, function: Function, body: Any, response_headers: dict[str, str]) -> bytes:
        """One invocation, answered as Lambda answers it (x-amz-function-error on failure)."""
        name = function.name
        with self._lock:
            self.invocations[name] += 1
            queued = self.faults.get(name)
            fault = queued.pop(0) if queued else None
        stdout = self._stdout  # read once: the seam may be uninstalled meanwhile
        buffer = io.StringIO() if stdout is not None else None
        if stdout is not None:
            stdout.local.buffer = buffer
        try:
            if isinstance(fault, str):  # a Lambda service error, by its error name
                response_headers["x-amz-function-error"] = "Unhandled"
                return json.dumps({"errorType": fault, "errorMessage": "injected"}).encode()
            if fault is not None:
                raise fault
            module_name, attribute = function.handler.rsplit(".", 1)
            handler = getattr(importlib.import_module(module_name), attribute)
            with self.run_as(function.handler) if self.run_as else nullcontext():
                result = handler(json.loads(body or b"{}"), None)
            return json.dumps(result).encode()
        except Exception as error:  # what Lambda does with an unhandled exception
            response_headers["x-amz-function-error"] = "Unhandled"
            with self._lock:
                self.errors.append(f"{name}: {type(error).__name__}: {error}")
            if buffer is not None:
                buffer.write("".join(traceback.format_exception(error)))
            return json.dumps(
                {
                    "errorType": type(error).__name__,
                    "errorMessage": str(error),
                    "stackTrace": traceback.format_exception(error)[-3:],
                }
            ).encode()
        finally:
            if stdout is not None and buffer is not None:
                stdout.local.buffer = None
                if buffer.getvalue() and self.log_sink is not None:
                    self._hand_over_logs(name, buffer.getvalue())

    def _hand_over_logs(self, name: str, text: str) -> None:
        # Losing a log line must not fail the invocation (moto would answer 500).
        try:
            self.log_sink(name, text)  # type: ignore[misc]
        except Exception as error:
            print(f"lambda seam: {name}: logs lost: {error}", file=sys.__stderr__)
