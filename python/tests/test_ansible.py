# SPDX-License-Identifier: LGPL-2.1-or-later
"""The Ansible connection plugin (contrib/ansible, collection
guestlink.guestlink) with Debian's ansible-core against two real agents on
Unix sockets (the targets are this machine): ad-hoc ping and command, a
playbook with facts, a 10 MiB copy checked by Ansible's checksum, fetch,
template, lineinfile and a become task, on both targets at once (forks: 2);
and through the exec: transport over OpenSSH (guestlink_address=exec:ssh ...)."""

import hashlib
import json
import os
import shutil
import subprocess
import textwrap

import pytest

from conftest import TOP_SRCDIR

pytestmark = pytest.mark.skipif(not shutil.which("ansible-playbook"),
                                reason="ansible-core not installed")

PLUGIN = "guestlink.guestlink.guestlink"


class Ansible:
    def __init__(self, tmp, hosts):
        """hosts: {name: address}."""
        self.dir = os.path.join(str(tmp), "ansible")
        coll = os.path.join(self.dir, "collections", "ansible_collections", "guestlink")
        os.makedirs(coll)
        os.symlink(os.path.join(TOP_SRCDIR, "contrib", "ansible"), os.path.join(coll, "guestlink"))
        self.remote_tmp = os.path.join(self.dir, "remote-tmp")
        with open(os.path.join(self.dir, "ansible.cfg"), "w") as f:
            f.write(textwrap.dedent("""\
                [defaults]
                collections_path = {d}/collections
                local_tmp = {d}/local-tmp
                remote_tmp = {r}
                forks = 2
                host_key_checking = False
                retry_files_enabled = False
                interpreter_python = /usr/bin/python3
                nocows = 1
                [connection]
                pipelining = True
                """).format(d=self.dir, r=self.remote_tmp))
        self.inventory = os.path.join(self.dir, "inventory.ini")
        with open(self.inventory, "w") as f:
            f.write("[vms]\n")
            for name, address in hosts.items():
                f.write("%s guestlink_address=%s\n" % (name, json.dumps(address)))
            f.write("[vms:vars]\nansible_connection=%s\n" % PLUGIN)
        self.env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(self.dir, "ansible.cfg"),
                        ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1",
                        ANSIBLE_HOME=os.path.join(self.dir, "home"),
                        PYTHONPATH=os.path.join(TOP_SRCDIR, "python"))

    def run(self, argv, timeout=300):
        r = subprocess.run(argv, cwd=self.dir, env=self.env, capture_output=True, text=True,
                           timeout=timeout)
        print(r.stdout[-6000:], r.stderr[-3000:])
        return r

    def adhoc(self, module, args=None, extra=()):
        argv = ["ansible", "vms", "-i", self.inventory, "-m", module]
        if args:
            argv += ["-a", args]
        return self.run(argv + list(extra))

    def playbook(self, text, extra=()):
        path = os.path.join(self.dir, "play.yml")
        with open(path, "w") as f:
            f.write(textwrap.dedent(text))
        return self.run(["ansible-playbook", "-i", self.inventory, path] + list(extra))


@pytest.fixture
def two_targets(make_agent, tmp_path):
    a = make_agent(name="vmA", env={"GL_TARGET": "agent-A"})
    b = make_agent(name="vmB", env={"GL_TARGET": "agent-B"})
    return a, b, Ansible(tmp_path, {"vmA": a.address, "vmB": b.address})


def test_ansible_doc(two_targets):
    _, _, ans = two_targets
    r = ans.run(["ansible-doc", "-t", "connection", PLUGIN])
    assert r.returncode == 0
    for opt in ("guestlink_vm", "guestlink_address", "guestlink_via", "guestlink_timeout"):
        assert opt in r.stdout


def test_adhoc_ping_and_command(two_targets):
    a, b, ans = two_targets
    r = ans.adhoc("ping")
    assert r.returncode == 0
    assert r.stdout.count('"ping": "pong"') == 2
    # Each host reached its own agent: the command inherits that agent's environment.
    r = ans.adhoc("command", "printenv GL_TARGET")
    assert r.returncode == 0
    assert "vmA | CHANGED | rc=0 >>\nagent-A\n" in r.stdout
    assert "vmB | CHANGED | rc=0 >>\nagent-B\n" in r.stdout


