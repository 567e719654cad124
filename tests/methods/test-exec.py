# SPDX-License-Identifier: LGPL-2.1-or-later
"""exec.*: real processes through a running agent on a Unix socket."""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gltest as g  # noqa: E402
from agentlib import Agent, b64, unb64, error_code  # noqa: E402

MiB = 1024 * 1024
agent = Agent({"max_inflight": 512, "exec": {"max_output_bytes": 1 * MiB, "result_ttl_s": 600}})
c = agent.client()


def run(argv, **kw):
    p = dict(kw)
    p["argv"] = argv
    return c.result("exec.run", p)


# --- exit codes, signals, output ---
r = run(["sh", "-c", "exit 7"])
g.is_eq(r.get("code"), 7, "exit code 7 is reported")
r = run(["true"])
g.is_eq((r.get("code"), r.get("signal")), (0, None), "true exits 0 without a signal")
r = run(["sh", "-c", "kill -KILL $$"])
g.is_eq((r.get("signal"), r.get("code")), (9, None), "a process killed by SIGKILL reports signal 9")

r = run(["sh", "-c", "printf out; printf err >&2"])
g.is_eq((unb64(r["stdout"]), unb64(r["stderr"])), (b"out", b"err"),
        "stdout and stderr are kept apart")
r = run(["sh", "-c", "echo 1; echo 2 >&2; echo 3; echo 4 >&2"], capture="merged")
g.is_eq(unb64(r["stdout"]), b"1\n2\n3\n4\n", "merged capture keeps the order of both streams")
r = run(["sh", "-c", "echo hidden; echo hidden >&2"], capture="none")
g.is_eq((r["stdout"], r["stderr"]), ("", ""), "capture none keeps nothing")

data = os.urandom(200000)
r = run(["cat"], stdin=b64(data))
g.ok(unb64(r["stdout"]) == data, "stdin round trip of 200000 random bytes through cat")

r = run(["sh", "-c", 'printf "%s|%s" "$FOO" "$PWD"'], env=["FOO=bar baz"], cwd="/tmp")
g.is_eq(unb64(r["stdout"]), b"bar baz|/tmp", "env and cwd reach the child")
r = run(["sh", "-c", 'printf "%s" "${NOTIFY_SOCKET-unset}"'])
g.is_eq(unb64(r["stdout"]), b"unset", "systemd's variables for the agent are not inherited")
r = run(["sh", "-c", "echo $$; ps -o sid= -p $$"])
lines = unb64(r["stdout"]).split()
g.ok(len(lines) == 2 and lines[0] == lines[1], "the child leads its own session")

if os.geteuid() == 0:
    r = run(["id", "-u"], user="nobody")
    g.is_eq(unb64(r["stdout"]).strip(), b"65534", "user: runs as nobody when the agent is root")
else:
    a = c.call("exec.run", {"argv": ["id"], "user": "nobody"})
    g.is_eq(error_code(a), -32000, "user: EPERM when the agent is not root")

r = run(["head", "-c", str(3 * MiB), "/dev/zero"])
g.ok(r["truncated"] and r["stdout_truncated"] and len(unb64(r["stdout"])) == MiB,
     "output beyond max_output_bytes is cut at the cap and flagged truncated")

t0 = time.monotonic()
r = run(["sleep", "30"], timeout_ms=300)
dt = time.monotonic() - t0
g.ok(r.get("timed_out") and r.get("signal") == 9 and dt < 5,
     "timeout_ms kills the process group (%.2fs)" % dt)

# --- start / status / wait / signal / release ---
s = c.result("exec.start", {"argv": ["sleep", "30"]})
st = c.result("exec.status", {"id": s["id"]})
g.ok(st["running"] and st["pid"] == s["pid"], "exec.status of a running process answers at once")
wid = c.request("exec.wait", {"id": s["id"]})
ping = c.call("agent.ping")
g.ok("result" in ping, "other calls on the same connection are answered while exec.wait waits")
g.ok(wid not in c.answers, "exec.wait has not answered while the process runs")
r = c.call("exec.wait", {"id": s["id"], "timeout_ms": 200})
g.is_eq(error_code(r), -32004, "exec.wait with timeout_ms answers -32004 while running")
c.result("exec.signal", {"id": s["id"], "signal": "TERM"})
w = c.answer(wid)
g.is_eq(w["result"].get("signal"), 15, "exec.signal TERM ends the process; exec.wait answers")
other = agent.client()
st = other.result("exec.status", {"id": s["id"]})
g.ok(not st["running"] and st["signal"] == 15, "another connection reads the kept result")
other.close()
g.is_eq(error_code(c.call("exec.signal", {"id": s["id"], "signal": 9})), -32000,
        "signalling an exited process answers -32000 (ESRCH)")
