#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Resource limits a hostile client cannot get around."""

import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gltest as g  # noqa: E402
from agentlib import Agent, b64, unb64, error_code  # noqa: E402

KiB = 1024
MiB = 1024 * KiB

# --- a batch cannot make the agent hold more answers than one message ---
# A batch of 1024 file.read of 8 MiB each was answered in full: 11 GiB of
# base64 held in memory for one 70 KB request.
agent = Agent({"max_message_bytes": 1 * MiB})
path = os.path.join(agent.dir, "blob")
with open(path, "wb") as f:
    f.write(os.urandom(300 * KiB))
c = agent.client()
batch = [{"jsonrpc": "2.0", "method": "file.read", "params": {"path": path}, "id": i}
         for i in range(1, 9)]
c.send(batch)
line = c.recv_line(30)
answers = json.loads(line)
g.is_eq(len(answers) if isinstance(answers, list) else None, 8, "every batch member is answered")
answers = {a.get("id"): a for a in answers} if isinstance(answers, list) else {}
good = [i for i in range(1, 9) if "result" in answers.get(i, {})]
limited = [i for i in range(1, 9) if error_code(answers.get(i, {})) == -32003]
g.ok(len(good) >= 1 and all(len(unb64(answers[i]["result"]["data"])) == 300 * KiB for i in good),
     "the first members of the batch are answered in full")
g.ok(len(limited) > 0 and len(good) + len(limited) == 8,
     "members past max_message_bytes of answers get -32003 (%d ok, %d limited)"
     % (len(good), len(limited)))
g.ok(len(line) < 2 * MiB, "the batch answer stays near max_message_bytes (%d bytes)" % len(line))
r = c.call("agent.ping")
g.ok("result" in r, "the connection is still served after a limited batch")
c.close()
g.is_eq(agent.stop(), 0, "the agent exits 0")

# --- output kept for exec results is bounded across all of them ---
# Each result kept its max_output_bytes per stream for result_ttl_s, so 4096
# results of chatty commands could hold 128 GiB.
agent = Agent({"max_inflight": 256, "exec": {"max_output_bytes": 64 * KiB}})
c = agent.client()
ids = []
for i in range(40):
    s = c.result("exec.start", {"argv": ["head", "-c", str(64 * KiB), "/dev/zero"]})
    r = c.result("exec.wait", {"id": s["id"], "timeout_ms": 20000})
    ids.append((s["id"], r))
full = [i for i, r in ids if r.get("stdout_size") == 64 * KiB and not r.get("truncated")]
cut = [i for i, r in ids if r.get("truncated")]
total = sum(r.get("stdout_size", 0) for _, r in ids)
g.ok(len(full) >= 8, "the first results keep their whole output (%d did)" % len(full))
g.ok(len(cut) > 0, "results past the total output budget are truncated (%d were)" % len(cut))
g.ok(total <= 32 * 64 * KiB, "output kept by all results stays bounded (%d bytes)" % total)
for i, _ in ids:
    c.result("exec.release", {"id": i})
s = c.result("exec.start", {"argv": ["head", "-c", str(64 * KiB), "/dev/zero"]})
r = c.result("exec.wait", {"id": s["id"], "timeout_ms": 20000})
g.ok(r.get("stdout_size") == 64 * KiB and not r.get("truncated"),
     "released results give their budget back")
c.result("exec.release", {"id": s["id"]})
c.close()
g.is_eq(agent.stop(), 0, "the agent exits 0")

# --- a closed connection kept by a pending call holds none of its buffers ---
# exec.wait on a process that never ends keeps its call, and so its
# connection, alive: that connection kept the answers it never wrote (here
# 11 MB each), so clients could pile them up by reconnecting.
agent = Agent()
c = agent.client()
sleeper = c.result("exec.start", {"argv": ["sleep", "1000"]})["id"]


def abandon():
    s = agent.client()
    s.request("exec.wait", {"id": sleeper})
    s.send([{"jsonrpc": "2.0", "method": "file.read",
             "params": {"path": "/dev/zero", "length": 8 * MiB}, "id": 99}])
    s.s.settimeout(30)
    s.s.recv(1)  # the answer has started: it is queued in the agent
    s.close()


def settle():
    # The agent notices the closed socket on its next write; wait until it served us.
    c.result("agent.ping")
    time.sleep(0.5)
    c.result("agent.ping")


for _ in range(2):
    abandon()
settle()
before = agent.rss_kb()
for _ in range(10):
    abandon()
