# SPDX-License-Identifier: LGPL-2.1-or-later
"""exec.start with a pty and exec.resize, through a real agent on a Unix socket:
a terminal in a new session, its size, SIGWINCH, raw bytes both ways, bulk
output complete, exit status and signal."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gltest as g  # noqa: E402
from agentlib import Agent, b64, unb64, error_code  # noqa: E402

MiB = 1024 * 1024
agent = Agent({"max_inflight": 512, "exec": {"max_output_bytes": MiB}})
c = agent.client()


class Term:
    """One exec.start with a pty, output gathered from exec.output notifications."""

    def __init__(self, argv, rows=30, cols=100, **kw):
        p = {"argv": argv, "pty": {"rows": rows, "cols": cols}, "stream": True,
             "stdin": "stream"}
        p.update(kw)
        self.id = c.result("exec.start", p)["id"]
        self.out = bytearray()
        self.exit = None

    def pump(self, timeout=30):
        try:
            n = c.note(timeout)
        except TimeoutError:
            return
        params = n.get("params", {})
        if params.get("id") != self.id:
            return
        if n["method"] == "exec.output":
            self.out += unb64(params["data"])
        elif n["method"] == "exec.exit":
            self.exit = params

    def expect(self, needle, timeout=30):
        deadline = time.monotonic() + timeout
        while needle not in self.out:
            if self.exit is not None or time.monotonic() > deadline:
                return False
            self.pump(max(0.1, deadline - time.monotonic()))
        return True

    def write(self, data):
        c.result("exec.write", {"id": self.id, "data": b64(data)})

    def wait_exit(self, timeout=30):
        deadline = time.monotonic() + timeout
        while self.exit is None and time.monotonic() < deadline:
            self.pump(max(0.1, deadline - time.monotonic()))
        return self.exit


# --- a terminal: tty, size, session, TERM ---
t = Term(["sh", "-c", 'tty; stty size; echo "term=$TERM"; ps -o sid=,tty= -p $$; echo END'])
g.ok(t.expect(b"END"), "the program's output comes back")
lines = bytes(t.out).split(b"\r\n")
g.ok(lines[0].startswith(b"/dev/pts/"), "tty names a /dev/pts/N (%r)" % lines[0])
g.is_eq(lines[1], b"30 100", "stty size shows the rows and cols asked for")
g.is_eq(lines[2], b"term=xterm-256color", "TERM defaults to xterm-256color")
sid_tty = lines[3].split()
g.ok(len(sid_tty) == 2 and sid_tty[1] == lines[0][5:],
     "the child's session has the pty as its controlling terminal (%r)" % lines[3])
e = t.wait_exit()
g.is_eq((e or {}).get("code"), 0, "exec.exit reports code 0")

t = Term(["sh", "-c", 'echo "$TERM"'], env=["TERM=vt100"], pty={"rows": 5, "cols": 7,
                                                                 "term": "screen"})
t.wait_exit()
g.is_eq(bytes(t.out), b"vt100\r\n", "an explicit TERM in env wins over pty.term")

# --- resize and SIGWINCH ---
t = Term(["sh", "-c", "trap 'echo WINCH; stty size' WINCH; echo READY; "
          "while :; do sleep 0.05; done"])
g.ok(t.expect(b"READY"), "resize: the program is ready")
c.result("exec.resize", {"id": t.id, "rows": 40, "cols": 132})
g.ok(t.expect(b"WINCH\r\n40 132"), "exec.resize: the program gets SIGWINCH and sees 40 132")
c.result("exec.signal", {"id": t.id, "signal": "KILL"})
e = t.wait_exit()
g.is_eq((e or {}).get("signal"), 9, "exec.exit reports the signal of a killed terminal program")
a = c.call("exec.resize", {"id": t.id, "rows": 10, "cols": 10})
g.is_eq(error_code(a), -32000, "exec.resize after the exit is an OS error (ESRCH)")

s = c.result("exec.start", {"argv": ["true"]})
c.result("exec.wait", {"id": s["id"], "timeout_ms": 10000})
a = c.call("exec.resize", {"id": s["id"], "rows": 10, "cols": 10})
g.is_eq(error_code(a), -32602, "exec.resize of a process without a pty is refused")
for bad in ({"rows": 0}, {"cols": 70000}, {"term": "a b"}, {"term": 5}, {"bogus": 1}):
    a = c.call("exec.start", {"argv": ["true"], "pty": bad})
    g.is_eq(error_code(a), -32602, "pty %r is refused" % bad)

# --- Ctrl-C as a byte interrupts the foreground program; the shell goes on ---
t = Term(["sh", "-i"], env=["PS1=PROMPT$ "])
g.ok(t.expect(b"PROMPT$ "), "an interactive shell prints its prompt")
t.write(b"sleep 100\r")


def sleeping():
    for d in os.listdir("/proc"):
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                if f.read() == b"sleep\x00100\x00":
                    return True
        except OSError:
            pass
    return False


deadline = time.monotonic() + 20
while not sleeping() and time.monotonic() < deadline:
    time.sleep(0.05)
t.write(b"\x03")
t.write(b"echo alive $((6*7))\r")
g.ok(t.expect(b"alive 42"), "^C interrupts sleep 100 and the shell carries on")
if b"alive 42" not in t.out:
    g.diag("terminal output: %r" % bytes(t.out[-500:]))
t.write(b"exit 7\r")
e = t.wait_exit()
g.is_eq((e or {}).get("code"), 7, "exit 7 in the shell gives code 7")

# --- the streaming client leaves: the terminal's process group gets SIGHUP ---
mark = os.path.join(g.tmpdir(), "hup")
c2 = agent.client()
s = c2.result("exec.start", {"argv": ["sh", "-c", "trap 'echo hup > %s; exit 0' HUP; "
                                      "echo READY; while :; do sleep 0.1; done" % mark],
                             "pty": {}, "stream": True, "stdin": "stream"})
n = c2.note(30)
g.ok(n.get("method") == "exec.output", "hangup: the program is running")
c2.close()
r = c.result("exec.wait", {"id": s["id"], "timeout_ms": 20000})
g.ok(r.get("code") == 0 and os.path.exists(mark),
     "hangup: a pty program whose client left gets SIGHUP and ends (%r)" % r.get("code"))

# --- raw bytes: every value 0-255, both ways ---
every = bytes(range(256)) * 4
t = Term(["sh", "-c", "stty raw -echo; echo READY; head -c %d > /dev/null; "
          "echo GOT; head -c %d; echo; echo END" % (len(every), len(every))])
g.ok(t.expect(b"READY"), "raw: the program switched to raw mode")
# First block is thrown away only to prove flow; the second is echoed back by head.
t.write(every)
g.ok(t.expect(b"GOT"), "raw: 1024 bytes of every value were read by the program")
t.write(every)
g.ok(t.expect(b"END"), "raw: the program ended")
out = bytes(t.out)
# After "GOT\n" (no OPOST in raw mode: \n stays \n) come the echoed bytes.
got = out[out.index(b"GOT\n") + 4:] if b"GOT\n" in out else out
g.is_eq(got[:len(every)], every, "raw: bytes 0-255 written to the terminal arrive unchanged")

data = bytes(range(256)) * 16
path = os.path.join(g.tmpdir(), "bytes")
with open(path, "wb") as f:
    f.write(data)
t = Term(["sh", "-c", "stty raw -echo; printf S; cat %s; printf E" % path])
t.wait_exit()
out = bytes(t.out)
g.is_eq(out[out.index(b"S") + 1:out.rindex(b"E")] if b"S" in out else out, data,
        "raw: bytes 0-255 written by the program arrive unchanged")

# --- 100 MiB of output arrive complete ---
N = 100 * MiB
t = Term(["sh", "-c", "stty raw -echo; head -c %d /dev/zero | tr '\\0' x; printf E" % N])
n = 0
t0 = time.monotonic()
deadline = t0 + 600
while t.exit is None and time.monotonic() < deadline:
    m = c.note(60)
    params = m.get("params", {})
    if params.get("id") != t.id:
        continue
    if m["method"] == "exec.output":
        d = unb64(params["data"])
        n += len(d)
        last = d
    else:
        t.exit = params
dt = time.monotonic() - t0
g.is_eq(n, N + 1, "100 MiB of terminal output arrive complete (plus the end mark)")
g.ok(n and last.endswith(b"E"), "the end mark comes last")
g.diag("100 MiB through the pty as exec.output notifications: %.1f s, %.0f MiB/s"
       % (dt, N / MiB / dt if dt else 0))

g.is_eq(agent.stop(), 0, "the agent exits 0")
g.done()
