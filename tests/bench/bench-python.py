#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The Python client beside the C client in the same run, against the same real
agent: agent.ping calls/s on one connection with 1 and 64 calls in flight
(tests/bench/bench-client for C, guestlink and guestlink.aio for Python), and
copy_to MiB/s beside `guestlink cp` (both over the raw side channel). With
--hybrid, the agent is reached through the backend and guestsim (hybrid:), as
for a VM. Prints figures and ratios; asserts nothing about speed.

Usage (from the build tree): top_srcdir=SRC top_builddir=BUILD \\
    python3 SRC/tests/bench/bench-python.py [--seconds S] [--mib N] [--hybrid]"""

import argparse
import asyncio
import os
import subprocess
import sys
import time

TOP_SRCDIR = os.environ.get("top_srcdir") or os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))
TOP_BUILDDIR = os.environ.get("top_builddir") or os.getcwd()
os.environ.setdefault("top_builddir", TOP_BUILDDIR)
sys.path[:0] = [os.path.join(TOP_SRCDIR, "python"), os.path.join(TOP_SRCDIR, "tests", "lib"),
                os.path.join(TOP_SRCDIR, "python", "tests")]

import guestlink  # noqa: E402
import guestlink.aio  # noqa: E402
import gltest  # noqa: E402


def py_sync(address, seconds):
    with guestlink.connect(address, timeout=30) as c:
        n, t0 = 0, time.monotonic()
        end = t0 + seconds
        while time.monotonic() < end:
            c.ping()
            n += 1
        return n / (time.monotonic() - t0)


def py_aio(address, seconds, inflight):
    async def main():
        async with await guestlink.aio.connect(address, timeout=30) as c:
            n = 0
            end = time.monotonic() + seconds

            async def worker():
                nonlocal n
                while time.monotonic() < end:
                    await c.ping()
                    n += 1
            t0 = time.monotonic()
            await asyncio.gather(*(worker() for _ in range(inflight)))
            return n / (time.monotonic() - t0)
    return asyncio.run(main())


def c_client(address, seconds, inflight):
    r = subprocess.run([gltest.build_path("tests", "bench", "bench-client"), address,
                        str(seconds), str(inflight)], capture_output=True, text=True,
                       timeout=seconds * 4 + 60)
    if r.returncode:
        raise RuntimeError("bench-client: " + r.stderr)
    rates = {}
    for line in r.stdout.splitlines():
        _, _, k, v = line.split()
        rates[int(k)] = float(v)
    return rates


def copies(address, mib, tmp, rounds=3):
    src = os.path.join(tmp, "bench-src")
    with open(src, "wb") as f:
        for _ in range(mib):
            f.write(os.urandom(1 << 20))
    py, cl = [], []
    with guestlink.connect(address, timeout=60) as c:
        for i in range(rounds):
            t = time.monotonic()
            c.copy_to(src, os.path.join(tmp, "py-dst"))
            py.append(mib / (time.monotonic() - t))
            t = time.monotonic()
            r = subprocess.run([gltest.build_path("host", "guestlink"), "-a", address, "cp",
                                "--quiet", src, "guest:" + os.path.join(tmp, "c-dst")],
                               capture_output=True, timeout=600)
            if r.returncode:
                raise RuntimeError("guestlink cp: %s" % r.stderr)
            cl.append(mib / (time.monotonic() - t))
    for f in ("bench-src", "py-dst", "c-dst"):
        os.unlink(os.path.join(tmp, f))
    return max(py), max(cl)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--hybrid", action="store_true", help="through backend + guestsim")
    args = ap.parse_args()
    try:
        import conftest  # the agent and backend helpers of the Python tests (need pytest)
    except ImportError:
        if os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3"):
            os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
        raise
    tmp = gltest.tmpdir()
    agent = conftest.Agent(tmp)
    stack = conftest.Stack(tmp, agent.sock) if args.hybrid else None
    address = stack.address if stack else agent.address
    try:
        print("# agent at %s" % address)
        c = c_client(address, args.seconds, 64)
        p1 = py_sync(address, args.seconds)
        p64 = py_aio(address, args.seconds, 64)
        print("agent.ping 1 in flight:  C %8.0f calls/s  Python %8.0f calls/s  ratio %.2f"
              % (c[1], p1, p1 / c[1]))
        print("agent.ping 64 in flight: C %8.0f calls/s  Python %8.0f calls/s  ratio %.2f"
              % (c[64], p64, p64 / c[64]))
        py, cl = copies(address, args.mib, tmp)
        print("copy %d MiB host->agent: guestlink cp %7.1f MiB/s  Python copy_to %7.1f MiB/s  "
              "ratio %.2f" % (args.mib, cl, py, py / cl))
    finally:
        if stack:
            stack.stop()
        agent.stop()


if __name__ == "__main__":
    main()
