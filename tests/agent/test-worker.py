#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Blocking syscalls run off the agent's event loop: with the server of a
FUSE mount stopped (SIGSTOP), a file.stat, file.list, file.read or file.write below it
costs only its caller, who gets -32004 after fs_timeout_s, while other
clients (and other file calls) are served at once."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gltest import diag, done, is_eq, ok, tmpdir  # noqa: E402
from agentlib import Agent  # noqa: E402
from hangfslib import HangFS  # noqa: E402
from nslib import MountNamespace  # noqa: E402

tmp = tmpdir()
# The hung mount lives in a mount namespace of its own, with the agent: tests
# running beside this one that list every mount never meet it stopped.
ns = MountNamespace()
fs = HangFS(tmp, prefix=ns.prefix)
mnt = fs.mnt


FS_TIMEOUT_S = 2
try:
    agent = Agent(tmp, config={"fs_timeout_s": FS_TIMEOUT_S}, prefix=ns.prefix)
    stuck, other = agent.client(), agent.client()

    a = stuck.call("file.read", {"path": os.path.join(mnt, "f")})
    is_eq(a.get("result", {}).get("data"), "aGVsbG8K", "file.read through the FUSE mount works")

    fs.stop()
    t0 = time.monotonic()
    calls = [("file.stat", {"path": os.path.join(mnt, "f")}),
             ("file.list", {"path": mnt}),
             ("file.read", {"path": os.path.join(mnt, "f")}),
             ("file.write", {"path": os.path.join(mnt, "new"), "data": "aGk="})]
    for i, (method, params) in enumerate(calls):
        stuck.send({"jsonrpc": "2.0", "method": method, "params": params, "id": i})
    time.sleep(0.3)  # let them reach the workers and block

    # Another client: served at once, including a file call on a healthy path.
    t1 = time.monotonic()
    is_eq(other.call("agent.ping", id="p", timeout=5).get("result"), "pong",
          "another client's agent.ping answers while four calls hang")
    st = other.call("file.stat", {"path": tmp}, id="s", timeout=5)
    ok(st.get("result", {}).get("type") == "directory",
       "another client's file.stat on a healthy path answers too")
    w = other.call("file.write", {"path": os.path.join(tmp, "healthy"), "data": "aGk="}, id="w",
                   timeout=5)
    ok(w.get("result", {}).get("written") == 2, "... and a file.write on a healthy path")
    ping_dt = time.monotonic() - t1
    # not a speed target: a blocked loop would not answer until the fs is back
    ok(ping_dt < FS_TIMEOUT_S, "... before the stuck calls' timeout (%.2fs)" % ping_dt)

    answers = [stuck.recv(FS_TIMEOUT_S + 20) for _ in calls]
    dt = time.monotonic() - t0
    is_eq(sorted((x.get("id"), x.get("error", {}).get("code")) for x in answers),
          [(0, -32004), (1, -32004), (2, -32004), (3, -32004)],
          "the stuck calls answer -32004 (after %.1fs, timeout %ds)" % (dt, FS_TIMEOUT_S))
    ok(dt >= FS_TIMEOUT_S, "not before fs_timeout_s")
    is_eq(stuck.call("agent.ping", id=9).get("result"), "pong",
          "the stuck caller's connection still serves")

    # system.filesystems statvfs()es the FUSE mount: it times out, the agent does not hang
    a = other.call("system.filesystems", id="fs", timeout=FS_TIMEOUT_S + 20)
    is_eq(a.get("error", {}).get("code"), -32004, "system.filesystems with a hung mount: -32004")

    fs.cont()
    a = stuck.call("file.read", {"path": os.path.join(mnt, "f")}, id=10)
    is_eq(a.get("result", {}).get("data"), "aGVsbG8K", "after SIGCONT the mount answers again")
    # The calls stuck before SIGCONT finish first; under load the first listing
    # after them may still take longer than fs_timeout_s: retry only that.
    for attempt in range(10):
        a = other.call("system.filesystems", id="fs2-%d" % attempt, timeout=FS_TIMEOUT_S + 20)
        if a.get("error", {}).get("code") != -32004:
            break
    diag("system.filesystems after SIGCONT: %s" % json.dumps(a)[:300])
    ok(any(f.get("mountpoint") == mnt for f in a.get("result", {}).get("filesystems", [])),
       "system.filesystems lists the mount again")
    info = other.call("agent.info", id="i")
    ok("result" in info, "agent.info answers")
    ok(agent.alive(), "agent alive")
    is_eq(agent.stop(), 0, "agent exits 0")
finally:
    fs.unmount()
    ns.stop()
done()