c.result("exec.release", {"id": s["id"]})
g.is_eq(error_code(c.call("exec.status", {"id": s["id"]})), -32002,
        "after exec.release the id is unknown (-32002)")

s = c.result("exec.start", {"argv": ["sh", "-c", "trap 'echo got INT; exit 3' INT; "
                                     "while :; do sleep 0.05; done"]})
time.sleep(0.3)
c.result("exec.signal", {"id": s["id"], "signal": "SIGINT"})
w = c.result("exec.wait", {"id": s["id"], "timeout_ms": 5000})
g.ok(w.get("code") == 3 and b"got INT" in unb64(w["stdout"]), "SIGINT by name reaches a trap")
g.is_eq(error_code(c.call("exec.release", {"id": 999999})), -32002, "unknown id: -32002")

# --- stdin streaming ---
s = c.result("exec.start", {"argv": ["sh", "-c", "tr a-z A-Z; echo done"], "stdin": "stream"})
c.result("exec.write", {"id": s["id"], "data": b64(b"hello ")})
c.result("exec.write", {"id": s["id"], "data": b64(b"world\n"), "eof": True})
w = c.result("exec.wait", {"id": s["id"], "timeout_ms": 5000})
g.is_eq(unb64(w["stdout"]), b"HELLO WORLD\ndone\n", "exec.write feeds stdin; eof closes it")
g.is_eq(error_code(c.call("exec.write", {"id": s["id"], "data": ""})), -32000,
        "writing after eof answers -32000 (EPIPE)")

# --- live streaming ---
s = c.result("exec.start", {"argv": ["sh", "-c", "echo first; sleep 3; echo second >&2"],
                            "stream": True})
t0 = time.monotonic()
n = c.note(5)
dt = time.monotonic() - t0
g.ok(n["method"] == "exec.output" and unb64(n["params"]["data"]) == b"first\n" and dt < 2.5,
     "output arrives as it is written, not at exit (%.2fs)" % dt)
n = c.note(5)
g.ok(n["params"]["stream"] == "stderr" and unb64(n["params"]["data"]) == b"second\n",
     "stderr chunks are tagged stderr")
n = c.note(5)
g.ok(n["method"] == "exec.exit" and n["params"]["id"] == s["id"] and n["params"]["code"] == 0,
     "exec.exit ends the stream with the exit code")

# 100 MB streamed through a reading client: the agent's memory stays bounded.
rss0 = agent.rss_kb()
s = c.result("exec.start", {"argv": ["head", "-c", str(100 * 1000 * 1000), "/dev/urandom"],
                            "stream": True})
total, peak, exit_note = 0, 0, None
while True:
    n = c.note(60)
    if n["method"] == "exec.exit":
        exit_note = n
        break
    total += len(unb64(n["params"]["data"]))
    if total % (8 * MiB) < 65536:
        peak = max(peak, agent.rss_kb())
peak = max(peak, agent.rss_kb())
g.ok(total == 100 * 1000 * 1000 and exit_note["params"]["code"] == 0,
     "100 MB streamed completely (%d bytes)" % total)
g.ok(peak - rss0 < 48 * 1024, "agent RSS grew by %d KiB while streaming 100 MB" % (peak - rss0))

# Back-pressure: a client that stops reading stops the child.
slow = agent.client()
s = slow.request("exec.start", {"argv": ["head", "-c", str(500 * MiB), "/dev/zero"],
                                "stream": True})
time.sleep(2)
ans = slow.answer(s, 10)
pid = ans["result"]["pid"]
rss1 = agent.rss_kb()
st1 = c.result("exec.status", {"id": ans["result"]["id"]})
time.sleep(1)
rss2 = agent.rss_kb()
g.ok(st1["running"], "the streaming process is still running while its client does not read")
g.ok(rss2 - rss0 < 48 * 1024 and rss2 - rss1 < 8 * 1024,
     "a non-reading client costs bounded memory (%d KiB, then +%d KiB)"
     % (rss2 - rss0, rss2 - rss1))
with open("/proc/%d/wchan" % pid) as f:
    wchan = f.read()
g.ok("pipe" in wchan or wchan in ("0", ""), "the child is blocked writing its pipe (%s)" % wchan)
read = 0
t0 = time.monotonic()
while read < 4 * MiB and time.monotonic() - t0 < 20:
    n = slow.note(10)
    if n["method"] == "exec.output":
        read += len(unb64(n["params"]["data"]))
