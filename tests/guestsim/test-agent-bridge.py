#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The real agent reached as hybrid:UDS:9731 through the real back-end and guestsim's
bridge (no VM): raw JSON-RPC, pipelined CONNECT, concurrent clients, `guestlink ping`,
and the agent's own conformance suite run over that path."""

import json
import os
import socket
import subprocess
import sys
import threading
import time

from gltest import (Proc, build_path, diag, done, is_eq, ok, skip_all, src_path,
                    tmpdir, wait_for_path, wait_for_listener)

BACKEND = build_path("backend", "vhost-user-vsock")
GUESTSIM = build_path("tests", "guestsim", "guestsim")
AGENT = build_path("agent", "guestlink-agent")
CLI = build_path("host", "guestlink")
PORT = 9731
ECHO_PORT = 7000

for path, what in ((BACKEND, "backend"), (GUESTSIM, "guestsim"), (AGENT, "guestlink-agent")):
    if not os.access(path, os.X_OK):
        skip_all("%s not built yet" % what)


def hybrid_connect(uds, port=PORT, timeout=10, extra=b""):
    """CONNECT handshake; returns (socket, bytes read past the OK line)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(uds)
    s.sendall(b"CONNECT %d\n" % port + extra)
    line = b""
    while not line.endswith(b"\n"):
        ch = s.recv(1)
        if not ch:
            s.close()
            raise ConnectionRefusedError("closed during the handshake")
        line += ch
    if not line.startswith(b"OK "):
        s.close()
        raise ConnectionRefusedError(line)
    return s


def recv_line(s, buf=b""):
    while b"\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise EOFError("closed")
        buf += chunk
    line, rest = buf.split(b"\n", 1)
    return json.loads(line), rest


class Stack:
    """backend + guestsim bridging guest port 9731 to an agent's Unix socket."""

    def __init__(self, tmp, agent_sock):
        self.vu = os.path.join(tmp, "vhost.sock")
        self.uds = os.path.join(tmp, "vm.vsock")
        self.log = open(os.path.join(tmp, "stack.log"), "w")
        self.backend = Proc([BACKEND, "--socket-path=" + self.vu, "--uds-path=" + self.uds,
                             "--guest-cid=3"], stdout=self.log, stderr=self.log)
        if not wait_for_path(self.uds, 10, self.backend):
            raise RuntimeError("back-end did not start")
        self.guestsim = Proc([GUESTSIM, "--socket-path=" + self.vu,
                              "--bridge", "%d=unix:%s" % (PORT, agent_sock),
                              "--listen", str(ECHO_PORT)],
                             stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 10
        while True:
            try:
                hybrid_connect(self.uds, timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline or not self.guestsim.alive():
                    raise RuntimeError("guestsim bridge did not come up")
                time.sleep(0.05)

    def stop(self):
        st = self.guestsim.stop()
        self.backend.stop()
        self.log.close()
        return st


tmp = tmpdir()
agent_sock = os.path.join(tmp, "agent.sock")
agent = Proc([AGENT, "--listen", "unix:" + agent_sock])
ok(wait_for_listener(agent_sock, 15, agent), "agent listening on unix:" + agent_sock)
stack = Stack(tmp, agent_sock)
ok(True, "back-end and guestsim bridge up")

s = hybrid_connect(stack.uds)
s.sendall(b'{"jsonrpc":"2.0","method":"agent.ping","id":1}\n')
answer, rest = recv_line(s)
is_eq(answer, {"jsonrpc": "2.0", "result": "pong", "id": 1}, "agent.ping over hybrid:")
s.close()

# guestsim --listen: an echo service on a guest port, half-close passed through.
s = hybrid_connect(stack.uds, port=ECHO_PORT)
payload = os.urandom(300000)
sender = threading.Thread(target=lambda: (s.sendall(payload), s.shutdown(socket.SHUT_WR)))
sender.start()
echoed = b""
s.settimeout(20)
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    echoed += chunk
sender.join(20)
s.close()
ok(echoed == payload, "guestsim --listen echoes 300000 bytes and passes the half-close back")

# The request pipelined right after the CONNECT line, before OK.
s = hybrid_connect(stack.uds, extra=b'{"jsonrpc":"2.0","method":"agent.ping","id":"p"}\n')
answer, rest = recv_line(s)
is_eq(answer.get("result"), "pong", "a request pipelined after CONNECT is answered")
s.close()

# A big echo, both ways through credit.
s = hybrid_connect(stack.uds)
blob = "x" * (3 << 20)
s.sendall(json.dumps({"jsonrpc": "2.0", "method": "agent.echo", "params": [blob],
                      "id": 7}).encode() + b"\n")
s.settimeout(30)
answer, rest = recv_line(s)
ok(answer.get("result") == [blob], "a 3 MiB echo survives the trip both ways")
s.close()

# Concurrent clients.
errors = []


def client(n):
    try:
        c = hybrid_connect(stack.uds)
        buf = b""
        for i in range(10):
            c.sendall(json.dumps({"jsonrpc": "2.0", "method": "agent.echo",
                                  "params": [n, i], "id": i}).encode() + b"\n")
            a, buf = recv_line(c, buf)
            if a.get("result") != [n, i]:
                errors.append((n, i, a))
        c.close()
    except Exception as e:  # noqa: BLE001 - reported below
        errors.append((n, repr(e)))


threads = [threading.Thread(target=client, args=(n,)) for n in range(20)]
for t in threads:
    t.start()
for t in threads:
    t.join(60)
is_eq(errors, [], "20 concurrent clients x 10 calls, every answer matched")

if os.access(CLI, os.X_OK):
    r = subprocess.run([CLI, "-a", "hybrid:%s:%d" % (stack.uds, PORT), "ping"],
                       capture_output=True, timeout=30)
    is_eq(r.returncode, 0, "guestlink -a hybrid:UDS:9731 ping exits 0")
    if r.returncode:
        diag(r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace"))
else:
    ok(True, "# SKIP host/guestlink not built yet")

ok(agent.alive(), "agent alive")
is_eq(stack.stop(), 0, "guestsim saw no protocol violation and exited 0 on SIGTERM")
agent.stop()

# The agent's conformance suite with every client connection going through the
# back-end and guestsim (its Agent helper wrapped; the suite itself unchanged).
CONFORMANCE = src_path("tests", "agent", "test-conformance.py")
if os.path.exists(CONFORMANCE):
    boot = r'''
import os, runpy, socket, sys, time
sys.path.insert(0, os.path.join(os.environ["top_srcdir"], "tests", "agent"))
sys.path.insert(0, os.path.dirname(os.environ["GUESTSIM_BRIDGE_TEST"]))
import agentlib, gltest
import bridge_shim as BRIDGE
Base = agentlib.Agent
class Bridged(Base):
    def __init__(self, tmp, *a, **kw):
        super().__init__(tmp, *a, **kw)
        self.stack = BRIDGE.Stack(tmp, self.sock)
    def client(self, timeout=10):
        with open(os.environ["GUESTSIM_BRIDGE_COUNT"], "a") as f:
            f.write("client\n")
        return gltest.LineClient(BRIDGE.hybrid_connect(self.stack.uds, timeout=timeout))
    def stop(self):
        self.stack.stop()
        return super().stop()
agentlib.Agent = Bridged
'''
    # The bridge module is this file's Stack/hybrid_connect, importable without side
    # effects through a small shim module.
    shim = os.path.join(tmp, "bridge_shim.py")
    with open(shim, "w") as f:
        src = open(__file__).read()
        f.write(src[:src.index("tmp = tmpdir()")])
    boot += 'runpy.run_path(sys.argv[1], run_name="__main__")\n'
    count = os.path.join(tmp, "bridged-clients")
    env = dict(os.environ, GUESTSIM_BRIDGE_TEST=shim, GUESTSIM_BRIDGE_COUNT=count)
    r = subprocess.run([sys.executable, "-c", boot, CONFORMANCE], capture_output=True,
                       timeout=300, env=env)
    out = r.stdout.decode(errors="replace")
    failed = [line for line in out.splitlines() if line.startswith("not ok")]
    passed = [line for line in out.splitlines() if line.startswith("ok")]
    diag("conformance over hybrid: %d passed, %d failed" % (len(passed), len(failed)))
    ok(r.returncode == 0 and not failed and passed,
       "the agent's conformance suite passes through backend + guestsim")
    nclients = len(open(count).read().split()) if os.path.exists(count) else 0
    ok(nclients > 0, "its %d client connections went through the bridge" % nclients)
    for line in failed[:20]:
        diag(line)
    if r.returncode and not failed:
        diag(r.stderr.decode(errors="replace")[-2000:])
else:
    ok(True, "# SKIP tests/agent/test-conformance.py not present")

done()
