#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""exec's user lookup off the agent's event loop: NSS can hang (LDAP, sssd,
a hung mount). The agent runs in its own mount namespace whose /etc/passwd is
a FIFO, so getpwnam_r() blocks in open() until the test writes the file. An
exec.run with "user" then costs only its caller (-32004 after fs_timeout_s)
while another client is served, exec.run without a user included; once the
lookup completes, the child is forked and runs as that user. Needs root,
unshare and nsenter; skipped otherwise."""

import errno
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gltest import (Proc, build_path, done, is_eq, ok, skip_all, tmpdir,  # noqa: E402
                    wait_for_listener, LineClient, unix_connect)

FS_TIMEOUT_S = 2
PASSWD = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
if os.geteuid() != 0 or not all(shutil.which(p) for p in ("unshare", "nsenter")):
    skip_all("needs root, unshare and nsenter")
tmp = tmpdir()
holder = Proc(["unshare", "--mount", "--propagation", "private", "sleep", "600"])
ns = ["nsenter", "-t", str(holder.pid), "-m"]
deadline = time.monotonic() + 10
while os.readlink("/proc/%d/ns/mnt" % holder.pid) == os.readlink("/proc/self/ns/mnt"):
    if time.monotonic() > deadline:
        skip_all("cannot make a mount namespace")
    time.sleep(0.05)
fifo = os.path.join(tmp, "passwd")
os.mkfifo(fifo, 0o644)

sock = os.path.join(tmp, "agent.sock")
conf = os.path.join(tmp, "agent.conf")
with open(conf, "w") as f:
    f.write('{"fs_timeout_s": %d, "plugin_dir": "%s"}' % (FS_TIMEOUT_S, os.path.join(tmp, "none")))
agent = Proc(ns + [build_path("agent", "guestlink-agent"), "--listen", "unix:" + sock,
                   "--config", conf])


def feed_passwd(timeout=10):
    """Write the file to the reader blocked on the FIFO; False when none came."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as e:
            if e.errno != errno.ENXIO or time.monotonic() > deadline:
                return False
            time.sleep(0.05)
    os.write(fd, PASSWD)
    os.close(fd)
    return True


def code(answer):
    return answer.get("error", {}).get("code")


try:
    ok(wait_for_listener(sock, 20, agent), "the agent starts in its mount namespace")
    c, other = LineClient(unix_connect(sock, 10)), LineClient(unix_connect(sock, 10))
    a = c.call("exec.run", {"argv": ["id", "-u"], "user": "nobody"}, id=1)
    is_eq(a.get("result", {}).get("stdout"), "NjU1MzQK", "exec.run as nobody: uid 65534")

    r = subprocess.run(ns + ["mount", "--bind", fifo, "/etc/passwd"], timeout=30)
    if r.returncode != 0:
        skip_all("cannot bind-mount a FIFO over /etc/passwd")
    t0 = time.monotonic()
    c.send({"jsonrpc": "2.0", "method": "exec.run", "id": 2,
            "params": {"argv": ["id", "-u"], "user": "nobody"}})
    time.sleep(0.3)
    t1 = time.monotonic()
    is_eq(other.call("agent.ping", id="p", timeout=5).get("result"), "pong",
          "another client is served while a user lookup hangs")
    a = other.call("exec.run", {"argv": ["echo", "hi"]}, id="e", timeout=5)
    is_eq(a.get("result", {}).get("stdout"), "aGkK", "... and its exec.run without a user")
    dt = time.monotonic() - t1
    # not a speed target: a blocked loop would not answer until the lookup returns
    ok(dt < FS_TIMEOUT_S, "... before the lookup's timeout (%.2fs)" % dt)
    a = c.recv(FS_TIMEOUT_S + 20)
    is_eq((a.get("id"), code(a)), (2, -32004),
          "the exec.run with a hung user lookup answers -32004 (after %.1fs)"
          % (time.monotonic() - t0))
    ok(feed_passwd(), "the timed-out lookup was still waiting for /etc/passwd")

    # A lookup that completes: the fork follows it, as that user.
    c.send({"jsonrpc": "2.0", "method": "exec.run", "id": 3,
            "params": {"argv": ["id", "-u"], "user": "nobody"}})
    ok(feed_passwd(), "the next lookup reads /etc/passwd")
    a = c.recv(20)
    is_eq((a.get("id"), a.get("result", {}).get("stdout")), (3, "NjU1MzQK"),
          "after the lookup the child runs as nobody")
    is_eq(agent.stop(), 0, "agent exits 0")
finally:
    agent.stop()
    holder.stop()
done()
