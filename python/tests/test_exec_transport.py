# SPDX-License-Identifier: LGPL-2.1-or-later
"""The exec: transport in Python: the protocol over a command's stdin/stdout.
For real through OpenSSH: sshd on 127.0.0.1 started here with throwaway keys, and socat on the
far side reaching the agent's Unix socket. The command's stderr must show in
errors, and the command must be reaped (killed if it lingers) on close."""

import asyncio
import hashlib
import os
import shutil
import time

import pytest

import guestlink
import guestlink.aio

pytestmark = pytest.mark.skipif(not shutil.which("socat"), reason="socat not installed")


def gone(pid):
    """True once pid is neither running nor a zombie of ours."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    return not os.path.exists("/proc/%d" % pid)


def wait_gone(pid, timeout=20):
    deadline = time.monotonic() + timeout
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return gone(pid)


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_exec_socat(agent, tmp_path):
    address = "exec:socat - UNIX-CONNECT:%s" % agent.sock
    with guestlink.connect(address) as c:
        pid = c._child.proc.pid
        c.ping()
        assert c.info()["pid"] == agent.proc.pid
        assert c.exec(["echo", "over a pipe"]).stdout == b"over a pipe\n"
        src = tmp_path / "src"
        src.write_bytes(os.urandom(3 << 20))
        # The side channel is a second run of the same command.
        assert c.copy_to(str(src), str(tmp_path / "g")) == 3 << 20
        assert sha(tmp_path / "g") == sha(src)
    assert wait_gone(pid)


def test_exec_command_fails_stderr_shown(tmp_path):
    c = guestlink.connect("exec:sh -c 'echo cannot reach hv9 >&2; exit 255'")
    pid = c._child.proc.pid
    with pytest.raises(guestlink.ConnectionError) as e:
        c.ping()
    assert "cannot reach hv9" in str(e.value) and "cannot reach hv9" in e.value.stderr
    assert "status 255" in str(e.value)
    c.close()
    assert gone(pid)
    with pytest.raises(guestlink.ConnectionError) as e:
        guestlink.connect("exec:/nonexistent/program").ping()
    assert "nonexistent" in str(e.value)


def test_exec_lingering_command_killed(agent):
    # The command outlives the end of its stdin: closing the client kills it.
    c = guestlink.connect("exec:sh -c 'socat - UNIX-CONNECT:%s; exec sleep 120'" % agent.sock)
    c.ping()
    pid = c._child.proc.pid
    c.close()
    assert gone(pid)


def test_exec_aio(agent):
    async def main():
        c = await guestlink.aio.connect("exec:socat - UNIX-CONNECT:%s" % agent.sock)
        pid = c._child.proc.pid
        got = await asyncio.gather(*(c.call("agent.echo", [i]) for i in range(64)))
        assert got == [[i] for i in range(64)]
        await c.close()
        return pid
    assert wait_gone(asyncio.run(asyncio.wait_for(main(), 60)))


def test_ssh(sshd, agent, tmp_path):
    address = "exec:%s socat - UNIX-CONNECT:%s" % (sshd.ssh_command, agent.sock)
    with guestlink.connect(address, timeout=30) as c:
        pid = c._child.proc.pid
        c.ping()
        r = c.exec(["sh", "-c", "echo $0 over ssh; exit 6"])
        assert (r.exit_code, r.stdout) == (6, b"sh over ssh\n")
        src = tmp_path / "src"
        src.write_bytes(os.urandom(10 << 20))
        assert c.copy_to(str(src), str(tmp_path / "g")) == 10 << 20
        assert c.copy_from(str(tmp_path / "g"), str(tmp_path / "b")) == 10 << 20
        assert sha(tmp_path / "g") == sha(src) == sha(tmp_path / "b")
    assert wait_gone(pid)


def test_ssh_unreachable_host(sshd):
    # A host that refuses: ssh's own words reach the error.
    cmd = "ssh -F %s -p 1 testhost socat - UNIX-CONNECT:/nonexistent" % sshd.client_config
    with pytest.raises(guestlink.ConnectionError) as e:
        guestlink.connect("exec:" + cmd, timeout=20).ping()
    assert "Connection refused" in str(e.value)
