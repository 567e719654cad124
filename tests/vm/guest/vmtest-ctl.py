#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The test VM's control channel, independent of guestlink: reads JSON requests
from a virtio-serial port, runs each shell command in its own thread and
answers with its status and output. The harness uses it to look at and act
on the guest (systemctl, socat, qemu-ga) without going through the code under
test."""

import glob
import json
import os
import subprocess
import sys
import threading

PORT_NAME = sys.argv[1] if len(sys.argv) > 1 else "org.guestlink.ctl"


def find_port():
    for p in glob.glob("/sys/class/virtio-ports/*/name"):
        with open(p) as f:
            if f.read().strip() == PORT_NAME:
                return "/dev/" + p.split("/")[-2]
    raise SystemExit("no virtio-serial port named " + PORT_NAME)


dev = os.open(find_port(), os.O_RDWR | os.O_CLOEXEC)
wlock = threading.Lock()


def reply(obj):
    data = (json.dumps(obj) + "\n").encode()
    with wlock:
        while data:
            data = data[os.write(dev, data):]


def run(req):
    try:
        p = subprocess.run(["/bin/bash", "-c", req["cmd"]], input=req.get("stdin", "").encode(),
                           capture_output=True, timeout=req.get("timeout", 60))
        reply({"id": req["id"], "rc": p.returncode,
               "out": p.stdout.decode(errors="replace"), "err": p.stderr.decode(errors="replace")})
    except subprocess.TimeoutExpired as e:
        reply({"id": req["id"], "rc": -1, "out": "", "err": "timed out: %s" % e})


def main():
    with open("/proc/uptime") as f:
        reply({"id": 0, "ready": True, "uptime": float(f.read().split()[0])})
    buf = b""
    while True:
        chunk = os.read(dev, 65536)
        if not chunk:
            # No host connected to the port: wait for one instead of spinning.
            threading.Event().wait(0.1)
            continue
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            try:
                req = json.loads(line)
            except ValueError:
                continue
            threading.Thread(target=run, args=(req,), daemon=True).start()


main()
