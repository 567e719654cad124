# SPDX-License-Identifier: LGPL-2.1-or-later
"""Mount tests/agent/hangfs (a FUSE filesystem whose server a test stops with
SIGSTOP, so that every syscall below it blocks) in a temporary directory."""

import os
import signal
import subprocess
import time

from gltest import Proc, build_path, skip_all


class HangFS:
    """hangfs mounted at tmp/mnt; skips the whole test when that cannot be done.
    prefix runs it (and looks at it) elsewhere, e.g. nsenter into a mount
    namespace: it must exec the command, not fork it."""

    def __init__(self, tmp, prefix=()):
        binary = build_path("tests", "agent", "hangfs")
        if not os.path.exists(binary):
            skip_all("built without libfuse3-dev")
        if not os.path.exists("/dev/fuse") or os.geteuid() != 0:
            skip_all("needs /dev/fuse and root to mount")
        self.prefix = list(prefix)
        self.mnt = os.path.join(tmp, "mnt")
        os.mkdir(self.mnt)
        self.proc = Proc(self.prefix + [binary, self.mnt, "-f", "-s"],
                         stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not self.mounted():
            if not self.proc.alive():
                break
            time.sleep(0.05)
        if not self.mounted():
            self.proc.stop()
            skip_all("cannot mount a FUSE filesystem here")

    def mounted(self):
        if not self.prefix:
            return os.path.exists(self.path("f"))
        return subprocess.run(self.prefix + ["test", "-e", self.path("f")],
                              timeout=10).returncode == 0

    def path(self, name):
        return os.path.join(self.mnt, name)

    def stop(self):
        """Freeze the server: calls below the mount point block from now on."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def cont(self):
        try:
            os.kill(self.proc.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass

    def unmount(self):
        self.cont()
        subprocess.run(self.prefix + ["fusermount3", "-u", "-z", self.mnt],
                       stderr=subprocess.DEVNULL, timeout=10)
        self.proc.stop()
