# tests/backend: unit tests of the back-end's modules, linked with backend/libbackend.la.
BACKEND_TESTS = \
	tests/backend/test-guest-memory \
	tests/backend/test-virtqueue \
	tests/backend/test-hybrid \
	tests/backend/test-vsock-packet \
	tests/backend/test-vsock-state \
	tests/backend/test-vhost-user
check_PROGRAMS += $(BACKEND_TESTS)
TESTS += $(BACKEND_TESTS)
BACKEND_TEST_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/backend
BACKEND_TEST_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS)
BACKEND_TEST_LIBS = backend/libbackend.la proto/libguestlink-internal.la $(LIBEVENT_LIBS)
tests_backend_test_guest_memory_CPPFLAGS = $(BACKEND_TEST_CPPFLAGS)
tests_backend_test_guest_memory_CFLAGS = $(BACKEND_TEST_CFLAGS)
tests_backend_test_guest_memory_LDADD = $(BACKEND_TEST_LIBS)
tests_backend_test_virtqueue_CPPFLAGS = $(BACKEND_TEST_CPPFLAGS)
tests_backend_test_virtqueue_CFLAGS = $(BACKEND_TEST_CFLAGS)
tests_backend_test_virtqueue_LDADD = $(BACKEND_TEST_LIBS)
tests_backend_test_hybrid_CPPFLAGS = $(BACKEND_TEST_CPPFLAGS)
tests_backend_test_hybrid_CFLAGS = $(BACKEND_TEST_CFLAGS)
tests_backend_test_hybrid_LDADD = $(BACKEND_TEST_LIBS)
tests_backend_test_vsock_packet_CPPFLAGS = $(BACKEND_TEST_CPPFLAGS)
tests_backend_test_vsock_packet_CFLAGS = $(BACKEND_TEST_CFLAGS)
tests_backend_test_vsock_packet_LDADD = $(BACKEND_TEST_LIBS)
tests_backend_test_vsock_state_CPPFLAGS = $(BACKEND_TEST_CPPFLAGS)
tests_backend_test_vsock_state_CFLAGS = $(BACKEND_TEST_CFLAGS)
tests_backend_test_vsock_state_LDADD = $(BACKEND_TEST_LIBS)
tests_backend_test_vhost_user_CPPFLAGS = $(BACKEND_TEST_CPPFLAGS)
tests_backend_test_vhost_user_CFLAGS = $(BACKEND_TEST_CFLAGS)
tests_backend_test_vhost_user_LDADD = $(BACKEND_TEST_LIBS)

TESTS += tests/backend/test-backend-cli.py
dist_check_SCRIPTS += tests/backend/test-backend-cli.py
