#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Guest side of tests/bench/bench-vm.py: send or receive N bytes over vsock or a
virtio-serial port. The receiver prints {"bytes", "seconds"} timed from the
first byte to the last. Both print "cpu": the guest's CPU seconds over the
transfer, from /proc/stat (all vCPUs: "user", "sys", "irq" with softirq, so the
kernel's vsock and virtio workers count too), and the helper's own ("self_user",
"self_sys", from getrusage).

  bench-vm-guest.py send|recv vsock-connect:CID:PORT|vsock-listen:PORT|vport:NAME N [BUF]

BUF, for vsock, is the socket's buffer (SO_VM_SOCKETS_BUFFER_SIZE): the buf_alloc
it advertises and, in Linux, also a cap on what it keeps in flight when sending.
"""

import glob
import json
import os
import resource
import socket
import sys
import time

CHUNK = 4 << 20
# AF_VSOCK options are 64-bit; CPython passes an int as such on an AF_VSOCK socket.
VSOCK_BUF_MAX = getattr(socket, "SO_VM_SOCKETS_BUFFER_MAX_SIZE", 2)
VSOCK_BUF = getattr(socket, "SO_VM_SOCKETS_BUFFER_SIZE", 0)


def vsock_socket(buf):
    s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    if buf:
        # The size is clamped to the maximum (256 KiB by default): raise that first.
        s.setsockopt(socket.AF_VSOCK, VSOCK_BUF_MAX, buf)
        s.setsockopt(socket.AF_VSOCK, VSOCK_BUF, buf)
    return s


def vsock_buffer(s):
    return s.getsockopt(socket.AF_VSOCK, VSOCK_BUF)


def cpu_now():
    """CPU seconds of the whole guest and of this process, to subtract."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:8]]
    hz = os.sysconf("SC_CLK_TCK")
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {"user": (v[0] + v[1]) / hz, "sys": v[2] / hz, "irq": (v[5] + v[6]) / hz,
            "self_user": ru.ru_utime, "self_sys": ru.ru_stime}


def cpu_since(t0):
    t1 = cpu_now()
    return {k: round(t1[k] - t0[k], 3) for k in t0}


def open_end(addr, buf=0):
    kind, _, rest = addr.partition(":")
    if kind == "vsock-connect":
        cid, port = rest.split(":")
        s = vsock_socket(buf)
        s.connect((int(cid), int(port)))
        return s.fileno(), s
    if kind == "vsock-listen":
        ls = vsock_socket(buf)
        ls.bind((socket.VMADDR_CID_ANY, int(rest)))
        ls.listen(1)
        s, _ = ls.accept()
        ls.close()
        return s.fileno(), s
    if kind == "vport":
        for p in glob.glob("/sys/class/virtio-ports/*/name"):
            with open(p) as f:
                if f.read().strip() == rest:
                    fd = os.open("/dev/" + p.split("/")[-2], os.O_RDWR)
                    return fd, None
        raise SystemExit("no virtio-serial port " + rest)
    raise SystemExit("bad address " + addr)


def main():
    mode, addr, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    buf = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    fd, keep = open_end(addr, buf)
    extra = {"buffer": vsock_buffer(keep)} if keep is not None else {}
    if mode == "send":
        data = memoryview(b"\x5a" * CHUNK)
        cpu0 = cpu_now()
        left = n
        while left:
            left -= os.write(fd, data[:min(left, CHUNK)])
        if keep is not None:
            keep.shutdown(socket.SHUT_WR)
            keep.settimeout(30)
            while keep.recv(65536):
                pass
        print(json.dumps(dict(extra, bytes=n, cpu=cpu_since(cpu0))))
        return
    got, t0, cpu0 = 0, None, None
    while got < n:
        b = os.read(fd, 1 << 20)
        if not b:
            break
        if t0 is None:
            t0, cpu0 = time.monotonic(), cpu_now()
        got += len(b)
    print(json.dumps(dict(extra, bytes=got, cpu=cpu_since(cpu0) if cpu0 else {},
                          seconds=time.monotonic() - (t0 or time.monotonic()))))


main()
