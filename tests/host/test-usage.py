#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""guestlink without a real agent: usage errors (exit 2), unreachable
addresses (exit 255), and the output and exit codes of every command against a
small scripted agent in this process (plain unix: and hybrid: with the
CONNECT handshake)."""

import json
import os
import socket
import subprocess
import threading

from gltest import build_path, diag, done, is_eq, ok, src_path, tmpdir

GUESTLINK = build_path("host", "guestlink")
TMP = tmpdir()


def run(*args, env=None, timeout=20):
    e = {k: v for k, v in os.environ.items() if k != "GUESTLINK_ADDRESS"}
    if env:
        e.update(env)
    p = subprocess.run([GUESTLINK] + list(args), capture_output=True, text=True,
                       env=e, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


# --- usage: exit 2, one line on stderr ---------------------------------------
USAGE = [
    ((), "no command"),
    (("-a", "unix:/x"), "no command with an address"),
    (("-a", "unix:/x", "frobnicate"), "unknown command"),
    (("--bogus", "ping"), "unknown option"),
    (("-a",), "option without its argument"),
    (("ping",), "no address at all"),
    (("-a", "tcp:1.2.3.4:5", "ping"), "bad address scheme"),
    (("-a", "vsock:x:1", "ping"), "bad vsock cid"),
    (("-a", "hybrid:/p", "ping"), "hybrid without a port"),
    (("-m", "a/b", "ping"), "machine name with a slash"),
    (("-m", "", "ping"), "empty machine name"),
    (("-a", "unix:/x", "-m", "vm", "ping"), "-a and -m together"),
    (("-a", "unix:/x", "--timeout", "0", "ping"), "timeout 0"),
    (("-a", "unix:/x", "--timeout", "-1", "ping"), "negative timeout"),
    (("-a", "unix:/x", "--timeout", "soon", "ping"), "timeout not a number"),
    (("-a", "unix:/x", "ping", "extra"), "ping takes no argument"),
    (("-a", "unix:/x", "info", "extra"), "info takes no argument"),
    (("-a", "unix:/x", "methods", "a", "b"), "methods takes at most one argument"),
    (("-a", "unix:/x", "call"), "call without a method"),
    (("-a", "unix:/x", "call", "m", "[]", "x"), "call with too many arguments"),
    (("-a", "unix:/x", "call", "m", "{oops"), "call with invalid JSON params"),
    (("-a", "unix:/x", "call", "m", "42"), "call with scalar params"),
    (("-a", "unix:/x", "call", "m", "\"s\""), "call with string params"),
]
for args, why in USAGE:
    rc, out, err = run(*args)
    ok(rc == 2 and out == "" and err.startswith("guestlink: ") and err.count("\n") == 1,
       "usage error, exit 2, one line: %s" % why)
    if rc != 2:
        diag("rc=%r out=%r err=%r" % (rc, out, err))

rc, out, err = run("--json", "-a", "unix:/x", "call", "m", "7")
ok(rc == 2 and json.loads(out)["error"]["message"].startswith("PARAMS"),
   "usage error with --json: a JSON error object on stdout")
rc, out, err = run("ping", env={"GUESTLINK_ADDRESS": ""})
ok(rc == 2 and "no address" in err, "empty GUESTLINK_ADDRESS counts as none")

rc, out, err = run("--help")
ok(rc == 0 and "Usage: guestlink" in out and all(c in out for c in ("ping", "info", "methods", "call")),
   "--help lists the commands, exit 0")
rc, out, err = run("--version")
ok(rc == 0 and out.startswith("guestlink ") and out.count("\n") == 1, "--version, exit 0")

# --- help: every command, no address, no connection --------------------------
rc, out, err = run("--help")
ALL = [line.split()[0] for line in out.split("Commands:\n")[1].split("\n\n")[0].splitlines()
       if line.startswith("  ") and not line.startswith("   ") and not line.startswith("  help")]
ok(len(ALL) >= 10, "--help lists %d commands" % len(ALL))
for c in ALL:
    rc, out, err = run(c, "--help")
    ok(rc == 0 and err == "" and out.startswith("Usage: guestlink ") and " %s" % c in out.splitlines()[0]
       and "\nOptions:\n" in out and "  -h, --help" in out and "\nExample:\n  guestlink " in out,
       "%s --help: usage, options and an example on stdout, exit 0, no address" % c)
    rc2, out2, err2 = run("-a", "unix:/nonexistent", c, "-h")
    rc3, out3, err3 = run("help", c)
    ok((rc2, out2, rc3, out3) == (0, out, 0, out), "%s -h and 'help %s' print the same" % (c, c))
rc, out, err = run("cp", "--verify", "--help")
ok(rc == 0 and out.startswith("Usage: guestlink ") and "--verify" in out,
   "--help after other options still helps")
rc, out, err = run("help", "nosuch")
ok(rc == 2 and out == "" and "unknown command 'nosuch'" in err, "help for an unknown command: exit 2")
rc, out, err = run("help")
ok(rc == 0 and "Commands:" in out, "help alone: the overview")
overview = out
for a in ("--help", "-h", "help"):
    rc, out, err = run("help", a)
    ok((rc, out, err) == (0, overview, ""), "help %s: the overview, not 'unknown command'" % a)
rc, out, err = run("-a", "unix:/nonexistent", "exec", "--", "ls", "-h")
ok(rc == 255 and "cannot connect" in err, "exec -- CMD -h is the command's option, not help")
rc, out, err = run("-a", "unix:/x", "ping", "--bogus")
ok(rc == 2 and out == "" and err.startswith("guestlink: ") and "--help" in err,
   "a command's unknown option: exit 2, one line pointing at --help")

# --- unreachable: exit 255 -------------------------------------------------------
missing = os.path.join(TMP, "missing.sock")
rc, out, err = run("-a", "unix:" + missing, "ping")
ok(rc == 255 and "cannot connect" in err and "No such file" in err, "missing socket: exit 255")
rc, out, err = run("ping", env={"GUESTLINK_ADDRESS": "unix:" + missing})
ok(rc == 255, "GUESTLINK_ADDRESS is used: exit 255 for a missing socket")
rc, out, err = run("-m", "guestlink-test-no-such-vm", "ping")
ok(rc == 255 and "/run/guestlink/guestlink-test-no-such-vm.vsock" in err,
   "-m NAME uses the backend socket under /run/guestlink")
rc, out, err = run("--json", "-a", "unix:" + missing, "info")
try:
    e = json.loads(out)["error"]
except (ValueError, KeyError):
    e = {}
ok(rc == 255 and e.get("errno") == "ENOENT" and err == "", "--json: unreachable as a JSON error object")

stale = os.path.join(TMP, "stale.sock")
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(stale)
s.close()
rc, out, err = run("-a", "unix:" + stale, "ping")
ok(rc == 255 and "refused" in err, "stale socket (nobody listening): exit 255")


# --- a scripted agent ------------------------------------------------------------
class FakeAgent:
    """Answers JSON-RPC lines on a Unix socket, one thread per connection.
    With hybrid=True it first expects "CONNECT <port>\\n" and answers OK."""

    def __init__(self, path, hybrid=False, answer=b"OK 1073741824\n"):
        self.path = path
        self.hybrid = hybrid
        self.answer = answer
        self.connects = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.stopping = False
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        c.settimeout(10)
        f = c.makefile("rb")
        try:
            if self.hybrid:
                self.connects.append(f.readline())
                c.sendall(self.answer)
                if not self.answer.startswith(b"OK"):
                    return
            for line in f:
                req = json.loads(line)
                ans = self.answer_for(req)
                if ans is not None:
                    c.sendall(json.dumps(ans).encode() + b"\n")
        except (OSError, ValueError):
            pass
        finally:
            c.close()

    def answer_for(self, req):
        m, i = req.get("method"), req.get("id")
        res = lambda r: {"jsonrpc": "2.0", "result": r, "id": i}
        if m == "agent.ping":
            return res("pong")
        if m == "agent.info":
            return res({"version": "9.9", "uptime_s": 12, "connections": 1,
                        "methods": ["agent.ping", "agent.info"]})
        if m == "system.info":
            return res({"hostname": "guest1", "os_release": {"ID": "debian", "VERSION_ID": "12"},
                        "load": [0.5, 0.25, 0.0], "cpus": 2})
        if m == "rpc.discover":
            return res({"openrpc": "1.2.6", "methods": [
                {"name": "agent.ping", "summary": "Check the agent answers"},
                {"name": "agent.echo", "summary": "Return the params"},
                {"name": "x.nosummary"}]})
        if m == "agent.echo":
            return res(req.get("params"))
        # A hostile tree for cp -r: names that would leave the destination.
        params = req.get("params") or {}
        if m == "file.stat" and params.get("path", "").startswith("/t"):
            return res({"type": "directory", "mode": 0o755, "size": 0})
        if m == "file.list" and params.get("path") == "/t":
            return res({"entries": [
                {"name": "../escape", "type": "file", "size": 1, "mode": 0o644},
                {"name": "..", "type": "directory", "mode": 0o755},
                {"name": "/etc", "type": "directory", "mode": 0o755},
                {"name": "sub", "type": "directory", "mode": 0o700}], "truncated": False})
        if m == "file.list" and params.get("path") == "/t/sub":
            return res({"entries": [], "truncated": False})
        if m == "slow.never":
            return None
        if m == "drop":
            raise OSError("drop")
        data = {"method": m}
        return {"jsonrpc": "2.0", "id": i,
                "error": {"code": -32601, "message": "Method not found", "data": data}}

    def stop(self):
        self.stopping = True
        self.t.join(5)
        self.sock.close()


agent_path = os.path.join(TMP, "agent.sock")
fake = FakeAgent(agent_path)
A = ("-a", "unix:" + agent_path)

rc, out, err = run(*A, "ping")
ok(rc == 0 and out.startswith("pong from unix:%s: time=" % agent_path) and out.endswith(" ms\n"),
   "ping prints the round-trip time, exit 0")
rc, out, err = run(*A, "--json", "ping")
j = json.loads(out) if rc == 0 else {}
ok(rc == 0 and isinstance(j.get("time_ms"), float) and j.get("result") == "pong", "ping --json")

rc, out, err = run(*A, "info")
ok(rc == 0 and "agent:\n  version: 9.9\n" in out and "  hostname: guest1\n" in out
   and "  os_release:\n    ID: debian\n" in out and "  load: 0.5, 0.25, 0\n" in out,
   "info pretty-prints agent.info and system.info")
if rc != 0 or "version: 9.9" not in out:
    diag(out + err)
rc, out, err = run(*A, "--json", "info")
j = json.loads(out) if rc == 0 else {}
ok(rc == 0 and j.get("agent", {}).get("version") == "9.9" and j.get("system", {}).get("cpus") == 2,
   "info --json: {agent, system}")

rc, out, err = run(*A, "methods")
lines = out.splitlines()
ok(rc == 0 and len(lines) == 3 and lines[0].split() == ["agent.ping", "Check", "the", "agent", "answers"]
   and lines[2] == "x.nosummary", "methods lists names with summaries")
ok(rc == 0 and lines[0].index("Check") == lines[1].index("Return"), "methods: summaries aligned")
rc, out, err = run(*A, "--json", "methods")
ok(rc == 0 and json.loads(out)[1] == {"name": "agent.echo", "summary": "Return the params"},
   "methods --json")

rc, out, err = run(*A, "call", "agent.echo", '{"a": [1, "x/y"]}')
ok(rc == 0 and json.loads(out) == {"a": [1, "x/y"]}, "call with named params prints the result")
rc, out, err = run(*A, "--json", "call", "agent.echo", '[-1, "é"]')
ok(rc == 0 and out == '[-1,"é"]\n', "call --json: compact, positional params starting with '-'")
rc, out, err = run(*A, "call", "agent.echo")
ok(rc == 0 and out == "null\n", "call without params")

rc, out, err = run(*A, "call", "agent.foo")
is_eq((rc, out, err), (1, "", "guestlink: agent.foo: Method not found (-32601)\n"),
      "remote error: exit 1 and one line")
rc, out, err = run(*A, "--json", "call", "agent.foo")
ok(rc == 1 and json.loads(out) == {"error": {"code": -32601, "message": "Method not found",
                                              "data": {"method": "agent.foo"}}} and err == "",
   "remote error with --json: the error object on stdout")

rc, out, err = run(*A, "--timeout", "0.3", "call", "slow.never")
ok(rc == 1 and "no answer within 300 ms" in err, "no answer within --timeout: exit 1")
rc, out, err = run(*A, "call", "drop")
ok(rc == 255 and "Connection reset" in err, "connection lost during the call: exit 255")

# hybrid: the CONNECT handshake, then the same protocol.
hyb_path = os.path.join(TMP, "vm.vsock")
hyb = FakeAgent(hyb_path, hybrid=True)
rc, out, err = run("-a", "hybrid:%s:9731" % hyb_path, "call", "agent.echo", "[1]")
ok(rc == 0 and json.loads(out) == [1] and hyb.connects == [b"CONNECT 9731\n"],
   "hybrid address: CONNECT 9731, then the call")
hyb.stop()

ref_path = os.path.join(TMP, "refusing.vsock")
ref = FakeAgent(ref_path, hybrid=True, answer=b"")
rc, out, err = run("-a", "hybrid:%s:9731" % ref_path, "ping")
ok(rc == 255 and "refused" in err, "hybrid, guest refuses: exit 255")
ref.stop()

# cp -r from a hostile guest: only single path components are used.
dest = os.path.join(TMP, "hostile", "copy")
os.mkdir(os.path.dirname(dest))
rc, out, err = run(*A, "cp", "-r", "guest:/t", dest)
ok(rc == 0 and sorted(os.listdir(dest)) == ["sub"] and os.listdir(os.path.dirname(dest)) == ["copy"]
   and err.count("without a usable name, skipping") == 3,
   "cp -r: guest names with '/' or '..' are skipped, nothing lands outside the destination")
if rc != 0:
    diag(err)

fake.stop()

# --- bash completion (the plain-bash path, without bash-completion) ------------
COMPLETION = src_path("host", "bash-completion", "guestlink")


def complete(*words):
    script = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); '
              '_guestlink 2>/dev/null; printf "%s\\n" "${COMPREPLY[@]}"')
    p = subprocess.run(["bash", "-c", script, "bash", COMPLETION] + list(words),
                       capture_output=True, text=True, timeout=20)
    return sorted(x for x in p.stdout.splitlines() if x)


rc, out, err = run("--help")
commands = sorted(line.split()[0] for line in out.split("Commands:\n")[1].split("\n\n")[0].splitlines()
                  if line.startswith("  ") and not line.startswith("   "))
ok({"call", "info", "methods", "ping"} <= set(commands), "--help: the command list parses")
is_eq(complete(GUESTLINK, ""), commands, "completion: every command from --help")
is_eq(complete(GUESTLINK, "--ti"), ["--timeout"], "completion: options")
is_eq(complete(GUESTLINK, "-a", "unix:/x", "--json", "me"), ["methods"],
      "completion: command after options and their values")
is_eq(complete(GUESTLINK, "-a", "hyb"), ["hybrid:"], "completion: address schemes")
done()
