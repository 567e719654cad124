# doc: the man pages. The sources here carry @VERSION@ and @GL_DATE@ in their
# .TH line (the footer); the installed pages are generated into doc/man/.
gl_man_sources = doc/guestlink.1 doc/guestlink-agent.8 doc/vhost-user-vsock.8
EXTRA_DIST += $(gl_man_sources)
man_MANS = doc/man/guestlink.1 doc/man/guestlink-agent.8 doc/man/vhost-user-vsock.8
CLEANFILES += $(man_MANS)

gl_man_gen = $(AM_V_GEN)$(MKDIR_P) doc/man && \
	sed -e 's|@VERSION[@]|$(PACKAGE_VERSION)|g' -e 's|@GL_DATE[@]|$(GL_DATE)|g' $< > $@.tmp && \
	mv $@.tmp $@
doc/man/guestlink.1: $(srcdir)/doc/guestlink.1 Makefile
	$(gl_man_gen)
doc/man/guestlink-agent.8: $(srcdir)/doc/guestlink-agent.8 Makefile
	$(gl_man_gen)
doc/man/vhost-user-vsock.8: $(srcdir)/doc/vhost-user-vsock.8 Makefile
	$(gl_man_gen)
