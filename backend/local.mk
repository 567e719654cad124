# vhost-user-vsock: the device core is a convenience library so unit tests and
# fuzzers link it; the program adds only main().
noinst_LTLIBRARIES += backend/libbackend.la
backend_libbackend_la_SOURCES = \
	backend/guest_memory.c backend/guest_memory.h \
	backend/virtqueue.c backend/virtqueue.h \
	backend/vhost_user.c backend/vhost_user.h \
	backend/vsock.c backend/vsock.h \
	backend/vsock_packet.c backend/vsock_packet.h \
	backend/vsock_internal.h \
	backend/vsock_pend.c \
	backend/vsock_seqpacket.c \
	backend/vsock_host.c \
	backend/hybrid.c backend/hybrid.h
backend_libbackend_la_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/backend
backend_libbackend_la_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS)
backend_libbackend_la_LIBADD = proto/libguestlink.la $(LIBEVENT_LIBS)

libexec_PROGRAMS += backend/vhost-user-vsock
backend_vhost_user_vsock_SOURCES = backend/main.c
backend_vhost_user_vsock_CPPFLAGS = $(backend_libbackend_la_CPPFLAGS)
backend_vhost_user_vsock_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) $(SYSTEMD_CFLAGS)
backend_vhost_user_vsock_LDADD = backend/libbackend.la proto/libguestlink.la \
	$(LIBEVENT_LIBS) $(SYSTEMD_LIBS)

# QEMU's vhost-user backend descriptor (docs/interop/vhost-user.json).
qemuvhostuserdir = $(datadir)/qemu/vhost-user
qemuvhostuser_DATA = backend/50-guestlink-vsock.json
EXTRA_DIST += backend/50-guestlink-vsock.json.in
CLEANFILES += backend/50-guestlink-vsock.json
backend/50-guestlink-vsock.json: backend/50-guestlink-vsock.json.in Makefile
	$(AM_V_GEN)$(MKDIR_P) backend && \
	sed -e 's|@libexecdir[@]|$(libexecdir)|g' $(srcdir)/backend/50-guestlink-vsock.json.in > $@.tmp && \
	mv $@.tmp $@

dist_man_MANS += doc/vhost-user-vsock.8

# libFuzzer harnesses (./configure --enable-fuzz CC=clang); each is also run
# over its seed corpus, see tests/fuzz/local.mk for how to fuzz for longer.
EXTRA_DIST += tests/fuzz/fuzz-vhost-user.c tests/fuzz/fuzz-vring.c \
	tests/fuzz/fuzz-vsock-packet.c \
	tests/fuzz/corpus/vhost-user tests/fuzz/corpus/vring \
	tests/fuzz/corpus/vsock-packet
if ENABLE_FUZZ
noinst_PROGRAMS += tests/fuzz/fuzz-vhost-user tests/fuzz/fuzz-vring tests/fuzz/fuzz-vsock-packet
tests_fuzz_fuzz_vhost_user_SOURCES = tests/fuzz/fuzz-vhost-user.c
tests_fuzz_fuzz_vhost_user_CPPFLAGS = $(backend_libbackend_la_CPPFLAGS)
tests_fuzz_fuzz_vhost_user_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS)
tests_fuzz_fuzz_vhost_user_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer -no-install
tests_fuzz_fuzz_vhost_user_LDADD = backend/libbackend.la proto/libguestlink.la $(LIBEVENT_LIBS)
tests_fuzz_fuzz_vring_SOURCES = tests/fuzz/fuzz-vring.c
tests_fuzz_fuzz_vring_CPPFLAGS = $(backend_libbackend_la_CPPFLAGS)
tests_fuzz_fuzz_vring_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS)
tests_fuzz_fuzz_vring_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer -no-install
tests_fuzz_fuzz_vring_LDADD = backend/libbackend.la proto/libguestlink.la $(LIBEVENT_LIBS)
tests_fuzz_fuzz_vsock_packet_SOURCES = tests/fuzz/fuzz-vsock-packet.c
tests_fuzz_fuzz_vsock_packet_CPPFLAGS = $(backend_libbackend_la_CPPFLAGS)
tests_fuzz_fuzz_vsock_packet_CFLAGS = $(AM_CFLAGS)
tests_fuzz_fuzz_vsock_packet_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer -no-install
tests_fuzz_fuzz_vsock_packet_LDADD = backend/libbackend.la proto/libguestlink.la $(LIBEVENT_LIBS)
endif
