# SPDX-License-Identifier: LGPL-2.1-or-later
"""Side by side in one VM run (loaded by tests/vm/run-vm-tests.py): vsock through
our backend against a virtio-serial port (QEMU's own chardev, what
qemu-guest-agent uses), for throughput both ways and for call rates with 1 and
50 host clients (agent.ping through our stack, guest-ping to qemu-guest-agent
over virtio-serial). Prints the ratios."""

import json
import os
import socket
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
GUEST_HELPER = os.path.join(HERE, "bench-vm-guest.py")
NBYTES = 64 << 20
G2H_RUNS = 5
RATE_SECONDS = 5
BENCH_PORT = 6000
# The guest sender's vsock buffer. Linux keeps at most min(its own buffer, the peer's
# buf_alloc) in flight, 256 KiB by default, then waits a round trip for credit; the
# back-end's side is its --buffer-size (VHOST_USER_VSOCK_OPTS for the VM run).
G2H_GUEST_BUF = 4 << 20


def _recv_all(s, n, timeout=120):
    s.settimeout(timeout)
    got, t0 = 0, None
    while got < n:
        b = s.recv(1 << 20)
        if not b:
            break
        if t0 is None:
            t0 = time.monotonic()
        got += len(b)
    return got, time.monotonic() - (t0 or time.monotonic())


def _send_all(s, n):
    buf = b"\xa5" * (256 * 1024)
    left = n
    while left:
        k = min(left, len(buf))
        s.sendall(buf[:k])
        left -= k


def _guest(vm, mode, addr, n, buf=0, timeout=180):
    return vm.ctl.start("python3 %s %s %s %d %d" % (GUEST_HELPER, mode, addr, n, buf),
                        timeout=timeout)


def _accept(ls, vm, h, timeout=60):
    """Accept the guest's connection, or fail at once with the guest's error when its
    helper ends first (a refused setsockopt, a failed connect)."""
    deadline = time.monotonic() + timeout
    ls.settimeout(0.5)
    while True:
        try:
            return ls.accept()[0]
        except socket.timeout:
            if not h[0].empty():
                _guest_result(vm, h)
                raise RuntimeError("guest helper ended without connecting")
            if time.monotonic() > deadline:
                raise


def _guest_result(vm, h):
    r = vm.ctl.result(h)
    try:
        return json.loads(r["out"])
    except ValueError:
        raise RuntimeError("guest helper failed: %s" % (r["err"] or r["out"])[-300:])


def vsock_g2h(vm, n=NBYTES):
    lpath = "%s_%d" % (vm.uds, BENCH_PORT)
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(lpath)
    ls.listen(1)
    try:
        h = _guest(vm, "send", "vsock-connect:2:%d" % BENCH_PORT, n, buf=G2H_GUEST_BUF)
        c = _accept(ls, vm, h)
        got, secs = _recv_all(c, n)
        c.close()
        r = _guest_result(vm, h)
        if r.get("buffer") != G2H_GUEST_BUF:
            raise RuntimeError("guest vsock buffer is %s, not %d"
                               % (r.get("buffer"), G2H_GUEST_BUF))
    finally:
        ls.close()
        os.unlink(lpath)
    return got, secs


def vsock_h2g(vm, hybrid_connect, n=NBYTES):
    h = _guest(vm, "recv", "vsock-listen:%d" % (BENCH_PORT + 1), n)
    deadline = time.monotonic() + 30
    while True:
        try:
            c = hybrid_connect(vm.uds, BENCH_PORT + 1, timeout=10)
            break
        except (ConnectionError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    _send_all(c.s, n)
    r = _guest_result(vm, h)
    c.close()
    return r["bytes"], r["seconds"]


def serial_g2h(vm, n=NBYTES):
    s = vm.bench_port()
    h = _guest(vm, "send", "vport:org.guestlink.bench", n)
    got, secs = _recv_all(s, n)
    _guest_result(vm, h)
    return got, secs


def serial_h2g(vm, n=NBYTES):
    s = vm.bench_port()
    h = _guest(vm, "recv", "vport:org.guestlink.bench", n)
    time.sleep(1)  # the guest must have the port open before data arrives
    _send_all(s, n)
    r = _guest_result(vm, h)
    return r["bytes"], r["seconds"]


def _rate(nclients, make_client, call, seconds=RATE_SECONDS):
    """Calls answered per second by `nclients` threads looping for `seconds`."""
    counts = [0] * nclients
    errors = []
    start = threading.Barrier(nclients + 1, timeout=120)
    stop_at = [0.0]

    def worker(i):
        try:
            c = make_client()
        except Exception as e:  # noqa: BLE001
            errors.append(str(e))
            c = None
        try:
            start.wait()
        except threading.BrokenBarrierError:
            return
        while c is not None and time.monotonic() < stop_at[0]:
            try:
                c = call(c)
                counts[i] += 1
            except Exception as e:  # noqa: BLE001
                errors.append("%s: %s" % (type(e).__name__, e))
                break

    ts = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(nclients)]
    for t in ts:
        t.start()
    stop_at[0] = time.monotonic() + 60
    start.wait()
    t0 = time.monotonic()
    stop_at[0] = t0 + seconds
    for t in ts:
        t.join(seconds + 60)
    return sum(counts) / (time.monotonic() - t0), errors


def agent_rate(vm, hybrid_connect, nclients):
    def make():
        return hybrid_connect(vm.uds, 9731, timeout=60)

    def call(c):
        r = c.call("agent.ping", id=1, timeout=30)
        if "result" not in r:
            raise RuntimeError(repr(r))
        return c

    return _rate(nclients, make, call)


