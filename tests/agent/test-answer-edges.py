#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Answers at the edges of the gather buffer (agent/conn.c, conn_gather, 64
KiB): one answer of exactly 64 KiB, one byte less and one more; answers that
fill the buffer to the byte, then one byte past it, then a small one; each
sent as one write, read at once or only after the socket filled. The sizes
are set through the id, which each answer echoes: every answer must come
whole, once, in request order. Then a peer that resets its connection while
its answers are gathered costs the agent nothing lasting."""

import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gltest import done, is_eq, ok, tmpdir  # noqa: E402
from agentlib import Agent  # noqa: E402

GATHER = 64 * 1024
tmp = tmpdir()
agent = Agent(tmp)


def answer(ident):
    return b'{"jsonrpc":"2.0","result":"pong","id":"%s"}\n' % ident


OVERHEAD = len(answer(b""))


def ident(n, size):
    """An id for request n whose answer is size bytes (newline included)."""
    tag = b"%d-" % n
    return tag + b"x" * (size - OVERHEAD - len(tag))


def request(i):
    return b'{"jsonrpc":"2.0","method":"agent.ping","id":"%s"}\n' % i


def run(name, sizes, stall):
    c = agent.client(timeout=30)
    ids = [ident(n, s) for n, s in enumerate(sizes)]
    is_eq([len(answer(i)) for i in ids], sizes, "%s: the answers' sizes are as planned" % name)
    want = b"".join(answer(i) for i in ids)
    # Sent from a thread: past the agent's high-water mark it stops reading
    # until this side reads.
    c.s.settimeout(30)
    sender = threading.Thread(target=c.s.sendall, args=(b"".join(request(i) for i in ids),))
    sender.start()
    if stall:
        time.sleep(0.5)  # the socket fills; the rest waits in the agent
    c.s.settimeout(30)
    got = b""
    while len(got) < len(want):
        d = c.s.recv(1 << 20)
        if not d:
            break
        got += d
    sender.join(30)
    is_eq((len(got), got == want), (len(want), True),
          "%s%s: %d answers whole, once, in order" % (name, " (stalled)" if stall else "",
                                                      len(sizes)))
    c.close()


small = OVERHEAD + 10
cases = [
    ("one of 64 KiB", [GATHER]),
    ("one of 64 KiB - 1", [GATHER - 1]),
    ("one of 64 KiB + 1", [GATHER + 1]),
    ("small, then one of 64 KiB", [small, GATHER, small]),
    ("filled to the byte", [small, GATHER - small, small]),
    ("one byte past full", [small, GATHER - small + 1, small]),
    ("two halves, then past", [GATHER // 2, GATHER // 2, GATHER + 1, small]),
    ("many past the buffer", [small] * 3000),
    ("large ones past the buffer", [GATHER - 3, small, GATHER + 5] * 40),
]
for stall in (False, True):
    for name, sizes in cases:
        run(name, sizes, stall)

# A peer that resets its connection (closing with its answers unread) while
# they are gathered or queued: the agent drops them and its descriptor.
c = agent.client()
is_eq(c.call("agent.ping", id="p0").get("result"), "pong", "the agent answers")
fds_before = len(os.listdir("/proc/%d/fd" % agent.pid))
burst = b"".join(request(ident(n, GATHER - 100 + n)) for n in range(40))
for i in range(20):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(agent.sock)
    s.setblocking(False)
    try:
        s.send(burst)  # what the socket takes: the agent stops reading when full
    except BlockingIOError:
        pass
    time.sleep(0.05)
    s.close()
deadline = time.monotonic() + 10
while len(os.listdir("/proc/%d/fd" % agent.pid)) > fds_before and time.monotonic() < deadline:
    time.sleep(0.05)
is_eq(len(os.listdir("/proc/%d/fd" % agent.pid)), fds_before,
      "after 20 peers reset with answers pending, the agent holds no more descriptors")
is_eq(c.call("agent.ping", id="p1").get("result"), "pong", "and answers")
ok(agent.alive(), "the agent is alive (no SIGPIPE)")
is_eq(agent.stop(), 0, "agent exits 0")
done()
