# tests/agent: the agent through its sockets (Python, stdlib only) and in-process (C).
agent_tests_py = \
	tests/agent/test-conformance.py \
	tests/agent/test-hostile.py \
	tests/agent/test-activation.py \
	tests/agent/test-units.py
TESTS += $(agent_tests_py)
dist_check_SCRIPTS += $(agent_tests_py)
EXTRA_DIST += tests/agent/agentlib.py
