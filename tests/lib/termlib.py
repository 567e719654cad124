# SPDX-License-Identifier: LGPL-2.1-or-later
"""Helpers for interactive tests: a private tmux server driven like a person
at a terminal (the backend + guestsim stack is glagent's, re-exported)."""

import os
import re
import signal
import subprocess
import time

import gltest as g
from glagent import BACKEND, GUESTSIM, Stack, hybrid_connect, proc_children  # noqa: F401

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
        return proc_children(self.pane_pid, comm=name)

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
