#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Download channels at the edges of the mapping path: sizes around a page
and a 4 MiB window, a file that grows while it is sent, clients that leave
mid-window or stop reading while other calls must still be answered, and
the agent's descriptors afterwards. Against the real agent over a Unix
socket, files in a scratch directory only."""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gltest import done, is_eq, ok, tmpdir  # noqa: E402
from agentlib import Agent, read_until_eof  # noqa: E402

MIB = 1 << 20
WINDOW = 4 * MIB
tmp = tmpdir()


def new_file(name, size):
    data = os.urandom(size)
    path = os.path.join(tmp, name)
    with open(path, "wb") as f:
        f.write(data)
    return path, data


def attach(agent, c, path, name):
    """file.channel + file.attach: (the attached client, size announced)."""
    r = c.call("file.channel", {"path": path, "direction": "download"}).get("result", {})
    ds = agent.client()
    ds.send({"jsonrpc": "2.0", "id": 1, "method": "file.attach",
             "params": {"token": r.get("token", "")}})
    is_eq(ds.recv(10).get("result"), {"size": r.get("size")}, "%s: attached" % name)
    return ds, r.get("size")


def fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


agent = Agent(tmp)
c = agent.client()
small, sdata = new_file("small", 100)
# A first worker job: the pool's own descriptors are there before counting.
ok("result" in c.call("file.read", {"path": small}, id="r0", timeout=20), "file.read answers")
fds_before = fds(agent.pid)

# 1. Sizes around a page and a window: every byte, then EOF.
for size in (1, 4095, 4096, 4097, WINDOW - 1, WINDOW, WINDOW + 1, 2 * WINDOW):
    path, data = new_file("s%d" % size, size)
    ds, announced = attach(agent, c, path, "size %d" % size)
    got = ds.buf + (read_until_eof(ds.s, 30) or b"")
    ds.close()
    is_eq((announced, len(got), got == data), (size, size, True),
          "a file of %d bytes arrives whole and the channel ends" % size)

# 2. A file that grows while it is sent: the size announced at file.channel,
# no byte of what was appended.
path, data = new_file("grow", 2 * WINDOW + 100)
ds, announced = attach(agent, c, path, "grow")
ds.s.settimeout(10)
first = ds.buf + ds.s.recv(4096)
ds.buf = b""
with open(path, "ab") as f:
    f.write(b"\xaa" * (3 * WINDOW))
rest = read_until_eof(ds.s, 30)
ds.close()
got = first + (rest or b"")
is_eq((announced, len(got), got == data), (len(data), len(data), True),
      "a file that grows mid-download sends its size at file.channel, exactly")

# 3. Clients that leave mid-window (several at once) cost nothing lasting.
chans = []
for i in range(6):
    p, _ = new_file("leave%d" % i, 3 * WINDOW)
    ds, _ = attach(agent, c, p, "leave %d" % i)
    ds.s.settimeout(10)
    ds.s.recv(1000)
    chans.append(ds)
for ds in chans:
    ds.s.shutdown(socket.SHUT_RDWR)
    ds.close()
is_eq(c.call("agent.ping", id="p1").get("result"), "pong",
      "after clients left mid-window the agent answers")

# 4. Clients that stop reading hold no worker from other calls: while eight
# downloads stall, file.read (a worker job) is still answered.
stalled = []
for i in range(8):
    p, _ = new_file("stall%d" % i, 2 * WINDOW)
    ds, _ = attach(agent, c, p, "stall %d" % i)
    stalled.append(ds)
r = c.call("file.read", {"path": small}, id="r1", timeout=20)
ok("result" in r, "file.read is answered while 8 downloads stall (%s)" % list(r))
is_eq(c.call("agent.ping", id="p2").get("result"), "pong", "and agent.ping")
# The stalled ones still arrive whole once read.
path0 = os.path.join(tmp, "stall0")
with open(path0, "rb") as f:
    d0 = f.read()
got = stalled[0].buf + (read_until_eof(stalled[0].s, 30) or b"")
is_eq(got == d0, True, "a stalled download read later arrives whole")
for ds in stalled:
    ds.close()

# 5. No descriptor of any channel is left behind.
is_eq(c.call("agent.ping", id="p3").get("result"), "pong", "the agent answers")
c2 = agent.client()
is_eq(c2.call("agent.ping", id="p4").get("result"), "pong", "a new client is answered")
c2.close()
deadline = time.monotonic() + 10
while fds(agent.pid) > fds_before and time.monotonic() < deadline:
    time.sleep(0.05)
left = fds(agent.pid)
if left > fds_before:
    print("# " + " ".join(sorted(os.readlink("/proc/%d/fd/%s" % (agent.pid, f))
                                 for f in os.listdir("/proc/%d/fd" % agent.pid))))
ok(left <= fds_before,
   "the agent holds %d descriptors, as before the downloads (%d)" % (left, fds_before))
ok(agent.alive(), "the agent is alive")
is_eq(agent.stop(), 0, "agent exits 0")
done()
