#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""guestlink as the Debian packages install it, in a real VM. Speaks TAP.

The guest (the VM suite's: Debian's kernel, the host's root under a tmpfs
overlay, systemd as PID 1, but none of the build tree's units) installs the
six .debs with dpkg -i, as `apt install` on a running VM would: the agent
is socket-activated from /lib/systemd/system by the socket unit the package
enabled. The host runs the backend from the vhost-user-vsock package (the
ExecStart of its template unit) and the CLI from the guestlink package, both
unpacked with dpkg -x (the packages are not installed on the host). Then
dpkg --purge in the guest must remove every file the packages installed.

Run by `make check-packages`; the .debs come from $GUESTLINK_DEBS (default
tests/pkg/debs in the build tree; tests/pkg/build-debs.sh builds them).
"""

import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from glvm import TOP_BUILDDIR, TOP_SRCDIR, load_vm_harness  # noqa: E402
import gltest  # noqa: E402
from gltest import diag, is_eq, ok  # noqa: E402


H = load_vm_harness()
PACKAGES = ["guestlink-agent", "vhost-user-vsock", "guestlink", "libguestlink0",
            "libguestlink-dev", "python3-guestlink"]
TIMEOUT = int(os.environ.get("GUESTLINK_VM_TIMEOUT", 1200))
ADMINDIR = "/var/lib/guestlink-pkgtest/dpkg"


def debs_dir():
    d = os.environ.get("GUESTLINK_DEBS", os.path.join(TOP_BUILDDIR, "tests", "pkg", "debs"))
    return os.path.abspath(d)


def deb(d, name):
    found = [p for p in glob.glob(os.path.join(d, name + "_*.deb"))]
    if len(found) != 1:
        raise RuntimeError("want one %s_*.deb in %s, found %d" % (name, d, len(found)))
    return found[0]


class PackagedVM(H.VM):
    """The suite's VM with the backend of the vhost-user-vsock package."""

    def __init__(self, hostroot, *a, **kw):
        super().__init__(*a, **kw)
        self.hostroot = hostroot

    def backend_argv(self):
        """The ExecStart of the package's vhost-user-vsock@.service for instance
        "vm", its binary taken from the unpacked package, /run/guestlink/ being
        this run's directory; the Environment= defaults as systemd would set them."""
        unit = os.path.join(self.hostroot, "lib", "systemd", "system", "vhost-user-vsock@.service")
        with open(unit) as f:
            text = f.read()
        env = dict(re.findall(r"^Environment=(\w+)=(\S*)$", text, re.M))
        argv = H.unit_exec_start(unit)
        out = [self.hostroot + argv[0]]
        for a in argv[1:]:
            a = a.replace("%i", "vm").replace("/run/guestlink/", self.work + "/")
            m = re.fullmatch(r"\$(\w+)", a)
            if m:  # systemd splits an unbraced $VAR into words
                out += env.get(m.group(1), "").split()
                continue
            out.append(re.sub(r"\$\{(\w+)\}", lambda m: env.get(m.group(1), ""), a))
        return out


def sh(vm, cmd, timeout=120):
    H.log("guest: " + cmd[:100])
    r = vm.ctl.sh(cmd, timeout=timeout)
    return r["rc"], r["out"], r["err"]


def main():
    def on_alarm(signum, frame):
        ok(False, "whole package test exceeded its hard timeout of %d s" % TIMEOUT)
        raise SystemExit(1)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_alarm)
    signal.alarm(TIMEOUT)

    d = debs_dir()
    debs = {p: deb(d, p) for p in PACKAGES}
    # The guest sees the host's root: the .debs must be where it can read them
    # (not under the host's /tmp, which the guest replaces).
    cache = os.environ.get("GUESTLINK_VM_CACHE", H.build_bin("tests", "vm", "cache"))
    artifacts = H.build_bin("tests", "pkg", "artifacts")
    shutil.rmtree(artifacts, ignore_errors=True)
    os.makedirs(artifacts)
    work = tempfile.mkdtemp(prefix="glpkg.", dir="/tmp")
    hostroot = os.path.join(work, "root")
    vm = None
    try:
        for p in ("vhost-user-vsock", "guestlink"):
            H.run(["dpkg-deb", "-x", debs[p], hostroot])
        cli = os.path.join(hostroot, "usr", "bin", "guestlink")
        kernel, kver, moddir = H.kernel_fetch(cache)
        # A guest without the build tree's agent units: only the package's.
        initrd = H.initramfs_build(work, kver, moddir, False)
        vm = PackagedVM(hostroot, work, artifacts, kernel, initrd, True)
        diag("backend: %s" % " ".join(vm.backend_argv()))
        vm.start_backend()
        vm.start_qemu()
        booted = vm.wait_booted()
        ok(booted, "guest booted (no agent units of the build tree)")
        if not booted:
            return
        diag("boot: %.1f s" % vm.boot_seconds)

        diag("systemd-detect-virt: " + sh(vm, "systemd-detect-virt")[1].strip())
        rc, out, _ = sh(vm, "echo \"[$(systemctl show -P FragmentPath guestlink-agent.socket)]\"; "
                        "ls -d /run/systemd/system/guestlink-agent.socket "
                        "/run/systemd/system/guestlink-agent.service 2>/dev/null | wc -l")
        is_eq(out.split(), ["[]", "0"], "before install the guest knows no guestlink-agent unit "
              "(only the harness's drop-in resetting ConditionVirtualization)")

        # dpkg in the guest writes to its tmpfs overlay. It keeps its own
        # database (--admindir): loading the host's, thousands of files over
        # 9p under TCG, takes minutes. So dependencies are not checked against
        # it (--force-depends: they are installed, the guest is the host's
        # root), and "which paths were there before" is asked before install.
        paths = set()
        for p in PACKAGES:
            for ln in H.run(["dpkg-deb", "-c", debs[p]]).stdout.splitlines():
                name = ln.split(None, 5)[5].split(" -> ")[0]
                paths.add("/" + name.lstrip("./").rstrip("/") if name not in ("./", ".") else "/")
        paths.discard("/")
        quoted = " ".join("'%s'" % p for p in sorted(paths))
        rc, out, _ = sh(vm, "for p in %s; do [ -e \"$p\" ] && echo \"$p\"; done; true" % quoted)
        before = set(out.split())
        diag("%d paths in the packages, %d of them (directories) exist before install"
             % (len(paths), len(before)))
        dpkg = "dpkg --admindir=%s" % ADMINDIR
        names = " ".join(debs[p] for p in PACKAGES)
        # A docker host's policy-rc.d (exit 101: "no daemons during docker
        # build") is the host's, not the guest's: without it deb-systemd-invoke
        # starts the socket as on any machine.
        sh(vm, "rm -f /usr/sbin/policy-rc.d")
        rc, out, err = sh(vm, "mkdir -p {a}/info {a}/updates {a}/triggers && touch {a}/status "
                          "{a}/available && DEBIAN_FRONTEND=noninteractive {d} --force-depends "
                          "-i {n}".format(a=ADMINDIR, d=dpkg, n=names), timeout=600)
        ok(rc == 0, "dpkg -i of the six packages in the guest")
        if rc:
            diag(out[-1500:] + err[-1500:])
            return
        # The ldconfig trigger (libc-bin's, unknown to the private database).
        sh(vm, "ldconfig")
        rc, out, _ = sh(vm, "dpkg-query --admindir=%s -W -f '${Package} ${Status}\\n' %s"
                        % (ADMINDIR, " ".join(PACKAGES)))
        is_eq(sorted(ln for ln in out.splitlines() if ln.endswith("install ok installed")),
              sorted("%s install ok installed" % p for p in PACKAGES), "all six installed")

        rc, out, _ = sh(vm, "systemctl is-enabled guestlink-agent.socket; "
                        "systemctl is-active guestlink-agent.socket; "
                        "systemctl is-active guestlink-agent.service; "
                        "systemctl show -P FragmentPath guestlink-agent.socket")
        is_eq(out.split(), ["enabled", "active", "inactive",
                            "/lib/systemd/system/guestlink-agent.socket"],
              "the package enabled and started the socket from /lib/systemd/system; "
              "the agent waits for its first connection")
        rc, out, _ = sh(vm, "getent group guestlink")
        ok(rc == 0 and out.startswith("guestlink:"),
           "vhost-user-vsock's postinst created the guestlink group (sysusers.d): %s"
           % out.strip())

        def glcli(*args, timeout=120, stdin=None):
            return subprocess.run([cli, "-a", "hybrid:%s:%d" % (vm.uds, H.AGENT_PORT)]
                                  + list(args), capture_output=True, text=True,
                                  timeout=timeout, input=stdin)

        r = glcli("ping")
        is_eq(r.returncode, 0, "the packaged CLI pings the packaged agent through the "
              "packaged backend (%s)" % (r.stdout.strip() or r.stderr.strip()))
        rc, out, _ = sh(vm, "systemctl is-active guestlink-agent.service; "
                        "readlink /proc/$(systemctl show -P MainPID guestlink-agent.service)/exe")
        is_eq(out.split(), ["active", "/usr/sbin/guestlink-agent"],
              "the first connection started the agent /usr/sbin/guestlink-agent")
        r = glcli("exec", "--", "dpkg-query", "--admindir=" + ADMINDIR, "-W", "-f", "${Version}",
                  "guestlink-agent")
        version = os.path.basename(debs["guestlink-agent"]).split("_")[1]
        is_eq((r.returncode, r.stdout), (0, version),
              "exec: the agent reports its package version")
        with open(os.path.join(TOP_SRCDIR, "agent", "agent.conf")) as f:
            shipped = f.read()
        r = glcli("cp", "--quiet", "guest:/etc/guestlink/agent.conf",
                  os.path.join(work, "agent.conf"))
        got = open(os.path.join(work, "agent.conf")).read() if r.returncode == 0 else None
        ok(got == shipped, "cp: /etc/guestlink/agent.conf in the guest is the shipped file")
        r = glcli("methods")
        ok(r.returncode == 0 and "agent.ping" in r.stdout and "example-uptime" not in r.stdout,
           "the example plugin is not a live method")
        rc, out, _ = sh(vm, "ls /usr/lib/guestlink/methods.d | wc -l; "
                        "test -x /usr/share/doc/guestlink-agent/examples/example-uptime && echo ex")
        is_eq(out.split(), ["0", "ex"], "plugin dir empty; the example is in the agent's docs")

        # libguestlink-dev: the README's example builds against the installed
        # headers, .pc and .so, and runs against the installed library.
        example = os.path.join(TOP_SRCDIR, "tests", "proto", "example-client.c")
        rc, out, err = sh(vm, "cd /var/tmp && cc -o example %s $(pkg-config --cflags --libs "
                          "guestlink libevent) && readlink -f \"$(ldd ./example | "
                          "awk '/libguestlink/ { print $3 }')\"" % example, timeout=300)
        is_eq((rc, out.strip()), (0, "/usr/lib/x86_64-linux-gnu/libguestlink.so.0.0.0"),
              "the example client builds with libguestlink-dev; ld.so resolves the packaged "
              "libguestlink.so.0")
        if rc:
            diag(err[-800:])
        rc, out, _ = sh(vm, "ls /usr/lib/*/libguestlink.la 2>/dev/null | wc -l")
        is_eq(out.strip(), "0", "no .la file installed")

        # python3-guestlink: Debian's python3 imports the packaged module, whose
        # address parser agrees with the CLI's.
        rc, out, err = sh(vm, "cd / && /usr/bin/python3 -c 'import guestlink, guestlink.aio; "
                          "print(guestlink.__file__)'")
        is_eq((rc, out.strip()), (0, "/usr/lib/python3/dist-packages/guestlink/__init__.py"),
              "python3-guestlink: Debian's python3 imports the packaged module")

        # dpkg --purge: nothing of what dpkg -L listed is left, but for the
        # directories that were there before.
        rc, out, _ = sh(vm, "%s -L %s" % (dpkg, " ".join(PACKAGES)))
        listed = sorted(set(p for p in out.splitlines() if p.startswith("/") and p != "/."))
        is_eq(sorted(set(listed) ^ paths), [], "dpkg -L lists what the .debs contain (%d paths)"
              % len(listed))
        rc, out, err = sh(vm, "DEBIAN_FRONTEND=noninteractive %s --purge %s"
                          % (dpkg, " ".join(PACKAGES)), timeout=600)
        ok(rc == 0, "dpkg --purge of the six packages")
        if rc:
            diag(out[-800:] + err[-800:])
        quoted = " ".join("'%s'" % p for p in listed)
        rc, out, _ = sh(vm, "for p in %s; do { [ -e \"$p\" ] || [ -L \"$p\" ]; } && echo \"$p\"; "
                        "done; true" % quoted)
        is_eq(sorted(set(out.split()) - before), [],
              "after purge nothing the packages installed is left")
        is_eq(sorted(before - set(out.split())), [], "and the directories that were there stay")
        rc, out, _ = sh(vm, "ls -d /etc/guestlink /etc/systemd/system/sockets.target.wants/"
                        "guestlink-agent.socket 2>/dev/null | wc -l; "
                        "systemctl is-active guestlink-agent.socket guestlink-agent.service; "
                        "pgrep -x guestlink-agent | wc -l")
        is_eq(out.split(), ["0", "inactive", "inactive", "0"],
              "purge removed the conffile and the enablement, stopped socket and agent")
        r = glcli("ping", timeout=60)
        is_eq(r.returncode, 255, "after purge nothing answers on the agent port")
    except SystemExit:
        pass
    except Exception as e:  # noqa: BLE001
        ok(False, "harness: %s: %s" % (type(e).__name__, e))
    finally:
        signal.alarm(0)
        if vm:
            vm.stop()
        gltest.stop_all()
        if gltest._failed and vm:
            diag("---- guest console (tail) ----")
            diag("\n".join(vm.console_text().splitlines()[-40:]))
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
    gltest.done()