def test_playbook_fan_out(two_targets, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the become task (su to nobody without a password) needs root")
    a, b, ans = two_targets
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(10 << 20))
    sha1 = hashlib.sha1(src.read_bytes()).hexdigest()
    (tmp_path / "t.j2").write_text("host={{ inventory_hostname }} kernel={{ ansible_kernel }}\n")
    r = ans.playbook("""\
        - hosts: vms
          gather_facts: true
          tasks:
            - name: facts come from Python in the target
              assert:
                that:
                  - ansible_facts.kernel == "{kernel}"
                  - ansible_facts.python.executable == "/usr/bin/python3"
            - command: printenv GL_TARGET
              register: cmd
            - assert:
                that: cmd.stdout == "agent-" + inventory_hostname[-1]
            - name: copy 10 MiB; Ansible checks the checksum
              copy:
                src: {src}
                dest: {tmp}/{{{{ inventory_hostname }}}}.copy
                mode: "0640"
              register: copied
            - assert:
                that:
                  - copied.checksum == "{sha1}"
                  - copied.changed
            - name: the same copy again changes nothing
              copy:
                src: {src}
                dest: {tmp}/{{{{ inventory_hostname }}}}.copy
                mode: "0640"
              register: again
            - assert:
                that: not again.changed
            - fetch:
                src: {tmp}/{{{{ inventory_hostname }}}}.copy
                dest: {tmp}/fetched/
              register: fetched
            - assert:
                that: fetched.checksum == "{sha1}"
            - template:
                src: {tmp}/t.j2
                dest: {tmp}/{{{{ inventory_hostname }}}}.conf
            - lineinfile:
                path: {tmp}/{{{{ inventory_hostname }}}}.conf
                line: "added=yes"
            - name: become another user (su, wrapped by Ansible)
              command: id -un
              become: true
              become_method: su
              become_user: nobody
              become_flags: "-s /bin/sh"
              register: who
            - assert:
                that: who.stdout == "nobody"
        """.format(kernel=os.uname().release, src=src, tmp=tmp_path, sha1=sha1))
    assert r.returncode == 0
    for name in ("vmA", "vmB"):
        assert "%s " % name in r.stdout and "failed=0" in r.stdout.split(name + " ", 2)[-1]
        copy = tmp_path / ("%s.copy" % name)
        assert hashlib.sha1(copy.read_bytes()).hexdigest() == sha1
        assert os.stat(copy).st_mode & 0o777 == 0o640
        fetched = tmp_path / "fetched" / name / str(copy).lstrip("/")
        assert hashlib.sha1(fetched.read_bytes()).hexdigest() == sha1
        conf = (tmp_path / ("%s.conf" % name)).read_text()
        assert conf == "host=%s kernel=%s\nadded=yes\n" % (name, os.uname().release)
    # Both agents did the work (fan-out), and their processes are all gone.
    assert a.proc.alive() and b.proc.alive()
    assert a.children() == [] and b.children() == []


def test_unreachable(make_agent, tmp_path):
    ans = Ansible(tmp_path, {"vmGone": "unix:%s/none.sock" % tmp_path})
    r = ans.adhoc("ping")
    assert r.returncode != 0
    assert "UNREACHABLE" in r.stdout and "cannot reach the agent" in r.stdout


def test_via_ssh(sshd, make_agent, tmp_path):
    agent = make_agent(env={"GL_TARGET": "agent-ssh"})
    address = "exec:%s socat - UNIX-CONNECT:%s" % (sshd.ssh_command, agent.sock)
    ans = Ansible(tmp_path, {"vmSsh": address})
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(1 << 20))
    r = ans.playbook("""\
        - hosts: vms
          gather_facts: false
          tasks:
            - command: printenv GL_TARGET
              register: cmd
            - assert:
                that: cmd.stdout == "agent-ssh"
            - copy:
                src: {src}
                dest: {tmp}/via-ssh.bin
        """.format(src=src, tmp=tmp_path))
    assert r.returncode == 0
    assert (tmp_path / "via-ssh.bin").read_bytes() == src.read_bytes()


