# SPDX-License-Identifier: LGPL-2.1-or-later
"""Children of the agent (exec and plugins) get exactly fds 0, 1, 2 and none of
the variables systemd hands to the agent itself, however the agent was started:
here from a "shell" that left a pipe and a file open without O_CLOEXEC and set
JOURNAL_STREAM, NOTIFY_SOCKET, LISTEN_* and WATCHDOG_*."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gltest as g  # noqa: E402
from agentlib import Agent, unb64  # noqa: E402

# Stray fds as an interactive shell might leave them: inheritable, not 0-2.
stray_r, stray_w = os.pipe()
stray_file = os.open("/dev/null", os.O_RDONLY)
for fd in (stray_r, stray_w, stray_file):
    os.set_inheritable(fd, True)

SYSTEMD_VARS = {
    "JOURNAL_STREAM": "8:12345",
    "NOTIFY_SOCKET": "/nonexistent/notify",
    "WATCHDOG_USEC": "0",
    "WATCHDOG_PID": "1",  # not the agent: it must not send watchdog pings
    "LISTEN_FDNAMES": "stray",
    "INVOCATION_ID": "0123456789abcdef0123456789abcdef",
}

pdir = g.tmpdir()
# Open fds found by fstat() alone, so that the probe opens none of its own (a
# shell's "ls /proc/$$/fd" also sees the shell's pipeline and script fds).
PROBE = "import os\nfor fd in range(4096):\n try: os.fstat(fd)\n except OSError: continue\n print(fd)\n"
plugin = os.path.join(pdir, "test.fds")
with open(plugin, "w") as f:
    # The plugin's result: its open fds and its environment's names.
    f.write("#!/usr/bin/python3\nimport json, os, sys\nsys.stdin.read()\n"
            "fds = [fd for fd in range(4096) if os.path.exists('/proc/self/fdinfo/%d' % fd)]\n"
            "json.dump({'fds': ' '.join(str(fd) for fd in fds),"
            " 'vars': ' '.join(sorted(os.environ))}, sys.stdout)\n")
os.chmod(plugin, 0o755)

agent = Agent({"plugin_dir": pdir}, env=SYSTEMD_VARS,
              pass_fds=(stray_r, stray_w, stray_file))
c = agent.client()

# The agent itself did inherit them (otherwise this test proves nothing).
agent_fds = set(int(x) for x in os.listdir("/proc/%d/fd" % agent.proc.pid))
g.ok({stray_r, stray_w, stray_file} <= agent_fds,
     "precondition: the agent holds the stray fds %d %d %d" % (stray_r, stray_w, stray_file))

def child_fds(**kw):
    p = {"argv": ["python3", "-c", PROBE]}
    p.update(kw)
    r = c.result("exec.run", p)
    return unb64(r["stdout"]).decode().split()


g.is_eq(child_fds(), ["0", "1", "2"], "exec.run: the child has exactly fds 0, 1, 2")
g.is_eq(child_fds(stdin="c3RkaW4="), ["0", "1", "2"], "exec.run with stdin data: fds 0, 1, 2")
g.is_eq(child_fds(capture="merged"), ["0", "1", "2"], "exec.run merged capture: fds 0, 1, 2")

# exec.start with streamed stdin: the stdin pipe's other end stays in the agent only.
s = c.result("exec.start", {"argv": ["python3", "-c", PROBE], "stdin": "stream"})
c.result("exec.write", {"id": s["id"], "eof": True})
r = c.result("exec.wait", {"id": s["id"], "timeout_ms": 20000})
g.is_eq(unb64(r["stdout"]).decode().split(), ["0", "1", "2"],
        "exec.start with stdin stream: fds 0, 1, 2")

r = c.result("exec.run", {"argv": ["env"]})
names = set(line.split("=", 1)[0] for line in unb64(r["stdout"]).decode().splitlines())
leaked = sorted(names & set(SYSTEMD_VARS) | {n for n in names if n.startswith("LISTEN_")})
g.is_eq(leaked, [], "exec: no JOURNAL_STREAM/NOTIFY_SOCKET/LISTEN_*/WATCHDOG_*/INVOCATION_ID")

r = c.result("exec.run", {"argv": ["sh", "-c", 'printf %s "$JOURNAL_STREAM"'],
                          "env": ["JOURNAL_STREAM=given"]})
g.is_eq(unb64(r["stdout"]), b"given", "a variable the caller sets on purpose still reaches the child")

r = c.result("test.fds", {})
g.is_eq(r.get("fds", "").split(), ["0", "1", "2"], "plugin: exactly fds 0, 1, 2")
leaked = sorted(set(r.get("vars", "").split()) & set(SYSTEMD_VARS))
g.is_eq(leaked, [], "plugin: none of systemd's variables for the agent")

g.is_eq(agent.stop(), 0, "the agent exits 0")
for fd in (stray_r, stray_w, stray_file):
    os.close(fd)
g.done()
