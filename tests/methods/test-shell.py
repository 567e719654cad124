# SPDX-License-Identifier: LGPL-2.1-or-later
"""guestlink shell / exec -t through a real terminal (a private tmux server),
against the agent on a Unix socket and through backend + guestsim: prompt,
tty, window size and resize, less, ^C, exit status, the local terminal back
in cooked mode on every way out (exit, ~., SIGTERM, agent killed)."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import gltest as g  # noqa: E402
from agentlib import Agent  # noqa: E402
from termlib import CLI, GUESTSIM, Stack, Tmux  # noqa: E402

if not shutil.which("tmux"):
    g.skip_all("tmux is not installed")
if not os.access(GUESTSIM, os.X_OK):
    g.skip_all("guestsim not built")

# After the CLI: its status and the local terminal's modes, then wait to be read.
AFTER = "; echo EXIT=$?; stty -a | tr ' ' '\\n' | grep -E '^-?(icanon|echo|isig)$' | tr '\\n' ' '; " \
        "echo; echo DONE; sleep 600"


def cooked(t):
    """True when the pane's `stty -a` shows icanon, echo and isig on."""
    m = t.wait(r"^((?:-?\w+ )+)\s*$\n^DONE", 20)
    modes = m.group(1).split() if m else []
    return sorted(modes) == ["echo", "icanon", "isig"], modes


def session(address, cli_args, name):
    cmd = "%s -a %s %s%s" % (CLI, address, cli_args, AFTER)
    return Tmux(cmd)


def run_checks(address, label, agent):
    # --- the shell: prompt, tty, size, resize, less, ^C, exit 7 ---
    t = session(address, "shell", label)
    g.ok(t.wait(r"[$#] *$", 30), "%s: the login shell's prompt appears" % label)
    t.type("tty; echo SIZE=$(stty size)\n")
    g.ok(t.wait(r"^/dev/pts/\d+\s*$"), "%s: tty names a /dev/pts/N" % label)
    g.ok(t.wait(r"^SIZE=30 100\s*$"), "%s: stty size shows the tmux window (30 100)" % label)
    t.resize(120, 40)
    time.sleep(0.3)
    t.type("echo SIZE2=$(stty size)\n")
    g.ok(t.wait(r"^SIZE2=40 120\s*$"), "%s: stty size follows a tmux resize (40 120)" % label)
    t.type("less /etc/os-release\n")
    g.ok(t.wait(r"(END\)|^:)", 20) and re.search(r"^PRETTY_NAME=", t.screen(), re.M),
         "%s: less draws the file" % label)
    t.type("q")
    t.type("echo BACK$((2+2))\n")
    g.ok(t.wait(r"^BACK4\s*$"), "%s: less quits and the shell is back" % label)
    t.type("sleep 100\n")
    time.sleep(0.5)
    t.keys("C-c")
    t.type("echo ALIVE$((3+3))\n")
    g.ok(t.wait(r"^ALIVE6\s*$", 20), "%s: ^C interrupts a remote sleep 100, the session survives"
         % label)
    t.type("cat\n")
    time.sleep(0.5)
    t.keys("C-d")
    t.type("echo EOF$((4+4))\n")
    g.ok(t.wait(r"^EOF8\s*$", 20), "%s: ^D ends a remote cat, the shell carries on" % label)
    t.type("sleep 100\n")
    time.sleep(0.5)
    t.keys("C-z")
    g.ok(t.wait(r"[Ss]topped.*sleep 100", 20), "%s: ^Z stops a remote sleep (job control)"
         % label)
    # wait: until the job has ended, bash would refuse "exit" (stopped jobs)
    t.type("kill %1; wait %1; echo Z$((1+2))\n")
    g.ok(t.wait(r"^Z3\s*$", 20), "%s: the shell is back after ^Z" % label)
    t.type("exit 7\n")
    g.ok(t.wait(r"^EXIT=7\s*$"), "%s: exit 7 ends the CLI with status 7" % label)
    ok, modes = cooked(t)
    g.ok(ok, "%s: after exit the local terminal is in cooked mode (%s)" % (label, modes))
    t.stop()

    # --- exec -t: a command on a terminal; ~. drops the session ---
    t = session(address, "exec -t -- sh -c 'tty; cat'", label)
    g.ok(t.wait(r"^/dev/pts/\d+\s*$"), "%s: exec -t runs the command on a terminal" % label)
    t.type("hello\n")
    g.ok(t.wait(r"^hello\s*$"), "%s: typed bytes reach the command" % label)
    t.type("~.")
    g.ok(t.wait(r"^EXIT=255\s*$"), "%s: ~. at the start of a line drops the session (255)" % label)
    ok, modes = cooked(t)
    g.ok(ok, "%s: after ~. the terminal is in cooked mode (%s)" % (label, modes))
    t.stop()

    # --- SIGTERM to the CLI ---
    t = session(address, "exec -t -- sh -c 'echo READY; sleep 100'", label)
    g.ok(t.wait(r"^READY\s*$"), "%s: SIGTERM case: the command runs" % label)
    pids = t.descendants("guestlink")
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    g.ok(pids and t.wait(r"^EXIT=143\s*$"), "%s: SIGTERM ends the CLI with 143" % label)
    ok, modes = cooked(t)
    g.ok(ok, "%s: after SIGTERM the terminal is in cooked mode (%s)" % (label, modes))
    t.stop()


