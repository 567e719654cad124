# proto: wire formats and the client library. Everything is built once into
# the internal convenience library libguestlink-internal.la, which the
# daemons, the CLI and the tests link; the installed libguestlink.so is the
# same code with only the public gl_* API exported (proto/libguestlink.sym).
noinst_LTLIBRARIES += proto/libguestlink-internal.la
proto_libguestlink_internal_la_SOURCES = \
	proto/macro.h \
	proto/log.c proto/log.h \
	proto/deadline.c proto/deadline.h \
	proto/address.c \
	proto/base64.c proto/base64.h \
	proto/client.c \
	proto/jsonrpc.c \
	proto/stream.c
proto_libguestlink_internal_la_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) $(JSONC_CFLAGS)
proto_libguestlink_internal_la_LIBADD = $(LIBEVENT_LIBS) $(JSONC_LIBS)

# libtool -version-info CURRENT:REVISION:AGE (libtool manual, "Updating
# version info"): a release that only fixes code bumps REVISION; one that adds
# interfaces bumps CURRENT and AGE and resets REVISION; one that removes or
# changes an interface bumps CURRENT, resets REVISION and AGE, and the
# SONAME (libguestlink.so.0) and the Debian package name change with it.
lib_LTLIBRARIES += proto/libguestlink.la
proto_libguestlink_la_SOURCES =
proto_libguestlink_la_LIBADD = proto/libguestlink-internal.la $(LIBEVENT_LIBS) $(JSONC_LIBS)
proto_libguestlink_la_LDFLAGS = $(AM_LDFLAGS) -version-info 0:0:0 -no-undefined \
	-Wl,--version-script=$(srcdir)/proto/libguestlink.sym
proto_libguestlink_la_DEPENDENCIES = proto/libguestlink-internal.la $(srcdir)/proto/libguestlink.sym
EXTRA_DIST += proto/libguestlink.sym

guestlinkincludedir = $(includedir)/guestlink
guestlinkinclude_HEADERS = \
	proto/guestlink/guestlink.h \
	proto/guestlink/jsonrpc.h \
	proto/guestlink/stream.h \
	proto/guestlink/address.h \
	proto/guestlink/client.h

pkgconfig_DATA += proto/guestlink.pc
