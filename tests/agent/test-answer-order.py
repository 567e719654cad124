#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The answers of one read are gathered and written together (agent/conn.c,
conn_gather): none may be lost, duplicated or reordered, whether the socket
takes them all, part of them (a client that stops reading, answers larger
than the gather buffer) or an asynchronous answer comes between. Each
answer's bytes are checked against the agent's compact form; synchronous
answers come in request order, delayed ones exactly once. Pipelined pings
cost one write per read, not one per answer."""

import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gltest import diag, done, is_eq, ok, tmpdir  # noqa: E402
from agentlib import Agent  # noqa: E402


def ping(i, delay=0):
    req = {"jsonrpc": "2.0", "method": "agent.ping", "id": i}
    if delay:
        req["params"] = {"delay_ms": delay}
    return json.dumps(req, separators=(",", ":")).encode() + b"\n"


def pong(i):
    return b'{"jsonrpc":"2.0","result":"pong","id":%d}' % i


def echo(i, size):
    text = "".join(chr(ord("a") + (i + k) % 26) for k in range(size))
    req = {"jsonrpc": "2.0", "method": "agent.echo", "id": i, "params": {"s": text}}
    want = b'{"jsonrpc":"2.0","result":{"s":"%s"},"id":%d}' % (text.encode(), i)
    return json.dumps(req, separators=(",", ":")).encode() + b"\n", want


def read_lines(client, n, timeout=30):
    """n answer lines, or fewer when the agent stops answering in time."""
    lines = []
    deadline = time.monotonic() + timeout
    while len(lines) < n and time.monotonic() < deadline:
        try:
            lines.append(client.recv_line(max(0.1, deadline - time.monotonic())))
        except (OSError, EOFError) as e:
            diag("reading answers: %r" % e)
            break
    return lines


def check(lines, sync_want, delayed_want, what):
    """Synchronous answers in order with their exact bytes; each delayed one
    exactly once, anywhere after its request."""
    delayed = set(delayed_want)
    got_sync = [ln for ln in lines if ln not in delayed]
    got_delayed = [ln for ln in lines if ln in delayed]
    is_eq(len(lines), len(sync_want) + len(delayed_want), what + ": as many answers as requests")
    ok(got_sync == sync_want, what + ": synchronous answers complete, exact and in order")
    if got_sync != sync_want:
        for k, (g, w) in enumerate(zip(got_sync, sync_want)):
            if g != w:
                diag("first difference at answer %d: %r... vs %r..." % (k, g[:80], w[:80]))
                break
    is_eq(sorted(got_delayed), sorted(delayed_want), what + ": each delayed answer once")


def io_counts(pid):
    c = {}
    with open("/proc/%d/io" % pid) as f:
        for line in f:
            k, v = line.split(":")
            c[k] = int(v)
    return c["syscr"], c["syscw"]


def mix(n, delay_every, delay_ms, echo_every=0, echo_size=None):
    """Requests 1..n: pings, a delayed ping every delay_every, an echo of
    echo_size(i) characters every echo_every; with the answers each wants."""
    reqs, sync_want, delayed_want = [], [], []
    for i in range(1, n + 1):
        if i % delay_every == 0:
            reqs.append(ping(i, delay=delay_ms))
            delayed_want.append(pong(i))
        elif echo_every and i % echo_every == 0:
            req, want = echo(i, echo_size(i))
            reqs.append(req)
            sync_want.append(want)
        else:
            reqs.append(ping(i))
            sync_want.append(pong(i))
    return reqs, sync_want, delayed_want


def stalled_reader(what, reqs, sync_want, delayed_want):
    """Send reqs (from a thread: the agent stops reading past its high-water
    mark), read nothing for 1.5 s (longer than the 1 s stall rule, far below
    the 17 MiB that rule needs), then everything, and check it."""
    cl = agent.client()
    total = sum(len(w) + 1 for w in sync_want + delayed_want)
    diag("%s: %d requests, %d bytes of answers" % (what, len(reqs), total))
    sent = []

    def sender():
        try:
            cl.s.sendall(b"".join(reqs))
            sent.append(True)
        except OSError as e:
            diag("sending: %r" % e)

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    time.sleep(1.5)
    lines = read_lines(cl, len(reqs), timeout=60)
    t.join(30)
    ok(sent == [True], what + ": every request sent")
    check(lines, sync_want, delayed_want, what)
    ok(cl.nothing_within(0.3), what + ": nothing more")
    cl.close()


agent = Agent(tmpdir())

# 1. Pipelined pings with delayed ones between, sent at once: the delayed
# answers come from a timer, outside the processing of the read.
cl = agent.client()
reqs, sync_want, delayed_want = mix(400, 50, 20)
cl.send_raw(b"".join(reqs))
check(read_lines(cl, len(reqs)), sync_want, delayed_want, "pipelined pings")
ok(cl.nothing_within(0.3), "pipelined pings: nothing more")
cl.close()

# 2. One write per read: 100 pings in one send are answered with at most as
# many writes as the agent made reads (one read, or a few when the send
# arrives in pieces), never one write per answer.
cl = agent.client()
ok(cl.call("agent.ping", id=0)["result"] == "pong", "warm-up ping answered")
r0, w0 = io_counts(agent.pid)
cl.send_raw(b"".join(ping(i) for i in range(1, 101)))
lines = read_lines(cl, 100)
r1, w1 = io_counts(agent.pid)
is_eq(lines, [pong(i) for i in range(1, 101)], "100 pipelined pings answered in order")
diag("100 pipelined pings: %d reads, %d writes" % (r1 - r0, w1 - w0))
ok(1 <= w1 - w0 <= max(1, r1 - r0) and w1 - w0 <= 5,
   "100 pipelined pings: one write per read (%d writes, %d reads)" % (w1 - w0, r1 - r0))
cl.close()

# 3. A client that stops reading while its requests ask for answers small
# and large (past the gather buffer's 64 KiB and the 1 MiB high-water mark,
# so the agent stops reading and resumes), with delayed pings between.
SIZES = [10, 3000, 40000, 70000, 200000, 1, 65000]
stalled_reader("stalled reader", *mix(300, 25, 10, 3, lambda i: SIZES[(i // 3) % len(SIZES)]))

# 4. Many small answers to a client that stops reading: the gathered
# answers of one read meet a full socket, which takes part of them or none.
stalled_reader("stalled reader, small answers", *mix(30000, 1000, 5, 7, lambda i: 100 + i % 50))

# 5. The agent serves on after all this.
cl = agent.client()
is_eq(cl.call("agent.ping", id=7), {"jsonrpc": "2.0", "result": "pong", "id": 7},
      "agent still answers")
cl.close()
ok(agent.alive(), "agent alive")
agent.stop()
done()