def qga_rate(vm, nclients):
    """qemu-guest-agent over virtio-serial: one chardev, so one host client at a
    time; the others queue on the chardev's listening socket. Each client
    connects, pings and disconnects, as independent management tools would."""
    path = vm.qga_serial_path

    def one_ping(sock):
        sock.sendall(b'{"execute":"guest-ping"}\n')
        buf = b""
        while b"\n" not in buf:
            b = sock.recv(4096)
            if not b:
                raise EOFError("qemu-ga chardev closed")
            buf += b
        if b'"return"' not in buf:
            raise RuntimeError(buf[:200])

    if nclients == 1:
        def make():
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(30)
            s.connect(path)
            return s

        def call(s):
            one_ping(s)
            return s
        return _rate(1, make, call)

    def make():
        return True

    def call(_):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(30)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    s.connect(path)
                    break
                except BlockingIOError:
                    # The chardev takes one client; the backlog is full: wait our turn.
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.001)
            one_ping(s)
        finally:
            s.close()
        return True
    return _rate(nclients, make, call)


def cp_each_way(vm, res, ok, diag, mib=64):
    """`guestlink cp` of a 64 MiB file each way (the agent's file channel), beside the
    raw virtio-serial throughput of the same run."""
    import hashlib
    import sys
    guestlink = getattr(sys.modules.get("__main__"), "guestlink", None)
    if guestlink is None:
        diag("bench: guestlink cp: not run (no harness guestlink())")
        return
    src, back = os.path.join(vm.work, "bench-cp-in"), os.path.join(vm.work, "bench-cp-back")
    data = os.urandom(mib << 20)
    with open(src, "wb") as f:
        f.write(data)
    want = hashlib.sha256(data).hexdigest()
    try:
        for d, args, check in (
                ("h2g", (src, "guest:/var/tmp/bench-cp"), None),
                ("g2h", ("guest:/var/tmp/bench-cp", back), back)):
            t = time.monotonic()
            r = guestlink(vm, "cp", "--quiet", *args, timeout=300)
            dt = time.monotonic() - t
            good = r.returncode == 0 and (check is None or hashlib.sha256(
                open(check, "rb").read()).hexdigest() == want)
            ok(good, "bench: guestlink cp %s %d MiB in %.2f s = %.1f MiB/s"
               % (d, mib, dt, mib / dt))
            if good and res.get("serial " + d):
                diag("bench ratio cp %s: guestlink cp/virtio-serial raw throughput = %.2fx "
                     "(aim >= 1x)" % (d, mib / dt / res["serial " + d]))
    finally:
        vm.ctl.sh("rm -f /var/tmp/bench-cp")
        for f in (src, back):
            if os.path.exists(f):
                os.unlink(f)


def run(vm, hybrid_connect, ok, diag):
    """All measurements; prints figures and ratios as TAP diagnostics."""
    mib = 1 << 20
    res = {}
    # One guest->host run lasts a tenth of a second under TCG, as noisy as the host's
    # load: take the median of G2H_RUNS, vsock and virtio-serial taking turns.
    runs = [("vsock g2h", lambda: vsock_g2h(vm)), ("serial g2h", lambda: serial_g2h(vm))]
    runs = runs * G2H_RUNS + [("vsock h2g", lambda: vsock_h2g(vm, hybrid_connect)),
                              ("serial h2g", lambda: serial_h2g(vm))]
    rates = {}
    for name, fn in runs:
        try:
            got, secs = fn()
            rate = got / mib / secs if got == NBYTES and secs > 0 else 0
            rates.setdefault(name, []).append(rate)
            diag("bench: %s moved %d MiB in %.2f s = %.1f MiB/s"
                 % (name, got // mib, secs, rate))
        except Exception as e:  # noqa: BLE001
            diag("bench: %s: %s: %s" % (name, type(e).__name__, e))
            rates.setdefault(name, []).append(0)
    for name in ("vsock g2h", "vsock h2g", "serial g2h", "serial h2g"):
        r = sorted(rates[name])
        res[name] = r[len(r) // 2]
        ok(all(r), "bench: %s %.1f MiB/s (median of %d: %s)"
           % (name, res[name], len(r), " ".join("%.0f" % x for x in r)))
    for d in ("g2h", "h2g"):
        if res["serial " + d]:
            diag("bench ratio %s: vsock/virtio-serial throughput = %.2fx (aim >= 2x)"
                 % (d, res["vsock " + d] / res["serial " + d]))
    cp_each_way(vm, res, ok, diag)
    # `timeout` passes our kill on to qemu-ga; its PID is what we stop.
    h = vm.ctl.start("timeout 300 qemu-ga -m virtio-serial -p $(for p in "
                     "/sys/class/virtio-ports/*; do [ \"$(cat $p/name)\" = "
                     "org.qemu.guest_agent.0 ] && echo /dev/${p##*/}; done) & "
                     "echo $! >/run/qga-serial.pid; wait", timeout=310)
    time.sleep(1)
    for n in (1, 50):
        try:
            ours, e1 = agent_rate(vm, hybrid_connect, n)
            theirs, e2 = qga_rate(vm, n)
            ok(ours > 0 and not e1, "bench: agent.ping through our stack, %d client(s): %.0f/s"
               % (n, ours))
            ok(theirs > 0, "bench: guest-ping to qemu-ga over virtio-serial, %d client(s): %.0f/s"
               % (n, theirs))
            for e in (e1 + e2)[:5]:
                diag(e)
            if theirs:
                diag("bench ratio calls/s with %d client(s): guestlink/qemu-ga = %.1fx%s"
                     % (n, ours / theirs, " (aim >= 10x)" if n > 1 else ""))
        except Exception as e:  # noqa: BLE001
            ok(False, "bench: call rate with %d clients: %s: %s" % (n, type(e).__name__, e))
    vm.ctl.sh("kill $(cat /run/qga-serial.pid)")
    vm.ctl.result(h)
