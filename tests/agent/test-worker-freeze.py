#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""fs.freeze off the agent's event loop, and who owns a freeze that finishes
late. The agent runs in its own mount namespace with an ext4 image on a loop
device and a FUSE mount whose server is stopped (SIGSTOP): fs.freeze reads
the mount table and stat()s every mount point, which blocks on the FUSE one.
The call answers -32004 after fs_timeout_s while another client is served;
once the FUSE server runs again the freeze completes in the background, shows
in fs.status and is thawed by fs.thaw. A freeze whose auto-thaw timeout passes
while it still runs is undone as soon as it completes. Needs root, unshare,
nsenter, mkfs.ext4, a loop device and FUSE; skipped otherwise."""

import base64
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gltest import (done, is_eq, ok, skip_all, tmpdir, wait_for_listener,  # noqa: E402
                    LineClient, unix_connect)
from hangfslib import HangFS  # noqa: E402
from nslib import MountNamespace  # noqa: E402

FS_TIMEOUT_S = 2
if os.geteuid() != 0 or not all(shutil.which(p) for p in ("mkfs.ext4", "unshare", "nsenter")):
    skip_all("needs root, mkfs.ext4, unshare and nsenter")
tmp = tmpdir()
img = os.path.join(tmp, "fs.img")
with open(img, "wb") as f:
    f.truncate(32 * 1024 * 1024)
if subprocess.run(["mkfs.ext4", "-q", "-F", img], stdout=subprocess.DEVNULL,
                  stderr=subprocess.DEVNULL, timeout=60).returncode != 0:
    skip_all("cannot build an ext4 image")
ns = MountNamespace()
vol = os.path.join(tmp, "vol")
os.mkdir(vol)
if not ns.run(["mount", "-o", "loop", img, vol]):
    ns.stop()
    skip_all("cannot mount a loop device in a mount namespace")
fs = HangFS(tmp, prefix=ns.prefix)
agent, sock = ns.agent(tmp, {"fs_timeout_s": FS_TIMEOUT_S})


def code(answer):
    return answer.get("error", {}).get("code")


def write_vol(c, name, id):
    return c.call("file.write", {"path": os.path.join(vol, name),
                                 "data": base64.b64encode(b"x").decode()}, id=id, timeout=10)


def wait_status(c, pred, timeout=15):
    deadline = time.monotonic() + timeout
    while True:
        st = c.call("fs.status", id="st").get("result", {})
        if pred(st) or time.monotonic() > deadline:
            return st
        time.sleep(0.1)


try:
    ok(wait_for_listener(sock, 20, agent), "the agent starts in its mount namespace")
    c, other = LineClient(unix_connect(sock, 10)), LineClient(unix_connect(sock, 10))
    is_eq(write_vol(c, "before", 1).get("result"), {"written": 1}, "the ext4 volume is writable")

    # 1. A freeze that finishes after its call timed out.
    fs.stop()
    time.sleep(1.2)  # past FUSE's attribute cache: stat() reaches the stopped server
    t0 = time.monotonic()
    c.send({"jsonrpc": "2.0", "method": "fs.freeze", "id": 2,
            "params": {"mountpoints": [vol], "timeout_s": 120}})
    time.sleep(0.3)
    t1 = time.monotonic()
    is_eq(other.call("agent.ping", id="p", timeout=5).get("result"), "pong",
          "another client is served while fs.freeze is stuck on the hung mount")
    dt = time.monotonic() - t1
    # not a speed target: a blocked loop would not answer until the fs is back
    ok(dt < FS_TIMEOUT_S, "... before the freeze's timeout (%.2fs)" % dt)
    st = other.call("fs.status", id="s", timeout=5).get("result", {})
    ok(st.get("frozen") is False and st.get("freezing") is True,
       "fs.status: not frozen yet, freezing (%s)" % st)
    a = other.call("fs.freeze", {"mountpoints": [vol], "timeout_s": 60}, id="f2", timeout=5)
    is_eq(a.get("error", {}).get("data", {}).get("errno"), "EBUSY",
          "a second fs.freeze meanwhile: EBUSY")
    a = c.recv(FS_TIMEOUT_S + 20)
    is_eq((a.get("id"), code(a)), (2, -32004),
          "fs.freeze answers -32004 (after %.1fs)" % (time.monotonic() - t0))
    fs.cont()
    # The mount shows as frozen the moment FIFREEZE returned, "freezing" until
    # the loop has seen the job end: wait for both.
    st = wait_status(other, lambda s: s.get("frozen") and "freezing" not in s)
    is_eq((st.get("frozen"), st.get("mountpoints"), "freezing" in st), (True, [vol], False),
          "the late freeze is recorded: fs.status shows the volume frozen")
    a = write_vol(other, "while-frozen", "w")
    is_eq(a.get("error", {}).get("data", {}).get("errno"), "EBUSY",
          "a write to the frozen volume answers EBUSY")
    # While something is frozen every write checks its path first (a stat):
    # on the hung mount that check costs only its caller too.
    fs.stop()
    time.sleep(1.2)
    t0 = time.monotonic()
    c.send({"jsonrpc": "2.0", "method": "file.write", "id": 4,
            "params": {"path": fs.path("x"), "data": "eA=="}})
    time.sleep(0.3)
    is_eq(other.call("agent.ping", id="p2", timeout=5).get("result"), "pong",
          "while frozen, a write's freeze check stuck on the hung mount blocks nobody else")
    a = c.recv(FS_TIMEOUT_S + 20)
    is_eq((a.get("id"), code(a)), (4, -32004),
          "... and answers -32004 (after %.1fs)" % (time.monotonic() - t0))
    fs.cont()
    is_eq(other.call("fs.thaw", id="t").get("result"), {"thawed": 1},
          "fs.thaw thaws the late freeze")
    is_eq(write_vol(other, "after", "w2").get("result"), {"written": 1},
          "the volume is writable again")

    # 2. The auto-thaw timeout passes while the freeze still runs: undone when it completes.
    fs.stop()
    time.sleep(1.2)
    t0 = time.monotonic()
    c.send({"jsonrpc": "2.0", "method": "fs.freeze", "id": 3,
            "params": {"mountpoints": [vol], "timeout_s": 3}})
    a = c.recv(FS_TIMEOUT_S + 20)
    is_eq((a.get("id"), code(a)), (3, -32004), "a freeze with a 3 s auto-thaw: -32004")
    time.sleep(max(0, t0 + 4.5 - time.monotonic()))  # the auto-thaw fires meanwhile
    fs.cont()
    st = wait_status(other, lambda s: "freezing" not in s)
    ok(st.get("frozen") is False and "freezing" not in st,
       "the freeze that completed after its auto-thaw left nothing frozen (%s)" % st)
    is_eq(write_vol(other, "after2", "w3").get("result"), {"written": 1},
          "... and the volume is writable")

    # 3. While something is frozen, file.close checks its handle's path for the
    # freeze on a worker too: on the hung mount that check costs only its call.
    h = c.call("file.open", {"path": fs.path("up")}, id=5, timeout=10).get("result", {})
    h = h.get("handle")
    ok(isinstance(h, int), "file.open on the FUSE mount: a handle")
    hv = c.call("file.open", {"path": os.path.join(vol, "up")}, id=8, timeout=10)
    hv = hv.get("result", {}).get("handle")
    a = c.call("file.write", {"handle": hv, "data": base64.b64encode(b"abc").decode()}, id=9,
               timeout=10)
    is_eq(a.get("result"), {}, "a handle on the volume, written into")
    a = c.call("fs.freeze", {"mountpoints": [vol], "timeout_s": 120}, id=6, timeout=10)
    is_eq(a.get("result", {}).get("mountpoints"), [vol], "the volume is frozen again")
    fs.stop()
    time.sleep(1.2)
    t0 = time.monotonic()
    c.send({"jsonrpc": "2.0", "method": "file.close", "id": 7, "params": {"handle": h}})
    time.sleep(0.3)
    try:
        pong = other.call("agent.ping", id="p3", timeout=FS_TIMEOUT_S + 3).get("result")
    except OSError:
        pong = None
    is_eq(pong, "pong", "while frozen, file.close stuck on the hung mount blocks nobody else")
    a = c.recv(FS_TIMEOUT_S + 20)
    is_eq((a.get("id"), code(a)), (7, -32004),
          "... and answers -32004 (after %.1fs)" % (time.monotonic() - t0))
    a = c.call("file.write", {"handle": h, "data": "eA=="}, id=10, timeout=10)
    is_eq(code(a), -32003, "a write into the handle whose close still runs: -32003")
    a = c.call("file.close", {"handle": hv}, id=11, timeout=10)
    is_eq(a.get("error", {}).get("data", {}).get("errno"), "EBUSY",
          "file.close of a handle on the frozen volume: EBUSY")
    fs.cont()
    is_eq(other.call("fs.thaw", id="t3", timeout=10).get("result"), {"thawed": 1},
          "fs.thaw after the close")
    is_eq(c.call("file.close", {"handle": hv}, id=12, timeout=10).get("result"), {"size": 3},
          "... which kept its handle: closed after the thaw")
    st = c.call("file.stat", {"path": os.path.join(vol, "up")}, id=13, timeout=10)
    is_eq(st.get("result", {}).get("size"), 3, "... and the file is in place")
    is_eq(agent.stop(), 0, "agent exits 0")
finally:
    fs.unmount()
    agent.stop()
    ns.stop()
done()
