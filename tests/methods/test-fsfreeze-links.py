#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""While a filesystem is frozen, file.* calls that would change it answer
EBUSY instead of blocking the agent. The path check followed symlinks: a
symlink on the frozen filesystem pointing elsewhere passed it, and unlinking
the link (or writing the file aside next to it) blocked the whole agent,
including the timer that was to thaw the filesystem. Needs root and a loop
device for an ext4 image; skipped otherwise."""

import os
import shutil
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
    c.close()
finally:
    run("fsfreeze", "-u", mnt)
    if agent:
        g.is_eq(agent.stop(), 0, "the agent exits 0")
    run("umount", mnt)
g.done()
