#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""vhost-user-vsock as a program: options, socket modes, SIGTERM, and a
host listener that pauses instead of spinning when out of file descriptors."""

import json
import os
import resource
import signal
import socket
import stat
import struct
import subprocess
import time

from gltest import ok, is_eq, diag, done, Proc, tmpdir, build_path, wait_for_path, wait_for_listener

BIN = build_path("backend", "vhost-user-vsock")


def run(*args):
    p = subprocess.run([BIN] + list(args), capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


rc, out, _ = run("--print-capabilities")
is_eq(rc, 0, "--print-capabilities exits 0")
try:
    caps = json.loads(out)
except ValueError:
    caps = {}
is_eq(caps.get("type"), "vsock", "--print-capabilities prints {\"type\": \"vsock\"}")
rc, out, _ = run("--help")
ok(rc == 0 and "--uds-path" in out and "--socket-group" in out, "--help documents the options")
for bad in (["--guest-cid=2"], ["--guest-cid=4294967295"], ["--guest-cid=x"], ["--buffer-size=10"],
            ["--max-connections=0"], ["--socket-mode=999"], ["--socket-group=no-such-group-here"],
            ["--bogus"], ["extra-arg"]):
    rc, _, err = run(*bad)
    ok(rc == 2 and err, "%s refused with a message (exit 2)" % " ".join(bad))

# --fd with an already connected front-end: served, and the backend ends with it.
a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
q = Proc([BIN, "--fd=%d" % b.fileno()], pass_fds=[b.fileno()], stderr=subprocess.DEVNULL)
b.close()
a.settimeout(10)
a.sendall(struct.pack("<III", 1, 1, 0))  # GET_FEATURES
hdr = a.recv(12, socket.MSG_WAITALL)
feat = a.recv(8, socket.MSG_WAITALL) if len(hdr) == 12 else b""
ok(len(feat) == 8 and struct.unpack("<Q", feat)[0] & (1 << 32), "--fd=N (connected): GET_FEATURES answered")
a.close()
try:
    rc = q.p.wait(5)
except subprocess.TimeoutExpired:
    rc = None
q.stop()
is_eq(rc, 0, "--fd=N (connected): exits 0 when the front-end goes")

d = tmpdir()
vu, uds = os.path.join(d, "vm.vhost.sock"), os.path.join(d, "vm.vsock")


def limit_fds():
    resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))


p = Proc([BIN, "--socket-path=" + vu, "--uds-path=" + uds, "--socket-mode=0660"],
         preexec_fn=limit_fds, stderr=subprocess.PIPE)
# The file exists from bind(); wait until it also listens.
ok(wait_for_listener(uds, 10, p) and wait_for_path(vu, 10, p), "both sockets created")
ok(stat.S_IMODE(os.stat(uds).st_mode) == 0o660, "--socket-mode=0660 applied to the host socket")
ok(stat.S_IMODE(os.stat(vu).st_mode) == 0o660, "--socket-mode=0660 applied to the vhost-user socket")

# More clients than descriptors: the backlog holds them, accept() fails with EMFILE.
clients = []
for _ in range(80):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(uds)
    clients.append(s)
time.sleep(0.5)
c0 = cpu_seconds(p.pid)
time.sleep(1.0)
used = cpu_seconds(p.pid) - c0
diag("backend CPU while out of descriptors: %.2f s in 1 s" % used)
ok(used < 0.3, "out of descriptors: the listener pauses instead of spinning")
ok(p.alive(), "backend alive")
for s in clients:
    s.close()
time.sleep(0.5)

s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(uds)
s.sendall(b"BOGUS 1\n")
t0 = time.monotonic()
try:
    got = s.recv(100)
except socket.timeout:
    got = None
# Closed for its bad line, not by the 5 s line timer (VSOCK_LINE_TIMEOUT_S).
ok(got == b"" and time.monotonic() - t0 < 5, "after the clients left, new clients are served again")
s.close()

t0 = time.monotonic()
os.kill(p.pid, signal.SIGTERM)
try:
    rc = p.p.wait(60)
except subprocess.TimeoutExpired:
    rc = None
elapsed = time.monotonic() - t0
p.stop()
is_eq(rc, 0, "SIGTERM: exit status 0")
# Promptly: without waiting out a connection timer; the longest it has is the
# close timeout (VSOCK_CLOSE_TIMEOUT_S, 8 s in backend/vsock.h). A bound from
# the mechanism, not from how fast this machine is now.
ok(elapsed < 8.0, "SIGTERM: exited promptly (%.2f s, below the 8 s close timer)" % elapsed)
ok(not os.path.exists(uds) and not os.path.exists(vu), "socket files removed at exit")

# Both sockets from systemd (LISTEN_FDS, the host one named "uds"): they are
# systemd's, so the backend serves them and leaves their files alone.
sa_dir = tmpdir()
sa_vu, sa_uds = os.path.join(sa_dir, "vm.vhost.sock"), os.path.join(sa_dir, "vm.vsock")
p = Proc(["systemd-socket-activate", "-l", sa_vu, "-l", sa_uds, "--fdname=vhost:uds",
          build_path("backend", "vhost-user-vsock"), "--uds-path=" + sa_uds],
         stderr=subprocess.DEVNULL)
ok(wait_for_path(sa_uds, 10, p), "systemd-socket-activate listens on both")
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sa_uds)
s.sendall(b"BOGUS 1\n")
try:
    got = s.recv(100)
except socket.timeout:
    got = None
s.close()
ok(got == b"", "the backend serves the host socket it was passed (bad line -> closed)")
os.kill(p.pid, signal.SIGTERM)
try:
    rc = p.p.wait(5)
except subprocess.TimeoutExpired:
    rc = None
p.stop()
is_eq(rc, 0, "SIGTERM: exit status 0")
ok(os.path.exists(sa_uds), "a host socket passed by systemd is not unlinked at exit")
done()
