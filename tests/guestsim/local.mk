# tests/guestsim: a vhost-user front-end and guest virtio-vsock driver (stands in for
# QEMU and the guest kernel), its CLI, and the back-end's end-to-end tests.
check_LTLIBRARIES += tests/guestsim/libguestsim.la
tests_guestsim_libguestsim_la_SOURCES = \
	tests/guestsim/guestsim.h tests/guestsim/guestsim-internal.h \
	tests/guestsim/guestsim.c tests/guestsim/vu_front.c tests/guestsim/hostile.c \
	tests/guestsim/gstest.h tests/guestsim/gstest.c

GUESTSIM_LIBS = tests/guestsim/libguestsim.la

noinst_PROGRAMS += tests/guestsim/guestsim
tests_guestsim_guestsim_SOURCES = tests/guestsim/main.c
tests_guestsim_guestsim_LDADD = $(GUESTSIM_LIBS)

GUESTSIM_TESTS = \
	tests/guestsim/test-sha256 \
	tests/guestsim/test-strict \
	tests/guestsim/test-negotiate \
	tests/guestsim/test-data \
	tests/guestsim/test-bad-guest \
	tests/guestsim/test-bad-frontend \
	tests/guestsim/test-hybrid \
	tests/guestsim/test-liveness \
	tests/guestsim/test-seqpacket \
	tests/guestsim/test-budget \
	tests/guestsim/test-hold
check_PROGRAMS += $(GUESTSIM_TESTS)
TESTS += $(GUESTSIM_TESTS)
tests_guestsim_test_sha256_LDADD = $(GUESTSIM_LIBS)
tests_guestsim_test_strict_LDADD = $(GUESTSIM_LIBS) -lpthread
tests_guestsim_test_negotiate_LDADD = $(GUESTSIM_LIBS)
tests_guestsim_test_data_LDADD = $(GUESTSIM_LIBS)
tests_guestsim_test_bad_guest_LDADD = $(GUESTSIM_LIBS)
tests_guestsim_test_bad_frontend_LDADD = $(GUESTSIM_LIBS)
tests_guestsim_test_hybrid_LDADD = $(GUESTSIM_LIBS)
tests_guestsim_test_liveness_LDADD = $(GUESTSIM_LIBS)
tests_guestsim_test_seqpacket_LDADD = $(GUESTSIM_LIBS)
tests_guestsim_test_budget_LDADD = $(GUESTSIM_LIBS)
tests_guestsim_test_hold_LDADD = $(GUESTSIM_LIBS)


TESTS += tests/guestsim/test-agent-bridge.py
dist_check_SCRIPTS += tests/guestsim/test-agent-bridge.py

# Benchmark: built by `make check`, run by hand (not a timed test):
#   top_builddir=. tests/bench/bench-backend [SECONDS]
check_PROGRAMS += tests/bench/bench-backend
tests_bench_bench_backend_SOURCES = tests/bench/bench-backend.c
tests_bench_bench_backend_LDADD = $(GUESTSIM_LIBS)
tests_bench_bench_backend_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tests/guestsim
