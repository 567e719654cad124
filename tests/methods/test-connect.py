# SPDX-License-Identifier: LGPL-2.1-or-later
"""guestlink connect PORT through the real backend + guestsim: half-close both
ways, refusal, and ssh/scp with connect as ProxyCommand to a real sshd
(`sshd -i` per connection behind guestsim's bridge and socat, throwaway keys)."""

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import gltest as g  # noqa: E402
from termlib import CLI, GUESTSIM, Stack  # noqa: E402

if not os.access(GUESTSIM, os.X_OK):
    g.skip_all("guestsim not built")

ECHO = 7000
HALF = 7001
SSH = 22
MiB = 1024 * 1024
tmp = g.tmpdir()


def connect(address, port, data, timeout=60):
    return subprocess.run([CLI, "-a", address, "connect", str(port)], input=data,
                          capture_output=True, timeout=timeout)


# A guest service that sends a banner, shuts its sending side, then keeps
# reading until our EOF: the other half-close direction.
half_sock = os.path.join(tmp, "half.sock")
half_got = []
lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
lsock.bind(half_sock)
lsock.listen(4)


def half_server():
    conn, _ = lsock.accept()
    conn.sendall(b"banner\n")
    conn.shutdown(socket.SHUT_WR)
    buf = b""
    while True:
        d = conn.recv(65536)
        if not d:
            break
        buf += d
    half_got.append(buf)
    conn.close()


half_thread = threading.Thread(target=half_server, daemon=True)
half_thread.start()

# --- sshd behind guest port 22 ---
sshd_sock = os.path.join(tmp, "sshd.sock")
# sshd needs its privilege separation directory, which only root may create.
have_ssh = all(shutil.which(p) for p in ("ssh", "scp", "ssh-keygen", "socat")) and \
    os.access("/usr/sbin/sshd", os.X_OK) and (os.path.isdir("/run/sshd") or os.geteuid() == 0)
if have_ssh:
    for k in ("host", "user"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "guestlink-test",
                        "-f", os.path.join(tmp, k)], check=True, timeout=30)
    shutil.copy(os.path.join(tmp, "user.pub"), os.path.join(tmp, "authorized_keys"))
    with open(os.path.join(tmp, "host.pub")) as f:
        hostpub = f.read().split()
    with open(os.path.join(tmp, "known_hosts"), "w") as f:
        f.write("guest %s %s\n" % (hostpub[0], hostpub[1]))
    with open(os.path.join(tmp, "sshd_config"), "w") as f:
        f.write("HostKey %s/host\nAuthorizedKeysFile %s/authorized_keys\nStrictModes no\n"
                "UsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                "PermitRootLogin prohibit-password\nLogLevel ERROR\n"
                "Subsystem sftp /usr/lib/openssh/sftp-server\n" % (tmp, tmp))
    if not os.path.isdir("/run/sshd") and os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755)  # sshd's privilege separation directory
    socat_log = open(os.path.join(tmp, "socat.log"), "w")
    socat = g.Proc(["socat", "UNIX-LISTEN:%s,fork" % sshd_sock,
                    "EXEC:/usr/sbin/sshd -i -f %s/sshd_config" % tmp],
                   stdout=socat_log, stderr=socat_log)
    g.wait_for_path(sshd_sock, 10, socat)

bridges = {HALF: half_sock}
if have_ssh:
    bridges[SSH] = sshd_sock
stack = Stack(tmp, bridges, echo_port=ECHO)
addr = stack.address()

# --- half-close: our EOF reaches the guest, the guest's EOF reaches us ---
data = os.urandom(3 * MiB)
p = connect(addr, ECHO, data)
g.is_eq(p.returncode, 0, "connect to an echo port exits 0 on clean EOF")
g.ok(p.stdout == data, "3 MiB come back through the echo service after our EOF (%d bytes)"
     % len(p.stdout))

p = connect(addr, HALF, b"x" * 100000)
g.is_eq((p.returncode, p.stdout), (0, b"banner\n"),
        "the guest's EOF ends our stdout while we keep sending")
half_thread.join(20)
g.is_eq(len(half_got[0]) if half_got else -1, 100000,
        "after the guest's half-close all 100000 of our bytes still reach it")

# --- refusal ---
p = connect(addr, 4444, b"")
g.ok(p.returncode not in (0, 2) and b"refused" in p.stderr,
     "a guest port nobody listens on: non-zero and a clear message (%d, %r)"
     % (p.returncode, p.stderr.strip()))
p = connect("unix:" + half_sock, 22, b"")
g.ok(p.returncode == 2 and b"connect needs" in p.stderr,
     "connect with a unix: agent address is a usage error")
p = subprocess.run([CLI, "-a", addr, "connect", "x22"], capture_output=True, timeout=30)
g.is_eq(p.returncode, 2, "a bad port is a usage error")

# --- ssh and scp through connect as ProxyCommand ---
if not have_ssh:
    g.diag("ssh, scp, socat or sshd missing: skipping the ssh checks")
else:
    user = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    ssh_opts = ["-F", "/dev/null", "-i", os.path.join(tmp, "user"),
                "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=yes",
                "-o", "UserKnownHostsFile=" + os.path.join(tmp, "known_hosts"),
                "-o", "ProxyCommand=%s -a %s connect %d" % (CLI, addr, SSH)]
    p = subprocess.run(["ssh"] + ssh_opts + ["-l", user, "guest", "echo hello-$((6*7))"],
                       capture_output=True, text=True, timeout=120)
    g.ok(p.returncode == 0 and p.stdout.strip() == "hello-42",
         "ssh with ProxyCommand 'guestlink connect 22' runs a command (%d %r)"
         % (p.returncode, p.stderr.strip()[-200:]))

    src = os.path.join(tmp, "up.bin")
    with open(src, "wb") as f:
        f.write(os.urandom(16 * MiB))
    up = os.path.join(tmp, "uploaded.bin")
    down = os.path.join(tmp, "downloaded.bin")
    p = subprocess.run(["scp", "-q"] + ssh_opts + [src, "%s@guest:%s" % (user, up)],
                       capture_output=True, text=True, timeout=300)
    g.ok(p.returncode == 0, "scp uploads 16 MiB through connect (%r)" % p.stderr.strip()[-200:])
    p = subprocess.run(["scp", "-q"] + ssh_opts + ["%s@guest:%s" % (user, up), down],
                       capture_output=True, text=True, timeout=300)
    g.ok(p.returncode == 0, "scp downloads 16 MiB through connect (%r)" % p.stderr.strip()[-200:])

    def sha(path):
        try:
            with open(path, "rb") as f:
                return hashlib.sha256(f.read()).hexdigest()
        except OSError:
            return None
    g.ok(sha(src) is not None and sha(src) == sha(up) == sha(down),
         "16 MiB both ways through ssh/scp: equal SHA-256")
    socat.stop()
    socat_log.close()

stack.stop()
lsock.close()
g.done()
