# SPDX-License-Identifier: LGPL-2.1-or-later
"""Addresses and the connected stream socket behind every client.

The syntax is libguestlink's: ``unix:PATH``, ``hybrid:PATH:PORT`` (a
vhost-user-vsock backend's host socket, then ``CONNECT PORT``), ``vsock:CID:PORT``
(AF_VSOCK: only inside a guest or on a host with in-kernel vhost-vsock) and
``exec:COMMAND``. An ``exec:`` COMMAND is run by ``/bin/sh -c 'exec COMMAND'``
(as OpenSSH runs a ProxyCommand, so quoting works as in a shell) with a Unix
socket pair as its stdin and stdout; the protocol runs over that pair.
"""

import os
import signal
import socket
import subprocess
import tempfile
import time
from typing import Optional, Tuple

from .errors import ConnectionError

DEFAULT_PORT = 9731
RUNDIR = "/run/guestlink"
# Stderr kept from an exec: command for error messages, bytes.
STDERR_TAIL = 4096
# How long a closed exec: command may take to exit on its own, then SIGTERM,
# then as long again before SIGKILL; seconds.
CHILD_GRACE_S = 2.0


class Address:
    """A parsed address: ``scheme`` is unix, hybrid, vsock or exec."""

    def __init__(self, scheme: str, path: str = "", port: int = 0, cid: int = 0,
                 command: str = ""):
        self.scheme = scheme
        self.path = path
        self.port = port
        self.cid = cid
        self.command = command

    def __str__(self) -> str:
        if self.scheme == "unix":
            return "unix:" + self.path
        if self.scheme == "hybrid":
            return "hybrid:%s:%d" % (self.path, self.port)
        if self.scheme == "vsock":
            return "vsock:%d:%d" % (self.cid, self.port)
        return "exec:" + self.command


def _u32(text: str, what: str, address: str) -> int:
    if not text.isdigit() or not text.isascii() or len(text) > 10 or int(text) >= 2**32 - 1:
        raise ValueError("bad %s in address %r" % (what, address))
    return int(text)


def parse_address(address: str) -> Address:
    """Parse an address string; ValueError when malformed (unknown scheme,
    empty path, port or cid not a decimal number below 2^32-1, empty command)."""
    if address.startswith("unix:"):
        path = address[5:]
        if not path or "\0" in path:
            raise ValueError("bad path in address %r" % address)
        return Address("unix", path=path)
    if address.startswith("hybrid:"):
        path, sep, port = address[7:].rpartition(":")
        if not sep or not path or "\0" in path:
            raise ValueError("bad address %r (hybrid:PATH:PORT)" % address)
        return Address("hybrid", path=path, port=_u32(port, "port", address))
    if address.startswith("vsock:"):
        cid, sep, port = address[6:].partition(":")
        if not sep:
            raise ValueError("bad address %r (vsock:CID:PORT)" % address)
        return Address("vsock", cid=_u32(cid, "cid", address), port=_u32(port, "port", address))
    if address.startswith("exec:"):
        command = address[5:].strip()
        if not command or "\0" in command:
            raise ValueError("empty command in address %r" % address)
        return Address("exec", command=command)
    raise ValueError("unknown address %r (unix:, hybrid:, vsock: or exec:)" % address)


def machine_address(name: str, port: int = DEFAULT_PORT) -> str:
    """``hybrid:/run/guestlink/NAME.vsock:9731``, what ``guestlink -m NAME`` uses."""
    if not name or "/" in name or name in (".", "..") or "\0" in name:
        raise ValueError("bad machine name %r" % (name,))
    return "hybrid:%s/%s.vsock:%d" % (RUNDIR, name, port)


def resolve(address: Optional[str], vm: Optional[str]) -> str:
    """The address to use: ``address``, else ``vm``'s, else $GUESTLINK_ADDRESS."""
    if address is not None and vm is not None:
        raise ValueError("give address or vm, not both")
    if address is not None:
        return address
    if vm is not None:
        return machine_address(vm)
    env = os.environ.get("GUESTLINK_ADDRESS")
    if env:
        return env
    raise ValueError("no address: pass address= or vm=, or set GUESTLINK_ADDRESS")