g.ok(read >= 4 * MiB, "reading again resumes the stream")
slow.close()
c.result("exec.signal", {"id": ans["result"]["id"], "signal": "KILL"})
w = c.result("exec.wait", {"id": ans["result"]["id"], "timeout_ms": 10000})
g.is_eq(w.get("signal"), 9, "after the streaming client left, the process is still managed")

# --- 200 concurrent processes ---
clients = [agent.client() for _ in range(4)]
t0 = time.monotonic()
ids = []
for k in range(200):
    cl = clients[k % 4]
    ids.append((cl, k, cl.request("exec.run", {"argv": ["sh", "-c", "sleep 1; echo %d" % k]})))
good = 0
for cl, k, i in ids:
    a = cl.answer(i, 60)
    if "result" in a and unb64(a["result"]["stdout"]) == b"%d\n" % k and a["result"]["code"] == 0:
        good += 1
dt = time.monotonic() - t0
g.is_eq(good, 200, "200 concurrent exec.run calls each return their own output")
g.ok(dt < 20, "they ran concurrently (%.1fs for 200 x 1s)" % dt)
for cl in clients:
    cl.close()

# --- bad input ---
bad = [
    ("exec.run", {"argv": []}, -32602, "argv of 0 elements"),
    ("exec.run", {"argv": ["a\u0000b"]}, -32602, "argv with NUL"),
    ("exec.run", {"argv": [""]}, -32602, "empty argv[0]"),
    ("exec.run", {"argv": "ls"}, -32602, "argv not an array"),
    ("exec.run", {"argv": ["true"], "env": ["A=B"] * 1000000}, -32602, "a million-element env"),
    ("exec.run", {"argv": ["true"], "env": ["NOEQUALS"]}, -32602, "env entry without ="),
    ("exec.run", {"argv": ["true"], "stdin": "@@@@"}, -32602, "stdin not base64"),
    ("exec.run", {"argv": ["true"], "stdin": "stream"}, -32602, "exec.run with stdin stream"),
    ("exec.run", {"argv": ["true"], "timeout_ms": -1}, -32602, "negative timeout"),
    ("exec.run", {"argv": ["true"], "capture": "both"}, -32602, "unknown capture mode"),
    ("exec.run", {"argv": ["true"], "user": "no-such-user-here"}, -32002, "unknown user"),
    ("exec.run", {"argv": ["/nonexistent/program"]}, -32002, "missing program"),
    ("exec.run", {"argv": ["true"], "cwd": "/nonexistent"}, -32002, "missing cwd"),
    ("exec.signal", {"id": 1, "signal": "NOPE"}, -32602, "unknown signal name"),
    ("exec.signal", {"id": 1, "signal": 1000}, -32602, "signal number out of range"),
    ("exec.wait", {"id": -5}, -32602, "negative id"),
    ("exec.status", {"id": 1, "extra": 1}, -32602, "unknown parameter"),
]
for method, params, code, what in bad:
    a = c.call(method, params, timeout=60)
    g.ok(error_code(a) == code and a["error"].get("message"),
         "bad input answers %d with a message: %s (%s)" % (code, what, a.get("error")))
g.ok(agent.alive() and "result" in c.call("agent.ping"), "the agent is unharmed by bad input")

# --- no zombies ---
time.sleep(0.5)
g.is_eq(agent.children("Z"), [], "no zombie children are left")
c.close()
g.is_eq(agent.stop(), 0, "the agent exits 0 on SIGTERM")

# Output larger than fits one answer: the first 4 MiB inline, the rest by exec.read.
agent = Agent()  # default caps: 16 MiB per stream
c = agent.client()
big = os.path.join(g.tmpdir(), "big")
data = os.urandom(10 * 1000 * 1000)
with open(big, "wb") as f:
    f.write(data)
r = run(["cat", big])
inline = unb64(r["stdout"])
g.ok(len(inline) == 4 * MiB and r["stdout_size"] == len(data) and not r["truncated"] and
     r["released"] is False, "exec.run answers the first 4 MiB and the full size")
got, off = inline, len(inline)
while True:
    a = c.result("exec.read", {"id": r["id"], "stream": "stdout", "offset": off})
    chunk = unb64(a["data"])
    got += chunk
    off += len(chunk)
    if a["eof"]:
        break
g.ok(got == data, "exec.read returns the rest byte for byte")
c.result("exec.release", {"id": r["id"]})
r = run(["echo", "small"])
g.ok(r["released"] is True and c.call("exec.read", {"id": r["id"], "stream": "stdout"})
     .get("error", {}).get("code") == -32002, "a result that fit is released at once")
c.close()
g.is_eq(agent.stop(), 0, "the second agent exits 0")
g.done()
