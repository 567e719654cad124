# SPDX-License-Identifier: LGPL-2.1-or-later
"""The audit trail through the guest's real journald: a call that changes the
guest leaves a structured entry (GUESTLINK_METHOD, GUESTLINK_PEER with the
host's CID, GUESTLINK_OUTCOME, GUESTLINK_PARAMS) at notice level; a read-only
call leaves none at the agent's default level."""

import json
import os
import time


def _entries(vm, match):
    r = vm.ctl.sh("journalctl -o json --no-pager %s 2>/dev/null" % match)
    out = []
    for line in r["out"].splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def s40_audit_journal(vm, H):
    tag = "audit-%d-%d" % (os.getpid(), int(time.time()))
    r = H.call(vm, "exec.run", {"argv": ["echo", tag]})
    H.ok("result" in r, "40: exec.run answers")
    r = H.call(vm, "agent.ping")
    H.ok(r.get("result") == "pong", "40: agent.ping answers")
    mine = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        mine = [e for e in _entries(vm, "GUESTLINK_METHOD=exec.run")
                if tag in e.get("GUESTLINK_PARAMS", "")]
        if mine:
            break
        time.sleep(0.5)
    H.ok(len(mine) == 1, "40: one journal entry for the exec.run (%d)" % len(mine))
    if mine:
        e = mine[0]
        H.diag("40: %s" % json.dumps({k: v for k, v in e.items() if k.startswith(("GUESTLINK_",
                                                                                 "PRIORITY",
                                                                                 "MESSAGE"))}))
        H.ok(e.get("GUESTLINK_PEER", "").startswith("vsock:2:"),
             "40: the entry names the peer: the host, CID 2 (%s)" % e.get("GUESTLINK_PEER"))
        H.is_eq((e.get("GUESTLINK_OUTCOME"), e.get("GUESTLINK_CODE"), e.get("PRIORITY")),
                ("ok", "0", "5"), "40: outcome ok, code 0, priority notice")
        H.ok('"argv":["echo","%s"]' % tag in e.get("GUESTLINK_PARAMS", ""),
             "40: the entry carries the argv")
    pings = _entries(vm, "GUESTLINK_METHOD=agent.ping")
    H.ok(not pings, "40: no entry for agent.ping at the default level (%d)" % len(pings))


SCENARIOS = [s40_audit_journal]
