#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""guestlink in a real VM: QEMU (TCG, vhost-user-vsock-pci) on our backend,
Debian's kernel, the host's root over 9p as the guest's root, systemd as PID 1
socket-activating the freshly built agent. Speaks TAP.

Run by `make check-vm` (top_builddir/top_srcdir in the environment), or by
hand: tests/vm/run-vm-tests.py [--keep] [--demo] [--timeout S].
Kernel cache: $GUESTLINK_VM_CACHE, else tests/vm/cache in the build tree.
"""

import argparse
import glob
import hashlib
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP_SRCDIR = os.path.abspath(os.environ.get("top_srcdir", os.path.join(HERE, "..", "..")))
TOP_BUILDDIR = os.path.abspath(os.environ.get("top_builddir", os.getcwd()))
sys.path.insert(0, os.path.join(TOP_SRCDIR, "tests", "lib"))
import gltest  # noqa: E402
from gltest import ok, is_eq, diag, Proc  # noqa: E402

AGENT_PORT = 9731
GUEST_CID = 3
QGA_VSOCK_PORT = 9800
BOOT_TIMEOUT = 240

# Guest modules we insmod, named by what we need; dependencies are added from
# modinfo and ordered before their users.
GUEST_MODULES = ["virtio_pci", "vmw_vsock_virtio_transport", "9pnet_virtio", "9p", "overlay",
                 "virtio_console"]

# Units that only slow a TCG boot down or wait for hardware the VM lacks.
MASKED_UNITS = [
    "systemd-udevd.service", "systemd-udevd-control.socket", "systemd-udevd-kernel.socket",
    "systemd-udev-trigger.service", "systemd-udev-settle.service", "systemd-timesyncd.service",
    "systemd-pstore.service", "systemd-firstboot.service", "systemd-repart.service",
    "systemd-random-seed.service", "systemd-journal-flush.service", "systemd-update-utmp.service",
    "systemd-binfmt.service", "proc-sys-fs-binfmt_misc.automount", "systemd-machine-id-commit.service",
    "systemd-hwdb-update.service", "ldconfig.service", "systemd-journal-catalog-update.service",
    "systemd-boot-system-token.service", "systemd-pcrphase.service",
    "systemd-pcrphase-sysinit.service", "systemd-networkd.service", "systemd-resolved.service",
    "apt-daily.timer", "apt-daily-upgrade.timer", "dpkg-db-backup.timer", "e2scrub_all.timer",
    "man-db.timer", "fstrim.timer", "systemd-tmpfiles-clean.timer",
    "cryptsetup.target", "veritysetup.target", "integritysetup.target",
]


def log(msg):
    """Progress for people (stderr: TAP stays on stdout)."""
    print("[vm %6.1fs] %s" % (time.monotonic() - T0, msg), file=sys.stderr, flush=True)


T0 = time.monotonic()


def run(argv, **kw):
    kw.setdefault("check", True)
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    return subprocess.run(argv, **kw)


def build_bin(*parts):
    return os.path.join(TOP_BUILDDIR, *parts)


def program(relpath):
    """The real ELF behind a libtool wrapper, plus the library path it needs."""
    p = build_bin(relpath)
    if not os.path.exists(p):
        return None, None
    d, b = os.path.split(p)
    real = os.path.join(d, ".libs", b)
    with open(p, "rb") as f:
        is_elf = f.read(4) == b"\x7fELF"
    if not is_elf and os.path.exists(real):
        return real, build_bin("proto", ".libs")
    return p, None


# ---------------------------------------------------------------- kernel


def kernel_fetch(cache):
    """Debian's kernel package, downloaded and unpacked (never installed)."""
    os.makedirs(cache, exist_ok=True)
    kdir = os.path.join(cache, "kernel")
    vm = glob.glob(os.path.join(kdir, "boot", "vmlinuz-*"))
    if not vm:
        def depends():
            dep = run(["apt-cache", "depends", "linux-image-amd64"], check=False).stdout
            return [ln.split(":", 1)[1].strip() for ln in dep.splitlines()
                    if ln.strip().startswith("Depends:") and "linux-image-" in ln]
        pkgs = depends()
        if not pkgs and os.geteuid() == 0:
            log("apt-get update (no package lists yet)")
            run(["apt-get", "update", "-qq"])
            pkgs = depends()
        if not pkgs:
            raise RuntimeError("apt-cache names no kernel for linux-image-amd64 (apt-get update?)")
        log("downloading %s" % pkgs[0])
        run(["apt-get", "download", pkgs[0]], cwd=cache)
        deb = glob.glob(os.path.join(cache, pkgs[0] + "_*.deb"))[0]
        tmp = kdir + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        run(["dpkg", "-x", deb, tmp])
        os.rename(tmp, kdir)
        os.unlink(deb)
        vm = glob.glob(os.path.join(kdir, "boot", "vmlinuz-*"))
    kver = os.path.basename(vm[0])[len("vmlinuz-"):]
    moddir = os.path.join(kdir, "lib", "modules", kver)
    if not os.path.exists(os.path.join(moddir, "modules.dep")):
        run(["depmod", "-b", kdir, kver])
    return vm[0], kver, moddir


def modules_ordered(moddir, wanted):
    paths = {}
    for p in glob.glob(os.path.join(moddir, "kernel", "**", "*.ko*"), recursive=True):
        paths[os.path.basename(p).split(".ko")[0].replace("-", "_")] = p
    order, seen = [], set()

    def visit(m):
        m = m.replace("-", "_")
        if m in seen:
            return
        seen.add(m)
        if m not in paths:
            raise RuntimeError("kernel module %s not found" % m)
        deps = run(["modinfo", "-F", "depends", paths[m]]).stdout.strip()
        for d in filter(None, deps.split(",")):
            visit(d)
        order.append(m)

    for m in wanted:
        visit(m)
    return [(m, paths[m]) for m in order]


# ---------------------------------------------------------------- guest image


def unit_exec_start(path):
    with open(path) as f:
        for ln in f:
            if ln.startswith("ExecStart=") and ln.strip() != "ExecStart=":
                return ln.split("=", 1)[1].strip().lstrip("@-:+!").split()
    return None


def unit_file(name):
    """A unit as installed: generated in the build tree, else the source's own."""
    for p in (build_bin("units", name), os.path.join(TOP_SRCDIR, "units", name)):
        if os.path.exists(p):
            return p
    return None


def all_units():
    names = set()
    for p in glob.glob(os.path.join(TOP_SRCDIR, "units", "*")):
        n = os.path.basename(p)
        if n.endswith(".in"):
            n = n[:-3]
        if n.endswith((".service", ".socket")):
            names.add(n)
    return sorted(n for n in names if unit_file(n))


