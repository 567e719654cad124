# tests/fuzz: libFuzzer harnesses, built with ./configure --enable-fuzz CC=clang.
# Run e.g. `tests/fuzz/fuzz-agent -max_total_time=60 $(srcdir)/tests/fuzz/corpus/agent`.

# --- agent: decoder + dispatch ---
EXTRA_DIST += tests/fuzz/fuzz-agent.c tests/fuzz/corpus/agent
if ENABLE_FUZZ
noinst_PROGRAMS += tests/fuzz/fuzz-agent
tests_fuzz_fuzz_agent_SOURCES = tests/fuzz/fuzz-agent.c
tests_fuzz_fuzz_agent_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/agent
tests_fuzz_fuzz_agent_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) $(JSONC_CFLAGS)
tests_fuzz_fuzz_agent_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer -no-install
tests_fuzz_fuzz_agent_LDADD = agent/libagent.la proto/libguestlink-internal.la \
	$(LIBEVENT_LIBS) $(JSONC_LIBS) $(SYSTEMD_LIBS)
endif
# --- end agent ---

# --- QGA front end: sentinel, framing, envelope ---
EXTRA_DIST += tests/fuzz/fuzz-qga.c tests/fuzz/corpus/qga
if ENABLE_FUZZ
noinst_PROGRAMS += tests/fuzz/fuzz-qga
tests_fuzz_fuzz_qga_SOURCES = tests/fuzz/fuzz-qga.c
tests_fuzz_fuzz_qga_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/agent
tests_fuzz_fuzz_qga_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) $(JSONC_CFLAGS)
tests_fuzz_fuzz_qga_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer -no-install
tests_fuzz_fuzz_qga_LDADD = agent/libagent.la proto/libguestlink.la \
	$(LIBEVENT_LIBS) $(JSONC_LIBS) $(SYSTEMD_LIBS) $(CRYPT_LIBS)
endif
# --- end QGA ---
