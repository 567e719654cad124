# SPDX-License-Identifier: LGPL-2.1-or-later
"""OpenSSH's sshd for tests: on 127.0.0.1, a free port, a throwaway host key and
user key, its own config, in the foreground (-D -e), stopped by PID."""

import os
import shutil
import socket
import subprocess
import time

import gltest


class Unavailable(Exception):
    """sshd cannot run here (not installed, not root)."""


class Sshd:
    """OpenSSH's sshd on 127.0.0.1 with a throwaway host key and user key, its
    own config, in the foreground (-D -e); ssh_config for the client side.
    ``ssh_command`` is "ssh -F CONFIG testhost"."""

    def __init__(self, tmp):
        sshd = shutil.which("sshd") or "/usr/sbin/sshd"
        if not os.access(sshd, os.X_OK) or not shutil.which("ssh"):
            raise Unavailable("OpenSSH (openssh-server, openssh-client) not installed")
        if os.geteuid() != 0:
            raise Unavailable("sshd needs root for its privilege separation")
        d = os.path.join(tmp, "ssh")
        os.makedirs(d, mode=0o700)
        self.dir = d
        hostkey = os.path.join(d, "host_key")
        userkey = os.path.join(d, "user_key")
        for k in (hostkey, userkey):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", k], check=True)
        shutil.copy(userkey + ".pub", os.path.join(d, "authorized_keys"))
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        user = os.environ.get("USER") or "root"
        cfg = os.path.join(d, "sshd_config")
        with open(cfg, "w") as f:
            f.write("ListenAddress 127.0.0.1:%d\nHostKey %s\nAuthorizedKeysFile %s\n"
                    "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                    "PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n"
                    "PidFile none\nAcceptEnv none\nLogLevel ERROR\n" %
                    (self.port, hostkey, os.path.join(d, "authorized_keys")))
        self.log = open(os.path.join(d, "sshd.log"), "w")
        self.proc = gltest.Proc([sshd, "-D", "-e", "-f", cfg], stdout=self.log, stderr=self.log)
        self.client_config = os.path.join(d, "ssh_config")
        with open(self.client_config, "w") as f:
            f.write("Host testhost\n  HostName 127.0.0.1\n  Port %d\n  User %s\n"
                    "  IdentityFile %s\n  IdentitiesOnly yes\n  StrictHostKeyChecking no\n"
                    "  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n  BatchMode yes\n" %
                    (self.port, user, userkey))
        self.ssh_command = "ssh -F %s testhost" % self.client_config
        deadline = time.monotonic() + 20
        while True:
            r = subprocess.run(self.ssh_command.split() + ["true"], capture_output=True,
                               timeout=20)
            if r.returncode == 0:
                break
            if time.monotonic() > deadline or not self.proc.alive():
                raise RuntimeError("sshd did not accept a login: %s %s" %
                                   (r.stderr.decode(), open(self.log.name).read()))
            time.sleep(0.2)

    def stop(self):
        self.proc.stop()
        self.log.close()
