# guestlink-agent: the agent core is a convenience library so the fuzz harness
# and method tests can link it; the program adds only main().
noinst_LTLIBRARIES += agent/libagent.la
agent_libagent_la_SOURCES = \
	agent/config.c agent/config.h \
	agent/audit.c agent/audit.h \
	agent/worker.c agent/worker.h \
	agent/method.c agent/method.h \
	agent/params.c agent/params.h \
	agent/dispatch.c agent/dispatch.h \
	agent/envelope.c agent/envelope.h \
	agent/jsonrpc.c \
	agent/qga.c agent/qga.h \
	agent/serial.c agent/serial.h \
	agent/conn.c agent/conn.h \
	agent/server.c agent/server.h \
	agent/methods/methods.h \
	agent/methods/agent.c \
	agent/methods/system.c \
	agent/methods/exec.c agent/methods/exec.h \
	agent/methods/exec_proc.c agent/methods/exec_proc.h \
	agent/methods/exec_scope.c agent/methods/exec_scope.h \
	agent/methods/file.c agent/methods/file.h \
	agent/methods/file_channel.c agent/methods/file_internal.h \
	agent/methods/sysmgmt.c \
	agent/methods/fsfreeze.c agent/methods/fsfreeze.h \
	agent/methods/guestinfo.c agent/methods/guestinfo.h \
	agent/methods/user.c \
	agent/methods/plugin.c
agent_libagent_la_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/agent -DGL_VERSION='"$(PACKAGE_VERSION)"'
agent_libagent_la_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) $(JSONC_CFLAGS) $(SYSTEMD_CFLAGS) \
	$(NETTLE_CFLAGS)
agent_libagent_la_LIBADD = proto/libguestlink-internal.la $(LIBEVENT_LIBS) $(JSONC_LIBS) $(SYSTEMD_LIBS) \
	$(NETTLE_LIBS) $(CRYPT_LIBS)

sbin_PROGRAMS += agent/guestlink-agent
agent_guestlink_agent_SOURCES = agent/main.c
agent_guestlink_agent_CPPFLAGS = $(agent_libagent_la_CPPFLAGS)
agent_guestlink_agent_CFLAGS = $(agent_libagent_la_CFLAGS)
agent_guestlink_agent_LDADD = agent/libagent.la proto/libguestlink-internal.la \
	$(LIBEVENT_LIBS) $(JSONC_LIBS) $(SYSTEMD_LIBS) $(NETTLE_LIBS) $(CRYPT_LIBS)


# The example plugin is documentation, not a live method: copy it into
# $(prefix)/lib/guestlink/methods.d/ to enable it.
examplesdir = $(docdir)/examples
dist_examples_SCRIPTS = agent/plugins/example-uptime
dist_examples_DATA = agent/plugins/example-uptime.json

# The configuration file, every key commented out at its default.
agentconfdir = $(sysconfdir)/guestlink
dist_agentconf_DATA = agent/agent.conf
