#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""--json everywhere: against the real agent, every command prints exactly one
valid JSON document on stdout (exec: JSON lines), errors included (the agent's
code, the errno name and message), nothing on stderr; times are rounded."""

import base64
import json
import os
import re
import subprocess

from gltest import Proc, build_path, diag, done, is_eq, ok, skip_all, tmpdir, wait_for_listener

AGENT = build_path("agent", "guestlink-agent")
GUESTLINK = build_path("host", "guestlink")
if not os.access(AGENT, os.X_OK):
    skip_all("guestlink-agent not built")

TMP = tmpdir()
SOCK = os.path.join(TMP, "agent.sock")
CONF = os.path.join(TMP, "agent.conf")
with open(CONF, "w") as f:
    json.dump({"deny": ["system.shutdown", "fs.freeze", "fs.thaw"]}, f)
agent = Proc([AGENT, "--config", CONF, "--listen", "unix:" + SOCK], stderr=subprocess.DEVNULL)
if not ok(wait_for_listener(SOCK, 10, agent), "agent listens on its Unix socket"):
    done()


def run(*args):
    env = {k: v for k, v in os.environ.items() if k != "GUESTLINK_ADDRESS"}
    p = subprocess.run([GUESTLINK, "-a", "unix:" + SOCK, "--json"] + list(args),
                       capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


def one_doc(out):
    """The value if out is exactly one JSON text and a newline, else None."""
    try:
        dec = json.JSONDecoder()
        v, end = dec.raw_decode(out)
        return v if out[end:] == "\n" else None
    except ValueError:
        return None


src = os.path.join(TMP, "src.bin")
with open(src, "wb") as f:
    f.write(os.urandom(100000))
CASES = [
    (("ping",), 0, lambda v: v["result"] == "pong" and v["time_ms"] >= 0),
    (("info",), 0, lambda v: "version" in v["agent"] and "hostname" in v["system"]),
    (("methods",), 0, lambda v: any(m["name"] == "file.read" for m in v)),
    (("methods", "file.read"), 0, lambda v: v["name"] == "file.read" and v["params"]),
    (("call", "agent.echo", "[1]"), 0, lambda v: v == [1]),
    (("cp", src, "guest:" + TMP + "/up.bin"), 0, lambda v: v["bytes"] == 100000),
    (("cp", src, "guest:" + TMP + "/"), 0, lambda v: v["path"] == TMP + "/src.bin"),
    (("cp", "guest:" + TMP + "/up.bin", TMP + "/down.bin"), 0, lambda v: v["bytes"] == 100000),
    (("shutdown",), 1, lambda v: v["error"]["code"] == -32001),
    (("freeze",), 1, lambda v: v["error"]["code"] == -32001),
    (("thaw",), 1, lambda v: v["error"]["code"] == -32001),
    (("call", "agent.nope"), 1, lambda v: v["error"]["code"] == -32601),
    (("cp", "guest:/nonexistent/x", TMP + "/x"), 1,
     lambda v: v["error"]["errno"] == "ENOENT" and v["error"]["data"]["message"]
     == "No such file or directory"),
    (("methods", "no.such"), 1, lambda v: "no such method" in v["error"]["message"]),
    (("exec", "--", TMP + "/missing"), 127, lambda v: v["error"]["code"] == -32002),
    (("ping", "extra"), 2, lambda v: "error" in v),
]
for args, want_rc, check in CASES:
    rc, out, err = run(*args)
    v = one_doc(out)
    try:
        good = v is not None and check(v)
    except (KeyError, TypeError, IndexError):
        good = False
    ok(rc == want_rc and good and err == "", "--json %s: one JSON document, exit %d" %
       (" ".join(a.replace(TMP, "T") for a in args), want_rc))
    if not (rc == want_rc and good and err == ""):
        diag("rc=%r out=%r err=%r" % (rc, out, err))

# Times: at most 3 decimals in the text itself.
rc, out, err = run("ping")
ok(re.search(r'"time_ms":\d+(\.\d{1,3})?[,}]', out) is not None, "ping time_ms rounded: " + out.strip())
rc, out, err = run("cp", src, "guest:" + TMP + "/up2.bin")
ok(re.search(r'"seconds":\d+(\.\d{1,3})?[,}]', out) is not None, "cp seconds rounded: " + out.strip())

# exec: JSON lines, output as base64, then the exit.
rc, out, err = run("exec", "--", "sh", "-c", "printf 'a\\001b'; printf oops >&2; exit 3")
lines = [json.loads(line) for line in out.splitlines()]
data = {"stdout": b"", "stderr": b""}
for line in lines[:-1]:
    data[line["stream"]] += base64.b64decode(line["data"])
is_eq((rc, data, lines[-1]), (3, {"stdout": b"a\x01b", "stderr": b"oops"},
                              {"exit_status": 3, "code": 3, "signal": None, "timed_out": False}),
      "exec --json: output lines (base64) and the exit line; exit status 3")
rc, out, err = run("exec", "--", "sh", "-c", "kill -KILL $$")
is_eq((rc, json.loads(out.splitlines()[-1])),
      (137, {"exit_status": 137, "code": None, "signal": 9, "timed_out": False}),
      "exec --json: a signal")
rc, out, err = run("exec", "--timeout", "1", "--", "sleep", "30")
last = json.loads(out.splitlines()[-1]) if out else {}
ok(last.get("timed_out") is True and err == "", "exec --json: a timeout is in the exit line")

is_eq(agent.stop(), 0, "agent exits 0 on SIGTERM")
rc, out, err = run("ping")
v = one_doc(out)
ok(rc == 255 and v and v["error"]["errno"] == "ENOENT" and err == "", "--json unreachable: one document")
done()
