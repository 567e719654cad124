# The adaptive window (per-VM memory budget) against a real Linux 6.1 guest: a
# SHA-256-checked stream each way through the backend, the guest's kernel driving
# credit, and no credit violation in the backend's log.
import hashlib
import os
import socket
import threading

MIB = 16

GUEST_SEND = r"""
import hashlib, random, socket
s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
s.settimeout(120)
s.connect((2, %(port)d))
rnd, h = random.Random(%(seed)d), hashlib.sha256()
for _ in range(%(mib)d * 16):
    b = rnd.randbytes(65536)
    h.update(b)
    s.sendall(b)
s.shutdown(socket.SHUT_WR)
s.recv(1)
print(h.hexdigest())
"""

GUEST_RECV = r"""
import hashlib, socket
l = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
l.bind((socket.VMADDR_CID_ANY, %(port)d))
l.listen(1)
l.settimeout(120)
c, _ = l.accept()
c.settimeout(120)
h, n = hashlib.sha256(), 0
while True:
    b = c.recv(262144)
    if not b:
        break
    h.update(b)
    n += len(b)
print(n, h.hexdigest())
"""


def stream(seed, mib):
    import random
    rnd = random.Random(seed)
    for _ in range(mib * 16):
        yield rnd.randbytes(65536)


def backend_log(vm):
    try:
        with open(os.path.join(vm.artifacts, "backend.log"), errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def s20_adaptive_window(vm, H, port=5200):
    log0 = len(backend_log(vm))
    # Guest -> host: the guest kernel sends as fast as the window lets it.
    lpath = "%s_%d" % (vm.uds, port)
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(lpath)
    ls.listen(1)
    ls.settimeout(60)
    try:
        h = vm.ctl.start("timeout 150 python3 -", timeout=160,
                         stdin=GUEST_SEND % {"port": port, "seed": 1, "mib": MIB})
        try:
            conn, _ = ls.accept()
        except socket.timeout:
            r = vm.ctl.result(h)
            H.ok(False, "20: guest connect reaches the host listener (%s)" % r["err"][-200:])
            return
        conn.settimeout(120)
        d, n = hashlib.sha256(), 0
        while True:
            b = conn.recv(1 << 20)
            if not b:
                break
            d.update(b)
            n += len(b)
        conn.close()
        r = vm.ctl.result(h)
        H.ok(n == MIB << 20 and r["out"].strip() == d.hexdigest(),
             "20: guest->host %d MiB, SHA-256 equal on both sides (%d bytes)" % (MIB, n))
    finally:
        ls.close()
        os.unlink(lpath)

    # Host -> guest: the host writes as fast as the guest's credit lets it.
    h = vm.ctl.start("timeout 150 python3 -", timeout=160,
                     stdin=GUEST_RECV % {"port": port + 1})
    c = None
    for _ in range(60):
        try:
            c = H.hybrid_connect(vm.uds, port + 1, timeout=10)
            break
        except (ConnectionError, OSError):
            import time
            time.sleep(0.3)
    H.ok(c is not None, "20: host connects to the guest listener")
    if c is None:
        vm.ctl.result(h)
        return
    d = hashlib.sha256()
    for b in stream(2, MIB):
        d.update(b)
        c.s.sendall(b)
    c.s.shutdown(socket.SHUT_WR)
    r = vm.ctl.result(h)
    c.close()
    H.is_eq(r["out"].strip(), "%d %s" % (MIB << 20, d.hexdigest()),
            "20: host->guest %d MiB, SHA-256 equal on both sides" % MIB)
    log = backend_log(vm)[log0:]
    H.ok("exceeded its credit" not in log and "resetting" not in log,
         "20: no credit violation or reset in the backend's log")


SCENARIOS = [s20_adaptive_window]
