#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The audit trail: every call that changes the guest (every method without
METHOD_READONLY) and every policy denial leaves one record naming the method,
the peer (uid/pid on a Unix socket), the outcome and the params, with client
strings escaped and cut; read-only calls only at debug level. Outside the
journal the records are "audit:" lines on the agent's stderr."""

import base64
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gltest import (LineClient, Proc, diag, done, is_eq, ok, tmpdir, unix_connect,  # noqa: E402
                    wait_for_listener)
from agentlib import agent_path  # noqa: E402

tmp = tmpdir()


def start(name, config, level=None):
    sock = os.path.join(tmp, name + ".sock")
    conf = os.path.join(tmp, name + ".conf")
    log = os.path.join(tmp, name + ".log")
    with open(conf, "w") as f:
        json.dump(config, f)
    env = {"GUESTLINK_LOG_LEVEL": level} if level else {}
    env["JOURNAL_STREAM"] = ""
    errf = open(log, "wb")
    p = Proc([agent_path(), "--listen", "unix:" + sock, "--config", conf], env=env, stderr=errf)
    errf.close()
    if not wait_for_listener(sock, 15, p):
        raise RuntimeError("agent did not start")
    return p, LineClient(unix_connect(sock)), log


def records(log):
    """The audit records in the log, as dicts of their key=value fields."""
    out = []
    with open(log, "rb") as f:
        for raw in f.read().split(b"\n"):
            line = raw.decode("ascii", "replace")
            if "audit: " not in line:
                continue
            rec = {"line": line}
            for key in ("method", "peer", "outcome", "code", "id"):
                pos = line.find(" %s=" % key)
                if pos >= 0:
                    rec[key] = line[pos + len(key) + 2:].split(" ", 1)[0]
            rec["params"] = line.split(" params=", 1)[1] if " params=" in line else None
            out.append(rec)
    return out


def wait_records(log, n, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = records(log)
        if len(r) >= n:
            return r
        time.sleep(0.05)
    return records(log)


def call(c, method, params=None, id=1):
    return c.call(method, params, id=id)


me = "unix:pid=%d,uid=%d" % (os.getpid(), os.getuid())
agent, c, log = start("a", {"deny": ["system.shutdown"]})

# read-only calls leave nothing at the default level
is_eq(call(c, "agent.ping")["result"], "pong", "agent.ping answered")
call(c, "file.stat", {"path": tmp})
call(c, "system.info")

# an exec with a forged line and a terminal escape in its argv
argv = ["echo", "one\nguestlink-agent: audit: FORGED method=exec.run", "\x1b[31mred"]
a = call(c, "exec.run", {"argv": argv}, id="exec-1")
ok("result" in a, "exec.run answered")
# a 300 KB write: the record shows the path and the data's size only
data = os.urandom(300000)
target = os.path.join(tmp, "written")
a = call(c, "file.write", {"path": target, "data": base64.b64encode(data).decode()}, id=2)
ok("result" in a, "file.write answered")
a = call(c, "file.remove", {"path": os.path.join(tmp, "no-such-file")}, id=3)
failed_code = a.get("error", {}).get("code")
ok(failed_code is not None, "file.remove of a missing file fails (%s)" % failed_code)
a = call(c, "system.shutdown", {"mode": "poweroff"}, id=4)
is_eq(a.get("error", {}).get("code"), -32001, "system.shutdown denied by policy")

recs = wait_records(log, 4)
for r in recs:
    diag(r["line"][:300])
is_eq([r.get("method") for r in recs], ["exec.run", "file.write", "file.remove", "system.shutdown"],
      "one record per changing call, in order; none for ping, file.stat, system.info")
ok(all(r.get("peer") == me for r in recs), "every record names the peer (%s)" % me)
is_eq([(r.get("outcome"), r.get("code")) for r in recs],
      [("ok", "0"), ("ok", "0"), ("error", str(failed_code)), ("denied", "-32001")],
      "outcomes: ok, ok, error with its code, denied")
ok(recs and recs[0].get("id") == '"exec-1"' and "echo" in (recs[0]["params"] or ""),
   "the exec record carries the id and the argv")
with open(log, "rb") as f:
    text = f.read()
ok(b"\x1b" not in text and not any(line.startswith(b"guestlink-agent: audit: FORGED")
                                   for line in text.split(b"\n")),
   "client strings are escaped: no raw escape byte, no forged line")
ok(len(recs) > 1 and target in recs[1]["params"] and "(400000 bytes)" in recs[1]["params"]
   and len(recs[1]["line"]) < 1400,
   "the write record has the path and the data's size, not the data")

# a flood of changing calls is rate-limited, and says how much it dropped
n0 = len(records(log))
t0 = time.monotonic()
batch = [{"jsonrpc": "2.0", "method": "file.mkdir", "params": {"path": os.path.join(tmp, "d%d" % i)},
          "id": i} for i in range(400)]
c.send(batch)
answers = c.recv(30)
dt = time.monotonic() - t0
ok(isinstance(answers, list) and len(answers) == 400, "400 file.mkdir in one batch answered")
call(c, "agent.ping", id=9)
n = len(records(log)) - n0
if dt < 0.9:
    ok(n <= 200, "a burst of 400 changing calls within %.2fs left %d records (<= 200 a second)"
       % (dt, n))
else:
    ok(n <= 400, "400 changing calls over %.2fs left %d records" % (dt, n))
agent.stop()
time.sleep(0.1)

# at debug level read-only calls are recorded too
agent, c, log = start("b", {}, level="7")
call(c, "agent.ping", id="p")
recs = wait_records(log, 1)
ok(any(r.get("method") == "agent.ping" and r.get("outcome") == "ok" for r in recs),
   "at debug level agent.ping is recorded")
# a password never reaches the trail (the user does not exist: nothing changes)
secret = "Tr41l-S3cret-%d" % os.getpid()
a = call(c, "user.set-password", {"user": "gl-audit-no-such-user", "password": secret}, id="pw")
ok("error" in a, "user.set-password for an unknown user fails (%s)" % a.get("error"))
recs = wait_records(log, 2)
pw = [r for r in recs if r.get("method") == "user.set-password"]
ok(pw and "gl-audit-no-such-user" in (pw[0]["params"] or "") and "password" in pw[0]["params"],
   "the set-password record names the user and that a password was given")
with open(log, "rb") as f:
    ok(secret.encode() not in f.read(), "the password's text is in no log line")
agent.stop()
done()
