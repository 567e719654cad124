# SPDX-License-Identifier: LGPL-2.1-or-later
"""The agent's download channel over real virtio-vsock: it sends from a
mapping of the file, so a file cut while the host holds back its reads makes
the guest kernel's copy fault past the end (virtio-vsock's packet allocation
fails: a short write, then ENOMEM, never SIGBUS in the agent). The host sees a
short count and the agent serves on as the same process."""

import os
import socket
import time

PATH = "/var/tmp/gl-channel-cut"
SIZE = 16 << 20
CUT = (3 << 20) + 123


def _agent_pid(vm):
    out = vm.ctl.sh("systemctl show -p MainPID --value guestlink-agent.service")["out"].strip()
    return out if out.isdigit() and out != "0" else ""


def s50_channel_cut(vm, H):
    r = vm.ctl.sh("head -c %d /dev/urandom > %s && sha256sum %s" % (SIZE, PATH, PATH))
    H.ok(r.get("rc", 1) == 0, "50: a %d MiB file in the guest" % (SIZE >> 20))
    try:
        H.call(vm, "agent.ping")  # socket-activated: have it running
        pid = _agent_pid(vm)
        c = H.hybrid_connect(vm.uds, H.AGENT_PORT, timeout=60)
        ch = c.call("file.channel", {"path": PATH, "direction": "download"}, id=1,
                    timeout=60).get("result", {})
        c.close()
        H.is_eq(ch.get("size"), SIZE, "50: file.channel announces the file's size")
        d = H.hybrid_connect(vm.uds, H.AGENT_PORT, timeout=60)
        d.send({"jsonrpc": "2.0", "id": 1, "method": "file.attach",
                "params": {"token": ch.get("token", "")}})
        H.is_eq(d.recv(60).get("result"), {"size": SIZE}, "50: the download is attached")
        got = len(d.buf)
        d.s.settimeout(60)
        while got < 256 * 1024:
            b = d.s.recv(256 * 1024 - got)
            if not b:
                break
            got += len(b)
        maps = vm.ctl.sh("grep -c %s /proc/%s/maps" % (PATH, pid or "self"))["out"].strip()
        H.ok(pid and maps not in ("", "0"),
             "50: the agent sends from a mapping of the file (%s mapping(s))" % maps)
        vm.ctl.sh("truncate -s %d %s" % (CUT, PATH))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                b = d.s.recv(1 << 20)
            except (socket.timeout, ConnectionResetError):
                break
            if not b:
                break
            got += len(b)
        d.close()
        H.ok(256 * 1024 <= got <= (CUT + 4095) // 4096 * 4096,
             "50: cut to %d bytes mid-download: the host sees a short count (%d of %d)"
             % (CUT, got, SIZE))
        H.is_eq(H.call(vm, "agent.ping").get("result"), "pong", "50: the agent answers on")
        H.is_eq(_agent_pid(vm), pid, "50: ... as the same process (no SIGBUS, no restart)")
    finally:
        vm.ctl.sh("rm -f %s" % PATH)


SCENARIOS = [s50_channel_cut]
