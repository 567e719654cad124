# SPDX-License-Identifier: LGPL-2.1-or-later
"""The synchronous client: one connection, calls answered in order of
asking, notifications kept for the call that asked for them. Thread-safe (one
call at a time)."""

import collections
import os
import socket
import tempfile
import threading
import time
import weakref
from typing import (Any, Deque, Dict, Iterator, Mapping, Optional, Sequence, Set, Tuple,
                    Union)

from . import _common as c
from ._transport import Child, open_stream, resolve
from .errors import (CallTimeoutError, ConnectionError, DeniedError, MethodNotFound,
                     rpc_error)

StreamItem = Union[Tuple[str, bytes], c.ExecResult]


def _close_transport(sock: Optional[socket.socket], child: Optional[Child]) -> None:
    if sock is not None:
        try:
            sock.close()
        except OSError:
            pass
    if child is not None:
        child.close()


class Client:
    """A connection to a guestlink agent. Use :func:`guestlink.connect`.

    ``timeout`` (seconds, None = no limit) is the default for each call.
    A context manager: ``with guestlink.connect(vm="vm1") as c: ...``.
    """

    def __init__(self, address: str, timeout: Optional[float] = 5.0):
        self.address = address
        self.timeout = timeout
        self._sock: Optional[socket.socket] = None
        self._child: Optional[Child] = None
        self._sock, self._child = open_stream(address, timeout)
        self._finalizer = weakref.finalize(self, _close_transport, self._sock, self._child)
        self._buf = bytearray()
        self._next_id = 1
        # Answers and notifications are kept only for a call still waiting
        # (_waiting) and a process exec_stream() reads (_notes' keys): what a
        # peer sends for anything else is dropped, or it could grow our
        # memory without bound.
        self._waiting: Set[int] = set()
        self._answers: Dict[int, Dict[str, Any]] = {}
        self._notes: Dict[Any, Deque[Dict[str, Any]]] = {}
        self._lock = threading.RLock()
        self._closed = False

    # --- life cycle ---

    def close(self) -> None:
        """Close the connection; for exec: reap the command (killed if it lingers)."""
        self._closed = True
        self._finalizer()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- transport ---

    def _lost(self, what: str) -> ConnectionError:
        stderr = None
        if self._child is not None:
            # Give a dying command a moment so its status and last words count.
            for _ in range(20):
                if self._child.proc.poll() is not None:
                    break
                time.sleep(0.01)
            status = self._child.describe()
            if status:
                what += " (%s)" % status
            stderr = self._child.stderr_tail()
        return ConnectionError("%s: %s" % (self.address, what), stderr)

    def _send(self, data: bytes) -> None:
        if self._closed or self._sock is None:
            raise ConnectionError("%s: client closed" % self.address)
        try:
            self._sock.settimeout(None)
            self._sock.sendall(data)
        except OSError as e:
            raise self._lost("send failed: %s" % (e.strerror or e)) from e

    def _read_message(self, deadline: Optional[float]) -> Dict[str, Any]:
        assert self._sock is not None
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                line = bytes(self._buf[:nl])
                del self._buf[:nl + 1]
                if line.strip():
                    return c.decode(line)
                continue
            if len(self._buf) > c.MAX_MESSAGE:
                raise self._lost("message from the agent larger than %d bytes" % c.MAX_MESSAGE)
            if deadline is None:
                self._sock.settimeout(None)
            else:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise socket.timeout()
                self._sock.settimeout(left)
            try:
                data = self._sock.recv(1 << 20)
            except socket.timeout:
                raise
            except OSError as e:
                raise self._lost("receive failed: %s" % (e.strerror or e)) from e
            if not data:
                raise self._lost("connection closed by the agent")
            self._buf += data

    def _pump(self, deadline: Optional[float]) -> None:
        msg = self._read_message(deadline)
        if "id" in msg and ("result" in msg or "error" in msg):
            i = c.int_id(msg["id"])
            if i is not None and i in self._waiting:
                self._answers[i] = msg
            return
        params = msg.get("params")
        key = c.int_id(params.get("id")) if isinstance(params, dict) else None
        if msg.get("method") in ("exec.output", "exec.exit") and key in self._notes:
            self._notes[key].append(msg)

    def _request(self, method: str, params: Any = None) -> int:
        with self._lock:
            i = self._next_id
            self._next_id += 1
            self._waiting.add(i)
            try:
                self._send(c.encode(method, params, i))
            except BaseException:
                self._waiting.discard(i)
                raise
            return i

    def _answer(self, i: int, method: str, timeout: Optional[float]) -> Any:
        """The result of call i; timeout in seconds, None or NO_LIMIT: none."""
        deadline = None if timeout is None or timeout == c.NO_LIMIT else \
            time.monotonic() + timeout
        with self._lock:
            try:
                while i not in self._answers:
                    self._pump(deadline)
            except socket.timeout:
                raise CallTimeoutError("%s: no answer to %s within %s s" %
                                       (self.address, method, timeout)) from None
            finally:
                self._waiting.discard(i)  # a late answer is dropped
            msg = self._answers.pop(i)
        if "error" in msg:
            raise rpc_error(msg["error"], method)
        return msg.get("result")

    def _timeout(self, timeout: Optional[float]) -> Optional[float]:
        return self.timeout if timeout is None else timeout

    # --- calls ---

    def call(self, method: str, params: Any = None, timeout: Optional[float] = None) -> Any:
        """Call ``method`` with ``params`` (dict, list or None) and return its
        result. ``timeout`` in seconds (default: the client's).
        Raises RpcError (or a subclass) for an error answer, CallTimeoutError
        when no answer came in time, ConnectionError when the connection failed."""
        with self._lock:
            return self._answer(self._request(method, params), method, self._timeout(timeout))

    def notify(self, method: str, params: Any = None) -> None:
        """Send a JSON-RPC notification (no answer)."""
        self._send(c.encode(method, params, None))

    def ping(self, timeout: Optional[float] = None) -> None:
        """agent.ping; raises like :meth:`call` when the agent does not answer "pong"."""
        r = self.call("agent.ping", None, timeout)
        if r != "pong":
            raise ConnectionError("%s: agent.ping answered %r" % (self.address, r))

    def info(self, timeout: Optional[float] = None) -> Dict[str, Any]:
        """agent.info: {version, uptime_s, pid, connections, methods}."""
        return self.call("agent.info", None, timeout)

    # --- exec ---

    def exec(self, argv: Sequence[str], *, stdin: Optional[bytes] = None,
             env: Optional[Mapping[str, str]] = None, cwd: Optional[str] = None,
             user: Union[str, int, None] = None,
             timeout: Optional[float] = None) -> c.ExecResult:
        """Run ``argv`` in the guest and wait for it (exec.run).

        ``stdin``: bytes fed to it (default /dev/null); ``env``: variables added
        to the agent's environment; ``cwd``: working directory (default /);
        ``user``: name or uid (the agent must run as root); ``timeout``: seconds
        after which the agent kills the process group (result ``timed_out``,
        ``signal`` 9). The client waits without limit when ``timeout`` is None.
        Output beyond what one answer carries is fetched with exec.read.
        Raises NotFoundError for a missing program or cwd, RpcError otherwise."""
        p = c.exec_params(argv, stdin, env, cwd, user, timeout)
        wait = c.exec_wait(timeout)
        r = c.answer_dict(self.call("exec.run", p, wait), "exec.run")
        res = c.ExecResult.from_json(r)
        if not r.get("released", True):
            res.stdout = self._read_rest(r["id"], "stdout", res.stdout, r.get("stdout_size", 0))
            res.stderr = self._read_rest(r["id"], "stderr", res.stderr, r.get("stderr_size", 0))
            self.call("exec.release", {"id": r["id"]})
        return res

    def _read_rest(self, id: int, stream: str, have: bytes, size: int) -> bytes:
        out = bytearray(have)
        while len(out) < size:
            r = self.call("exec.read", {"id": id, "stream": stream, "offset": len(out)})
            data = c.unb64(r.get("data"))
            if not data:
                break
            out += data
        return bytes(out)

    def exec_stream(self, argv: Sequence[str], *, stdin: Optional[bytes] = None,
                    env: Optional[Mapping[str, str]] = None, cwd: Optional[str] = None,
                    user: Union[str, int, None] = None,
                    timeout: Optional[float] = None) -> Iterator[StreamItem]:
        """Like :meth:`exec`, but a generator: yields ``("stdout", bytes)`` and
        ``("stderr", bytes)`` as the agent sends output (exec.output
        notifications), then the ExecResult (its stdout/stderr empty). Closing
        the generator early kills the process (SIGKILL to its group)."""
        p = c.exec_params(argv, stdin, env, cwd, user, timeout)
        p["stream"] = True
        with self._lock:
            started = self.call("exec.start", p)
            pid = c.process_id(started)
            # Registered before the lock is let go: the pump reads nothing
            # between exec.start's answer and here, so no output is lost.
            notes = self._notes.setdefault(pid, collections.deque())
            finished = False
            try:
                while True:
                    while not notes:
                        self._pump(None)
                    msg = notes.popleft()
                    params = msg.get("params") or {}
                    if msg.get("method") == "exec.output":
                        yield (params.get("stream", "stdout"), c.unb64(params.get("data")))
                        continue
                    finished = True
                    res = c.ExecResult.from_json(params, with_output=False)
                    res.pid = started.get("pid")
                    break
            finally:
                self._notes.pop(pid, None)
                if not finished and not self._closed:
                    try:
                        self.call("exec.signal", {"id": pid, "signal": "KILL"})
                    except Exception:
                        pass
            try:
                self.call("exec.release", {"id": pid})
            except Exception:
                pass
        yield res

    # --- files ---

    def read_file(self, path: str) -> bytes:
        """The whole content of a guest file (file.read in 8 MiB pieces).
        Raises NotFoundError when it is missing, RpcError (-32000, errno in
        ``data``) for other failures."""
        out = bytearray()
        while True:
            r = self.call("file.read", {"path": path, "offset": len(out), "length": 8 << 20})
            out += c.unb64(r.get("data"))
            if r.get("eof") or not r.get("data"):
                return bytes(out)

    def write_file(self, path: str, data: bytes, mode: Optional[int] = None) -> None:
        """Replace a guest file by ``data`` atomically (the agent renames a
        complete temporary file into place). ``mode``: permission bits (int,
        e.g. 0o644); None keeps an existing file's mode."""
        data = bytes(data)
        if len(data) <= 4 * c.CHUNK:
            p: Dict[str, Any] = {"path": path, "data": c.b64(data)}
            if mode is not None:
                p["mode"] = mode
            self.call("file.write", p)
            return
        self._upload_chunks(path, memoryview(data), len(data), mode)

    def _upload_chunks(self, path: str, src: Any, size: int, mode: Optional[int]) -> None:
        """file.open, file.write {handle, offset} with CHUNKS_IN_FLIGHT calls in
        flight, file.close; ``src`` is a memoryview or a binary file."""
        p: Dict[str, Any] = {"path": path}
        if mode is not None:
            p["mode"] = mode
        handle = self.call("file.open", p)["handle"]
        ok = False
        try:
            pending: Deque[int] = collections.deque()
            off = 0
            while off < size or pending:
                while off < size and len(pending) < c.CHUNKS_IN_FLIGHT:
                    n = min(c.CHUNK, size - off)
                    piece = src[off:off + n] if isinstance(src, memoryview) else os.pread(
                        src.fileno(), n, off)
                    if not piece:
                        raise ConnectionError("%s: local file shrank during the copy" % path)
                    pending.append(self._request("file.write", {
                        "handle": handle, "offset": off, "data": c.b64(bytes(piece))}))
                    off += len(piece)
                self._answer(pending.popleft(), "file.write", self.timeout)
            ok = True
        finally:
            try:
                self.call("file.close", {"handle": handle, "abort": not ok})
            except Exception:
                if ok:
                    raise

    def _channel(self, params: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """file.channel: {token, size, mode?}, or None when the agent has no side channel."""
        try:
            return self.call("file.channel", params)
        except (MethodNotFound, DeniedError):
            # No side channel, or a policy that denies it alone: JSON chunks
            # (under file.write's and file.read's own policy).
            return None

    def copy_to(self, local_path: str, guest_path: str, mode: Optional[int] = None) -> int:
        """Copy a local file into the guest over the raw side channel
        (file.channel + file.attach), or in 1 MiB JSON chunks when the agent
        has none. ``mode``: permission bits, default the local file's.
        The guest file appears only when complete. Returns the bytes copied.
        Raises OSError for the local file, RpcError for the agent's refusal,
        ConnectionError when the transfer broke."""
        with open(local_path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if mode is None:
                mode = os.fstat(f.fileno()).st_mode & 0o7777
            ch = self._channel({"path": guest_path, "direction": "upload", "size": size,
                                "mode": mode})
            if ch is None:
                self._upload_chunks(guest_path, f, size, mode)
            else:
                raw_upload(self.address, self.timeout, ch["token"], f, size)
            return size

    def copy_from(self, guest_path: str, local_path: str) -> int:
        """Copy a guest file to ``local_path`` (replaced atomically, with the
        guest file's permission bits) over the side channel or file.read
        chunks. Returns the bytes copied. Raises NotFoundError for a missing
        guest file, ConnectionError when the transfer broke."""
        ch = self._channel({"path": guest_path, "direction": "download"})
        with LocalTarget(local_path) as f:
            if ch is None:
                st = self.call("file.stat", {"path": guest_path, "follow": True})
                f.mode = st.get("mode", 0o644) & 0o777  # never setuid/setgid from a guest
                while True:
                    r = self.call("file.read", {"path": guest_path, "offset": f.size,
                                                "length": 4 * c.CHUNK})
                    data = c.unb64(r.get("data"))
                    f.write(data)
                    if r.get("eof") or not data:
                        break
            else:
                f.mode = int(ch.get("mode", 0o644)) & 0o777
                raw_download(self.address, self.timeout, ch["token"], f, int(ch.get("size", 0)))
            return f.size


class LocalTarget:
    """A local file written under a temporary name and renamed into place with
    its mode only when complete (removed on failure). The temporary file is
    made by mkstemp in the destination's directory (O_CREAT|O_EXCL, mode 0600,
    an unpredictable name): nothing planted there is followed or replaced."""

    def __init__(self, path: str):
        self.path = path
        self.mode = 0o644
        self.size = 0
        head, tail = os.path.split(path)
        fd, self.tmp = tempfile.mkstemp(prefix=".%s.guestlink-" % tail, suffix=".tmp",
                                        dir=head or ".")
        try:
            self.f = os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            os.unlink(self.tmp)
            raise

    def write(self, data: Any) -> None:
        self.f.write(data)
        self.size += len(data)

    def __enter__(self) -> "LocalTarget":
        return self

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        done = False
        try:
            if exc_type is None:
                os.fchmod(self.f.fileno(), self.mode)
                self.f.close()
                os.rename(self.tmp, self.path)
                done = True
        finally:
            if not done:
                self.f.close()
                try:
                    os.unlink(self.tmp)
                except OSError:
                    pass


def _attach(address: str, timeout: Optional[float], token: str) -> Tuple[socket.socket,
                                                                           Optional[Child]]:
    """A second connection presented with file.attach; from its answer on it
    carries raw bytes."""
    sock, child = open_stream(address, timeout)
    try:
        sock.settimeout(timeout)
        sock.sendall(c.encode("file.attach", {"token": token}, 1))
        ans = c.decode(_read_line(sock))
        if "error" in ans:
            raise rpc_error(ans["error"], "file.attach")
    except socket.timeout as e:
        _close_transport(sock, child)
        raise ConnectionError("%s: no answer to file.attach" % address) from e
    except BaseException:
        _close_transport(sock, child)
        raise
    return sock, child


def raw_upload(address: str, timeout: Optional[float], token: str, f: Any, size: int) -> None:
    """Send ``size`` bytes of the binary file ``f`` (from offset 0) over a side
    channel (sendfile(2)) and check the agent's closing line."""
    sock, child = _attach(address, timeout, token)
    try:
        # timeout bounds each wait for room, not the whole transfer: a peer
        # that stops reading without closing ends it, a slow one does not.
        sock.settimeout(timeout)
        if size:
            sent = sock.sendfile(f, 0, size)
            if sent != size:
                raise ConnectionError("%s: upload stopped after %d of %d bytes" %
                                      (address, sent, size))
        st = c.decode(_read_line(sock))
    except ConnectionError:
        raise
    except OSError as e:
        raise ConnectionError("%s: upload failed: %s" % (address, e)) from e
    finally:
        _close_transport(sock, child)
    if not st.get("ok"):
        raise ConnectionError("%s: upload failed in the guest: %s" % (address,
                                                                      st.get("errno", st)))


def raw_download(address: str, timeout: Optional[float], token: str, f: Any, size: int) -> None:
    """Receive exactly ``size`` bytes over a side channel into ``f`` (has write()).
    ``timeout`` bounds each wait for bytes (a peer that stops sending without
    closing), not the whole transfer."""
    sock, child = _attach(address, timeout, token)
    try:
        left = size
        buf = bytearray(c.CHANNEL_BUF)
        view = memoryview(buf)
        while left:
            n = sock.recv_into(view, min(left, len(buf)))
            if not n:
                raise ConnectionError("%s: download ended after %d of %d bytes" %
                                      (address, size - left, size))
            f.write(view[:n])
            left -= n
    except ConnectionError:
        raise
    except OSError as e:
        raise ConnectionError("%s: download failed: %s" % (address, e)) from e
    finally:
        _close_transport(sock, child)


def _read_line(sock: socket.socket, limit: int = 65536) -> bytes:
    """One line, byte by byte: what follows it is raw data."""
    line = bytearray()
    while not line.endswith(b"\n"):
        b = sock.recv(1)
        if not b:
            raise ConnectionError("connection closed before the answer line")
        line += b
        if len(line) > limit:
            raise ConnectionError("overlong answer line")
    return bytes(line)


def connect(address: Optional[str] = None, timeout: Optional[float] = 5.0,
            vm: Optional[str] = None) -> Client:
    """Connect to an agent.

    ``address``: ``unix:PATH``, ``hybrid:PATH:PORT``, ``vsock:CID:PORT`` or
    ``exec:COMMAND`` (run by /bin/sh; the protocol goes over its stdin and
    stdout). ``vm="NAME"`` means ``hybrid:/run/guestlink/NAME.vsock:9731``;
    neither means $GUESTLINK_ADDRESS. ``timeout``: seconds for connecting and
    the default for each call (None = no limit).
    Raises ValueError for a bad address, ConnectionError when unreachable."""
    return Client(resolve(address, vm), timeout)


__all__ = ["Client", "connect"]
