# SPDX-License-Identifier: LGPL-2.1-or-later
"""guestlink.aio against the real agent on a Unix socket: many calls in flight
on one connection, answers matched by id in any order, exec_stream as an async
iterator, files."""

import asyncio
import hashlib
import os
import signal

import pytest

import guestlink
import guestlink.aio


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))


def test_many_in_flight_out_of_order(agent):
    async def main():
        async with await guestlink.aio.connect(agent.address) as c:
            # The slow call was asked first and is answered last.
            slow = asyncio.ensure_future(c.call("agent.ping", {"delay_ms": 800}))
            fast = await asyncio.gather(*(c.call("agent.echo", [i]) for i in range(60)))
            assert fast == [[i] for i in range(60)]
            assert not slow.done()
            assert await slow == "pong"
            await asyncio.gather(*(c.ping() for _ in range(64)))
            info = await c.info()
            assert info["pid"] == agent.proc.pid
    run(main())


def test_errors(make_agent, tmp_path):
    a = make_agent({"deny": ["system.shutdown"], "max_inflight": 2})

    async def main():
        async with await guestlink.aio.connect(a.address) as c:
            with pytest.raises(guestlink.MethodNotFound):
                await c.call("no.such")
            with pytest.raises(guestlink.DeniedError):
                await c.call("system.shutdown")
            with pytest.raises(guestlink.NotFoundError):
                await c.read_file(str(tmp_path / "missing"))
            res = await asyncio.gather(*(c.call("agent.ping", {"delay_ms": 300})
                                         for _ in range(4)), return_exceptions=True)
            assert res.count("pong") == 2
            assert sum(isinstance(r, guestlink.LimitError) for r in res) == 2
            with pytest.raises(guestlink.CallTimeoutError):
                await c.call("agent.ping", {"delay_ms": 1000}, timeout=0.2)
            assert await c.call("agent.echo", ["x"]) == ["x"]
    run(main())


def test_connection_lost_fails_pending(make_agent):
    a = make_agent()

    async def main():
        c = await guestlink.aio.connect(a.address)
        pending = asyncio.ensure_future(c.call("agent.ping", {"delay_ms": 5000}, timeout=30))
        await asyncio.sleep(0.2)
        a.proc.stop(signal.SIGKILL)  # no goodbye: the connection just ends
        with pytest.raises(guestlink.ConnectionError):
            await pending
        with pytest.raises(guestlink.ConnectionError):
            await c.ping()
        await c.close()
    run(main())


def test_exec_and_stream(agent):
    async def main():
        async with await guestlink.aio.connect(agent.address) as c:
            r = await c.exec(["sh", "-c", "cat; exit 4"], stdin=b"abc")
            assert (r.exit_code, r.stdout) == (4, b"abc")
            c.timeout = 0.3  # exec without a timeout is not bound by the call timeout
            r = await c.exec(["sh", "-c", "sleep 1; echo done"])
            assert r.stdout == b"done\n"
            c.timeout = 5.0
            # Two streams at once on one connection, kept apart by process id.
            async def collect(tag):
                out = []
                async for item in c.exec_stream(["sh", "-c", "for i in 1 2 3; do echo %s$i; "
                                                 "sleep 0.05; done; exit 5" % tag]):
                    out.append(item)
                return out
            a, b = await asyncio.gather(collect("a"), collect("b"))
            for tag, items in (("a", a), ("b", b)):
                assert items[-1].exit_code == 5
                assert b"".join(d for s, d in items[:-1]) == \
                    ("%s1\n%s2\n%s3\n" % (tag, tag, tag)).encode()
    run(main())


def test_files(agent, tmp_path):
    src = tmp_path / "src"
    src.write_bytes(os.urandom(10 << 20))
    digest = hashlib.sha256(src.read_bytes()).hexdigest()

    async def main():
        async with await guestlink.aio.connect(agent.address) as c:
            # A copy does not stop other calls on the connection.
            copy = asyncio.ensure_future(c.copy_to(str(src), str(tmp_path / "g")))
            await c.ping()
            assert await copy == 10 << 20
            assert await c.copy_from(str(tmp_path / "g"), str(tmp_path / "b")) == 10 << 20
            await c.write_file(str(tmp_path / "w"), b"x" * (6 << 20), mode=0o600)
            assert await c.read_file(str(tmp_path / "w")) == b"x" * (6 << 20)
    run(main())
    assert hashlib.sha256((tmp_path / "g").read_bytes()).hexdigest() == digest
    assert hashlib.sha256((tmp_path / "b").read_bytes()).hexdigest() == digest
    assert os.stat(tmp_path / "w").st_mode & 0o777 == 0o600
