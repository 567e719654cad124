# SPDX-License-Identifier: LGPL-2.1-or-later
"""Start guestlink-agent on a Unix socket in a temporary directory."""

import json
import os
import socket
import time

from gltest import LineClient, Proc, build_path, unix_connect, wait_for_listener


def agent_path():
    return build_path("agent", "guestlink-agent")


class Agent:
    def __init__(self, tmp, config=None, extra=(), env=None, prefix=()):
        """prefix: run it elsewhere, e.g. nslib's nsenter into a mount namespace
        (it must exec the agent, so that the PID is the agent's)."""
        self.tmp = tmp
        self.sock = os.path.join(tmp, "agent.sock")
        self.config_path = os.path.join(tmp, "agent.conf")
        argv = list(prefix) + [agent_path(), "--listen", "unix:" + self.sock]
        if config is not None:
            self.write_config(config)
            argv += ["--config", self.config_path]
        argv += list(extra)
        self.proc = Proc(argv, env=env)
        self.pid = self.proc.pid
        if not wait_for_listener(self.sock, 15, self.proc):
            raise RuntimeError("agent did not start")

    def write_config(self, config):
        with open(self.config_path + ".tmp", "w") as f:
            f.write(config if isinstance(config, str) else json.dumps(config))
        os.rename(self.config_path + ".tmp", self.config_path)

    def client(self, timeout=10):
        return LineClient(unix_connect(self.sock, timeout))

    def alive(self):
        return self.proc.alive()

    def stop(self):
        return self.proc.stop()


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def read_until_eof(sock, timeout=10):
    """All bytes until the peer closes; None when it does not close in time."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return None
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk
    return None
