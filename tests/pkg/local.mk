# tests/pkg: what a distribution installs. test-abi runs in `make check`.
dist_check_SCRIPTS += tests/pkg/test-abi.py
TESTS += tests/pkg/test-abi.py