settle()
grown = agent.rss_kb() - before
g.ok(grown < 50 * 1024, "10 abandoned connections with 11 MB unwritten each grew RSS by %d KiB"
     % grown)
c.result("exec.signal", {"id": sleeper, "signal": "KILL"})
c.result("exec.wait", {"id": sleeper, "timeout_ms": 10000})
c.close()
g.is_eq(agent.stop(), 0, "the agent exits 0")

# --- stdin queued for a process that does not read it is bounded ---
# exec.write answers wait while much is queued, but a client that does not
# wait for them could queue without end (64 x 16 MiB per connection, and
# more from every new connection).
agent = Agent({"max_inflight": 256})
c = agent.client()
sleeper = c.result("exec.start", {"argv": ["sleep", "1000"], "stdin": "stream"})["id"]
chunk = b64(b"x" * MiB)
wids = [c.request("exec.write", {"id": sleeper, "data": chunk}) for _ in range(40)]
limited = 0
deadline = time.monotonic() + 10
while limited < 40 - 17 and time.monotonic() < deadline:
    try:
        c._pump(deadline - time.monotonic())
    except (OSError, ValueError, socket.timeout):
        break
    for i in wids:
        if i in c.answers:
            limited += error_code(c.answers.pop(i)) == -32003
g.ok(limited >= 40 - 17,
     "writes past 16 MiB queued for a process that does not read are refused (%d of 40)"
     % limited)
c.result("exec.signal", {"id": sleeper, "signal": "KILL"})
c.result("exec.wait", {"id": sleeper, "timeout_ms": 10000})
g.ok(agent.alive(), "the agent is still running")
c.close()
g.is_eq(agent.stop(), 0, "the agent exits 0")

# --- clients that left with calls in flight neither count nor cost ---
# A client that sent exec.wait for a process that never ends and closed its
# socket was taken for a half-close: its connection waited for the answer for
# good, counted against max_connections (so 1024 such clients locked everyone
# out) and kept its calls and requests.
agent = Agent()
c = agent.client()
sleeper = c.result("exec.start", {"argv": ["sleep", "1000"]})["id"]
wait = (json.dumps({"jsonrpc": "2.0", "method": "exec.wait", "params": {"id": sleeper},
                    "id": 1}).encode() + b"\n") * 64


def leave_waits(n):
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(agent.sock)
        s.sendall(wait)
        s.close()
    c.result("agent.ping")


leave_waits(200)
time.sleep(0.5)
before = agent.rss_kb()
leave_waits(1200)
time.sleep(0.5)
grown = agent.rss_kb() - before


def info():
    try:
        late = agent.client()
        r = late.call("agent.info", timeout=30)
        late.close()
    except (OSError, EOFError, ValueError, TimeoutError) as e:
        r = {"error": repr(e)}
    return r


def connections(r):
    return r.get("result", {}).get("connections")


# The agent may still be reading the last clients' requests: ask until settled.
# Each answer that shows fewer connections is progress; only 15 s without any
# fails (the machine may be loaded, the count must still come down to 2: c and
# the asking client).
r, settled, took = g.wait_settled(info, lambda r: connections(r) is not None and
                                  connections(r) <= 2,
                                  lambda r: None if connections(r) is None else -connections(r))
g.ok("result" in r, "a new client is served after 1400 clients left calls in flight (%r)"
     % r.get("error"))
g.ok(settled, "connections whose peer closed are gone (%r left, %.1f s)" % (connections(r), took))
g.ok(grown < 10 * 1024, "1200 clients leaving 64 exec.wait each grew RSS by %d KiB" % grown)
# A client that only shut down its sending side still gets its answers.
try:
    h = agent.client()
    h.request("exec.wait", {"id": sleeper, "timeout_ms": 1000})
    h.s.shutdown(socket.SHUT_WR)
    r = h.recv(10)
    h.close()
except (OSError, EOFError, ValueError) as e:
    r = {"error": repr(e)}
g.is_eq(r.get("error"), {"code": -32004, "message": "the process is still running"},
        "a half-closed client still gets its answer")
c.result("exec.signal", {"id": sleeper, "signal": "KILL"})
r = c.result("exec.wait", {"id": sleeper, "timeout_ms": 10000})
g.is_eq(r.get("signal"), 9, "a waiter that stayed is still answered")
c.close()
g.is_eq(agent.stop(), 0, "the agent exits 0")

g.done()
