#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Integers json-c cannot hold (beyond int64): json-c 0.16 clamps them without
an error. An id out of range is refused (-32600, id null) without running; an
integer parameter out of range is refused (-32602); a value the agent passes
through (agent.echo) comes back exactly as sent, never altered."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gltest import is_eq, ok, done, tmpdir  # noqa: E402
from agentlib import Agent  # noqa: E402

BIG = [2**63, 2**64, 10**29 + 7, -(2**63) - 1, -(10**30)]

tmp = tmpdir()
agent = Agent(tmp)
c = agent.client()


def rpc(text):
    c.send_raw(text.encode() + b"\n")
    return c.recv_line().decode()


# agent.echo: the 30-digit number comes back digit for digit (Python's json
# reads integers exactly, so compare the numbers and the raw text).
line = rpc('{"jsonrpc":"2.0","method":"agent.echo","params":[123456789012345678901234567890,'
           '-9223372036854775809,18446744073709551616,9223372036854775807],"id":1}')
ok('"result":[123456789012345678901234567890,-9223372036854775809,18446744073709551616,'
   '9223372036854775807]' in line, "agent.echo returns integers beyond int64 exactly: " + line)

for n in BIG:
    line = rpc('{"jsonrpc":"2.0","method":"agent.echo","params":{"n":%d},"id":%d}' % (n, n))
    a = __import__("json").loads(line)
    is_eq((a.get("error", {}).get("code"), a.get("id", 0), "result" in a), (-32600, None, False),
          "id %d: refused with -32600 and id null, not run" % n)
ok(c.nothing_within(0.3), "nothing else was answered")

# ids at the edges of int64 are echoed exactly
for n in (2**63 - 1, -(2**63)):
    line = rpc('{"jsonrpc":"2.0","method":"agent.ping","id":%d}' % n)
    ok(line.endswith('"id":%d}' % n), "id %d is echoed exactly" % n)

# An answer is written as text around the result: byte for byte what the
# envelope object gave, for every kind of id and result.
for req, want in (
        ('"method":"agent.ping","id":0', '{"jsonrpc":"2.0","result":"pong","id":0}'),
        ('"method":"agent.ping","id":-10', '{"jsonrpc":"2.0","result":"pong","id":-10}'),
        ('"method":"agent.ping","id":1234567890123',
         '{"jsonrpc":"2.0","result":"pong","id":1234567890123}'),
        ('"method":"agent.ping","id":"a\\"b\\u00e9/"',
         '{"jsonrpc":"2.0","result":"pong","id":"a\\"b\u00e9/"}'),
        ('"method":"agent.ping","id":null', '{"jsonrpc":"2.0","result":"pong","id":null}'),
        ('"method":"agent.echo","params":{"k":[1,"x",null]},"id":7',
         '{"jsonrpc":"2.0","result":{"k":[1,"x",null]},"id":7}'),
        ('"method":"agent.echo","id":8', '{"jsonrpc":"2.0","result":null,"id":8}')):
    is_eq(rpc('{"jsonrpc":"2.0",%s}' % req), want, "answer text for %s" % req)

# integer parameters out of range are refused, never clamped
for method, params in (("agent.ping", '{"delay_ms":18446744073709551616}'),
                       ("agent.ping", '{"delay_ms":9223372036854775808}'),
                       ("exec.wait", '{"id":100000000000000000000000000000}'),
                       ("exec.status", '{"id":-9223372036854775809}')):
    a = __import__("json").loads(rpc('{"jsonrpc":"2.0","method":"%s","params":%s,"id":"p"}'
                                     % (method, params)))
    is_eq((a.get("error", {}).get("code"), a.get("id")), (-32602, "p"),
          "%s %s: -32602 with the request's id" % (method, params))

# in a batch only the member with the bad id is refused
c.send_raw(b'[{"jsonrpc":"2.0","method":"agent.ping","id":18446744073709551616},'
           b'{"jsonrpc":"2.0","method":"agent.ping","id":5}]\n')
a = c.recv()
is_eq(sorted([(x.get("error", {}).get("code"), x.get("result"), x["id"]) for x in a],
             key=str),
      sorted([(-32600, None, None), (None, "pong", 5)], key=str),
      "batch: the member with id 2^64 refused, the other answered")

is_eq(c.call("agent.ping", id=7)["result"], "pong", "the connection still serves")
ok(agent.alive(), "agent alive")
done()
