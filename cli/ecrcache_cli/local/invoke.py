"""How the local stack calls a function: ``invoke(function_logical_id, event) -> result``.

An :data:`Invoke` callable runs the function's ``lambda_handler`` once with ``event`` and returns
what it returned (JSON data). A handler that raises surfaces as :class:`FunctionError` (what
Lambda reports as ``X-Amz-Function-Error: Unhandled``); a host that cannot be reached or times out
surfaces as :class:`InvokeError`. Callers apply the retry semantics of the event source.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["FunctionError", "Invoke", "InvokeError"]


class InvokeError(RuntimeError):
    """The function could not be invoked at all (host down, timeout)."""


class FunctionError(RuntimeError):
    """The handler raised: ``error_type`` and ``message`` as Lambda reports them."""

    def __init__(self, function: str, error_type: str, message: str) -> None:
        super().__init__(f"{function}: {error_type}: {message}")
        self.function = function
        self.error_type = error_type
        self.message = message


Invoke = Callable[[str, dict[str, Any]], Any]
