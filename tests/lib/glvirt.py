# SPDX-License-Identifier: LGPL-2.1-or-later
"""libvirt for guestlink's tests, without systemd as PID 1.

    lv = Libvirt(work)                 # work: a directory of the test's own
    lv.install_hook(script)            # /etc/libvirt/hooks/qemu, before start()
    lv.start()                         # virtlogd + libvirtd, ready for virsh
    xml = domain_xml(name, kernel, initrd, cmdline, qemu_args=[...], devices="...")
    lv.virsh("create", path)           # a transient domain
    ...
    lv.stop()                          # daemons stopped by PID, hook restored

Facts (tests/vm and VM-NOTES): libvirt 9.0's monolithic libvirtd; the QEMU
driver looks the libvirt-qemu user up even when qemu.conf says root; QEMU
runs as libvirt-qemu by default; libvirtd re-probes QEMU at each start, so
readiness is "virsh version answers". One libvirtd per machine: a lock file
serialises the tests that use it, and a libvirtd this module did not start
makes start() fail rather than share it.
"""

import fcntl
import os
import shutil
import subprocess
import time

import gltest

URI = "qemu:///system"
HOOK = "/etc/libvirt/hooks/qemu"
LOCK = "/run/lock/guestlink-libvirt.lock"
QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"


def xml_escape(s):
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("'", "&apos;").replace('"', "&quot;"))


def domain_xml(name, kernel, initrd, cmdline, memory_mib=512, vcpus=2, qemu_args=(),
               devices="", serial_log=None, qga_channel=False):
    """A transient TCG domain booting kernel+initrd directly, with shared
    (memfd) memory as vhost-user needs, extra QEMU arguments passed through
    <qemu:commandline> (e.g. -virtfs, the vhost-user-vsock chardev/-device),
    extra <devices> XML (channels), and the serial console in serial_log.
    qga_channel adds the virtio-serial port org.qemu.guest_agent.0 whose
    host end libvirt itself uses for its agent commands (virsh domtime, ...)."""
    if qga_channel:
        devices += virtio_channel("org.qemu.guest_agent.0")
    args = "".join("    <qemu:arg value='%s'/>\n" % xml_escape(a) for a in qemu_args)
    serial = ""
    if serial_log:
        serial = ("    <serial type='file'><source path='%s'/><target port='0'/></serial>\n"
                  "    <console type='file'><source path='%s'/><target type='serial' port='0'/>"
                  "</console>\n" % (xml_escape(serial_log), xml_escape(serial_log)))
    return """<domain type='qemu' xmlns:qemu='%(ns)s'>
  <name>%(name)s</name>
  <memory unit='MiB'>%(mem)d</memory>
  <vcpu>%(vcpus)d</vcpu>
  <memoryBacking>
    <source type='memfd'/>
    <access mode='shared'/>
  </memoryBacking>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>%(kernel)s</kernel>
    <initrd>%(initrd)s</initrd>
    <cmdline>%(cmdline)s</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
%(serial)s%(devices)s    <memballoon model='none'/>
  </devices>
  <qemu:commandline>
%(args)s  </qemu:commandline>
</domain>
""" % {"ns": QEMU_NS, "name": xml_escape(name), "mem": memory_mib, "vcpus": vcpus,
       "kernel": xml_escape(kernel), "initrd": xml_escape(initrd),
       "cmdline": xml_escape(cmdline), "serial": serial, "devices": devices, "args": args}


def virtio_channel(name):
    """A virtio-serial port named name, its host end a Unix socket libvirt
    places itself (see Libvirt.channel_path)."""
    return ("    <channel type='unix'><source mode='bind'/>"
            "<target type='virtio' name='%s'/></channel>\n" % xml_escape(name))


def ensure_qemu_user():
    """The libvirt-qemu user and group Debian's libvirt-daemon-system would
    create; the QEMU driver refuses to start without them."""
    if subprocess.run(["getent", "group", "libvirt-qemu"], capture_output=True).returncode:
        subprocess.run(["groupadd", "--system", "libvirt-qemu"], check=True)
    if subprocess.run(["getent", "passwd", "libvirt-qemu"], capture_output=True).returncode:
        subprocess.run(["useradd", "--system", "--gid", "libvirt-qemu", "--no-create-home",
                        "--home-dir", "/var/lib/libvirt", "--shell", "/usr/sbin/nologin",
                        "libvirt-qemu"], check=True)


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


