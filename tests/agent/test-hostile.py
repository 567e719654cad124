#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Hostile clients against guestlink-agent: random bytes, a 100 MB line,
nesting 100,000 deep, invalid UTF-8, half messages, and a client that never
reads. The agent stays up, its memory stays bounded, and a witness client's
calls are answered correctly throughout."""

import json
import os
import random
import select
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gltest import diag, done, is_eq, ok, tmpdir, unix_connect  # noqa: E402
from agentlib import Agent, read_until_eof, rss_kib  # noqa: E402

tmp = tmpdir()
agent = Agent(tmp)
witness = agent.client()
wid = [0]


def witness_ok(what):
    """The witness's call is answered correctly."""
    wid[0] += 1
    payload = {"n": wid[0], "what": what}
    try:
        a = witness.call("agent.echo", payload, id=wid[0], timeout=10)
        good = a == {"jsonrpc": "2.0", "result": payload, "id": wid[0]}
    except (OSError, EOFError, ValueError) as e:
        diag("witness: %r" % e)
        good = False
    ok(good and agent.alive(), "witness served after: " + what)


def pump(sock, data, seconds=60):
    """Send data while draining whatever comes back (so output limits are not
    what stops us). Returns (bytes sent, bytes received, closed by the agent);
    the first MiB received is kept in pump.data."""
    sock.setblocking(False)
    sent = received = 0
    pump.data = b""
    view = memoryview(data)
    deadline = time.monotonic() + seconds
    closed = False
    while time.monotonic() < deadline:
        want_w = [sock] if sent < len(data) else []
        r, w, _ = select.select([sock], want_w, [], 0.5)
        if r:
            try:
                chunk = sock.recv(1 << 20)
            except (ConnectionResetError, BrokenPipeError):
                closed = True
                break
            if not chunk:
                closed = True
                break
            received += len(chunk)
            if len(pump.data) < (1 << 20):
                pump.data += chunk
        if w:
            try:
                sent += sock.send(view[sent:sent + (1 << 20)])
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
        if sent >= len(data) and not r:
            break
    return sent, received, closed


def read_lines(sock, n, timeout=10):
    """n answer lines, starting with what pump() already received."""
    buf = pump.data
    sock.setblocking(True)
    sock.settimeout(timeout)
    try:
        while buf.count(b"\n") < n:
            d = sock.recv(65536)
            if not d:
                break
            buf += d
    except socket.timeout:
        pass
    return [json.loads(x) for x in buf.split(b"\n")[:n] if x]


rss0 = rss_kib(agent.pid)
diag("agent RSS at start: %d KiB" % rss0)
witness_ok("start")

# Random bytes, 4 MiB, with newlines so the decoder resyncs often.
rnd = random.Random(1234)
junk = bytes(rnd.getrandbits(8) for _ in range(1 << 16)) * 64
s = unix_connect(agent.sock)
sent, received, closed = pump(s, junk, 60)
ok(sent == len(junk) and received > 0, "random bytes: all sent, parse errors answered "
   "(%d bytes back)" % received)
s.close()
witness_ok("random bytes")

# A 100 MB line inside a JSON string: refused at max_message_bytes, then closed.
s = unix_connect(agent.sock)
big = b'{"jsonrpc":"2.0","method":"agent.echo","params":["' + b"a" * (100 << 20) + b'"],"id":1}\n'
t0 = time.monotonic()
sent, received, closed = pump(s, big, 120)
ok(closed and sent < len(big), "100 MB message: the agent closed the connection after %d MB"
   % (sent >> 20))
s.close()
del big
witness_ok("a 100 MB message")

# A 100 MB line of garbage: -32700, skipped to the newline, the stream goes on.
s = unix_connect(agent.sock)
c = b"x" * (100 << 20) + b'\n{"jsonrpc":"2.0","method":"agent.ping","id":"after"}\n'
sent, received, closed = pump(s, c, 120)
ok(sent == len(c), "100 MB garbage line sent in %.1fs" % (time.monotonic() - t0))
lines = read_lines(s, 2)
is_eq([(x.get("error", {}).get("code"), x.get("id")) for x in lines[:1]], [(-32700, None)],
      "garbage line -> one -32700")
is_eq([x.get("result") for x in lines[1:2]], ["pong"], "the request after it is answered")
s.close()
del c
witness_ok("a 100 MB garbage line")

