#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Upload handles and file channels off the agent's event loop: with the
server of a FUSE mount stopped (SIGSTOP), file.open, a file.write into a
handle, file.channel (upload and download), file.symlink and file.sha256
below it cost only their caller (-32004 after fs_timeout_s) while another
client is served. A
handle whose write is still stuck is not freed underneath it: file.close
answers -32003 until the write returned, an abort answers at once, and once
the filesystem answers again the upload completes with every byte and the
aborted one leaves no file."""

import base64
import hashlib
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gltest import done, is_eq, ok, tmpdir  # noqa: E402
from agentlib import Agent  # noqa: E402
from hangfslib import HangFS  # noqa: E402
from nslib import MountNamespace  # noqa: E402

FS_TIMEOUT_S = 2
tmp = tmpdir()
# The hung mount lives in a mount namespace of its own, with the agent: tests
# running beside this one that list every mount never meet it stopped.
ns = MountNamespace()
fs = HangFS(tmp, prefix=ns.prefix)


def b64(data):
    return base64.b64encode(data).decode()


def code(answer):
    return answer.get("error", {}).get("code")


try:
    agent = Agent(tmp, config={"fs_timeout_s": FS_TIMEOUT_S}, prefix=ns.prefix)
    up, stuck, other = agent.client(), agent.client(), agent.client()

    # Two uploads through handles while the filesystem answers.
    h1 = up.call("file.open", {"path": fs.path("up1")}, id=1).get("result", {}).get("handle")
    h2 = up.call("file.open", {"path": fs.path("up2")}, id=2).get("result", {}).get("handle")
    ok(isinstance(h1, int) and isinstance(h2, int), "file.open on the FUSE mount: handles")
    a = up.call("file.write", {"handle": h1, "offset": 0, "data": b64(b"first ")}, id=3)
    is_eq(a.get("result"), {}, "a write into the handle")
    a = up.call("file.write", {"handle": h2, "offset": 0, "data": b64(b"doomed")}, id=4)
    is_eq(a.get("result"), {}, "a write into the second handle")

    fs.stop()
    time.sleep(1.2)  # past FUSE's attribute cache: lookups reach the stopped server
    t0 = time.monotonic()
    up.send({"jsonrpc": "2.0", "method": "file.write", "id": 10,
             "params": {"handle": h1, "offset": 6, "data": b64(b"second")}})
    up.send({"jsonrpc": "2.0", "method": "file.write", "id": 11,
             "params": {"handle": h2, "offset": 6, "data": b64(b" bytes")}})
    calls = [("file.open", {"path": fs.path("new")}),
             ("file.channel", {"path": fs.path("f"), "direction": "download"}),
             ("file.channel", {"path": fs.path("chan"), "direction": "upload", "size": 3}),
             ("file.symlink", {"path": fs.path("link"), "target": "f"}),
             ("file.sha256", {"path": fs.path("f")})]
    for i, (method, params) in enumerate(calls):
        stuck.send({"jsonrpc": "2.0", "method": method, "params": params, "id": 20 + i})
    time.sleep(0.3)

    t1 = time.monotonic()
    is_eq(other.call("agent.ping", id="p", timeout=5).get("result"), "pong",
          "another client's agent.ping answers while seven calls hang")
    st = other.call("file.stat", {"path": tmp}, id="s", timeout=5)
    ok(st.get("result", {}).get("type") == "directory",
       "... and its file.stat on a healthy path")
    h3 = other.call("file.open", {"path": os.path.join(tmp, "healthy")}, id="o", timeout=5)
    h3 = h3.get("result", {}).get("handle")
    a = other.call("file.write", {"handle": h3, "data": b64(b"ok")}, id="w", timeout=5)
    a = other.call("file.close", {"handle": h3}, id="c", timeout=5)
    is_eq(a.get("result"), {"size": 2}, "... and a whole upload through a handle on a healthy path")
    dt = time.monotonic() - t1
    # not a speed target: a blocked loop would not answer until the fs is back
    ok(dt < FS_TIMEOUT_S, "... before the stuck calls' timeout (%.2fs)" % dt)

    # The handle with a stuck write stays: closing it must wait for the write.
    a = up.call("file.close", {"handle": h1}, id=12, timeout=5)
    is_eq(code(a), -32003, "file.close while a write on the handle runs: -32003")
    a = up.call("file.close", {"handle": h2, "abort": True}, id=13, timeout=5)
    ok("result" in a, "an abort answers at once, with the write still stuck")

    answers = {}
    while len(answers) < 2 + len(calls):
        x = up.recv(FS_TIMEOUT_S + 20) if len(answers) < 2 else stuck.recv(FS_TIMEOUT_S + 20)
        answers[x.get("id")] = code(x)
    dt = time.monotonic() - t0
    is_eq(answers, {10: -32004, 11: -32004, 20: -32004, 21: -32004, 22: -32004, 23: -32004,
                    24: -32004},
          "the stuck writes, opens, channels, symlink and sha256 answer -32004 (after %.1fs)"
          % dt)
    ok(dt >= FS_TIMEOUT_S, "not before fs_timeout_s")
    is_eq(stuck.call("agent.ping", id=30).get("result"), "pong",
          "the stuck caller's connection still serves")

    fs.cont()
    # The write that timed out went through once the server ran again.
    deadline = time.monotonic() + 10
    while True:
        a = up.call("file.close", {"handle": h1}, id=14, timeout=10)
        if code(a) != -32003 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    is_eq(a.get("result"), {"size": 12}, "after SIGCONT file.close completes with both writes")
    a = up.call("file.read", {"path": fs.path("up1")}, id=15)
    is_eq(base64.b64decode(a.get("result", {}).get("data", "")), b"first second",
          "the uploaded file has every byte")
    deadline = time.monotonic() + 10
    while True:
        names = sorted(e["name"] for e in up.call("file.list", {"path": fs.mnt}, id=16)
                       .get("result", {}).get("entries", []))
        if not any(n.startswith(".") for n in names) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    ok("up2" not in names and not any(n.startswith(".") for n in names),
       "the aborted upload left no file, nor a temporary one (%s)" % names)
    a = up.call("file.close", {"handle": h2}, id=17)
    is_eq(code(a), -32002, "the aborted handle is gone")
    a = stuck.call("file.channel", {"path": fs.path("f"), "direction": "download"}, id=31)
    is_eq(a.get("result", {}).get("size"), 6, "file.channel works again")
    a = stuck.call("file.sha256", {"path": fs.path("f")}, id=32)
    is_eq(a.get("result"), {"size": 6, "sha256": "5891b5b522d5df086d0ff0b110fbd9d2"
                                                 "1bb4fc7163af34d08286a2e846f6be03"},
          "file.sha256 works again")
    # A hash in several steps (one worker job per MiB), and its errors.
    big = os.urandom(5 * 1024 * 1024 // 2)
    with open(os.path.join(tmp, "big"), "wb") as f:
        f.write(big)
    a = other.call("file.sha256", {"path": os.path.join(tmp, "big")}, id="h1")
    is_eq(a.get("result"), {"size": len(big), "sha256": hashlib.sha256(big).hexdigest()},
          "file.sha256 of 2.5 MiB in steps")
    a = other.call("file.sha256", {"path": tmp}, id="h2")
    is_eq(a.get("error", {}).get("data", {}).get("errno"), "EISDIR", "file.sha256 of a directory")
    a = other.call("file.sha256", {"path": os.path.join(tmp, "none")}, id="h3")
    is_eq(code(a), -32002, "file.sha256 of a missing file: -32002")
    # New files get 0666 and directories 0777 less the umask the agent started with.
    um = os.umask(0)
    os.umask(um)
    other.call("file.write", {"path": os.path.join(tmp, "new-file"), "data": b64(b"x")}, id="u1")
    other.call("file.mkdir", {"path": os.path.join(tmp, "new-dir")}, id="u2")
    is_eq((os.stat(os.path.join(tmp, "new-file")).st_mode & 0o7777,
           os.stat(os.path.join(tmp, "new-dir")).st_mode & 0o7777),
          (0o666 & ~um, 0o777 & ~um), "new files and directories follow the umask %03o" % um)
    ok(agent.alive(), "agent alive")
    is_eq(agent.stop(), 0, "agent exits 0")
finally:
    fs.unmount()
    ns.stop()
done()
