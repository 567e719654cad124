# The agent's method families (exec, file, system, fs, plugins) through a real
# agent on a Unix socket, and the CLI commands built on them.
methods_tests = \
	tests/methods/test-exec.py \
	tests/methods/test-exec-inherit.py \
	tests/methods/test-exec-signals.py \
	tests/methods/test-exec-pty.py \
	tests/methods/test-shell.py \
	tests/methods/test-connect.py \
	tests/methods/test-file.py \
	tests/methods/test-system.py \
	tests/methods/test-plugin.py \
	tests/methods/test-cli.py \
	tests/methods/test-limits.py \
	tests/methods/test-channel-slow.py \
	tests/methods/test-fsfreeze-links.py \
	tests/methods/test-fsfreeze-hostname.py
TESTS += $(methods_tests)
dist_check_SCRIPTS += $(methods_tests)
EXTRA_DIST += tests/methods/agentlib.py
# Benchmark (by hand, not in make check): guestlink cp against a raw socket copy.
EXTRA_DIST += tests/methods/bench-cp.py
