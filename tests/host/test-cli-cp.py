#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""guestlink cp against the real agent: trees both ways (-r: modes kept,
symbolic links as links), --verify through file.sha256 with exec denied (no
exec, no sha256sum in the guest), file.sha256 itself against the FIPS 180-4
vectors, and the progress line in tmux at 40 and 120 columns while the agent
is paused with SIGSTOP ("stalled", never wider than the terminal, follows the
resize); nothing of it on a non-terminal. Downloads across the agent's
mapping windows, and a single file's download without file.stat."""

import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import time

from gltest import Proc, build_path, diag, done, is_eq, ok, skip_all, tmpdir, wait_for_listener

AGENT = build_path("agent", "guestlink-agent")
GUESTLINK = build_path("host", "guestlink")
if not os.access(AGENT, os.X_OK):
    skip_all("guestlink-agent not built")

TMP = tmpdir()
SOCK = os.path.join(TMP, "agent.sock")
CONF = os.path.join(TMP, "agent.conf")
with open(CONF, "w") as f:
    json.dump({"deny": ["exec.*"]}, f)
agent = Proc([AGENT, "--config", CONF, "--listen", "unix:" + SOCK], stderr=subprocess.DEVNULL)
if not ok(wait_for_listener(SOCK, 10, agent), "agent listens (exec.* denied)"):
    done()
ENV = {k: v for k, v in os.environ.items() if k != "GUESTLINK_ADDRESS"}


