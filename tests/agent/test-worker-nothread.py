#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A worker pool that cannot start a single thread (pthread_create() fails
with EAGAIN: here RLIMIT_NPROC of 1 for an agent running as nobody) answers
each file call -32003, as a full queue does, and serves on (agent/worker.h).
Needs root, setpriv and prlimit; skipped otherwise."""

import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gltest import (build_path, done, is_eq, skip_all, tmpdir, wait_for_listener,  # noqa: E402
                    LineClient, Proc, unix_connect)

if os.geteuid() != 0 or not all(shutil.which(p) for p in ("setpriv", "prlimit")):
    skip_all("needs root, setpriv and prlimit")
# RLIMIT_NPROC counts every process and thread of the user.
if subprocess.run(["pgrep", "-u", "nobody"], stdout=subprocess.DEVNULL).returncode == 0:
    skip_all("processes run as nobody here: its process count is not ours")
tmp = tmpdir()
os.chmod(tmp, 0o755)
run = os.path.join(tmp, "run")
os.mkdir(run)
os.chmod(run, 0o777)
sock = os.path.join(run, "agent.sock")
conf = os.path.join(tmp, "agent.conf")
with open(conf, "w") as f:
    json.dump({"plugin_dir": os.path.join(tmp, "no-plugins"), "fs_timeout_s": 5}, f)
agent = Proc(["prlimit", "--nproc=1", "setpriv", "--reuid=nobody", "--regid=nogroup",
              "--clear-groups", build_path("agent", "guestlink-agent"), "--listen",
              "unix:" + sock, "--config", conf],
             env={"ASAN_OPTIONS": "detect_leaks=0"})
try:
    if not wait_for_listener(sock, 20, agent):
        skip_all("the agent does not start as nobody here")
    c = LineClient(unix_connect(sock, 10))
    a = c.call("file.stat", {"path": tmp}, id=1)
    is_eq(a.get("error", {}).get("code"), -32003,
          "file.stat without any worker thread: -32003 (%s)" % a.get("error", {}).get("message"))
    is_eq(c.call("agent.ping", id=2).get("result"), "pong", "the agent serves on")
    is_eq(agent.stop(), 0, "agent exits 0")
finally:
    agent.stop()
done()
