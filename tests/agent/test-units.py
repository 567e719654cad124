#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The agent's systemd units pass systemd-analyze verify (with ExecStart
pointed at the built agent, since verify checks that the program exists)."""

import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gltest import build_path, diag, done, is_eq, ok, skip_all, src_path, tmpdir  # noqa: E402
from agentlib import agent_path  # noqa: E402

sa = shutil.which("systemd-analyze")
if not sa:
    skip_all("systemd-analyze not installed")

service = build_path("units", "guestlink-agent.service")
socket_unit = src_path("units", "guestlink-agent.socket")
ok(os.path.exists(service), "guestlink-agent.service generated")
text = open(service).read()
ok("@sbindir@" not in text and re.search(r"^ExecStart=/\S+/guestlink-agent$", text, re.M),
   "@sbindir@ substituted with an absolute path")
ok(re.search(r"^Type=notify$", text, re.M), "Type=notify")
ok(re.search(r"^ListenStream=vsock::9731$", open(socket_unit).read(), re.M),
   "socket listens on vsock::9731")

tmp = tmpdir()
with open(os.path.join(tmp, "guestlink-agent.service"), "w") as f:
    f.write(re.sub(r"^ExecStart=\S+", "ExecStart=" + agent_path(), text, flags=re.M))
shutil.copy(socket_unit, os.path.join(tmp, "guestlink-agent.socket"))
r = subprocess.run([sa, "verify", "--man=no", os.path.join(tmp, "guestlink-agent.socket"),
                    os.path.join(tmp, "guestlink-agent.service")],
                   capture_output=True, text=True, timeout=60)
diag(r.stdout + r.stderr)
is_eq(r.returncode, 0, "systemd-analyze verify passes")
ok("guestlink-agent" not in (r.stdout + r.stderr), "without warnings about our units")
done()
