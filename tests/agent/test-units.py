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

# The QGA service on virtio-serial: bound to the port's device unit, started
# by the udev rule when the port appears.
qga = build_path("units", "guestlink-agent-qga.service")
ok(os.path.exists(qga), "guestlink-agent-qga.service generated")
qtext = open(qga).read()
ok(re.search(r"^ExecStart=/\S+/guestlink-agent --listen qga-serial:"
             r"/dev/virtio-ports/org.qemu.guest_agent.0$", qtext, re.M),
   "it serves QGA on the org.qemu.guest_agent.0 port")
ok(re.search(r"^BindsTo=dev-virtio\\x2dports-org.qemu.guest_agent.0.device$", qtext, re.M),
   "it is bound to the port's device unit")
rules = open(src_path("units", "60-guestlink-agent-qga.rules")).read()
ok('ATTR{name}=="org.qemu.guest_agent.0"' in rules and "guestlink-agent-qga.service" in rules,
   "the udev rule wants it when the port appears")
with open(os.path.join(tmp, "guestlink-agent-qga.service"), "w") as f:
    f.write(re.sub(r"^ExecStart=\S+", "ExecStart=" + agent_path(), qtext, flags=re.M))
r = subprocess.run([sa, "verify", "--man=no", os.path.join(tmp, "guestlink-agent-qga.service")],
                   capture_output=True, text=True, timeout=60)
diag(r.stdout + r.stderr)
ok("guestlink-agent-qga" not in (r.stdout + r.stderr), "systemd-analyze verify: no warnings about it")
done()
