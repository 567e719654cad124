#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A file.channel's data off the agent's event loop: with the server of a FUSE
mount stopped (SIGSTOP) while an upload and a download below it are under
way, the chunk each is writing or reading waits on a worker while another
client's agent.ping answers at once; the download, which sends from a mapping
of its file, waits in its write() on a worker, and neither that nor its page
fault holds up another download of a healthy file (its mmap() and munmap()
included) or a look at the agent's mappings; after SIGCONT both transfers
complete with every byte (SHA-256) and the upload's status line."""

import hashlib
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gltest import done, is_eq, ok, tmpdir  # noqa: E402
from agentlib import Agent, read_until_eof  # noqa: E402
from hangfslib import HangFS  # noqa: E402
from nslib import MountNamespace  # noqa: E402

SIZE = 1 << 20  # hangfs keeps files of at most 1 MiB
tmp = tmpdir()
# The hung mount lives in a mount namespace of its own, with the agent: tests
# running beside this one that list every mount never meet it stopped.
ns = MountNamespace()
fs = HangFS(tmp, prefix=ns.prefix)


def attach(agent, token):
    s = agent.client()
    s.send({"jsonrpc": "2.0", "id": 1, "method": "file.attach", "params": {"token": token}})
    return s, s.recv(10)


try:
    agent = Agent(tmp, prefix=ns.prefix)
    c, other = agent.client(), agent.client()
    up_data = os.urandom(SIZE)
    down_data = os.urandom(SIZE - 12345)
    with open(os.path.join(tmp, "down"), "wb") as f:
        f.write(down_data)
    ok(ns.run(["cp", os.path.join(tmp, "down"), fs.path("down")]),
       "the file to download is on the mount")

    up = c.call("file.channel", {"path": fs.path("up"), "direction": "upload", "size": SIZE},
                id=1).get("result", {})
    down = c.call("file.channel", {"path": fs.path("down"), "direction": "download"},
                  id=2).get("result", {})
    is_eq((up.get("size"), down.get("size")), (SIZE, len(down_data)),
          "an upload and a download channel on the FUSE mount")
    us, a = attach(agent, up["token"])
    is_eq(a.get("result"), {"size": SIZE}, "the upload channel is attached")
    # The first half, with the filesystem answering: nothing is written yet
    # (the agent writes whole MiB chunks), the transfer is under way.
    us.send_raw(up_data[:SIZE // 2])
    time.sleep(0.3)

    fs.stop()
    time.sleep(1.2)  # past FUSE's attribute cache: calls reach the stopped server
    us.send_raw(up_data[SIZE // 2:])  # the chunk is complete: its write blocks
    ds, a = attach(agent, down["token"])
    is_eq(a.get("result"), {"size": len(down_data)}, "the download channel is attached")
    time.sleep(0.5)  # the first chunk's pread blocks

    t1 = time.monotonic()
    is_eq(other.call("agent.ping", id="p", timeout=5).get("result"), "pong",
          "another client's agent.ping answers while both channels wait on the stopped mount")
    st = other.call("file.stat", {"path": tmp}, id="s", timeout=5)
    ok(st.get("result", {}).get("type") == "directory", "... and its file.stat on a healthy path")
    dt = time.monotonic() - t1
    ok(dt < 2, "... at once (%.2fs), not after the filesystem came back" % dt)
    r = subprocess.run(["cat", "/proc/%d/maps" % agent.pid], capture_output=True, text=True,
                       timeout=10)
    ok(fs.path("down") in r.stdout,
       "the waiting download has mapped its file (its write() from the mapping waits)")
    healthy = os.urandom(9 << 20)
    with open(os.path.join(tmp, "healthy"), "wb") as f:
        f.write(healthy)
    t1 = time.monotonic()
    h = other.call("file.channel", {"path": os.path.join(tmp, "healthy"),
                                    "direction": "download"}, id="h", timeout=5)
    hs, a = attach(agent, h.get("result", {}).get("token", ""))
    got = read_until_eof(hs.s, 10)
    got = None if got is None else hs.buf + got
    hs.close()
    is_eq(hashlib.sha256(got or b"").hexdigest(), hashlib.sha256(healthy).hexdigest(),
          "a download of a healthy 9 MiB file completes meanwhile (%s bytes in %.2fs)"
          % (None if got is None else len(got), time.monotonic() - t1))
    ds.s.settimeout(0.2)
    try:
        early = ds.buf + ds.s.recv(1 << 20)
    except TimeoutError:
        early = ds.buf
    is_eq(len(early), 0, "no download byte arrives while its file cannot be read")
    ds.buf = early

    fs.cont()
    st = us.recv(30)
    is_eq(st, {"ok": True, "size": SIZE}, "after SIGCONT the upload's status line: every byte")
    got = read_until_eof(ds.s, 30)
    got = None if got is None else ds.buf + got
    is_eq(hashlib.sha256(got or b"").hexdigest(), hashlib.sha256(down_data).hexdigest(),
          "the download completes and its bytes are right (%s of %d bytes)"
          % (None if got is None else len(got), len(down_data)))
    a = c.call("file.sha256", {"path": fs.path("up")}, id=3, timeout=30)
    is_eq(a.get("result"), {"size": SIZE, "sha256": hashlib.sha256(up_data).hexdigest()},
          "the uploaded file's SHA-256 is right")
    us.close()
    ds.close()
    ok(agent.alive(), "agent alive")
    is_eq(agent.stop(), 0, "agent exits 0")
finally:
    fs.unmount()
    ns.stop()
done()
