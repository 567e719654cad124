# tests/host: the guestlink CLI (test-cli.py needs tests/proto/example-client).
HOST_TESTS = \
	tests/host/test-usage.py \
	tests/host/test-cli.py \
	tests/host/test-cli-guest-text.py \
	tests/host/test-cli-errors.py \
	tests/host/test-cli-json.py \
	tests/host/test-cli-transport.py \
	tests/host/test-cli-cp.py \
	tests/host/test-cli-hostile.py \
	tests/host/test-cli-term-hostile.py \
	tests/host/test-agent-config-log.py \
	tests/host/test-completion.py
TESTS += $(HOST_TESTS)
dist_check_SCRIPTS += $(HOST_TESTS)
