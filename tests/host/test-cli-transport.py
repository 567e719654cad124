# SPDX-License-Identifier: LGPL-2.1-or-later
"""The exec: transport at a terminal (a private tmux server): the transport
command runs in its own session, so the keys that make the terminal signal its
foreground process group (^C, ^\\, ^Z) reach guestlink, which forwards them,
and never the transport (here socat to a real agent on a Unix socket)."""

import os
import shutil
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import gltest as g  # noqa: E402
from glagent import Agent, proc_children  # noqa: E402
from termlib import CLI, Tmux  # noqa: E402

if not shutil.which("tmux"):
    g.skip_all("tmux is not installed")
if not shutil.which("socat"):
    g.skip_all("socat is not installed")


def stat_of(pid):
    """(comm, ppid, pgid, sid) of pid, or None once it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    rest = s[s.rindex(")") + 2:].split()
    return s[s.index("(") + 1:s.rindex(")")], int(rest[1]), int(rest[2]), int(rest[3])


def wait_for(fn, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(0.05)


agent = Agent()
address = "'exec:socat - UNIX-CONNECT:%s'" % agent.sock
AFTER = "; echo EXIT=$?; sleep 600"

# --- exec without a terminal on the guest side: ^C is SIGINT, forwarded ---
script = "trap 'echo GOT-INT; exit 3' INT; echo READY; while :; do sleep 0.1; done"
t = Tmux("%s -a %s exec -- sh -c \"%s\"%s" % (CLI, address, script, AFTER))
g.ok(t.wait(r"^READY\s*$", 30), "exec: the remote command runs through socat")
cli = wait_for(lambda: proc_children(t.pane_pid, "guestlink"), 10)
socat = wait_for(lambda: cli and proc_children(cli[0], "socat"), 10)
g.ok(cli and socat, "exec: the CLI and its transport (socat) run")
if cli and socat:
    c, s = stat_of(cli[0]), stat_of(socat[0])
    g.ok(s[3] != c[3] and s[2] == socat[0],
         "exec: the transport leads its own session and process group (sid %d, CLI's %d)"
         % (s[3], c[3]))
t.keys("C-c")
g.ok(t.wait(r"GOT-INT\s*$", 20), "exec: ^C reaches the remote command as SIGINT")
g.ok(t.wait(r"^EXIT=3\s*$", 20), "exec: the CLI exits with the remote status (3), "
     "not 255 for a lost transport")
g.ok(socat and wait_for(lambda: stat_of(socat[0]) is None, 20),
     "exec: the transport is gone after the CLI ended")
t.stop()

# --- shell: ^C is a byte for the guest terminal; the transport stays ---
t = Tmux("%s -a %s shell%s" % (CLI, address, AFTER))
g.ok(t.wait(r"[$#] *$", 30), "shell: the prompt appears through socat")
cli = wait_for(lambda: proc_children(t.pane_pid, "guestlink"), 10)
socat = wait_for(lambda: cli and proc_children(cli[0], "socat"), 10)
t.type("sleep 100\n")
time.sleep(0.5)
t.keys("C-c")
t.type("echo ALIVE$((3+3))\n")
g.ok(t.wait(r"^ALIVE6\s*$", 20), "shell: ^C interrupts a remote sleep, the session survives")
g.ok(socat and stat_of(socat[0]) is not None, "shell: the transport survived ^C")
t.keys("C-\\")
t.type("echo STILL$((4+4))\n")
g.ok(t.wait(r"^STILL8\s*$", 20), "shell: ^\\ too leaves the transport and the session alone")
t.type("exit 5\n")
g.ok(t.wait(r"^EXIT=5\s*$", 20), "shell: exit 5 ends the CLI with status 5")
g.ok(socat and wait_for(lambda: stat_of(socat[0]) is None, 20),
     "shell: the transport is gone after the CLI ended")
t.stop()

g.ok(agent.alive(), "the agent is still running")
agent.stop()
g.done()
