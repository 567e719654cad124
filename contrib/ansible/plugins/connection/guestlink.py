# SPDX-License-Identifier: LGPL-2.1-or-later
# Ansible connection plugin for the guestlink agent.
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: guestlink
short_description: Run tasks inside VMs through the guestlink agent (vsock)
description:
  - Runs commands and moves files in a virtual machine through the guestlink agent
    (JSON-RPC 2.0 over virtio-vsock), reached through the host socket of the VM's
    vhost-user-vsock backend. The guest needs no network and no SSH server.
  - Commands run with C(exec.run) under the target's shell, so Ansible's become
    wrapping (sudo, su, ...) applies unchanged; files go over the agent's raw side
    channel (C(file.channel)), or JSON chunks where it is not available.
  - Many VMs on many hypervisor hosts are reached with I(guestlink_via), which runs
    C(guestlink connect) on the host through SSH (the C(exec:) transport).
author: guestlink project
version_added: "0.1.0"
requirements:
  - the C(guestlink) Python package on the controller
  - for I(guestlink_via), C(ssh) on the controller and C(guestlink) on the hypervisor host
options:
  guestlink_vm:
    description:
      - Name of the VM; its agent is reached at C(hybrid:/run/guestlink/NAME.vsock:9731).
      - Defaults to the inventory host name.
    type: str
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: guestlink_vm
    env:
      - name: GUESTLINK_VM
  guestlink_address:
    description:
      - A full guestlink address (C(unix:PATH), C(hybrid:PATH:PORT), C(vsock:CID:PORT),
        C(exec:COMMAND)); when set, I(guestlink_vm) and I(guestlink_via) are not used.
    type: str
    vars:
      - name: guestlink_address
    env:
      - name: GUESTLINK_ADDRESS
  guestlink_via:
    description:
      - SSH host (as C(ssh) understands it, C(user@host) or an C(ssh_config) alias) of the
        hypervisor that runs the VM. The connection becomes
        C(exec:SSH_COMMAND HOST guestlink -m VM connect PORT), with the host's
        C(guestlink) from I(guestlink_remote_command).
    type: str
    vars:
      - name: guestlink_via
    env:
      - name: GUESTLINK_VIA
  guestlink_ssh_command:
    description: The ssh command line used with I(guestlink_via).
    type: str
    default: ssh -o BatchMode=yes
    vars:
      - name: guestlink_ssh_command
    env:
      - name: GUESTLINK_SSH_COMMAND
  guestlink_remote_command:
    description: The guestlink CLI on the hypervisor host, for I(guestlink_via).
    type: str
    default: guestlink
    vars:
      - name: guestlink_remote_command
  guestlink_port:
    description: Agent port in the guest.
    type: int
    default: 9731
    vars:
      - name: guestlink_port
  guestlink_timeout:
    description: Seconds for connecting and for each call that is not a command run.
    type: float
    default: 30
    vars:
      - name: guestlink_timeout
    env:
      - name: GUESTLINK_TIMEOUT
  guestlink_exec_timeout:
    description:
      - Seconds after which the agent kills a command (its process group); 0 means no limit.
    type: float
    default: 0
    vars:
      - name: guestlink_exec_timeout
    env:
      - name: GUESTLINK_EXEC_TIMEOUT
