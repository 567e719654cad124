#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""guestlink against a hostile peer: a small JSON-RPC server on a Unix socket
(a thread of this test; no real agent answers like this) that answers ping
with something else than "pong", answers with malformed JSON-RPC, and lists
trees for cp -r with '..' and '/' in names, a link and a file of the same
name, and a directory that contains itself forever; exec.start answers
without a usable process id and exec.exit reports out of range or twice. guestlink must
fail clearly and at once, and write nothing outside the destination."""

import base64
import json
import os
import signal
import socket
import subprocess
import threading
import time

from gltest import build_path, done, is_eq, ok, skip_all, tmpdir

GUESTLINK = build_path("host", "guestlink")
if not os.access(GUESTLINK, os.X_OK):
    skip_all("guestlink not built")

TMP = tmpdir()
SOCK = os.path.join(TMP, "hostile.sock")
OUTSIDE = os.path.join(TMP, "outside")
state = {"mode": "pong"}
release = threading.Event()
started = threading.Event()

LISTS = {
    "/g": [{"name": "../escape", "type": "file", "size": 3, "mode": 0o644},
           {"name": "..", "type": "directory"},
           {"name": "/abs", "type": "file", "size": 3},
           {"name": "a/b", "type": "file", "size": 3},
           {"name": "", "type": "file", "size": 3},
           {"name": "link", "type": "symlink"},
           {"name": "link", "type": "file", "size": 3, "mode": 0o644},
           {"name": "ok", "type": "file", "size": 3, "mode": 0o644}],
}


def result(method, p):
    path = p.get("path", "")
    if method == "agent.ping":
        return {"pong": "pong", "number": 5, "evil": "\x1b]0;pwned\x07"}[state["mode"]]
    if method == "file.stat" and path == "/chan":
        return {"type": "file", "size": state["chan"][0], "mode": 0o644}
    if method == "file.channel" and path == "/chan":
        return {"token": "t0k", "size": state["chan"][0], "mode": 0o644}
    if method == "file.stat":
        if path.endswith("/link") and p.get("follow") is False:
            return {"type": "symlink", "target": OUTSIDE, "mode": 0o777, "size": 0}
        if path.startswith("/g/") and "loop" not in path:
            return {"type": "file", "size": 3, "mode": 0o644}
        return {"type": "directory", "size": 0, "mode": 0o755}
    if method == "file.list" and path.startswith("/deep"):
        depth = path.count("/") - 1
        if depth < 30:
            return {"entries": [{"name": "d" * 250, "type": "directory", "mode": 0o755}]}
        return {"entries": [{"name": "f%05d" % k + "x" * 240, "type": "file", "size": 1,
                             "mode": 0o644} for k in range(12000)]}
    if method == "file.list":
        if path.startswith("/loop"):
            return {"entries": [{"name": "loop", "type": "directory", "mode": 0o755}]}
        return {"entries": LISTS.get(path, [])}
    if method == "file.read":
        return {"data": base64.b64encode(b"xyz").decode(), "eof": True}
    if method == "exec.start":
        return state["start"]
    if method == "exec.write":
        return {}
    return None


def answer(req):
    i = req.get("id")
    if state["mode"] == "bad-error":  # an error whose code is a string
        return {"jsonrpc": "2.0", "id": i, "error": {"code": "x", "message": 5}}
    r = result(req.get("method"), req.get("params") or {})
    if r is None:
        return {"jsonrpc": "2.0", "id": i, "error": {"code": -32601, "message": "Method not found"}}
    return {"jsonrpc": "2.0", "id": i, "result": r}


def serve(c):
    try:
        for line in c.makefile("rb"):
            req = json.loads(line)
            if req.get("method") == "file.attach":
                # The side channel: the answer, then raw bytes as many as
                # the test says, then the end or silence until released.
                c.sendall(json.dumps({"jsonrpc": "2.0", "id": req.get("id"),
                                      "result": {}}).encode() + b"\n")
                c.sendall(b"z" * state["chan"][1])
                if state["chan"][2]:
                    release.wait(120)
                return
            c.sendall(json.dumps(answer(req)).encode() + b"\n")
            if req.get("method") == "exec.signal":
                state["signals"].append(req.get("params", {}).get("signal"))
            if req.get("method") == "exec.start" and state.get("exit", {}) is None:
                started.set()  # a hung agent: the command never ends
            elif req.get("method") == "exec.start":
                # Its end, reported by the peer as it likes.
                c.sendall(json.dumps({"jsonrpc": "2.0", "method": "exec.exit",
                                      "params": state["exit"]}).encode() + b"\n")
                for extra in state.get("after_exit", []):
                    c.sendall(json.dumps({"jsonrpc": "2.0", "method": extra[0],
                                          "params": extra[1]}).encode() + b"\n")
    except (OSError, ValueError):
        pass
    finally:
        c.close()


srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(SOCK)
srv.listen(8)


def accept_loop():
    while True:
        try:
            c, _ = srv.accept()
        except OSError:
            return
        threading.Thread(target=serve, args=(c,), daemon=True).start()


threading.Thread(target=accept_loop, daemon=True).start()


def run(*args, timeout=60):
    p = subprocess.run([GUESTLINK, "-a", "unix:" + SOCK, "-t", "30"] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


rc, out, err = run("ping")
is_eq(rc, 0, "ping: a peer answering \"pong\" is up")

state["mode"] = "number"
rc, out, err = run("ping")
ok(rc == 1 and "agent.ping answered 5, not \"pong\"" in err and not out,
   "ping: a peer answering 5 is not taken for the agent (rc %d, %r)" % (rc, err.strip()))
state["mode"] = "evil"
rc, out, err = run("ping")
ok(rc == 1 and "\x1b" not in err and "not \"pong\"" in err,
   "ping: a hostile answer is reported escaped (%r)" % err.strip())
rc, out, err = run("--json", "ping")
ok(rc == 1 and json.loads(out)["error"]["message"].endswith("not \"pong\""),
   "ping --json: the same as a JSON error")

# A malformed answer ends the call at once (-t 30: a timeout would say so).
state["mode"] = "bad-error"
rc, out, err = run("call", "agent.info")
ok(rc == 255 and "Protocol error" in err and "no answer" not in err,
   "call: a malformed error answer is a protocol error, not a timeout (%r)" % err.strip())

# cp -r from a hostile listing.
state["mode"] = "pong"
dst = os.path.join(TMP, "dst")
rc, out, err = run("cp", "-r", "--quiet", "guest:/g", dst)
is_eq(rc, 0, "cp -r: a listing with bad names copies the rest")
is_eq(sorted(os.listdir(dst)), ["link", "ok"], "cp -r: only the usable names arrive")
ok(os.path.isfile(os.path.join(dst, "link")) and not os.path.islink(os.path.join(dst, "link")),
   "cp -r: a link and a file of the same name: the file replaced the link")
ok(not os.path.exists(OUTSIDE) and not os.path.exists(os.path.join(TMP, "escape")),
   "cp -r: nothing was written outside the destination")
is_eq(err.count("without a usable name"), 5, "cp -r: each bad name is reported (5)")

rc, out, err = run("cp", "-r", "--quiet", "guest:/loop", os.path.join(TMP, "loopdst"))
ok(rc == 1 and err.rstrip().endswith("/loop/loop: Too many levels of symbolic links"),
   "cp -r: a directory inside itself forever stops with the reason (%r)" % err.strip()[-120:])
ok(len(err) < 1000 and err.startswith("guestlink: guest:/loop/loop/") and "..." in err,
   "cp -r: ... the 1,300-byte path shortened in the middle (%d bytes)" % len(err))
rc, out, err = run("--json", "cp", "-r", "--quiet", "guest:/loop", os.path.join(TMP, "loopdst2"))
e = json.loads(out)["error"] if rc == 1 else {}
ok(e.get("errno") == "ELOOP" and e.get("message", "").endswith("symbolic links") and
   len(e.get("object", "")) > 1000, "cp -r --json: errno ELOOP, the reason, the whole object")

# A deep tree of long names: each entry holds its whole path (7.5 KiB
# here), so 12,000 of them would be 90 MB; the list stops at 64 MiB of names.
rc, out, err = run("cp", "-r", "--quiet", "guest:/deep", os.path.join(TMP, "deepdst"))
ok(rc == 1 and "guest:/deep: too large a tree" in err and len(err) < 1000,
   "cp -r: a tree with too many bytes of names stops with the reason (rc %d, %r)"
   % (rc, err.strip()[:200]))
ok(not os.path.exists(os.path.join(TMP, "deepdst")), "cp -r: ... before creating anything")

# A destination whose directory is missing is named in the error, not the
# temporary file cp would have written first.
rc, out, err = run("cp", "--quiet", "guest:/g/ok", os.path.join(TMP, "nodir", "x"))
ok(rc == 1 and err.strip() == "guestlink: %s: No such file or directory"
   % os.path.join(TMP, "nodir", "x"), "cp: a missing destination directory names the destination (%r)"
   % err.strip())

# cp over the side channel, sizes that lie: more bytes than said are not
# read; fewer end in an error; a peer that stops sending without closing
# fails after -t (no byte for that long), not never.
for n, (said, sent, hold, want_rc, label) in enumerate(((10, 1 << 20, False, 0, "says 10, sends 1 MiB"),
                                         (1 << 30, 10, False, 1, "says 1 GiB, sends 10"),
                                         (1 << 30, 10, True, 1, "says 1 GiB, sends 10, then nothing"))):
    state["chan"] = (said, sent, hold)
    cdst = os.path.join(TMP, "chan-%d" % n)
    os.mkdir(cdst)
    try:  # run() kills guestlink (by its PID) when it outlives the timeout
        p = subprocess.run([GUESTLINK, "-a", "unix:" + SOCK, "-t", "2", "cp", "--quiet",
                            "guest:/chan", os.path.join(cdst, "f")],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        rc, err = p.returncode, p.stderr.decode(errors="replace").strip()
    except subprocess.TimeoutExpired:
        rc, err = None, "still running after 30 s"
    got = os.listdir(cdst)
    want = ["f"] if want_rc == 0 else []
    ok(rc == want_rc and got == want and
       (want_rc or os.path.getsize(os.path.join(cdst, "f")) == said),
       "cp side channel %s: rc %d, %r (rc %r, %r, %r)" % (label, want_rc, want, rc, got, err))
    if hold:
        ok("timed out" in err,
           "cp side channel %s: the error says it timed out" % label)
release.set()

# exec and exec -tt (a terminal session) read exec.start and exec.exit alike.
for label, args in (("exec", ["exec", "--", "true"]), ("exec -tt", ["exec", "-tt", "--", "true"])):
    for start_id in (0, -5, "7", None):
        state["start"] = {"id": start_id} if start_id is not None else {}
        state["exit"] = {"id": start_id, "code": 7}
        rc, out, err = run(*args, timeout=30)
        ok(rc == 255 and "without a valid process id" in err,
           "%s: exec.start answering id %r is a protocol error, 255 (rc %d, %r)"
           % (label, start_id, rc, err.strip()))
    for exit_params, want in (({"code": 3}, 3), ({"signal": 9, "code": 0}, 137),
                              ({"code": 256}, 255), ({"code": -1}, 255),
                              ({"signal": 300}, 255), ({"signal": 0, "code": 4}, 4),
                              ({"code": "0"}, 255), ({}, 255)):
        state["start"] = {"id": 42}
        state["exit"] = dict(exit_params, id=42)
        rc, out, err = run(*args, timeout=30)
        is_eq(rc, want, "%s: exec.exit %r gives exit status %d" % (label, exit_params, want))

# The first exec.exit ends the command: a second one, or output after it, in
# the same read is not reported (--json would print two exit lines).
state["start"] = {"id": 42}
state["exit"] = {"id": 42, "code": 3}
state["after_exit"] = [("exec.exit", {"id": 42, "code": 4}),
                       ("exec.output", {"id": 42, "stream": "stdout",
                                        "data": base64.b64encode(b"late").decode()})]
rc, out, err = run("--json", "exec", "--", "true", timeout=30)
lines = [json.loads(x) for x in out.splitlines()]
ok(rc == 3 and lines == [{"exit_status": 3, "code": 3, "signal": None, "timed_out": False}],
   "exec --json: exec.exit twice: one exit line, the first's status (rc %d, %r)" % (rc, out))
rc, out, err = run("exec", "--", "true", timeout=30)
ok(rc == 3 and out == "", "exec: output after exec.exit is not written (rc %d, %r)" % (rc, out))
state["after_exit"] = []

# A hung agent that never ends the command: SIGTERM is forwarded, then
# guestlink leaves after -t; a second SIGTERM (or SIGHUP) leaves at once.
state["start"] = {"id": 42}
state["exit"] = None
for label, sigs, t in (("one SIGTERM", [signal.SIGTERM], "2"),
                       ("SIGTERM then SIGHUP", [signal.SIGTERM, signal.SIGHUP], "60")):
    state["signals"] = []
    started.clear()
    p = subprocess.Popen([GUESTLINK, "-a", "unix:" + SOCK, "-t", t, "exec", "--", "sleep", "1000"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ok(started.wait(30), "%s: exec.start reached the hung agent" % label)
    time.sleep(0.3)  # the answer read: the process id known
    for sig in sigs:
        p.send_signal(sig)
        time.sleep(0.2)
    try:
        out, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    err = err.decode(errors="replace")
    want = 128 + sigs[-1]
    ok(p.returncode == want and "still running in the guest" in err,
       "%s: guestlink leaves the hung command with %d (rc %s, %r)"
       % (label, want, p.returncode, err.strip()))
    is_eq(state["signals"], [int(signal.SIGTERM)], "%s: SIGTERM was forwarded once" % label)

srv.close()
done()
