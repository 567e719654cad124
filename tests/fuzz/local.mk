# tests/fuzz: libFuzzer harnesses, built with ./configure --enable-fuzz CC=clang.
# Run e.g. `tests/fuzz/fuzz-agent -max_total_time=60 $(srcdir)/tests/fuzz/corpus/agent`.

# --- agent: decoder + dispatch ---
EXTRA_DIST += tests/fuzz/fuzz-agent.c tests/fuzz/fuzz-conn.c tests/fuzz/fuzz-conn.h \
	tests/fuzz/corpus/agent
if ENABLE_FUZZ
noinst_PROGRAMS += tests/fuzz/fuzz-agent
tests_fuzz_fuzz_agent_SOURCES = tests/fuzz/fuzz-agent.c tests/fuzz/fuzz-conn.c tests/fuzz/fuzz-conn.h
tests_fuzz_fuzz_agent_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/agent
tests_fuzz_fuzz_agent_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) $(JSONC_CFLAGS)
tests_fuzz_fuzz_agent_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer -no-install
tests_fuzz_fuzz_agent_LDADD = agent/libagent.la proto/libguestlink-internal.la \
	$(LIBEVENT_LIBS) $(JSONC_LIBS) $(SYSTEMD_LIBS)
endif
# --- end agent ---

# --- agent: envelope fast path against the decoder path (differential) ---
EXTRA_DIST += tests/fuzz/fuzz-envelope.c tests/fuzz/corpus/envelope
if ENABLE_FUZZ
noinst_PROGRAMS += tests/fuzz/fuzz-envelope
tests_fuzz_fuzz_envelope_SOURCES = tests/fuzz/fuzz-envelope.c tests/fuzz/envelope-diff.c \
	tests/fuzz/envelope-diff.h
tests_fuzz_fuzz_envelope_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/agent
tests_fuzz_fuzz_envelope_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) $(JSONC_CFLAGS)
tests_fuzz_fuzz_envelope_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer -no-install
tests_fuzz_fuzz_envelope_LDADD = agent/libagent.la proto/libguestlink-internal.la \
	$(LIBEVENT_LIBS) $(JSONC_LIBS) $(SYSTEMD_LIBS)
endif
# --- end envelope ---

# --- QGA front end: sentinel, framing, envelope ---
EXTRA_DIST += tests/fuzz/fuzz-qga.c tests/fuzz/corpus/qga
if ENABLE_FUZZ
noinst_PROGRAMS += tests/fuzz/fuzz-qga
tests_fuzz_fuzz_qga_SOURCES = tests/fuzz/fuzz-qga.c tests/fuzz/fuzz-conn.c tests/fuzz/fuzz-conn.h
tests_fuzz_fuzz_qga_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/agent
tests_fuzz_fuzz_qga_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) $(JSONC_CFLAGS)
tests_fuzz_fuzz_qga_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer -no-install
tests_fuzz_fuzz_qga_LDADD = agent/libagent.la proto/libguestlink-internal.la \
	$(LIBEVENT_LIBS) $(JSONC_LIBS) $(SYSTEMD_LIBS) $(CRYPT_LIBS)
endif
# --- end QGA ---

# --- hybrid CONNECT line parser (backend/hybrid.c linked as it is) ---
EXTRA_DIST += tests/fuzz/fuzz-hybrid.c tests/fuzz/corpus/hybrid
if ENABLE_FUZZ
noinst_PROGRAMS += tests/fuzz/fuzz-hybrid
tests_fuzz_fuzz_hybrid_SOURCES = tests/fuzz/fuzz-hybrid.c backend/hybrid.c
tests_fuzz_fuzz_hybrid_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/backend -I$(top_srcdir)/proto
tests_fuzz_fuzz_hybrid_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer -no-install
tests_fuzz_fuzz_hybrid_LDADD = proto/libguestlink-internal.la
endif

# --- agent configuration parser ---
EXTRA_DIST += tests/fuzz/fuzz-config.c tests/fuzz/corpus/config
if ENABLE_FUZZ
noinst_PROGRAMS += tests/fuzz/fuzz-config
tests_fuzz_fuzz_config_SOURCES = tests/fuzz/fuzz-config.c
tests_fuzz_fuzz_config_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/agent
tests_fuzz_fuzz_config_CFLAGS = $(AM_CFLAGS) $(JSONC_CFLAGS)
tests_fuzz_fuzz_config_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer -no-install
tests_fuzz_fuzz_config_LDADD = agent/libagent.la proto/libguestlink-internal.la \
	$(LIBEVENT_LIBS) $(JSONC_LIBS) $(SYSTEMD_LIBS)
endif
