# units: systemd units, generated with the install paths substituted.

# --- guest: guestlink-agent ---
systemdsystemunit_DATA += units/guestlink-agent.socket units/guestlink-agent.service
EXTRA_DIST += units/guestlink-agent.socket units/guestlink-agent.service.in
CLEANFILES += units/guestlink-agent.service

units/guestlink-agent.service: $(top_srcdir)/units/guestlink-agent.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) units && \
	sed -e 's|@sbindir[@]|$(sbindir)|g' $(top_srcdir)/units/guestlink-agent.service.in > $@.tmp && \
	mv $@.tmp $@

# The qemu-guest-agent protocol on virtio-serial, started by udev when the port appears.
systemdsystemunit_DATA += units/guestlink-agent-qga.service
EXTRA_DIST += units/guestlink-agent-qga.service.in
CLEANFILES += units/guestlink-agent-qga.service
udevrulesdir = $(prefix)/lib/udev/rules.d
dist_udevrules_DATA = units/60-guestlink-agent-qga.rules

units/guestlink-agent-qga.service: $(top_srcdir)/units/guestlink-agent-qga.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) units && \
	sed -e 's|@sbindir[@]|$(sbindir)|g' $(top_srcdir)/units/guestlink-agent-qga.service.in > $@.tmp && \
	mv $@.tmp $@
# --- end guest ---

# --- host: vhost-user-vsock@ (one backend per VM) ---
systemdsystemunit_DATA += units/vhost-user-vsock@.socket units/vhost-user-vsock@.service
EXTRA_DIST += units/vhost-user-vsock@.socket units/vhost-user-vsock@.service.in
CLEANFILES += units/vhost-user-vsock@.service

units/vhost-user-vsock@.service: $(top_srcdir)/units/vhost-user-vsock@.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) units && \
	sed -e 's|@libexecdir[@]|$(libexecdir)|g' $(top_srcdir)/units/vhost-user-vsock@.service.in > $@.tmp && \
	mv $@.tmp $@

# The group that may reach the guests' host sockets
# (--socket-group=guestlink), created by systemd-sysusers.
dist_sysusers_DATA = units/sysusers.d/guestlink.conf
# --- end host ---
