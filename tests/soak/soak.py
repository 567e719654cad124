#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Soak under load and faults: 1,000 concurrent host clients for 60 s through
the real back-end, guestsim (standing in for QEMU and the guest kernel) and the
real agent, calling agent.echo with random sizes up to 1 MiB, exec.run, and
file uploads and downloads verified by SHA-256. Every answer is checked: zero
wrong, zero lost. Faults are injected during the load, each followed by a check
that a new client is served: guestsim killed and restarted, the agent SIGKILLed
and activated again on the same listening socket (as systemd does), clients
aborting in the middle of a message, a client that stops reading. At the end
the RSS of back-end and agent stayed under the stated bounds and, once the
clients left, neither holds more file descriptors than before the load.

Environment: SOAK_CLIENTS (default 1000), SOAK_SECONDS (default 60)."""

import asyncio
import base64
import hashlib
import json
import os
import random
import resource
import signal
import socket
import sys
import time

from gltest import (Proc, build_path, diag, done, ok, skip_all, tmpdir, wait_for_path)

BACKEND = build_path("backend", "vhost-user-vsock")
GUESTSIM = build_path("tests", "guestsim", "guestsim")
AGENT = build_path("agent", "guestlink-agent")
PORT = 9731
CLIENTS = int(os.environ.get("SOAK_CLIENTS", "1000"))
SECONDS = float(os.environ.get("SOAK_SECONDS", "60"))
MAX_ECHO = 1 << 20
MAX_FILE = 512 << 10
CALL_TIMEOUT = 60
# Pause between a client's calls, uniform in [0, THINK_S): a management tool
# pauses, and a thousand clients in a closed loop would only measure how long
# a saturated 2-core machine queues a newcomer (a fault check is a newcomer).
THINK_S = 5.0
# Stated bounds (KiB): what a thousand clients with up to 1 MiB in flight each
# may cost. Measured peaks are printed.
RSS_BOUND_AGENT = 1536 * 1024
RSS_BOUND_BACKEND = 512 * 1024

for path, what in ((BACKEND, "back-end"), (GUESTSIM, "guestsim"), (AGENT, "agent")):
    if not os.access(path, os.X_OK):
        skip_all("%s not built" % what)

# `timeout` ends a run that overstays with SIGTERM: leave through the cleanup
# below, which stops every process by PID.
signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit("soak: terminated"))

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
need = CLIENTS * 3 + 512
if hard != resource.RLIM_INFINITY and hard < need:
    skip_all("RLIMIT_NOFILE hard limit %d < %d" % (hard, need))
resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))

tmp = tmpdir()
VU = os.path.join(tmp, "vhost.sock")
UDS = os.path.join(tmp, "vm.vsock")
AGENT_SOCK = os.path.join(tmp, "agent.sock")
FILES = os.path.join(tmp, "files")
os.mkdir(FILES)
log = open(os.path.join(tmp, "soak.log"), "w")
conf = os.path.join(tmp, "agent.conf")
with open(conf, "w") as f:
    json.dump({"max_connections": CLIENTS * 4, "max_inflight": 64}, f)

# The agent's listening socket belongs to the harness, as to systemd: a killed
# agent loses no connection attempt, the next one accepts it.
lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
lsock.bind(AGENT_SOCK)
os.chmod(AGENT_SOCK, 0o600)
lsock.listen(4096)
LFD = lsock.fileno()

procs = {}


def start_agent():
    # systemd's protocol: the socket as fd 3, LISTEN_PID the agent's own pid.
    move = "" if LFD == 3 else "exec 3<&%d %d<&-; " % (LFD, LFD)
    script = (move + 'export LISTEN_FDS=1 LISTEN_FDNAMES=agent LISTEN_PID=$$; exec "$0" "$@"')
    procs["agent"] = Proc(["sh", "-c", script, AGENT, "--config", conf], pass_fds=(LFD,),
                          stdout=log, stderr=agent_log)


# The agent audits every call at notice level: only warnings and worse are kept.
agent_log = log
os.environ["GUESTLINK_LOG_LEVEL"] = "4"


def start_guestsim():
    procs["guestsim"] = Proc([GUESTSIM, "--socket-path=" + VU,
                              "--bridge", "%d=unix:%s" % (PORT, AGENT_SOCK)],
                             stdout=log, stderr=log)


def kill(name):
    p = procs[name]
    os.kill(p.pid, signal.SIGKILL)
    p.stop()


def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def n_fds(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return -1


# --- the client side ---

class Stats:
    def __init__(self):
        self.checked = {"echo": 0, "exec": 0, "file": 0}
        self.bytes = 0
        self.wrong = []
        self.lost = 0
        self.interrupted = 0     # connections cut by an injected fault
        self.unexpected = []     # connections cut outside any fault
        self.refused = 0         # connects refused while a fault was in progress


stats = Stats()
faults = {"active": 0, "until": 0.0}


def in_fault():
    return faults["active"] > 0 or time.monotonic() < faults["until"]


class Conn:
    def __init__(self, reader, writer):
        self.r, self.w = reader, writer
        self.next_id = 1

    @classmethod
    async def open(cls, timeout=15):
        reader, writer = await asyncio.wait_for(
            asyncio.open_unix_connection(UDS, limit=8 << 20), timeout)
        writer.write(b"CONNECT %d\n" % PORT)
        line = await asyncio.wait_for(reader.readline(), timeout)
        if not line.startswith(b"OK "):
            writer.close()
            raise ConnectionRefusedError("handshake: %r" % line[:40])
        return cls(reader, writer)

    async def call(self, method, params):
        i = self.next_id
        self.next_id += 1
        req = {"jsonrpc": "2.0", "method": method, "id": i}
        if params is not None:
            req["params"] = params
        self.w.write(json.dumps(req).encode() + b"\n")
        await self.w.drain()
        line = await asyncio.wait_for(self.r.readline(), CALL_TIMEOUT)
        if not line.endswith(b"\n"):
            raise ConnectionResetError("EOF after %d bytes of an answer" % len(line))
        try:
            a = json.loads(line)
        except ValueError as e:
            stats.wrong.append("%s: not JSON (%s): %r" % (method, e, line[:100]))
            return {}
        if a.get("id") != i:
            stats.wrong.append("%s: answer id %r for request %d" % (method, a.get("id"), i))
        return a

    def close(self):
        self.w.close()


POOL = os.urandom(2 << 20)
ASCII = base64.b64encode(POOL).decode()


def rand_size(top):
    # log-uniform: many small messages, some close to the top
    return min(top, int(2 ** random.uniform(4, top.bit_length() - 1)))


async def op_echo(c, tag):
    n = rand_size(MAX_ECHO)
    off = random.randrange(0, len(ASCII) - n)
    s = ASCII[off:off + n]
    a = await c.call("agent.echo", [tag, s])
    if a.get("result") != [tag, s]:
        stats.wrong.append("echo of %d bytes: %s" % (n, str(a)[:200]))
        return
    stats.checked["echo"] += 1
    stats.bytes += 2 * n


async def op_exec(c, tag):
    a = await c.call("exec.run", {"argv": ["echo", tag]})
    r = a.get("result", {})
    if r.get("code") != 0 or base64.b64decode(r.get("stdout", "")) != (tag + "\n").encode():
        stats.wrong.append("exec.run echo %s: %s" % (tag, str(a)[:200]))
        return
    stats.checked["exec"] += 1


async def op_file(c, tag):
    n = rand_size(MAX_FILE)
    off = random.randrange(0, len(POOL) - n)
    data = POOL[off:off + n]
    path = os.path.join(FILES, tag)
    a = await c.call("file.write", {"path": path, "data": base64.b64encode(data).decode()})
    if "result" not in a:
        stats.wrong.append("file.write %d bytes: %s" % (n, str(a)[:200]))
        return
    a = await c.call("file.read", {"path": path, "length": n + 1})
    got = base64.b64decode(a.get("result", {}).get("data", ""))
    if hashlib.sha256(got).digest() != hashlib.sha256(data).digest():
        stats.wrong.append("file.read of %d bytes: SHA-256 differs (%d bytes back)"
                           % (n, len(got)))
        return
    a = await c.call("file.remove", {"path": path})
    if "result" not in a:
        stats.wrong.append("file.remove: %s" % str(a)[:200])
        return
    stats.checked["file"] += 1
    stats.bytes += 2 * n


async def client(k, stop_at):
    await asyncio.sleep(random.uniform(0, 2))
    seq = 0
    c = None
    while time.monotonic() < stop_at:
        try:
            if c is None:
                c = await Conn.open()
            seq += 1
            tag = "c%d-%d" % (k, seq)
            kind = random.random()
            if kind < 0.6:
                await op_echo(c, tag)
            elif kind < 0.75:
                await op_exec(c, tag)
            else:
                await op_file(c, tag)
            await asyncio.sleep(random.uniform(0, THINK_S))
        except asyncio.TimeoutError:
            if in_fault():
                stats.interrupted += 1
            else:
                stats.lost += 1
            c = c.close() if c else None
        except (ConnectionError, OSError, EOFError, asyncio.IncompleteReadError) as e:
            if in_fault():
                stats.interrupted += 1
            elif isinstance(e, ConnectionRefusedError) or c is None:
                stats.refused += 1
                if not in_fault():
                    stats.unexpected.append("client %d: connect: %s" % (k, e))
            else:
                stats.unexpected.append("client %d: %s: %s" % (k, type(e).__name__, e))
            c = c.close() if c else None
            await asyncio.sleep(random.uniform(0.2, 0.6))
        except Exception as e:  # noqa: BLE001 - any other failure is a finding
            stats.unexpected.append("client %d: %s: %s" % (k, type(e).__name__, e))
            c = c.close() if c else None
            await asyncio.sleep(0.5)
    if c:
        c.close()


async def served(what, timeout=40):
    """A new client is served: connect, ping, echo. Returns seconds taken."""
    t0 = time.monotonic()
    last = "nothing tried"
    while time.monotonic() - t0 < timeout:
        try:
            c = await Conn.open(5)
            a = await c.call("agent.ping", None)
            b = await c.call("agent.echo", [what])
            c.close()
            if a.get("result") == "pong" and b.get("result") == [what]:
                return time.monotonic() - t0
            last = "answers %r %r" % (a, b)
        except (ConnectionError, OSError, EOFError, asyncio.TimeoutError,
                asyncio.IncompleteReadError) as e:
            last = "%s: %s" % (type(e).__name__, e)
        await asyncio.sleep(0.2)
    diag("%s: not served: %s" % (what, last))
    return None


fault_log = []


async def fault(name, action):
    faults["active"] += 1
    try:
        await action()
        dt = await served(name)
    finally:
        faults["active"] -= 1
        faults["until"] = time.monotonic() + 5
    fault_log.append((name, dt))
    ok(dt is not None, "fault '%s': a new client is served afterwards (%s)"
       % (name, "%.2fs" % dt if dt is not None else "not within 40 s"))


async def restart_guestsim():
    kill("guestsim")
    await asyncio.sleep(0.5)
    start_guestsim()


async def restart_agent():
    kill("agent")
    await asyncio.sleep(0.5)
    start_agent()


async def abort_mid_message():
    async def one(k):
        try:
            c = await Conn.open(10)
            blob = json.dumps({"jsonrpc": "2.0", "method": "agent.echo",
                               "params": ["x" * 200000], "id": 1}).encode()
            c.w.write(blob[:random.randrange(1, len(blob) - 1)])
            await c.w.drain()
            sock = c.w.get_extra_info("socket")
            # RST instead of FIN: the most abrupt end
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
            c.close()
        except (ConnectionError, OSError, asyncio.TimeoutError):
            pass
    await asyncio.gather(*(one(k) for k in range(50)))


async def stop_reading():
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    await asyncio.wait_for(loop.sock_connect(sock, UDS), 10)
    await loop.sock_sendall(sock, b"CONNECT %d\n" % PORT)
    line = b""
    while not line.endswith(b"\n"):
        ch = await asyncio.wait_for(loop.sock_recv(sock, 1), 10)
        if not ch:
            raise ConnectionResetError("handshake")
        line += ch
    blob = json.dumps({"jsonrpc": "2.0", "method": "agent.echo",
                       "params": ["y" * (1 << 20)], "id": 1}).encode() + b"\n"
    sent = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < 5:
        try:
            sent += sock.send(blob[sent % len(blob):])
        except BlockingIOError:
            await asyncio.sleep(0.05)
    diag("a client that stops reading sent %d KiB before it was throttled" % (sent >> 10))
    dt = await served("while a client does not read")
    ok(dt is not None, "while a client does not read, a new client is served")
    sock.close()


async def sampler(peaks, stop):
    while not stop.is_set():
        for name in ("agent", "backend", "guestsim"):
            p = procs.get(name)
            if p:
                peaks[name] = max(peaks.get(name, 0), rss_kib(p.pid))
        await asyncio.sleep(0.5)


async def main():
    loop_stop = asyncio.Event()
    peaks = {}

    start_agent()
    procs["backend"] = Proc([BACKEND, "--socket-path=" + VU, "--uds-path=" + UDS,
                             "--guest-cid=3", "--max-connections=%d" % (CLIENTS * 4)],
                            stdout=log, stderr=log)
    if not wait_for_path(UDS, 10, procs["backend"]):
        ok(False, "back-end started")
        return
    start_guestsim()
    dt = await served("start")
    ok(dt is not None, "back-end, guestsim and agent serve a client")
    if dt is None:
        return
    # warm up every kind once, then take the idle figures
    c = await Conn.open()
    for op in (op_echo, op_exec, op_file):
        await op(c, "warmup")
    c.close()
    await asyncio.sleep(1)
    fds0 = {n: n_fds(procs[n].pid) for n in ("agent", "backend")}
    rss0 = {n: rss_kib(procs[n].pid) for n in ("agent", "backend")}
    diag("idle before the load: fds %s, RSS KiB %s" % (fds0, rss0))

    sample = asyncio.ensure_future(sampler(peaks, loop_stop))
    t0 = time.monotonic()
    stop_at = t0 + SECONDS
    clients = [asyncio.ensure_future(client(k, stop_at)) for k in range(CLIENTS)]
    plan = [(0.15, "guestsim killed and restarted", restart_guestsim),
            (0.35, "agent SIGKILLed and activated again", restart_agent),
            (0.55, "50 clients abort in the middle of a message", abort_mid_message),
            (0.70, "a client stops reading", stop_reading)]
    for at, name, action in plan:
        await asyncio.sleep(max(0, t0 + at * SECONDS - time.monotonic()))
        diag("t=%.1fs: %s" % (time.monotonic() - t0, name))
        await fault(name, action)
    await asyncio.gather(*clients)
    load_s = time.monotonic() - t0
    loop_stop.set()
    await sample

    total = sum(stats.checked.values())
    diag("load: %d clients for %.1fs: %d answers checked (echo %d, exec %d, file %d), "
         "%.1f MiB of payload; %d calls cut by faults, %d connects refused during faults"
         % (CLIENTS, load_s, total, stats.checked["echo"], stats.checked["exec"],
            stats.checked["file"], stats.bytes / (1 << 20), stats.interrupted, stats.refused))
    for w in stats.wrong[:10]:
        diag("wrong: " + w)
    for u in stats.unexpected[:10]:
        diag("unexpected: " + u)
    ok(total >= CLIENTS, "at least one checked answer per client (%d)" % total)
    ok(all(stats.checked[k] > 0 for k in stats.checked), "every kind of call was checked")
    ok(not stats.wrong, "zero wrong answers (%d)" % len(stats.wrong))
    ok(stats.lost == 0, "zero lost answers (%d)" % stats.lost)
    ok(not stats.unexpected, "no connection failed outside a fault (%d)" % len(stats.unexpected))
    diag("peak RSS KiB: %s" % peaks)
    ok(peaks.get("agent", 0) < RSS_BOUND_AGENT,
       "agent RSS peak %d KiB < %d KiB" % (peaks.get("agent", 0), RSS_BOUND_AGENT))
    ok(peaks.get("backend", 0) < RSS_BOUND_BACKEND,
       "back-end RSS peak %d KiB < %d KiB" % (peaks.get("backend", 0), RSS_BOUND_BACKEND))

    # after the clients left: no descriptor kept (the agent is the re-activated one,
    # so it is compared with the first one's idle count after the same warm-up)
    deadline = time.monotonic() + 20
    while True:
        fds = {n: n_fds(procs[n].pid) for n in ("agent", "backend")}
        if all(fds[n] <= fds0[n] for n in fds) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    ok(fds["agent"] <= fds0["agent"], "agent: %d fds after the clients left (%d before)"
       % (fds["agent"], fds0["agent"]))
    ok(fds["backend"] <= fds0["backend"], "back-end: %d fds after the clients left (%d before)"
       % (fds["backend"], fds0["backend"]))
    dt = await served("end")
    ok(dt is not None, "still serving after all of it")
    for n in ("agent", "guestsim", "backend"):
        ok(procs[n].alive(), "%s alive at the end" % n)


try:
    asyncio.run(main())
finally:
    for n in ("guestsim", "agent", "backend"):
        if n in procs:
            procs[n].stop()
    lsock.close()
    log.close()
    # What the daemons said (warnings and worse), for a failure's diagnosis.
    with open(os.path.join(tmp, "soak.log"), errors="replace") as f:
        lines = [line.rstrip() for line in f if "front-end" not in line]
    for line in lines[-40:]:
        diag("log: " + line)
done()
