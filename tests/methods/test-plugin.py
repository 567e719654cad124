# SPDX-License-Identifier: LGPL-2.1-or-later
"""Plugins: executables in a temporary plugin directory become methods."""

import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gltest as g  # noqa: E402
from agentlib import Agent, error_code  # noqa: E402

pdir = g.tmpdir()


def plugin(name, script, schema=None):
    p = os.path.join(pdir, name)
    with open(p, "w") as f:
        f.write("#!/bin/sh\n" + script + "\n")
    os.chmod(p, 0o755)
    if schema is not None:
        with open(p + ".json", "w") as f:
            json.dump(schema, f)


# Echo the params back with the method name the agent passed in the environment.
plugin("test.echo", 'printf \'{"method":"%s","params":%s}\' "$GUESTLINK_METHOD" "$(cat)"')
plugin("test.typed", 'cat', {
    "summary": "Typed parameters",
    "params": [{"name": "n", "type": "integer", "required": True, "description": "a number"},
               {"name": "s", "type": "string"},
               {"name": "flag", "type": "boolean", "default": True}],
    "result": {"type": "object"}})
plugin("test.fail", 'echo "something broke" >&2; exit 4')
plugin("test.slow", 'sleep 30; echo "{}"')
plugin("test.garbage", 'echo "this is not json"')
plugin("test.silent", 'exit 0')
plugin("test.big", 'head -c 3000000 /dev/zero | tr "\\0" a')
plugin("exec.run", 'echo "{}"')  # must not shadow the built-in
with open(os.path.join(pdir, "not-executable"), "w") as f:
    f.write("#!/bin/sh\necho {}\n")
shutil.copy(g.src_path("agent", "plugins", "example-uptime"), pdir)
shutil.copy(g.src_path("agent", "plugins", "example-uptime.json"), pdir)

agent = Agent({"plugin_dir": pdir, "plugin_timeout_s": 1,
               "exec": {"max_output_bytes": 1000000}})
c = agent.client()

doc = c.result("rpc.discover")
methods = {m["name"]: m for m in doc["methods"]}
g.ok("test.echo" in methods and "example-uptime" in methods, "plugins appear in rpc.discover")
g.ok("not-executable" not in methods, "a file without the executable bit is no method")
typed = methods.get("test.typed", {})
g.ok(typed.get("summary") == "Typed parameters" and
     [p["name"] for p in typed.get("params", [])] == ["n", "s", "flag"],
     "the NAME.json summary and parameters appear in rpc.discover")

r = c.result("test.echo", {"a": [1, 2], "b": "x"})
g.is_eq(r, {"method": "test.echo", "params": {"a": [1, 2], "b": "x"}},
        "params go in on stdin, the result comes out of stdout")
r = c.result("test.echo")
g.is_eq(r["params"], {}, "absent params reach the plugin as {}")
r = c.result("test.typed", {"n": 5})
g.is_eq(r, {"n": 5, "flag": True}, "typed params: defaults filled, absent optional ones left out")
g.is_eq(error_code(c.call("test.typed", {"n": "five"})), -32602,
        "the schema is enforced before the plugin runs")
g.is_eq(error_code(c.call("test.typed", {})), -32602, "a required parameter is required")
a = c.call("test.fail")
g.ok(error_code(a) == -32000 and a["error"]["data"]["stderr"] == "something broke" and
     a["error"]["data"]["exit_code"] == 4, "a non-zero exit is an error carrying stderr")
a = c.call("test.garbage")
g.is_eq(error_code(a), -32000, "output that is not JSON is an error")
r = c.call("test.silent")
g.ok("result" in r and r["result"] is None, "no output is a null result")
a = c.call("test.big")
g.is_eq(error_code(a), -32003, "output beyond the cap is an error (-32003), not a cut result")
a = c.call("exec.run", {"argv": ["echo", "builtin"]})
g.ok("result" in a and a["result"].get("code") == 0, "a plugin cannot shadow a built-in method")

t0 = time.monotonic()
slow = c.request("test.slow")
ping = c.call("agent.ping")
# The plugin's answer cannot come before its 1 s timeout: the ping came first.
g.ok("result" in ping and time.monotonic() - t0 < 1.0,
     "a running plugin does not block other calls")
a = c.answer(slow, 15)
dt = time.monotonic() - t0
g.ok(error_code(a) == -32004 and 1.0 <= dt < 10, "a plugin past its timeout answers -32004 (%.2fs)"
     % dt)

r = c.result("example-uptime", {"precision": 2})
g.ok(isinstance(r.get("uptime_s"), float) and r["uptime_s"] > 0, "the example plugin works")
g.is_eq(error_code(c.call("example-uptime", {"precision": "x"})), -32602,
        "the example plugin's schema is enforced")
a = c.call("example-uptime", {"precision": 9})
g.is_eq(error_code(a), -32000, "the example plugin's own error comes back")

# Reload: a new plugin appears, a removed one disappears.
plugin("test.new", 'echo \'"fresh"\'')
os.unlink(os.path.join(pdir, "test.echo"))
agent.reload()
deadline = time.monotonic() + 10
while time.monotonic() < deadline:
    if "result" in c.call("test.new"):
        break
    time.sleep(0.1)
g.is_eq(c.call("test.new").get("result"), "fresh", "SIGHUP rescans: a new plugin is callable")
g.is_eq(error_code(c.call("test.echo")), -32601, "SIGHUP rescans: a removed plugin is gone")

time.sleep(0.3)
g.is_eq(agent.children("Z"), [], "no zombie plugin processes")
c.close()
g.is_eq(agent.stop(), 0, "the agent exits 0")
g.done()
