# SPDX-License-Identifier: LGPL-2.1-or-later
"""guestlink exec / cp / freeze / thaw / shutdown against a real agent."""

import os
import random
import signal
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gltest as g  # noqa: E402
from agentlib import Agent  # noqa: E402

agent = Agent()
d = g.tmpdir()
cli = g.build_path("host", "guestlink")
env = {"GUESTLINK_ADDRESS": "unix:" + agent.sock}


def run(args, stdin=None, timeout=60):
    p = subprocess.run([cli] + args, input=stdin, capture_output=True, timeout=timeout,
                       env=dict(os.environ, **env))
    return p.returncode, p.stdout, p.stderr


# --- exec ---
rc, out, err = run(["exec", "--", "sh", "-c", "echo out; echo err >&2; exit 5"])
g.is_eq((rc, out, err), (5, b"out\n", b"err\n"), "exec: stdout, stderr and the exit status")
rc, out, _ = run(["exec", "--", "sh", "-c", "kill -TERM $$"])
g.is_eq(rc, 128 + 15, "exec: a signal becomes 128+N")
rc, out, _ = run(["exec", "--env", "A=1", "--env", "B=two", "--cwd", d, "--",
                  "sh", "-c", 'echo "$A $B $PWD"'])
g.is_eq((rc, out), (0, ("1 two %s\n" % d).encode()), "exec: --env and --cwd")
data = os.urandom(3 * 1000 * 1000)
rc, out, _ = run(["exec", "--stdin", "--", "cat"], stdin=data)
g.ok(rc == 0 and out == data, "exec --stdin: 3 MB of random bytes round trip")
for what, path in (("/dev/null", "/dev/null"), ("a regular file", __file__)):
    with open(path, "rb") as f:
        want = f.read()
        f.seek(0)
        p = subprocess.run([cli, "exec", "--stdin", "--", "cat"], stdin=f, capture_output=True,
                           timeout=30, env=dict(os.environ, **env))
    g.ok(p.returncode == 0 and p.stdout == want, "exec --stdin from %s (not pollable)" % what)
rc, out, _ = run(["exec", "--", "cat"], stdin=b"not forwarded")
g.is_eq((rc, out), (0, b""), "exec without --stdin gives the command an empty stdin")
t0 = time.monotonic()
rc, _, err = run(["exec", "--timeout", "1", "--", "sleep", "20"])
g.ok(rc == 137 and b"timed out" in err and time.monotonic() - t0 < 10,
     "exec --timeout kills the command (status %d)" % rc)

# Output is live: the first line arrives long before the command ends.
p = g.Proc([cli, "exec", "--", "sh", "-c", "echo first; sleep 3; echo second"],
           env=env, stdout=subprocess.PIPE)
t0 = time.monotonic()
line = p.p.stdout.readline()
dt = time.monotonic() - t0
g.ok(line == b"first\n" and dt < 2.5, "exec streams output live (%.2fs)" % dt)
p.p.stdout.read()
g.is_eq(p.p.wait(10), 0, "and exits 0 afterwards")
p.stop()

# Ctrl-C is forwarded to the guest process as SIGINT.
p = g.Proc([cli, "exec", "--", "sh", "-c",
            "trap 'echo interrupted; exit 42' INT; echo ready; while :; do sleep 0.1; done"],
           env=env, stdout=subprocess.PIPE)
g.is_eq(p.p.stdout.readline(), b"ready\n", "the trapping command started")
os.kill(p.pid, signal.SIGINT)
rest = p.p.stdout.read()
g.is_eq((p.p.wait(10), rest), (42, b"interrupted\n"), "SIGINT reaches the guest process's trap")
p.stop()

rc, _, err = run(["exec"])
g.is_eq(rc, 2, "exec without a command is a usage error (2)")
rc, _, err = run(["exec", "--env", "NOEQ", "--", "true"])
g.is_eq(rc, 2, "exec --env without = is a usage error")
rc, _, err = run(["exec", "--", "/no/such/program"])
g.ok(rc == 127 and b"/no/such/program: No such file or directory" in err,
     "exec of a missing program fails with 127 and names it")

