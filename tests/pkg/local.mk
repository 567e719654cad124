# tests/pkg: what a distribution installs. test-abi and test-conffile run in
# `make check`.
pkg_tests = tests/pkg/test-abi.py tests/pkg/test-conffile.py
dist_check_SCRIPTS += $(pkg_tests)
TESTS += $(pkg_tests)
EXTRA_DIST += tests/pkg/build-debs.sh
