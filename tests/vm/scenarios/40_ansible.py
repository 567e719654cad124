# SPDX-License-Identifier: LGPL-2.1-or-later
"""The Python package and the Ansible connection plugin against the real guest
through the backend: Python calls, exec, copies (with `guestlink cp` measured
beside them), 64 calls in flight; an Ansible playbook on the guest and on a
second target (an agent on the host) at once with forks: 2; and, once the CLI
has `guestlink connect`, the guest reached through SSH with guestlink_via."""

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP_SRCDIR = os.environ.get("top_srcdir") or os.path.dirname(os.path.dirname(
    os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(TOP_SRCDIR, "python"))

import guestlink  # noqa: E402
import guestlink.aio  # noqa: E402

PLUGIN = "guestlink.guestlink.guestlink"


def _address(vm, H):
    return "hybrid:%s:%d" % (vm.uds, H.AGENT_PORT)


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def _random_file(path, mib):
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(os.urandom(1 << 20))


def s40_python_client(vm, H):
    kernel = vm.ctl.sh("uname -r")["out"].strip()
    with guestlink.connect(_address(vm, H), timeout=60) as c:
        c.ping()
        H.ok(c.info()["pid"] > 0, "40: python: ping and info through the backend")
        r = c.exec(["uname", "-r"])
        H.is_eq((r.exit_code, r.stdout.decode().strip()), (0, kernel),
                "40: python: exec runs in the guest")
        items = list(c.exec_stream(["sh", "-c", "echo out; echo err >&2; exit 5"]))
        H.is_eq((items[-1].exit_code, sorted(items[:-1])),
                (5, [("stderr", b"err\n"), ("stdout", b"out\n")]),
                "40: python: exec_stream yields output then the result")
        mib = 64
        src = os.path.join(vm.work, "py-cp-in")
        back = os.path.join(vm.work, "py-cp-back")
        _random_file(src, mib)
        want = _sha256(src)
        t = time.monotonic()
        c.copy_to(src, "/var/tmp/py-cp")
        py_up = mib / (time.monotonic() - t)
        got = vm.ctl.sh("sha256sum /var/tmp/py-cp")["out"].split()
        H.is_eq(got[0] if got else "", want, "40: python: copy_to %d MiB, SHA-256 equal" % mib)
        t = time.monotonic()
        c.copy_from("/var/tmp/py-cp", back)
        py_down = mib / (time.monotonic() - t)
        H.is_eq(_sha256(back), want, "40: python: copy_from %d MiB, SHA-256 equal" % mib)
    # The C client on the same file in the same run.
    t = time.monotonic()
    r = H.guestlink(vm, "cp", "--quiet", src, "guest:/var/tmp/c-cp", timeout=300)
    c_up = mib / (time.monotonic() - t)
    H.ok(r.returncode == 0, "40: guestlink cp %d MiB for comparison" % mib)
    H.diag("bench python copy_to %.1f MiB/s, guestlink cp %.1f MiB/s (ratio %.2f); "
           "python copy_from %.1f MiB/s" % (py_up, c_up, py_up / c_up if c_up else 0, py_down))
    vm.ctl.sh("rm -f /var/tmp/py-cp /var/tmp/c-cp")
    for f in (src, back):
        if os.path.exists(f):
            os.unlink(f)

    async def in_flight():
        async with await guestlink.aio.connect(_address(vm, H), timeout=120) as a:
            return await asyncio.gather(*(a.call("agent.echo", [i]) for i in range(64)))
    got = asyncio.run(in_flight())
    H.is_eq(got, [[i] for i in range(64)], "40: python aio: 64 calls in flight, matched by id")


def s40_python_vsock_in_guest(vm, H, port=5200):
    """vsock:CID:PORT from inside the guest: Python in the guest connects to the
    host (CID 2); the backend forwards to <uds>_PORT, where an agent listens."""
    hdir = os.path.join(vm.work, "vsockagent")
    os.makedirs(hdir, exist_ok=True)
    conf = os.path.join(hdir, "agent.conf")
    with open(conf, "w") as f:
        json.dump({"plugin_dir": os.path.join(hdir, "none")}, f)
    sock = "%s_%d" % (vm.uds, port)
    log = open(os.path.join(hdir, "agent.log"), "w")
    agent = H.gltest.Proc([H.build_bin("agent", "guestlink-agent"), "--listen", "unix:" + sock,
                           "--config", conf], stderr=log)
    try:
        if not H.gltest.wait_for_listener(sock, 60, agent):
            H.ok(False, "40: python vsock: the host agent starts")
            return
        code = ("import guestlink; c = guestlink.connect('vsock:2:%d', timeout=60); c.ping(); "
                "print(c.info()['pid'], c.exec(['cat', '/proc/sys/kernel/random/boot_id'])"
                ".stdout.decode().strip())" % port)
        r = vm.ctl.sh("PYTHONPATH=%s python3 -c \"%s\"" % (os.path.join(TOP_SRCDIR, "python"),
                                                              code), timeout=120)
        host_boot = open("/proc/sys/kernel/random/boot_id").read().strip()
        H.is_eq(r["out"].split(), [str(agent.pid), host_boot],
                "40: python in the guest: vsock:2:%d reaches the host agent" % port)
        if r.get("rc"):
            H.diag(r.get("err", "")[-1500:])
    finally:
        agent.stop()


def _ansible_env(work, hosts_ini):
    d = os.path.join(work, "ansible")
    coll = os.path.join(d, "collections", "ansible_collections", "guestlink")
    os.makedirs(coll, exist_ok=True)
    link = os.path.join(coll, "guestlink")
    if not os.path.islink(link):
        os.symlink(os.path.join(TOP_SRCDIR, "contrib", "ansible"), link)
    with open(os.path.join(d, "ansible.cfg"), "w") as f:
        f.write(textwrap.dedent("""\
            [defaults]
            collections_path = {d}/collections
            local_tmp = {d}/local-tmp
            remote_tmp = /var/tmp/gl-ansible-tmp
            forks = 2
            host_key_checking = False
            retry_files_enabled = False
            interpreter_python = /usr/bin/python3
            [connection]
            pipelining = True
            """).format(d=d))
    inv = os.path.join(d, "inventory.ini")
    with open(inv, "w") as f:
        f.write(hosts_ini)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(d, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_HOME=os.path.join(d, "home"),
               PYTHONPATH=os.path.join(TOP_SRCDIR, "python"))
    return d, inv, env


def s40_ansible_playbook(vm, H):
    if not shutil.which("ansible-playbook"):
        H.skip("40: ansible playbook", "ansible-core not installed")
        return
    agent_bin = H.build_bin("agent", "guestlink-agent")  # a libtool wrapper is fine
    # The second target: an agent on the host, on a Unix socket.
    hdir = os.path.join(vm.work, "hostagent")
    os.makedirs(hdir, exist_ok=True)
    conf = os.path.join(hdir, "agent.conf")
    with open(conf, "w") as f:
        json.dump({"plugin_dir": os.path.join(hdir, "none")}, f)
    sock = os.path.join(hdir, "agent.sock")
    log = open(os.path.join(hdir, "agent.log"), "w")
    agent = H.gltest.Proc([agent_bin, "--listen", "unix:" + sock, "--config", conf], stderr=log)
    try:
        if not H.gltest.wait_for_listener(sock, 60, agent):
            H.ok(False, "40: ansible: the host agent (second target) starts")
            H.diag(open(log.name).read()[-2000:])
            return
        hosts = ("[vms]\nguest guestlink_address=%s dir=/var/tmp/gl-ansible\n"
                 "hostagent guestlink_address=unix:%s dir=%s/files\n"
                 "[vms:vars]\nansible_connection=%s\n" % (_address(vm, H), sock, hdir, PLUGIN))
        d, inv, env = _ansible_env(vm.work, hosts)
        src = os.path.join(d, "big.bin")
        _random_file(src, 10)
        sha1 = hashlib.sha1(open(src, "rb").read()).hexdigest()
        with open(os.path.join(d, "t.j2"), "w") as f:
            f.write("host={{ inventory_hostname }} kernel={{ ansible_kernel }}\n")
        guest_kernel = vm.ctl.sh("uname -r")["out"].strip()
        play = os.path.join(d, "play.yml")
        with open(play, "w") as f:
            f.write(textwrap.dedent("""\
                - hosts: vms
                  gather_facts: true
                  tasks:
                    - assert:
                        that: ansible_kernel == "{gk}"
                      when: inventory_hostname == "guest"
                    - file:
                        path: "{{{{ dir }}}}"
                        state: directory
                    - command: cat /proc/sys/kernel/random/boot_id
                      register: boot
                    - copy:
                        src: {src}
                        dest: "{{{{ dir }}}}/big.bin"
                      register: copied
                    - assert:
                        that: copied.checksum == "{sha1}"
                    - fetch:
                        src: "{{{{ dir }}}}/big.bin"
                        dest: {d}/fetched/
                      register: fetched
                    - assert:
                        that: fetched.checksum == "{sha1}"
                    - template:
                        src: {d}/t.j2
                        dest: "{{{{ dir }}}}/t.conf"
                    - lineinfile:
                        path: "{{{{ dir }}}}/t.conf"
                        line: added=yes
                    - command: id -un
                      become: true
                      become_method: su
                      become_user: nobody
                      become_flags: "-s /bin/sh"
                      register: who
                    - assert:
                        that: who.stdout == "nobody"
                    - copy:
                        content: "{{{{ boot.stdout }}}}\\n"
                        dest: "{{{{ dir }}}}/boot_id"
                """).format(gk=guest_kernel, src=src, sha1=sha1, d=d))
        t = time.monotonic()
        r = subprocess.run(["ansible-playbook", "-i", inv, play], cwd=d, env=env,
                           capture_output=True, text=True, timeout=600)
        dt = time.monotonic() - t
        recap = r.stdout[r.stdout.rfind("PLAY RECAP"):]
        H.ok(r.returncode == 0 and "guest " in recap and "hostagent " in recap and
             recap.count("failed=0") == 2,
             "40: ansible playbook on the guest and a host agent at once, forks 2 (%.0f s)" % dt)
        if r.returncode:
            H.diag(r.stdout[-3000:] + r.stderr[-1000:])
        g = vm.ctl.sh("sha1sum /var/tmp/gl-ansible/big.bin; cat /var/tmp/gl-ansible/t.conf; "
                      "cat /var/tmp/gl-ansible/boot_id; cat /proc/sys/kernel/random/boot_id")
        lines = g["out"].splitlines()
        H.ok(len(lines) == 5 and lines[0].split()[0] == sha1 and
             lines[1] == "host=guest kernel=%s" % guest_kernel and lines[2] == "added=yes" and
             lines[3] == lines[4],
             "40: ansible: the guest got the copy, the template, the line; command ran there")
        host_boot = open("/proc/sys/kernel/random/boot_id").read().strip()
        hb = os.path.join(hdir, "files", "boot_id")
        got = open(hb).read().strip() if os.path.exists(hb) else ""
        H.ok(got == host_boot and len(lines) == 5 and got != lines[4],
             "40: ansible: the second target ran on the host (fan-out)")
        vm.ctl.sh("rm -rf /var/tmp/gl-ansible /var/tmp/gl-ansible-tmp")
    finally:
        agent.stop()


def s40_ansible_via_ssh(vm, H):
    if "connect" not in H.cli_commands():
        H.skip("40: ansible guestlink_via over ssh", "guestlink connect not in this tree yet")
        return
    if not shutil.which("ansible"):
        H.skip("40: ansible guestlink_via over ssh", "ansible-core not installed")
        return
    sys.path.insert(0, os.path.join(TOP_SRCDIR, "tests", "lib"))
    import glssh
    try:
        sshd = glssh.Sshd(os.path.join(vm.work))
    except glssh.Unavailable as e:
        H.skip("40: ansible guestlink_via over ssh", str(e))
        return
    name = "gltest-%d" % os.getpid()
    link = "/run/guestlink/%s.vsock" % name
    cli = H.build_bin("host", "guestlink")
    try:
        os.makedirs("/run/guestlink", exist_ok=True)
        os.symlink(vm.uds, link)
        hosts = ("[vms]\nvia guestlink_vm=%s guestlink_via=testhost "
                 "guestlink_ssh_command=\"ssh -F %s\" guestlink_remote_command=%s\n"
                 "[vms:vars]\nansible_connection=%s\n" % (name, sshd.client_config, cli, PLUGIN))
        d, inv, env = _ansible_env(vm.work, hosts)
        r = subprocess.run(["ansible", "vms", "-i", inv, "-m", "command", "-a",
                            "cat /proc/sys/kernel/random/boot_id"], cwd=d, env=env,
                           capture_output=True, text=True, timeout=300)
        guest_boot = vm.ctl.sh("cat /proc/sys/kernel/random/boot_id")["out"].strip()
        H.ok(r.returncode == 0 and guest_boot and guest_boot in r.stdout,
             "40: ansible guestlink_via: ssh, guestlink -m VM connect, the guest answers")
        if r.returncode:
            H.diag(r.stdout[-2000:] + r.stderr[-1000:])
    finally:
        if os.path.islink(link):
            os.unlink(link)
        sshd.stop()


SCENARIOS = [s40_python_client, s40_python_vsock_in_guest, s40_ansible_playbook,
             s40_ansible_via_ssh]