tmp = g.tmpdir()
agent = Agent()
run_checks("unix:" + agent.sock, "unix", agent)

stack = Stack(tmp, {9731: agent.sock})
run_checks(stack.address(), "hybrid", agent)

# --- the agent killed mid-session: terminal restored, non-zero exit ---
for label in ("unix", "hybrid"):
    address = "unix:" + agent.sock if label == "unix" else stack.address()
    t = session(address, "shell", label)
    g.ok(t.wait(r"[$#] *$", 30), "%s: agent-kill case: prompt" % label)
    agent.proc.stop(signal.SIGKILL)
    m = t.wait(r"^EXIT=(\d+)\s*$", 20)
    g.ok(m and m.group(1) != "0", "%s: killing the agent ends the CLI non-zero (%s)"
         % (label, m and m.group(1)))
    ok, modes = cooked(t)
    g.ok(ok, "%s: after the agent died the terminal is in cooked mode (%s)" % (label, modes))
    t.stop()
    agent = Agent()
    if label == "unix":
        stack.stop()
        stack = Stack(g.tmpdir(), {9731: agent.sock})

# --- -t without a terminal ---
p = subprocess.run([CLI, "-a", "unix:" + agent.sock, "exec", "-t", "--", "true"],
                   stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
g.ok(p.returncode == 2 and "not a terminal" in p.stderr,
     "exec -t with stdin not a terminal is refused (2, %r)" % p.stderr.strip())
p = subprocess.run([CLI, "-a", "unix:" + agent.sock, "exec", "-tt", "--", "sh", "-c",
                    "read x; echo \"got $x $(stty size)\"; exit 3"],
                   input="line\n", capture_output=True, text=True, timeout=30)
g.ok(p.returncode == 3 and "got line 24 80" in p.stdout,
     "exec -tt forces a terminal without one (status 3, %r)" % p.stdout.strip())
p = subprocess.run([CLI, "-a", "unix:" + agent.sock, "exec", "-tt", "--", "sh"],
                   input="echo hi-$((5*5))\n", capture_output=True, text=True, timeout=30)
g.ok(p.returncode == 0 and "hi-25" in p.stdout,
     "exec -tt: the end of a piped stdin ends the remote shell (^D) (%d, %r)"
     % (p.returncode, p.stdout.strip()[-100:]))

stack.stop()
g.is_eq(agent.stop(), 0, "the agent exits 0")
g.done()
