# SPDX-License-Identifier: LGPL-2.1-or-later
"""The asyncio client: the API of :mod:`guestlink` as coroutines, with many
calls in flight on one connection (answers matched by id, in any order) and
:meth:`Client.exec_stream` as an async iterator.

    async with await guestlink.aio.connect(vm="vm1") as c:
        await asyncio.gather(*(c.ping() for _ in range(64)))
"""

import asyncio
import collections
import functools
import os
import socket
from typing import (Any, AsyncIterator, Deque, Dict, List, Mapping, Optional, Sequence,
                    Union)

from . import _common as c
from ._transport import Child, open_stream, resolve
from .client import LocalTarget, StreamItem, raw_download, raw_upload
from .errors import (CallTimeoutError, ConnectionError, DeniedError, MethodNotFound,
                     rpc_error)

__all__ = ["Client", "connect"]


class Client:
    """An asyncio connection to a guestlink agent; use :func:`connect`.
    An async context manager. Calls may run concurrently from many tasks."""

    def __init__(self, address: str, timeout: Optional[float], sock: socket.socket,
                 child: Optional[Child], reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter):
        self.address = address
        self.timeout = timeout
        self._sock = sock
        self._child = child
        self._reader = reader
        self._writer = writer
        self._next_id = 1
        self._out: List[bytes] = []
        self._calls: Dict[int, "asyncio.Future[Any]"] = {}
        # Notifications are kept only for a process exec_stream() reads (the
        # keys, added by the reader as exec.start's answer arrives, before any
        # output that follows it): what a peer sends for anything else is
        # dropped, or it could grow our memory without bound.
        self._notes: Dict[Any, Deque[Dict[str, Any]]] = {}
        self._note_event = asyncio.Event()
        self._error: Optional[ConnectionError] = None
        self._closed = False
        self._task = asyncio.get_running_loop().create_task(self._read_loop())

    # --- life cycle ---

    async def close(self) -> None:
        """Close the connection; pending calls fail with ConnectionError; an
        exec: command is reaped (killed if it lingers)."""
        if self._closed:
            return
        self._closed = True
        self._task.cancel()
        try:
            await self._task
        except (asyncio.CancelledError, Exception):
            pass
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except OSError:
            pass
        self._fail_all(ConnectionError("%s: client closed" % self.address))
        if self._child is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._child.close)

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # --- transport ---

    def _fail_all(self, err: ConnectionError) -> None:
        if self._error is None:
            self._error = err
        for fut in self._calls.values():
            if not fut.done():
                fut.set_exception(err)
        self._calls.clear()
        self._note_event.set()

    async def _lost(self, what: str) -> ConnectionError:
        stderr = None
        if self._child is not None:
            for _ in range(20):
                if self._child.proc.poll() is not None:
                    break
                await asyncio.sleep(0.01)
            status = self._child.describe()
            if status:
                what += " (%s)" % status
            stderr = self._child.stderr_tail()
        return ConnectionError("%s: %s" % (self.address, what), stderr)

    async def _read_loop(self) -> None:
        try:
            while True:
                try:
                    line = await self._reader.readuntil(b"\n")
                except asyncio.IncompleteReadError:
                    self._fail_all(await self._lost("connection closed by the agent"))
                    return
                except asyncio.LimitOverrunError:
                    self._fail_all(await self._lost("message larger than %d bytes" %
                                                    c.MAX_MESSAGE))
                    return
                if not line.strip():
                    continue
                msg = c.decode(line)
                if "id" in msg and ("result" in msg or "error" in msg):
                    i = c.int_id(msg["id"])
                    fut = self._calls.pop(i, None) if i is not None else None
                    if fut is not None and not fut.done():
                        if getattr(fut, "gl_stream", False):
                            self._register_stream(msg)
                        fut.set_result(msg)
                    continue
                params = msg.get("params")
                key = c.int_id(params.get("id")) if isinstance(params, dict) else None
                if msg.get("method") in ("exec.output", "exec.exit") and key in self._notes:
                    self._notes[key].append(msg)
                    self._note_event.set()
        except ConnectionError as e:
            self._fail_all(e)
        except OSError as e:
            self._fail_all(await self._lost("receive failed: %s" % (e.strerror or e)))

    def _register_stream(self, msg: Dict[str, Any]) -> None:
        """exec.start (stream: true) answered: keep its process's output from
        the next message on (exec_stream() takes it, and drops the key)."""
        try:
            pid = c.process_id(msg.get("result"))
        except Exception:
            return  # exec_stream() reports the bad answer
        self._notes.setdefault(pid, collections.deque())

    async def _request(self, method: str, params: Any = None) -> "asyncio.Future[Any]":
        if self._error is not None:
            raise self._error
        if self._closed:
            raise ConnectionError("%s: client closed" % self.address)
        i = self._next_id
        self._next_id += 1
        fut = asyncio.get_running_loop().create_future()
        fut.gl_id = i  # type: ignore[attr-defined]
        fut.gl_stream = (method == "exec.start" and  # type: ignore[attr-defined]
                         isinstance(params, dict) and params.get("stream") is True)
        self._calls[i] = fut
        # Requests made in one turn of the loop leave in one write (one syscall).
        self._out.append(c.encode(method, params, i))
        if len(self._out) == 1:
            asyncio.get_running_loop().call_soon(self._flush)
        if self._writer.transport.get_write_buffer_size() > c.CHANNEL_BUF:
            try:
                await self._writer.drain()
            except OSError as e:
                self._calls.pop(i, None)
                raise await self._lost("send failed: %s" % (e.strerror or e)) from e
        return fut

    def _flush(self) -> None:
        out, self._out = self._out, []
        if out and not self._closed:
            # A failed write ends the connection: the reader fails every call.
            self._writer.write(b"".join(out))

    def _expire(self, fut: "asyncio.Future[Any]", method: str, timeout: float) -> None:
        """A call's timer: fail it; a late answer finds no call and is dropped."""
        self._calls.pop(fut.gl_id, None)  # type: ignore[attr-defined]
        if not fut.done():
            fut.set_exception(CallTimeoutError("%s: no answer to %s within %s s" %
                                               (self.address, method, timeout)))

    async def _answer(self, fut: "asyncio.Future[Any]", method: str,
                      timeout: Optional[float]) -> Any:
        # One timer per call rather than wait_for(), which costs a task per call.
        timer = None
        if timeout is not None and timeout != c.NO_LIMIT:
            timer = asyncio.get_running_loop().call_later(timeout, self._expire, fut, method,
                                                          timeout)
        try:
            msg = await fut
        finally:
            if timer is not None:
                timer.cancel()
            if not fut.done():  # the awaiting task was cancelled
                self._calls.pop(fut.gl_id, None)  # type: ignore[attr-defined]
                fut.cancel()
        if "error" in msg:
            raise rpc_error(msg["error"], method)
        return msg.get("result")

    # --- calls ---

    async def call(self, method: str, params: Any = None, timeout: Optional[float] = None) -> Any:
        """Like :meth:`guestlink.Client.call`; many may be awaited at once."""
        fut = await self._request(method, params)
        return await self._answer(fut, method, self.timeout if timeout is None else timeout)

    async def notify(self, method: str, params: Any = None) -> None:
        """Send a JSON-RPC notification (no answer)."""
        self._flush()
        self._writer.write(c.encode(method, params, None))
        await self._writer.drain()

    async def ping(self, timeout: Optional[float] = None) -> None:
        """agent.ping."""
        r = await self.call("agent.ping", None, timeout)
        if r != "pong":
            raise ConnectionError("%s: agent.ping answered %r" % (self.address, r))

    async def info(self, timeout: Optional[float] = None) -> Dict[str, Any]:
        """agent.info: {version, uptime_s, pid, connections, methods}."""
        return await self.call("agent.info", None, timeout)

    # --- exec ---

    async def exec(self, argv: Sequence[str], *, stdin: Optional[bytes] = None,
                   env: Optional[Mapping[str, str]] = None, cwd: Optional[str] = None,
                   user: Union[str, int, None] = None,
                   timeout: Optional[float] = None) -> c.ExecResult:
        """Like :meth:`guestlink.Client.exec`."""
        p = c.exec_params(argv, stdin, env, cwd, user, timeout)
        wait = c.exec_wait(timeout)
        r = c.answer_dict(await self.call("exec.run", p, wait), "exec.run")
        res = c.ExecResult.from_json(r)
        if not r.get("released", True):
            for name in ("stdout", "stderr"):
                out = bytearray(getattr(res, name))
                while len(out) < r.get(name + "_size", 0):
                    more = await self.call("exec.read", {"id": r["id"], "stream": name,
                                                         "offset": len(out)})
                    data = c.unb64(more.get("data"))
                    if not data:
                        break
                    out += data
                setattr(res, name, bytes(out))
            await self.call("exec.release", {"id": r["id"]})
        return res

    async def exec_stream(self, argv: Sequence[str], *, stdin: Optional[bytes] = None,
                          env: Optional[Mapping[str, str]] = None, cwd: Optional[str] = None,
                          user: Union[str, int, None] = None,
                          timeout: Optional[float] = None) -> AsyncIterator[StreamItem]:
        """An async iterator like :meth:`guestlink.Client.exec_stream`:
        ``("stdout"|"stderr", bytes)`` items, then the ExecResult. Leaving the
        loop early kills the process."""
        p = c.exec_params(argv, stdin, env, cwd, user, timeout)
        p["stream"] = True
        started = await self.call("exec.start", p)
        pid = c.process_id(started)
        notes = self._notes.setdefault(pid, collections.deque())
        finished = False
        try:
            while True:
                while not notes:
                    if self._error is not None:
                        raise self._error
                    self._note_event.clear()
                    await self._note_event.wait()
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
            if not finished and self._error is None and not self._closed:
                try:
                    await self.call("exec.signal", {"id": pid, "signal": "KILL"})
                except Exception:
                    pass
        try:
            await self.call("exec.release", {"id": pid})
        except Exception:
            pass
        yield res

    # --- files ---

    async def read_file(self, path: str) -> bytes:
        """Like :meth:`guestlink.Client.read_file`."""
        out = bytearray()
        while True:
            r = await self.call("file.read", {"path": path, "offset": len(out),
                                              "length": 8 << 20})
            out += c.unb64(r.get("data"))
            if r.get("eof") or not r.get("data"):
                return bytes(out)

    async def write_file(self, path: str, data: bytes, mode: Optional[int] = None) -> None:
        """Like :meth:`guestlink.Client.write_file`."""
        data = bytes(data)
        if len(data) <= 4 * c.CHUNK:
            p: Dict[str, Any] = {"path": path, "data": c.b64(data)}
            if mode is not None:
                p["mode"] = mode
            await self.call("file.write", p)
            return
        await self._upload_chunks(path, lambda off, n: data[off:off + n], len(data), mode)

    async def _upload_chunks(self, path: str, read: Any, size: int, mode: Optional[int]) -> None:
        p: Dict[str, Any] = {"path": path}
        if mode is not None:
            p["mode"] = mode
        handle = (await self.call("file.open", p))["handle"]
        sem = asyncio.Semaphore(c.CHUNKS_IN_FLIGHT)
        ok = False

        async def one(off: int) -> None:
            async with sem:
                piece = read(off, min(c.CHUNK, size - off))
                await self.call("file.write", {"handle": handle, "offset": off,
                                               "data": c.b64(piece)})
        try:
            await asyncio.gather(*(one(off) for off in range(0, size, c.CHUNK)))
            ok = True
        finally:
            try:
                await self.call("file.close", {"handle": handle, "abort": not ok})
            except Exception:
                if ok:
                    raise

    async def _channel(self, params: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        try:
            return await self.call("file.channel", params)
        except (MethodNotFound, DeniedError):
            # No side channel, or a policy that denies it alone: JSON chunks
            # (under file.write's and file.read's own policy).
            return None

    async def copy_to(self, local_path: str, guest_path: str, mode: Optional[int] = None) -> int:
        """Like :meth:`guestlink.Client.copy_to`; the raw transfer runs in a
        worker thread (sendfile), the event loop stays free."""
        loop = asyncio.get_running_loop()
        with open(local_path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if mode is None:
                mode = os.fstat(f.fileno()).st_mode & 0o7777
            ch = await self._channel({"path": guest_path, "direction": "upload", "size": size,
                                      "mode": mode})
            if ch is None:
                await self._upload_chunks(guest_path, lambda off, n: os.pread(f.fileno(), n, off),
                                          size, mode)
            else:
                await loop.run_in_executor(None, raw_upload, self.address, self.timeout,
                                           ch["token"], f, size)
            return size

    async def copy_from(self, guest_path: str, local_path: str) -> int:
        """Like :meth:`guestlink.Client.copy_from`."""
        loop = asyncio.get_running_loop()
        ch = await self._channel({"path": guest_path, "direction": "download"})
        with LocalTarget(local_path) as f:
            if ch is None:
                st = await self.call("file.stat", {"path": guest_path, "follow": True})
                f.mode = st.get("mode", 0o644) & 0o777
                while True:
                    r = await self.call("file.read", {"path": guest_path, "offset": f.size,
                                                      "length": 4 * c.CHUNK})
                    data = c.unb64(r.get("data"))
                    f.write(data)
                    if r.get("eof") or not data:
                        break
            else:
                f.mode = int(ch.get("mode", 0o644)) & 0o777
                await loop.run_in_executor(None, raw_download, self.address, self.timeout,
                                           ch["token"], f, int(ch.get("size", 0)))
            return f.size


async def connect(address: Optional[str] = None, timeout: Optional[float] = 5.0,
                  vm: Optional[str] = None) -> Client:
    """Like :func:`guestlink.connect`, as a coroutine."""
    address = resolve(address, vm)
    loop = asyncio.get_running_loop()
    sock, child = await loop.run_in_executor(None, functools.partial(open_stream, address,
                                                                     timeout))
    try:
        sock.setblocking(False)
        reader, writer = await asyncio.open_connection(sock=sock, limit=c.MAX_MESSAGE)
    except BaseException:
        sock.close()
        if child is not None:
            child.close()
        raise
    return Client(address, timeout, sock, child, reader, writer)
