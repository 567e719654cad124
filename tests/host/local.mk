# tests/host: the guestlink CLI (test-cli.py needs tests/proto/example-client).
TESTS += tests/host/test-usage.py tests/host/test-cli.py
dist_check_SCRIPTS += tests/host/test-usage.py tests/host/test-cli.py
