#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Children of the agent (exec and plugins) start with every signal at its
default disposition and none blocked, however the agent was started: here
with SIGUSR1 and SIGWINCH blocked and SIGQUIT, SIGUSR2 and libc's own
signals 32 and 33 ignored by whoever started it, on top of the agent's own handlers (SIGTERM, SIGINT, SIGHUP) and
its ignored SIGPIPE. /proc/PID/status of the child shows SigBlk, SigIgn and
SigCgt all zero."""

import ctypes
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gltest as g  # noqa: E402
from agentlib import Agent, unb64  # noqa: E402


# libc keeps signals 32 and 33 for itself and refuses to change them, but an
# ignored one is inherited like any other: ignored here through the kernel.
SYS_RT_SIGACTION = {"x86_64": 13, "aarch64": 134}.get(os.uname().machine)


def ignore_libc_signals():
    if SYS_RT_SIGACTION is None:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    ign = (ctypes.c_ulong * 16)(1)  # handler SIG_IGN, no flags, empty mask
    for sig in (32, 33):
        libc.syscall(ctypes.c_long(SYS_RT_SIGACTION), ctypes.c_long(sig), ign, None,
                     ctypes.c_size_t(8))


def start_with_signals_set():
    signal.signal(signal.SIGQUIT, signal.SIG_IGN)
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGWINCH})
    ignore_libc_signals()


def sig_fields(text):
    return {k: int(v, 16) for k, v in (line.split(":\t") for line in text.splitlines()
                                       if line.startswith(("SigBlk:", "SigIgn:", "SigCgt:")))}


def bit(sig):
    return 1 << (sig - 1)


pdir = g.tmpdir()
plugin = os.path.join(pdir, "test.sigs")
with open(plugin, "w") as f:
    # The shell catches signals of its own; what it was given survives its exec
    # of awk (blocked and ignored ones: caught ones are reset by any exec).
    f.write("#!/bin/sh\ncat >/dev/null\nexec awk 'BEGIN { printf \"{\" } "
            "/^Sig(Blk|Ign|Cgt):/ { printf \"%s\\\"%s\\\": \\\"%s\\\"\", sep, "
            "substr($1, 1, length($1) - 1), $2; sep = \", \" } END { print \"}\" }' "
            "/proc/self/status\n")
os.chmod(plugin, 0o755)

agent = Agent({"plugin_dir": pdir}, preexec_fn=start_with_signals_set)
c = agent.client()

with open("/proc/%d/status" % agent.proc.pid) as f:
    own = sig_fields(f.read())
g.ok(own["SigBlk"] & bit(signal.SIGUSR1) and own["SigBlk"] & bit(signal.SIGWINCH),
     "precondition: the agent runs with SIGUSR1 and SIGWINCH blocked (%x)" % own["SigBlk"])
g.ok(own["SigIgn"] & bit(signal.SIGQUIT) and own["SigIgn"] & bit(signal.SIGPIPE),
     "precondition: the agent ignores SIGQUIT and SIGPIPE (%x)" % own["SigIgn"])
if SYS_RT_SIGACTION is not None:
    g.ok(own["SigIgn"] & bit(32) and own["SigIgn"] & bit(33),
         "precondition: the agent ignores signals 32 and 33 (%x)" % own["SigIgn"])
g.ok(own["SigCgt"] & bit(signal.SIGTERM) and own["SigCgt"] & bit(signal.SIGINT),
     "precondition: the agent catches SIGTERM and SIGINT (%x)" % own["SigCgt"])

zero = {"SigBlk": 0, "SigIgn": 0, "SigCgt": 0}
r = c.result("exec.run", {"argv": ["cat", "/proc/self/status"]})
g.is_eq(sig_fields(unb64(r["stdout"]).decode()), zero,
        "exec.run: the child blocks, ignores and catches nothing")
r = c.result("exec.run", {"argv": ["cat", "/proc/self/status"], "pty": {}})
g.is_eq(sig_fields(unb64(r["stdout"]).decode().replace("\r\n", "\n")), zero,
        "exec.run on a terminal: the same")
s = c.result("exec.start", {"argv": ["cat", "/proc/self/status"]})
r = c.result("exec.wait", {"id": s["id"], "timeout_ms": 20000})
g.is_eq(sig_fields(unb64(r["stdout"]).decode()), zero, "exec.start: the same")
r = c.result("test.sigs", {})
g.is_eq({k: int(v, 16) for k, v in r.items()}, zero, "a plugin: the same")
g.is_eq(agent.stop(), 0, "agent exits 0")
g.done()
