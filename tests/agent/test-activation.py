#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Real socket activation: systemd-socket-activate hands the agent its Unix
listener through LISTEN_FDS; a NOTIFY_SOCKET of the test's own receives
READY=1, WATCHDOG=1, and STOPPING=1 on SIGTERM; SIGHUP reloads the policy."""

import json
import os
import shutil
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gltest import LineClient, Proc, done, is_eq, ok, skip_all, tmpdir, unix_connect, \
    wait_for_path  # noqa: E402
from agentlib import agent_path  # noqa: E402

activate = shutil.which("systemd-socket-activate")
if not activate:
    skip_all("systemd-socket-activate not installed")

tmp = tmpdir()
sock = os.path.join(tmp, "agent.sock")
conf = os.path.join(tmp, "agent.conf")
notify_path = os.path.join(tmp, "notify")

notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
notify.bind(notify_path)


def write_conf(text):
    with open(conf + ".tmp", "w") as f:
        f.write(text)
    os.rename(conf + ".tmp", conf)


def wait_notify(word, timeout=10):
    """Collect datagrams until one carries the line `word`; returns all seen."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        notify.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            msg = notify.recv(4096).decode()
        except socket.timeout:
            break
        seen.append(msg)
        if word in msg.split("\n"):
            return seen
    return None


def call(method, params=None, id=1):
    c = LineClient(unix_connect(sock))
    try:
        return c.call(method, params, id)
    finally:
        c.close()


write_conf("{}")
proc = Proc([activate, "-l", sock, "-E", "NOTIFY_SOCKET=" + notify_path,
             "-E", "WATCHDOG_USEC=200000", "--", agent_path(), "--config", conf])
ok(wait_for_path(sock, 10, proc), "systemd-socket-activate listens")

# The first connection makes systemd-socket-activate exec the agent with LISTEN_FDS.
first = LineClient(unix_connect(sock))
is_eq(first.call("agent.ping").get("result"), "pong", "socket-activated agent answers")
ok(wait_notify("READY=1") is not None, "NOTIFY_SOCKET receives READY=1")
with open("/proc/%d/cmdline" % proc.pid, "rb") as f:
    ok(f.read().split(b"\0")[0].endswith(b"guestlink-agent"),
       "the agent runs in the activated process (same PID)")
ok(wait_notify("WATCHDOG=1", 2) is not None, "WATCHDOG=1 sent when WATCHDOG_USEC is set")
with open("/proc/%d/fdinfo/3" % proc.pid) as f:
    flags = [int(line.split()[1], 8) for line in f if line.startswith("flags:")]
ok(flags and flags[0] & 0o2000000, "the listener from systemd is made O_CLOEXEC")
is_eq(call("agent.echo", [1]).get("result"), [1], "a second connection works too")

# SIGHUP reload changes the policy.
write_conf('{"deny": ["agent.echo"]}')
os.kill(proc.pid, signal.SIGHUP)
ok(wait_notify("READY=1") is not None, "READY=1 again after the reload")
is_eq(call("agent.echo", [1]).get("error", {}).get("code"), -32001,
      "after SIGHUP the new deny rule applies")
is_eq(first.call("agent.echo", [2], id=2).get("error", {}).get("code"), -32001,
      "also on a connection opened before the reload")

write_conf('{"deny": ["agent.echo"], "bogus": 1}')
os.kill(proc.pid, signal.SIGHUP)
ok(wait_notify("READY=1") is not None, "a reload with a bad file completes")
ok(proc.alive(), "a bad config does not stop the agent")
is_eq(call("agent.echo", [1]).get("error", {}).get("code"), -32001,
      "a bad config keeps the old policy")
is_eq(call("agent.ping").get("result"), "pong", "and the agent still serves")

write_conf("{}")
os.kill(proc.pid, signal.SIGHUP)
ok(wait_notify("READY=1") is not None, "reloaded again")
is_eq(call("agent.echo", [3]).get("result"), [3], "the deny rule is gone after reload")

# SIGTERM: STOPPING=1, the in-flight call still finishes, exit 0.
first.send({"jsonrpc": "2.0", "method": "agent.ping", "params": {"delay_ms": 700}, "id": 7})
time.sleep(0.2)
t0 = time.monotonic()
os.kill(proc.pid, signal.SIGTERM)
ok(wait_notify("STOPPING=1") is not None, "NOTIFY_SOCKET receives STOPPING=1 after SIGTERM")
try:
    refused = False
    s = unix_connect(sock, 2)
    s.close()
except OSError:
    refused = True
ok(refused, "no new connections after SIGTERM")
a = first.recv(30)
is_eq((a.get("id"), a.get("result")), (7, "pong"), "the in-flight call finished after SIGTERM")
first.close()
t_last = time.monotonic()
status = proc.p.wait(60)
is_eq(status, 0, "agent exits 0 after SIGTERM")
# Promptly: once its last client left, the agent does not wait out its flush
# timer (CONN_FLUSH_TIMEOUT_S, 5 s in agent/conn.c), the only timer that could
# still hold it. Counted from that moment, not from SIGTERM: the in-flight
# call's 700 ms and a loaded machine's delays before it are not the agent's.
ok(time.monotonic() - t_last < 5,
   "and promptly: %.2f s after its last client left (its flush timer is 5 s; %.2f s after "
   "SIGTERM)" % (time.monotonic() - t_last, time.monotonic() - t0))
proc.stop()
notify.close()
done()
