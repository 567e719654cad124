#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Answers of calls in flight against a client that never reads: stopping to
read its requests is not enough, since up to max_inflight calls answer anyway.
The agent closes such a connection once its unread answers pass the
high-water mark plus max_message_bytes; its memory stays bounded, other
clients are served, and a client that reads gets every answer. The memory
bound follows the configured mark (CONN_OUTPUT_HIGH + max_message_bytes, the
latter set here), plus one answer and a stated overhead."""

import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gltest import diag, done, is_eq, ok, tmpdir, unix_connect  # noqa: E402
from agentlib import Agent, read_until_eof, rss_kib  # noqa: E402

N = 64
SIZE = 1 << 20
# The configured limit the bound follows: the agent closes a connection whose
# unread answers pass CONN_OUTPUT_HIGH (1 MiB, agent/conn.h) plus
# max_message_bytes, so at most that plus the answer that crossed it is held.
MAX_MESSAGE = 4 << 20
MARK = (1 << 20) + MAX_MESSAGE
ANSWER = SIZE * 4 // 3 + 4096  # base64 of 1 MiB of output, and the JSON around it
# Stated fixed overhead: the calls keep running after the close, and each
# answer being built holds its output, its base64 and its JSON text (~4 MB, a
# few at once, more on a loaded machine); allocator slack; ASan's quarantine
# (8 MiB) under sanitizers. Measured: 28-34 MB of growth in all at load 6.
OVERHEAD = 40 << 20
# Keep ASan's quarantine small so that RSS figures mean something under sanitizers.
asan = os.environ.get("ASAN_OPTIONS", "")
ENV = {"ASAN_OPTIONS": (asan + ":" if asan else "") + "quarantine_size_mb=8"}


def start_agent():
    return Agent(tmpdir(), config={"max_inflight": N, "max_message_bytes": MAX_MESSAGE}, env=ENV)


def run_req(i, delay, size):
    return json.dumps({"jsonrpc": "2.0", "method": "exec.run", "id": i, "params": {
        "argv": ["sh", "-c", "sleep %.2f; head -c %d /dev/zero" % (delay, size)]}}).encode() + b"\n"


# 64 calls of 1 MiB output each (1.4 MB answers), finishing one by one over
# about 5 s. Before the bound all 64 answers (90 MB) queued for a client that
# never reads.
FLOOD = b"".join(run_req(i, i * 0.08, SIZE) for i in range(N))

agent = start_agent()
witness = agent.client()
rss0 = rss_kib(agent.pid)
flood = unix_connect(agent.sock)
flood.sendall(FLOOD)
peak = rss0
served = tried = 0
t_end = time.monotonic() + 8
while time.monotonic() < t_end:
    peak = max(peak, rss_kib(agent.pid))
    tried += 1
    try:
        if witness.call("agent.ping", None, id=tried, timeout=30)["result"] == "pong":
            served += 1
    except (OSError, EOFError, ValueError, KeyError) as e:
        diag("witness: %r" % e)
    time.sleep(0.1)
diag("64 x 1 MiB exec.run answers, never read: agent RSS %d -> peak %d KiB" % (rss0, peak))
bound = (MARK + ANSWER + OVERHEAD) // 1024
ok(peak - rss0 <= bound,
   "agent RSS grew by %d KiB <= %d KiB: mark %d + one answer %d + overhead %d "
   "(64 queued answers would add ~90 MB)"
   % (peak - rss0, bound, MARK // 1024, ANSWER // 1024, OVERHEAD // 1024))
# Every ping over the 8 s answered (how many fit in 8 s depends on the load).
ok(served == tried and tried >= 2,
   "the witness was served throughout (%d of %d pings answered)" % (served, tried))
data = read_until_eof(flood, timeout=15)
ok(data is not None, "the agent closed the connection that did not read its answers")
lines = [ln for ln in (data or b"").split(b"\n") if ln]
got = 0
for ln in lines[:-1]:
    try:
        a = json.loads(ln)
        got += 1 if a.get("result", {}).get("code") == 0 and len(a["result"].get("stdout", "")) > 0 else 0
    except ValueError:
        pass
diag("the closed client received %d complete answers (%d bytes)" % (got, len(data or b"")))
ok(len(data or b"") < 64 << 20, "it received less than all 64 answers (%d bytes)" % len(data or b""))
flood.close()

# The bound costs nothing to a client that reads: 64 answers of 256 KiB
# output, all at once, all arrive.
reader = unix_connect(agent.sock)
reader.sendall(b"".join(run_req(i, 0, 256 << 10) for i in range(N)))
# No fixed total: the answers must keep coming (30 s without a byte fails).
reader.settimeout(30)
buf = b""
answers = {}
while len(answers) < N:
    try:
        chunk = reader.recv(1 << 20)
    except socket.timeout:
        break
    if not chunk:
        break
    buf += chunk
    while b"\n" in buf:
        ln, buf = buf.split(b"\n", 1)
        a = json.loads(ln)
        answers[a.get("id")] = a
good = sum(1 for a in answers.values() if a.get("result", {}).get("code") == 0 and len(a["result"].get("stdout", "")) > 0)
is_eq(good, N, "a reading client pipelining 64 x 256 KiB exec.run gets all 64 answers")
reader.close()

is_eq(witness.call("agent.ping", None, id=9999)["result"], "pong", "the witness is served after")
is_eq(agent.stop(), 0, "agent exits 0")
done()