# Nesting 100,000 deep.
for opener, closer, name in ((b"[", b"]", "arrays"), (b'{"a":', b"}", "objects")):
    s = unix_connect(agent.sock)
    nest = opener * 100000 + closer * 100000 + b'\n{"jsonrpc":"2.0","method":"agent.ping","id":2}\n'
    sent, received, closed = pump(s, nest, 30)
    lines = read_lines(s, 2)
    ok(len(lines) == 2 and lines[0].get("error", {}).get("code") == -32700 and
       lines[1].get("result") == "pong", "nesting 100,000 deep (%s) -> -32700, then served" % name)
    s.close()
    witness_ok("deep nesting of " + name)

# Invalid UTF-8 in a string, in a method name, and an overlong encoding.
for bad, what in (
        (b'{"jsonrpc":"2.0","method":"agent.echo","params":["\xff\xfe"],"id":1}\n', "bytes ff fe"),
        (b'{"jsonrpc":"2.0","method":"agent.\xc3","id":1}\n', "truncated sequence in a name"),
        (b'{"jsonrpc":"2.0","method":"agent.echo","params":["\xc0\xaf"],"id":1}\n', "overlong"),
        (b'{"jsonrpc":"2.0","method":"agent.echo","params":["\xed\xa0\x80"],"id":1}\n',
         "encoded surrogate")):
    s = unix_connect(agent.sock)
    s.sendall(bad + b'{"jsonrpc":"2.0","method":"agent.ping","id":2}\n')
    s.settimeout(10)
    buf = b""
    try:
        while buf.count(b"\n") < 2:
            d = s.recv(65536)
            if not d:
                break
            buf += d
    except socket.timeout:
        pass
    try:
        lines = [json.loads(x.decode("utf-8")) for x in buf.split(b"\n") if x]
    except (UnicodeDecodeError, ValueError):
        lines = []
    ok(len(lines) == 2 and lines[0].get("error", {}).get("code") == -32700 and
       lines[1].get("id") == 2, "invalid UTF-8 (%s) -> -32700 in valid UTF-8, then served" % what)
    s.close()
witness_ok("invalid UTF-8")

# Half a message, then close; many times.
for i in range(200):
    s = unix_connect(agent.sock)
    s.sendall(b'{"jsonrpc":"2.0","method":"agent.echo","params":["' + b"z" * i)
    s.close()
witness_ok("200 half messages then close")
deadline = time.monotonic() + 5
while time.monotonic() < deadline:
    n = witness.call("agent.info", id=99)["result"]["connections"]
    if n == 1:
        break
    time.sleep(0.05)
is_eq(n, 1, "every closed connection is gone (agent.info connections == 1)")

# A client that never reads while flooding requests: output stops at the
# high-water mark, the agent stops reading that client, memory stays bounded.
rss1 = rss_kib(agent.pid)
flood = unix_connect(agent.sock)
flood.setblocking(False)
req = (b'{"jsonrpc":"2.0","method":"agent.echo","params":["' + b"f" * 4000 + b'"],"id":1}\n') * 64
sent = 0
t_end = time.monotonic() + 4
stalled = 0
peak = rss1
while time.monotonic() < t_end:
    _, w, _ = select.select([], [flood], [], 0.2)
    if w:
        try:
            sent += flood.send(req)
        except BlockingIOError:
            pass
    else:
        stalled += 1
    peak = max(peak, rss_kib(agent.pid))
diag("flood: sent %d KiB before the agent stopped reading; RSS %d -> peak %d KiB"
     % (sent >> 10, rss1, peak))
ok(stalled > 0, "the agent stopped reading the flooding client (its sends block)")
ok(sent < (64 << 20), "the agent accepted a bounded amount (%d KiB)" % (sent >> 10))
ok(peak - rss1 < 48 * 1024, "agent RSS grew by %d KiB (< 48 MiB) under the flood" % (peak - rss1))
t0 = time.monotonic()
witness_ok("a client that never reads (still connected)")
# Not a speed target: a starved loop would leave the witness without an answer.
ok(time.monotonic() - t0 < 5, "the witness is served during the flood (%.2fs)"
   % (time.monotonic() - t0))
flood.close()
witness_ok("the flooding client went away")

is_eq(agent.stop(), 0, "agent exits 0 after all of it")
done()
