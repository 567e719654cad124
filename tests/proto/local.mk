# tests/proto: libguestlink unit tests (TAP).
GL_PROTO_TESTS = \
	tests/proto/test-jsonrpc
check_PROGRAMS += $(GL_PROTO_TESTS)
TESTS += $(GL_PROTO_TESTS)

GL_PROTO_TEST_CFLAGS = $(AM_CFLAGS) -I$(top_srcdir)/tests $(LIBEVENT_CFLAGS) $(JSONC_CFLAGS)
GL_PROTO_TEST_LDADD = proto/libguestlink-internal.la $(LIBEVENT_LIBS) $(JSONC_LIBS)

tests_proto_test_jsonrpc_CFLAGS = $(GL_PROTO_TEST_CFLAGS)
tests_proto_test_jsonrpc_LDADD = $(GL_PROTO_TEST_LDADD)

GL_PROTO_TESTS += tests/proto/test-stream
tests_proto_test_stream_CFLAGS = $(GL_PROTO_TEST_CFLAGS)
tests_proto_test_stream_LDADD = $(GL_PROTO_TEST_LDADD)

GL_PROTO_TESTS += tests/proto/test-address
tests_proto_test_address_CFLAGS = $(GL_PROTO_TEST_CFLAGS)
tests_proto_test_address_LDADD = $(GL_PROTO_TEST_LDADD)

GL_PROTO_TESTS += tests/proto/test-hybrid
tests_proto_test_hybrid_CFLAGS = $(GL_PROTO_TEST_CFLAGS)
tests_proto_test_hybrid_LDADD = $(GL_PROTO_TEST_LDADD)

GL_PROTO_TESTS += tests/proto/test-client
tests_proto_test_client_CFLAGS = $(GL_PROTO_TEST_CFLAGS)
tests_proto_test_client_LDADD = $(GL_PROTO_TEST_LDADD)

# The example for the README: compiled here so it never rots, and run against
# the real agent by tests/host/test-cli.py. It links the installed library,
# as an application would, so it may use only the public API.
check_PROGRAMS += tests/proto/example-client
tests_proto_example_client_CFLAGS = $(GL_PROTO_TEST_CFLAGS)
tests_proto_example_client_LDADD = proto/libguestlink.la $(LIBEVENT_LIBS) $(JSONC_LIBS)
