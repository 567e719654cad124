#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""exec's user lookup off the agent's event loop: NSS can hang (LDAP, sssd,
a hung mount). The agent runs in its own mount namespace whose /etc/passwd is
a file on a FUSE mount (tests/agent/hangfs) whose server the test stops
(SIGSTOP), so getpwnam_r() blocks. An exec.run with "user" then costs only
its caller (-32004 after fs_timeout_s) while another client is served,
exec.run without a user included; with the server running again a lookup
completes and the child is forked as that user. user.ssh-keys looks its user
up the same way. Needs root, unshare, nsenter
and FUSE; skipped otherwise."""

import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gltest import (done, is_eq, ok, skip_all, tmpdir, wait_for_listener,  # noqa: E402
                    LineClient, unix_connect)
from hangfslib import HangFS  # noqa: E402
from nslib import MountNamespace  # noqa: E402

FS_TIMEOUT_S = 2
# A user only this file knows: nss-systemd (after "files") synthesizes root and
# nobody, so a lookup of those could succeed without reading the file.
PASSWD = "root:x:0:0:root:/root:/bin/sh\\ngltest:x:4242:4242:gltest:/nonexistent:/bin/false\\n"
if os.geteuid() != 0 or not all(shutil.which(p) for p in ("unshare", "nsenter")):
    skip_all("needs root, unshare and nsenter")
tmp = tmpdir()
ns = MountNamespace()
fs = HangFS(tmp, prefix=ns.prefix)
agent, sock = ns.agent(tmp, {"fs_timeout_s": FS_TIMEOUT_S})


def code(answer):
    return answer.get("error", {}).get("code")


def sleepers(ppid):
    """PIDs of the `sleep 30` children of ppid."""
    pids = []
    for d in os.listdir("/proc"):
        try:
            with open("/proc/%s/stat" % d) as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) != ppid:
                    continue
            with open("/proc/%s/cmdline" % d, "rb") as f:
                if f.read() == b"sleep\x0030\x00":
                    pids.append(int(d))
        except (OSError, ValueError, IndexError):
            pass
    return pids


try:
    ok(wait_for_listener(sock, 20, agent), "the agent starts in its mount namespace")
    c, other = LineClient(unix_connect(sock, 10)), LineClient(unix_connect(sock, 10))
    a = c.call("exec.run", {"argv": ["id", "-u"], "user": "nobody"}, id=1)
    is_eq(a.get("result", {}).get("stdout"), "NjU1MzQK", "exec.run as nobody: uid 65534")
    ok(ns.run(["sh", "-c", "printf '%s' > %s" % (PASSWD, fs.path("passwd"))]) and
       ns.run(["mount", "--bind", fs.path("passwd"), "/etc/passwd"]),
       "the agent's /etc/passwd is on the FUSE mount")

    fs.stop()
    time.sleep(1.2)  # past FUSE's attribute cache: the lookup reaches the stopped server
    t0 = time.monotonic()
    c.send({"jsonrpc": "2.0", "method": "exec.run", "id": 2,
            "params": {"argv": ["id", "-u"], "user": "gltest"}})
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

    # The user.* methods look their user up the same way (read-only here:
    # the namespace's /etc/shadow is the real one).
    t0 = time.monotonic()
    c.send({"jsonrpc": "2.0", "method": "user.ssh-keys", "id": 4, "params": {"user": "gltest"}})
    time.sleep(0.3)
    is_eq(other.call("agent.ping", id="p2", timeout=5).get("result"), "pong",
          "another client is served while user.ssh-keys' lookup hangs")
    a = c.recv(FS_TIMEOUT_S + 20)
    is_eq((a.get("id"), code(a)), (4, -32004),
          "user.ssh-keys with a hung lookup answers -32004 (after %.1fs)"
          % (time.monotonic() - t0))

    # A client that leaves while its lookup hangs: once the lookup completes
    # (before the call's timeout) nothing is started for it.
    gone = LineClient(unix_connect(sock, 10))
    gone.send({"jsonrpc": "2.0", "method": "exec.start", "id": 6,
               "params": {"argv": ["sleep", "30"], "user": "gltest"}})
    time.sleep(0.2)
    gone.close()
    time.sleep(0.2)
    fs.cont()
    is_eq(other.call("exec.run", {"argv": ["id", "-u"], "user": "gltest"}, id="u",
                     timeout=10).get("result", {}).get("stdout"), "NDI0Mgo=",
          "the lookups complete again")
    left = sleepers(agent.pid)
    for pid in left:
        os.kill(pid, 9)
    is_eq(left, [], "an exec.start whose client left during its user lookup starts nothing")

    # A lookup that completes: the fork follows it, as that user.
    fs.cont()
    a = c.call("exec.run", {"argv": ["id", "-u"], "user": "gltest"}, id=3, timeout=20)
    is_eq(a.get("result", {}).get("stdout"), "NDI0Mgo=",
          "after the lookup the child runs as that user (uid 4242)")
    a = c.call("user.ssh-keys", {"user": "gltest"}, id=5, timeout=20)
    is_eq(a.get("result"), {"keys": []}, "user.ssh-keys after its lookup (no home: no keys)")
    is_eq(agent.stop(), 0, "agent exits 0")
finally:
    fs.unmount()
    agent.stop()
    ns.stop()
done()
