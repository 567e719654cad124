# SPDX-License-Identifier: LGPL-2.1-or-later
"""The client against a hostile peer: a small server on a Unix socket (a
thread of this test) that answers each request with odd JSON before (or
instead of) the right answer. No real agent sends these, so the peer here is
the only way to reach the paths: every case must end in a guestlink error or
the right answer, never in a Python exception of another kind, a call that
hangs, or an answer taken for another call."""

import asyncio
import json
import os
import socket
import threading

import pytest

from guestlink import aio
import guestlink
from guestlink.errors import ConnectionError as GlConnectionError

DEEP = b"[" * 200000 + b"]" * 200000


def pong(i):
    return json.dumps({"jsonrpc": "2.0", "id": i, "result": "pong"}).encode() + b"\n"


# mode -> what is sent for request id i
MODES = {
    # nesting deeper than Python's json can decode, then the answer
    "deep": lambda i: DEEP + b"\n" + pong(i),
    # a notification whose params.id cannot be a dict key, then the answer
    "unhashable": lambda i: json.dumps({"jsonrpc": "2.0", "method": "exec.output",
                                        "params": {"id": [1], "stream": "stdout",
                                                   "data": ""}}).encode() + b"\n" + pong(i),
    "dict-id-note": lambda i: json.dumps({"jsonrpc": "2.0", "method": "exec.exit",
                                          "params": {"id": {"a": 1}}}).encode() + b"\n" + pong(i),
    # an answer whose id is true (== 1 in Python), then the real one
    "bool-id": lambda i: json.dumps({"jsonrpc": "2.0", "id": True,
                                     "result": "evil"}).encode() + b"\n" + pong(i),
    # an answer with an unhashable id, then the real one
    "list-id": lambda i: json.dumps({"jsonrpc": "2.0", "id": [i],
                                     "result": "evil"}).encode() + b"\n" + pong(i),
    # exec.output for processes nobody started, then the answer
    "note-flood": lambda i: b"".join(
        json.dumps({"jsonrpc": "2.0", "method": "exec.output",
                    "params": {"id": 1000 + k % 50, "stream": "stdout",
                               "data": "eA=="}}).encode() + b"\n"
        for k in range(5000)) + pong(i),
    # answers to calls never made, then the real one
    "stray-answers": lambda i: b"".join(
        json.dumps({"jsonrpc": "2.0", "id": i + 1000 + k,
                    "result": "evil"}).encode() + b"\n" for k in range(5000)) + pong(i),
}


def retained(client):
    """Messages the client keeps for nobody: must stay 0 (a peer could
    otherwise grow our memory without bound)."""
    notes = sum(len(q) for q in getattr(client, "_notes", {}).values())
    return notes + len(getattr(client, "_answers", {}))


def answer(i, result):
    return json.dumps({"jsonrpc": "2.0", "id": i, "result": result}).encode() + b"\n"


def exec_start(mode, i):
    r = {"exec-no-id": {"pid": 5}, "exec-list-id": {"id": [7], "pid": 5},
         "exec-not-object": 7}.get(mode, {"id": 7, "pid": 5})
    out = answer(i, r)
    if mode == "exec-bad-b64":
        out += json.dumps({"jsonrpc": "2.0", "method": "exec.output",
                           "params": {"id": 7, "stream": "stdout", "data": "!!!"}}).encode() + b"\n"
    return out


def exec_run(mode, i):
    if mode == "exec-bad-b64":
        return answer(i, {"id": 7, "code": 0, "stdout": "!!!", "stderr": "", "released": True})
    return answer(i, 5 if mode == "exec-not-object" else {"code": 0, "released": True})


EXEC_ANSWERS = {"exec.start": exec_start, "exec.run": exec_run,
                "exec.signal": lambda m, i: answer(i, {}), "exec.release": lambda m, i: answer(i, {})}
EXEC_MODES = ["exec-no-id", "exec-list-id", "exec-not-object", "exec-bad-b64"]


class Hostile:
    def __init__(self, tmp, mode):
        self.path = os.path.join(str(tmp), "hostile.sock")
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(self.path)
        self.srv.listen(8)
        self.srv.settimeout(0.2)
        self.mode = MODES.get(mode, pong)
        self.mode_name = mode
        self.stop = False
        self.th = threading.Thread(target=self.run, daemon=True)
        self.th.start()

    def run(self):
        conns = []
        while not self.stop:
            try:
                c, _ = self.srv.accept()
            except socket.timeout:
                continue
            conns.append(c)
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()
        for c in conns:
            c.close()

    def serve(self, c):
        try:
            for line in c.makefile("rb"):
                req = json.loads(line)
                if req.get("method") in EXEC_ANSWERS:
                    c.sendall(EXEC_ANSWERS[req["method"]](self.mode_name, req["id"]))
                else:
                    c.sendall(self.mode(req["id"]))
        except (OSError, ValueError):
            pass

    def close(self):
        self.stop = True
        self.th.join(5)
        self.srv.close()


