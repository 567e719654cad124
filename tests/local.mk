# Tests: every file here is run by `make check` (TAP; see tests/tap.h and tests/lib/).
EXTRA_DIST += tests/tap.h tests/lib/gltest.py tests/lib/glagent.py tests/lib/glvm.py tests/lib/termlib.py tests/lib/glssh.py

include tests/proto/local.mk
include tests/agent/local.mk
include tests/methods/local.mk
include tests/host/local.mk
include tests/python/local.mk
include tests/backend/local.mk
include tests/guestsim/local.mk
include tests/vm/local.mk
include tests/fuzz/local.mk
include tests/bench/local.mk
include tests/soak/local.mk
EXTRA_DIST += tests/run-suite.sh tests/deps.sh

# tests/pkg: the library's ABI (make check); the Debian packages and libvirt
# have their own targets, see tests/pkg/local.mk.
include tests/pkg/local.mk
