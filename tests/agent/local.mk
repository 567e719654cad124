# tests/agent: the agent through its sockets (Python, stdlib only) and in-process (C).
agent_tests_py = \
	tests/agent/test-conformance.py \
	tests/agent/test-hostile.py \
	tests/agent/test-activation.py \
	tests/agent/test-units.py
TESTS += $(agent_tests_py)
dist_check_SCRIPTS += $(agent_tests_py)
EXTRA_DIST += tests/agent/agentlib.py

check_PROGRAMS += tests/agent/test-stress
TESTS += tests/agent/test-stress
tests_agent_test_stress_SOURCES = tests/agent/test-stress.c
tests_agent_test_stress_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tests
tests_agent_test_stress_CFLAGS = $(AM_CFLAGS) $(JSONC_CFLAGS)
tests_agent_test_stress_LDADD = $(JSONC_LIBS)