def test_via_builds_the_ssh_command(sshd, make_agent, tmp_path):
    """guestlink_via: the plugin runs `SSH_COMMAND HOST GUESTLINK -m VM connect
    PORT`. A stand-in for the host's guestlink (guestlink_remote_command) checks
    those arguments and bridges to the agent named by -m, so the command line and
    its quoting through ssh and the host's shell are what is tested here."""
    agent = make_agent(name="vm-x", env={"GL_TARGET": "agent-via"})
    fake = tmp_path / "fake-guestlink"
    fake.write_text(textwrap.dedent("""\
        #!/bin/sh
        [ "$1" = -m ] && [ "$3" = connect ] && [ "$4" = 9731 ] && [ $# = 4 ] ||
            {{ echo "unexpected arguments: $*" >&2; exit 2; }}
        exec socat - UNIX-CONNECT:{tmp}/"$2"/agent.sock
        """).format(tmp=tmp_path))
    fake.chmod(0o755)
    ans = Ansible(tmp_path, {})
    with open(ans.inventory, "w") as f:
        f.write("[vms]\nvmhost guestlink_vm=vm-x guestlink_via=testhost "
                "guestlink_ssh_command=\"ssh -F %s\" "
                "guestlink_remote_command=%s\n"
                "[vms:vars]\nansible_connection=%s\n" % (sshd.client_config, fake, PLUGIN))
    r = ans.adhoc("command", "printenv GL_TARGET")
    assert r.returncode == 0
    assert "vmhost | CHANGED | rc=0 >>\nagent-via\n" in r.stdout
    assert agent.proc.alive()


# Drives the plugin as Ansible does within a task: one Connection object, several
# calls. Before each step it prints READY and waits for a line on stdin (the
# test restarts the agent meanwhile); each step prints its outcome.
RECONNECT_DRIVER = """
import os, sys, warnings
from ansible.errors import AnsibleConnectionFailure
from ansible.playbook.play_context import PlayContext
from ansible.plugins import loader
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    loader._configure_collection_loader()
address, src, tmp = sys.argv[1:4]
pc = PlayContext()
pc.remote_addr = "vmR"
conn = loader.connection_loader.get("%s", pc, sys.stdin)
conn.set_options(var_options={"guestlink_address": address, "guestlink_timeout": 10})
def step(name, fn):
    print("READY", flush=True)
    sys.stdin.readline()
    try:
        fn()
        print(name, "ok", flush=True)
    except AnsibleConnectionFailure as e:
        print(name, "unreachable", str(e).replace("\\n", " "), flush=True)
step("put1", lambda: conn.put_file(src, os.path.join(tmp, "put1")))
step("put2", lambda: conn.put_file(src, os.path.join(tmp, "put2")))
step("fetch", lambda: conn.fetch_file(src, os.path.join(tmp, "fetched")))
step("exec1", lambda: conn.exec_command("echo once"))
def again():
    rc, out, err = conn.exec_command("echo again")
    assert (rc, out) == (0, b"again\\n"), (rc, out, err)
step("exec2", again)
conn.close()
""" % PLUGIN


def test_reconnects_after_agent_restart(make_agent, tmp_path):
    """put_file and fetch_file (idempotent: whole files replaced atomically)
    reconnect once after the agent was SIGKILLed and started again on the same
    socket between calls; exec_command (not idempotent) fails once as
    unreachable and the next one reconnects. A real agent each time."""
    import signal
    ans = Ansible(tmp_path, {})
    a = make_agent(name="vmR")
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(256 << 10))
    driver = tmp_path / "driver.py"
    driver.write_text(RECONNECT_DRIVER)
    p = subprocess.Popen(["/usr/bin/python3", str(driver), a.address, str(src),
                          str(tmp_path)], cwd=ans.dir, env=ans.env, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    outcomes = []
    try:
        for restart in (False, True, True, True, False):
            assert p.stdout.readline() == "READY\n"
            if restart:
                a.proc.stop(signal.SIGKILL)
                a = make_agent(name="vmR")  # the same socket path
            p.stdin.write("go\n")
            p.stdin.flush()
            outcomes.append(p.stdout.readline().split(" ", 2)[:2])
        p.stdin.close()
        assert p.wait(60) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert outcomes == [["put1", "ok\n"], ["put2", "ok\n"], ["fetch", "ok\n"],
                        ["exec1", "unreachable"], ["exec2", "ok\n"]]
    for name in ("put1", "put2", "fetched"):
        assert (tmp_path / name).read_bytes() == src.read_bytes()
