# SPDX-License-Identifier: LGPL-2.1-or-later
"""Exceptions of the guestlink client.

An error answered by the agent raises :class:`RpcError` (or the subclass for
its code, see :data:`ERROR_CLASSES`); a transport failure (cannot connect,
connection lost, garbled stream, no answer in time) raises
:class:`ConnectionError`.
"""

import builtins
from typing import Any, Dict, Optional, Type


class Error(Exception):
    """Base class of every exception this package raises."""


class RpcError(Error):
    """The agent answered with a JSON-RPC error object.

    Attributes: ``code`` (int, JSON-RPC error code), ``message`` (str),
    ``data`` (any JSON value or None; for -32000 the errno name and text).
    """

    def __init__(self, code: int, message: str, data: Any = None, method: str = ""):
        self.code = code
        self.message = message
        self.data = data
        self.method = method
        text = "%s: %s (%d)" % (method, message, code) if method else "%s (%d)" % (message, code)
        if data is not None:
            text += ": %r" % (data,)
        super().__init__(text)


class DeniedError(RpcError):
    """-32001: the agent's policy denies the method."""


class NotFoundError(RpcError):
    """-32002: no such object (file, directory, process id, program)."""


class LimitError(RpcError):
    """-32003: a limit of the agent was reached (calls in flight, output size...)."""


class TimedOutError(RpcError):
    """-32004: the agent gave up waiting (exec.wait, plugin run)."""


class MethodNotFound(RpcError):
    """-32601: the agent has no such method."""


class InvalidParams(RpcError):
    """-32602: the params did not match the method's schema."""


ERROR_CLASSES: Dict[int, Type[RpcError]] = {
    -32001: DeniedError,
    -32002: NotFoundError,
    -32003: LimitError,
    -32004: TimedOutError,
    -32601: MethodNotFound,
    -32602: InvalidParams,
}


def rpc_error(error: Any, method: str = "") -> RpcError:
    """The exception for a JSON-RPC error object taken from an answer."""
    if not isinstance(error, dict):
        return RpcError(-32603, "malformed error object", error, method)
    code = error.get("code")
    if not isinstance(code, int) or isinstance(code, bool):
        code = -32603
    message = error.get("message")
    if not isinstance(message, str):
        message = "error %d" % code
    cls = ERROR_CLASSES.get(code, RpcError)
    return cls(code, message, error.get("data"), method)


class ConnectionError(Error, builtins.ConnectionError):
    """The agent cannot be reached or the connection failed.

    For an ``exec:`` address the message ends with the command's exit status
    and the last lines it wrote to stderr (``.stderr``, str)."""

    def __init__(self, message: str, stderr: Optional[str] = None):
        self.stderr = stderr or ""
        if self.stderr:
            message = "%s; command stderr: %s" % (message, self.stderr.strip())
        super().__init__(message)


class CallTimeoutError(ConnectionError, builtins.TimeoutError):
    """No answer within the call's timeout. The connection stays usable; a late
    answer is dropped."""