class Child:
    """The process behind an ``exec:`` address. :meth:`close` reaps it: it gets
    CHILD_GRACE_S to exit after its stdin closed, then SIGTERM, then SIGKILL."""

    def __init__(self, command: str, sock: socket.socket):
        self.command = command
        self.stderr_file = tempfile.TemporaryFile(prefix="guestlink-stderr.")
        try:
            # A session of its own, as libguestlink's: the terminal's ^C, ^\ and
            # ^Z signal us, never the transport; it cannot prompt on the terminal.
            self.proc = subprocess.Popen(["/bin/sh", "-c", "exec " + command], stdin=sock,
                                         stdout=sock, stderr=self.stderr_file, close_fds=True,
                                         start_new_session=True)
        except BaseException:
            self.stderr_file.close()
            raise

    def stderr_tail(self) -> str:
        """The last STDERR_TAIL bytes the command wrote to stderr, as text."""
        try:
            f = self.stderr_file
            size = os.fstat(f.fileno()).st_size
            data = os.pread(f.fileno(), STDERR_TAIL, max(0, size - STDERR_TAIL))
        except (OSError, ValueError):
            return ""
        return data.decode("utf-8", "replace")

    def describe(self) -> str:
        """Exit status so far ('' while it runs) and its stderr, for errors."""
        rc = self.proc.poll()
        if rc is None:
            return ""
        if rc < 0:
            return "command %r killed by signal %d" % (self.command, -rc)
        return "command %r exited with status %d" % (self.command, rc)

    def close(self) -> Optional[int]:
        """Reap the command (killing it if it lingers); returns its status."""
        p = self.proc
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            if sig is not None and p.poll() is None:
                try:
                    p.send_signal(sig)
                except ProcessLookupError:
                    pass
            try:
                p.wait(CHILD_GRACE_S if sig != signal.SIGKILL else None)
                break
            except subprocess.TimeoutExpired:
                continue
        self.stderr_file.close()
        return p.returncode


def _deadline(timeout: Optional[float]) -> Optional[float]:
    return None if timeout is None else time.monotonic() + timeout


def _left(deadline: Optional[float]) -> Optional[float]:
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise socket.timeout("timed out")
    return left


def hybrid_handshake(sock: socket.socket, port: int, deadline: Optional[float]) -> None:
    """Write ``CONNECT PORT\\n``, read one line byte by byte (what follows is the
    guest's) and accept it when it starts with ``OK``. ConnectionRefusedError when
    the backend closes without a word (the guest refused), OSError otherwise."""
    sock.settimeout(_left(deadline))
    sock.sendall(b"CONNECT %d\n" % port)
    line = b""
    while not line.endswith(b"\n"):
        sock.settimeout(_left(deadline))
        c = sock.recv(1)
        if not c:
            if not line:
                raise ConnectionRefusedError("guest port %d refused the connection" % port)
            raise ConnectionResetError("connection closed during the CONNECT handshake")
        line += c
        if len(line) > 64:
            raise OSError("overlong CONNECT answer")
    line = line.rstrip(b"\r\n")
    if not (line == b"OK" or line.startswith(b"OK ")):
        raise OSError("unexpected CONNECT answer %r" % line[:64])


def open_stream(address: str, timeout: Optional[float]) -> Tuple[socket.socket, Optional[Child]]:
    """A connected blocking stream socket to the agent at ``address`` and, for
    ``exec:``, the child process (to be closed after the socket).
    Raises ValueError for a malformed address, ConnectionError otherwise."""
    a = parse_address(address)
    deadline = _deadline(timeout)
    if a.scheme == "exec":
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            child = Child(a.command, theirs)
        except OSError as e:
            mine.close()
            raise ConnectionError("%s: cannot run the command: %s" % (address, e)) from e
        finally:
            theirs.close()
        mine.settimeout(None)
        return mine, child
    if a.scheme == "vsock":
        s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
        target = (a.cid, a.port)
    else:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target = a.path
    try:
        s.settimeout(_left(deadline))
        s.connect(target)
        if a.scheme == "hybrid":
            hybrid_handshake(s, a.port, deadline)
        s.settimeout(None)
    except socket.timeout as e:
        s.close()
        raise ConnectionError("%s: timed out connecting" % address) from e
    except OSError as e:
        s.close()
        raise ConnectionError("%s: %s" % (address, e.strerror or e)) from e
    return s, None
