# SPDX-License-Identifier: LGPL-2.1-or-later
"""The parts of guestlink every Python test starts the same way: a real
guestlink-agent on a Unix socket in a temporary directory, a JSON-RPC client
that keeps notifications apart from answers, and the backend + guestsim stack
bridging guest ports to Unix sockets (so the real agent or a real sshd sits
behind a hybrid: address)."""

import base64
import json
import os
import signal
import socket
import time

import gltest as g

BACKEND = g.build_path("backend", "vhost-user-vsock")
GUESTSIM = g.build_path("tests", "guestsim", "guestsim")


def b64(data):
    return base64.b64encode(data).decode()


def unb64(text):
    return base64.b64decode(text, validate=True)


class Client(g.LineClient):
    def __init__(self, sock):
        super().__init__(sock)
        self.next_id = 1
        self.notes = []
        self.answers = {}

    def request(self, method, params=None):
        """Send without waiting; returns the id."""
        i = self.next_id
        self.next_id += 1
        req = {"jsonrpc": "2.0", "method": method, "id": i}
        if params is not None:
            req["params"] = params
        self.send(req)
        return i

    def _pump(self, timeout):
        msg = self.recv(timeout)
        if "id" in msg:
            self.answers[msg["id"]] = msg
        else:
            self.notes.append(msg)

    def answer(self, i, timeout=30):
        deadline = time.monotonic() + timeout
        while i not in self.answers:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer to %d" % i)
            self._pump(left)
        return self.answers.pop(i)

    def note(self, timeout=30):
        deadline = time.monotonic() + timeout
        while not self.notes:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no notification")
            self._pump(left)
        return self.notes.pop(0)

    def call(self, method, params=None, timeout=30):
        return self.answer(self.request(method, params), timeout)

    def result(self, method, params=None, timeout=30):
        r = self.call(method, params, timeout)
        if "result" not in r:
            raise RuntimeError("%s failed: %r" % (method, r.get("error")))
        return r["result"]


def error_code(answer):
    return answer.get("error", {}).get("code")


def proc_children(ppid, comm=None, state=None):
    """PIDs of ppid's direct children, those named comm and in state (a
    /proc/PID/stat letter: "Z" for zombies) when given."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
        except OSError:
            continue
        rest = s[s.rindex(")") + 2:].split()
        if int(rest[1]) != ppid or (state is not None and rest[0] != state):
            continue
        if comm is None or s[s.index("(") + 1:s.rindex(")")] == comm:
            out.append(int(d))
    return out


class Agent:
    """guestlink-agent --listen unix:DIR/agent.sock --config DIR/agent.conf,
    its stderr in DIR/agent.log; DIR is a new temporary directory unless
    given. Stopped by PID in stop() (and at exit by gltest)."""

    def __init__(self, config=None, plugin_dir=None, env=None, pass_fds=(), dir=None,
                 preexec_fn=None):
        if dir is None:
            dir = g.tmpdir()
        os.makedirs(dir, exist_ok=True)
        self.dir = dir
        self.sock = os.path.join(self.dir, "agent.sock")
        self.address = "unix:" + self.sock
        argv = [g.build_path("agent/guestlink-agent"), "--listen", "unix:" + self.sock]
        conf = dict(config or {})
        conf.setdefault("plugin_dir", plugin_dir or os.path.join(self.dir, "no-plugins"))
        self.config_path = os.path.join(self.dir, "agent.conf")
        with open(self.config_path, "w") as f:
            json.dump(conf, f)
        argv += ["--config", self.config_path]
        # Keep ASan's quarantine small so that RSS figures mean something under sanitizers.
        asan = os.environ.get("ASAN_OPTIONS", "")
        asan = (asan + ":" if asan else "") + "quarantine_size_mb=8:detect_leaks=1"
        self.log_path = os.path.join(self.dir, "agent.log")
        self.log = open(self.log_path, "w+")
        e = dict(env or {})
        e["ASAN_OPTIONS"] = asan
        self.proc = g.Proc(argv, env=e, stderr=self.log, pass_fds=pass_fds,
                           preexec_fn=preexec_fn)
        if not g.wait_for_listener(self.sock, 20, self.proc):
            raise RuntimeError("agent did not start: " + self.log_text())

    def log_text(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def client(self):
        return Client(g.unix_connect(self.sock, 30))

    def rss_kb(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def children(self, state=None):
        """PIDs of the agent's direct children (in state when given)."""
        return proc_children(self.proc.pid, state=state)

    def alive(self):
        return self.proc.alive()

    def reload(self):
        os.kill(self.proc.pid, signal.SIGHUP)

    def stop(self):
        """SIGTERM; returns the exit status (0 expected)."""
        return self.proc.stop()


def hybrid_connect(uds, port, timeout=10):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(uds)
    s.sendall(b"CONNECT %d\n" % port)
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


class Stack:
    """backend + guestsim: bridges {guest port: unix path}, echo_port echoes."""

    def __init__(self, tmp, bridges, echo_port=None):
        self.vu = os.path.join(tmp, "vhost.sock")
        self.uds = os.path.join(tmp, "vm.vsock")
        self.log = open(os.path.join(tmp, "stack.log"), "w")
        self.backend = g.Proc([BACKEND, "--socket-path=" + self.vu, "--uds-path=" + self.uds,
                               "--guest-cid=3"], stdout=self.log, stderr=self.log)
        if not g.wait_for_path(self.uds, 10, self.backend):
            raise RuntimeError("back-end did not start")
        argv = [GUESTSIM, "--socket-path=" + self.vu]
        for port, path in sorted(bridges.items()):
            argv += ["--bridge", "%d=unix:%s" % (port, path)]
        if echo_port:
            argv += ["--listen", str(echo_port)]
        self.guestsim = g.Proc(argv, stdout=self.log, stderr=self.log)
        probe = echo_port or sorted(bridges)[0]
        deadline = time.monotonic() + 10
        while True:
            try:
                hybrid_connect(self.uds, probe, timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline or not self.guestsim.alive():
                    raise RuntimeError("guestsim bridge did not come up")
                time.sleep(0.05)

    def address(self, port=9731):
        return "hybrid:%s:%d" % (self.uds, port)

    def stop(self):
        self.guestsim.stop()
        self.backend.stop()
        self.log.close()
