# SPDX-License-Identifier: LGPL-2.1-or-later
"""Benchmark: `guestlink cp` throughput host->agent and agent->host over a Unix
socket (raw side channel, and JSON+base64 chunks with --no-channel), beside a raw file copy through a Unix socket (sendfile in, recv and
write out) measured in the same run. Prints MiB/s and the ratio. Not part of
`make check`: run it by hand, e.g.
    top_builddir=BUILD top_srcdir=SRC PYTHONPATH=SRC/tests/lib python3 bench-cp.py [MiB]"""

import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gltest as g  # noqa: E402
from agentlib import Agent  # noqa: E402

MiB = 1024 * 1024
size = int(sys.argv[1]) * MiB if len(sys.argv) > 1 else 256 * MiB
rounds = 3
d = g.tmpdir()
src = os.path.join(d, "src")
with open(src, "wb") as f:
    for _ in range(size // MiB):
        f.write(os.urandom(MiB))


def raw_copy(dst):
    """src -> Unix socket -> dst, two threads, like a copy program would."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)

    def send():
        with open(src, "rb") as f:
            off = 0
            while off < size:
                off += os.sendfile(a.fileno(), f.fileno(), off, size - off)
        a.shutdown(socket.SHUT_WR)

    t = threading.Thread(target=send)
    t0 = time.monotonic()
    t.start()
    buf = bytearray(MiB)
    view = memoryview(buf)
    with open(dst, "wb") as out:
        while True:
            n = b.recv_into(buf)
            if n == 0:
                break
            out.write(view[:n])
    t.join()
    dt = time.monotonic() - t0
    a.close()
    b.close()
    return dt


agent = Agent({"max_message_bytes": 64 * MiB})
cli = g.build_path("host", "guestlink")
env = dict(os.environ, GUESTLINK_ADDRESS="unix:" + agent.sock)


def cp(a, b, *opts):
    t0 = time.monotonic()
    subprocess.run([cli, "--timeout", "120", "cp", "--quiet"] + list(opts) + [a, b], env=env,
                   check=True)
    return time.monotonic() - t0


best = {k: 1e9 for k in ("raw", "up", "down", "up-json", "down-json")}
for _ in range(rounds):
    best["raw"] = min(best["raw"], raw_copy(os.path.join(d, "raw")))
    best["up"] = min(best["up"], cp(src, "guest:" + os.path.join(d, "up")))
    best["down"] = min(best["down"], cp("guest:" + src, os.path.join(d, "down")))
    best["up-json"] = min(best["up-json"], cp(src, "guest:" + os.path.join(d, "up-json"),
                                              "--no-channel"))
    best["down-json"] = min(best["down-json"], cp("guest:" + src, os.path.join(d, "down-json"),
                                                  "--no-channel"))
    for name in ("raw", "up", "down", "up-json", "down-json"):
        os.unlink(os.path.join(d, name))

mb = size / MiB
raw = mb / best["raw"]
print("# file size %d MiB, best of %d runs" % (mb, rounds))
print("# raw Unix socket copy:  %8.1f MiB/s" % raw)
for name, label in (("up", "host->agent, raw channel"), ("down", "agent->host, raw channel"),
                    ("up-json", "host->agent, JSON+base64"),
                    ("down-json", "agent->host, JSON+base64")):
    rate = mb / best[name]
    print("# guestlink cp %-26s %8.1f MiB/s  ratio %.3f" % (label + ":", rate, rate / raw))
agent.stop()
