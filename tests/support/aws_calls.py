"""Every AWS API call a function's handler makes in the tests, held to what lambdas/functions.py declares.

botocore's `BaseClient._make_api_call` is where every client call passes (moto, Stubber and the real service
alike), the drivers' (redshift-connector's) included. While a test runs, each call is attributed to the
function whose handler module is on the call stack; a call that function does not declare is recorded as a
violation, and tests/conftest.py fails the test that made it. So a function that starts calling a new API
fails its tests until the declaration, and with it the network route the template must give, says so.

Support code (tests/support/): tests and benchmarks may import it; it imports no test module.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from botocore.client import BaseClient

from lambdas.functions import FUNCTIONS

HANDLER_MODULES = {f.handler.rpartition(".")[0]: name for name, f in FUNCTIONS.items()}


@dataclass
class Recorder:
    calls: list[tuple[str, str, str]] = field(default_factory=list)  # (function, service, operation)
    violations: list[str] = field(default_factory=list)

    def record(self, service: str, operation: str) -> None:
        function = calling_function()
        if function is None:
            return  # the CLI's or a test's own call, not a function's
        self.calls.append((function, service, operation))
        declared = {(c.service, op) for c in FUNCTIONS[function].calls for op in c.operations}
        if (service, operation) not in declared:
            self.violations.append(f"the {function} function called {service} {operation}, which "
                                   f"lambdas/functions.py does not declare for it")


def calling_function() -> str | None:
    """The function whose handler module is nearest on the call stack, if any."""
    frame = sys._getframe(2)
    while frame is not None:
        name = HANDLER_MODULES.get(frame.f_globals.get("__name__", ""))
        if name is not None:
            return name
        frame = frame.f_back
    return None


@contextmanager
def recording() -> Iterator[Recorder]:
    """Records (and checks) every botocore call made inside the block."""
    recorder = Recorder()
    original = BaseClient._make_api_call

    def make_api_call(self: Any, operation_name: str, api_params: Any) -> Any:
        recorder.record(self.meta.service_model.service_name, operation_name)
        return original(self, operation_name, api_params)

    BaseClient._make_api_call = make_api_call  # type: ignore[method-assign]
    try:
        yield recorder
    finally:
        BaseClient._make_api_call = original  # type: ignore[method-assign]
