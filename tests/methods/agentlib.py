# SPDX-License-Identifier: LGPL-2.1-or-later
"""A real guestlink-agent on a Unix socket in a temporary directory, and a
JSON-RPC client that keeps notifications apart from answers."""

import base64
import json
import os
import signal
import time

import gltest as g


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


class Agent:
    def __init__(self, config=None, plugin_dir=None, env=None, pass_fds=(), preexec_fn=None):
        self.dir = g.tmpdir()
        self.sock = os.path.join(self.dir, "agent.sock")
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
        self.log = open(os.path.join(self.dir, "agent.log"), "w+")
        e = dict(env or {})
        e["ASAN_OPTIONS"] = asan
        self.proc = g.Proc(argv, env=e, stderr=self.log, pass_fds=pass_fds,
                           preexec_fn=preexec_fn)
        if not g.wait_for_listener(self.sock, 20, self.proc):
            raise RuntimeError("agent did not start: " + self.log_text())

    def log_text(self):
        self.log.flush()
        with open(self.log.name) as f:
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
        """PIDs (and states) of the agent's direct children."""
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
            if int(rest[1]) == self.proc.pid and (state is None or rest[0] == state):
                out.append(int(d))
        return out

    def alive(self):
        return self.proc.alive()

    def reload(self):
        os.kill(self.proc.pid, signal.SIGHUP)

    def stop(self):
        """SIGTERM; returns the exit status (0 expected)."""
        return self.proc.stop()