notes:
  - A become method that asks for a password is supported when it reads the password
    from standard input (C(sudo -S), Ansible's default); C(su) with a password needs a
    terminal, which this connection does not give.
  - Commands run as the agent's user (root in a standard guest) before become.
"""

EXAMPLES = r"""
# inventory.ini
# [vms]
# vm1
# vm2 guestlink_via=hv2.example.com
# [vms:vars]
# ansible_connection=guestlink.guestlink.guestlink
# ansible_python_interpreter=/usr/bin/python3

- hosts: vms
  gather_facts: true
  tasks:
    - ansible.builtin.command: uname -r
    - ansible.builtin.copy:
        src: image.tar
        dest: /var/tmp/image.tar
"""

import os
import shlex

from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.module_utils.common.text.converters import to_bytes, to_native, to_text
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

try:
    import guestlink
    HAS_GUESTLINK = True
except ImportError as e:  # reported when a task needs the connection
    HAS_GUESTLINK = False
    GUESTLINK_IMPORT_ERROR = e

display = Display()


class Connection(ConnectionBase):
    """guestlink agent connection."""

    transport = "guestlink.guestlink.guestlink"
    has_pipelining = True
    # The agent runs the command; there is no login user to switch to.
    default_user = None

    def __init__(self, *args, **kwargs):
        super(Connection, self).__init__(*args, **kwargs)
        self._client = None

    def _address(self):
        address = self.get_option("guestlink_address")
        if address:
            return address
        vm = self.get_option("guestlink_vm") or self._play_context.remote_addr
        port = int(self.get_option("guestlink_port"))
        via = self.get_option("guestlink_via")
        if via:
            ssh = shlex.split(self.get_option("guestlink_ssh_command") or "ssh")
            remote = shlex.split(self.get_option("guestlink_remote_command") or "guestlink")
            remote += ["-m", vm, "connect", str(port)]
            # The remote side is parsed by the host's shell again: quote for it.
            return "exec:" + " ".join(shlex.quote(a) for a in ssh + [via]) + " " + \
                shlex.quote(" ".join(shlex.quote(a) for a in remote))
        return guestlink.machine_address(vm, port)

    def _connect(self):
        if not HAS_GUESTLINK:
            raise AnsibleError("the guestlink Python package is needed on the controller: %s"
                               % to_native(GUESTLINK_IMPORT_ERROR))
        if self._connected:
            return self
        address = self._address()
        display.vvv(u"GUESTLINK CONNECT {0}".format(address), host=self._play_context.remote_addr)
        try:
            self._client = guestlink.connect(address, timeout=float(
                self.get_option("guestlink_timeout")))
            self._client.ping()
        except (guestlink.ConnectionError, ValueError, guestlink.RpcError) as e:
            self._close_client()
            raise AnsibleConnectionFailure("guestlink: cannot reach the agent at %s: %s"
                                           % (address, to_native(e)))
        self._connected = True
        return self

    def _close_client(self):
        if self._client is not None:
            self._client.close()
            self._client = None

    def _drop_client(self):
        """The connection broke: forget it, so that the next call connects anew."""
        self._close_client()
        self._connected = False

    def _transfer(self, fn):
        """Run fn(client), a whole-file copy (idempotent: the destination is
        replaced atomically). When the cached connection turns out dead (the
        agent restarted since), connect again and retry once."""
        try:
            return fn(self._client)
        except guestlink.ConnectionError:
            self._drop_client()
        self._connect()
        try:
            return fn(self._client)
        except guestlink.ConnectionError:
            self._drop_client()
            raise

    def exec_command(self, cmd, in_data=None, sudoable=True):
        """Run ``cmd`` with the target's shell; returns (rc, stdout, stderr)."""
        super(Connection, self).exec_command(cmd, in_data=in_data, sudoable=sudoable)
        executable = self._play_context.executable or "/bin/sh"
        argv = shlex.split(executable) + ["-c", to_text(cmd, errors="surrogate_or_strict")]
        stdin = to_bytes(in_data) if in_data is not None else None
        if sudoable and self.become and self.become.expect_prompt():
            # sudo -S reads the password from stdin, before the module's input.
            password = to_bytes(self.become.get_option("become_pass") or "")
            stdin = password + b"\n" + (stdin or b"")
        timeout = float(self.get_option("guestlink_exec_timeout") or 0) or None
        display.vvv(u"GUESTLINK EXEC {0}".format(argv), host=self._play_context.remote_addr)
        try:
            r = self._client.exec(argv, stdin=stdin, timeout=timeout)
        except guestlink.ConnectionError as e:
            # Not retried: the command may have run. The next call reconnects.
            self._drop_client()
            raise AnsibleConnectionFailure("guestlink: %s" % to_native(e))
        except guestlink.RpcError as e:
            raise AnsibleError("guestlink: cannot run %s: %s" % (executable, to_native(e)))
        if r.truncated:
            display.warning("guestlink: the agent cut the output of %r (exec.max_output_bytes)"
                            % to_native(cmd)[:80])
        stderr = r.stderr
        if self.become and self.become.expect_prompt() and self.become.prompt:
            stderr = stderr.replace(to_bytes(self.become.prompt), b"", 1)
        if r.exit_code is None:
            # Killed: report like a shell would (128 + signal).
            rc = 128 + (r.signal or 0)
            if r.timed_out:
                stderr += to_bytes("guestlink: killed after %s s (guestlink_exec_timeout)\n"
                                   % self.get_option("guestlink_exec_timeout"))
        else:
            rc = r.exit_code
        return rc, r.stdout, stderr

    def put_file(self, in_path, out_path):
        """Copy a controller file into the guest (side channel, atomic)."""
        super(Connection, self).put_file(in_path, out_path)
        display.vvv(u"PUT {0} TO {1}".format(in_path, out_path),
                    host=self._play_context.remote_addr)
        if not os.path.exists(to_bytes(in_path, errors="surrogate_or_strict")):
            raise AnsibleFileNotFound("file or module does not exist: %s" % to_native(in_path))
        try:
            self._transfer(lambda c: c.copy_to(in_path, out_path))
        except guestlink.ConnectionError as e:
            raise AnsibleConnectionFailure("guestlink: put %s: %s" % (out_path, to_native(e)))
        except guestlink.RpcError as e:
            raise AnsibleError("guestlink: put %s: %s" % (out_path, to_native(e)))

    def fetch_file(self, in_path, out_path):
        """Copy a guest file to the controller."""
        super(Connection, self).fetch_file(in_path, out_path)
        display.vvv(u"FETCH {0} TO {1}".format(in_path, out_path),
                    host=self._play_context.remote_addr)
        try:
            self._transfer(lambda c: c.copy_from(in_path, out_path))
        except guestlink.NotFoundError as e:
            raise AnsibleFileNotFound("guestlink: %s: %s" % (in_path, to_native(e)))
        except guestlink.ConnectionError as e:
            raise AnsibleConnectionFailure("guestlink: fetch %s: %s" % (in_path, to_native(e)))
        except guestlink.RpcError as e:
            raise AnsibleError("guestlink: fetch %s: %s" % (in_path, to_native(e)))

    def reset(self):
        self.close()

    def close(self):
        self._close_client()
        self._connected = False
