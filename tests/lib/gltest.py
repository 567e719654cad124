# SPDX-License-Identifier: LGPL-2.1-or-later
"""Shared helpers for guestlink's Python tests: TAP output, temporary
directories, and processes that are always stopped by PID."""

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

TOP_BUILDDIR = os.environ.get("top_builddir", os.getcwd())
TOP_SRCDIR = os.environ.get("top_srcdir", TOP_BUILDDIR)

_n = 0
_failed = 0
_procs = []


def ok(cond, name):
    global _n, _failed
    _n += 1
    print(("ok %d - %s" if cond else "not ok %d - %s") % (_n, name), flush=True)
    if not cond:
        _failed += 1
    return bool(cond)


def is_eq(got, want, name):
    if not ok(got == want, name):
        diag("got  %r" % (got,))
        diag("want %r" % (want,))


def diag(msg):
    for line in str(msg).splitlines():
        print("# " + line, flush=True)


def skip_all(reason):
    print("1..0 # SKIP %s" % reason, flush=True)
    sys.exit(0)


def done():
    stop_all()
    print("1..%d" % _n, flush=True)
    sys.exit(1 if _failed else 0)


def build_path(*parts):
    return os.path.join(TOP_BUILDDIR, *parts)


def src_path(*parts):
    return os.path.join(TOP_SRCDIR, *parts)


def tmpdir():
    d = tempfile.mkdtemp(prefix="guestlink-test.")
    atexit.register(shutil.rmtree, d, True)
    return d


class Proc:
    """A child process stopped by PID at exit, whatever happens."""

    def __init__(self, argv, env=None, **kw):
        e = dict(os.environ)
        if env:
            e.update(env)
        self.argv = argv
        self.p = subprocess.Popen(argv, env=e, **kw)
        self.pid = self.p.pid
        _procs.append(self)

    def alive(self):
        return self.p.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Signal and reap; SIGKILL after timeout. Returns the exit status."""
        if self.p.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.p.wait(5)
        if self in _procs:
            _procs.remove(self)
        return self.p.returncode


def stop_all():
    for p in list(_procs):
        p.stop()


atexit.register(stop_all)


def wait_for_path(path, timeout=10, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return True
        if proc is not None and not proc.alive():
            return False
        time.sleep(0.02)
    return False


def wait_for_listener(path, timeout=10, proc=None):
    """True once a connection to the Unix socket at path succeeds: the file
    exists from bind(), but connections work only from listen() on."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            return False
        try:
            unix_connect(path, 1).close()
            return True
        except OSError:
            time.sleep(0.01)
    return False


def wait_settled(probe, settled, progress, stall=15, interval=0.2):
    """Poll probe() until settled(value). A loaded machine is slower, not
    stuck: give up only after `stall` seconds in which progress(value) (a
    number that grows as the work advances, or None when unknown) did not
    grow. Returns (last value, whether it settled, seconds taken)."""
    t0 = time.monotonic()
    best, moved = None, t0
    while True:
        v = probe()
        now = time.monotonic()
        if settled(v):
            return v, True, now - t0
        p = progress(v)
        if p is not None and (best is None or p > best):
            best, moved = p, now
        elif now - moved > stall:
            return v, False, now - t0
        time.sleep(interval)


def unix_connect(path, timeout=10):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    return s


class LineClient:
    """Newline-framed JSON over a stream socket, with timeouts."""

    def __init__(self, sock):
        self.s = sock
        self.buf = b""

    def send_raw(self, data):
        self.s.sendall(data)

    def send(self, obj):
        self.s.sendall(json.dumps(obj).encode() + b"\n")

    def recv_line(self, timeout=10):
        self.s.settimeout(timeout)
        while b"\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def recv(self, timeout=10):
        return json.loads(self.recv_line(timeout))

    def call(self, method, params=None, id=1, timeout=10):
        req = {"jsonrpc": "2.0", "method": method, "id": id}
        if params is not None:
            req["params"] = params
        self.send(req)
        return self.recv(timeout)

    def nothing_within(self, seconds):
        """True when no byte arrives within `seconds`."""
        self.s.settimeout(seconds)
        try:
            data = self.s.recv(1, socket.MSG_PEEK)
        except socket.timeout:
            return True
        return not data and False

    def close(self):
        self.s.close()
