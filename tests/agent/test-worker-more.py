#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The last filesystem calls off the agent's event loop: the password file
and authorized_keys of the user.* methods (under the password lock), the
commit at the end of an upload channel, system.set-hostname's freeze check,
the /etc files of system.info and system.osinfo, and system.filesystems'
look at each mount's device.

The agent runs in its own mount and UTS namespaces, its /etc an overlay whose
upper layer is a scratch directory (nothing of the real /etc changes), with
files bind-mounted from a FUSE mount (tests/agent/hangfs) whose server the
test stops (SIGSTOP). Each call stuck there, or behind a password lock another
process holds, costs only its caller (-32004 after fs_timeout_s) while another
client's agent.ping answers. Needs root, unshare, nsenter, overlayfs and FUSE;
skipped otherwise."""

import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gltest import (Proc, build_path, diag, done, is_eq, ok, skip_all,  # noqa: E402
                    tmpdir, wait_for_listener, LineClient, unix_connect)
from hangfslib import HangFS  # noqa: E402
from nslib import MountNamespace  # noqa: E402

FS_TIMEOUT_S = 2
if os.geteuid() != 0 or not all(shutil.which(p) for p in ("unshare", "nsenter")):
    skip_all("needs root, unshare and nsenter")


class Namespaces(MountNamespace):
    """A private mount namespace and a UTS namespace (system.set-hostname
    changes only the test's host name)."""

    def __init__(self):
        self.holder = Proc(["unshare", "--mount", "--uts", "--propagation", "private",
                            "sleep", "600"])
        self.prefix = ["nsenter", "-t", str(self.holder.pid), "-m", "-u"]
        deadline = time.monotonic() + 10
        while any(os.readlink("/proc/%d/ns/%s" % (self.holder.pid, n)) ==
                  os.readlink("/proc/self/ns/" + n) for n in ("mnt", "uts")):
            if time.monotonic() > deadline or not self.holder.alive():
                self.holder.stop()
                skip_all("cannot make mount and UTS namespaces")
            time.sleep(0.05)


tmp = tmpdir()
upper, work = os.path.join(tmp, "etc-upper"), os.path.join(tmp, "etc-work")
home = os.path.join(tmp, "home")
for d in (upper, work, home):
    os.mkdir(d)
ns = Namespaces()
if not ns.run(["mount", "-t", "overlay", "overlay", "-o",
               "lowerdir=/etc,upperdir=%s,workdir=%s" % (upper, work), "/etc"]):
    ns.stop()
    skip_all("cannot put an overlay over /etc in a mount namespace")
fs = HangFS(tmp, prefix=ns.prefix)
agent, sock = ns.agent(tmp, {"fs_timeout_s": FS_TIMEOUT_S})

# Users only this test knows: gltest's home is a scratch directory,
# gltesthang's the FUSE mount.
USERS = ("gltest:x:4242:4242:gltest:%s:/bin/false\n"
         "gltesthang:x:4243:4243:gltesthang:%s:/bin/false\n" % (home, fs.mnt))
SHADOW = "gltest:$6$old$old:19000:0:99999:7:::\ngltesthang:*:19000:0:99999:7:::\n"


def code(answer):
    return answer.get("error", {}).get("code")


def shadow_hash(user):
    """user's hash in the namespace's /etc/shadow (the overlay's upper copy)."""
    with open(os.path.join(upper, "shadow")) as f:
        for line in f:
            fields = line.split(":")
            if fields[0] == user:
                return fields[1]
    return None


def nothing_within(client, seconds):
    try:
        return "got %s" % client.recv(seconds)
    except (TimeoutError, OSError):
        return None


def stuck_call(c, other, method, params, id, what):
    """Send a call that hangs; another client is served; it answers -32004."""
    t0 = time.monotonic()
    req = {"jsonrpc": "2.0", "method": method, "id": id}
    if params is not None:
        req["params"] = params
    c.send(req)
    time.sleep(0.3)
    t1 = time.monotonic()
    is_eq(other.call("agent.ping", id="p-%s" % id, timeout=5).get("result"), "pong",
          "another client is served while %s hangs" % what)
    dt = time.monotonic() - t1
    # not a speed target: a blocked loop would not answer until the call returns
    ok(dt < FS_TIMEOUT_S, "... before the call's timeout (%.2fs)" % dt)
    a = c.recv(FS_TIMEOUT_S + 20)
    is_eq((a.get("id"), code(a)), (id, -32004),
          "%s answers -32004 (after %.1fs)" % (what, time.monotonic() - t0))
    return a


fs2 = None  # a second hangfs, for system.filesystems
try:
    ok(wait_for_listener(sock, 20, agent), "the agent starts in its namespaces")
    ok(ns.run(["sh", "-c", "printf '%s' >> /etc/passwd && printf '%s' >> /etc/shadow"
               % (USERS, SHADOW)]), "test users in the namespace's /etc")
    with open("/etc/passwd") as f:
        ok("gltesthang:" not in f.read(), "... not in the real /etc")
    c, other = LineClient(unix_connect(sock, 10)), LineClient(unix_connect(sock, 10))

    # 1. user.set-password: works, under the password lock.
    a = c.call("user.set-password", {"user": "gltest", "password": "$6$a$first",
                                     "crypted": True}, id=1)
    is_eq(a.get("result"), {}, "user.set-password works")
    is_eq(shadow_hash("gltest"), "$6$a$first", "... and the hash is in /etc/shadow")
    a = c.call("user.set-password", {"user": "gltest", "password": "plain text"}, id=2)
    h = shadow_hash("gltest") or ""
    ok(a.get("result") == {} and h.startswith("$y$"),
       "a plain password is hashed (yescrypt: %s...)" % h[:4])

    # Another process holds the lock lckpwdf(3) takes (a classic fcntl lock).
    holder = Proc(ns.prefix + [
        sys.executable, "-c",
        "import fcntl, os, sys, time\n"
        "fd = os.open('/etc/.pwd.lock', os.O_WRONLY | os.O_CREAT, 0o600)\n"
        "fcntl.lockf(fd, fcntl.LOCK_EX)\n"
        "print('locked', flush=True)\n"
        "time.sleep(120)\n"], stdout=subprocess.PIPE)
    is_eq(holder.p.stdout.readline().strip(), b"locked", "another process holds /etc/.pwd.lock")
    stuck_call(c, other, "user.set-password",
               {"user": "gltest", "password": "$6$b$locked", "crypted": True}, 3,
               "user.set-password waiting for the password lock")
    holder.stop()
    time.sleep(0.5)
    ok(shadow_hash("gltest").startswith("$y$"),
       "the call that timed out changes nothing once the lock is free")
    a = c.call("user.set-password", {"user": "gltest", "password": "$6$c$after",
                                     "crypted": True}, id=4)
    is_eq((a.get("result"), shadow_hash("gltest")), ({}, "$6$c$after"),
          "with the lock free again the password is set")

    # /etc/shadow on the hung mount.
    ok(ns.run(["sh", "-c", "cat /etc/shadow > %s" % fs.path("shadow")]) and
       ns.run(["mount", "--bind", fs.path("shadow"), "/etc/shadow"]),
       "the agent's /etc/shadow is on the FUSE mount")
    fs.stop()
    time.sleep(1.2)  # past FUSE's attribute cache: the call reaches the stopped server
    stuck_call(c, other, "user.set-password",
               {"user": "gltest", "password": "$6$d$hung", "crypted": True}, 5,
               "user.set-password on a hung /etc/shadow")

    # 2. authorized_keys in a home on the hung mount.
    stuck_call(c, other, "user.ssh-add-keys", {"user": "gltesthang", "keys": ["ssh-ed25519 AAAA h"]},
               6, "user.ssh-add-keys with the home on a hung mount")
    stuck_call(c, other, "user.ssh-keys", {"user": "gltesthang"}, 7,
               "user.ssh-keys with the home on a hung mount")
    fs.cont()
    ok(ns.run(["umount", "-l", "/etc/shadow"]), "/etc/shadow back off the FUSE mount")
    a = c.call("user.ssh-keys", {"user": "gltesthang"}, id=8, timeout=20)
    is_eq(a.get("result"), {"keys": []}, "with the server running: no .ssh there, no keys")

    # ... and in a healthy home: the read-modify-write as one job.
    keys = ["ssh-ed25519 AAAA one", "ssh-ed25519 AAAA two"]
    a = c.call("user.ssh-add-keys", {"user": "gltest", "keys": keys + [""]}, id=9)
    is_eq(a.get("result"), {}, "user.ssh-add-keys in a healthy home")
    ak = os.path.join(home, ".ssh", "authorized_keys")
    st = os.stat(ak)
    is_eq((st.st_uid, st.st_mode & 0o777, os.stat(os.path.dirname(ak)).st_uid),
          (4242, 0o600, 4242), "authorized_keys and .ssh belong to the user, 0600")
    with open(ak, "a") as f:
        f.write("# a comment\n")
    a = c.call("user.ssh-add-keys", {"user": "gltest", "keys": ["ssh-ed25519 AAAA one"]}, id=10)
    is_eq(c.call("user.ssh-keys", {"user": "gltest"}, id=11).get("result"), {"keys": keys},
          "user.ssh-keys: the keys once each, comments left out")
    a = c.call("user.ssh-remove-keys", {"user": "gltest", "keys": [keys[0]]}, id=12)
    with open(ak) as f:
        is_eq((a.get("result"), f.read()), ({}, keys[1] + "\n# a comment\n"),
              "user.ssh-remove-keys removes one key and keeps the rest of the file")
    a = c.call("user.ssh-keys", {"user": "no-such-user-gltest"}, id=13)
    is_eq(code(a), -32002, "an unknown user: -32002")

    # 3. The end of an upload channel: its commit (here the chmod and rename
    # into place on the hung mount) runs on a worker; the status line goes
    # out when it returned.
    a = c.call("file.channel", {"path": fs.path("up0"), "direction": "upload", "size": 0}, id=20)
    token = a.get("result", {}).get("token")
    ok(token, "file.channel: an empty upload onto the FUSE mount")
    fs.stop()
    time.sleep(1.2)
    data = LineClient(unix_connect(sock, 10))
    is_eq(data.call("file.attach", {"token": token}, id=21).get("result"), {"size": 0},
          "file.attach: nothing to send, the upload is complete")
    time.sleep(0.3)
    is_eq(other.call("agent.ping", id="p-chan", timeout=5).get("result"), "pong",
          "another client is served while the upload's commit hangs")
    is_eq(nothing_within(data, 1), None, "no status line while the commit hangs")
    fs.cont()
    is_eq(data.recv(20), {"ok": True, "size": 0}, "the status line once the commit returned")
    ok(ns.run(["test", "-f", fs.path("up0")]), "... and the file is there")
    a = c.call("file.channel", {"path": fs.path("up3"), "direction": "upload", "size": 3}, id=22)
    data = LineClient(unix_connect(sock, 10))
    data.send({"jsonrpc": "2.0", "method": "file.attach", "id": 23,
               "params": {"token": a.get("result", {}).get("token")}})
    data.send_raw(b"abc")
    is_eq([data.recv(10), data.recv(10)], [{"jsonrpc": "2.0", "id": 23, "result": {"size": 3}},
                                          {"ok": True, "size": 3}],
          "an upload of 3 bytes sent behind file.attach: its status")
    a = c.call("file.read", {"path": fs.path("up3")}, id=24)
    is_eq(a.get("result", {}).get("data"), "YWJj", "... and the file holds them")

    # 4. system.info reads /etc/machine-id and /etc/os-release; set-hostname,
    # while a filesystem is frozen, stat()s /etc/hostname first.
    img, vol = os.path.join(tmp, "fs.img"), os.path.join(tmp, "vol")
    os.mkdir(vol)
    with open(img, "wb") as f:
        f.truncate(32 * 1024 * 1024)
    frozen = bool(shutil.which("mkfs.ext4")) and subprocess.run(
        ["mkfs.ext4", "-q", "-F", img], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        timeout=60).returncode == 0 and ns.run(["mount", "-o", "loop", img, vol])
    if frozen:
        a = c.call("fs.freeze", {"mountpoints": [vol], "timeout_s": 120}, id=30, timeout=20)
        is_eq(a.get("result", {}).get("mountpoints"), [vol], "fs.freeze of an ext4 volume")
    else:
        diag("no ext4 volume on a loop device here: set-hostname's freeze check not tested")
    hostname = subprocess.run(ns.prefix + ["hostname"], capture_output=True,
                              timeout=10).stdout.strip()
    ok(ns.run(["sh", "-c", "echo 0123456789abcdef0123456789abcdef > %s && echo %s > %s && "
               "printf 'ID=gltest\\nPRETTY_NAME=\"GL test\"\\n' > %s"
               % (fs.path("machine-id"), hostname.decode(), fs.path("hostname"),
                  fs.path("os-release"))]) and
       ns.run(["mount", "--bind", fs.path("machine-id"), "/etc/machine-id"]) and
       ns.run(["mount", "--bind", fs.path("hostname"), "/etc/hostname"]) and
       ns.run(["mount", "--bind", fs.path("os-release"), "/etc/os-release"]),
       "the agent's /etc/machine-id, hostname and os-release are on the FUSE mount")
    fs.stop()
    time.sleep(1.2)
    stuck_call(c, other, "system.info", None, 31, "system.info with /etc/machine-id on a hung mount")
    stuck_call(c, other, "system.osinfo", None, 37, "system.osinfo with /etc/os-release on a hung mount")
    if frozen:
        stuck_call(c, other, "system.set-hostname", {"hostname": "gltest-late"}, 32,
                   "system.set-hostname's freeze check on a hung /etc/hostname")
    fs.cont()
    a = c.call("system.info", id=33, timeout=20)
    is_eq(a.get("result", {}).get("machine_id"), "0123456789abcdef0123456789abcdef",
          "system.info with the server running again")
    a = c.call("system.osinfo", id=38, timeout=20).get("result", {})
    is_eq((a.get("id"), a.get("pretty_name")), ("gltest", "GL test"),
          "system.osinfo with the server running again")
    if frozen:
        is_eq(other.call("fs.thaw", id="t").get("result"), {"thawed": 1}, "fs.thaw")
        time.sleep(0.3)
        is_eq(subprocess.run(ns.prefix + ["hostname"], capture_output=True,
                             timeout=10).stdout.strip(), hostname,
              "the set-hostname that timed out changed nothing")
    a = c.call("system.set-hostname", {"hostname": "gltest-host", "persistent": False}, id=34)
    is_eq((a.get("result"), subprocess.run(ns.prefix + ["hostname"], capture_output=True,
                                           timeout=10).stdout.strip()),
          ({}, b"gltest-host"), "system.set-hostname sets the (namespace's) host name")

    # 5. system.filesystems: the device named in the mount table is stat()ed
    # to find its disk, and a FUSE server names its own: here a path on
    # itself, with a type whose usage is never asked (fuse.sshfs).
    mnt2 = os.path.join(tmp, "mnt2")
    os.mkdir(mnt2)
    fs2 = Proc(ns.prefix + [build_path("tests", "agent", "hangfs"), mnt2, "-f", "-s", "-o",
                            "fsname=%s/f,subtype=sshfs" % mnt2], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not ns.run(["test", "-e", os.path.join(mnt2, "f")]) and time.monotonic() < deadline:
        time.sleep(0.05)
    a = c.call("system.filesystems", id=35, timeout=20)
    mine = [f for f in a.get("result", {}).get("filesystems", []) if f.get("mountpoint") == mnt2]
    is_eq([(f.get("device"), f.get("type"), "block_device" in f) for f in mine],
          [(mnt2 + "/f", "fuse.sshfs", False)], "system.filesystems lists the second mount")
    os.kill(fs2.pid, signal.SIGSTOP)
    time.sleep(1.2)
    stuck_call(c, other, "system.filesystems", None, 36,
               "system.filesystems with a device path on a hung mount")
    os.kill(fs2.pid, signal.SIGCONT)
    is_eq(agent.stop(), 0, "agent exits 0")
finally:
    if fs2:
        try:
            os.kill(fs2.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
        ns.run(["fusermount3", "-u", "-z", os.path.join(tmp, "mnt2")])
        fs2.stop()
    fs.unmount()
    agent.stop()
    subprocess.run(ns.prefix + ["umount", "-l", os.path.join(tmp, "vol")],
                   stderr=subprocess.DEVNULL, timeout=10)
    ns.stop()
done()
