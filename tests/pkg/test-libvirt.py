#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""guestlink under libvirt: libvirtd and virtlogd started here (no systemd as
PID 1), contrib/libvirt/qemu-hook installed as libvirt's qemu hook, a
transient domain (virsh create) booting the VM suite's kernel, initramfs and
9p root with the agent units in the guest. The hook starts the backend
(the ExecStart of units/vhost-user-vsock@.service, run directly) before QEMU
and stops it after; QEMU runs as libvirt-qemu. Then `guestlink -m <domain>`
ping, exec and cp both ways; then libvirt's agent commands on the domain's
org.qemu.guest_agent.0 channel, answered by guestlink-agent
(tests/pkg/libvirt_qga.py), ending in `virsh shutdown --mode agent`; the end
of the domain must leave no backend process. Speaks TAP; run by
`make check-libvirt` (as root).
"""

import grp
import hashlib
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, HERE)
from glvm import TOP_SRCDIR, load_vm_harness  # noqa: E402
import gltest  # noqa: E402
import glvirt  # noqa: E402
import libvirt_qga  # noqa: E402
from gltest import diag, is_eq, ok  # noqa: E402

TIMEOUT = int(os.environ.get("GUESTLINK_LIBVIRT_TIMEOUT", 900))
RUNDIR = "/run/guestlink"


H = load_vm_harness()


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def backend_pids(vhost_sock):
    """PIDs of processes whose command line names this domain's vhost-user socket."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if ("--socket-path=%s" % vhost_sock).encode() in argv:
            pids.append(int(d))
    return pids


def option(argv, name):
    """The value after name in an argv list (e.g. -append)."""
    return argv[argv.index(name) + 1]


