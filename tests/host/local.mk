# tests/host: the guestlink CLI.
TESTS += tests/host/test-usage.py
dist_check_SCRIPTS += tests/host/test-usage.py
