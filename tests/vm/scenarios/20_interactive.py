# SPDX-License-Identifier: LGPL-2.1-or-later
"""Interactive access to the real guest: `guestlink shell` on a terminal
(tmux-driven), and ssh + scp through `guestlink connect 22` to the guest's
sshd started per connection by a vsock socket unit (ListenStream=vsock::22,
Accept=yes, sshd -i), 16 MiB both ways with equal SHA-256."""

import hashlib
import os
import shutil
import subprocess
import tempfile
import time

SSH_DIR = "/run/guestlink-vmtest-ssh"
SSH_USER = "glvmtest"


def _cli(H):
    cli, libdir = H.program("host/guestlink")
    env = {"LD_LIBRARY_PATH": libdir} if libdir else {}
    return cli, env


def s20_shell(vm, H):
    import termlib
    if not shutil.which("tmux"):
        H.skip("20: guestlink shell in tmux", "tmux not installed")
        return
    cli, env = _cli(H)
    t = termlib.Tmux("%s -a hybrid:%s:%d shell; echo EXIT=$?; stty -a | tr ' ' '\\n' | "
                     "grep -E '^-?(icanon|echo|isig)$' | tr '\\n' ' '; echo; echo DONE; "
                     "sleep 600" % (cli, vm.uds, H.AGENT_PORT), env=env)
    try:
        H.ok(t.wait(r"[$#] *$", 120), "20: guestlink shell shows the guest's prompt")
        t.type("tty; echo SIZE=$(stty size)\n")
        H.ok(t.wait(r"^/dev/pts/\d+\s*$", 60), "20: tty names a /dev/pts/N in the guest")
        H.ok(t.wait(r"^SIZE=30 100\s*$", 30), "20: stty size in the guest shows 30 100")
        t.resize(120, 40)
        time.sleep(0.5)
        t.type("echo SIZE2=$(stty size)\n")
        H.ok(t.wait(r"^SIZE2=40 120\s*$", 30), "20: a tmux resize reaches the guest (40 120)")
        t.type("sleep 100\n")
        time.sleep(1)
        t.keys("C-c")
        t.type("echo ALIVE$((3+3))\n")
        H.ok(t.wait(r"^ALIVE6\s*$", 60), "20: ^C interrupts sleep 100 in the guest, shell lives")
        t.type("exit 7\n")
        H.ok(t.wait(r"^EXIT=7\s*$", 60), "20: exit 7 in the guest shell ends the CLI with 7")
        m = t.wait(r"^((?:-?\w+ )+)\s*$\n^DONE", 30)
        modes = sorted(m.group(1).split()) if m else []
        H.is_eq(modes, ["echo", "icanon", "isig"], "20: the local terminal is back in cooked mode")
    finally:
        t.stop()


# Run by the guest's shell: host key, config, and the socket unit for port 22.
SSH_SETUP = r"""set -e
mkdir -p /run/sshd {d}
rm -f {d}/host {d}/host.pub
# A user of our own with /bin/sh: the guest's root is the host's, and root's
# dotfiles there are none of this test's business (they can be slow or block).
# Password "*": no password login, yet not locked ("!"), which sshd refuses.
id {user} >/dev/null 2>&1 || useradd -M -d {d} -s /bin/sh -p '*' {user}
ssh-keygen -q -t ed25519 -N '' -f {d}/host
echo '{pub}' > {d}/authorized_keys
printf '%s\n' 'HostKey {d}/host' 'AuthorizedKeysFile {d}/authorized_keys' 'StrictModes no' \
    'UsePAM no' 'PasswordAuthentication no' 'KbdInteractiveAuthentication no' \
    'PermitRootLogin no' 'Subsystem sftp /usr/lib/openssh/sftp-server' \
    > {d}/sshd_config
printf '%s\n' '[Socket]' 'ListenStream=vsock::22' 'Accept=yes' \
    > /run/systemd/system/guestlink-vmtest-sshd.socket
printf '%s\n' '[Service]' 'ExecStart=-/usr/sbin/sshd -i -f {d}/sshd_config' \
    'StandardInput=socket' 'StandardError=journal' \
    > /run/systemd/system/guestlink-vmtest-sshd@.service
systemctl daemon-reload
systemctl start guestlink-vmtest-sshd.socket
systemctl is-active guestlink-vmtest-sshd.socket
cat {d}/host.pub
"""


