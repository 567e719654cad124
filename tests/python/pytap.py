# SPDX-License-Identifier: LGPL-2.1-or-later
"""Run pytest files from python/tests/ and report each test as one TAP line, so
that automake's TAP driver (and run-suite.sh's count of .trs results) sees
them. pytest's own report goes to stderr (the test's .log)."""

import os
import sys

TOP_SRCDIR = os.environ.get("top_srcdir") or os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))


def _reexec_with_pytest():
    """pytest is Debian's python3-pytest: when the python3 on PATH lacks it
    (a private interpreter), run this file with /usr/bin/python3."""
    if os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3") and \
            os.access("/usr/bin/python3", os.X_OK):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    print("1..0 # SKIP pytest not installed (python3-pytest)", flush=True)
    sys.exit(0)


class TapPlugin:
    def __init__(self, out):
        self.out = out
        self.n = 0
        self.failed = 0

    def _line(self, ok, name, directive=""):
        self.n += 1
        if not ok:
            self.failed += 1
        self.out.write("%s %d - %s%s\n" % ("ok" if ok else "not ok", self.n, name, directive))
        self.out.flush()

    def pytest_runtest_logreport(self, report):
        name = report.nodeid.split("::", 1)[-1]
        if report.when == "setup":
            if report.skipped:
                reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
                self._line(True, name, " # SKIP %s" % str(reason).replace("Skipped: ", ""))
            elif report.failed:
                self._line(False, name + " (setup)")
        elif report.when == "call":
            if report.skipped:
                reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
                self._line(True, name, " # SKIP %s" % str(reason).replace("Skipped: ", ""))
            else:
                self._line(report.passed, name)
        elif report.when == "teardown" and report.failed:
            self._line(False, name + " (teardown)")

    def pytest_collectreport(self, report):
        if report.failed:
            self._line(False, "collect %s" % report.nodeid)


def main(*files):
    try:
        import pytest
    except ImportError:
        _reexec_with_pytest()
    sys.dont_write_bytecode = True
    tap = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # pytest's report into the log, not into the TAP stream
    plugin = TapPlugin(tap)
    paths = [os.path.join(TOP_SRCDIR, "python", "tests", f) for f in files]
    rc = pytest.main(["-p", "no:cacheprovider", "-rs", "-v", "--rootdir",
                      os.path.join(TOP_SRCDIR, "python"), "-c", os.devnull] + paths,
                     plugins=[plugin])
    if plugin.n == 0:
        tap.write("1..0 # SKIP no tests collected (pytest status %d)\n" % rc)
        return 0
    if rc not in (0, 5) and plugin.failed == 0:
        plugin._line(False, "pytest exit status %d" % rc)
    tap.write("1..%d\n" % plugin.n)
    tap.flush()
    return 1 if plugin.failed else 0
