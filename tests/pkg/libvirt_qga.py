# SPDX-License-Identifier: LGPL-2.1-or-later
"""libvirt's agent commands answered by guestlink-agent (issue 13), in the
domain tests/pkg/test-libvirt.py boots: libvirt holds the host end of the
virtio-serial channel org.qemu.guest_agent.0 and guestlink-agent serves the
guest end (--listen qga-serial:PORT, started through the control channel: the
VM masks udevd, so the udev rule cannot start guestlink-agent-qga.service).
The same agent process also listens on vsock, and a host thread keeps using
it through the backend (`guestlink -m DOMAIN ping`/exec) while virsh runs
qemu-agent-command, domtime (--sync), guestinfo, domhostname, domifaddr,
domfsinfo, domfsfreeze/domfsthaw, guestvcpus, set-user-password,
get/set-user-sshkeys and finally shutdown --mode agent.

    gone = libvirt_qga.run(lv, name, ctl, cli, work, H)   # True: the domain shut down
"""

import json
import os
import queue
import subprocess
import threading
import time
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt  # Debian 12's Python 3.11 still has it: the check of a crypt(3) hash

from gltest import diag, is_eq, ok

CHANNEL = "org.qemu.guest_agent.0"
USER = "gltestlv"
VSOCK_PORT = 9731  # units/guestlink-agent.socket: the port `guestlink -m` dials
FIND_PORT = ("for p in /sys/class/virtio-ports/*; do [ \"$(cat $p/name)\" = %s ] && "
             "echo /dev/${p##*/}; done" % CHANNEL)
KEY1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx1c3Rlc3RrZXlvbmVvbmVvbmVvbmVvbmVvbmVvbmVv one"
KEY2 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx1c3Rlc3RrZXl0d290d290d290d290d290d290d290d28 two"


def disk_xml(path):
    """A raw virtio-blk disk (vda): ext4, so that domfsfreeze has a
    filesystem that really freezes and guestinfo/domfsinfo a disk to name."""
    return ("    <disk type='file' device='disk'><driver name='qemu' type='raw' cache='unsafe'/>"
            "<source file='%s'/><target dev='vda' bus='virtio'/></disk>\n" % path)


def make_disk(work):
    path = os.path.join(work, "qga-disk.img")
    with open(path, "wb") as f:
        f.truncate(64 << 20)
    subprocess.run(["/usr/sbin/mkfs.ext4", "-q", "-F", path], check=True)
    return path


def fields(text):
    """virsh's "key : value" lines as a dict."""
    out = {}
    for ln in text.splitlines():
        if ":" in ln:
            k, v = ln.split(":", 1)
            out[k.strip()] = v.strip()
    return out


def table(text):
    """Rows of a virsh table (after the ---- line), split on whitespace."""
    lines = text.splitlines()
    for i, ln in enumerate(lines):
        if ln.startswith("---"):
            return [r.split() for r in lines[i + 1:] if r.strip()]
    return []


class HostLoop(threading.Thread):
    """guestlink -m DOMAIN ping and exec, one after the other until stopped."""

    def __init__(self, cli, name):
        super().__init__(daemon=True)
        self.cli, self.name = cli, name
        self.stop_ev = threading.Event()
        self.results = []

    def run(self):
        i = 0
        while not self.stop_ev.is_set():
            i += 1
            try:
                r = subprocess.run([self.cli, "-m", self.name, "ping"], capture_output=True,
                                   text=True, timeout=60)
                good = r.returncode == 0
                r = subprocess.run([self.cli, "-m", self.name, "exec", "--", "echo", "n%d" % i],
                                   capture_output=True, text=True, timeout=60)
                good = good and r.returncode == 0 and r.stdout.strip() == "n%d" % i
                self.results.append((good, "" if good else r.stderr.strip()[-200:]))
            except Exception as e:  # noqa: BLE001 - counted as a failure
                self.results.append((False, repr(e)))

    def stop(self):
        self.stop_ev.set()
        self.join(timeout=130)


