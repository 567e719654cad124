#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Guest side of tests/bench/bench-vm.py: send or receive N bytes over vsock or a
virtio-serial port. The receiver prints {"bytes", "seconds"} timed from the
first byte to the last.

  bench-vm-guest.py send|recv vsock-connect:CID:PORT|vsock-listen:PORT|vport:NAME N
"""

import glob
import json
import os
import socket
import sys
import time

CHUNK = 4 << 20


def open_end(addr):
    kind, _, rest = addr.partition(":")
    if kind == "vsock-connect":
        cid, port = rest.split(":")
        s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
        s.connect((int(cid), int(port)))
        return s.fileno(), s
    if kind == "vsock-listen":
        ls = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
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
    fd, keep = open_end(addr)
    if mode == "send":
        buf = memoryview(b"\x5a" * CHUNK)
        left = n
        while left:
            left -= os.write(fd, buf[:min(left, CHUNK)])
        if keep is not None:
            keep.shutdown(socket.SHUT_WR)
            keep.settimeout(30)
            while keep.recv(65536):
                pass
        print(json.dumps({"bytes": n}))
        return
    got, t0 = 0, None
    while got < n:
        b = os.read(fd, 1 << 20)
        if not b:
            break
        if t0 is None:
            t0 = time.monotonic()
        got += len(b)
    print(json.dumps({"bytes": got, "seconds": time.monotonic() - (t0 or time.monotonic())}))


main()