def guest_units(udir, with_agent):
    """Units under test plus the harness's own, written to /run/systemd/system."""
    os.makedirs(udir)
    wants = ["guestlink-vmtest-ctl.service"]
    if with_agent:
        agent, libdir = program("agent/guestlink-agent")
        for u in ("guestlink-agent.socket", "guestlink-agent.service"):
            shutil.copy(unit_file(u), udir)
        argv = unit_exec_start(unit_file("guestlink-agent.service"))
        argv = [agent] + (argv[1:] if argv else [])
        os.makedirs(os.path.join(udir, "guestlink-agent.service.d"))
        with open(os.path.join(udir, "guestlink-agent.service.d", "vmtest.conf"), "w") as f:
            f.write("# Run the freshly built agent from the build tree.\n[Service]\n"
                    "ExecStart=\nExecStart=%s\n" % " ".join(argv))
            # The build tree must stay visible whatever the hardening hides; only
            # then, as a private mount namespace would hide mounts the tests make.
            with open(unit_file("guestlink-agent.service")) as u:
                if re.search(r"^(Protect(System|Home)|PrivateTmp|TemporaryFileSystem|"
                             r"InaccessiblePaths)=", u.read(), re.M):
                    f.write("BindReadOnlyPaths=%s %s\n" % (TOP_BUILDDIR, TOP_SRCDIR))
            if libdir:
                f.write("Environment=LD_LIBRARY_PATH=%s\n" % libdir)
        wants.append("guestlink-agent.socket")
    with open(os.path.join(udir, "guestlink-vmtest.target"), "w") as f:
        f.write("[Unit]\nDescription=guestlink VM test\nRequires=basic.target\n"
                "After=basic.target sockets.target\nWants=%s\nAllowIsolate=yes\n" % " ".join(wants))
    with open(os.path.join(udir, "guestlink-vmtest-ctl.service"), "w") as f:
        f.write("[Unit]\nDescription=guestlink VM test control channel\n"
                "After=sockets.target %s\n[Service]\nExecStart=/usr/bin/python3 %s\n" % (
                    " ".join(w for w in wants if w.endswith(".socket")),
                    os.path.join(TOP_SRCDIR, "tests", "vm", "guest", "vmtest-ctl.py")))
    for u in MASKED_UNITS:
        os.symlink("/dev/null", os.path.join(udir, u))
    # The guest's root is the host's: on a docker host it has /.dockerenv, so
    # systemd in the guest detects a container (and must: only then does it
    # honour systemd.unit= from /init), and the agent socket's
    # ConditionVirtualization=vm would keep it from listening. Reset for the
    # test, whichever guestlink-agent.socket the guest uses (build tree or package).
    os.makedirs(os.path.join(udir, "guestlink-agent.socket.d"))
    with open(os.path.join(udir, "guestlink-agent.socket.d", "vmtest.conf"), "w") as f:
        f.write("[Unit]\nConditionVirtualization=\n")


