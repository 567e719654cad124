#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""guestlink against the real guestlink-agent on a Unix socket in a temporary
directory: ping, info, methods, call, errors and exit codes; and the
libguestlink example program."""

import json
import os
import subprocess

from gltest import Proc, build_path, diag, done, is_eq, ok, skip_all, tmpdir, wait_for_listener

AGENT = build_path("agent", "guestlink-agent")
GUESTLINK = build_path("host", "guestlink")
EXAMPLE = build_path("tests", "proto", "example-client")
if not os.access(AGENT, os.X_OK):
    skip_all("guestlink-agent not built")

TMP = tmpdir()
SOCK = os.path.join(TMP, "agent.sock")
CONF = os.path.join(TMP, "agent.conf")
with open(CONF, "w") as f:
    json.dump({"deny": ["system.shutdown"]}, f)

agent = Proc([AGENT, "--config", CONF, "--listen", "unix:" + SOCK],
             stderr=subprocess.DEVNULL)
if not ok(wait_for_listener(SOCK, 10, agent), "agent listens on its Unix socket"):
    done()


def run(*args, timeout=20):
    env = {k: v for k, v in os.environ.items() if k != "GUESTLINK_ADDRESS"}
    p = subprocess.run([GUESTLINK, "-a", "unix:" + SOCK] + list(args), capture_output=True,
                       text=True, env=env, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


rc, out, err = run("ping")
ok(rc == 0 and out.startswith("pong from unix:") and " time=" in out, "ping: exit 0 with a time")
rc, out, err = run("--json", "ping")
j = json.loads(out) if rc == 0 else {}
ok(rc == 0 and j.get("time_ms", -1) >= 0 and j.get("result") == "pong", "ping --json")

rc, out, err = run("info")
ok(rc == 0 and out.startswith("agent:\n") and "\nsystem:\n" in out and "  version: " in out,
   "info: agent and system sections")
ok("  hostname: %s\n" % os.uname().nodename in out, "info: the real host name")
rc, out, err = run("--json", "info")
j = json.loads(out) if rc == 0 else {}
ok(rc == 0 and j["system"]["hostname"] == os.uname().nodename and "version" in j["agent"],
   "info --json")

rc, out, err = run("methods")
names = [line.split()[0] for line in out.splitlines()]
ok(rc == 0 and {"agent.ping", "agent.echo", "agent.info", "system.info"} <= set(names),
   "methods lists the agent's methods")
rc, out, err = run("--json", "methods")
j = json.loads(out) if rc == 0 else []
ok(rc == 0 and all(m["summary"] for m in j if m["name"].startswith("agent.")),
   "methods --json has summaries")

params = {"s": "x/y é", "n": [1, -2, 3.5], "t": True, "z": None}
rc, out, err = run("call", "agent.echo", json.dumps(params))
ok(rc == 0 and json.loads(out) == params, "call agent.echo with named params")
rc, out, err = run("--json", "call", "agent.echo", "[-1,[2]]")
is_eq((rc, out), (0, "[-1,[2]]\n"), "call --json with positional params")

rc, out, err = run("call", "agent.nope")
is_eq((rc, err), (1, "guestlink: agent.nope: Method not found (-32601)\n"),
      "unknown method: exit 1, one line")
rc, out, err = run("--json", "call", "agent.nope")
j = json.loads(out) if out else {}
ok(rc == 1 and j.get("error", {}).get("code") == -32601, "unknown method with --json")
rc, out, err = run("call", "system.shutdown", "{}")
ok(rc == 1 and "(-32001)" in err, "denied method: -32001, exit 1")
rc, out, err = run("call", "agent.info", "[1,2,3,4,5,6,7,8,9]")
ok(rc == 1 and "(-32602)" in err, "bad params: -32602, exit 1")

# The example program from the README.
if os.access(EXAMPLE, os.X_OK):
    p = subprocess.run([EXAMPLE, "unix:" + SOCK], capture_output=True, text=True, timeout=20)
    lines = sorted(p.stdout.splitlines())
    is_eq((p.returncode, lines),
          (0, ['echo: { "n": 2 }', 'nosuch: error -32601: Method not found', 'ping: "pong"',
               'sync: [ "hello" ]']),
          "example-client: one sync and three async calls")

ok(agent.alive(), "agent still running")
is_eq(agent.stop(), 0, "agent exits 0 on SIGTERM")
rc, out, err = run("ping")
ok(rc == 255, "agent gone: exit 255")
done()
