# SPDX-License-Identifier: LGPL-2.1-or-later
"""system.* and fs.*: read-only methods for real, and the argument checking of
the ones that change the whole machine (set-time, set-hostname, shutdown,
freeze, trim), which the VM suite runs for real. Nothing here changes the
machine the tests run on: every call of those methods is invalid."""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gltest as g  # noqa: E402
from agentlib import Agent, error_code  # noqa: E402

agent = Agent()
c = agent.client()
d = g.tmpdir()

r = c.result("system.time")
g.ok(abs(r["seconds"] + r["nanoseconds"] / 1e9 - time.time()) < 5 and r["utc"].endswith("Z"),
     "system.time is the real clock")
r = c.result("system.hostname")
g.is_eq(r["hostname"], socket.gethostname(), "system.hostname")
r = c.result("system.users")
g.ok(isinstance(r["users"], list), "system.users lists sessions")
r = c.result("system.network")
lo = [i for i in r["interfaces"] if i["name"] == "lo"]
g.ok(lo and lo[0]["loopback"] and any(a["address"] == "127.0.0.1" and a["prefix"] == 8
                                       for a in lo[0]["addresses"]),
     "system.network shows lo with 127.0.0.1/8")
g.ok(lo and "statistics" in lo[0] and "rx_bytes" in lo[0]["statistics"],
     "system.network carries statistics")
r = c.result("system.filesystems")
root = [f for f in r["filesystems"] if f["mountpoint"] == "/"]
st = os.statvfs("/")
g.ok(root and root[-1]["total_bytes"] == st.f_blocks * st.f_frsize,
     "system.filesystems lists / with its size")

r = c.result("fs.status")
g.is_eq((r["frozen"], r["mountpoints"]), (False, []), "fs.status: nothing frozen")
r = c.result("fs.thaw")
g.is_eq(r["thawed"], 0, "fs.thaw with nothing frozen thaws nothing")

bad = [
    ("system.set-time", {}, -32602, "set-time without seconds"),
    ("system.set-time", {"seconds": -1}, -32602, "set-time before the epoch"),
    ("system.set-time", {"seconds": 1700000000, "nanoseconds": 1000000000}, -32602,
     "set-time nanoseconds out of range"),
    ("system.set-time", {"seconds": "now"}, -32602, "set-time seconds not an integer"),
    ("system.set-hostname", {"hostname": ""}, -32602, "empty hostname"),
    ("system.set-hostname", {"hostname": "bad_name"}, -32602, "hostname with _"),
    ("system.set-hostname", {"hostname": "-lead"}, -32602, "hostname with a leading -"),
    ("system.set-hostname", {"hostname": "a" * 65}, -32602, "hostname too long"),
    ("system.set-hostname", {"hostname": "a..b"}, -32602, "hostname with an empty label"),
    ("system.shutdown", {"mode": "explode"}, -32602, "unknown shutdown mode"),
    ("system.shutdown", {"mode": "reboot", "delay_s": -1}, -32602, "negative delay"),
    ("system.shutdown", {"mode": "reboot", "delay_s": 10 ** 9}, -32602, "huge delay"),
    ("fs.freeze", {}, -32602, "freeze without timeout"),
    ("fs.freeze", {"timeout_s": 0}, -32602, "freeze with timeout 0"),
    ("fs.freeze", {"timeout_s": 10 ** 6}, -32602, "freeze with a huge timeout"),
    ("fs.freeze", {"timeout_s": 5, "mountpoints": ["relative"]}, -32602, "relative mount point"),
    ("fs.freeze", {"timeout_s": 5, "mountpoints": [d]}, -32002, "not a mount point"),
    ("fs.freeze", {"timeout_s": 5, "mountpoints": "/"}, -32602, "mountpoints not an array"),
    ("fs.trim", {"mountpoints": [d]}, -32002, "trim of a path that is no mount point"),
    ("fs.trim", {"minimum": -1}, -32602, "negative trim minimum"),
]
for method, params, code, what in bad:
    a = c.call(method, params)
    g.ok(error_code(a) == code and a["error"].get("message"),
         "%s answers %d: %s" % (what, code, a.get("error", {}).get("message")))
r = c.result("fs.status")
g.is_eq(r["frozen"], False, "nothing was frozen by the rejected calls")
g.is_eq(c.result("system.hostname")["hostname"], socket.gethostname(), "hostname unchanged")

doc = c.result("rpc.discover")
names = {m["name"] for m in doc["methods"]}
want = {"exec.start", "exec.run", "exec.status", "exec.wait", "exec.write", "exec.signal",
        "exec.release", "exec.read", "file.stat", "file.list", "file.read", "file.write",
        "file.open", "file.channel", "file.attach",
        "file.close", "file.remove", "file.mkdir", "file.rename", "system.time",
        "system.set-time", "system.hostname", "system.set-hostname", "system.users",
        "system.network", "system.filesystems", "system.shutdown", "fs.freeze", "fs.thaw",
        "fs.status", "fs.trim"}
g.is_eq(sorted(want - names), [], "every method of these families is in rpc.discover")
g.ok(agent.alive(), "the agent is still running")
c.close()
g.is_eq(agent.stop(), 0, "the agent exits 0")

# Policy applies to these methods like to any other.
agent = Agent({"deny": ["system.shutdown", "file.*"]})
c = agent.client()
g.is_eq(error_code(c.call("system.shutdown", {"mode": "poweroff"})), -32001,
        "a denied system.shutdown answers -32001 and does nothing")
g.is_eq(error_code(c.call("file.read", {"path": "/etc/hostname"})), -32001,
        "deny globs cover the file family")
c.close()
agent.stop()
g.done()
