#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The configuration file as shipped (agent/agent.conf, installed as
/etc/guestlink/agent.conf): accepted by the agent, and equal to the defaults;
'#' comment lines are ignored and nothing else is."""

import os
import subprocess

from gltest import LineClient, Proc, build_path, done, is_eq, ok, src_path, tmpdir, \
    unix_connect, wait_for_listener

AGENT = build_path("agent", "guestlink-agent")
TMP = tmpdir()


def check(text):
    path = os.path.join(TMP, "agent.conf")
    with open(path, "w") as f:
        f.write(text)
    return subprocess.run([AGENT, "--config", path, "--check-config"], capture_output=True,
                          text=True, timeout=10)


with open(src_path("agent", "agent.conf")) as f:
    shipped = f.read()
r = check(shipped)
is_eq(r.returncode, 0, "the shipped agent.conf passes --check-config: %s" % r.stderr.strip())
# Uncommenting every "key": value line of the shipped file (all defaults, so
# one object with each key once) is still a valid configuration.
lines = [ln for ln in shipped.splitlines() if ln.startswith("#\t\"")]
keys = [ln.split('"')[1] for ln in lines]
seen, body = set(), []
for k, ln in zip(keys, lines):
    if k not in seen:
        seen.add(k)
        body.append(ln[2:].rstrip(","))
r = check("{\n" + ",\n".join(body) + "\n}\n")
is_eq(r.returncode, 0, "the shipped defaults, uncommented, are a valid configuration: %s"
      % r.stderr.strip())
ok({"allow", "deny", "peer_cids", "max_connections", "max_message_bytes", "max_inflight",
    "plugin_dir", "plugin_timeout_s", "exec"} <= seen,
   "the shipped file documents every key (%s)" % ", ".join(sorted(seen)))

is_eq(check('# a comment\n  # an indented one\n{ "max_inflight": 4 }\n# after\n').returncode, 0,
      "comment lines before, inside and after the object are ignored")
is_eq(check('# {"allow": []}\n{ "nosuch": 1 }\n').returncode, 1,
      "an unknown key after a comment is still refused")
is_eq(check('{ "max_inflight": 4 # not a comment\n}\n').returncode, 1,
      "'#' after other text on a line is not a comment")
is_eq(check('{ "plugin_dir": "/x#y" }\n').returncode, 0, "'#' inside a string is data")

# A key after a comment line takes effect: agent.echo denied.
conf = os.path.join(TMP, "deny.conf")
with open(conf, "w") as f:
    f.write('# deny echo\n{\n# "deny": [],\n  "deny": ["agent.echo"]\n}\n')
sock = os.path.join(TMP, "agent.sock")
agent = Proc([AGENT, "--config", conf, "--listen", "unix:" + sock])
ok(wait_for_listener(sock, 10, agent), "agent with a commented config listens")
c = LineClient(unix_connect(sock))
is_eq(c.call("agent.echo", ["x"]).get("error", {}).get("code"), -32001,
      "a key following comment lines takes effect (agent.echo denied)")
is_eq(c.call("agent.ping", id=2).get("error"), None, "other methods still answer")
agent.stop()
done()
