# SPDX-License-Identifier: LGPL-2.1-or-later
"""QGA on the VM's virtio-serial port org.qemu.guest_agent.0: guestlink-agent
(--listen qga-serial:PORT) and Debian's qemu-ga serve the same port one after
the other, and every command is compared key by key, type by type and, where
the guest did not change in between, value by value. Meanwhile a host client
uses guestlink's agent over vsock through the backend."""

import base64
import json
import socket
import time

from qgalib import keyed, shape

FIND_PORT = ("for p in /sys/class/virtio-ports/*; do [ \"$(cat $p/name)\" = "
             "org.qemu.guest_agent.0 ] && echo /dev/${p##*/}; done")


class Serial:
    """The host end of the port (QEMU's chardev socket): one client at a time."""

    def __init__(self, path, timeout=60):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(path)
        self.buf = b""

    def _fill(self, timeout):
        self.s.settimeout(timeout)
        chunk = self.s.recv(1 << 20)
        if not chunk:
            raise EOFError("chardev closed")
        self.buf += chunk

    def _sync_once(self, n, wait):
        """0xFF, guest-sync-delimited n; True once {"return": n} follows a 0xFF."""
        self.s.sendall(b"\xff" + json.dumps({"execute": "guest-sync-delimited",
                                             "arguments": {"id": n}}).encode())
        end = time.monotonic() + wait
        while time.monotonic() < end:
            while b"\xff" in self.buf:
                after = self.buf.split(b"\xff", 1)[1]
                if b"\n" not in after:
                    break
                line, self.buf = after.split(b"\n", 1)
                try:
                    if json.loads(line) == {"return": n}:
                        return True
                except ValueError:
                    pass
            try:
                self._fill(0.5)
            except socket.timeout:
                pass
        return False

    def sync(self, n, timeout=90):
        """libvirt's handshake, repeated until the agent in the guest has the
        port open; then once more with a fresh id, so that answers to the
        repeats are consumed before the first command."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._sync_once(n, 3):
                return self._sync_once(n + 1, 30)
        return False

    def cmd(self, name, args=None, timeout=60):
        req = {"execute": name}
        if args is not None:
            req["arguments"] = args
        self.s.sendall(json.dumps(req).encode() + b"\n")
        while b"\n" not in self.buf:
            self._fill(timeout)
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line.lstrip(b"\xff"))

    def close(self):
        self.s.close()


def session(vm, H, server_cmd, label, during=None):
    """Start server_cmd in the guest on the port, run every command, stop it."""
    h = vm.ctl.start("timeout 300 %s & echo $! >/run/qga-under-test.pid; wait" % server_cmd,
                     timeout=310)
    answers = {}
    try:
        c = Serial(vm.qga_serial_path)
        H.ok(c.sync(1000 + len(label)), "30: %s answers guest-sync-delimited on the port" % label)
        now_ns = time.time_ns()
        for key, name, args in COMMANDS(now_ns):
            try:
                answers[key] = c.cmd(name, args)
            except (OSError, EOFError, ValueError) as e:
                answers[key] = {"exception": repr(e)}
        answers["shadow"] = vm.ctl.sh("getent shadow gltestqga | cut -d: -f2 | cut -c1-3")["out"]
        fh = answers.get("file-open", {}).get("return")
        answers["file-session"] = file_session(c, fh) if isinstance(fh, int) else None
        # exec: poll the status until the process exited.
        e = answers.get("exec", {}).get("return", {})
        st = {}
        deadline = time.monotonic() + 30
        while "pid" in e and time.monotonic() < deadline:
            st = c.cmd("guest-exec-status", {"pid": e["pid"]})
            if st.get("return", {}).get("exited"):
                break
            time.sleep(0.2)
        answers["exec-status"] = st
        if during:
            during()
        # A host that hangs up mid-command, then comes back.
        c.s.sendall(b'{"execute":"guest-get-osinfo"')
        c.close()
        time.sleep(1)
        c = Serial(vm.qga_serial_path)
        answers["after-hangup"] = c.sync(77, timeout=30)
        c.close()
    finally:
        vm.ctl.sh("kill $(cat /run/qga-under-test.pid)")
        vm.ctl.result(h)
    return answers


KEY1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx1c3Rlc3RrZXlvbmVvbmVvbmVvbmVvbmVvbmVvbmVv one"
KEY2 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx1c3Rlc3RrZXl0d290d290d290d290d290d290d290d28 two"


def file_session(c, h):
    """Write, seek, read, close on the handle guest-file-open gave."""
    seq = [("guest-file-write", {"handle": h, "buf-b64": base64.b64encode(b"0123456789").decode()}),
           ("guest-file-seek", {"handle": h, "offset": 2, "whence": "set"}),
           ("guest-file-read", {"handle": h, "count": 3}),
           ("guest-file-seek", {"handle": h, "offset": -1, "whence": "end"}),
           ("guest-file-read", {"handle": h}),
           ("guest-file-close", {"handle": h})]
    return [c.cmd(n, a) for n, a in seq]


def COMMANDS(now_ns):
    return [
        ("ping", "guest-ping", None),
        ("sync", "guest-sync", {"id": 123456789}),
        ("info", "guest-info", None),
        ("time", "guest-get-time", None),
        ("host-name", "guest-get-host-name", None),
        ("osinfo", "guest-get-osinfo", None),
        ("timezone", "guest-get-timezone", None),
        ("users", "guest-get-users", None),
        ("vcpus", "guest-get-vcpus", None),
        ("set-vcpus-off", "guest-set-vcpus", {"vcpus": [{"logical-id": 1, "online": False}]}),
        ("vcpus-after-off", "guest-get-vcpus", None),
        ("set-vcpus-on", "guest-set-vcpus", {"vcpus": [{"logical-id": 1, "online": True}]}),
        ("interfaces", "guest-network-get-interfaces", None),
        ("fsinfo", "guest-get-fsinfo", None),
        ("disks", "guest-get-disks", None),
        ("freeze-status", "guest-fsfreeze-status", None),
        ("freeze", "guest-fsfreeze-freeze", None),
        ("freeze-status-frozen", "guest-fsfreeze-status", None),
        ("thaw", "guest-fsfreeze-thaw", None),
        ("freeze-status-thawed", "guest-fsfreeze-status", None),
        ("fstrim", "guest-fstrim", None),
        ("set-time", "guest-set-time", {"time": now_ns}),
        ("set-time-rtc", "guest-set-time", None),
        ("password", "guest-set-user-password",
         {"username": "gltestqga", "password": base64.b64encode(b"Secret-1").decode(),
          "crypted": False}),
        ("ssh-add", "guest-ssh-add-authorized-keys",
         {"username": "gltestqga", "keys": [KEY1, KEY2]}),
        ("ssh-get", "guest-ssh-get-authorized-keys", {"username": "gltestqga"}),
        ("ssh-remove", "guest-ssh-remove-authorized-keys",
         {"username": "gltestqga", "keys": [KEY1]}),
        ("ssh-get-after", "guest-ssh-get-authorized-keys", {"username": "gltestqga"}),
        ("ssh-reset", "guest-ssh-add-authorized-keys",
         {"username": "gltestqga", "keys": [], "reset": True}),
        ("file-open", "guest-file-open", {"path": "/tmp/qga-file", "mode": "w+"}),
        ("exec", "guest-exec", {"path": "/bin/sh", "arg": ["-c", "echo out; echo err >&2; exit 3"],
                                "capture-output": True}),
        ("unknown", "guest-no-such-command", None),
        ("bad-arg", "guest-ping", {"x": 1}),
    ]


def s30_qga_serial(vm, H):
    port = vm.ctl.sh(FIND_PORT)["out"].strip()
    if not port:
        H.skip("30: QGA on virtio-serial", "no org.qemu.guest_agent.0 port in the guest")
        return
    agent = H.build_bin("agent", "guestlink-agent")
    vm.ctl.sh("id gltestqga || useradd -m gltestqga")
    vsock_ok = []

    def during():
        # The same guest serves JSON-RPC over vsock to the host at the same time.
        try:
            vsock_ok.append(H.call(vm, "agent.ping").get("result") == "pong")
        except (OSError, EOFError, ValueError, ConnectionError):
            vsock_ok.append(False)

    ours = session(vm, H, "%s --listen qga-serial:%s" % (agent, port), "guestlink-agent", during)
    H.ok(vsock_ok == [True], "30: a host client is served over vsock meanwhile")
    have_qga = vm.ctl.sh("command -v qemu-ga")["out"].strip()
    if not have_qga:
        H.skip("30: comparison with qemu-ga", "qemu-ga not installed (package qemu-guest-agent)")
        return
    theirs = session(vm, H, "qemu-ga -m virtio-serial -p %s -t /run" % port, "qemu-ga")

    H.ok(ours.get("after-hangup") is True, "30: guestlink-agent serves the next host after a hang-up")
    H.ok(theirs.get("after-hangup") is True, "30: (qemu-ga too)")
    keys = {"vcpus": "logical-id", "vcpus-after-off": "logical-id", "interfaces": "name",
            "fsinfo": "mountpoint", "users": "user", "disks": "name"}
    H.ok(ours.get("shadow", "").startswith("$"), "30: guestlink-agent wrote a crypt(3) hash (%r)"
         % ours.get("shadow"))
    H.is_eq(ours.get("shadow"), theirs.get("shadow"), "30: the same hash method as qemu-ga's chpasswd")
    H.is_eq(ours.get("file-session"), theirs.get("file-session"),
            "30: a guest-file-* session answers as qemu-ga's")
    same_value = {"ping", "password", "ssh-add", "ssh-get", "ssh-remove", "ssh-get-after",
                  "ssh-reset", "sync", "host-name", "osinfo", "timezone", "vcpus", "vcpus-after-off",
                  "set-vcpus-off", "set-vcpus-on", "freeze-status", "freeze",
                  "freeze-status-frozen", "thaw", "freeze-status-thawed", "set-time",
                  "set-time-rtc", "unknown", "bad-arg"}
    for key, name, _ in COMMANDS(0) + [("exec-status", "guest-exec-status", None)]:
        a, b = ours.get(key, {}), theirs.get(key, {})
        if key == "info":
            mine = {c["name"] for c in a.get("return", {}).get("supported_commands", [])}
            ref = {c["name"] for c in b.get("return", {}).get("supported_commands", [])}
            H.diag("30: qemu-ga commands guestlink does not serve: %s" % " ".join(sorted(ref - mine)))
            H.is_eq(sorted(mine - ref - {"guest-get-load"}), [],
                    "30: guest-info: every command served is one qemu-ga knows")
            continue
        if key == "unknown":
            H.is_eq(a.get("error", {}).get("class"), b.get("error", {}).get("class"),
                    "30: %s: the same error class as qemu-ga" % name)
            continue
        ra, rb = a.get("return", a), b.get("return", b)
        if key in keys:
            ra, rb = keyed(ra, keys[key]), keyed(rb, keys[key])
            if key == "fsinfo":
                for x in list(ra.values()) + list(rb.values()):
                    x.pop("used-bytes", None)
            if key == "interfaces":
                for x in list(ra.values()) + list(rb.values()):
                    x.pop("statistics", None)
        if key in ("ssh-get", "ssh-get-after"):
            # qemu-ga lists the file's keys last first; the file order is the same.
            for r in (ra, rb):
                if isinstance(r, dict) and isinstance(r.get("keys"), list):
                    r["keys"] = sorted(r["keys"])
        if key in ("exec", "file-open"):
            ra, rb = shape(ra), shape(rb)
        if key == "exec-status":
            for r in (ra, rb):
                for f in ("out-data", "err-data"):
                    if f in r:
                        r[f] = base64.b64decode(r[f]).decode(errors="replace")
        if key == "time":
            H.ok(isinstance(ra, int) and isinstance(rb, int) and abs(ra - rb) < 120 * 10 ** 9,
                 "30: %s: nanoseconds, as qemu-ga's (%d s apart)" % (name, abs(ra - rb) // 10 ** 9))
            continue
        H.is_eq(shape(ra), shape(rb), "30: %s (%s): the same keys and types as qemu-ga" % (name, key))
        if key in same_value or key == "exec-status" or key in keys:
            H.is_eq(ra, rb, "30: %s (%s): the same answer as qemu-ga" % (name, key))


def s30_qga_vsock(vm, H, port=9802):
    """--listen qga-vsock::PORT: QGA on a vsock port, reached from the host
    through the backend, next to JSON-RPC on 9731."""
    agent = H.build_bin("agent", "guestlink-agent")
    h = vm.ctl.start("timeout 120 %s --listen qga-vsock::%d & echo $! >/run/qga-vsock-gl.pid; wait"
                     % (agent, port), timeout=130)
    try:
        c = None
        deadline = time.monotonic() + 30
        while c is None and time.monotonic() < deadline:
            try:
                c = H.hybrid_connect(vm.uds, port, timeout=10)
            except (ConnectionError, OSError):
                time.sleep(0.3)
        H.ok(c is not None, "30: the host reaches guestlink-agent's qga-vsock port through the backend")
        if c is None:
            return
        c.send({"execute": "guest-ping", "id": 1})
        H.is_eq(c.recv(30), {"return": {}, "id": 1}, "30: guest-ping over qga-vsock")
        c.send_raw(b"\xff" + json.dumps({"execute": "guest-sync-delimited",
                                         "arguments": {"id": 31}}).encode())
        H.is_eq(c.recv_line(30), b'\xff{"return":31}',
                "30: guest-sync-delimited over qga-vsock: 0xFF, then the id")
        c.close()
    finally:
        vm.ctl.sh("kill $(cat /run/qga-vsock-gl.pid)")
        vm.ctl.result(h)


SCENARIOS = [s30_qga_serial, s30_qga_vsock]
