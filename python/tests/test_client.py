# SPDX-License-Identifier: LGPL-2.1-or-later
"""guestlink.Client against the real agent on a Unix socket."""

import hashlib
import os
import signal
import socket
import time

import pytest

import guestlink


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def test_ping_info(agent):
    with guestlink.connect(agent.address) as c:
        assert c.ping() is None
        info = c.info()
        assert info["pid"] == agent.proc.pid
        assert "exec.run" in info["methods"]
        assert c.call("agent.echo", {"a": [1, "x"]}) == {"a": [1, "x"]}


def test_address_from_environment(agent, monkeypatch):
    monkeypatch.setenv("GUESTLINK_ADDRESS", agent.address)
    with guestlink.connect() as c:
        assert c.info()["pid"] == agent.proc.pid


def test_vm_name_means_hybrid_run_path():
    assert guestlink.machine_address("vm1") == "hybrid:/run/guestlink/vm1.vsock:9731"
    name = "no-such-vm-%d" % os.getpid()
    with pytest.raises(guestlink.ConnectionError) as e:
        guestlink.connect(vm=name, timeout=2)
    assert "/run/guestlink/%s.vsock" % name in str(e.value)
    with pytest.raises(ValueError):
        guestlink.connect(vm="../etc")
    with pytest.raises(ValueError):
        guestlink.connect("unix:/x", vm="vm1")


@pytest.mark.parametrize("bad", ["", "tcp:1.2.3.4:5", "unix:", "hybrid:/x", "hybrid:/x:p",
                                 "hybrid::1", "vsock:3", "vsock:x:1", "vsock:3:4294967295",
                                 "exec:", "exec:   "])
def test_bad_addresses(bad):
    with pytest.raises(ValueError):
        guestlink.parse_address(bad)


def test_address_round_trip():
    for a in ("unix:/run/x.sock", "hybrid:/run/guestlink/a:b.vsock:9731", "vsock:3:9731",
              "exec:ssh hv1 guestlink -m vm1 connect 9731"):
        assert str(guestlink.parse_address(a)) == a


def test_unreachable(tmp_path):
    with pytest.raises(guestlink.ConnectionError):
        guestlink.connect("unix:%s/none.sock" % tmp_path)
    # A Unix socket that is not a backend: the handshake gets no OK.
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(tmp_path / "mute.sock"))
    s.listen(1)
    t = time.monotonic()
    with pytest.raises(guestlink.ConnectionError) as e:
        guestlink.connect("hybrid:%s/mute.sock:9731" % tmp_path, timeout=0.5)
    assert "timed out" in str(e.value)
    assert time.monotonic() - t < 30
    s.close()


def test_error_classes(make_agent):
    a = make_agent({"deny": ["system.shutdown"], "exec": {"max_output_bytes": 1000}})
    with guestlink.connect(a.address) as c:
        with pytest.raises(guestlink.MethodNotFound) as e:
            c.call("no.such.method")
        assert e.value.code == -32601 and isinstance(e.value, guestlink.RpcError)
        with pytest.raises(guestlink.InvalidParams) as e:
            c.call("agent.ping", {"delay_ms": "soon"})
        assert e.value.code == -32602
        with pytest.raises(guestlink.DeniedError) as e:
            c.call("system.shutdown")
        assert e.value.code == -32001
        with pytest.raises(guestlink.NotFoundError) as e:
            c.read_file("/nonexistent/guestlink-test")
        assert e.value.code == -32002 and e.value.data["errno"] == "ENOENT"
        started = c.call("exec.start", {"argv": ["sleep", "30"]})
        with pytest.raises(guestlink.TimedOutError) as e:
            c.call("exec.wait", {"id": started["id"], "timeout_ms": 50})
        assert e.value.code == -32004
        c.call("exec.signal", {"id": started["id"], "signal": "KILL"})


def test_limit_error(make_agent):
    a = make_agent({"max_inflight": 2})
    with guestlink.connect(a.address) as c:
        ids = [c._request("agent.ping", {"delay_ms": 500}) for _ in range(4)]
        outcomes = []
        for i in ids:
            try:
                outcomes.append(c._answer(i, "agent.ping", 10))
            except guestlink.LimitError as e:
                outcomes.append(e.code)
        assert outcomes.count("pong") == 2 and outcomes.count(-32003) == 2


