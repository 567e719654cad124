# SPDX-License-Identifier: LGPL-2.1-or-later
"""Helpers for interactive tests: a private tmux server driven like a person
at a terminal, and the backend + guestsim stack bridging guest ports to Unix
sockets (so the real agent or a real sshd sits behind a hybrid: address)."""

import os
import re
import signal
import socket
import subprocess
import time

import gltest as g

BACKEND = g.build_path("backend", "vhost-user-vsock")
GUESTSIM = g.build_path("tests", "guestsim", "guestsim")
CLI = g.build_path("host", "guestlink")


class Tmux:
    """One private tmux server (own socket name), one window running cmd.
    The server is killed by its PID in stop() (and at exit by gltest)."""

    def __init__(self, cmd, cols=100, rows=30, env=None):
        self.name = "gl-%d-%d" % (os.getpid(), int(time.monotonic() * 1000) % 100000)
        e = dict(os.environ)
        e.pop("TMUX", None)
        e["TERM"] = "xterm-256color"
        e.update(env or {})
        self.env = e
        self.tmux(["-f", "/dev/null", "new-session", "-d", "-x", str(cols), "-y", str(rows),
                   "-s", "t", cmd])
        self.pid = int(self.tmux(["display-message", "-p", "-t", "t", "#{pid}"]).strip())
        self.pane_pid = int(self.tmux(["display-message", "-p", "-t", "t",
                                       "#{pane_pid}"]).strip())
        # Stopped by PID whatever happens.
        self._guard = _PidGuard(self.pid)

    def tmux(self, args):
        return subprocess.run(["tmux", "-L", self.name] + args, env=self.env, check=True,
                              capture_output=True, text=True, timeout=20).stdout

    def keys(self, *keys):
        self.tmux(["send-keys", "-t", "t"] + list(keys))

    def type(self, text):
        self.tmux(["send-keys", "-t", "t", "-l", text])

    def screen(self):
        return self.tmux(["capture-pane", "-p", "-J", "-S", "-200", "-t", "t"])

    def wait(self, pattern, timeout=30):
        """Wait until the pane matches the regex; returns the match or None."""
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(pattern, self.screen(), re.M)
            if m or time.monotonic() > deadline:
                return m
            time.sleep(0.1)

    def resize(self, cols, rows):
        self.tmux(["resize-window", "-t", "t", "-x", str(cols), "-y", str(rows)])

    def descendants(self, name):
        """PIDs under the pane whose comm is name."""
        out = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    s = f.read()
            except OSError:
                continue
            comm = s[s.index("(") + 1:s.rindex(")")]
            ppid = int(s[s.rindex(")") + 2:].split()[1])
            if comm == name and ppid == self.pane_pid:
                out.append(int(d))
        return out

    def stop(self):
        self._guard.stop()


class _PidGuard(g.Proc):
    """gltest.Proc's stop-by-PID-at-exit for a process we did not fork."""

    def __init__(self, pid):  # noqa: super().__init__ would fork
        self.pid = pid
        self.argv = ["tmux"]
        g._procs.append(self)

    def alive(self):
        try:
            os.kill(self.pid, 0)
            return True
        except ProcessLookupError:
            return False

    def stop(self, sig=signal.SIGTERM, timeout=10):
        deadline = time.monotonic() + timeout
        if self.alive():
            os.kill(self.pid, sig)
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
        if self in g._procs:
            g._procs.remove(self)
        return 0


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
