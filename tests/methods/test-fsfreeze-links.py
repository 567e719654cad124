#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""While a filesystem is frozen, file.* calls that would change it answer
EBUSY instead of blocking the agent. The path check followed symlinks: a
symlink on the frozen filesystem pointing elsewhere passed it, and unlinking
the link (or writing the file aside next to it) blocked the whole agent,
including the timer that was to thaw the filesystem. Likewise an upload
through a file channel that was under way when the freeze came. Needs root
and a loop device for an ext4 image; skipped otherwise."""

import json
import os
import shutil
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gltest as g  # noqa: E402
from agentlib import Agent, b64, error_code  # noqa: E402

if os.geteuid() != 0 or not shutil.which("mkfs.ext4") or not shutil.which("fsfreeze"):
    g.skip_all("needs root, mkfs.ext4 and fsfreeze")

base = g.tmpdir()
img = os.path.join(base, "fs.img")
mnt = os.path.join(base, "mnt")
other = os.path.join(base, "other")
os.mkdir(mnt)
os.mkdir(other)
with open(img, "wb") as f:
    f.truncate(16 * 1024 * 1024)


def run(*argv):
    return subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          timeout=30).returncode == 0


if not run("mkfs.ext4", "-q", "-F", img) or not run("mount", "-o", "loop", img, mnt):
    g.skip_all("cannot mount a loop device here")

agent = None
try:
    target = os.path.join(other, "target")
    with open(target, "w") as f:
        f.write("x")
    link = os.path.join(mnt, "link")
    os.symlink(target, link)
    os.symlink(other, os.path.join(mnt, "dirlink"))

    agent = Agent()
    c = agent.client()
    r = c.result("fs.freeze", {"mountpoints": [mnt], "timeout_s": 60})
    g.is_eq(r.get("frozen"), True, "the loop filesystem is frozen")

    def answered(method, params, what):
        try:
            a = c.call(method, params, timeout=5)
        except (TimeoutError, OSError) as e:
            g.diag("%s: %r" % (method, e))
            a = {}
        g.ok(error_code(a) == -32000 and a["error"].get("data", {}).get("errno") == "EBUSY",
             "%s answers EBUSY at once (%r)" % (what, a.get("error")))
        return a

    answered("file.remove", {"path": link}, "removing a symlink on the frozen fs")
    answered("file.write", {"path": link, "data": b64(b"new")},
             "replacing a symlink on the frozen fs")
    answered("file.rename", {"from": link, "to": os.path.join(other, "moved")},
             "renaming a symlink off the frozen fs")
    a = c.call("file.write", {"path": os.path.join(mnt, "dirlink", "fine"), "data": b64(b"ok")},
               timeout=5)
    g.ok("result" in a, "a write through a symlink into another filesystem is allowed")
    g.is_eq(c.result("fs.thaw", timeout=5).get("thawed"), 1, "fs.thaw thaws it")
    g.ok(os.path.islink(link), "the symlink is still there")

    # An upload under way when the freeze comes.
    dest = os.path.join(mnt, "upload")
    tok = c.result("file.channel", {"path": dest, "direction": "upload", "size": 4 << 20})["token"]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(agent.sock)
    s.sendall(json.dumps({"jsonrpc": "2.0", "method": "file.attach", "params": {"token": tok},
                          "id": 1}).encode() + b"\n")
    got = b""
    while b"\n" not in got:
        got += s.recv(4096)
    s.sendall(b"a" * (1 << 20))
    c.result("agent.ping", timeout=5)  # the first MiB was taken
    c.result("fs.freeze", {"mountpoints": [mnt], "timeout_s": 60}, timeout=5)
    try:
        s.sendall(b"b" * (1 << 20))
    except OSError:
        pass
    try:
        a = c.call("agent.ping", timeout=5)
    except (TimeoutError, OSError) as e:
        g.diag("ping: %r" % e)
        a = {}
    g.ok("result" in a, "the agent answers while an upload meets a frozen filesystem")
    status = b""
    try:
        while not status.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            status += chunk
    except OSError as e:
        g.diag("status: %r" % e)
    s.close()
    g.is_eq(json.loads(status or b"{}").get("errno"), "EBUSY",
            "the upload ends with EBUSY (%r)" % status)
    try:
        a = c.call("agent.ping", timeout=5)
    except (TimeoutError, OSError) as e:
        g.diag("ping: %r" % e)
        a = {}
    g.ok("result" in a, "the agent still answers after dropping the upload")
    g.is_eq(c.result("fs.thaw", timeout=5).get("thawed"), 1, "fs.thaw thaws the filesystem")
    run("fsfreeze", "-u", mnt)
    c.result("fs.thaw", timeout=10)
    g.ok(not os.path.exists(dest), "no partial file appears")
    c.close()
finally:
    run("fsfreeze", "-u", mnt)
    if agent:
        g.is_eq(agent.stop(), 0, "the agent exits 0")
    run("umount", mnt)
g.done()