def run(lv, name, ctl, cli, H, timings):
    """Returns True when the domain went away (shutdown --mode agent)."""
    def virsh(*args, timeout=60):
        t0 = time.monotonic()
        r = lv.virsh(*args, timeout=timeout)
        dt = time.monotonic() - t0
        diag("virsh %s -> rc %d (%.2f s): %s" % (" ".join(args), r.returncode, dt,
                                                 (r.stdout.strip() or r.stderr.strip())[:600]))
        timings["virsh " + args[0]] = dt
        return r

    def gsh(cmd, timeout=60):
        return ctl.sh(cmd, timeout=timeout)

    port = gsh(FIND_PORT)["out"].strip()
    ok(port.startswith("/dev/vport"), "qga: the guest has the %s port (%s)" % (CHANNEL, port))
    if not port:
        return False
    agent = H.build_bin("agent", "guestlink-agent")
    # The guest's root is an overlay on the host's root over 9p, served by
    # QEMU as libvirt-qemu: /etc/shadow and /etc/gshadow (0640 root:shadow)
    # are unreadable through it, so useradd fails. The guest gets its own
    # /etc/shadow (in the overlay, never the host's) and the user by hand.
    hash0 = crypt.crypt("Initial-1", crypt.mksalt(crypt.METHOD_SHA512))
    r = gsh("modprobe -a virtio_blk ext4 && for i in $(seq 100); do [ -b /dev/vda ] && break;"
            " sleep 0.1; done && mkdir -p /mnt/glqga && mount /dev/vda /mnt/glqga && "
            "touch /mnt/glqga/before && { cat /etc/shadow >/dev/null 2>&1 || "
            "{ getent passwd | cut -d: -f1 | sed 's/$/:*:19000:0:99999:7:::/' >/etc/shadow+ && "
            "chmod 640 /etc/shadow+ && mv -f /etc/shadow+ /etc/shadow && echo own-shadow; }; } && "
            "{ getent passwd %(u)s >/dev/null || "
            "{ echo '%(u)s:x:4242:100::/home/%(u)s:/bin/sh' >>/etc/passwd && "
            "echo '%(u)s:%(h)s:19000:0:99999:7:::' >>/etc/shadow && mkdir -p /home/%(u)s && "
            "chown 4242:100 /home/%(u)s; }; }" % {"u": USER, "h": hash0})
    ok(r["rc"] == 0, "qga: ext4 disk mounted in the guest, user %s created%s"
       % (USER, " (the guest's own /etc/shadow)" if "own-shadow" in r["out"] else ""))
    if r["rc"]:
        diag(r["err"])
    shadow0 = gsh("getent shadow %s | cut -d: -f2" % USER)["out"].strip()
    hostname = gsh("hostname")["out"].strip()

    # One agent process: the QGA port and the vsock port the host client dials
    # (the socket unit gives way to it).
    gsh("systemctl stop guestlink-agent.socket guestlink-agent.service")
    h = ctl.start("timeout 900 %s --listen vsock::%d --listen qga-serial:%s"
                  " & echo $! >/run/glqga.pid; wait" % (agent, VSOCK_PORT, port), timeout=910)
    gone = False
    loop = None
    try:
        t0 = time.monotonic()
        deadline = t0 + 90
        while True:
            r = lv.virsh("qemu-agent-command", name, '{"execute":"guest-ping"}', timeout=30)
            if r.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(1)
        timings["qga ready"] = time.monotonic() - t0
        is_eq(r.stdout.strip(), '{"return":{}}', "qga: virsh qemu-agent-command guest-ping "
              "(%.1f s until the agent answered)" % timings["qga ready"])
        if r.returncode:
            diag(r.stderr.strip())
            return False

        # Who answers: no qemu-ga runs, the port is open in our agent alone.
        r = gsh("pgrep -x qemu-ga; for f in /proc/[0-9]*/fd/*; do [ \"$(readlink $f)\" = %s ] && "
                "echo ${f#/proc/} ; done 2>/dev/null | cut -d/ -f1 | sort -u" % port)
        holders = r["out"].split()
        exe = gsh("readlink /proc/%s/exe" % holders[0])["out"].strip() if holders else None
        is_eq((len(holders), exe), (1, os.path.realpath(agent)),
              "qga: no qemu-ga in the guest; one process holds %s: guestlink-agent" % port)
        r = virsh("qemu-agent-command", name, '{"execute":"guest-info"}')
        try:
            info = json.loads(r.stdout)["return"]
            cmds = {c["name"] for c in info["supported_commands"] if c.get("enabled")}
        except (ValueError, KeyError, TypeError):
            info, cmds = {}, set()
        ok("guest-get-load" in cmds and "guest-shutdown" in cmds,
           "qga: guest-info lists guestlink's command set (%d enabled, with guest-get-load, "
           "version %s)" % (len(cmds), info.get("version")))

        loop = HostLoop(cli, name)
        loop.start()

        # domtime: put the guest clock an hour back, read it, sync it from the RTC.
        gsh("date -s @$(( $(date +%s) - 3600 ))")
        r = virsh("domtime", name)
        got = int(fields(r.stdout).get("Time", "0") or 0)
        ok(r.returncode == 0 and abs(got - (time.time() - 3600)) < 120,
           "qga: virsh domtime reads the guest clock (%+d s from the host, set to -3600)"
           % (got - time.time()))
        r = virsh("domtime", name, "--sync")
        ok(r.returncode == 0, "qga: virsh domtime --sync")
        g = int(gsh("date +%s")["out"].strip() or 0)
        ok(abs(g - time.time()) < 60, "qga: the guest clock is back at the host's after --sync "
           "(%+d s)" % (g - time.time()))
        r = virsh("domtime", name)
        got = int(fields(r.stdout).get("Time", "0") or 0)
        ok(abs(got - time.time()) < 60, "qga: virsh domtime agrees (%+d s)" % (got - time.time()))

        # guestinfo: every group libvirt 9.0 has.
        r = virsh("guestinfo", name)
        gi = fields(r.stdout)
        ok(r.returncode == 0, "qga: virsh guestinfo")
        want_groups = {"user": "user.count", "os": "os.id", "timezone": "timezone.offset",
                       "hostname": "hostname", "filesystem": "fs.count", "disk": "disk.count",
                       "interface": "if.count"}
        missing = [g for g, k in want_groups.items() if k not in gi]
        is_eq(missing, [], "qga: guestinfo reports every group (user os timezone hostname "
              "filesystem disk interface)")
        os_id = gsh(". /etc/os-release; echo $ID")["out"].strip()
        is_eq((gi.get("os.id"), gi.get("hostname")), (os_id, hostname),
              "qga: guestinfo os.id and hostname are the guest's")
        fs = {gi.get("fs.%d.mountpoint" % i): gi.get("fs.%d.fstype" % i)
              for i in range(int(gi.get("fs.count", "0") or 0))}
        is_eq(fs.get("/mnt/glqga"), "ext4", "qga: guestinfo fs lists the ext4 mount")
        disks = [gi.get("disk.%d.name" % i) for i in range(int(gi.get("disk.count", "0") or 0))]
        ok("/dev/vda" in disks, "qga: guestinfo disk lists /dev/vda (%s)" % " ".join(map(str, disks)))
        ifs = [gi.get("if.%d.name" % i) for i in range(int(gi.get("if.count", "0") or 0))]
        ok("lo" in ifs, "qga: guestinfo if lists lo (%s)" % " ".join(map(str, ifs)))
        z = gsh("date +%z")["out"].strip() or "+0000"
        off = (-1 if z[0] == "-" else 1) * (int(z[1:3]) * 3600 + int(z[3:5]) * 60)
        is_eq(gi.get("timezone.offset"), str(off), "qga: guestinfo timezone.offset is the guest's")
        users = int(gi.get("user.count", "-1") or -1)
        who = {ln.split()[0] for ln in gsh("who")["out"].splitlines() if ln.strip()}
        is_eq(users, len(who), "qga: guestinfo user.count matches who's users (%s)"
              % " ".join(sorted(who)))

        r = virsh("domhostname", name, "--source", "agent")
        is_eq((r.returncode, r.stdout.strip()), (0, hostname), "qga: virsh domhostname --source agent")

        r = virsh("domifaddr", name, "--source", "agent")
        rows = {(x[0], x[-1]) for x in table(r.stdout) if len(x) >= 3}
        ok(r.returncode == 0 and ("lo", "127.0.0.1/8") in rows,
           "qga: virsh domifaddr --source agent lists lo 127.0.0.1/8")

        r = virsh("domfsinfo", name)
        rows = {x[0]: x for x in table(r.stdout)}
        ok(r.returncode == 0 and "/mnt/glqga" in rows and "vda" in rows["/mnt/glqga"],
           "qga: virsh domfsinfo names /mnt/glqga on vda (%s)" % rows.get("/mnt/glqga"))

        # domfsfreeze: a write must block until domfsthaw.
        r = virsh("domfsfreeze", name, "--mountpoint", "/mnt/glqga")
        ok(r.returncode == 0 and "Froze 1 " in r.stdout, "qga: virsh domfsfreeze --mountpoint")
        w = ctl.start("timeout 120 sh -c 'echo x >/mnt/glqga/while-frozen'; echo $?", timeout=130)
        q, _ = w
        try:
            early = q.get(timeout=5)
        except queue.Empty:
            early = None
        ok(early is None, "qga: a write to the frozen filesystem blocks (still blocked after 5 s)")
        r = virsh("domfsthaw", name)
        ok(r.returncode == 0 and "Thawed" in r.stdout, "qga: virsh domfsthaw")
        res = early or ctl.result(w)
        is_eq(res["out"].strip(), "0", "qga: the blocked write completes after the thaw")
        r = virsh("qemu-agent-command", name, '{"execute":"guest-fsfreeze-status"}')
        is_eq(r.stdout.strip(), '{"return":"thawed"}', "qga: guest-fsfreeze-status thawed")

        r = virsh("guestvcpus", name)
        v = fields(r.stdout)
        is_eq((v.get("vcpus"), v.get("online")), ("0-1", "0-1"), "qga: virsh guestvcpus")
        r = virsh("guestvcpus", name, "--cpulist", "1", "--disable")
        st = gsh("cat /sys/devices/system/cpu/cpu1/online")["out"].strip()
        is_eq((r.returncode, st), (0, "0"), "qga: virsh guestvcpus --disable 1 offlines cpu1")
        r = virsh("guestvcpus", name, "--cpulist", "1", "--enable")
        st = gsh("cat /sys/devices/system/cpu/cpu1/online")["out"].strip()
        is_eq((r.returncode, st), (0, "1"), "qga: virsh guestvcpus --enable 1 onlines it again")

        r = virsh("set-user-password", name, USER, "Secret-lv-9")
        shadow = gsh("getent shadow %s | cut -d: -f2" % USER)["out"].strip()
        ok(r.returncode == 0 and shadow != shadow0 and shadow.startswith("$")
           and crypt.crypt("Secret-lv-9", shadow) == shadow,
           "qga: virsh set-user-password: /etc/shadow has a new hash of the new password")

        keys = os.path.join(lv.work, "keys")
        with open(keys, "w") as f:
            f.write(KEY1 + "\n" + KEY2 + "\n")
        r = virsh("set-user-sshkeys", name, USER, "--file", keys)
        ak = gsh("cat ~%s/.ssh/authorized_keys" % USER)["out"].splitlines()
        ok(r.returncode == 0 and KEY1 in ak and KEY2 in ak,
           "qga: virsh set-user-sshkeys wrote both keys to authorized_keys")
        # libvirt 9.0's virsh prints the keys with no separator between them.
        r = virsh("get-user-sshkeys", name, USER)
        is_eq((r.returncode, r.stdout.strip() in (KEY1 + KEY2, KEY2 + KEY1)), (0, True),
              "qga: virsh get-user-sshkeys lists them")
        with open(keys, "w") as f:
            f.write(KEY1 + "\n")
        r = virsh("set-user-sshkeys", name, USER, "--remove", "--file", keys)
        r2 = virsh("get-user-sshkeys", name, USER)
        is_eq((r.returncode, [x for x in r2.stdout.splitlines() if x.strip()]), (0, [KEY2]),
              "qga: virsh set-user-sshkeys --remove took KEY1 out")
        r = virsh("set-user-sshkeys", name, USER, "--reset")
        ak = gsh("cat ~%s/.ssh/authorized_keys" % USER)["out"].strip()
        is_eq((r.returncode, ak), (0, ""), "qga: virsh set-user-sshkeys --reset emptied it")

        loop.stop()
        res = loop.results
        bad = [e for good, e in res if not good]
        ok(len(res) > 0 and not bad, "qga: a host client over vsock was served meanwhile "
           "(%d ping+exec rounds, %d failed%s)" % (len(res), len(bad),
                                                   ": " + bad[0] if bad else ""))
        loop = None

        t0 = time.monotonic()
        r = virsh("shutdown", name, "--mode", "agent")
        ok(r.returncode == 0, "qga: virsh shutdown --mode agent")
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if name not in lv.virsh("list", "--name").stdout.split():
                gone = True
                break
            time.sleep(0.5)
        timings["agent shutdown"] = time.monotonic() - t0
        ok(gone, "qga: the domain went away after the agent shutdown (%.1f s)"
           % timings["agent shutdown"])
    finally:
        if loop:
            loop.stop()
        if not gone:
            ctl.sh("kill $(cat /run/glqga.pid)")
            ctl.result(h)
    return gone