@pytest.fixture(params=sorted(MODES))
def hostile(request, tmp_path):
    h = Hostile(tmp_path, request.param)
    yield request.param, "unix:" + h.path
    h.close()


def test_sync_client(hostile):
    mode, address = hostile
    c = guestlink.connect(address, timeout=5)
    try:
        if mode == "deep":
            with pytest.raises(GlConnectionError, match="garbled"):
                c.call("agent.ping")
        else:
            assert c.call("agent.ping") == "pong"
            assert c.call("agent.ping") == "pong"
            assert retained(c) == 0
    finally:
        c.close()


def test_aio_client(hostile):
    mode, address = hostile

    async def run():
        c = await aio.connect(address, timeout=5)
        try:
            if mode == "deep":
                with pytest.raises(GlConnectionError, match="garbled"):
                    await c.call("agent.ping")
            else:
                assert await c.call("agent.ping") == "pong"
                assert await c.call("agent.ping") == "pong"
                assert retained(c) == 0
        finally:
            await c.close()

    asyncio.run(asyncio.wait_for(run(), 30))



@pytest.fixture(params=EXEC_MODES)
def hostile_exec(request, tmp_path):
    h = Hostile(tmp_path, request.param)
    yield request.param, "unix:" + h.path
    h.close()


def test_sync_exec(hostile_exec):
    """exec_stream and exec against odd answers: a guestlink ConnectionError."""
    mode, address = hostile_exec
    c = guestlink.connect(address, timeout=5)
    try:
        with pytest.raises(GlConnectionError):
            list(c.exec_stream(["true"]))
        if mode in ("exec-not-object", "exec-bad-b64"):
            with pytest.raises(GlConnectionError):
                c.exec(["true"])
    finally:
        c.close()


def test_aio_exec(hostile_exec):
    mode, address = hostile_exec

    async def run():
        c = await aio.connect(address, timeout=5)
        try:
            with pytest.raises(GlConnectionError):
                async for _ in c.exec_stream(["true"]):
                    pass
            if mode in ("exec-not-object", "exec-bad-b64"):
                with pytest.raises(GlConnectionError):
                    await c.exec(["true"])
        finally:
            await c.close()

    asyncio.run(asyncio.wait_for(run(), 30))


class SilentChannel:
    """A peer whose side channel says 1 GiB, sends 10 bytes (a download) or
    reads nothing (an upload), and then neither closes nor moves: the
    client's timeout must end the copy, not leave it waiting forever."""

    def __init__(self, tmp):
        self.path = os.path.join(str(tmp), "silent.sock")
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(self.path)
        self.srv.listen(8)
        self.release = threading.Event()
        self.conns = []
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        try:
            for line in c.makefile("rb"):
                req = json.loads(line)
                m, i = req.get("method"), req.get("id")
                if m == "file.channel":
                    c.sendall(answer(i, {"token": "t0k", "size": 1 << 30, "mode": 0o644}))
                elif m == "file.attach":
                    c.sendall(answer(i, {}))
                    c.sendall(b"z" * 10)
                    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                    self.release.wait(60)  # and read nothing
                    return
                else:
                    c.sendall(answer(i, {}))
        except (OSError, ValueError):
            pass

    def close(self):
        self.release.set()
        self.srv.close()
        for c in self.conns:
            c.close()


def bounded(fn, limit=15):
    """fn() in a thread, joined for at most limit seconds: (finished, exception)."""
    box = {}

    def run():
        try:
            fn()
        except BaseException as e:
            box["e"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(limit)
    return not t.is_alive(), box.get("e")


@pytest.mark.parametrize("direction", ["download", "upload"])
def test_silent_side_channel(tmp_path, direction):
    peer = SilentChannel(tmp_path)
    local = os.path.join(str(tmp_path), "f")
    try:
        cl = guestlink.connect("unix:" + peer.path, timeout=1)
        if direction == "download":
            finished, e = bounded(lambda: cl.copy_from("/f", local))
        else:
            with open(local, "wb") as f:
                f.truncate(64 << 20)  # more than the socket buffers hold
            finished, e = bounded(lambda: cl.copy_to(local, "/f"))
        assert finished, "copy_%s still waits on a silent side channel" % direction
        assert isinstance(e, GlConnectionError) and "timed out" in str(e), repr(e)
        left = sorted(os.listdir(str(tmp_path)))
        assert left == (["f", "silent.sock"] if direction == "upload" else ["silent.sock"])
        cl.close()
    finally:
        peer.close()
