# SPDX-License-Identifier: LGPL-2.1-or-later
"""guestlink as people use it, against the real guest: a guest port nobody
listens on is reported as refused by the guest (not as a dead backend), exec
exit codes (127/126/the command's), a guest host name carrying escape
sequences reaches a terminal escaped, and cp -r --verify both ways."""

import hashlib
import os
import shlex
import subprocess
import time


def _cli(vm, H, port, *args, timeout=60):
    cli, libdir = H.program("host/guestlink")
    env = dict(os.environ)
    if libdir:
        env["LD_LIBRARY_PATH"] = libdir
    return subprocess.run([cli, "-a", "hybrid:%s:%d" % (vm.uds, port)] + list(args),
                          capture_output=True, text=True, timeout=timeout, env=env,
                          stdin=subprocess.DEVNULL)


def cli_refused_port(vm, H):
    t0 = time.monotonic()
    p = _cli(vm, H, 9999, "--timeout", "30", "ping")
    took = time.monotonic() - t0
    H.ok(p.returncode == 255 and "guest refused the port" in p.stderr,
         "cli: a guest port without a listener: 'the guest refused the port', exit 255")
    H.diag("refused port reported after %.2f s: %s" % (took, p.stderr.strip()))
    p = _cli(vm, H, 9731, "ping", "--wait", "30")
    H.ok(p.returncode == 0 and "pong" in p.stdout, "cli: ping --wait answers at once when up")


def cli_exec_codes(vm, H):
    vm.ctl.sh("printf '#!/bin/sh\\necho hi\\n' > /tmp/cli-noexec; chmod 644 /tmp/cli-noexec")
    p = _cli(vm, H, 9731, "exec", "--", "/nonexistent/tool")
    H.is_eq((p.returncode, p.stderr), (127, "guestlink: /nonexistent/tool: No such file or directory\n"),
            "cli: exec of a missing program: 127")
    p = _cli(vm, H, 9731, "exec", "--", "/tmp/cli-noexec")
    H.is_eq((p.returncode, p.stderr), (126, "guestlink: /tmp/cli-noexec: Permission denied\n"),
            "cli: exec of a non-executable file: 126")
    p = _cli(vm, H, 9731, "exec", "--", "sh", "-c", "exit 42")
    H.is_eq(p.returncode, 42, "cli: exec exits with the remote status")


def cli_hostile_hostname(vm, H):
    old = vm.ctl.sh("cat /proc/sys/kernel/hostname")["out"].strip() or "localhost"
    # hostname(1) refuses such names; the kernel takes any bytes.
    vm.ctl.sh("printf 'vm\\033[2J\\033]0;pwned\\007' > /proc/sys/kernel/hostname")
    try:
        cli, libdir = H.program("host/guestlink")
        env = "LD_LIBRARY_PATH=%s " % shlex.quote(libdir) if libdir else ""
        cmd = "%s%s -a hybrid:%s:9731 info" % (env, shlex.quote(cli), shlex.quote(vm.uds))
        p = subprocess.run(["script", "-q", "-e", "-c", cmd, "/dev/null"], capture_output=True,
                           timeout=60, stdin=subprocess.DEVNULL)
        H.ok(p.returncode == 0 and b"hostname: vm\\x1b[2J\\x1b]0;pwned\\x07" in p.stdout
             and b"\x1b" not in p.stdout and b"\x07" not in p.stdout,
             "cli: a hostile guest host name reaches the terminal escaped")
    finally:
        vm.ctl.sh("printf %s " + shlex.quote(old) + " > /proc/sys/kernel/hostname")


def cli_cp_tree(vm, H):
    src = os.path.join(vm.work, "cli-tree")
    os.makedirs(os.path.join(src, "sub"))
    with open(os.path.join(src, "sub", "blob"), "wb") as f:
        f.write(os.urandom(2 * 1024 * 1024 + 3))
    with open(os.path.join(src, "a"), "w") as f:
        f.write("alpha\n")
    os.chmod(os.path.join(src, "a"), 0o600)
    os.symlink("../a", os.path.join(src, "sub", "link"))
    p = _cli(vm, H, 9731, "--json", "cp", "-r", "--verify", src, "guest:/tmp/cli-tree", timeout=300)
    H.ok(p.returncode == 0 and '"verified":2' in p.stdout and '"symlinks":1' in p.stdout,
         "cli: cp -r --verify into the guest")
    r = vm.ctl.sh("stat -c '%a' /tmp/cli-tree/a; readlink /tmp/cli-tree/sub/link; "
                  "sha256sum /tmp/cli-tree/sub/blob")
    with open(os.path.join(src, "sub", "blob"), "rb") as f:
        want = hashlib.sha256(f.read()).hexdigest()
    H.ok(r["out"].split()[:3] == ["600", "../a", want], "cli: the guest's copy: mode, link, bytes")
    back = os.path.join(vm.work, "cli-back")
    p = _cli(vm, H, 9731, "cp", "-r", "--verify", "--quiet", "guest:/tmp/cli-tree", back,
             timeout=300)
    ok_back = p.returncode == 0 and os.readlink(os.path.join(back, "sub", "link")) == "../a"
    with open(os.path.join(back, "sub", "blob"), "rb") as f:
        ok_back = ok_back and hashlib.sha256(f.read()).hexdigest() == want
    H.ok(ok_back, "cli: cp -r --verify back out of the guest")


SCENARIOS = [cli_refused_port, cli_exec_codes, cli_hostile_hostname, cli_cp_tree]
