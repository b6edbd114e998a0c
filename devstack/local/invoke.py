"""How the local stack calls a function: ``invoke(function_logical_id, event) -> result``.

An :data:`Invoke` callable runs the function's ``lambda_handler`` once with ``event`` and returns
what it returned (JSON data). A handler that raises surfaces as :class:`FunctionError` (what
Lambda reports as ``X-Amz-Function-Error: Unhandled``); a handler that runs past the function's
``Timeout`` surfaces as :class:`FunctionTimeout`, a :class:`FunctionError` as in Lambda (``errorType``
``Sandbox.Timedout``). A host that cannot be reached at all (not running, connection refused)
surfaces as :class:`InvokeError`. Callers apply the retry semantics of the event source.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

__all__ = ["TIMEOUT_ERROR_TYPE", "FunctionError", "FunctionTimeout", "Invoke", "InvokeError"]

TIMEOUT_ERROR_TYPE: Final = "Sandbox.Timedout"
"""The ``errorType`` Lambda reports for an invocation that ran past the function's timeout."""


class InvokeError(RuntimeError):
    """The function could not be invoked at all (host not running, unreachable, connection refused)."""


class FunctionError(RuntimeError):
    """The handler raised: ``error_type`` and ``message`` as Lambda reports them."""

    def __init__(self, function: str, error_type: str, message: str) -> None:
        super().__init__(f"{function}: {error_type}: {message}")
        self.function = function
        self.error_type = error_type
        self.message = message


class FunctionTimeout(FunctionError):
    """The handler ran past the function's ``Timeout``: a function error, as Lambda reports it."""

    def __init__(self, function: str, timeout: float) -> None:
        super().__init__(function, TIMEOUT_ERROR_TYPE, f"Task timed out after {timeout:.2f} seconds")
        self.timeout = timeout


Invoke = Callable[[str, dict[str, Any]], Any]
