#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Errors people can act on, and exit codes that cannot be confused with a
remote command's: guestlink against the real agent on a Unix socket, and
through the real vhost-user-vsock backend and guestsim (no VM) for the
"backend up, guest refuses the port" and "backend up, no guest" cases; and
ping --wait for an agent that comes up later."""

import json
import os
import subprocess
import time

from gltest import (Proc, build_path, diag, done, is_eq, ok, skip_all, tmpdir, wait_for_listener,
                    wait_for_path)

AGENT = build_path("agent", "guestlink-agent")
GUESTLINK = build_path("host", "guestlink")
BACKEND = build_path("backend", "vhost-user-vsock")
GUESTSIM = build_path("tests", "guestsim", "guestsim")
for path in (AGENT, BACKEND, GUESTSIM):
    if not os.access(path, os.X_OK):
        skip_all("%s not built" % path)

TMP = tmpdir()
SOCK = os.path.join(TMP, "agent.sock")
agent = Proc([AGENT, "--listen", "unix:" + SOCK], stderr=subprocess.DEVNULL)
if not ok(wait_for_listener(SOCK, 10, agent), "agent listens on its Unix socket"):
    done()


def run(*args, address="unix:" + SOCK, timeout=60):
    env = {k: v for k, v in os.environ.items() if k != "GUESTLINK_ADDRESS"}
    p = subprocess.run([GUESTLINK, "-a", address] + list(args), capture_output=True, text=True,
                       env=env, timeout=timeout, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


# --- exec: the remote status, or 127/126/255 for our own failures --------------
rc, out, err = run("exec", "--", "sh", "-c", "exit 7")
is_eq(rc, 7, "exec exits with the remote status")
rc, out, err = run("exec", "--", "sh", "-c", "kill -TERM $$")
is_eq(rc, 128 + 15, "exec: killed by SIGTERM -> 143")
missing = os.path.join(TMP, "no-such-tool")
rc, out, err = run("exec", "--", missing)
is_eq((rc, err), (127, "guestlink: %s: No such file or directory\n" % missing),
      "exec of a missing program: 127, names it")
tool = os.path.join(TMP, "tool")
with open(tool, "w") as f:
    f.write("#!/bin/sh\necho hi\n")
os.chmod(tool, 0o644)
rc, out, err = run("exec", "--", tool)
is_eq((rc, err), (126, "guestlink: %s: Permission denied\n" % tool),
      "exec of a non-executable file: 126, Permission denied")
rc, out, err = run("exec", "--cwd", os.path.join(TMP, "nodir"), "--", "true")
ok(rc == 127 and "--cwd" in err, "exec with a missing --cwd: 127, says --cwd may be why")

# --- guest files: object and cause ------------------------------------------------
rc, out, err = run("cp", "guest:" + TMP + "/x/y", os.path.join(TMP, "dl"))
is_eq((rc, err), (1, "guestlink: guest:%s/x/y: No such file or directory\n" % TMP),
      "cp from a missing guest file: guest:PATH: No such file or directory")
rc, out, err = run("--json", "cp", "guest:" + TMP + "/x/y", os.path.join(TMP, "dl"))
e = json.loads(out).get("error", {}) if out else {}
ok(rc == 1 and e.get("code") == -32002 and e.get("errno") == "ENOENT"
   and e.get("object") == "guest:%s/x/y" % TMP and err == "",
   "cp --json: the agent's code, the errno name and the object")
rc, out, err = run("cp", TMP, "guest:" + TMP + "/copy")
is_eq((rc, err), (2, "guestlink: %s: Is a directory (use -r to copy directories)\n" % TMP),
      "cp of a directory without -r says so")
rc, out, err = run("cp", "guest:" + TMP, os.path.join(TMP, "copy"))
ok(rc == 2 and "Is a directory (use -r" in err, "cp from a guest directory without -r says so")
ro = os.path.join(TMP, "ro")
os.mkdir(ro, 0o555)
rc, out, err = run("cp", tool, "guest:" + ro + "/t")
if os.geteuid() != 0:
    ok(rc == 1 and "guest:%s/t: Permission denied" % ro in err, "cp into a read-only guest dir")
    if rc != 1:
        diag(err)

# --- hybrid: backend up, guest refusing or silent ---------------------------------
vu = os.path.join(TMP, "vhost.sock")
uds = os.path.join(TMP, "vm.vsock")
log = open(os.path.join(TMP, "stack.log"), "w")
backend = Proc([BACKEND, "--socket-path=" + vu, "--uds-path=" + uds, "--guest-cid=3"],
               stdout=log, stderr=log)
ok(wait_for_listener(uds, 10, backend), "backend listens")
# No front-end yet: the backend holds the CONNECT until its own timeout.
rc, out, err = run("ping", address="hybrid:%s:9731" % uds)
ok(rc == 255 and "the guest did not answer" in err and "VM running" in err,
   "backend without a VM: says the guest did not answer")
if rc != 255:
    diag(err)
guestsim = Proc([GUESTSIM, "--socket-path=" + vu, "--bridge", "9731=unix:" + SOCK],
                stdout=log, stderr=log)
deadline = time.monotonic() + 15
while time.monotonic() < deadline:
    rc, out, err = run("--timeout", "3", "ping", address="hybrid:%s:9731" % uds)
    if rc == 0:
        break
    time.sleep(0.2)
is_eq(rc, 0, "through backend and guestsim: ping answers")
t0 = time.monotonic()
rc, out, err = run("--timeout", "60", "ping", address="hybrid:%s:9999" % uds)
took = time.monotonic() - t0
ok(rc == 255 and "guest refused the port" in err and "Connection refused" in err,
   "guest port without a listener: says the guest refused it")
ok(took < 60, "the refusal is reported without waiting out --timeout")
diag("refused port reported after %.2f s" % took)
rc, out, err = run("--json", "ping", address="hybrid:%s:9999" % uds)
ok(rc == 255 and json.loads(out)["error"]["errno"] == "ECONNREFUSED", "refused port with --json")
is_eq(guestsim.stop(), 0, "guestsim exits 0")
backend.stop()
log.close()

# --- ping --wait: an agent that comes up later ----------------------------------------
late = os.path.join(TMP, "late.sock")
env = {k: v for k, v in os.environ.items() if k != "GUESTLINK_ADDRESS"}
waiter = Proc([GUESTLINK, "-a", "unix:" + late, "ping", "--wait", "60"], env=env,
              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
time.sleep(1)
ok(waiter.alive(), "ping --wait keeps trying while nothing listens")
late_agent = Proc([AGENT, "--listen", "unix:" + late], stderr=subprocess.DEVNULL)
try:
    out, err = waiter.p.communicate(timeout=60)
except subprocess.TimeoutExpired:
    out, err = "", "timeout"
ok(waiter.p.returncode == 0 and "agent up after" in out and "pong from" in out,
   "ping --wait: answers once the agent is up")
late_agent.stop()
rc, out, err = run("ping", "--wait", "0.5", address="unix:" + late)
ok(rc == 255 and "cannot connect" in err, "ping --wait: gives up after S seconds, exit 255")

is_eq(agent.stop(), 0, "agent exits 0 on SIGTERM")
rc, out, err = run("exec", "--", "true")
ok(rc == 255, "exec without an agent: 255, not a remote status")
done()
