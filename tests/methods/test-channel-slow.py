#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A file channel attached on a connection whose earlier answers take longer
than the channel's idle time (60 s) to flush: the channel must still be there
when the connection hands its socket over. It used to expire meanwhile and be
freed, and the hand-over then wrote into freed memory. Takes about 65 s."""

import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gltest as g  # noqa: E402
from agentlib import Agent  # noqa: E402

KiB = 1024
MiB = 1024 * KiB

agent = Agent()
path = os.path.join(agent.dir, "download")
content = os.urandom(1 * MiB)
with open(path, "wb") as f:
    f.write(content)

c = agent.client()
tok = c.result("file.channel", {"path": path, "direction": "download"})["token"]

s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(30)
s.connect(agent.sock)
# One batch: 11 MB of answer first, then the attach; the socket is handed over
# only once the answer is flushed, and this client reads it slowly.
batch = [{"jsonrpc": "2.0", "method": "file.read",
          "params": {"path": "/dev/zero", "length": 8 * MiB}, "id": 1},
         {"jsonrpc": "2.0", "method": "file.attach", "params": {"token": tok}, "id": 2}]
s.sendall(json.dumps(batch).encode() + b"\n")

got = b""
start = time.monotonic()
while time.monotonic() - start < 64:
    want = len(got) + 256 * KiB
    try:
        while len(got) < want:
            chunk = s.recv(want - len(got))
            if not chunk:
                break
            got += chunk
    except socket.timeout:
        break
    time.sleep(2)
g.ok(b"\n" not in got, "the answer is still being flushed after 64 s (%d bytes read)" % len(got))

deadline = time.monotonic() + 60
try:
    while time.monotonic() < deadline:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        got += chunk
except (socket.timeout, ConnectionResetError) as e:
    g.diag("reading the rest: %r" % e)
s.close()

line, _, raw = got.partition(b"\n")
try:
    answers = {a["id"]: a for a in json.loads(line)}
except (ValueError, TypeError, KeyError):
    answers = {}
g.ok("result" in answers.get(1, {}) and "result" in answers.get(2, {}),
     "both batch members are answered")
g.ok(raw == content, "the file arrives on the handed-over socket (%d of %d bytes)"
     % (len(raw), len(content)))
g.ok(agent.alive(), "the agent is still running")
try:
    r = c.call("agent.ping")
except (OSError, EOFError, TimeoutError) as e:
    g.diag("ping: %r" % e)
    r = {}
g.ok("result" in r, "the first connection is still served")
c.close()
g.is_eq(agent.stop(), 0, "the agent exits 0")
g.done()
