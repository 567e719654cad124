#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""guestlink-agent speaking the qemu-guest-agent protocol (--listen
qga-unix:PATH): the envelope and its errors, guest-sync and
guest-sync-delimited after garbage, a 100 MB line, a host that hangs up
mid-command, answers in order, policy by JSON-RPC method name, and every
read-only command compared key by key and type by type with Debian's
qemu-ga answering the same command on this machine."""

import base64
import json
import os
import shutil
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gltest import Proc, diag, done, is_eq, ok, tmpdir, unix_connect, wait_for_listener  # noqa: E402
from agentlib import Agent, rss_kib  # noqa: E402
from qgalib import keyed, shape  # noqa: E402


class Qga:
    """A QGA client: one JSON object per line in, answers read line by line."""

    def __init__(self, path, timeout=15):
        self.sock = unix_connect(path, timeout)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else json.dumps(data).encode())

    def line(self, timeout=15):
        self.sock.settimeout(timeout)
        while b"\n" not in self.buf:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError("QGA peer closed")
            self.buf += chunk
        ln, self.buf = self.buf.split(b"\n", 1)
        return ln

    def recv(self, timeout=15):
        return json.loads(self.line(timeout))

    def cmd(self, name, args=None, timeout=15, **extra):
        req = {"execute": name}
        if args is not None:
            req["arguments"] = args
        req.update(extra)
        self.send(req)
        return self.recv(timeout)

    def delimited_sync(self, n, timeout=15):
        """What libvirt does: 0xFF, guest-sync-delimited, skip to the 0xFF answer."""
        self.send(b"\xff" + json.dumps({"execute": "guest-sync-delimited",
                                         "arguments": {"id": n}}).encode())
        deadline = time.monotonic() + timeout
        while b"\xff" not in self.buf and time.monotonic() < deadline:
            self.sock.settimeout(max(0.1, deadline - time.monotonic()))
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError("QGA peer closed")
            self.buf += chunk
        skipped = self.buf.split(b"\xff", 1)[0]
        self.buf = self.buf.split(b"\xff", 1)[1]
        return self.recv(timeout), skipped

    def close(self):
        self.sock.close()


tmp = tmpdir()
qsock = os.path.join(tmp, "qga.sock")
# Keep ASan's quarantine small so that RSS figures mean something under sanitizers.
asan = os.environ.get("ASAN_OPTIONS", "")
asan_env = {"ASAN_OPTIONS": (asan + ":" if asan else "") + "quarantine_size_mb=8"}
agent = Agent(tmp, config={"deny": ["system.set-hostname", "system.hostname"]},
              extra=["--listen", "qga-unix:" + qsock], env=asan_env)
ok(wait_for_listener(qsock, 15, agent.proc), "the agent listens for QGA on a Unix socket")
q = Qga(qsock)

# --- envelope ---
is_eq(q.cmd("guest-ping"), {"return": {}}, "guest-ping -> {return: {}}")
is_eq(q.cmd("guest-ping", id="abc"), {"return": {}, "id": "abc"}, "a string id is echoed")
is_eq(q.cmd("guest-ping", id={"a": [1]}), {"return": {}, "id": {"a": [1]}},
      "any JSON id is echoed as it was")
a = q.cmd("guest-nope")
is_eq(a.get("error", {}).get("class"), "CommandNotFound", "unknown command -> CommandNotFound")
is_eq(a["error"].get("desc"), "The command guest-nope has not been found", "... with QGA's text")
q.send(b"garbage\n")
is_eq(q.recv().get("error", {}).get("class"), "GenericError", "garbage -> GenericError")
q.send(b"[1,2]")
is_eq(q.recv(), {"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}},
      "an array -> 'QMP input must be a JSON object'")
is_eq(q.cmd("guest-ping", extra=1)["error"]["desc"], "QMP input member 'extra' is unexpected",
      "an unknown envelope member is refused")
is_eq(q.cmd("guest-ping", {"x": 1})["error"]["desc"], "Parameter 'x' is unexpected",
      "an unknown argument is refused as QGA does")
is_eq(q.cmd("guest-sync")["error"]["desc"], "Parameter 'id' is missing",
      "a missing argument is refused as QGA does")
is_eq(q.cmd("guest-sync", {"id": "x"}).get("error", {}).get("class"), "GenericError",
      "an argument of the wrong type is refused")
big = 2 ** 62 + 12345
is_eq(q.cmd("guest-sync", {"id": big}), {"return": big}, "guest-sync echoes a 63-bit id exactly")

# --- sync-delimited after garbage and a partial command ---
q.send(b'{"execute":"guest-ping"')  # never finished
ans, skipped = q.delimited_sync(4242)
is_eq(ans, {"return": 4242}, "guest-sync-delimited after a partial command answers after 0xFF")
is_eq(q.cmd("guest-ping"), {"return": {}}, "the partial command was discarded, the stream goes on")
q.send(b"\x00\x01garbage{{{{")
ans, skipped = q.delimited_sync(7)
is_eq(ans, {"return": 7}, "guest-sync-delimited after binary garbage")

# --- in order, one at a time ---
pipelined = b"".join(json.dumps({"execute": "guest-sync", "arguments": {"id": i}}).encode()
                     if i % 2 else json.dumps({"execute": "guest-ping", "id": i}).encode()
                     for i in range(200))
q.send(pipelined)
got = [q.recv() for _ in range(200)]
want = [{"return": i} if i % 2 else {"return": {}, "id": i} for i in range(200)]
is_eq(got, want, "200 pipelined commands are answered in order")

# --- policy by JSON-RPC method name ---
a = q.cmd("guest-get-host-name")
is_eq(a.get("error", {}).get("class"), "CommandNotFound",
      "a command whose method is denied answers CommandNotFound (as qemu-ga's blocked commands)")
is_eq(a["error"].get("desc"), "Command guest-get-host-name has been disabled", "... 'has been disabled'")
info = q.cmd("guest-info")["return"]
cmds = {c["name"]: c for c in info["supported_commands"]}
is_eq(cmds.get("guest-get-host-name", {}).get("enabled"), False,
      "guest-info shows the denied command disabled")
is_eq(cmds.get("guest-ping", {}).get("enabled"), True, "guest-info shows guest-ping enabled")
is_eq(cmds.get("guest-shutdown", {}).get("success-response"), False,
      "guest-shutdown has no success response")

# --- commands against what this machine says ---
now = time.time_ns()
t = q.cmd("guest-get-time")["return"]
ok(isinstance(t, int) and abs(t - now) < 5 * 10 ** 9, "guest-get-time is nanoseconds, now (%d)" % t)
osr = {}
for path in ("/etc/os-release", "/usr/lib/os-release"):
    if os.path.exists(path):
        for ln in open(path):
            if "=" in ln:
                k, v = ln.rstrip("\n").split("=", 1)
                osr[k] = v.strip('"')
        break
osi = q.cmd("guest-get-osinfo")["return"]
is_eq((osi.get("id"), osi.get("kernel-release"), osi.get("machine")),
      (osr.get("ID"), os.uname().release, os.uname().machine), "guest-get-osinfo: id, kernel, machine")
vc = q.cmd("guest-get-vcpus")["return"]
ncpu = len([d for d in os.listdir("/sys/devices/system/cpu") if d[3:].isdigit() and d.startswith("cpu")])
is_eq(sorted(v["logical-id"] for v in vc), list(range(ncpu)), "guest-get-vcpus lists every CPU")
ifs = q.cmd("guest-network-get-interfaces")["return"]
lo = [i for i in ifs if i["name"] == "lo"]
ok(lo and {"ip-address-type": "ipv4", "ip-address": "127.0.0.1", "prefix": 8} in lo[0]["ip-addresses"],
   "network-get-interfaces: lo has 127.0.0.1/8")
is_eq(q.cmd("guest-fsfreeze-status"), {"return": "thawed"}, "guest-fsfreeze-status: thawed")
ld = q.cmd("guest-get-load")["return"]
ok(sorted(ld) == ["load1", "load15", "load5"] and all(isinstance(v, float) for v in ld.values()),
   "guest-get-load: three numbers")
e = q.cmd("guest-exec", {"path": "/bin/sh", "arg": ["-c", "echo hi; echo err >&2; exit 3"],
                         "capture-output": True})["return"]
ok(isinstance(e.get("pid"), int) and e["pid"] > 0, "guest-exec answers a pid")
st = {"exited": False}
deadline = time.monotonic() + 15
while not st.get("exited") and time.monotonic() < deadline:
    st = q.cmd("guest-exec-status", {"pid": e["pid"]})["return"]
    time.sleep(0.05)
is_eq((st.get("exited"), st.get("exitcode"), base64.b64decode(st.get("out-data", "")),
       base64.b64decode(st.get("err-data", ""))), (True, 3, b"hi\n", b"err\n"),
      "guest-exec-status: exit code and captured output")
for args, want in (({"path": "/bin/true", "arg": ["a", 1]}, "'arg[1]'"),
                   ({"path": "/bin/true", "arg": [None]}, "'arg[0]'"),
                   ({"path": "/bin/true", "env": ["A=1", {}]}, "'env[1]'")):
    is_eq(q.cmd("guest-exec", args).get("error"),
          {"class": "GenericError", "desc": "Invalid parameter type for %s, expected: string" % want},
          "guest-exec: a wrong element type is named %s, as QGA names it" % want)
is_eq(q.cmd("guest-exec-status", {"pid": 999999999}).get("error", {}).get("class"),
      "GenericError", "guest-exec-status of an unknown pid -> GenericError")

# --- files: handles over file.*; accounts: checks before anything is written ---
fpath = os.path.join(tmp, "qga-file")
h = q.cmd("guest-file-open", {"path": fpath, "mode": "w+"})["return"]
ok(isinstance(h, int), "guest-file-open w+ answers a handle")
is_eq(q.cmd("guest-file-write", {"handle": h, "buf-b64": base64.b64encode(b"hello world").decode()}),
      {"return": {"count": 11, "eof": False}}, "guest-file-write: 11 bytes")
is_eq(q.cmd("guest-file-write", {"handle": h, "buf-b64": base64.b64encode(b"!?").decode(), "count": 1}),
      {"return": {"count": 1, "eof": False}}, "guest-file-write with count 1 of 2 bytes")
is_eq(open(fpath, "rb").read(), b"hello world!", "the file holds what was written")
is_eq(q.cmd("guest-file-seek", {"handle": h, "offset": 6, "whence": "set"}),
      {"return": {"position": 6, "eof": False}}, "guest-file-seek set 6")
is_eq(q.cmd("guest-file-read", {"handle": h, "count": 100}),
      {"return": {"count": 6, "buf-b64": base64.b64encode(b"world!").decode(), "eof": True}},
      "guest-file-read from 6: 'world!' and eof")
is_eq(q.cmd("guest-file-seek", {"handle": h, "offset": -3, "whence": 2}),
      {"return": {"position": 9, "eof": False}}, "guest-file-seek end-3 (whence as a number)")
for w, off in (("set", 2 ** 63 - 1), ("set", 2 ** 62), ("cur", 2 ** 63 - 1), ("end", -100)):
    is_eq(q.cmd("guest-file-seek", {"handle": h, "offset": off, "whence": w}),
          {"error": {"class": "GenericError", "desc": "failed to seek file: Invalid argument"}},
          "guest-file-seek %s %d is refused" % (w, off))
is_eq(q.cmd("guest-file-read", {"handle": h, "count": 2}),
      {"return": {"count": 2, "buf-b64": base64.b64encode(b"ld").decode(), "eof": False}},
      "... and the position is unchanged (9)")
is_eq(q.cmd("guest-file-seek", {"handle": h, "offset": -2, "whence": "cur"}),
      {"return": {"position": 9, "eof": False}}, "guest-file-seek cur -2")
is_eq(q.cmd("guest-file-flush", {"handle": h}), {"return": {}}, "guest-file-flush")
is_eq(q.cmd("guest-file-close", {"handle": h}), {"return": {}}, "guest-file-close")
is_eq(q.cmd("guest-file-read", {"handle": h})["error"]["desc"],
      "handle '%d' has not been found" % h, "a closed handle is gone")
r = q.cmd("guest-file-open", {"path": os.path.join(tmp, "missing")})
is_eq(r.get("error", {}).get("class"), "GenericError", "guest-file-open r of a missing file fails")
ro = q.cmd("guest-file-open", {"path": fpath})["return"]
is_eq(q.cmd("guest-file-write", {"handle": ro, "buf-b64": "AAAA"}).get("error", {}).get("desc"),
      "file not open for writing", "a file opened r refuses writes")
q.cmd("guest-file-close", {"handle": ro})
r = q.cmd("guest-set-user-password", {"username": "root", "password": "!!!", "crypted": False})
is_eq(r.get("error", {}).get("class"), "GenericError", "guest-set-user-password: bad base64 refused")
r = q.cmd("guest-ssh-add-authorized-keys", {"username": "root", "keys": ["a\nb"]})
is_eq(r.get("error", {}).get("class"), "GenericError",
      "guest-ssh-add-authorized-keys: a key with a newline is refused before anything is written")
# virsh set-user-sshkeys --file sends "" after the file's last newline: accepted
# (nobody's home does not exist, so the add fails later, at the .ssh directory).
r = q.cmd("guest-ssh-add-authorized-keys", {"username": "nobody", "keys": ["ssh-ed25519 AAAA x", ""]})
ok("Invalid parameter" not in r.get("error", {}).get("desc", "Invalid parameter"),
   "guest-ssh-add-authorized-keys: an empty element is not refused (%s)" % r)
is_eq(q.cmd("guest-ssh-remove-authorized-keys", {"username": "nobody", "keys": [""]}),
      {"return": {}}, "guest-ssh-remove-authorized-keys: an empty element is ignored")
r = q.cmd("guest-ssh-get-authorized-keys", {"username": "no-such-user-gltest"})
is_eq(r.get("error", {}).get("class"), "GenericError", "guest-ssh-get-authorized-keys: unknown user")
disc = agent.client().call("rpc.discover")["result"]
names = {m["name"] for m in disc.get("methods", [])}
new = {"system.osinfo", "system.timezone", "system.load", "system.vcpus", "system.set-vcpus",
       "user.set-password", "user.ssh-keys", "user.ssh-add-keys", "user.ssh-remove-keys"}
is_eq(sorted(new - names), [], "the capabilities added for QGA are JSON-RPC methods in rpc.discover")
jr = agent.client().call("user.ssh-keys", {"user": "no-such-user-gltest"})
is_eq(jr.get("error", {}).get("code"), -32002, "user.ssh-keys of an unknown user -> -32002")

# Suspending this machine is out of the question: only where it cannot.
try:
    states = open("/sys/power/state").read().split()
except OSError:
    states = []
if "disk" not in states:
    r = q.cmd("guest-suspend-disk")
    is_eq(r.get("error", {}).get("class"), "GenericError",
          "guest-suspend-disk where the kernel cannot hibernate -> GenericError (errors are answered)")
else:
    diag("this machine could hibernate: guest-suspend-disk not tried")

# --- a host that hangs up mid-command, then comes back ---
h = Qga(qsock)
h.send(b'{"execute":"guest-exec","arguments":{"path":"/bin/sleep","arg":["0.3"]}}{"execute":"gue')
h.close()
h = Qga(qsock)
h.send(b'{"execute":"guest-sync","arguments"')
h.close()
q2 = Qga(qsock)
is_eq(q2.cmd("guest-sync", {"id": 99}), {"return": 99}, "after hosts hung up mid-command, a new one is served")
q2.close()

# --- a 100 MB line, then the stream resynchronises ---
rss0 = rss_kib(agent.pid)
peak = [rss0]
big_line = b'{"execute":"guest-ping","arguments":{"x":"' + b"a" * (100 << 20)


def flood():
    try:
        q.sock.sendall(big_line + b"\n")
    except OSError as e:
        diag("flood: %r" % e)


th = threading.Thread(target=flood)
th.start()
errors = 0
deadline = time.monotonic() + 120
while th.is_alive() and time.monotonic() < deadline:
    peak[0] = max(peak[0], rss_kib(agent.pid))
    try:
        a = q.recv(timeout=0.2)
        errors += 1 if "error" in a else 0
    except socket.timeout:
        pass
th.join(10)
ans, skipped = q.delimited_sync(100)
if errors == 0 and b"error" in skipped:
    errors = 1
ok(errors >= 1, "a 100 MB line is answered with an error")
is_eq(ans, {"return": 100}, "guest-sync-delimited after the 100 MB line")
ok(peak[0] - rss0 < 48 * 1024, "agent RSS grew by %d KiB (< 48 MiB) under the 100 MB line"
   % (peak[0] - rss0))
is_eq(q.cmd("guest-ping"), {"return": {}}, "served after the 100 MB line")
j = agent.client()
is_eq(j.call("agent.ping", None, id=1)["result"], "pong", "JSON-RPC on its own socket is unaffected")


# --- key by key, type by type against Debian's qemu-ga ---
qemu_ga = shutil.which("qemu-ga") or ("/usr/sbin/qemu-ga" if os.path.exists("/usr/sbin/qemu-ga") else None)
if qemu_ga is None or os.geteuid() != 0:
    diag("qemu-ga not installed or not root: comparison skipped")
else:
    osock = os.path.join(tmp, "qemu-ga.sock")
    state = os.path.join(tmp, "qemu-ga-state")
    os.mkdir(state)
    ref = Proc([qemu_ga, "-m", "unix-listen", "-p", osock, "-t", state,
                "-f", os.path.join(tmp, "qemu-ga.pid")])
    ok(wait_for_listener(osock, 15, ref), "Debian's qemu-ga serves as the reference")
    r = Qga(osock)
    agent.write_config({})
    os.kill(agent.pid, 1)  # reload: allow everything again
    time.sleep(0.5)
    ours = Qga(qsock)
    by = {"guest-get-vcpus": "logical-id", "guest-network-get-interfaces": "name",
          "guest-get-fsinfo": "mountpoint", "guest-get-users": "user", "guest-get-disks": "name"}
    for name in ("guest-ping", "guest-get-time", "guest-get-host-name", "guest-get-timezone",
                 "guest-get-osinfo", "guest-get-users", "guest-fsfreeze-status",
                 "guest-get-vcpus", "guest-network-get-interfaces", "guest-get-fsinfo",
                 "guest-get-disks"):
        # Other tests running beside this one attach loop devices and mount
        # filesystems: compare two answers taken at a moment nothing changed.
        for attempt in range(10):
            want = r.cmd(name)
            got = ours.cmd(name)
            if (name not in by or name == "guest-network-get-interfaces"
                    or "return" not in want or "return" not in got
                    or sorted(keyed(want["return"], by[name]))
                    == sorted(keyed(got["return"], by[name]))
                    == sorted(keyed(r.cmd(name)["return"], by[name]))):
                break
            time.sleep(0.5)
        if name in by and "return" in want and "return" in got:
            key = by[name]
            wl = keyed(want["return"], key)
            gl = keyed(got["return"], key)
            if name == "guest-get-disks":
                # Loop devices come and go with the tests running beside this one.
                loops = {k for k in set(wl) ^ set(gl) if k.startswith("/dev/loop")}
                if loops:
                    diag("guest-get-disks: left out %s, in one answer only" % sorted(loops))
                wl = {k: v for k, v in wl.items() if k not in loops}
                gl = {k: v for k, v in gl.items() if k not in loops}
            if name == "guest-network-get-interfaces":
                common = set(wl) & set(gl)
                wl = {k: v for k, v in wl.items() if k in common}
                gl = {k: v for k, v in gl.items() if k in common}
                ok(common, "network-get-interfaces: interfaces in common (%s)" % sorted(common))
            is_eq(sorted(gl), sorted(wl), "%s: the same entries as qemu-ga" % name)
            is_eq({k: shape(v) for k, v in gl.items()}, {k: shape(v) for k, v in wl.items()},
                  "%s: the same keys and types as qemu-ga" % name)
            if name == "guest-get-fsinfo":
                # Other writers change the used bytes between the two calls.
                for k in set(gl) & set(wl):
                    ug, uw = gl[k].pop("used-bytes", 0), wl[k].pop("used-bytes", 0)
                    ok(abs(ug - uw) <= max(uw, 1) // 100, "%s: used-bytes within 1%% of qemu-ga's" % k)
            if name != "guest-get-users":
                is_eq(gl, wl, "%s: the same values as qemu-ga" % name)
        elif name == "guest-get-time":
            ok(abs(got["return"] - want["return"]) < 5 * 10 ** 9, "guest-get-time: as qemu-ga's")
        else:
            is_eq(got, want, "%s: the same answer as qemu-ga" % name)
    for args in ({"id": 5}, {}):
        is_eq(ours.cmd("guest-sync", args), r.cmd("guest-sync", args),
              "guest-sync %s: the same answer as qemu-ga" % json.dumps(args))
    for bad in ({"execute": "guest-nope"}, {"execute": "guest-ping", "arguments": {"x": 1}},
                {"execute": "guest-ping", "extra": 1}, [1]):
        ours.send(bad)
        r.send(bad)
        is_eq(ours.recv(), r.recv(), "error for %s: the same as qemu-ga" % json.dumps(bad))
    # The same file session against both.
    for who, cl in (("qemu-ga", r), ("guestlink", ours)):
        path = os.path.join(tmp, "cmp-" + who)
        fh = cl.cmd("guest-file-open", {"path": path, "mode": "w+"})["return"]
        seq = [("guest-file-write", {"handle": fh, "buf-b64": base64.b64encode(b"0123456789").decode()}),
               ("guest-file-seek", {"handle": fh, "offset": 2, "whence": "set"}),
               ("guest-file-read", {"handle": fh, "count": 3}),
               ("guest-file-seek", {"handle": fh, "offset": -1, "whence": "end"}),
               ("guest-file-read", {"handle": fh}),
               ("guest-file-flush", {"handle": fh}),
               ("guest-file-close", {"handle": fh})]
        if who == "qemu-ga":
            ref_file = [cl.cmd(n, a) for n, a in seq]
        else:
            got_file = [cl.cmd(n, a) for n, a in seq]
    is_eq(got_file, ref_file, "a guest-file-* session answers as qemu-ga's")
    theirs = {c["name"] for c in r.cmd("guest-info")["return"]["supported_commands"]}
    mine = {c["name"] for c in ours.cmd("guest-info")["return"]["supported_commands"]}
    diag("qemu-ga commands not served: %s" % " ".join(sorted(theirs - mine)))
    is_eq(sorted(mine - theirs - {"guest-get-load"}), [], "every command served is one qemu-ga knows")
    r.close()
    ours.close()
    # The reference's own exit is not ours to test (a FUSE mount another test
    # stopped can hold it in statvfs for a while).
    diag("qemu-ga exit status: %s" % ref.stop(timeout=30))

q.close()
is_eq(agent.stop(), 0, "agent exits 0")
done()
