# SPDX-License-Identifier: LGPL-2.1-or-later
"""Fixtures: the real guestlink-agent on a Unix socket, the real backend with
guestsim bridging guest port 9731 to such an agent, and OpenSSH's sshd on
loopback. Every process is started here and stopped here, by PID.

Run from a build tree: top_srcdir and top_builddir in the environment (make
check sets them), or the defaults below (python/.. and python/../build)."""

import json
import os
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
TOP_SRCDIR = os.environ.get("top_srcdir") or os.path.dirname(os.path.dirname(HERE))
TOP_BUILDDIR = os.environ.get("top_builddir") or os.path.join(TOP_SRCDIR, "build")
os.environ.setdefault("top_srcdir", TOP_SRCDIR)
os.environ.setdefault("top_builddir", TOP_BUILDDIR)
for p in (os.path.join(TOP_SRCDIR, "python"), os.path.join(TOP_SRCDIR, "tests", "lib")):
    if p not in sys.path:
        sys.path.insert(0, p)

import glssh  # noqa: E402
import gltest  # noqa: E402

AGENT = gltest.build_path("agent", "guestlink-agent")
BACKEND = gltest.build_path("backend", "vhost-user-vsock")
GUESTSIM = gltest.build_path("tests", "guestsim", "guestsim")
CLI = gltest.build_path("host", "guestlink")


def need(path, what):
    if not os.access(path, os.X_OK):
        pytest.skip("%s not built (%s)" % (what, path))


class Agent:
    """guestlink-agent --listen unix:DIR/agent.sock with its own config."""

    def __init__(self, tmp, config=None, name="agent", env=None):
        need(AGENT, "guestlink-agent")
        self.dir = os.path.join(str(tmp), name)
        os.makedirs(self.dir, exist_ok=True)
        self.sock = os.path.join(self.dir, "agent.sock")
        self.address = "unix:" + self.sock
        conf = dict(config or {})
        conf.setdefault("plugin_dir", os.path.join(self.dir, "no-plugins"))
        self.config_path = os.path.join(self.dir, "agent.conf")
        with open(self.config_path, "w") as f:
            json.dump(conf, f)
        self.log_path = os.path.join(self.dir, "agent.log")
        self.log = open(self.log_path, "w")
        self.proc = gltest.Proc([AGENT, "--listen", self.address, "--config", self.config_path],
                                env=env, stderr=self.log)
        if not gltest.wait_for_listener(self.sock, 20, self.proc):
            raise RuntimeError("agent did not start: " + open(self.log_path).read())

    def children(self):
        """PIDs of the agent's direct children."""
        out = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    s = f.read()
            except OSError:
                continue
            if int(s[s.rindex(")") + 2:].split()[1]) == self.proc.pid:
                out.append(int(d))
        return out

    def stop(self):
        rc = self.proc.stop()
        self.log.close()
        return rc


@pytest.fixture
def make_agent(tmp_path):
    """A factory: make_agent(config=None, name="agent", env=None) -> Agent (env: added
    to the agent's environment, which its processes inherit); all stopped after the test."""
    agents = []

    def make(config=None, name="agent", env=None):
        a = Agent(tmp_path, config, name, env)
        agents.append(a)
        return a
    yield make
    for a in agents:
        a.stop()


@pytest.fixture
def agent(make_agent):
    return make_agent()


class Stack:
    """vhost-user-vsock + guestsim bridging guest port 9731 to an agent: the
    agent is reached as hybrid:UDS:9731, as a real guest's would be."""

    def __init__(self, tmp, agent_sock):
        need(BACKEND, "vhost-user-vsock")
        need(GUESTSIM, "guestsim")
        self.vu = os.path.join(str(tmp), "vhost.sock")
        self.uds = os.path.join(str(tmp), "vm.vsock")
        self.address = "hybrid:%s:9731" % self.uds
        self.log = open(os.path.join(str(tmp), "stack.log"), "w")
        self.backend = gltest.Proc([BACKEND, "--socket-path=" + self.vu, "--uds-path=" + self.uds,
                                    "--guest-cid=3"], stdout=self.log, stderr=self.log)
        if not gltest.wait_for_listener(self.uds, 20, self.backend):
            raise RuntimeError("backend did not start")
        self.guestsim = gltest.Proc([GUESTSIM, "--socket-path=" + self.vu,
                                     "--bridge", "9731=unix:" + agent_sock],
                                    stdout=self.log, stderr=self.log)
        import guestlink
        deadline = time.monotonic() + 20
        while True:
            try:
                guestlink.connect(self.address, timeout=2).close()
                break
            except guestlink.ConnectionError:
                if time.monotonic() > deadline or not self.guestsim.alive():
                    raise RuntimeError("guestsim bridge did not come up")
                time.sleep(0.05)

    def stop(self):
        self.guestsim.stop()
        self.backend.stop()
        self.log.close()


@pytest.fixture
def stack(tmp_path, agent):
    s = Stack(tmp_path, agent.sock)
    yield s
    s.stop()


@pytest.fixture
def sshd(tmp_path):
    """OpenSSH's sshd on loopback (tests/lib/glssh.py), stopped after the test."""
    try:
        s = glssh.Sshd(str(tmp_path))
    except glssh.Unavailable as e:
        pytest.skip(str(e))
    yield s
    s.stop()
