# SPDX-License-Identifier: LGPL-2.1-or-later
"""A private mount namespace for one test, held open by a sleeping process,
and the agent started inside it (nsenter execs it: its PID is the agent's)."""

import json
import os
import subprocess
import time

from gltest import Proc, build_path, skip_all


class MountNamespace:
    def __init__(self):
        self.holder = Proc(["unshare", "--mount", "--propagation", "private", "sleep", "600"])
        self.prefix = ["nsenter", "-t", str(self.holder.pid), "-m"]
        deadline = time.monotonic() + 10
        # unshare needs a moment before the namespace is its own
        while os.readlink("/proc/%d/ns/mnt" % self.holder.pid) == os.readlink("/proc/self/ns/mnt"):
            if time.monotonic() > deadline or not self.holder.alive():
                self.holder.stop()
                skip_all("cannot make a mount namespace")
            time.sleep(0.05)

    def run(self, argv, timeout=30):
        """Run argv inside; True when it exits 0."""
        return subprocess.run(self.prefix + list(argv), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=timeout).returncode == 0

    def agent(self, tmp, config):
        """guestlink-agent inside, listening on tmp/agent.sock: (Proc, socket path)."""
        sock = os.path.join(tmp, "agent.sock")
        conf = os.path.join(tmp, "agent.conf")
        config = dict(config)
        config.setdefault("plugin_dir", os.path.join(tmp, "no-plugins"))
        with open(conf, "w") as f:
            json.dump(config, f)
        return Proc(self.prefix + [build_path("agent", "guestlink-agent"), "--listen",
                                   "unix:" + sock, "--config", conf]), sock

    def stop(self):
        self.holder.stop()
