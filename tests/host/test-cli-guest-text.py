#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Guest text cannot attack the terminal: a real guestlink-agent whose plugin
methods answer strings, summaries and error messages carrying ESC/CSI/OSC
sequences (7-bit and C1); guestlink runs under script(1) so its stdout and
stderr are a terminal, and what reaches the terminal must hold none of them
raw; as root, also an agent in its own UTS namespace whose host name holds
them (guestlink info); DEL, U+009B and a raw 0x9b byte in file names, in
--json error objects and in cp's progress line. Through a pipe the same bytes pass as they are
(scripts get the data), and exec output stays raw by design."""

import json
import os
import shlex
import shutil
import subprocess
import sys

from gltest import Proc, build_path, diag, done, ok, skip_all, tmpdir, wait_for_listener

AGENT = build_path("agent", "guestlink-agent")
GUESTLINK = build_path("host", "guestlink")
if not os.access(AGENT, os.X_OK):
    skip_all("guestlink-agent not built")
if not shutil.which("script"):
    skip_all("script(1) (util-linux) not installed")

TMP = tmpdir()
SOCK = os.path.join(TMP, "agent.sock")
PLUGINS = os.path.join(TMP, "methods.d")
os.mkdir(PLUGINS)
# ESC [ 2 J clears the screen, OSC 0 sets the window title, CSI (C1, U+009B)
# is the 8-bit form of ESC [.
EVIL = "\x1b]0;pwned\x07\x1b[2J\u009b31mred\x1b[0m"


def plugin(name, script, summary=None):
    path = os.path.join(PLUGINS, name)
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + script)
    os.chmod(path, 0o755)
    if summary is not None:
        with open(path + ".json", "w") as f:
            json.dump({"summary": summary, "params": []}, f)


# A result with a hostile string, and a failure whose stderr is hostile.
plugin("evil.host", "cat >/dev/null; printf '%%s' %s\n" % shlex.quote(json.dumps({"hostname": EVIL})),
       summary="Hostile " + EVIL + " summary")
plugin("evil.fail", "cat >/dev/null; printf '%%s' %s >&2\nexit 3\n" % shlex.quote("boom " + EVIL))
CONF = os.path.join(TMP, "agent.conf")
with open(CONF, "w") as f:
    json.dump({"plugin_dir": PLUGINS}, f)

agent = Proc([AGENT, "--config", CONF, "--listen", "unix:" + SOCK], stderr=subprocess.DEVNULL)
if not ok(wait_for_listener(SOCK, 10, agent), "agent listens on its Unix socket"):
    done()

BASE = [GUESTLINK, "-a", "unix:" + SOCK]


def on_tty(*args):
    """guestlink with stdout and stderr on a pseudo-terminal: what the terminal got."""
    cmd = " ".join(shlex.quote(a) for a in BASE + list(args))
    p = subprocess.run(["script", "-q", "-e", "-c", cmd, "/dev/null"], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=30)
    return p.returncode, p.stdout


def piped(*args):
    p = subprocess.run(BASE + list(args), capture_output=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


RAW = (b"\x1b", b"\x07", b"\xc2\x9b")


def clean(out):
    return not any(r in out for r in RAW)


rc, out = on_tty("call", "evil.host")
ok(rc == 0 and b"hostname" in out and clean(out), "call: a hostile result string, nothing raw")
ok(b"\\u009b" in out and b"\\u001b" in out, "call: control characters shown as JSON escapes")

rc, out = on_tty("methods")
ok(rc == 0 and b"evil.host" in out and b"Hostile" in out and clean(out),
   "methods: a hostile summary, nothing raw")
ok(b"\\x1b[2J" in out and b"\\xc2\\x9b" not in out and b"\\x9b" in out,
   "methods: ESC and C1 CSI shown as \\xNN")
rc, out = on_tty("methods", "evil.host")
ok(rc == 0 and b"evil.host: Hostile" in out and clean(out), "methods METHOD: nothing raw")

rc, out = on_tty("call", "evil.fail")
ok(rc == 1 and b"boom" in out and clean(out), "a hostile error message (plugin stderr), nothing raw")

name = os.path.join(TMP, "x\x1b[2Jy")
rc, out = on_tty("cp", "guest:" + name, os.path.join(TMP, "copy"))
ok(rc == 1 and b"No such file or directory" in out and clean(out),
   "cp: a missing guest file whose name holds ESC, nothing raw")

# DEL, C1 CSI in UTF-8 (U+009B) and a raw 0x9b byte (8-bit CSI) in file names:
# in --json error objects and in cp's progress line on a terminal.
RAW8 = (b"\x7f", b"\xc2\x9b", b"\x9b")


def on_tty_bytes(*args):
    """on_tty() for arguments that are bytes (file names need not be UTF-8)."""
    cmd = b" ".join(shlex.quote(a.decode("latin-1")).encode("latin-1") if isinstance(a, bytes)
                    else shlex.quote(a).encode() for a in BASE + list(args))
    p = subprocess.run([b"script", b"-q", b"-e", b"-c", cmd, b"/dev/null"],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    return p.returncode, p.stdout


def clean8(out):
    return not any(r in out for r in RAW + RAW8)


TMPB = os.fsencode(TMP)
for label, name in (("DEL and U+009B", b"/a\x7fb\xc2\x9bc"), ("raw 0x9b", b"/a\x9b[2Jb")):
    rc, out = on_tty_bytes("--json", "cp", b"guest:" + TMPB + b"/missing" + name,
                           TMPB + b"/copy")
    ok(rc == 1 and b'"error"' in out and clean8(out),
       "cp --json: an error object naming a guest file with %s, nothing raw" % label)
    # JSON carries only UTF-8: a raw 0x9b can be only in the local name (an upload's
    # source); the line shows the source's name.
    utf8 = label != "raw 0x9b"
    src = TMPB + b"/src" + name.replace(b"/", b"-")
    with open(src, "wb") as f:
        f.write(b"x" * 100000)
    if utf8:
        rc, out = on_tty_bytes("cp", b"guest:" + src, TMPB + b"/dst-" + label[:3].encode())
    else:
        rc, out = on_tty_bytes("cp", src, b"guest:" + TMPB + b"/dst-up")
    # The line's own ESC [ K (erase to the end) is ours; nothing else may be raw.
    drawn = out.replace(b"\x1b[K", b"")
    ok(rc == 0 and b"100%" in out and b"\\x7f" in drawn + b"\\x7f" * (label == "raw 0x9b")
       and b"\\x9b" in drawn and clean8(drawn),
       "cp: the progress line shows a file name with %s escaped, nothing raw" % label)

# Not a terminal: the bytes are the data.
rc, out, err = piped("methods")
ok(rc == 0 and EVIL.encode() in out, "methods into a pipe: the summary unchanged")
rc, out, err = piped("--json", "call", "evil.host")
ok(rc == 0 and json.loads(out) == {"hostname": EVIL}, "call --json into a pipe: the exact string")

# exec output is the command's, raw by design.
rc, out = on_tty("exec", "--", "printf", "\\033[0mplain")
ok(rc == 0 and b"\x1b[0mplain" in out, "exec output reaches the terminal raw")

ok(agent.alive(), "agent still running")
ok(agent.stop() == 0, "agent exits 0 on SIGTERM")

# A guest host name carrying ESC/CSI: an agent in its own UTS namespace (root only).
HOSTNAME = "vm\x1b[2J\x1b]0;pwned\x07"
if os.geteuid() == 0 and shutil.which("unshare"):
    # hostname(1) refuses such names; sethostname(2) takes any bytes.
    agent = Proc(["unshare", "--uts", sys.executable, "-c",
                  "import os, socket, sys; socket.sethostname(sys.argv[1]); "
                  "os.execv(sys.argv[2], [sys.argv[2], '--listen', 'unix:' + sys.argv[3]])",
                  HOSTNAME, AGENT, SOCK], stderr=subprocess.DEVNULL)
    if ok(wait_for_listener(SOCK, 10, agent), "agent with a hostile host name listens"):
        rc, out, err = piped("--json", "call", "system.info")
        ok(rc == 0 and json.loads(out)["hostname"] == HOSTNAME, "the guest's host name is hostile")
        rc, out = on_tty("info")
        ok(rc == 0 and b"hostname: vm\\x1b[2J\\x1b]0;pwned\\x07" in out and clean(out),
           "info: the hostile host name shown escaped, nothing raw")
    agent.stop()
else:
    ok(True, "# SKIP a hostile host name needs root and unshare(1)")
done()
