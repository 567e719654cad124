#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""An agent that exits while a FIFREEZE still runs on a worker does not leave
that filesystem frozen: the exit waits for the freeze to return, and the
worker thaws it (a freeze completing after the process ended would stay
until someone ran fsfreeze -u). FIFREEZE waits for every write in progress
on the filesystem; here one is held in progress by a writer whose source
buffer maps a file on a FUSE mount whose server is stopped (SIGSTOP): the
write faults on it inside write(2). The agent gets SIGTERM meanwhile, then
the FUSE server runs again. The agent runs in its own mount namespace with
an ext4 image on a loop device. Needs root, unshare, nsenter, mkfs.ext4,
fsfreeze, a loop device and FUSE; skipped otherwise."""

import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gltest import (done, is_eq, ok, skip_all, tmpdir, wait_for_listener,  # noqa: E402
                    LineClient, Proc, unix_connect)
from hangfslib import HangFS  # noqa: E402
from nslib import MountNamespace  # noqa: E402

FS_TIMEOUT_S = 2
WRITER = """
import mmap, os, sys
src = os.open(sys.argv[1], os.O_RDONLY)
buf = mmap.mmap(src, 0, prot=mmap.PROT_READ)
dst = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT, 0o644)
print("ready", flush=True)
sys.stdin.readline()
os.write(dst, buf)
"""
if os.geteuid() != 0 or not all(shutil.which(p) for p in
                                ("mkfs.ext4", "unshare", "nsenter", "fsfreeze")):
    skip_all("needs root, mkfs.ext4, fsfreeze, unshare and nsenter")
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
writer = None


def freeze_in_kernel(pid):
    """Whether a thread of pid is inside FIFREEZE."""
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stack" % (pid, t)) as f:
                if "freeze_super" in f.read():
                    return True
        except OSError:
            pass
    return False


try:
    ok(wait_for_listener(sock, 20, agent), "the agent starts in its mount namespace")
    c = LineClient(unix_connect(sock, 10))
    ok(ns.run(["sh", "-c", "head -c 65536 /dev/zero > " + fs.path("src")]),
       "a 64 KiB file on the FUSE mount")
    writer = Proc(ns.prefix + [sys.executable, "-c", WRITER, fs.path("src"),
                               os.path.join(vol, "dst")],
                  stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    is_eq(writer.p.stdout.readline(), b"ready\n", "the writer maps it")
    # Fresh attributes of the FUSE mount point: fs.freeze stat()s every mount
    # point, which must not be what blocks it here.
    ns.run(["stat", fs.mnt])
    fs.stop()
    writer.p.stdin.write(b"go\n")
    writer.p.stdin.flush()
    time.sleep(0.2)
    c.send({"jsonrpc": "2.0", "method": "fs.freeze", "id": 1,
            "params": {"mountpoints": [vol], "timeout_s": 60}})
    deadline = time.monotonic() + 10
    while not freeze_in_kernel(agent.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    ok(freeze_in_kernel(agent.pid), "FIFREEZE waits for the writer on a worker")
    os.kill(agent.pid, signal.SIGTERM)
    a = c.recv(FS_TIMEOUT_S + 10)
    is_eq(a.get("error", {}).get("code"), -32004, "fs.freeze answers -32004")
    time.sleep(2)  # past the shutdown: the agent is exiting
    fs.cont()
    try:
        rc = agent.p.wait(40)
    except subprocess.TimeoutExpired:
        rc = None
    is_eq(rc, 0, "the agent exits once the freeze returned")
    writer.p.wait(10)
    is_eq(ns.run(["fsfreeze", "-u", vol]), False,
          "the volume is not left frozen (fsfreeze -u finds nothing to thaw)")
finally:
    fs.cont()
    ns.run(["fsfreeze", "-u", vol])
    if writer:
        writer.stop()
    fs.unmount()
    agent.stop()
    ns.stop()
done()
