# SPDX-License-Identifier: LGPL-2.1-or-later
"""What the synchronous and the asyncio clients share: message encoding,
exec parameters and results, chunk sizes."""

import base64
import json
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from .errors import ConnectionError

# Largest answer accepted from the agent, bytes (the agent's own default
# limit is 16 MiB per message; answers carry base64).
MAX_MESSAGE = 64 << 20
# Chunked JSON transfers (no side channel): bytes per file.write/file.read and
# calls in flight, as `guestlink cp` does.
CHUNK = 1 << 20
CHUNKS_IN_FLIGHT = 8
# Side channel buffer, bytes.
CHANNEL_BUF = 1 << 20
# Extra seconds a client waits beyond a process's own timeout for exec.run.
EXEC_SLACK_S = 30.0
# A call timeout meaning "wait as long as it takes" (exec.run without a timeout).
NO_LIMIT = float("inf")


def exec_wait(timeout: Optional[float]) -> float:
    """How long to wait for exec.run's answer: the process's timeout plus slack,
    or without limit when the process has none."""
    return NO_LIMIT if timeout is None else timeout + EXEC_SLACK_S


def encode(method: str, params: Any, id: Optional[int]) -> bytes:
    req: Dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        req["params"] = params
    if id is not None:
        req["id"] = id
    return json.dumps(req, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> Dict[str, Any]:
    try:
        msg = json.loads(line.decode("utf-8"))
    except (ValueError, RecursionError) as e:  # RecursionError: nested too deep
        raise ConnectionError("garbled message from the agent: %s" % e) from e
    if not isinstance(msg, dict):
        raise ConnectionError("unexpected message from the agent: %.100r" % (msg,))
    return msg


def int_id(v: Any) -> Optional[int]:
    """v when it is an integer id (not a bool, which Python counts as 0 or 1),
    else None: what keys answers and notifications from the agent."""
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        return b""
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as e:  # binascii.Error
        raise ConnectionError("garbled base64 from the agent: %s" % e) from e


def answer_dict(r: Any, method: str) -> Dict[str, Any]:
    """r when the agent answered method with an object, else ConnectionError."""
    if not isinstance(r, dict):
        raise ConnectionError("%s answered %.100r, not an object" % (method, r))
    return r


def process_id(r: Any) -> int:
    """The process id in exec.start's answer, else ConnectionError."""
    i = int_id(answer_dict(r, "exec.start").get("id"))
    if i is None:
        raise ConnectionError("exec.start answered no process id: %.100r" % (r,))
    return i


class ExecResult:
    """The end of a process run by the agent.

    ``exit_code``: int, or None when a signal ended it; ``signal``: int or None;
    ``stdout``, ``stderr``: bytes (empty after exec_stream, which yielded them);
    ``truncated``: True when the agent dropped output beyond its
    exec.max_output_bytes; ``timed_out``: the agent killed it after ``timeout``.
    """

    __slots__ = ("exit_code", "signal", "stdout", "stderr", "truncated", "timed_out", "id", "pid")

    def __init__(self, exit_code: Optional[int], signal: Optional[int], stdout: bytes = b"",
                 stderr: bytes = b"", truncated: bool = False, timed_out: bool = False,
                 id: Optional[int] = None, pid: Optional[int] = None):
        self.exit_code = exit_code
        self.signal = signal
        self.stdout = stdout
        self.stderr = stderr
        self.truncated = truncated
        self.timed_out = timed_out
        self.id = id
        self.pid = pid

    @classmethod
    def from_json(cls, r: Mapping[str, Any], with_output: bool = True) -> "ExecResult":
        code = r.get("code")
        sig = r.get("signal")
        return cls(code if isinstance(code, int) else None, sig if isinstance(sig, int) else None,
                   unb64(r.get("stdout")) if with_output else b"",
                   unb64(r.get("stderr")) if with_output else b"",
                   bool(r.get("truncated")), bool(r.get("timed_out")), r.get("id"), r.get("pid"))

    def __repr__(self) -> str:
        return "ExecResult(exit_code=%r, signal=%r, stdout=%d bytes, stderr=%d bytes%s%s)" % (
            self.exit_code, self.signal, len(self.stdout), len(self.stderr),
            ", truncated" if self.truncated else "", ", timed_out" if self.timed_out else "")


def exec_params(argv: Sequence[str], stdin: Optional[bytes], env: Optional[Mapping[str, str]],
                cwd: Optional[str], user: Union[str, int, None],
                timeout: Optional[float]) -> Dict[str, Any]:
    """exec.start / exec.run params. ``timeout`` in seconds (float)."""
    if isinstance(argv, (str, bytes)) or not argv:
        raise ValueError("argv must be a non-empty list of strings")
    p: Dict[str, Any] = {"argv": [str(a) for a in argv]}
    if stdin is not None:
        p["stdin"] = b64(bytes(stdin))
    if env:
        p["env"] = ["%s=%s" % (k, v) for k, v in env.items()]
    if cwd is not None:
        p["cwd"] = cwd
    if user is not None:
        p["user"] = str(user)  # a name or a uid, as text
    if timeout is not None:
        p["timeout_ms"] = max(1, int(timeout * 1000))
    return p


def local_mode(path: str) -> int:
    return os.stat(path).st_mode & 0o7777


def chunk_list(size: int) -> List[int]:
    return list(range(0, size, CHUNK)) or [0]