def test_call_timeout_keeps_connection(agent):
    with guestlink.connect(agent.address) as c:
        with pytest.raises(guestlink.CallTimeoutError):
            c.call("agent.ping", {"delay_ms": 1500}, timeout=0.2)
        # The late answer is dropped; the next call gets its own.
        assert c.call("agent.echo", ["after"], timeout=10) == ["after"]
        time.sleep(1.5)
        assert c.call("agent.echo", ["later"], timeout=10) == ["later"]


def test_connection_lost(make_agent):
    a = make_agent()
    c = guestlink.connect(a.address)
    c.ping()
    a.stop()
    with pytest.raises(guestlink.ConnectionError):
        c.ping()
    c.close()


def test_exec(agent, tmp_path):
    with guestlink.connect(agent.address) as c:
        r = c.exec(["sh", "-c", "echo out; echo err >&2; exit 7"])
        assert (r.exit_code, r.signal, r.stdout, r.stderr) == (7, None, b"out\n", b"err\n")
        assert not r.truncated and not r.timed_out
        r = c.exec(["sh", "-c", 'cat; printf "%s|%s" "$GL_X" "$PWD"'], stdin=b"in\x00put",
                   env={"GL_X": "y z"}, cwd=str(tmp_path))
        assert r.stdout == b"in\x00put" + b"y z|" + str(tmp_path).encode()
        r = c.exec(["sh", "-c", "kill -TERM $$"])
        assert (r.exit_code, r.signal) == (None, signal.SIGTERM)
        r = c.exec(["sleep", "30"], timeout=0.3)
        assert r.timed_out and r.signal == signal.SIGKILL and r.exit_code is None
        with pytest.raises(guestlink.NotFoundError):
            c.exec(["/nonexistent/program"])
        with pytest.raises(ValueError):
            c.exec("echo hi")
        if os.geteuid() == 0:
            assert c.exec(["id", "-un"], user="nobody").stdout == b"nobody\n"
            assert c.exec(["id", "-u"], user=65534).stdout == b"65534\n"


def test_exec_outlasts_call_timeout(agent):
    # A process without a timeout may run longer than the client's call timeout.
    with guestlink.connect(agent.address, timeout=0.3) as c:
        r = c.exec(["sh", "-c", "sleep 1; echo done"])
        assert (r.exit_code, r.stdout) == (0, b"done\n")
        with pytest.raises(guestlink.CallTimeoutError):
            c.call("agent.ping", {"delay_ms": 1000})


def test_exec_large_output(agent):
    # More than one answer carries (4 MiB inline): the rest comes by exec.read.
    with guestlink.connect(agent.address, timeout=30) as c:
        r = c.exec(["sh", "-c", "head -c 9000000 /dev/urandom | tee /dev/stderr | sha256sum"])
        assert len(r.stderr) == 9000000
        assert r.stdout.split()[0].decode() == hashlib.sha256(r.stderr).hexdigest()


def test_exec_truncated(make_agent):
    a = make_agent({"exec": {"max_output_bytes": 1000}})
    with guestlink.connect(a.address) as c:
        r = c.exec(["head", "-c", "5000", "/dev/zero"])
        assert r.truncated and len(r.stdout) == 1000 and r.exit_code == 0


def test_exec_stream(agent):
    with guestlink.connect(agent.address) as c:
        items = list(c.exec_stream(["sh", "-c", "echo one; sleep 0.2; echo two >&2; exit 3"]))
        res = items[-1]
        assert isinstance(res, guestlink.ExecResult) and res.exit_code == 3
        out = b"".join(d for s, d in items[:-1] if s == "stdout")
        err = b"".join(d for s, d in items[:-1] if s == "stderr")
        assert (out, err) == (b"one\n", b"two\n")
        # The answer to a call made after the stream is still matched by id.
        assert c.call("agent.echo", [1]) == [1]


def test_exec_stream_abandoned_kills(agent):
    with guestlink.connect(agent.address) as c:
        gen = c.exec_stream(["sh", "-c", "echo started; exec sleep 60"])
        assert next(gen) == ("stdout", b"started\n")
        assert len(agent.children()) == 1
        gen.close()
        deadline = time.monotonic() + 20
        while agent.children() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert agent.children() == []
        c.ping()


