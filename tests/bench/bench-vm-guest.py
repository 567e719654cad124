#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Guest side of tests/bench/bench-vm.py: send or receive N bytes over vsock or a
virtio-serial port. The receiver prints {"bytes", "seconds"} timed from the
first byte to the last. Both print "cpu": the guest's CPU seconds over the
transfer, from /proc/stat (all vCPUs: "user", "sys", "irq" with softirq, so the
kernel's vsock and virtio workers count too), and the helper's own ("self_user",
"self_sys", from getrusage).

  bench-vm-guest.py send|recv vsock-connect:CID:PORT|vsock-listen:PORT|vport:NAME N [BUF [SRC]]

BUF, for vsock, is the socket's buffer (SO_VM_SOCKETS_BUFFER_SIZE): the buf_alloc
it advertises and, in Linux, also a cap on what it keeps in flight when sending.
SRC is what a sender sends: "zeros" (the default: one buffer of CHUNK bytes
written again and again), "sendfile:PATH" (os.sendfile() of the file) or
"copy:SIZE:PATH" (the file read into a SIZE-byte buffer, then written), or
"copy-nb:SIZE:PATH" (the same on a non-blocking socket, as the agent writes).
"""

import glob
import json
import os
import resource
import select
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
    src = sys.argv[5] if len(sys.argv) > 5 else "zeros"
    if mode == "send":
        kind, _, arg = src.partition(":")
        data = memoryview(b"\x5a" * CHUNK) if kind == "zeros" else None
        if kind in ("copy", "copy-nb"):
            size, _, path = arg.partition(":")
            data = memoryview(bytearray(int(size)))
            arg = path
        if kind == "copy-nb":
            # As an event loop writes: non-blocking, waiting for POLLOUT on EAGAIN.
            os.set_blocking(fd, False)
            poller = select.poll()
            poller.register(fd, select.POLLOUT)
        ffd = os.open(arg, os.O_RDONLY) if kind != "zeros" else -1
        cpu0 = cpu_now()
        left = n
        while left:
            if kind == "sendfile":
                k = os.sendfile(fd, ffd, n - left, min(left, CHUNK))
            elif kind in ("copy", "copy-nb"):
                k = os.preadv(ffd, [data[:min(left, len(data))]], n - left)
                off = 0
                while off < k:
                    try:
                        off += os.write(fd, data[off:k])
                    except BlockingIOError:
                        poller.poll()
            else:
                k = os.write(fd, data[:min(left, CHUNK)])
            if k <= 0:
                raise SystemExit("%s: short file" % src)
            left -= k
        if keep is not None:
            os.set_blocking(fd, True)
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
