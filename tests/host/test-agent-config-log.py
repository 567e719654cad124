#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""guestlink-agent --check-config prints OK, or the line and column of a
syntax error; journal priority prefixes ("<3>") only when stderr really is
the stream named by JOURNAL_STREAM (device and inode compared), never on a
pipe or file that merely inherited the variable."""

import os
import socket
import subprocess

from gltest import build_path, done, is_eq, ok, skip_all, tmpdir

AGENT = build_path("agent", "guestlink-agent")
if not os.access(AGENT, os.X_OK):
    skip_all("guestlink-agent not built")
TMP = tmpdir()


def check(text, env=None, stderr=subprocess.PIPE):
    path = os.path.join(TMP, "agent.conf")
    with open(path, "w") as f:
        f.write(text)
    e = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    e.update(env or {})
    p = subprocess.run([AGENT, "--config", path, "--check-config"], stdout=subprocess.PIPE,
                       stderr=stderr, text=True, env=e, timeout=20)
    return p.returncode, p.stdout, p.stderr or ""


rc, out, err = check('{"deny": ["file.write"], "max_inflight": 8}\n')
is_eq((rc, out, err), (0, "OK\n", ""), "--check-config: OK on stdout, exit 0")
conf = os.path.join(TMP, "agent.conf")
for text, where, what in (
        ('{\n  "allow": ["*"],\n  "deny": [1 2]\n}\n', "3:14", "a missing comma"),
        ('{\n  "allow": ["*"],,\n}\n', "2:18", "a doubled comma (the second)"),
        ('{"deny": [', "1:11", "the end of the file inside an array"),
        ('{\n\t"a": tru\n}', "2:10", "a misspelt literal (where it ends)"),
):
    rc, out, err = check(text)
    ok(rc == 1 and out == "" and ("%s:%s: " % (conf, where)) in err,
       "--check-config: %s is reported at line:column %s" % (what, where))
    if rc != 1 or where not in err:
        print("# " + err.strip())
rc, out, err = check('{"nosuch": 1}')
ok(rc == 1 and "unknown key" in err and out == "", "--check-config: a semantic error, exit 1")

# JOURNAL_STREAM names a socket that is our stderr: prefixes.
a, b = socket.socketpair()
st = os.fstat(b.fileno())
rc, out, err = check("{", env={"JOURNAL_STREAM": "%d:%d" % (st.st_dev, st.st_ino)}, stderr=b)
b.close()
a.settimeout(10)
got = a.recv(4096).decode()
a.close()
ok(rc == 1 and got.startswith("<3>") and "1:2: unexpected end of file" in got,
   "stderr is the JOURNAL_STREAM socket: <3> priority prefix")
# Inherited but stale: stderr is a pipe.
rc, out, err = check("{", env={"JOURNAL_STREAM": "%d:%d" % (st.st_dev, st.st_ino)})
ok(rc == 1 and err.startswith("guestlink-agent: ") and "<3>" not in err,
   "JOURNAL_STREAM of another stream (stderr a pipe): no prefix")
rc, out, err = check("{", env={"JOURNAL_STREAM": "garbage"})
ok(rc == 1 and err.startswith("guestlink-agent: "), "a malformed JOURNAL_STREAM: no prefix")
done()
