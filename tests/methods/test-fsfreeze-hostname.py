#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""system.set-hostname with persistent while the filesystem of /etc is
frozen answers EBUSY and changes nothing, instead of blocking the agent (and
its auto-thaw timer) in the write of /etc/hostname. The agent runs in its
own mount and UTS namespaces, with a copy of /etc on a loop-mounted ext4
image. Needs root, unshare and a loop device; skipped otherwise."""

import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gltest as g  # noqa: E402
from agentlib import Client, error_code  # noqa: E402

if os.geteuid() != 0 or not all(shutil.which(p) for p in ("mkfs.ext4", "fsfreeze", "unshare")):
    g.skip_all("needs root, mkfs.ext4, fsfreeze and unshare")

base = g.tmpdir()
img = os.path.join(base, "etc.img")
with open(img, "wb") as f:
    f.truncate(64 * 1024 * 1024)
# The image starts as a copy of /etc, so that the agent finds what it needs there.
if subprocess.run(["mkfs.ext4", "-q", "-F", "-d", "/etc", img], stdout=subprocess.DEVNULL,
                  stderr=subprocess.DEVNULL, timeout=60).returncode != 0:
    g.skip_all("cannot build an ext4 image of /etc")
if subprocess.run(["unshare", "--mount", "--uts", "--propagation", "private", "sh", "-c",
                   "mount -o loop \"$0\" /etc", img], stdout=subprocess.DEVNULL,
                  stderr=subprocess.DEVNULL, timeout=30).returncode != 0:
    g.skip_all("cannot mount a loop device in a new mount namespace")

sock = os.path.join(base, "agent.sock")
conf = os.path.join(base, "agent.conf")
with open(conf, "w") as f:
    f.write('{"plugin_dir": "%s"}' % os.path.join(base, "none"))
log = open(os.path.join(base, "agent.log"), "w")
agent = g.Proc(["unshare", "--mount", "--uts", "--propagation", "private", "sh", "-c",
                "mount -o loop \"$0\" /etc && exec \"$@\"", img,
                g.build_path("agent/guestlink-agent"), "--listen", "unix:" + sock,
                "--config", conf], stderr=log)
if not g.wait_for_listener(sock, 20, agent):
    agent.stop()
    log.close()
    with open(log.name) as f:
        g.ok(False, "the agent starts in its namespaces: " + f.read()[-300:])
    g.done()
c = Client(g.unix_connect(sock, 30))
try:
    before = c.result("system.hostname")["hostname"]
    r = c.result("fs.freeze", {"mountpoints": ["/etc"], "timeout_s": 60})
    g.is_eq(r.get("mountpoints"), ["/etc"], "the agent's /etc is frozen")
    try:
        a = c.call("system.set-hostname", {"hostname": "frozen-etc", "persistent": True},
                   timeout=5)
    except (TimeoutError, OSError) as e:
        g.diag("set-hostname: %r" % e)
        a = {}
    g.ok(error_code(a) == -32000 and a["error"].get("data", {}).get("errno") == "EBUSY",
         "set-hostname persistent answers EBUSY at once (%r)" % a.get("error"))
    try:
        now = c.call("system.hostname", timeout=5).get("result", {}).get("hostname")
    except (TimeoutError, OSError):
        now = None
    g.is_eq(now, before, "the hostname is unchanged")
finally:
    # Thaw from inside the agent's namespace whatever happened (a hung agent
    # cannot), then let the agent forget its freeze.
    subprocess.run(["nsenter", "-t", str(agent.pid), "-m", "fsfreeze", "-u", "/etc"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
g.is_eq(c.result("fs.thaw", timeout=10).get("thawed"), 1, "fs.thaw")
r = c.call("system.set-hostname", {"hostname": "thawed-etc", "persistent": True}, timeout=10)
g.ok("result" in r, "after the thaw, set-hostname persistent works (in the agent's namespaces)")
c.close()
g.is_eq(agent.stop(), 0, "the agent exits 0")
g.done()