def test_copy_to_from(agent, tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(10 << 20) + b"tail")
    os.chmod(src, 0o640)
    guest = tmp_path / "guest.bin"
    back = tmp_path / "back.bin"
    with guestlink.connect(agent.address) as c:
        assert c.copy_to(str(src), str(guest)) == (10 << 20) + 4
        assert sha256(guest) == sha256(src)
        assert os.stat(guest).st_mode & 0o777 == 0o640
        assert c.copy_from(str(guest), str(back)) == (10 << 20) + 4
        assert sha256(back) == sha256(src)
        assert os.stat(back).st_mode & 0o777 == 0o640
        c.copy_to(str(src), str(guest), mode=0o600)
        assert os.stat(guest).st_mode & 0o777 == 0o600
        empty = tmp_path / "empty"
        empty.write_bytes(b"")
        assert c.copy_to(str(empty), str(tmp_path / "empty2")) == 0
        assert (tmp_path / "empty2").read_bytes() == b""
        with pytest.raises(guestlink.NotFoundError):
            c.copy_from(str(tmp_path / "missing"), str(tmp_path / "x"))
        assert not (tmp_path / "x").exists()
        assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_copy_without_side_channel(make_agent, tmp_path):
    # A policy that denies file.channel alone: JSON chunks instead.
    a = make_agent({"deny": ["file.channel"]})
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(5 << 20))
    with guestlink.connect(a.address) as c:
        with pytest.raises(guestlink.DeniedError):
            c.call("file.channel", {"path": str(tmp_path / "g"), "direction": "download"})
        assert c.copy_to(str(src), str(tmp_path / "g")) == 5 << 20
        assert sha256(tmp_path / "g") == sha256(src)
        assert c.copy_from(str(tmp_path / "g"), str(tmp_path / "b")) == 5 << 20
        assert sha256(tmp_path / "b") == sha256(src)


def test_read_write_file(agent, tmp_path):
    p = str(tmp_path / "f")
    with guestlink.connect(agent.address) as c:
        c.write_file(p, b"hello\n", mode=0o600)
        assert open(p, "rb").read() == b"hello\n"
        assert os.stat(p).st_mode & 0o777 == 0o600
        assert c.read_file(p) == b"hello\n"
        big = os.urandom(9 << 20)  # more than one file.write: open/write/close
        c.write_file(p, big)
        assert open(p, "rb").read() == big
        assert c.read_file(p) == big
        c.write_file(p, b"")
        assert c.read_file(p) == b""


@pytest.mark.parametrize("side_channel", [True, False])
def test_copy_from_ignores_planted_symlink(make_agent, tmp_path, side_channel):
    """The download's temporary file is made with O_EXCL in the destination
    directory: a symlink planted at the name an older version predicted
    (DST.guestlink-PID.tmp) is neither followed nor renamed into place."""
    config = {} if side_channel else {"deny": ["file.channel"]}
    a = make_agent(config)
    src = tmp_path / "src"
    src.write_bytes(b"from the guest\n" * 100)
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious\n")
    dst = tmp_path / "dst"
    planted = tmp_path / ("dst.guestlink-%d.tmp" % os.getpid())
    os.symlink(str(victim), str(planted))
    with guestlink.connect(a.address) as c:
        assert c.copy_from(str(src), str(dst)) == 1500
    assert victim.read_bytes() == b"precious\n"
    assert not os.path.islink(str(dst))
    assert dst.read_bytes() == src.read_bytes()
    assert os.path.islink(str(planted)) and os.readlink(str(planted)) == str(victim)
    assert sorted(os.listdir(str(tmp_path))) == sorted(
        ["agent", "src", "victim", "dst", planted.name])


def _open_fds():
    return sorted(int(fd) for fd in os.listdir("/proc/self/fd"))


def test_exec_transport_spawn_failure_leaks_no_fd():
    """When the exec: command cannot be started at all (here fork's pipe
    fails with EMFILE under a tight fd limit) nothing opened for it stays
    open: neither the socket pair nor the file that collects its stderr."""
    import resource
    before = _open_fds()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # The smallest limit leaving exactly three free fds: the socket pair and the
    # stderr file fit, subprocess's own pipe does not.
    limit, free = 0, 0
    while free < 3:
        if limit not in before:
            free += 1
        limit += 1
    errors = []
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    try:
        for _ in range(3):
            try:
                guestlink.connect("exec:cat")
            except guestlink.ConnectionError as e:
                errors.append(e)  # kept: the exception must not be what holds a file open
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert len(errors) == 3
    assert "cannot run the command" in str(errors[0])
    assert _open_fds() == before
