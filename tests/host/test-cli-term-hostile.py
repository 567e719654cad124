#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A terminal session (`guestlink exec -t`, at a private tmux server) whose
peer misbehaves: a JSON-RPC server on a Unix socket (a thread of this test)
starts the command, writes one line and then either closes the connection or
never ends it. However guestlink leaves -- the connection lost, or a signal
from outside (SIGTERM, SIGHUP, SIGINT, SIGUSR1, SIGALRM: raw mode turns ^C
into a byte, not into SIGINT, but kill(1) still sends it) -- the terminal is
back in the mode it had before (stty -g before and after)."""

import base64
import json
import os
import shutil
import signal
import socket
import threading

import gltest as g
from termlib import CLI, Tmux

if not shutil.which("tmux"):
    g.skip_all("tmux is not installed")
if not os.access(CLI, os.X_OK):
    g.skip_all("guestlink not built")

TMP = g.tmpdir()
SOCK = os.path.join(TMP, "peer.sock")
state = {"mode": "vanish"}


def send(c, o):
    c.sendall(json.dumps(o).encode() + b"\n")


def serve(c):
    try:
        for line in c.makefile("rb"):
            req = json.loads(line)
            i = req.get("id")
            if req.get("method") != "exec.start":
                send(c, {"jsonrpc": "2.0", "id": i, "result": {}})
                continue
            send(c, {"jsonrpc": "2.0", "id": i, "result": {"id": 42}})
            send(c, {"jsonrpc": "2.0", "method": "exec.output",
                     "params": {"id": 42, "stream": "stdout",
                                "data": base64.b64encode(b"STARTED\r\n").decode()}})
            if state["mode"] == "vanish":
                c.shutdown(socket.SHUT_RDWR)
                break
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


def session(mode, sig=None):
    """stty -g before and after a terminal session; guestlink's $?."""
    state["mode"] = mode
    before, after = os.path.join(TMP, "before"), os.path.join(TMP, "after")
    for f in (before, after):
        if os.path.exists(f):
            os.unlink(f)
    t = Tmux("sh -c 'stty -g > %s; %s -a unix:%s exec -t -- x; echo RC=$?; stty -g > %s; "
             "echo DONE; exec sleep 600'" % (before, CLI, SOCK, after))
    try:
        t.wait("STARTED", 20)
        if sig is not None:
            pids = t.descendants("guestlink")
            g.is_eq(len(pids), 1, "%s: one guestlink runs" % mode)
            for p in pids:
                os.kill(p, sig)
        t.wait("DONE", 20)
        screen = t.screen()
    finally:
        t.stop()
    rc = int(screen.split("RC=")[1].split()[0])
    with open(before) as f1, open(after) as f2:
        return rc, f1.read(), f2.read()


rc, b, a = session("vanish")
g.ok(rc == 255 and b == a, "the peer closes mid-session: 255, terminal restored (rc %d)" % rc)

for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGUSR1, signal.SIGALRM):
    rc, b, a = session("hang", sig)
    g.ok(rc == 128 + sig and b == a,
         "%s while the command runs: %d, terminal restored (rc %d)"
         % (signal.Signals(sig).name, 128 + sig, rc))

srv.close()
g.done()
