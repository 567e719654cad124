# SPDX-License-Identifier: LGPL-2.1-or-later
"""The Python client through the real vhost-user-vsock backend and guestsim
(the guest's virtio-vsock driver) to the real agent: hybrid:UDS:9731 with the
CONNECT handshake, as for a real VM."""

import asyncio
import hashlib
import os

import pytest

import guestlink
import guestlink.aio


def test_hybrid_calls(stack, agent):
    with guestlink.connect(stack.address()) as c:
        c.ping()
        assert c.info()["pid"] == agent.proc.pid
        r = c.exec(["sh", "-c", "echo via-backend; exit 2"])
        assert (r.exit_code, r.stdout) == (2, b"via-backend\n")
        items = list(c.exec_stream(["sh", "-c", "echo a; echo b >&2"]))
        assert items[-1].exit_code == 0
        assert sorted(items[:-1]) == [("stderr", b"b\n"), ("stdout", b"a\n")]


def test_hybrid_refused(stack):
    # A guest port nobody listens on: the backend closes without OK.
    with pytest.raises(guestlink.ConnectionError) as e:
        guestlink.connect("hybrid:%s:7999" % stack.uds, timeout=10)
    assert "refused" in str(e.value)


def test_hybrid_copy(stack, tmp_path):
    src = tmp_path / "src"
    src.write_bytes(os.urandom(10 << 20))
    with guestlink.connect(stack.address(), timeout=60) as c:
        assert c.copy_to(str(src), str(tmp_path / "g")) == 10 << 20
        assert c.copy_from(str(tmp_path / "g"), str(tmp_path / "b")) == 10 << 20
    want = hashlib.sha256(src.read_bytes()).hexdigest()
    assert hashlib.sha256((tmp_path / "g").read_bytes()).hexdigest() == want
    assert hashlib.sha256((tmp_path / "b").read_bytes()).hexdigest() == want


def test_hybrid_aio_in_flight(stack):
    async def main():
        async with await guestlink.aio.connect(stack.address(), timeout=30) as c:
            got = await asyncio.gather(*(c.call("agent.echo", [i]) for i in range(64)))
            assert got == [[i] for i in range(64)]
    asyncio.run(asyncio.wait_for(main(), 120))
