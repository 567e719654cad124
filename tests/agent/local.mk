# tests/agent: the agent through its sockets (Python, stdlib only) and in-process (C).
agent_tests_py = \
	tests/agent/test-conformance.py \
	tests/agent/test-numbers.py \
	tests/agent/test-audit.py \
	tests/agent/test-worker.py \
	tests/agent/test-worker-handles.py \
	tests/agent/test-worker-freeze.py \
	tests/agent/test-worker-freeze-exit.py \
	tests/agent/test-worker-user.py \
	tests/agent/test-worker-nothread.py \
	tests/agent/test-worker-more.py \
	tests/agent/test-worker-channel.py \
	tests/agent/test-channel-truncate.py \
	tests/agent/test-channel-edges.py \
	tests/agent/test-hostile.py \
	tests/agent/test-backpressure.py \
	tests/agent/test-answer-order.py \
	tests/agent/test-answer-edges.py \
	tests/agent/test-qga.py \
	tests/agent/test-activation.py \
	tests/agent/test-units.py
TESTS += $(agent_tests_py)
dist_check_SCRIPTS += $(agent_tests_py)
EXTRA_DIST += tests/agent/agentlib.py tests/agent/hangfslib.py tests/agent/nslib.py tests/lib/qgalib.py

check_PROGRAMS += tests/agent/test-stress
TESTS += tests/agent/test-stress
tests_agent_test_stress_SOURCES = tests/agent/test-stress.c
tests_agent_test_stress_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tests
tests_agent_test_stress_CFLAGS = $(AM_CFLAGS) $(JSONC_CFLAGS)
tests_agent_test_stress_LDADD = $(JSONC_LIBS)

check_PROGRAMS += tests/agent/test-dispatch
TESTS += tests/agent/test-dispatch
tests_agent_test_dispatch_SOURCES = tests/agent/test-dispatch.c
tests_agent_test_dispatch_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/agent -I$(top_srcdir)/tests
tests_agent_test_dispatch_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) $(JSONC_CFLAGS)
# --wrap: the test counts the bytes the agent's evbuffer_search() calls examine.
tests_agent_test_dispatch_LDFLAGS = -Wl,--wrap=evbuffer_search
tests_agent_test_dispatch_LDADD = agent/libagent.la proto/libguestlink-internal.la \
	$(LIBEVENT_LIBS) $(JSONC_LIBS) $(SYSTEMD_LIBS)

# The envelope fast path against the decoder path (shares the fuzz oracle).
check_PROGRAMS += tests/agent/test-envelope
TESTS += tests/agent/test-envelope
tests_agent_test_envelope_SOURCES = tests/agent/test-envelope.c \
	tests/fuzz/envelope-diff.c tests/fuzz/envelope-diff.h
tests_agent_test_envelope_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/agent -I$(top_srcdir)/tests \
	-I$(top_srcdir)/tests/fuzz
tests_agent_test_envelope_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) $(JSONC_CFLAGS)
tests_agent_test_envelope_LDADD = agent/libagent.la proto/libguestlink-internal.la \
	$(LIBEVENT_LIBS) $(JSONC_LIBS) $(SYSTEMD_LIBS)

# A FUSE filesystem whose server a test can stop, for test-worker.py.
if HAVE_FUSE3
check_PROGRAMS += tests/agent/hangfs
tests_agent_hangfs_SOURCES = tests/agent/hangfs.c
tests_agent_hangfs_CFLAGS = $(AM_CFLAGS) $(FUSE3_CFLAGS)
tests_agent_hangfs_LDADD = $(FUSE3_LIBS)
else
EXTRA_DIST += tests/agent/hangfs.c
endif

# The QGA serial port reopened after every client, even when watching one fails.
check_PROGRAMS += tests/agent/test-serial
TESTS += tests/agent/test-serial
tests_agent_test_serial_SOURCES = tests/agent/test-serial.c
tests_agent_test_serial_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/agent -I$(top_srcdir)/tests
tests_agent_test_serial_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) $(JSONC_CFLAGS)
# --wrap: the test makes conn_add_drain_watch() fail once.
tests_agent_test_serial_LDFLAGS = -Wl,--wrap=conn_add_drain_watch
tests_agent_test_serial_LDADD = agent/libagent.la proto/libguestlink-internal.la \
	$(LIBEVENT_LIBS) $(JSONC_LIBS) $(SYSTEMD_LIBS)