def s20_ssh(vm, H):
    if not all(shutil.which(p) for p in ("ssh", "scp", "ssh-keygen")) or \
            not os.access("/usr/sbin/sshd", os.X_OK):
        H.skip("20: ssh through guestlink connect", "openssh client/server not installed")
        return
    cli, env = _cli(H)
    tmp = tempfile.mkdtemp(prefix="guestlink-vm-ssh.")
    try:
        _ssh_checks(vm, H, cli, env, tmp)
    finally:
        vm.ctl.sh("systemctl stop guestlink-vmtest-sshd.socket; rm -f /var/tmp/ssh-up.bin")
        shutil.rmtree(tmp, ignore_errors=True)


def _ssh_checks(vm, H, cli, env, tmp):
    key = os.path.join(tmp, "user")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True,
                   timeout=30)
    with open(key + ".pub") as f:
        userpub = f.read().strip()
    r = vm.ctl.sh(SSH_SETUP.format(d=SSH_DIR, pub=userpub, user=SSH_USER), timeout=120)
    lines = r["out"].split("\n")
    H.ok(r["rc"] == 0 and "active" in lines,
         "20: the guest's sshd socket unit listens on vsock::22 (%s)" % r["err"].strip()[-200:])
    hostpub = [ln for ln in lines if ln.startswith("ssh-ed25519 ")]
    if r["rc"] != 0 or not hostpub:
        return
    with open(os.path.join(tmp, "known_hosts"), "w") as f:
        f.write("guest %s\n" % " ".join(hostpub[0].split()[:2]))
    proxy = "env %s %s -a hybrid:%s:%d connect 22" % (
        " ".join("%s=%s" % kv for kv in env.items()), cli, vm.uds, H.AGENT_PORT)
    opts = ["-F", "/dev/null", "-i", key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes",
            "-o", "UserKnownHostsFile=" + os.path.join(tmp, "known_hosts"),
            "-o", "ProxyCommand=" + proxy]
    p = subprocess.run(["ssh"] + opts + [SSH_USER + "@guest", "echo ssh-ok"],
                       capture_output=True, text=True, timeout=180)
    H.ok(p.returncode == 0 and p.stdout.startswith("ssh-ok"),
         "20: ssh through 'guestlink connect 22' (%d %r)"
         % (p.returncode, (p.stdout + p.stderr).strip()[-300:]))
    if p.returncode != 0:
        return
    src = os.path.join(tmp, "up.bin")
    with open(src, "wb") as f:
        f.write(os.urandom(16 * 1024 * 1024))
    with open(src, "rb") as f:
        want = hashlib.sha256(f.read()).hexdigest()
    t0 = time.monotonic()
    p = subprocess.run(["scp", "-q"] + opts + [src, SSH_USER + "@guest:/var/tmp/ssh-up.bin"],
                       capture_output=True, text=True, timeout=600)
    H.ok(p.returncode == 0, "20: scp uploads 16 MiB to the guest in %.1f s (%r)"
         % (time.monotonic() - t0, p.stderr.strip()[-200:]))
    r = vm.ctl.sh("sha256sum /var/tmp/ssh-up.bin")
    H.is_eq(r["out"].split()[:1], [want], "20: the uploaded 16 MiB have the same SHA-256")
    down = os.path.join(tmp, "down.bin")
    t0 = time.monotonic()
    p = subprocess.run(["scp", "-q"] + opts + [SSH_USER + "@guest:/var/tmp/ssh-up.bin", down],
                       capture_output=True, text=True, timeout=600)
    H.ok(p.returncode == 0, "20: scp downloads 16 MiB from the guest in %.1f s (%r)"
         % (time.monotonic() - t0, p.stderr.strip()[-200:]))
    got = None
    if os.path.exists(down):
        with open(down, "rb") as f:
            got = hashlib.sha256(f.read()).hexdigest()
    H.is_eq(got, want, "20: the downloaded 16 MiB have the same SHA-256")


SCENARIOS = [s20_shell, s20_ssh]