class Libvirt:
    def __init__(self, work, lock_timeout=900):
        self.work = work
        self.lock_timeout = lock_timeout
        self.lock = None
        self.virtlogd = None
        self.libvirtd = None
        self.hook_backup = None
        self.hook_installed = False
        self.hooks_dir_created = False
        self.start_seconds = None

    # --- the machine-wide lock ---
    def _lock(self):
        os.makedirs(os.path.dirname(LOCK), exist_ok=True)
        self.lock = open(LOCK, "w")
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError("another libvirt test holds %s" % LOCK)
                time.sleep(1)

    def install_hook(self, text):
        """Install text as /etc/libvirt/hooks/qemu (libvirtd looks for hooks
        only when it starts). An existing hook is put back by stop()."""
        if self.lock is None:
            self._lock()
        d = os.path.dirname(HOOK)
        if not os.path.isdir(d):
            os.makedirs(d)
            self.hooks_dir_created = True
        if os.path.lexists(HOOK):
            self.hook_backup = os.path.join(self.work, "qemu-hook.orig")
            shutil.move(HOOK, self.hook_backup)
        with open(HOOK, "w") as f:
            f.write(text)
        os.chmod(HOOK, 0o755)
        self.hook_installed = True

    def _restore_hook(self):
        if self.hook_installed:
            try:
                os.unlink(HOOK)
            except FileNotFoundError:
                pass
            self.hook_installed = False
        if self.hook_backup:
            shutil.move(self.hook_backup, HOOK)
            self.hook_backup = None
        if self.hooks_dir_created:
            try:
                os.rmdir(os.path.dirname(HOOK))
            except OSError:
                pass
            self.hooks_dir_created = False

    # --- the daemons ---
    def start(self, timeout=120):
        """virtlogd and libvirtd in the foreground, as our children (stopped by
        PID in stop()); returns once `virsh version` answers."""
        if self.lock is None:
            self._lock()
        for pidfile in ("/run/libvirtd.pid", "/run/virtlogd.pid"):
            try:
                with open(pidfile) as f:
                    pid = int(f.read().strip() or 0)
            except (OSError, ValueError):
                continue
            if pid and pid_alive(pid):
                raise RuntimeError("%s: a daemon this test did not start runs (PID %d)"
                                   % (pidfile, pid))
        ensure_qemu_user()
        os.makedirs("/var/log/libvirt/qemu", exist_ok=True)
        t0 = time.monotonic()
        log = open(os.path.join(self.work, "libvirtd.log"), "a")
        self.virtlogd = gltest.Proc(["virtlogd"], stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        if not gltest.wait_for_path("/run/libvirt/virtlogd-sock", 20, self.virtlogd):
            raise RuntimeError("virtlogd did not create its socket")
        self.libvirtd = gltest.Proc(["libvirtd"], stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            if not self.libvirtd.alive():
                raise RuntimeError("libvirtd exited with %s" % self.libvirtd.p.returncode)
            r = subprocess.run(["virsh", "-c", URI, "version"], capture_output=True, text=True,
                               timeout=60)
            if r.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("virsh version did not answer within %d s: %s"
                                   % (timeout, r.stderr.strip()))
            time.sleep(0.5)
        self.start_seconds = time.monotonic() - t0

    def virsh(self, *args, timeout=120, check=False):
        return subprocess.run(["virsh", "-c", URI] + list(args), capture_output=True,
                              text=True, timeout=timeout, check=check)

    def channel_path(self, domain, name):
        """The host socket of domain's virtio channel named name."""
        import xml.etree.ElementTree as ET
        r = self.virsh("dumpxml", domain, check=True)
        for ch in ET.fromstring(r.stdout).iter("channel"):
            t, s = ch.find("target"), ch.find("source")
            if t is not None and t.get("name") == name and s is not None:
                return s.get("path")
        return None

    def destroy_all(self):
        """Destroy every running domain (transient ones vanish with it)."""
        r = self.virsh("list", "--name")
        for name in r.stdout.split():
            self.virsh("destroy", name, timeout=60)

    def stop(self):
        """Domains destroyed, libvirtd then virtlogd stopped by PID, the hook
        restored; safe to call twice and after a failed start()."""
        try:
            if self.libvirtd and self.libvirtd.alive():
                self.destroy_all()
        except Exception:  # noqa: BLE001 - stopping goes on regardless
            pass
        for p in (self.libvirtd, self.virtlogd):
            if p:
                p.stop(timeout=20)
        self.libvirtd = self.virtlogd = None
        self._restore_hook()
        if self.lock:
            self.lock.close()
            self.lock = None
