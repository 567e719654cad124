# SPDX-License-Identifier: LGPL-2.1-or-later
"""guestlink: a client for the guestlink agent (JSON-RPC 2.0 over vsock).

    import guestlink
    with guestlink.connect(vm="vm1") as c:          # hybrid:/run/guestlink/vm1.vsock:9731
        c.ping()
        r = c.exec(["uname", "-r"])
        print(r.exit_code, r.stdout.decode())
        c.copy_to("image.tar", "/var/tmp/image.tar")

Addresses: ``unix:PATH``, ``hybrid:PATH:PORT``, ``vsock:CID:PORT``,
``exec:COMMAND`` (e.g. ``exec:ssh hv1 guestlink -m vm1 connect 9731``), or
$GUESTLINK_ADDRESS. :mod:`guestlink.aio` offers the same API as coroutines.
Standard library only.
"""

from ._common import ExecResult
from ._transport import DEFAULT_PORT, machine_address, parse_address
from .client import Client, connect
from .errors import (CallTimeoutError, ConnectionError, DeniedError, Error, InvalidParams,
                     LimitError, MethodNotFound, NotFoundError, RpcError, TimedOutError)
from . import aio  # noqa: E402  (guestlink.aio.connect after a plain "import guestlink")

__version__ = "0.1.0"

__all__ = [
    "connect", "Client", "ExecResult", "aio",
    "Error", "RpcError", "DeniedError", "NotFoundError", "LimitError", "TimedOutError",
    "MethodNotFound", "InvalidParams", "ConnectionError", "CallTimeoutError",
    "DEFAULT_PORT", "machine_address", "parse_address",
]
