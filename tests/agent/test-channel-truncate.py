#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A download channel sends from a mapping of its file; a file that shrinks
under it ends the channel short, never with SIGBUS in the agent and never with
the zeros a mapping shows past a file's end. Against the real agent over a
Unix socket (the same download code as on vsock): the client stops reading,
the file is truncated, then the client reads until the agent closes."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gltest import done, is_eq, ok, tmpdir  # noqa: E402
from agentlib import Agent, read_until_eof  # noqa: E402

MIB = 1 << 20
tmp = tmpdir()


def maps(pid):
    """The agent's mappings, read by another process with a timeout."""
    r = subprocess.run(["cat", "/proc/%d/maps" % pid], capture_output=True, text=True,
                       timeout=10)
    return r.stdout


def recv_exact(s, n):
    s.settimeout(10)
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def download(agent, c, path, first, cut, name):
    """Read `first` bytes of path's download, truncate the file to `cut`,
    then the rest: (bytes received, size announced, the agent's maps while
    it waited)."""
    r = c.call("file.channel", {"path": path, "direction": "download"}).get("result", {})
    ds = agent.client()
    ds.send({"jsonrpc": "2.0", "id": 1, "method": "file.attach",
             "params": {"token": r.get("token", "")}})
    is_eq(ds.recv(10).get("result"), {"size": r.get("size")}, "%s: attached" % name)
    got = ds.buf + recv_exact(ds.s, first - len(ds.buf))
    ds.buf = b""
    seen = maps(agent.pid)
    os.truncate(path, cut)
    rest = read_until_eof(ds.s, 30)
    ds.close()
    return (None if rest is None else got + rest), r.get("size"), seen


def new_file(name, size):
    """A file of size random bytes in tmp: (path, data)."""
    data = os.urandom(size)
    with open(os.path.join(tmp, name), "wb") as f:
        f.write(data)
    return os.path.join(tmp, name), data


agent = Agent(tmp)
c = agent.client()

# 1. Mid-file: cut to a size inside a page, far ahead of what was sent.
path, data = new_file("big", 16 * MIB + 1000)
cut = 3 * MIB + 123
got, size, seen = download(agent, c, path, 512 * 1024, cut, "mid-file")
ok(path in seen, "the waiting download sends from a mapping of its file")
is_eq(size, len(data), "the size announced is the file's at file.channel")
ok(got is not None, "the agent ends the channel after the file shrank (no hang)")
got = got or b""
# A socket takes a copy that faults only up to its last whole packet, and a
# mapping shows zeros from the new end to the end of its page: short, but
# never past that page.
page_end = (cut + 4095) // 4096 * 4096
ok(0 < len(got) <= page_end,
   "the client sees a short count: %d of %d bytes (cut at %d)" % (len(got), len(data), cut))
k = min(len(got), cut)
is_eq((got[:k] == data[:k], got[k:].count(0) == len(got) - k), (True, True),
      "the bytes before the cut are the file's, those after it zeros of its last page")
ok(agent.alive(), "the agent is alive (no SIGBUS)")
is_eq(c.call("agent.ping", id="p1").get("result"), "pong", "and answers a ping")
ok(path not in maps(agent.pid), "the mapping is gone with the channel")

# 2. To nothing, while the first window is being sent.
path, data = new_file("zero", 8 * MIB)
got, size, _ = download(agent, c, path, 64 * 1024, 0, "to zero")
ok(got is not None and 64 * 1024 <= len(got) < len(data),
   "cut to 0: a short count (%s of %d bytes)" % (got and len(got), len(data)))
ok(got is not None and got == data[:len(got)], "... every byte sent is the file's")
ok(agent.alive(), "the agent is alive (no SIGBUS)")

# 3. Inside the last page: a mapping would show zeros up to the old end,
# with the full count; the agent reads that page and ends short.
path, data = new_file("tail", 2 * MIB + 3000)
cut = 2 * MIB + 1000
got, size, _ = download(agent, c, path, 64 * 1024, cut, "last page")
ok(got is not None and len(got) < len(data),
   "cut inside the last page: a short count (%s of %d bytes), not zeros"
   % (got and len(got), len(data)))
ok(got is not None and got == data[:len(got)], "... every byte sent is the file's")

# 4. Untouched, with a size that is not a whole number of pages and more
# than one window: every byte.
path, data = new_file("whole", 9 * MIB + 4097)
got, size, _ = download(agent, c, path, 1, len(data), "whole")
is_eq(got == data, True, "an unchanged file of 2 windows and a bit arrives whole")

is_eq(c.call("agent.ping", id="p2").get("result"), "pong", "the agent still answers")
is_eq(agent.stop(), 0, "agent exits 0")
done()
