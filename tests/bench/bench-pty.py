#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Terminal sessions, measured (not a test: prints figures).

Keystroke round trip: a byte written to the local terminal of
`guestlink exec -t -- sh -c 'stty raw -echo; exec cat'` until its echo is read
back, through backend + guestsim + agent, beside the same program on a local
PTY pair in the same run. Bulk: 100 MiB of terminal output through
`guestlink exec -tt` beside `guestlink exec` on pipes and a local pipe.

Run from the build tree: top_builddir=$PWD python3 ../tests/bench/bench-pty.py [N]"""

import os
import pty
import select
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "methods"))
import gltest as g  # noqa: E402
from agentlib import Agent  # noqa: E402
from termlib import CLI, Stack  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 500
MiB = 1024 * 1024
BULK = 100 * MiB
READY = b"READY"


def read_until(fd, needle, timeout=30):
    buf = b""
    deadline = time.monotonic() + timeout
    while needle not in buf:
        r, _, _ = select.select([fd], [], [], max(0, deadline - time.monotonic()))
        if not r:
            raise TimeoutError("no %r in %r" % (needle, buf[-200:]))
        buf += os.read(fd, 65536)
    return buf


def echo_rtt(argv):
    """p50, p99 in ms of a byte's round trip through the program on a pty."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(argv[0], argv)
    try:
        read_until(fd, READY, 60)
        time.sleep(0.2)
        samples = []
        for i in range(N):
            b = bytes([0x61 + i % 26])
            t0 = time.perf_counter()
            os.write(fd, b)
            got = b""
            while b not in got:
                select.select([fd], [], [], 10)
                got += os.read(fd, 4096)
            samples.append((time.perf_counter() - t0) * 1000)
        samples.sort()
        return samples[len(samples) // 2], samples[int(len(samples) * 0.99)]
    finally:
        os.write(fd, b"\x04")
        try:
            os.kill(pid, 15)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
        os.close(fd)


def bulk(argv):
    """MiB/s of BULK bytes read from argv's stdout (checked complete)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    n = 0
    while True:
        d = p.stdout.read1(1 << 20)
        if not d:
            break
        n += len(d)
    p.wait(600)
    dt = time.perf_counter() - t0
    if n != BULK:
        print("# warning: %d bytes instead of %d from %s" % (n, BULK, argv[:6]))
    return BULK / MiB / dt


agent = Agent()
stack = Stack(g.tmpdir(), {9731: agent.sock})
addr = stack.address()
prog = "stty raw -echo; echo READY; exec cat"

lp50, lp99 = echo_rtt(["sh", "-c", prog])
hp50, hp99 = echo_rtt([CLI, "-a", addr, "exec", "-t", "--", "sh", "-c", prog])
up50, up99 = echo_rtt([CLI, "-a", "unix:" + agent.sock, "exec", "-t", "--", "sh", "-c", prog])
print("keystroke echo round trip, %d keystrokes (ms):" % N)
print("  local pty pair (sh+cat)        p50 %.3f  p99 %.3f" % (lp50, lp99))
print("  guestlink exec -t, unix:       p50 %.3f  p99 %.3f" % (up50, up99))
print("  guestlink exec -t, backend+guestsim  p50 %.3f  p99 %.3f" % (hp50, hp99))

gen = "head -c %d /dev/zero" % BULK
local = bulk(["sh", "-c", gen + " | cat"])
pipes = bulk([CLI, "-a", addr, "exec", "--", "sh", "-c", gen])
ptys = bulk([CLI, "-a", addr, "exec", "-tt", "--", "sh", "-c", "stty raw -echo; " + gen])
print("bulk output, 100 MiB (MiB/s):")
print("  local pipe                     %.0f" % local)
print("  guestlink exec (pipes), backend+guestsim   %.0f" % pipes)
print("  guestlink exec -tt (pty), backend+guestsim %.0f" % ptys)

stack.stop()
agent.stop()
