# libguestlink: wire formats and the client library (installed).
lib_LTLIBRARIES += proto/libguestlink.la
proto_libguestlink_la_SOURCES = \
	proto/macro.h \
	proto/log.c proto/log.h \
	proto/deadline.c proto/deadline.h \
	proto/address.c \
	proto/base64.c proto/base64.h \
	proto/client.c \
	proto/jsonrpc.c \
	proto/stream.c
proto_libguestlink_la_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) $(JSONC_CFLAGS)
proto_libguestlink_la_LIBADD = $(LIBEVENT_LIBS) $(JSONC_LIBS)
proto_libguestlink_la_LDFLAGS = $(AM_LDFLAGS) -version-info 0:0:0

guestlinkincludedir = $(includedir)/guestlink
guestlinkinclude_HEADERS = \
	proto/guestlink/guestlink.h \
	proto/guestlink/jsonrpc.h \
	proto/guestlink/stream.h \
	proto/guestlink/address.h \
	proto/guestlink/client.h

pkgconfig_DATA += proto/guestlink.pc
