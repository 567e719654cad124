# SPDX-License-Identifier: LGPL-2.1-or-later
"""Each exec child in a transient scope of its own: a long exec.start survives
`systemctl restart guestlink-agent`, and `systemctl` shows what a host started."""

import time


def s21_exec_scope(vm, H):
    r = H.call(vm, "exec.start", {"argv": ["sleep", "300"]})
    res = r.get("result") or {}
    H.ok("pid" in res, "21: exec.start of a long sleep (%r)" % r.get("error"))
    if "pid" not in res:
        return
    pid, eid = res["pid"], res["id"]
    scope = "guestlink-exec-%d-%d.scope" % (eid, pid)
    deadline = time.monotonic() + 30
    while True:
        g = vm.ctl.sh("cat /proc/%d/cgroup; systemctl is-active %s" % (pid, scope))
        if scope in g["out"] or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    H.ok(scope in g["out"] and g["out"].split()[-1:] == ["active"],
         "21: the child runs in its own scope %s (%s)" % (scope, g["out"].strip()[-200:]))
    g = vm.ctl.sh("systemctl restart guestlink-agent.service; "
                  "systemctl is-active guestlink-agent.service", timeout=120)
    H.is_eq(g["out"].split()[-1:], ["active"], "21: the agent service restarted")
    g = vm.ctl.sh("kill -0 %d && echo alive" % pid)
    H.is_eq(g["out"].strip(), "alive", "21: the exec child survived the agent's restart")
    r = H.call(vm, "agent.ping")
    H.ok("result" in r, "21: the restarted agent answers")
    vm.ctl.sh("kill %d" % pid)


SCENARIOS = [s21_exec_scope]