def run(*args):
    p = subprocess.run([GUESTLINK, "-a", "unix:" + SOCK] + list(args), capture_output=True,
                       text=True, env=ENV, timeout=120, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


def tree(root):
    """{relative path: (kind, mode, content or link target)} of a tree."""
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("l", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("d", stat.S_IMODE(st.st_mode))
            else:
                with open(p, "rb") as f:
                    out[rel] = ("f", stat.S_IMODE(st.st_mode), hashlib.sha256(f.read()).hexdigest())
    return out


# --- file.sha256: FIPS 180-4 vectors ------------------------------------------------
VECTORS = [
    (b"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    (b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
    (b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
    (b"a" * 1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"),
]
for i, (data, want) in enumerate(VECTORS):
    path = os.path.join(TMP, "vec%d" % i)
    with open(path, "wb") as f:
        f.write(data)
    rc, out, err = run("--json", "call", "file.sha256", json.dumps({"path": path}))
    is_eq((rc, json.loads(out) if rc == 0 else err), (0, {"sha256": want, "size": len(data)}),
          "file.sha256 of the %d-byte FIPS 180-4 vector" % len(data))
big = os.path.join(TMP, "big.bin")
with open(big, "wb") as f:
    f.write(os.urandom(5 * 1024 * 1024 + 17))
with open(big, "rb") as f:
    want = hashlib.sha256(f.read()).hexdigest()
rc, out, err = run("--json", "call", "file.sha256", json.dumps({"path": big}))
ok(rc == 0 and json.loads(out)["sha256"] == want, "file.sha256 of 5 MiB in 1 MiB steps")
rc, out, err = run("--json", "call", "file.sha256", json.dumps({"path": TMP}))
ok(rc == 1 and json.loads(out)["error"]["errno"] == "EISDIR", "file.sha256 of a directory: EISDIR")

# --- trees both ways -------------------------------------------------------------------
src = os.path.join(TMP, "src")
os.makedirs(os.path.join(src, "sub", "deep"))
os.makedirs(os.path.join(src, "empty"))
for rel, data, mode in (("a.txt", b"alpha\n", 0o600), ("sub/run.sh", b"#!/bin/sh\n", 0o750),
                        ("sub/deep/blob", os.urandom(3 * 1024 * 1024 + 5), 0o644),
                        ("zero", b"", 0o640)):
    p = os.path.join(src, rel)
    with open(p, "wb") as f:
        f.write(data)
    os.chmod(p, mode)
os.symlink("../a.txt", os.path.join(src, "sub", "link"))
os.symlink("/nonexistent/target", os.path.join(src, "dangling"))
os.chmod(os.path.join(src, "sub"), 0o751)
want = tree(src)

gdir = os.path.join(TMP, "guest")
os.mkdir(gdir)
rc, out, err = run("--json", "cp", "-r", "--verify", src, "guest:" + gdir)
j = json.loads(out) if rc == 0 else {}
ok(rc == 0 and j.get("files") == 4 and j.get("symlinks") == 2 and j.get("directories") == 4
   and j.get("verified") == 4 and j.get("path") == os.path.join(gdir, "src"),
   "cp -r upload into an existing directory: counts in --json")
if rc != 0:
    diag(out + err)
is_eq(tree(os.path.join(gdir, "src")), want, "cp -r upload: same tree, modes and links")

back = os.path.join(TMP, "back")
rc, out, err = run("cp", "-r", "--verify", "--quiet", "guest:" + os.path.join(gdir, "src"), back)
ok(rc == 0 and err == "" and out == "", "cp -r download to a new name, --quiet: silent")
is_eq(tree(back), want, "cp -r download: same tree, modes and links")
is_eq(stat.S_IMODE(os.stat(back).st_mode), stat.S_IMODE(os.stat(src).st_mode),
      "cp -r download: the root's mode too")
rc, out, err = run("cp", "-r", os.path.join(src, "a.txt"), "guest:" + os.path.join(gdir, "single"))
ok(rc == 0 and open(os.path.join(gdir, "single")).read() == "alpha\n", "cp -r of a single file")

# A guest's setuid/setgid bits never reach the host (cp without -p drops them).
suid = os.path.join(gdir, "suid")
with open(suid, "w") as f:
    f.write("#!/bin/sh\n")
os.chmod(suid, 0o6755)
for label, extra in (("channel", ()), ("JSON chunks", ("--no-channel",))):
    dl = os.path.join(TMP, "suid-" + label.replace(" ", "-"))
    rc, out, err = run("cp", "--quiet", *extra, "guest:" + suid, dl)
    is_eq((rc, stat.S_IMODE(os.stat(dl).st_mode) if rc == 0 else None), (0, 0o755),
          "cp download (%s) keeps the mode but not setuid/setgid" % label)

# Downloads across the agent's mapping windows (256 KiB first, then 4 MiB) and
# a partial last page, byte for byte.
for n in (256 * 1024 - 1, 256 * 1024, 256 * 1024 + 1, 256 * 1024 + 4 * 1024 * 1024 + 4097):
    data = os.urandom(n)
    gf = os.path.join(gdir, "edge-%d" % n)
    with open(gf, "wb") as f:
        f.write(data)
    dl = os.path.join(TMP, "edge-%d" % n)
    rc, out, err = run("cp", "--quiet", "guest:" + gf, dl)
    got = open(dl, "rb").read() if rc == 0 else None
    ok(got == data, "cp download of %d bytes (mapping window edges): byte for byte" % n)

# A single file's download asks file.channel, no file.stat: with file.stat
# denied it still copies (and a tree, which needs file.stat, fails).
with open(CONF, "w") as f:
    json.dump({"deny": ["exec.*", "file.stat"]}, f)
agent.stop()
agent = Proc([AGENT, "--config", CONF, "--listen", "unix:" + SOCK], stderr=subprocess.DEVNULL)
wait_for_listener(SOCK, 10, agent)
dl = os.path.join(TMP, "nostat")
rc, out, err = run("cp", "--quiet", "guest:" + gf, dl)
ok(rc == 0 and open(dl, "rb").read() == data,
   "cp download of a single file without file.stat (denied here): copies")
if rc != 0:
    diag(err)
rc, out, err = run("cp", "-r", "--quiet", "guest:" + os.path.join(gdir, "src"),
                   os.path.join(TMP, "nostat-tree"))
ok(rc == 1 and "(-32001)" in err, "cp -r download with file.stat denied fails")

# --verify uses file.sha256: deny it and --verify must fail, not fall back.
with open(CONF, "w") as f:
    json.dump({"deny": ["exec.*", "file.sha256"]}, f)
agent.stop()
agent = Proc([AGENT, "--config", CONF, "--listen", "unix:" + SOCK], stderr=subprocess.DEVNULL)
wait_for_listener(SOCK, 10, agent)
rc, out, err = run("cp", "--verify", big, "guest:" + os.path.join(gdir, "v.bin"))
ok(rc == 1 and "(-32001)" in err, "cp --verify relies on file.sha256 (denied here: fails)")
rc, out, err = run("cp", big, "guest:" + os.path.join(gdir, "nv.bin"))
ok(rc == 0 and err == "", "cp to a non-terminal: no progress on stderr")
agent.stop()

# --- progress in tmux, agent paused -------------------------------------------------------
if not shutil.which("tmux"):
    ok(True, "# SKIP tmux not installed")
    done()
agent = Proc([AGENT, "--listen", "unix:" + SOCK], stderr=subprocess.DEVNULL)
wait_for_listener(SOCK, 10, agent)
huge = os.path.join(TMP, "huge.bin")
with open(huge, "wb") as f:
    f.truncate(256 * 1024 * 1024)  # sparse here; the agent writes it for real
dest = os.path.join(TMP, "dest")
os.mkdir(dest)
TMUX = ["tmux", "-L", "guestlink-test-%d" % os.getpid(), "-f", "/dev/null"]
cmd = "%s -a unix:%s cp %s guest:%s/; echo EXIT=$?; sleep 120" % (GUESTLINK, SOCK, huge, dest)
subprocess.run(TMUX + ["new-session", "-d", "-x", "40", "-y", "8", cmd], check=True,
               env=dict(ENV, TERM=ENV.get("TERM") or "xterm"), timeout=20)
server = int(subprocess.run(TMUX + ["display-message", "-p", "#{pid}"], capture_output=True,
                            text=True, timeout=20).stdout)


def pane():
    return subprocess.run(TMUX + ["capture-pane", "-p"], capture_output=True, text=True,
                          timeout=20).stdout.splitlines()


def wait_pane(pred, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = pane()
        if pred(lines):
            return lines
        time.sleep(0.1)
    return pane()


try:
    # Pause the agent as soon as the progress line shows a partial copy.
    deadline = time.monotonic() + 30
    paused = False
    while time.monotonic() < deadline and not paused:
        if any("%" in x and "100%" not in x for x in pane()):
            os.kill(agent.pid, signal.SIGSTOP)
            paused = True
        time.sleep(0.01)
    ok(paused, "the copy started; agent paused with SIGSTOP")
    lines = wait_pane(lambda ls: any("stalled" in x for x in ls))
    line = next((x for x in lines if "stalled" in x), "")
    ok("huge.bin" in line and "%" in line and len(line) <= 40,
       "40 columns: one line with name, percentage and 'stalled', at most 40 wide")
    diag("40: %r" % line)
    ok(len([x for x in lines if x.strip()]) == 1, "40 columns: nothing wrapped")
    subprocess.run(TMUX + ["resize-window", "-x", "120", "-y", "8"], check=True, timeout=20)
    lines = wait_pane(lambda ls: any("stalled" in x and len(x) > 40 for x in ls))
    line = next((x for x in lines if "stalled" in x), "")
    ok(40 < len(line) <= 120 and "/256.0 MiB" in line and "%" in line and "00:" in line,
       "120 columns after SIGWINCH: bytes and elapsed time join, at most 120 wide")
    diag("120: %r" % line)
    os.kill(agent.pid, signal.SIGCONT)
    lines = wait_pane(lambda ls: any("EXIT=" in x for x in ls), timeout=120)
    ok(any("EXIT=0" in x for x in lines), "the copy finishes once the agent continues")
    final = next((x for x in lines if "100%" in x), "")
    ok("/s" in final and "256.0 MiB/256.0 MiB" in final and "stalled" not in final,
       "the last line: 100%, the rate, all bytes")
    diag("final: %r" % final)
finally:
    try:
        os.kill(agent.pid, signal.SIGCONT)
    except ProcessLookupError:
        pass
    try:
        os.kill(server, signal.SIGTERM)
    except ProcessLookupError:
        pass
ok(os.path.getsize(os.path.join(dest, "huge.bin")) == 256 * 1024 * 1024, "the whole file arrived")
is_eq(agent.stop(), 0, "agent exits 0 on SIGTERM")
done()