# --- cp ---
rng = random.Random(7)
good = 0
sizes = [0, 1, 1024 * 1024, 1024 * 1024 + 1, rng.randrange(1, 20 * 1024 * 1024)]
for k, n in enumerate(sizes):
    src = os.path.join(d, "src%d" % k)
    with open(src, "wb") as f:
        f.write(rng.randbytes(n))
    os.chmod(src, 0o640 if k % 2 else 0o755)
    up = os.path.join(d, "up%d" % k)
    down = os.path.join(d, "down%d" % k)
    rc1, _, e1 = run(["cp", src, "guest:" + up])
    rc2, _, e2 = run(["cp", "guest:" + up, down])
    with open(src, "rb") as a, open(up, "rb") as b, open(down, "rb") as c:
        same = a.read() == b.read() == c.read()
    modes = {stat.S_IMODE(os.stat(x).st_mode) for x in (src, up, down)}
    good += rc1 == 0 and rc2 == 0 and same and len(modes) == 1
g.is_eq(good, len(sizes), "cp both ways: %d random sizes byte for byte, mode kept" % len(sizes))

rc, _, err = run(["cp", "--verify", os.path.join(d, "src4"), "guest:" + os.path.join(d, "v")])
g.ok(rc == 0 and b"verified" in err, "cp --verify compares SHA-256 of both ends")
os.mkdir(os.path.join(d, "dir"))
rc, _, _ = run(["cp", os.path.join(d, "src2"), "guest:" + os.path.join(d, "dir")])
g.ok(rc == 0 and os.path.exists(os.path.join(d, "dir", "src2")),
     "cp into a guest directory keeps the name")
rc, _, _ = run(["cp", "guest:" + os.path.join(d, "src3"), os.path.join(d, "dir") + "/"])
g.ok(rc == 0 and os.path.exists(os.path.join(d, "dir", "src3")),
     "cp from the guest into a local directory keeps the name")
rc, _, _ = run(["cp", "guest:/proc/self/status", os.path.join(d, "status")])
with open(os.path.join(d, "status"), "rb") as f:
    g.ok(rc == 0 and b"Name:" in f.read(), "cp of a file that reports size 0 reads it to the end")
before = set(os.listdir(d))
rc, _, err = run(["cp", "guest:" + os.path.join(d, "missing"), os.path.join(d, "m")])
g.ok(rc == 1 and b"missing: No such file or directory" in err and set(os.listdir(d)) == before,
     "cp of a missing guest file fails with 1 and leaves nothing")
rc, _, _ = run(["cp", os.path.join(d, "src1"), os.path.join(d, "x")])
g.is_eq(rc, 2, "cp without a guest: side is a usage error")
rc, _, _ = run(["cp", "guest:/a", "guest:/b"])
g.is_eq(rc, 2, "cp with two guest: sides is a usage error")
rc, out, _ = run(["--json", "cp", os.path.join(d, "src2"), "guest:" + os.path.join(d, "j")])
g.ok(rc == 0 and b'"bytes":1048576' in out.replace(b" ", b""), "cp --json reports the bytes")

# --- freeze / thaw / shutdown: argument checking only (this is not a VM) ---
rc, _, err = run(["freeze", "--timeout", "5", d])
g.ok(rc == 1 and b"not a mount point" in err, "freeze of a non-mount point fails cleanly")
rc, _, _ = run(["freeze", "--timeout", "0"])
g.is_eq(rc, 2, "freeze --timeout 0 is a usage error")
rc, out, _ = run(["thaw"])
g.is_eq((rc, out), (0, b"thawed 0 filesystem(s)\n"), "thaw with nothing frozen")
rc, _, _ = run(["shutdown", "--delay", "-1"])
g.is_eq(rc, 2, "shutdown --delay -1 is a usage error")
rc, _, _ = run(["reboot", "--halt"])
g.is_eq(rc, 2, "reboot --halt is a usage error")
rc, _, _ = run(["shutdown", "now"])
g.is_eq(rc, 2, "shutdown with a stray argument is a usage error")

g.ok(agent.alive(), "the agent is still running")
g.is_eq(agent.children("Z"), [], "no zombies")
g.is_eq(agent.stop(), 0, "the agent exits 0")
g.done()