def main():
    def on_alarm(signum, frame):
        ok(False, "whole libvirt test exceeded its hard timeout of %d s" % TIMEOUT)
        raise SystemExit(1)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_alarm)
    signal.alarm(TIMEOUT)

    if os.geteuid() != 0:
        gltest.skip_all("libvirtd needs root")
    for prog in ("libvirtd", "virtlogd", "virsh"):
        if not shutil.which(prog):
            gltest.skip_all("%s not installed (tests/deps.sh installs it)" % prog)
    cli = H.build_bin("host", "guestlink")
    backend = H.build_bin("backend", "vhost-user-vsock")
    unit = H.unit_file("vhost-user-vsock@.service")

    name = "gltest-%d" % os.getpid()
    vhost_sock = os.path.join(RUNDIR, name + ".vhost.sock")
    cache = os.environ.get("GUESTLINK_VM_CACHE", H.build_bin("tests", "vm", "cache"))
    artifacts = H.build_bin("tests", "pkg", "artifacts-libvirt")
    shutil.rmtree(artifacts, ignore_errors=True)
    os.makedirs(artifacts)
    # QEMU runs as libvirt-qemu: its files must be reachable by it.
    work = tempfile.mkdtemp(prefix="glvirt.", dir="/tmp")
    os.chmod(work, 0o755)
    lv = glvirt.Libvirt(work)
    t = {}
    t_all = time.monotonic()
    ctl = None
    try:
        kernel, kver, moddir = H.kernel_fetch(cache)
        # libvirt hands kernel and initrd to libvirt-qemu while the domain
        # runs: a private copy, not the shared cache.
        shutil.copy(kernel, os.path.join(work, "vmlinuz"))
        kernel = os.path.join(work, "vmlinuz")
        initrd = H.initramfs_build(work, kver, moddir, True)
        # The kernel command line and the 9p root exactly as the VM suite boots them.
        suite_argv = H.VM(work, artifacts, kernel, initrd, False).qemu_argv()
        cmdline = option(suite_argv, "-append")
        # -virtfs as -fsdev plus a JSON -device: like any plain -device, the
        # -virtfs form takes PCI slot 1, which libvirt's root ports need.
        virtfs = option(suite_argv, "-virtfs").split(",")
        tag = [o for o in virtfs if o.startswith("mount_tag=")][0].split("=", 1)[1]
        fsdev = ",".join([virtfs[0], "id=glfs"] + [o for o in virtfs[1:]
                                                   if not o.startswith("mount_tag=")])

        with open(os.path.join(work, "hook.conf"), "w") as f:
            f.write("# The build tree's unit and backend; no systemd to ask.\n"
                    "GUESTLINK_UNIT='%s'\nGUESTLINK_BACKEND='%s'\nGUESTLINK_START=direct\n"
                    "GUESTLINK_LOGDIR='%s'\n" % (unit, backend, artifacts))
        lv.install_hook("#!/bin/sh\nGUESTLINK_HOOK_CONF='%s'; export GUESTLINK_HOOK_CONF\n"
                        "exec '%s' \"$@\"\n" % (os.path.join(work, "hook.conf"),
                                                os.path.join(TOP_SRCDIR, "contrib", "libvirt",
                                                             "qemu-hook")))
        t0 = time.monotonic()
        lv.start()
        t["daemons"] = time.monotonic() - t0
        ok(True, "virtlogd and libvirtd started without systemd (%.1f s to virsh version)"
           % t["daemons"])

        xml = glvirt.domain_xml(
            name, kernel, initrd, cmdline,
            qemu_args=["-fsdev", fsdev,
                       "-device", '{"driver":"virtio-9p-pci","fsdev":"glfs","mount_tag":"%s"}' % tag,
                       "-chardev", "socket,id=guestlink-vu,path=%s" % vhost_sock,
                       "-device", '{"driver":"vhost-user-vsock-pci","chardev":"guestlink-vu",'
                       '"id":"guestlink-vsock"}'],
            devices=(glvirt.virtio_channel("org.guestlink.ctl")
                     + libvirt_qga.disk_xml(libvirt_qga.make_disk(work))),
            serial_log="/var/log/libvirt/qemu/%s-serial.log" % name, qga_channel=True)
        path = os.path.join(work, "domain.xml")
        with open(path, "w") as f:
            f.write(xml)
        t0 = time.monotonic()
        r = lv.virsh("create", path, timeout=180)
        t["create"] = time.monotonic() - t0
        ok(r.returncode == 0, "virsh create %s (%.1f s)" % (name, t["create"]))
        if r.returncode:
            diag(r.stderr.strip())
            return

        pids = backend_pids(vhost_sock)
        exe = os.readlink("/proc/%d/exe" % pids[0]) if len(pids) == 1 else None
        is_eq(exe, os.path.realpath(backend), "the hook started one backend for the domain")
        try:
            with open(os.path.join(RUNDIR, name + ".pid")) as f:
                is_eq(int(f.read()), pids[0] if pids else None, "its PID is in %s.pid" % name)
        except (OSError, ValueError) as e:
            ok(False, "its PID is in %s.pid: %s" % (name, e))
        st = os.stat(vhost_sock)
        is_eq((stat.S_IMODE(st.st_mode), grp.getgrgid(st.st_gid).gr_name),
              (0o660, "libvirt-qemu"), "the vhost-user socket is 0660, group libvirt-qemu")
        qemu_pid = None
        for ln in subprocess.run(["pgrep", "-a", "qemu-system"], capture_output=True,
                                 text=True).stdout.splitlines():
            if "guest=%s," % name in ln:
                qemu_pid = int(ln.split()[0])
        if qemu_pid:
            with open("/proc/%d/status" % qemu_pid) as f:
                uid = re.search(r"^Uid:\s+(\d+)", f.read(), re.M).group(1)
            diag("QEMU runs as uid %s" % uid)

        ctl = H.Ctl(lv.channel_path(name, "org.guestlink.ctl"))
        ctl.connect()
        t0 = time.monotonic()
        ready = ctl.wait_ready(H.BOOT_TIMEOUT)
        t["boot"] = time.monotonic() - t0
        ok(ready is not None, "guest booted under libvirt (%.1f s to its control channel)"
           % t["boot"])
        if not ready:
            return

        def gl(*args, timeout=120):
            return subprocess.run([cli, "-m", name] + list(args), capture_output=True,
                                  text=True, timeout=timeout)

        t0 = time.monotonic()
        r = gl("ping")
        t["ping"] = time.monotonic() - t0
        is_eq(r.returncode, 0, "guestlink -m %s ping (%.1f s, socket-activating the agent)"
              % (name, t["ping"]))
        if r.returncode:
            diag(r.stderr.strip())
            diag(ctl.sh("systemd-detect-virt; systemctl status --no-pager guestlink-agent.socket; "
                        "ls -l /dev/vsock")["out"])
        r = gl("exec", "--", "uname", "-r")
        is_eq((r.returncode, r.stdout.strip()), (0, kver), "guestlink exec -- uname -r")

        src = os.path.join(work, "cp-in")
        back = os.path.join(work, "cp-back")
        with open(src, "wb") as f:
            f.write(os.urandom(8 << 20))
        want = sha256(src)
        t0 = time.monotonic()
        r = gl("cp", "--quiet", src, "guest:/var/tmp/cp-test")
        g = ctl.sh("sha256sum /var/tmp/cp-test")
        is_eq((r.returncode, (g["out"].split() or [""])[0]), (0, want),
              "cp 8 MiB host->guest, SHA-256 equal (%.1f s)" % (time.monotonic() - t0))
        t0 = time.monotonic()
        r = gl("cp", "--quiet", "guest:/var/tmp/cp-test", back)
        ok(r.returncode == 0 and os.path.exists(back) and sha256(back) == want,
           "cp 8 MiB guest->host, SHA-256 equal (%.1f s)" % (time.monotonic() - t0))
        # libvirt's agent commands, answered by guestlink-agent; they end with
        # virsh shutdown --mode agent.
        gone = libvirt_qga.run(lv, name, ctl, cli, H, t)
        ctl.close()
        ctl = None

        t0 = time.monotonic()
        if not gone:
            r = lv.virsh("destroy", name, timeout=120)
            ok(r.returncode == 0, "virsh destroy %s" % name)
        deadline = time.monotonic() + 30
        while backend_pids(vhost_sock) and time.monotonic() < deadline:
            time.sleep(0.1)
        t["destroy"] = time.monotonic() - t0
        is_eq(backend_pids(vhost_sock), [], "no backend process left after the domain ended "
              "(%.1f s)" % t["destroy"])
        ok(not os.path.exists(os.path.join(RUNDIR, name + ".pid")), "the hook removed its PID file")
        r = gl("ping", timeout=30)
        is_eq(r.returncode, 255, "guestlink -m %s ping: cannot reach the agent (exit 255)" % name)
    except SystemExit:
        pass
    except Exception as e:  # noqa: BLE001
        ok(False, "harness: %s: %s" % (type(e).__name__, e))
    finally:
        signal.alarm(0)
        if ctl:
            ctl.close()
        libvirtd, virtlogd = lv.libvirtd, lv.virtlogd
        lv.stop()
        for p in backend_pids(vhost_sock):  # the hook failed to: count it, then clean up
            ok(False, "backend %d still running at the end" % p)
            os.kill(p, signal.SIGKILL)
        if libvirtd:
            ok(not libvirtd.alive() and not virtlogd.alive(), "libvirtd and virtlogd stopped by PID")
        for f in os.listdir(RUNDIR) if os.path.isdir(RUNDIR) else []:
            if f.startswith(name + "."):
                os.unlink(os.path.join(RUNDIR, f))
        for f in ("/var/log/libvirt/qemu/%s.log" % name,
                  "/var/log/libvirt/qemu/%s-serial.log" % name):
            if os.path.exists(f):
                shutil.copy(f, artifacts)
                os.unlink(f)
        shutil.copy(os.path.join(work, "libvirtd.log"), artifacts) \
            if os.path.exists(os.path.join(work, "libvirtd.log")) else None
        if gltest._failed:
            for f in sorted(os.listdir(artifacts)):
                with open(os.path.join(artifacts, f), errors="replace") as fh:
                    diag("---- %s (tail) ----" % f)
                    diag("\n".join(fh.read().splitlines()[-25:]))
        diag("timings: %s; total %.1f s" % (", ".join("%s %.1f s" % kv for kv in t.items()),
                                            time.monotonic() - t_all))
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
    gltest.done()
