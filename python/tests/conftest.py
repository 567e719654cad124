# SPDX-License-Identifier: LGPL-2.1-or-later
"""Fixtures: the real guestlink-agent on a Unix socket, the real backend with
guestsim bridging guest port 9731 to such an agent, and OpenSSH's sshd on
loopback. Every process is started here and stopped here, by PID.

Run from a build tree: top_srcdir and top_builddir in the environment (make
check sets them), or the defaults below (python/.. and python/../build)."""

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
TOP_SRCDIR = os.environ.get("top_srcdir") or os.path.dirname(os.path.dirname(HERE))
TOP_BUILDDIR = os.environ.get("top_builddir") or os.path.join(TOP_SRCDIR, "build")
os.environ.setdefault("top_srcdir", TOP_SRCDIR)
os.environ.setdefault("top_builddir", TOP_BUILDDIR)
for p in (os.path.join(TOP_SRCDIR, "python"), os.path.join(TOP_SRCDIR, "tests", "lib")):
    if p not in sys.path:
        sys.path.insert(0, p)

import glagent  # noqa: E402
import glssh  # noqa: E402
import gltest  # noqa: E402

AGENT = gltest.build_path("agent", "guestlink-agent")
BACKEND = glagent.BACKEND
GUESTSIM = glagent.GUESTSIM
CLI = gltest.build_path("host", "guestlink")


def need(path, what):
    if not os.access(path, os.X_OK):
        pytest.skip("%s not built (%s)" % (what, path))


class Agent(glagent.Agent):
    """glagent's agent in TMP/NAME, skipping the test when it is not built."""

    def __init__(self, tmp, config=None, name="agent", env=None):
        need(AGENT, "guestlink-agent")
        super().__init__(config=config, env=env, dir=os.path.join(str(tmp), name))

    def stop(self):
        rc = super().stop()
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


class Stack(glagent.Stack):
    """glagent's backend + guestsim bridging guest port 9731 to an agent: the
    agent is reached as hybrid:UDS:9731 (address()), as a real guest's would be."""

    def __init__(self, tmp, agent_sock):
        need(BACKEND, "vhost-user-vsock")
        need(GUESTSIM, "guestsim")
        super().__init__(str(tmp), {9731: agent_sock})


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
