# guestlink-agent: the agent core is a convenience library so the fuzz harness
# and method tests can link it; the program adds only main().
noinst_LTLIBRARIES += agent/libagent.la
agent_libagent_la_SOURCES = \
	agent/config.c agent/config.h \
	agent/method.c agent/method.h \
	agent/params.c agent/params.h \
	agent/dispatch.c agent/dispatch.h \
	agent/jsonrpc.c \
	agent/qga.c agent/qga.h \
	agent/serial.c agent/serial.h \
	agent/conn.c agent/conn.h \
	agent/server.c agent/server.h \
	agent/methods/methods.h \
	agent/methods/agent.c \
	agent/methods/system.c \
	agent/methods/exec.c agent/methods/exec.h \
	agent/methods/file.c agent/methods/file.h \
	agent/methods/sysmgmt.c \
	agent/methods/fsfreeze.c agent/methods/fsfreeze.h \
	agent/methods/guestinfo.c agent/methods/guestinfo.h \
	agent/methods/user.c \
	agent/methods/plugin.c
agent_libagent_la_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/agent -DGL_VERSION='"$(PACKAGE_VERSION)"'
agent_libagent_la_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) $(JSONC_CFLAGS) $(SYSTEMD_CFLAGS)
agent_libagent_la_LIBADD = proto/libguestlink.la $(LIBEVENT_LIBS) $(JSONC_LIBS) $(SYSTEMD_LIBS) \
	$(CRYPT_LIBS)

sbin_PROGRAMS += agent/guestlink-agent
agent_guestlink_agent_SOURCES = agent/main.c
agent_guestlink_agent_CPPFLAGS = $(agent_libagent_la_CPPFLAGS)
agent_guestlink_agent_CFLAGS = $(agent_libagent_la_CFLAGS)
agent_guestlink_agent_LDADD = agent/libagent.la proto/libguestlink.la \
	$(LIBEVENT_LIBS) $(JSONC_LIBS) $(SYSTEMD_LIBS) $(CRYPT_LIBS)

dist_man_MANS += doc/guestlink-agent.8

# The example plugin, installed where the agent looks for plugins.
pluginsdir = $(prefix)/lib/guestlink/methods.d
dist_plugins_SCRIPTS = agent/plugins/example-uptime
dist_plugins_DATA = agent/plugins/example-uptime.json
