# guestlink: the command-line client. One file per subcommand (cmd-*.c), one
# row for it in main.c's table.
bin_PROGRAMS += host/guestlink
host_guestlink_SOURCES = \
	host/main.c \
	host/cmd.h \
	host/output.c \
	host/cmd-ping.c \
	host/cmd-info.c \
	host/cmd-methods.c \
	host/cmd-call.c \
	host/cmd-exec.c \
	host/cmd-cp.c \
	host/cp.h host/cp-tree.c \
	host/progress.c host/progress.h \
	host/cmd-power.c \
	host/session.c host/session.h \
	host/term.c host/term.h \
	host/cmd-shell.c \
	host/cmd-connect.c
host_guestlink_CFLAGS = $(AM_CFLAGS) $(JSONC_CFLAGS) $(LIBEVENT_CFLAGS) $(NETTLE_CFLAGS)
host_guestlink_LDADD = proto/libguestlink-internal.la $(JSONC_LIBS) $(LIBEVENT_LIBS) $(NETTLE_LIBS) -lm


# Installed under the command's name, as bash-completion looks it up.
bashcompletiondir = $(datadir)/bash-completion/completions
dist_bashcompletion_DATA = host/bash-completion/guestlink

# zsh finds completion functions (_guestlink) in its site-functions directory.
zshcompletiondir = $(datadir)/zsh/site-functions
dist_zshcompletion_DATA = host/zsh-completion/_guestlink