def initramfs_build(work, kver, moddir, with_agent):
    root = os.path.join(work, "initramfs")
    for d in ("bin", "dev", "proc", "sys", "modules"):
        os.makedirs(os.path.join(root, d))
    busybox = shutil.which("busybox") or "/bin/busybox"
    shutil.copy(busybox, os.path.join(root, "bin", "busybox"))
    for applet in run([busybox, "--list"]).stdout.split():
        if applet != "busybox":
            os.symlink("busybox", os.path.join(root, "bin", applet))
    mods = modules_ordered(moddir, GUEST_MODULES)
    for m, p in mods:
        if p.endswith(".ko"):
            shutil.copy(p, os.path.join(root, "modules", m + ".ko"))
        else:
            raise RuntimeError("compressed module %s: unsupported" % p)
    shutil.copy(os.path.join(TOP_SRCDIR, "tests", "vm", "guest", "init"), os.path.join(root, "init"))
    os.chmod(os.path.join(root, "init"), 0o755)
    with open(os.path.join(root, "vmtest.conf"), "w") as f:
        f.write("MODULES='%s'\nKVER='%s'\nMODDIR='%s'\nTARGET='guestlink-vmtest.target'\n"
                "HOSTNAME_VM='guestlink-vm'\nBIND_DIRS='%s'\n" % (
                    " ".join(m for m, _ in mods), kver, moddir,
                    " ".join(sorted({TOP_BUILDDIR, TOP_SRCDIR, moddir}))))
    guest_units(os.path.join(root, "units"), with_agent)
    out = os.path.join(work, "initramfs.img")
    files = run(["find", "."], cwd=root).stdout
    with open(out, "wb") as o:
        cp = subprocess.Popen(["cpio", "-o", "-H", "newc", "--quiet"], cwd=root,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        gz = subprocess.Popen(["gzip", "-1"], stdin=cp.stdout, stdout=o)
        cp.stdout.close()
        cp.stdin.write(files.encode())
        cp.stdin.close()
        if cp.wait() != 0 or gz.wait() != 0:
            raise RuntimeError("cpio/gzip failed")
    return out


# ---------------------------------------------------------------- control channel


class Ctl:
    """The guest's control channel over virtio-serial (tests/vm/guest/vmtest-ctl.py)."""

    def __init__(self, path):
        self.path = path
        self.s = None
        self.lock = threading.Lock()
        self.waiters = {}
        self.next_id = 1
        self.ready = queue.Queue()

    def connect(self, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.s.connect(self.path)
                break
            except OSError:
                self.s.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self):
        buf = b""
        while True:
            try:
                chunk = self.s.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                self.ready.put(None)
                with self.lock:
                    for q in self.waiters.values():
                        q.put(None)
                return
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                if msg.get("ready"):
                    self.ready.put(msg)
                    continue
                with self.lock:
                    q = self.waiters.pop(msg.get("id"), None)
                if q:
                    q.put(msg)

    def wait_ready(self, timeout):
        try:
            return self.ready.get(timeout=timeout)
        except queue.Empty:
            return None

    def start(self, cmd, timeout=60, stdin=""):
        """Send a command; returns a handle for result()."""
        q = queue.Queue()
        with self.lock:
            i = self.next_id
            self.next_id += 1
            self.waiters[i] = q
        self.s.sendall((json.dumps({"id": i, "cmd": cmd, "timeout": timeout,
                                    "stdin": stdin}) + "\n").encode())
        return (q, timeout)

    def result(self, h):
        q, timeout = h
        try:
            r = q.get(timeout=timeout + 10)
        except queue.Empty:
            r = None
        return r or {"rc": -1, "out": "", "err": "no answer from the guest"}

    def sh(self, cmd, timeout=60, stdin=""):
        return self.result(self.start(cmd, timeout, stdin))

    def close(self):
        if self.s:
            self.s.close()


# ---------------------------------------------------------------- the VM


class VM:
    def __init__(self, work, artifacts, kernel, initrd, with_vsock):
        self.work = work
        self.artifacts = artifacts
        self.kernel = kernel
        self.initrd = initrd
        self.with_vsock = with_vsock
        self.vhost_sock = os.path.join(work, "vm.vhost.sock")
        self.uds = os.path.join(work, "vm.vsock")
        self.console = os.path.join(artifacts, "console.log")
        self.backend = None
        self.qemu = None
        self.ctl = None
        self.boots = 0
        self.bench_path = os.path.join(work, "bench.sock")
        self.qga_serial_path = os.path.join(work, "qga.sock")
        self.bench_sock = None
        self.disk = os.path.join(work, "disk.img")

    def backend_argv(self):
        """The arguments of units/vhost-user-vsock@.service for instance "vm", with
        this run's directory for /run/guestlink/ and the build tree's binary."""
        backend, _ = program("backend/vhost-user-vsock")
        unit = unit_file("vhost-user-vsock@.service")
        if not unit:
            return [backend, "--uds-path=%s" % self.uds, "--guest-cid=%d" % GUEST_CID]
        # What /etc/guestlink/%i.conf would set; extra options may come from our
        # own environment (e.g. VHOST_USER_VSOCK_OPTS=--buffer-size=N make check-vm).
        env = {"GUEST_CID": str(GUEST_CID),
               "VHOST_USER_VSOCK_OPTS": os.environ.get("VHOST_USER_VSOCK_OPTS", "")}
        with open(unit) as f:
            text = f.read()
        for m in re.finditer(r"^Environment=(\w+)=(\S*)$", text, re.M):
            env.setdefault(m.group(1), m.group(2))
        argv = []
        for a in unit_exec_start(unit)[1:]:
            a = a.replace("%i", "vm").replace("/run/guestlink/", self.work + "/")
            m = re.fullmatch(r"\$(\w+)", a)
            if m:  # systemd splits an unbraced $VAR into words
                argv += env.get(m.group(1), "").split()
                continue
            argv.append(re.sub(r"\$\{(\w+)\}", lambda m: env.get(m.group(1), ""), a))
        return [backend] + argv

    def start_backend(self):
        _, libdir = program("backend/vhost-user-vsock")
        # systemd-socket-activate passes on only the environment it is told to.
        env = ["-E", "LD_LIBRARY_PATH=%s" % libdir] if libdir else []
        self.backend_log = open(os.path.join(self.artifacts, "backend.log"), "a")
        self.backend = Proc(["systemd-socket-activate", "-l", self.vhost_sock] + env + ["--"]
                            + self.backend_argv(), stdout=self.backend_log,
                            stderr=subprocess.STDOUT)
        if not gltest.wait_for_path(self.vhost_sock, 10, self.backend):
            raise RuntimeError("backend socket %s did not appear" % self.vhost_sock)

    def qemu_argv(self):
        ctl = os.path.join(self.work, "ctl.sock")
        # debug-threads names the vCPU threads ("CPU n/TCG"): the bench's CPU model
        # tells them from the rest of QEMU.
        a = ["qemu-system-x86_64", "-nodefaults", "-display", "none", "-accel", "tcg",
             "-name", "guestlink-vm,debug-threads=on",
             "-machine", "q35,memory-backend=mem", "-smp", "2", "-m", "512M",
             "-object", "memory-backend-memfd,id=mem,size=512M,share=on",
             "-kernel", self.kernel, "-initrd", self.initrd,
             "-append", "console=ttyS0 quiet loglevel=4 fstab=no systemd.gpt_auto=0 "
             "systemd.show_status=1 systemd.status_unit_format=name systemd.firstboot=no rw",
             "-serial", "file:%s" % self.console,
             "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,"
             "multidevs=remap",
             "-device", "virtio-serial-pci,id=vser",
             "-chardev", "socket,id=ctl,path=%s,server=on,wait=off" % ctl,
             "-device", "virtserialport,bus=vser.0,chardev=ctl,name=org.guestlink.ctl",
             # For the benchmark: a raw port, and qemu-guest-agent's usual port.
             "-chardev", "socket,id=bench,path=%s,server=on,wait=off" % self.bench_path,
             "-device", "virtserialport,bus=vser.0,chardev=bench,name=org.guestlink.bench",
             "-chardev", "socket,id=qga,path=%s,server=on,wait=off" % self.qga_serial_path,
             "-device", "virtserialport,bus=vser.0,chardev=qga,name=org.qemu.guest_agent.0",
             "-qmp", "unix:%s,server=on,wait=off" % os.path.join(self.work, "qmp.sock"),
             # A guest reboot resets the machine (the reboot scenario); poweroff ends QEMU.
             "-action", "reboot=reset,shutdown=poweroff"]
        if os.path.exists(self.disk):
            a += ["-drive", "file=%s,format=raw,if=none,id=d0,cache=unsafe" % self.disk,
                  "-device", "virtio-blk-pci,drive=d0"]
        if self.with_vsock:
            a += ["-chardev", "socket,id=vu,path=%s" % self.vhost_sock,
                  "-device", "vhost-user-vsock-pci,chardev=vu"]
        return a

    def start_qemu(self):
        if os.path.exists(self.console):
            os.rename(self.console, self.console + ".%d" % self.boots)
        self.boots += 1
        self.qemu_log = open(os.path.join(self.artifacts, "qemu.log"), "a")
        self.t_start = time.monotonic()
        self.qemu = Proc(self.qemu_argv(), stdout=self.qemu_log, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL)
        self.ctl = Ctl(os.path.join(self.work, "ctl.sock"))
        self.ctl.connect()

    def bench_port(self):
        """The host end of the raw virtio-serial port (one connection per boot)."""
        if self.bench_sock is None:
            self.bench_sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.bench_sock.connect(self.bench_path)
        return self.bench_sock

    def wait_booted(self, timeout=BOOT_TIMEOUT, progress=False):
        """Wait for the guest's control service (it starts after sockets.target)."""
        deadline = time.monotonic() + timeout
        shown = 0
        while time.monotonic() < deadline:
            r = self.ctl.wait_ready(0.5 if progress else 1)
            if progress:
                shown = self.show_progress(shown)
            if r:
                self.boot_seconds = time.monotonic() - self.t_start
                self.guest_uptime = r["uptime"]
                return True
            if not self.qemu.alive():
                diag("QEMU exited with %s during boot" % self.qemu.p.returncode)
                return False
            if "Kernel panic" in self.console_text():
                diag("guest kernel panic")
                return False
        diag("guest did not boot within %d s" % timeout)
        return False

    def show_progress(self, shown):
        """Print the guest's boot milestones as they appear on its console."""
        lines = self.console_text().splitlines()
        for ln in lines[shown:]:
            ln = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", ln).strip()
            if ln.startswith("vmtest-init:") or "Reached target" in ln or "Welcome to" in ln \
                    or "Listening on guestlink" in ln:
                log("guest: " + ln.replace("[  OK  ] ", ""))
        return len(lines)

    def console_text(self):
        try:
            with open(self.console, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop_qemu(self, sig=signal.SIGTERM):
        if self.ctl:
            self.ctl.close()
        if self.bench_sock:
            self.bench_sock.close()
            self.bench_sock = None
        if self.qemu:
            self.qemu.stop(sig)

    def stop(self):
        self.stop_qemu()
        if self.backend:
            self.backend.stop()


# ---------------------------------------------------------------- host clients


def hybrid_connect(uds, port, timeout=10):
    """Host-initiated vsock connection through the backend: CONNECT, then OK."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(uds)
    s.sendall(b"CONNECT %d\n" % port)
    buf = b""
    while b"\n" not in buf:
        c = s.recv(4096)
        if not c:
            s.close()
            raise ConnectionError("backend closed the connection before OK")
        buf += c
    line, rest = buf.split(b"\n", 1)
    if not line.startswith(b"OK "):
        s.close()
        raise ConnectionError("backend answered %r" % line)
    lc = gltest.LineClient(s)
    lc.buf = rest
    return lc


def guestlink(vm, *args, timeout=60, stdin=None):
    cli, libdir = program("host/guestlink")
    env = dict(os.environ)
    if libdir:
        env["LD_LIBRARY_PATH"] = libdir
    return subprocess.run([cli, "-a", "hybrid:%s:%d" % (vm.uds, AGENT_PORT)] + list(args),
                          capture_output=True, text=True, timeout=timeout, env=env,
                          input=stdin)


def skip(name, why):
    gltest._n += 1
    print("ok %d - %s # SKIP %s" % (gltest._n, name, why), flush=True)


def cli_commands():
    """The CLI's subcommands, from its usage text."""
    cli, libdir = program("host/guestlink")
    if not cli:
        return set()
    env = dict(os.environ, LD_LIBRARY_PATH=libdir) if libdir else None
    p = subprocess.run([cli, "--help"], capture_output=True, text=True, env=env)
    words = set()
    for ln in (p.stdout + p.stderr).splitlines():
        if ln.startswith("  ") and ln.split():
            words.add(ln.split()[0])
    return words


def have(relpath):
    return program(relpath)[0] is not None


def agent_methods(vm):
    try:
        c = hybrid_connect(vm.uds, AGENT_PORT)
        r = c.call("rpc.discover", timeout=30)
        c.close()
        return {m["name"] for m in r.get("result", {}).get("methods", [])}
    except Exception:
        return set()


# ---------------------------------------------------------------- scenarios


def guarded(fn):
    """A scenario that raises is one failed test, not a dead harness."""
    def wrapper(*a, **kw):
        try:
            return fn(*a, **kw)
        except Exception as e:  # noqa: BLE001
            ok(False, "%s: %s: %s" % (fn.__name__, type(e).__name__, e))
    wrapper.__name__ = fn.__name__
    return wrapper


@guarded
def s1_activation(vm):
    r = vm.ctl.sh("systemctl is-active guestlink-agent.socket; "
                  "systemctl is-active guestlink-agent.service")
    states = r["out"].split()
    is_eq(states, ["active", "inactive"], "1: agent socket listening, service not yet started")
    if not have("host/guestlink"):
        skip("1: guestlink ping/info/methods", "host/guestlink not built yet")
        c = hybrid_connect(vm.uds, AGENT_PORT, timeout=60)
        r = c.call("agent.ping", id=1, timeout=60)
        ok("result" in r, "1: agent.ping through the backend answers (raw client): %r" % r)
        c.close()
    else:
        p = guestlink(vm, "ping")
        ok(p.returncode == 0, "1: guestlink ping exits 0 (first connection activates the agent)")
        if p.returncode:
            diag(p.stdout + p.stderr)
        p = guestlink(vm, "info")
        ok(p.returncode == 0 and p.stdout.strip(), "1: guestlink info prints the agent's info")
        diag(p.stdout.strip()[:400] or p.stderr)
        p = guestlink(vm, "methods")
        ok(p.returncode == 0 and "agent.ping" in p.stdout and "system.info" in p.stdout,
           "1: guestlink methods lists agent.ping and system.info")
    r = vm.ctl.sh("systemctl is-active guestlink-agent.service")
    is_eq(r["out"].strip(), "active", "1: the agent service was socket-activated")
    r = vm.ctl.sh("systemctl show -p NRestarts,Type,MainPID guestlink-agent.service")
    diag(r["out"].strip())


@guarded
def s2_exec(vm):
    cli, libdir = program("host/guestlink")
    env = dict(os.environ)
    if libdir:
        env["LD_LIBRARY_PATH"] = libdir
    t0 = time.monotonic()
    p = subprocess.Popen([cli, "-a", "hybrid:%s:%d" % (vm.uds, AGENT_PORT), "exec", "--",
                          "sh", "-c", "echo first; sleep 3; echo second"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        first = p.stdout.readline()
        t_first = time.monotonic()
        rest, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise
    t_end = time.monotonic()
    is_eq((first, rest, p.returncode), (b"first\n", b"second\n", 0),
          "2: exec streams a command's output and exits 0")
    ok(t_end - t_first >= 2, "2: the first line arrived live, %.1f s before the command ended"
       " (%.1f s after start)" % (t_end - t_first, t_first - t0))
    if err:
        diag(err.decode(errors="replace")[-300:])
    r = guestlink(vm, "exec", "--stdin", "--", "tr", "a-z", "A-Z", stdin="hello vm\n")
    is_eq((r.stdout, r.returncode), ("HELLO VM\n", 0), "2: exec --stdin forwards stdin")
    r = guestlink(vm, "exec", "--", "sh", "-c", "echo oops >&2; exit 7")
    is_eq((r.returncode, r.stderr.strip()), (7, "oops"),
          "2: exec propagates the exit status (7) and stderr")


@guarded
def s3_cp(vm, mib=64):
    src = os.path.join(vm.work, "cp-in")
    back = os.path.join(vm.work, "cp-back")
    with open(src, "wb") as f:
        for _ in range(mib):
            f.write(os.urandom(1 << 20))
    want = sha256(src)
    t = time.monotonic()
    r = guestlink(vm, "cp", "--quiet", src, "guest:/var/tmp/cp-test", timeout=300)
    dt = time.monotonic() - t
    g = vm.ctl.sh("sha256sum /var/tmp/cp-test")
    got = g["out"].split()[0] if g["out"] else ""
    ok(r.returncode == 0 and got == want, "3: cp %d MiB host->guest, SHA-256 equal (%.1f MiB/s)"
       % (mib, mib / dt))
    if r.returncode:
        diag(r.stderr[-300:])
    t = time.monotonic()
    r = guestlink(vm, "cp", "--quiet", "guest:/var/tmp/cp-test", back, timeout=300)
    dt = time.monotonic() - t
    ok(r.returncode == 0 and os.path.exists(back) and sha256(back) == want,
       "3: cp %d MiB guest->host, SHA-256 equal (%.1f MiB/s)" % (mib, mib / dt))
    if r.returncode:
        diag(r.stderr[-300:])
    vm.ctl.sh("rm -f /var/tmp/cp-test")
    for f in (src, back):
        if os.path.exists(f):
            os.unlink(f)


def call(vm, method, params=None, timeout=60):
    c = hybrid_connect(vm.uds, AGENT_PORT, timeout=timeout)
    try:
        return c.call(method, params, id=1, timeout=timeout)
    finally:
        c.close()


@guarded
def s9_set_time(vm):
    target = int(time.time()) + 400 * 86400
    r = call(vm, "system.set-time", {"seconds": target})
    ok("result" in r, "9: system.set-time answers (%r)" % (r.get("error") or "ok"))
    g = vm.ctl.sh("date +%s")
    got = int(g["out"].strip() or 0)
    ok(abs(got - target) < 30, "9: the guest's clock moved to the time set (off by %d s)"
       % (got - target))
    call(vm, "system.set-time", {"seconds": int(time.time())})
    g = vm.ctl.sh("date +%s")
    ok(abs(int(g["out"].strip() or 0) - time.time()) < 30, "9: and back to the host's time")


@guarded
def s9_freeze(vm):
    # A real freezable filesystem: ext4 on the VM's virtio-blk disk.
    r = vm.ctl.sh("modprobe -a virtio_blk ext4 && for i in $(seq 50); do [ -b /dev/vda ] && break;"
                  " sleep 0.1; done && mkdir -p /mnt/frz && mount /dev/vda /mnt/frz && "
                  "touch /mnt/frz/before")
    ok(r["rc"] == 0, "9: ext4 disk mounted in the guest for fs.freeze")
    if r["rc"]:
        diag(r["err"])
        return
    p = guestlink(vm, "freeze", "--timeout", "30", "/mnt/frz")
    ok(p.returncode == 0, "9: guestlink freeze /mnt/frz")
    diag((p.stdout + p.stderr).strip()[-300:])
    r = vm.ctl.sh("timeout 2 touch /mnt/frz/while-frozen; echo $?")
    is_eq(r["out"].strip(), "124", "9: writes to the frozen filesystem block")
    p = guestlink(vm, "thaw")
    ok(p.returncode == 0, "9: guestlink thaw")
    r = vm.ctl.sh("timeout 5 touch /mnt/frz/after-thaw; echo $?")
    is_eq(r["out"].strip(), "0", "9: writes work again after thaw")
    # Auto-thaw: nobody thaws; the agent must by itself after the timeout.
    p = guestlink(vm, "freeze", "--timeout", "3", "/mnt/frz")
    ok(p.returncode == 0, "9: freeze with a 3 s auto-thaw timeout")
    t = time.monotonic()
    r = vm.ctl.sh("timeout 20 touch /mnt/frz/auto; echo $?", timeout=30)
    dt = time.monotonic() - t
    ok(r["out"].strip() == "0" and 1 < dt < 10,
       "9: the agent thawed by itself after its timeout (write waited %.1f s)" % dt)
    st = call(vm, "fs.status")
    diag("fs.status after auto-thaw: %s" % json.dumps(st.get("result", st)))
    vm.ctl.sh("umount /mnt/frz")


@guarded
def no_sanitizer_reports_guest(vm):
    r = vm.ctl.sh("journalctl -b --no-pager -o cat -u guestlink-agent.service | "
                  "grep -E 'Sanitizer|runtime error:' | head -20")
    ok(r["rc"] == 0 and not r["out"].strip(),
       "the agent's journal has no sanitizer report in this boot")
    diag(r["out"])


def no_sanitizer_reports_host(vm):
    with open(os.path.join(vm.artifacts, "backend.log"), errors="replace") as f:
        bad = [ln for ln in f if "Sanitizer" in ln or "runtime error:" in ln]
    ok(not bad, "the backend's log has no sanitizer report")
    diag("".join(bad[:20]))


@guarded
def s9_shutdown(vm):
    p = guestlink(vm, "shutdown")
    ok(p.returncode == 0, "9: guestlink shutdown answers")
    try:
        vm.qemu.p.wait(90)
        rc = vm.qemu.p.returncode
    except subprocess.TimeoutExpired:
        rc = None
    is_eq(rc, 0, "9: the guest powered off and QEMU exited")


@guarded
def s4_concurrent(vm, nclients=200, calls=5):
    errors = []
    lock = threading.Lock()
    barrier = threading.Barrier(nclients, timeout=120)

    def client(i):
        try:
            c = hybrid_connect(vm.uds, AGENT_PORT, timeout=120)
            barrier.wait()
            for k in range(calls):
                want = {"client": i, "call": k, "pad": "x" * (i % 50)}
                r = c.call("agent.echo", want, id="%d-%d" % (i, k), timeout=120)
                if r.get("id") != "%d-%d" % (i, k) or r.get("result") != want:
                    raise AssertionError("client %d call %d: %r" % (i, k, r))
            c.close()
        except Exception as e:  # noqa: BLE001
            with lock:
                errors.append("%d: %s: %s" % (i, type(e).__name__, e))

    t0 = time.monotonic()
    ts = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(nclients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(180)
    dt = time.monotonic() - t0
    ok(not errors and not any(t.is_alive() for t in ts),
       "4: %d concurrent host clients x %d agent.echo calls, all answers right (%.1f s)"
       % (nclients, calls, dt))
    for e in errors[:10]:
        diag(e)


@guarded
def s5_guest_initiated(vm, port=5000):
    # With a listener at <uds-path>_<port>: data flows both ways.
    lpath = "%s_%d" % (vm.uds, port)
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(lpath)
    ls.listen(4)
    ls.settimeout(60)
    try:
        h = vm.ctl.start("echo guest-to-host | timeout 30 socat -t 5 - VSOCK-CONNECT:2:%d" % port,
                         timeout=40)
        conn, _ = ls.accept()
        conn.settimeout(30)
        data = b""
        while not data.endswith(b"\n"):
            c = conn.recv(4096)
            if not c:
                break
            data += c
        is_eq(data, b"guest-to-host\n", "5: guest->host data arrives at the host listener")
        conn.sendall(b"host-to-guest\n")
        conn.shutdown(socket.SHUT_WR)
        r = vm.ctl.result(h)
        is_eq(r["out"], "host-to-guest\n", "5: host->guest data arrives at the guest")
        conn.close()
    finally:
        ls.close()
        os.unlink(lpath)
    # Without a listener the guest's connect fails, and promptly.
    r = vm.ctl.sh("start=$(date +%%s.%%N); timeout 20 socat -u - VSOCK-CONNECT:2:%d </dev/null; "
                  "rc=$?; echo $rc $(echo \"$(date +%%s.%%N) - $start\" | bc -l 2>/dev/null || "
                  "python3 -c \"print($(date +%%s.%%N)-$start)\")" % (port + 1), timeout=30)
    fields = r["out"].split()
    rc = int(fields[0]) if fields else -1
    secs = float(fields[1]) if len(fields) > 1 else 99
    # Promptly: refused by the back-end's RST after its failed connect(2), not
    # by a timer. Measured in the guest's own terms: had the RST waited for the
    # back-end's 5 s connect timer, the guest kernel's 2 s vsock connect timeout
    # would have ended it first with ETIMEDOUT. Wall seconds are only reported
    # (a loaded host slows the TCG guest, not the order of these events).
    err = r["err"].lower()
    ok(rc not in (0, 124) and "timed out" not in err and ("reset" in err or "refused" in err),
       "5: without a host listener the guest's connect is refused, not timed out "
       "(rc %d, %.2f s)" % (rc, secs))
    diag(r["err"].strip()[-300:])


@guarded
def s6_half_close(vm, port=5001):
    # Host closes its write side first: the guest reads EOF, then still sends back.
    h = vm.ctl.start("timeout 30 socat -t 10 VSOCK-LISTEN:%d,reuseaddr "
                     "SYSTEM:'cat; echo guest-after-eof'" % port, timeout=40)
    deadline = time.monotonic() + 20
    c = None
    while time.monotonic() < deadline:
        try:
            c = hybrid_connect(vm.uds, port, timeout=10)
            break
        except (ConnectionError, OSError):
            time.sleep(0.3)
    ok(c is not None, "6: host connects to a socat listener in the guest")
    if c is None:
        return
    c.s.sendall(b"host-data\n")
    c.s.shutdown(socket.SHUT_WR)
    data = b""
    c.s.settimeout(20)
    while True:
        x = c.s.recv(4096)
        if not x:
            break
        data += x
    is_eq(data, b"host-data\nguest-after-eof\n",
          "6: host SHUT_WR reaches the guest as EOF; guest data still flows back, then EOF")
    c.close()
    vm.ctl.result(h)

    # Guest closes its write side first: the host reads EOF, then still sends.
    lpath = "%s_%d" % (vm.uds, port + 1)
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(lpath)
    ls.listen(1)
    ls.settimeout(30)
    try:
        h = vm.ctl.start("printf guest-data | timeout 30 socat -t 10 - VSOCK-CONNECT:2:%d"
                         % (port + 1), timeout=40)
        conn, _ = ls.accept()
        conn.settimeout(20)
        data = b""
        while True:
            x = conn.recv(4096)
            if not x:
                break
            data += x
        is_eq(data, b"guest-data", "6: guest SHUT_WR arrives at the host as EOF after its data")
        conn.sendall(b"host-after-eof")
        conn.close()
        r = vm.ctl.result(h)
        is_eq(r["out"], "host-after-eof", "6: after the guest's EOF, host data still reaches it")
    finally:
        ls.close()
        os.unlink(lpath)


def pattern(n, salt):
    return bytes((i * 7 + salt) % 251 for i in range(n))


SEQ_GUEST_CONNECT = r"""
import hashlib, socket
s = socket.socket(socket.AF_VSOCK, socket.SOCK_SEQPACKET)
s.settimeout(30)
s.connect((2, %(port)d))
for n in (1, 5000, 70000):
    s.send(bytes((i * 7 + n) %% 251 for i in range(n)))
out = []
for _ in range(3):
    m = s.recv(262144)
    out.append("%%d:%%s" %% (len(m), hashlib.sha256(m).hexdigest()))
print(" ".join(out))
"""

SEQ_GUEST_LISTEN = r"""
import socket
l = socket.socket(socket.AF_VSOCK, socket.SOCK_SEQPACKET)
l.bind((socket.VMADDR_CID_ANY, %(port)d))
l.listen(1)
l.settimeout(30)
c, _ = l.accept()
c.settimeout(30)
n = 0
while True:
    m = c.recv(262144)
    if not m:
        break
    c.send(m[::-1])
    n += 1
print(n)
"""


@guarded
def s10_seqpacket(vm, port=5100):
    # Guest-initiated: python in the guest, AF_VSOCK SOCK_SEQPACKET to a host
    # SOCK_SEQPACKET listener at <uds-path>_<port>; messages stay whole both ways.
    lpath = "%s_%d" % (vm.uds, port)
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ls.bind(lpath)
    ls.listen(4)
    ls.settimeout(60)
    try:
        h = vm.ctl.start("timeout 40 python3 -", timeout=50,
                         stdin=SEQ_GUEST_CONNECT % {"port": port})
        try:
            conn, _ = ls.accept()
        except socket.timeout:
            r = vm.ctl.result(h)
            ok(False, "10: guest SEQPACKET connect reaches the host listener (%s)"
               % r["err"].strip()[-200:])
            return
        conn.settimeout(30)
        got = [conn.recv(262144) for _ in range(3)]
        ok(got == [pattern(n, n) for n in (1, 5000, 70000)],
           "10: guest->host: 3 messages (1, 5000, 70000 bytes) arrive as 3 whole records "
           "(%s)" % [len(g) for g in got])
        sent = [pattern(n, 1) for n in (3, 9000, 100000)]
        for m in sent:
            conn.sendall(m)
        r = vm.ctl.result(h)
        want = " ".join("%d:%s" % (len(m), hashlib.sha256(m).hexdigest()) for m in sent)
        is_eq(r["out"].strip(), want,
              "10: host->guest: 3 records (3, 9000, 100000 bytes) arrive as 3 whole messages")
        if r["rc"] != 0:
            diag(r["err"].strip()[-300:])
        conn.close()
    finally:
        ls.close()
        os.unlink(lpath)

    # Host-initiated: a SOCK_SEQPACKET client on <uds-path>.seqpacket; the guest echoes
    # each message reversed.
    h = vm.ctl.start("timeout 40 python3 -", timeout=50,
                     stdin=SEQ_GUEST_LISTEN % {"port": port + 1})
    deadline = time.monotonic() + 20
    c = None
    while time.monotonic() < deadline and c is None:
        c = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        c.settimeout(15)
        try:
            c.connect(vm.uds + ".seqpacket")
            c.send(b"CONNECT %d\n" % (port + 1))
            if not c.recv(64).startswith(b"OK "):
                raise ConnectionError("refused")
        except (ConnectionError, OSError):
            c.close()
            c = None
            time.sleep(0.3)
    ok(c is not None, "10: host SEQPACKET client connects to a python listener in the guest")
    if c is None:
        vm.ctl.result(h)
        return
    msgs = [pattern(n, 2) for n in (10, 8000, 65537)]
    echoes = []
    for m in msgs:
        c.sendall(m)
        echoes.append(c.recv(262144))
    ok(echoes == [m[::-1] for m in msgs],
       "10: host->guest->host: each message echoed whole (%s)" % [len(e) for e in echoes])
    c.shutdown(socket.SHUT_WR)
    r = vm.ctl.result(h)
    is_eq(r["out"].strip(), "3", "10: host SHUT_WR reaches the guest as EOF after 3 messages")
    c.close()


@guarded
def s7_qga_vsock(vm):
    if not shutil.which("qemu-ga"):
        skip("7: qemu-guest-agent over vsock", "qemu-ga not installed (package qemu-guest-agent)")
        return
    h = vm.ctl.start("timeout 120 qemu-ga -m vsock-listen -p %d:%d 2>/tmp/qga.log & "
                     "echo $! >/run/qga-vsock.pid; wait" % (GUEST_CID, QGA_VSOCK_PORT), timeout=130)
    c = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            c = hybrid_connect(vm.uds, QGA_VSOCK_PORT, timeout=10)
            break
        except (ConnectionError, OSError):
            time.sleep(0.3)
    ok(c is not None, "7: host reaches qemu-ga's vsock port through our backend")
    if c is None:
        return
    c.send({"execute": "guest-ping"})
    r = c.recv(30)
    is_eq(r, {"return": {}}, "7: qemu-ga guest-ping through our backend")
    c.send({"execute": "guest-info"})
    r = c.recv(30)
    ok("version" in r.get("return", {}), "7: qemu-ga guest-info through our backend (version %s)"
       % r.get("return", {}).get("version"))
    c.close()
    vm.ctl.sh("kill $(cat /run/qga-vsock.pid)")
    vm.ctl.result(h)


@guarded
def s8_agent_killed(vm):
    pid_before = vm.ctl.sh("systemctl show -p MainPID --value guestlink-agent.service")["out"]
    r = vm.ctl.sh("systemctl kill -s KILL guestlink-agent.service; sleep 1; "
                  "systemctl is-active guestlink-agent.service; "
                  "systemctl is-active guestlink-agent.socket")
    states = r["out"].split()
    # No Restart= in the unit: only the next connection may start it again.
    ok(len(states) == 2 and states[0] in ("failed", "inactive") and states[1] == "active",
       "8: agent killed with SIGKILL, its socket still listening (service %s)"
       % (states[0] if states else "?"))
    c = hybrid_connect(vm.uds, AGENT_PORT, timeout=60)
    r = c.call("agent.ping", id=7, timeout=60)
    ok("result" in r and r.get("id") == 7, "8: next connection reactivates the agent")
    c.close()
    pid_after = vm.ctl.sh("systemctl show -p MainPID --value guestlink-agent.service")["out"]
    ok(pid_after.strip() not in ("0", "", pid_before.strip()),
       "8: a new agent process answered (pid %s -> %s)" % (pid_before.strip(), pid_after.strip()))


@guarded
def s8_qemu_restart(vm):
    pid = vm.backend.pid
    vm.stop_qemu(signal.SIGKILL)
    ok(vm.backend.alive(), "8: backend survives QEMU being killed")
    t = time.monotonic()
    vm.start_qemu()
    booted = vm.wait_booted()
    ok(booted, "8: QEMU restarted against the same backend process (pid %d), guest booted "
       "in %.1f s" % (pid, time.monotonic() - t))
    if not booted:
        return False
    c = hybrid_connect(vm.uds, AGENT_PORT, timeout=60)
    r = c.call("agent.ping", id=8, timeout=60)
    ok("result" in r, "8: the backend serves the new QEMU")
    c.close()
    return True


@guarded
def s8_reboot(vm):
    c = hybrid_connect(vm.uds, AGENT_PORT, timeout=60)
    r = c.call("agent.ping", id=1, timeout=60)
    ok("result" in r, "8: connection open before the guest reboots")
    vm.ctl.start("systemctl reboot", timeout=10)
    # The old control connection stays (QEMU keeps the chardev); its next ready
    # message comes from the rebooted guest.
    err = None
    try:
        c.s.settimeout(120)
        x = c.s.recv(1)
        err = "EOF" if not x else "unexpected data %r" % x
    except OSError as e:
        err = type(e).__name__
    ok(err is not None and err != "timeout",
       "8: the host client of a rebooting guest gets an error (%s)" % err)
    c.close()
    t = time.monotonic()
    booted = vm.wait_booted()
    ok(booted, "8: guest rebooted in %.1f s" % (time.monotonic() - t))
    if not booted:
        return False
    c = hybrid_connect(vm.uds, AGENT_PORT, timeout=60)
    r = c.call("agent.ping", id=2, timeout=60)
    ok("result" in r, "8: new connections work after the reboot")
    c.close()
    return True


@guarded
def s8_backend_sigterm(vm):
    vm.stop_qemu()
    t = time.monotonic()
    try:
        os.kill(vm.backend.pid, signal.SIGTERM)
        vm.backend.p.wait(10)
        rc = vm.backend.p.returncode
    except subprocess.TimeoutExpired:
        rc = None
    dt = time.monotonic() - t
    ok(rc == 0 and dt < 5, "8: backend exits cleanly on SIGTERM (status %s, %.2f s)" % (rc, dt))
    vm.backend.stop()


@guarded
def bench(vm):
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "bench_vm", os.path.join(TOP_SRCDIR, "tests", "bench", "bench-vm.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    log("benchmark: vsock through our backend vs virtio-serial")
    mod.run(vm, hybrid_connect, ok, diag)


# ---------------------------------------------------------------- demo


def demo_run(vm, *args):
    print("\n$ guestlink " + " ".join(args), flush=True)
    p = guestlink(vm, *args)
    sys.stdout.write(p.stdout + p.stderr)
    sys.stdout.flush()
    return p


def demo(vm, have_agent):
    """README's first command: the main job, shown to a person."""
    if not have_agent or not have("host/guestlink"):
        print("note: the agent or the guestlink CLI is not built in this tree yet", flush=True)
        return
    methods = agent_methods(vm)
    ok(demo_run(vm, "info").returncode == 0, "demo: guestlink info")
    if "exec.start" in methods:
        ok(demo_run(vm, "exec", "--", "uname", "-a").returncode == 0, "demo: guestlink exec")
    else:
        print("note: exec is not implemented in this tree yet (no exec.start method)", flush=True)
    if any(m.startswith("file.") for m in methods):
        src = os.path.join(vm.work, "demo-in")
        back = os.path.join(vm.work, "demo-out")
        with open(src, "wb") as f:
            f.write(os.urandom(1 << 20))
        r1 = demo_run(vm, "cp", src, "guest:/tmp/demo-file").returncode
        r2 = demo_run(vm, "cp", "guest:/tmp/demo-file", back).returncode
        same = r1 == 0 and r2 == 0 and sha256(src) == sha256(back)
        print("copied 1 MiB in and out: %s" % ("SHA-256 equal" if same else "MISMATCH"))
        ok(same, "demo: guestlink cp in and out")
    else:
        print("note: file copy is not implemented in this tree yet (no file.* methods)", flush=True)
    if "system.shutdown" in methods and "shutdown" in cli_commands():
        demo_run(vm, "shutdown")
    else:
        print("\n(system.shutdown not in this tree yet: powering off with systemctl in the guest)")
        vm.ctl.start("systemctl poweroff", timeout=5)
    try:
        vm.qemu.p.wait(60)
        print("VM shut down cleanly (QEMU exited with %d)" % vm.qemu.p.returncode, flush=True)
        ok(vm.qemu.p.returncode == 0, "demo: the VM shut down cleanly")
    except subprocess.TimeoutExpired:
        ok(False, "demo: the VM did not shut down within 60 s")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


# ---------------------------------------------------------------- units


def check_units():
    units = [unit_file(n) for n in all_units()]
    if not units:
        skip("systemd-analyze verify units/", "no units yet")
        return
    with tempfile.TemporaryDirectory() as d:
        for u in units:
            # ExecStart names the installed path; verify the built program instead
            # of ignoring "not executable".
            with open(u) as f:
                text = f.read()

            def built(m):
                for rel in ("agent", "backend", "host"):
                    b = program(os.path.join(rel, os.path.basename(m.group(2))))[0]
                    if b:
                        return m.group(1) + b
                return m.group(0)
            text = re.sub(r"^(ExecStart=[-@:+!]*)(/\S+)", built, text, flags=re.M)
            with open(os.path.join(d, os.path.basename(u)), "w") as f:
                f.write(text)
        # verify resolves ExecStart: give it the installed paths' basenames from the build tree.
        env = dict(os.environ, SYSTEMD_UNIT_PATH=d + ":")
        for u in units:
            name = os.path.basename(u)
            if "@." in name:
                inst = name.replace("@.", "@vm1.")
                os.symlink(os.path.join(d, name), os.path.join(d, inst))
                name = inst
            p = subprocess.run(["systemd-analyze", "verify", "--man=no", os.path.join(d, name)],
                               capture_output=True, text=True, env=env)
            ok(p.returncode == 0, "systemd-analyze verify %s" % name)
            for m in (p.stdout + p.stderr).splitlines():
                diag(m)
        for u in units:
            if not u.endswith(".service"):
                continue
            name = os.path.basename(u).replace("@.", "@vm1.")
            p = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager",
                                os.path.join(d, name)], capture_output=True, text=True, env=env)
            score = [ln for ln in p.stdout.splitlines() if "Overall exposure" in ln]
            diag("security %s: %s" % (name, score[0].strip() if score else p.stderr.strip()))


# ---------------------------------------------------------------- main

ONLY = None


def want(fn):
    """fn itself, or a no-op when --only leaves it out."""
    if ONLY is None or ONLY.search(fn.__name__):
        return fn
    return lambda *a, **kw: None


def extra_scenarios():
    """Scenarios kept in tests/vm/scenarios/*.py, one file per topic, in file
    name order. Each file defines SCENARIOS, a list of functions f(vm, H): vm is
    the running VM, H this harness (H.guestlink(), H.call(), H.ok, ...). They run
    after scenario 7 and before the agent kill, reboot and shutdown scenarios."""
    import importlib.util
    fns = []
    for path in sorted(glob.glob(os.path.join(HERE, "scenarios", "*.py"))):
        name = "vmscenario_" + os.path.basename(path)[:-3]
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        for f in getattr(mod, "SCENARIOS", []):
            def run_one(vm, f=f):
                return f(vm, sys.modules[__name__])
            run_one.__name__ = f.__name__
            fns.append(guarded(run_one))
    return fns


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--timeout", type=int, default=int(os.environ.get("GUESTLINK_VM_TIMEOUT", 840)))
    ap.add_argument("--keep", action="store_true", help="keep the run directory")
    ap.add_argument("--no-bench", action="store_true", help="skip the benchmark")
    ap.add_argument("--demo", action="store_true", help="boot, show guestlink at work, shut down")
    ap.add_argument("--only", metavar="REGEX",
                    help="run only the scenarios whose function name matches (e.g. 's2_|pty')")
    args = ap.parse_args()
    global ONLY
    ONLY = re.compile(args.only) if args.only else None

    def on_alarm(signum, frame):
        ok(False, "whole VM run exceeded its hard timeout of %d s" % args.timeout)
        raise SystemExit(1)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, lambda s, f: on_alarm(s, f))
    signal.alarm(args.timeout)

    cache = os.environ.get("GUESTLINK_VM_CACHE", build_bin("tests", "vm", "cache"))
    artifacts = build_bin("tests", "vm", "artifacts")
    shutil.rmtree(artifacts, ignore_errors=True)
    os.makedirs(artifacts)
    # Short path: Unix socket names (and <uds-path>_<port>) must fit in 108 bytes.
    work = tempfile.mkdtemp(prefix="glvm.", dir="/tmp")
    vm = None
    try:
        if not args.demo:
            check_units()
        kernel, kver, moddir = kernel_fetch(cache)
        log("kernel %s" % kver)
        have_backend = have("backend/vhost-user-vsock")
        have_agent = (have("agent/guestlink-agent") and unit_file("guestlink-agent.socket")
                      and unit_file("guestlink-agent.service"))
        initrd = initramfs_build(work, kver, moddir, have_agent)
        vm = VM(work, artifacts, kernel, initrd, have_backend)
        # A small ext4 disk: fs.freeze needs a filesystem that can be frozen.
        if shutil.which("mkfs.ext4") or os.path.exists("/usr/sbin/mkfs.ext4"):
            with open(vm.disk, "wb") as f:
                f.truncate(64 << 20)
            run([shutil.which("mkfs.ext4") or "/usr/sbin/mkfs.ext4", "-q", "-F", vm.disk])
        if have_backend:
            vm.start_backend()
        vm.start_qemu()
        log("booting (console: %s)" % vm.console)
        booted = vm.wait_booted(progress=args.demo)
        ok(booted, "guest booted to guestlink-vmtest.target")
        if not booted:
            return
        log("booted in %.1f s (guest uptime %.1f s)" % (vm.boot_seconds, vm.guest_uptime))
        diag("boot time under TCG: %.1f s to the control service (guest uptime %.1f s)"
             % (vm.boot_seconds, vm.guest_uptime))
        r = vm.ctl.sh("uname -r; systemctl is-system-running; ls /dev/vsock")
        diag(r["out"].strip())
        is_eq(r["out"].split("\n")[0], kver, "guest runs Debian's kernel %s" % kver)
        if not have_backend:
            skip("scenarios 1-9", "backend/vhost-user-vsock not built yet")
            return
        if args.demo:
            demo(vm, have_agent)
            return
        if not have_agent:
            skip("agent scenarios", "agent/guestlink-agent or units/guestlink-agent.socket missing")
        else:
            want(s1_activation)(vm)
        methods = agent_methods(vm) if have_agent else set()
        cmds = cli_commands()
        if "exec.start" in methods and "exec" in cmds:
            want(s2_exec)(vm)
        else:
            skip("2: guestlink exec", "exec method or CLI command not in this tree yet")
        if "file.read" in methods and "cp" in cmds:
            want(s3_cp)(vm)
        else:
            skip("3: guestlink cp 64 MiB", "file methods or CLI command not in this tree yet")
        if have_agent:
            want(s4_concurrent)(vm)
        want(s5_guest_initiated)(vm)
        want(s6_half_close)(vm)
        want(s10_seqpacket)(vm)
        want(s7_qga_vsock)(vm)
        for fn in extra_scenarios():
            want(fn)(vm)
        if have_agent and not args.no_bench:
            want(bench)(vm)
        if have_agent:
            want(s8_agent_killed)(vm)
            if want(s8_reboot)(vm) is False:
                return
        if want(s8_qemu_restart)(vm) is False:
            return
        if "system.set-time" in methods:
            want(s9_set_time)(vm)
        else:
            skip("9: set-time", "system.set-time not in this tree yet")
        if "fs.freeze" in methods and "freeze" in cmds:
            want(s9_freeze)(vm)
        else:
            skip("9: freeze/thaw", "fs.freeze or the CLI's freeze not in this tree yet")
        if have_agent:
            want(no_sanitizer_reports_guest)(vm)
        if "system.shutdown" in methods and "shutdown" in cmds:
            want(s9_shutdown)(vm)
        else:
            skip("9: shutdown", "system.shutdown or the CLI's shutdown not in this tree yet")
        want(s8_backend_sigterm)(vm)
        want(no_sanitizer_reports_host)(vm)
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
            diag("\n".join(vm.console_text().splitlines()[-60:]))
            for f in ("backend.log", "qemu.log"):
                try:
                    with open(os.path.join(artifacts, f), errors="replace") as fh:
                        diag("---- %s (tail) ----" % f)
                        diag("\n".join(fh.read().splitlines()[-30:]))
                except OSError:
                    pass
        if args.keep:
            diag("run directory kept: %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    diag("artifacts: %s" % artifacts)


if __name__ == "__main__":
    main()
    gltest.done()
